package chat_test

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/inmem"
)

func (s *lostWriteStore) DeleteGroup(ctx context.Context, id, by int64, at time.Time, removed chat.Event) ([]chat.UserEvent, error) {
	evs, err := s.Store.DeleteGroup(ctx, id, by, at, removed)
	if err = s.lost(err); err != nil {
		return nil, err
	}
	return evs, nil
}

// TestLostWriteDeleteGroup: a group deletion whose commit went through
// but whose caller got an error still tells every member, once, that
// the group is gone; a retry by the owner is no error.
func TestLostWriteDeleteGroup(t *testing.T) {
	ctx := context.Background()
	db := &lostWriteStore{Store: newFixture(t, chat.Config{}).store}
	f := newFixtureOn(t, chat.Config{RepublishWait: 10 * time.Millisecond}, inmem.NewPresence(), db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	bob, _ := f.signIn(t, "bob@example.com", "Bob")
	h := lostHub(t, f)
	g, err := f.svc.CreateGroup(ctx, ada, "team", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []chat.User{grace, bob} {
		if _, err := f.svc.AddGroupMember(ctx, ada, g.ID, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	adas, graces, bobs := userClient(t, h, ada), userClient(t, h, grace), userClient(t, h, bob)
	db.lose.Store(true)
	if err := f.svc.DeleteGroup(ctx, ada, g.ID); err == nil {
		t.Fatal("DeleteGroup = nil; want the store's error")
	}
	if err := f.svc.DeleteGroup(ctx, ada, g.ID); err != nil {
		t.Errorf("DeleteGroup retried: %v; want success", err)
	}
	removed := func(ev chat.Event) bool { return ev.Type == chat.EventRemoved && ev.ConvID == g.ID }
	wantOnce(t, adas, "Ada's removed", removed)
	wantOnce(t, graces, "Grace's removed", removed)
	wantOnce(t, bobs, "Bob's removed", removed)
}
