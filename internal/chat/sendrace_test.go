package chat_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
)

// hookStore runs after once, the first time Membership answers for conv,
// before it returns: what another request does between a send's lookup
// and its write. Once reused is set, what is queued for conv is written to
// conversation reused instead: conv names that one now, as it did when
// SQLite gave a deleted conversation's id to the next (before migration
// 9, and still, once, for an id deleted before it).
type hookStore struct {
	chat.Store
	conv   int64
	once   sync.Once
	after  func()
	reused atomic.Int64
}

func (h *hookStore) Membership(ctx context.Context, id, userID int64) (chat.ConvKind, bool, error) {
	kind, member, err := h.Store.Membership(ctx, id, userID)
	if id == h.conv && h.after != nil {
		h.once.Do(h.after)
	}
	return kind, member, err
}

func (h *hookStore) QueueAppend(ctx context.Context, nm chat.NewMessage) chat.PendingAppend {
	if to := h.reused.Load(); to != 0 && nm.ConvID == h.conv {
		nm.ConvID = to
	}
	return h.Store.QueueAppend(ctx, nm)
}

// TestSendLookupThenIDReused: a node that does not know a group's
// kind looks it up (sendChecked) and then appends with MemberOnly only. If
// the group is deleted in between and SQLite gives its id to a direct
// conversation the sender is in, whose peer has just blocked the sender,
// the message must not be stored there.
func TestSendLookupThenIDReused(t *testing.T) {
	ctx := context.Background()
	f := newGroupFixture(t)
	// m and admin are friends, with no direct conversation yet.
	if _, err := f.svc.RequestFriend(ctx, f.m, f.admin.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AcceptFriend(ctx, f.admin, f.m.ID); err != nil {
		t.Fatal(err)
	}
	var direct chat.Conversation
	h := &hookStore{Store: f.store, conv: f.g.ID}
	h.after = func() {
		if err := f.svc.DeleteGroup(ctx, f.owner, f.g.ID); err != nil {
			t.Errorf("DeleteGroup: %v", err)
			return
		}
		var err error
		if _, direct, err = f.svc.SendDirect(ctx, f.admin, f.m.ID, "a-1", "hi"); err != nil {
			t.Errorf("SendDirect: %v", err)
			return
		}
		if err := f.svc.Block(ctx, f.admin, f.m.ID); err != nil {
			t.Errorf("Block: %v", err)
		}
		h.reused.Store(direct.ID)
	}
	n := f.nodeOn(h)
	m, err := n.Send(ctx, f.m, f.g.ID, "m-1", "for the group only")
	if direct.ID == 0 {
		t.Fatal("no direct conversation was made")
	}
	if err == nil {
		t.Errorf("Send to the deleted group = %+v stored in the direct conversation %d, past the peer's block", m, m.ConvID)
	}
	if m, ok := f.stored(t, direct.ID, "m-1"); ok {
		t.Errorf("direct conversation %d holds %q from the blocked user", direct.ID, m.Body)
	}
}

// TestSendLookupThenLeft: a member of a room who leaves between a send's
// lookup and its write (on a node that did not know the room's kind) is
// refused as a non-member, and nothing is stored.
func TestSendLookupThenLeft(t *testing.T) {
	ctx := context.Background()
	f := newGroupFixture(t)
	r := f.enter(t, f.m, "lobby")
	h := &hookStore{Store: f.store, conv: r.ID}
	h.after = func() {
		if err := f.svc.LeaveRoom(ctx, f.m, r.ID); err != nil {
			t.Errorf("LeaveRoom: %v", err)
		}
	}
	n := f.nodeOn(h)
	_, err := n.Send(ctx, f.m, r.ID, "m-1", "after leaving")
	wantError(t, "Send by a member gone since the lookup", err, chat.ErrForbidden, chat.CodeNotMember, "")
	if m, ok := f.stored(t, r.ID, "m-1"); ok {
		t.Errorf("room %d holds %q, sent after its sender left", r.ID, m.Body)
	}
}

// stored returns the message of conversation id with client ID clientID,
// if the store holds one.
func (f *groupFixture) stored(t *testing.T, id int64, clientID string) (chat.Message, bool) {
	t.Helper()
	ms, err := f.store.Messages(context.Background(), id, chat.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.ClientID == clientID {
			return m, true
		}
	}
	return chat.Message{}, false
}
