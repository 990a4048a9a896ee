package chat_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/inmem"
)

// groupFixture is a group with an owner, an admin, two members (m, t) and
// a second admin (ta), and an outsider.
type groupFixture struct {
	*fixture
	g                      chat.Group
	owner, admin, m, t, ta chat.User
	out                    chat.User
}

func newGroupFixture(tb testing.TB) *groupFixture {
	tb.Helper()
	return newGroupFixtureOn(tb, newFixture(tb, chat.Config{}))
}

// newGroupFixtureOn is newGroupFixture on base's Service.
func newGroupFixtureOn(tb testing.TB, base *fixture) *groupFixture {
	tb.Helper()
	ctx := context.Background()
	f := &groupFixture{fixture: base}
	f.owner, _ = f.signIn(tb, "owner@example.com", "Owner")
	f.admin, _ = f.signIn(tb, "admin@example.com", "Admin")
	f.m, _ = f.signIn(tb, "m@example.com", "Member")
	f.t, _ = f.signIn(tb, "t@example.com", "Target")
	f.ta, _ = f.signIn(tb, "ta@example.com", "TargetAdmin")
	f.out, _ = f.signIn(tb, "out@example.com", "Outsider")
	g, err := f.svc.CreateGroup(ctx, f.owner, "Crew", "", 0)
	if err != nil {
		tb.Fatalf("CreateGroup: %v", err)
	}
	f.g = g
	for _, u := range []chat.User{f.admin, f.m, f.t, f.ta} {
		if _, err := f.svc.AddGroupMember(ctx, f.owner, g.ID, u.ID); err != nil {
			tb.Fatalf("AddGroupMember(%s): %v", u.Name, err)
		}
	}
	for _, u := range []chat.User{f.admin, f.ta} {
		if err := f.svc.SetGroupRole(ctx, f.owner, g.ID, u.ID, chat.RoleAdmin); err != nil {
			tb.Fatalf("SetGroupRole(%s): %v", u.Name, err)
		}
	}
	return f
}

func TestGroupPermissions(t *testing.T) {
	ctx := context.Background()
	str := func(s string) *string { return &s }
	num := func(n int) *int { return &n }
	actions := []struct {
		name string
		do   func(f *groupFixture, u chat.User) error
	}{
		{"history", func(f *groupFixture, u chat.User) error {
			_, err := f.svc.History(ctx, u, f.g.ID, chat.Page{})
			return err
		}},
		{"sync", func(f *groupFixture, u chat.User) error {
			_, err := f.svc.Sync(ctx, u, f.g.ID, 0, 10)
			return err
		}},
		{"send", func(f *groupFixture, u chat.User) error {
			_, err := f.svc.Send(ctx, u, f.g.ID, "c1", "hello")
			return err
		}},
		{"open", func(f *groupFixture, u chat.User) error {
			_, _, _, err := f.svc.OpenConversation(ctx, u, f.g.ID)
			return err
		}},
		{"get", func(f *groupFixture, u chat.User) error {
			_, _, err := f.svc.Group(ctx, u, f.g.ID)
			return err
		}},
		{"add", func(f *groupFixture, u chat.User) error {
			_, err := f.svc.AddGroupMember(ctx, u, f.g.ID, f.out.ID)
			return err
		}},
		{"remove member", func(f *groupFixture, u chat.User) error {
			return f.svc.RemoveGroupMember(ctx, u, f.g.ID, f.t.ID)
		}},
		{"remove admin", func(f *groupFixture, u chat.User) error {
			return f.svc.RemoveGroupMember(ctx, u, f.g.ID, f.ta.ID)
		}},
		{"promote", func(f *groupFixture, u chat.User) error {
			return f.svc.SetGroupRole(ctx, u, f.g.ID, f.t.ID, chat.RoleAdmin)
		}},
		{"demote", func(f *groupFixture, u chat.User) error {
			return f.svc.SetGroupRole(ctx, u, f.g.ID, f.ta.ID, chat.RoleMember)
		}},
		{"transfer", func(f *groupFixture, u chat.User) error {
			return f.svc.TransferGroup(ctx, u, f.g.ID, f.t.ID)
		}},
		{"rename", func(f *groupFixture, u chat.User) error {
			_, err := f.svc.UpdateGroup(ctx, u, f.g.ID, chat.GroupUpdate{Name: str("Crew 2"), Description: str("d")})
			return err
		}},
		{"set cap", func(f *groupFixture, u chat.User) error {
			_, err := f.svc.UpdateGroup(ctx, u, f.g.ID, chat.GroupUpdate{MaxMembers: num(50)})
			return err
		}},
		{"delete", func(f *groupFixture, u chat.User) error {
			return f.svc.DeleteGroup(ctx, u, f.g.ID)
		}},
		{"leave", func(f *groupFixture, u chat.User) error {
			return f.svc.RemoveGroupMember(ctx, u, f.g.ID, u.ID)
		}},
	}
	const (
		ok        = ""
		forbidden = chat.CodeForbidden
		notFound  = chat.CodeNotFound
		mustXfer  = chat.CodeOwnerMustLeave
	)
	// want[role][action]
	want := map[string]map[string]string{
		"owner": {"leave": mustXfer},
		"admin": {"remove admin": forbidden, "promote": forbidden, "demote": forbidden, "transfer": forbidden,
			"set cap": forbidden, "delete": forbidden},
		"member": {"add": forbidden, "remove member": forbidden, "remove admin": forbidden, "promote": forbidden,
			"demote": forbidden, "transfer": forbidden, "rename": forbidden, "set cap": forbidden, "delete": forbidden},
		"outsider": {},
	}
	for _, a := range actions {
		want["outsider"][a.name] = notFound
	}
	kinds := map[string]error{forbidden: chat.ErrForbidden, notFound: chat.ErrNotFound, mustXfer: chat.ErrConflict}
	for _, role := range []string{"owner", "admin", "member", "outsider"} {
		for _, a := range actions {
			t.Run(role+"/"+a.name, func(t *testing.T) {
				t.Parallel()
				f := newGroupFixture(t)
				u := map[string]chat.User{"owner": f.owner, "admin": f.admin, "member": f.m, "outsider": f.out}[role]
				err := a.do(f, u)
				code := want[role][a.name]
				if code == ok {
					if err != nil {
						t.Errorf("%s %s: %v; want success", role, a.name, err)
					}
					return
				}
				wantError(t, role+" "+a.name, err, kinds[code], code, "")
			})
		}
	}
}

func TestGroupEvents(t *testing.T) {
	ctx := context.Background()
	f := newGroupFixture(t)
	conv := f.record(t, chat.ConvTopic(f.g.ID))
	outTopic := f.record(t, chat.UserTopic(f.out.ID))
	tTopic := f.record(t, chat.UserTopic(f.t.ID))

	m, err := f.svc.AddGroupMember(ctx, f.admin, f.g.ID, f.out.ID)
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != chat.KindAdded || m.SenderID != f.admin.ID || m.TargetID != f.out.ID {
		t.Errorf("AddGroupMember message = %+v", m)
	}
	evs := outTopic.take()
	if len(evs) != 1 || evs[0].Type != chat.EventConversation || evs[0].ConvKind != chat.ConvGroup || evs[0].ConvID != f.g.ID {
		t.Errorf("invitee's user topic: %+v; want one group conversation event", evs)
	}
	if evs := conv.take(); len(evs) != 1 || evs[0].Message == nil || evs[0].Message.Seq != m.Seq || evs[0].Revoke != 0 ||
		evs[0].Message.TargetName != f.out.Name {
		t.Errorf("conversation topic after add: %+v; want the message, naming %q", evs, f.out.Name)
	}
	// History names the target too, for members who never met them.
	hist, err := f.svc.History(ctx, f.owner, f.g.ID, chat.Page{Before: m.Seq + 1, Limit: 1})
	if err != nil || len(hist) != 1 || hist[0].TargetName != f.out.Name || hist[0].TargetID != f.out.ID {
		t.Errorf("History of the add = %+v, %v; want target_name %q", hist, err, f.out.Name)
	}

	if err := f.svc.RemoveGroupMember(ctx, f.admin, f.g.ID, f.t.ID); err != nil {
		t.Fatal(err)
	}
	evs = conv.take()
	if len(evs) != 1 || evs[0].Message == nil || evs[0].Message.Kind != chat.KindRemoved || evs[0].Revoke != f.t.ID {
		t.Errorf("conversation topic after remove: %+v; want removed with Revoke %d", evs, f.t.ID)
	}
	evs = tTopic.take()
	if len(evs) != 1 || evs[0].Type != chat.EventRemoved || evs[0].ConvID != f.g.ID || evs[0].Reason != "removed" {
		t.Errorf("removed user's topic: %+v; want EventRemoved", evs)
	}
	_, err = f.svc.Send(ctx, f.t, f.g.ID, "c", "still here?")
	wantError(t, "Send after removal", err, chat.ErrNotFound, chat.CodeNotFound, "")

	// Full group; blocked users; caps.
	if _, err := f.svc.UpdateGroup(ctx, f.owner, f.g.ID, chat.GroupUpdate{MaxMembers: ptr(5)}); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.AddGroupMember(ctx, f.owner, f.g.ID, f.t.ID)
	wantError(t, "AddGroupMember to a full group", err, chat.ErrConflict, chat.CodeGroupFull, "")
	_, err = f.svc.UpdateGroup(ctx, f.owner, f.g.ID, chat.GroupUpdate{MaxMembers: ptr(4)})
	wantError(t, "cap below members", err, chat.ErrConflict, chat.CodeBelowMembers, "")
	_, err = f.svc.UpdateGroup(ctx, f.owner, f.g.ID, chat.GroupUpdate{MaxMembers: ptr(201)})
	wantError(t, "cap over the server maximum", err, chat.ErrInvalid, chat.CodeInvalidField, "max_members")
	_, err = f.svc.CreateGroup(ctx, f.out, "crew", "", 0)
	wantError(t, "CreateGroup(taken name)", err, chat.ErrConflict, chat.CodeNameTaken, "")
	if err := f.svc.Block(ctx, f.t, f.owner.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.UpdateGroup(ctx, f.owner, f.g.ID, chat.GroupUpdate{MaxMembers: ptr(10)}); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.AddGroupMember(ctx, f.owner, f.g.ID, f.t.ID)
	wantError(t, "AddGroupMember(blocking user)", err, chat.ErrForbidden, chat.CodeRefused, "")

	// Deleting cuts everyone off.
	adminTopic := f.record(t, chat.UserTopic(f.admin.ID))
	if err := f.svc.DeleteGroup(ctx, f.owner, f.g.ID); err != nil {
		t.Fatal(err)
	}
	if evs := adminTopic.take(); len(evs) != 1 || evs[0].Type != chat.EventRemoved || evs[0].Reason != "deleted" {
		t.Errorf("admin's topic after delete: %+v", evs)
	}
	_, err = f.svc.History(ctx, f.owner, f.g.ID, chat.Page{})
	wantError(t, "History after delete", err, chat.ErrNotFound, chat.CodeNotFound, "")
}

func ptr[T any](v T) *T { return &v }

func TestGroupServerCap(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{MaxGroupMembers: 3})
	u, _ := f.signIn(t, "a@example.com", "A")
	g, err := f.svc.CreateGroup(ctx, u, "Small", "", 0)
	if err != nil || g.MaxMembers != 3 {
		t.Fatalf("CreateGroup with server max 3 = %+v, %v; want cap 3", g, err)
	}
	_, err = f.svc.CreateGroup(ctx, u, "Big", "", 4)
	wantError(t, "CreateGroup over the server max", err, chat.ErrInvalid, chat.CodeInvalidField, "max_members")
	if !errors.Is(err, chat.ErrInvalid) {
		t.Fatal(err)
	}
}

// TestSendKnownKind covers sends to a conversation whose kind the service
// remembers from an earlier send: the store must still refuse a member
// removed since, and an id reused by a conversation of another kind must be
// treated as what it is now.
func TestSendKnownKind(t *testing.T) {
	ctx := context.Background()
	f := newGroupFixture(t)
	if _, err := f.svc.Send(ctx, f.m, f.g.ID, "m-1", "hello"); err != nil {
		t.Fatalf("Send(member): %v", err)
	}
	_, err := f.svc.Send(ctx, f.out, f.g.ID, "o-1", "let me in")
	wantError(t, "outsider, kind known", err, chat.ErrNotFound, chat.CodeNotFound, "")
	if err := f.svc.RemoveGroupMember(ctx, f.owner, f.g.ID, f.m.ID); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Send(ctx, f.m, f.g.ID, "m-2", "still here?")
	wantError(t, "removed member, kind known", err, chat.ErrNotFound, chat.CodeNotFound, "")

	// An id that names a conversation of another kind by the time the
	// message is written (hookStore), here a direct conversation whose
	// peer blocked the sender: on a node that knows the id for a group's,
	// the store refuses the message as it checks the kind.
	h := &hookStore{Store: f.store, conv: f.g.ID}
	n := f.nodeOn(h)
	if _, err := n.Send(ctx, f.admin, f.g.ID, "a-1", "hello"); err != nil {
		t.Fatalf("Send(admin): %v", err)
	}
	if err := f.svc.DeleteGroup(ctx, f.owner, f.g.ID); err != nil {
		t.Fatal(err)
	}
	c := f.befriend(t, f.owner, f.admin)
	if err := f.svc.Block(ctx, f.owner, f.admin.ID); err != nil {
		t.Fatal(err)
	}
	h.reused.Store(c.ID)
	_, err = n.Send(ctx, f.admin, f.g.ID, "d-2", "hello")
	wantError(t, "blocked, to an id once a group's", err, chat.ErrNotFound, chat.CodeNotFound, "")
	if m, ok := f.stored(t, c.ID, "d-2"); ok {
		t.Errorf("direct conversation %d holds %q, sent past the block", c.ID, m.Body)
	}

	// A room: a non-member is told so whether the kind is known or not.
	r := f.enter(t, f.owner, "lobby")
	_, err = f.svc.Send(ctx, f.out, r.ID, "o-2", "first")
	wantError(t, "room, kind not known", err, chat.ErrForbidden, chat.CodeNotMember, "")
	if _, err := f.svc.Send(ctx, f.owner, r.ID, "w-1", "hello"); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Send(ctx, f.out, r.ID, "o-3", "second")
	wantError(t, "room, kind known", err, chat.ErrForbidden, chat.CodeNotMember, "")
}

// TestSendAfterOpen: a node that has read a conversation for a member
// (an open) stores that member's first message there with no read first
// if it is a room or a group, and with one, for the peer, if it is a
// direct conversation, whose friendship the store checks as it stores the
// message. A node that has not read it looks it up.
func TestSendAfterOpen(t *testing.T) {
	ctx := context.Background()
	f := newGroupFixture(t)
	r := f.enter(t, f.m, "lobby")
	d := f.befriend(t, f.m, f.t)
	// Other nodes on the same store, which have seen none of them yet.
	for _, c := range []struct {
		name                   string
		id                     int64
		before, afterOpen      int
		queuedBefore, queuedAt bool
	}{
		{"room", r.ID, 1, 0, false, true},
		{"group", f.g.ID, 1, 0, false, true},
		// Before the open, the lookup and the peer; after it, the peer.
		{"direct", d.ID, 2, 1, false, false},
	} {
		for _, open := range []bool{false, true} {
			n, rc := f.node()
			if open {
				if _, _, _, err := n.OpenConversation(ctx, f.m, c.id); err != nil {
					t.Fatalf("%s: OpenConversation: %v", c.name, err)
				}
			}
			p, queued := n.QueueSend(ctx, f.m, c.id, fmt.Sprintf("%s-q-%v", c.name, open), "queued?")
			if queued {
				if _, err := p.Wait(); err != nil {
					t.Fatalf("%s, opened %v: queued send: %v", c.name, open, err)
				}
			}
			want, wantQueued := c.before, c.queuedBefore
			if open {
				want, wantQueued = c.afterOpen, c.queuedAt
			}
			if queued != wantQueued {
				t.Errorf("%s, opened %v: queued = %v; want %v", c.name, open, queued, wantQueued)
			}
			rc.reads.Store(0)
			m, err := n.Send(ctx, f.m, c.id, fmt.Sprintf("%s-%v", c.name, open), "hello")
			if err != nil || m.Body != "hello" {
				t.Fatalf("%s, opened %v: Send = %+v, %v", c.name, open, m, err)
			}
			if got := int(rc.reads.Load()); got != want {
				t.Errorf("%s, opened %v: %d reads before the send's write; want %d", c.name, open, got, want)
			}
		}
	}
}

// befriend makes a and b friends, and a's first direct message to b
// starts their conversation, which it returns.
func (f *groupFixture) befriend(tb testing.TB, a, b chat.User) chat.Conversation {
	tb.Helper()
	ctx := context.Background()
	if _, err := f.svc.RequestFriend(ctx, a, b.ID); err != nil {
		tb.Fatal(err)
	}
	if _, err := f.svc.AcceptFriend(ctx, b, a.ID); err != nil {
		tb.Fatal(err)
	}
	_, c, err := f.svc.SendDirect(ctx, a, b.ID, "hi-"+strconv.FormatInt(b.ID, 10), "hi")
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// node is another node's Service on the fixture's store, which has read
// nothing yet, and the count of its reads.
func (f *fixture) node() (*chat.Service, *readCounter) {
	rc := &readCounter{Store: f.store}
	return f.nodeOn(rc), rc
}

// nodeOn is another node's Service on st, a wrapper of the fixture's
// store, sharing its broker, clock and mailer.
func (f *fixture) nodeOn(st chat.Store) *chat.Service {
	return chat.NewService(chat.Config{Now: f.clock.Now}, chat.Deps{
		Store: st, Broker: f.broker, Presence: inmem.NewPresence(),
		Limiter: inmem.NewLimiter(f.clock.Now), Mailer: f.mail,
	})
}

// readCounter counts the reads a send may make before its write, and the
// rooms ensured and joined.
type readCounter struct {
	chat.Store
	reads   atomic.Int64
	ensures atomic.Int64
	joins   atomic.Int64
}

func (c *readCounter) Membership(ctx context.Context, id, userID int64) (chat.ConvKind, bool, error) {
	c.reads.Add(1)
	return c.Store.Membership(ctx, id, userID)
}

func (c *readCounter) Conversation(ctx context.Context, id, userID int64) (chat.Conversation, bool, error) {
	c.reads.Add(1)
	return c.Store.Conversation(ctx, id, userID)
}

func (c *readCounter) Room(ctx context.Context, id int64) (chat.Room, error) {
	c.reads.Add(1)
	return c.Store.Room(ctx, id)
}

func (c *readCounter) IsMember(ctx context.Context, roomID, userID int64) (bool, error) {
	c.reads.Add(1)
	return c.Store.IsMember(ctx, roomID, userID)
}

// EnsureRoom is a write transaction, counted apart.
func (c *readCounter) EnsureRoom(ctx context.Context, name string, at time.Time) (chat.Room, bool, error) {
	c.ensures.Add(1)
	return c.Store.EnsureRoom(ctx, name, at)
}

// JoinRoom is a write transaction, counted apart.
func (c *readCounter) JoinRoom(ctx context.Context, roomID, userID int64, at time.Time, announce bool) (chat.Message, bool, error) {
	c.joins.Add(1)
	return c.Store.JoinRoom(ctx, roomID, userID, at, announce)
}

func (c *readCounter) AreFriends(ctx context.Context, a, b int64) (bool, error) {
	c.reads.Add(1)
	return c.Store.AreFriends(ctx, a, b)
}

func (c *readCounter) IsBlocked(ctx context.Context, a, b int64) (bool, error) {
	c.reads.Add(1)
	return c.Store.IsBlocked(ctx, a, b)
}

// TestMarkReadAfterOpen: in a room or a group a node has read, moving the
// read position reads nothing first (the store's write checks the
// membership), and a non-member gets the error a lookup would give.
func TestMarkReadAfterOpen(t *testing.T) {
	ctx := context.Background()
	f := newGroupFixture(t)
	r := f.enter(t, f.m, "lobby")
	for _, c := range []struct {
		name    string
		id      int64
		outKind error
		outCode string
	}{{"room", r.ID, chat.ErrForbidden, chat.CodeNotMember}, {"group", f.g.ID, chat.ErrNotFound, chat.CodeNotFound}} {
		if _, err := f.svc.Send(ctx, f.m, c.id, c.name+"-2", "hello"); err != nil {
			t.Fatal(err)
		}
		n, rc := f.node()
		if _, _, _, err := n.OpenConversation(ctx, f.m, c.id); err != nil {
			t.Fatal(err)
		}
		rc.reads.Store(0)
		st, err := n.MarkRead(ctx, f.m, c.id, 1)
		if err != nil || st.ReadSeq < 1 {
			t.Fatalf("%s: MarkRead = %+v, %v", c.name, st, err)
		}
		if got := rc.reads.Load(); got != 0 {
			t.Errorf("%s: %d reads before MarkRead's write; want 0", c.name, got)
		}
		_, err = n.MarkRead(ctx, f.out, c.id, 1)
		wantError(t, c.name+": MarkRead by a non-member, kind known", err, c.outKind, c.outCode, "")
	}
}

// markGapStore is a Store that runs before, once, just before its next
// MarkRead.
type markGapStore struct {
	chat.Store
	before func()
}

func (s *markGapStore) MarkRead(ctx context.Context, marks []chat.ReadMark) error {
	if f := s.before; f != nil {
		s.before = nil
		f()
	}
	return s.Store.MarkRead(ctx, marks)
}

// TestMarkReadRemovedMeanwhile: a group member removed between MarkRead's
// check, on a node that did not know the group yet, and the store's
// write gets not_found, as any non-member of a group does, not a room's
// not_member ("enter it first").
func TestMarkReadRemovedMeanwhile(t *testing.T) {
	ctx := context.Background()
	st := &markGapStore{Store: sqliteStore(t)}
	f := newGroupFixtureOn(t, newFixtureOn(t, chat.Config{}, inmem.NewPresence(), st))
	st.before = func() {
		removed := chat.Event{Type: chat.EventRemoved, ConvID: f.g.ID, Reason: "removed"}
		if _, _, err := st.Store.RemoveGroupMember(ctx, f.g.ID, f.t.ID, f.owner.ID, f.clock.Now(), removed); err != nil {
			t.Error(err)
		}
	}
	_, err := f.svc.MarkRead(ctx, f.t, f.g.ID, 1)
	wantError(t, "MarkRead by a member removed meanwhile", err, chat.ErrNotFound, chat.CodeNotFound, "")
}

// TestOpenReadsOnce: a client's open of a room or a group (CheckMember,
// then OpenConversation, as web's session.open) on a node that has read
// nothing reads the membership once and the conversation once, and its
// history reads the membership before the page; entering a room that
// exists reads it and takes no write transaction to ensure it.
func TestOpenReadsOnce(t *testing.T) {
	ctx := context.Background()
	f := newGroupFixture(t)
	r := f.enter(t, f.m, "lobby")
	for _, c := range []struct {
		name string
		id   int64
	}{{"room", r.ID}, {"group", f.g.ID}} {
		n, rc := f.node()
		if err := n.CheckMember(ctx, f.m, c.id); err != nil {
			t.Fatalf("%s: CheckMember: %v", c.name, err)
		}
		if _, _, _, err := n.OpenConversation(ctx, f.m, c.id); err != nil {
			t.Fatalf("%s: OpenConversation: %v", c.name, err)
		}
		if got := rc.reads.Load(); got != 2 {
			t.Errorf("%s: %d reads to open; want 2, the membership and the conversation", c.name, got)
		}
		n, rc = f.node()
		if _, err := n.History(ctx, f.m, c.id, chat.Page{}); err != nil {
			t.Fatalf("%s: History: %v", c.name, err)
		}
		if got := rc.reads.Load(); got != 1 {
			t.Errorf("%s: %d reads before the history; want 1, the membership", c.name, got)
		}
	}
	n, rc := f.node()
	if _, err := n.EnterRoom(ctx, f.t, "Lobby"); err != nil {
		t.Fatal(err)
	}
	if got := rc.ensures.Load(); got != 0 {
		t.Errorf("entering a room that exists ensured it %d times; want 0", got)
	}
	if _, err := n.EnterRoom(ctx, f.t, "annex"); err != nil {
		t.Fatal(err)
	}
	if got := rc.ensures.Load(); got != 1 {
		t.Errorf("entering a new room ensured it %d times; want 1", got)
	}
}

// TestEnterAsMember: a member entering a room again (a reload, a
// reconnect) reads it and the membership and takes no write transaction;
// a newcomer joins, and the room it gets counts it.
func TestEnterAsMember(t *testing.T) {
	ctx := context.Background()
	f := newGroupFixture(t)
	r := f.enter(t, f.m, "lobby")
	n, rc := f.node()
	got, err := n.EnterRoom(ctx, f.m, "LOBBY")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != r.ID || got.Members != r.Members {
		t.Errorf("re-entering = room %d of %d members; want %d of %d", got.ID, got.Members, r.ID, r.Members)
	}
	if j, e, rd := rc.joins.Load(), rc.ensures.Load(), rc.reads.Load(); j != 0 || e != 0 || rd != 1 {
		t.Errorf("a member re-entering: %d joins, %d ensures, %d membership reads; want 0, 0, 1", j, e, rd)
	}
	got, err = n.EnterRoom(ctx, f.t, "lobby")
	if err != nil {
		t.Fatal(err)
	}
	if j := rc.joins.Load(); j != 1 {
		t.Errorf("a newcomer entering: %d joins; want 1", j)
	}
	if got.Members != r.Members+1 {
		t.Errorf("after a newcomer, room has %d members; want %d", got.Members, r.Members+1)
	}
	if ok, err := f.store.IsMember(ctx, r.ID, f.t.ID); err != nil || !ok {
		t.Errorf("IsMember(newcomer) = %v, %v; want true", ok, err)
	}
}

// TestReceiptsTogether: in a group, the first move of a read position in a
// while waits Config.ReceiptDelay, and the moves made until then go out
// with it, one event with each member's latest position; the moves within
// Config.ReceiptEvery after it go out together at its end; once a window
// passes without any, the next waits only the delay again, and alone is a
// receipt.
func TestReceiptsTogether(t *testing.T) {
	ctx := context.Background()
	const delay, every = 300 * time.Millisecond, 600 * time.Millisecond
	f := newGroupFixtureOn(t, newFixture(t, chat.Config{ReceiptDelay: delay, ReceiptEvery: every}))
	var seqs []int64
	for i := range 3 {
		m, err := f.svc.Send(ctx, f.owner, f.g.ID, "r-"+strconv.Itoa(i), "hello")
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, m.Seq)
	}
	rec := f.record(t, chat.ConvTopic(f.g.ID))
	receipts := func() []chat.Event {
		var out []chat.Event
		for _, ev := range rec.take() {
			if ev.Type == chat.EventReceipt || ev.Type == chat.EventReceipts {
				out = append(out, ev)
			}
		}
		return out
	}
	mark := func(u chat.User, seq int64) {
		t.Helper()
		if st, err := f.svc.MarkRead(ctx, u, f.g.ID, seq); err != nil || st.ReadSeq != seq {
			t.Fatalf("MarkRead(%s, %d) = %+v, %v", u.Name, seq, st, err)
		}
	}
	wait := func() []chat.Event {
		t.Helper()
		for range 100 { // at most 5 s
			if evs := receipts(); len(evs) > 0 {
				return evs
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("no receipt within 5 s")
		return nil
	}
	together := func(ps ...chat.ReadPosition) []chat.Event {
		slices.SortFunc(ps, func(a, b chat.ReadPosition) int { return cmp.Compare(a.UserID, b.UserID) })
		return []chat.Event{{Type: chat.EventReceipts, ConvID: f.g.ID, Positions: ps}}
	}

	mark(f.m, seqs[0])
	mark(f.admin, seqs[0])
	if got := receipts(); len(got) != 0 {
		t.Fatalf("first moves: %+v at once; want none until the delay ends", got)
	}
	want := together(chat.ReadPosition{UserID: f.m.ID, Seq: seqs[0]}, chat.ReadPosition{UserID: f.admin.ID, Seq: seqs[0]})
	if got := wait(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after the delay: %+v; want %+v", got, want)
	}
	mark(f.t, seqs[1])
	mark(f.m, seqs[1])
	mark(f.t, seqs[2])
	if got := receipts(); len(got) != 0 {
		t.Fatalf("moves within the window: %+v at once; want none until it ends", got)
	}
	want = together(chat.ReadPosition{UserID: f.m.ID, Seq: seqs[1]}, chat.ReadPosition{UserID: f.t.ID, Seq: seqs[2]})
	if got := wait(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after the window: %+v; want %+v", got, want)
	}
	time.Sleep(2*every + every/2) // a window with nothing ends the gathering
	if got := receipts(); len(got) != 0 {
		t.Fatalf("quiet windows: %+v; want nothing", got)
	}
	mark(f.m, seqs[2])
	if got := receipts(); len(got) != 0 {
		t.Fatalf("after quiet windows: %+v at once; want none until the delay ends", got)
	}
	want = []chat.Event{{Type: chat.EventReceipt, ConvID: f.g.ID, UserID: f.m.ID, Seq: seqs[2]}}
	if got := wait(); !reflect.DeepEqual(got, want) {
		t.Fatalf("a lone move after the delay: %+v; want %+v", got, want)
	}
}

// TestNewConvsPerHour: a user makes at most Config.NewConvsPerHour rooms
// and groups an hour; past it they are told to wait, and can still enter
// a room that exists. An hour later they make more.
func TestNewConvsPerHour(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{NewConvsPerHour: 3})
	u, _ := f.signIn(t, "a@example.com", "A")
	f.enter(t, u, "one")
	f.enter(t, u, "two")
	if _, err := f.svc.CreateGroup(ctx, u, "Crew", "", 0); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.EnterRoom(ctx, u, "three")
	wantError(t, "a fourth new room", err, chat.ErrRateLimited, chat.CodeRateLimited, "")
	_, err = f.svc.CreateGroup(ctx, u, "Band", "", 0)
	wantError(t, "a fourth new group", err, chat.ErrRateLimited, chat.CodeRateLimited, "")
	if _, err := f.svc.EnterRoom(ctx, u, "One"); err != nil {
		t.Errorf("entering a room that exists past the limit: %v", err)
	}
	other, _ := f.signIn(t, "b@example.com", "B")
	f.enter(t, other, "four") // another user's own count
	f.clock.Advance(time.Hour)
	f.enter(t, u, "three")
}

// TestNewConvRefusedNotCounted: a group the store refuses to make (its
// name is taken) is not counted against Config.NewConvsPerHour.
func TestNewConvRefusedNotCounted(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{NewConvsPerHour: 2})
	u, _ := f.signIn(t, "a@example.com", "A")
	if _, err := f.svc.CreateGroup(ctx, u, "Crew", "", 0); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.CreateGroup(ctx, u, "crew", "", 0)
	wantError(t, "a group of a taken name", err, chat.ErrConflict, chat.CodeNameTaken, "")
	if _, err := f.svc.EnterRoom(ctx, u, "one"); err != nil {
		t.Errorf("a second new conversation after a refused one: %v", err)
	}
}

// TestRemoveWhileMadeOwner: an admin who leaves while the owner makes them
// the owner, or an admin the owner removes while (in another tab) making
// them the owner, must not take the ownership out of the group with them:
// a group always has an owner, who leaves only after transferring.
func TestRemoveWhileMadeOwner(t *testing.T) {
	ctx := context.Background()
	for _, self := range []bool{true, false} {
		t.Run(fmt.Sprintf("self=%v", self), func(t *testing.T) {
			f := newGroupFixture(t)
			n := f.meanwhile(t, func() error { return f.svc.TransferGroup(ctx, f.owner, f.g.ID, f.ta.ID) })
			by := f.owner
			if self {
				by = f.ta
			}
			err := n.RemoveGroupMember(ctx, by, f.g.ID, f.ta.ID)
			if self {
				wantError(t, "the new owner leaving", err, chat.ErrConflict, chat.CodeOwnerMustLeave, "")
			} else {
				wantError(t, "removing the new owner", err, chat.ErrForbidden, chat.CodeForbidden, "")
			}
			g, err := f.store.Group(ctx, f.g.ID)
			if err != nil {
				t.Fatal(err)
			}
			if g.OwnerID != f.ta.ID {
				t.Errorf("after the transfer and the removal, the group's owner is %d; want %d (TargetAdmin)", g.OwnerID, f.ta.ID)
			}
		})
	}
}

// TestMissedRevokes: the events Missed gives a hub that lost them mark who
// lost access with each, as the live ones do: the removed member of a
// removal, and the member who left of a group's leave, so that the hub
// delivers nothing of the group after it to them. A room's leave revokes
// nothing (rooms are public), live or missed.
func TestMissedRevokes(t *testing.T) {
	ctx := context.Background()
	f := newGroupFixture(t)
	r := f.enter(t, f.m, "lobby")
	f.enter(t, f.t, "lobby")
	if err := f.svc.LeaveRoom(ctx, f.m, r.ID); err != nil {
		t.Fatal(err)
	}
	live := f.record(t, chat.ConvTopic(f.g.ID))
	if err := f.svc.RemoveGroupMember(ctx, f.owner, f.g.ID, f.t.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.RemoveGroupMember(ctx, f.m, f.g.ID, f.m.ID); err != nil {
		t.Fatal(err)
	}
	type revoke struct {
		Kind   chat.MessageKind
		Revoke int64
	}
	var want []revoke
	for _, ev := range live.take() {
		want = append(want, revoke{ev.Message.Kind, ev.Revoke})
	}
	if len(want) != 2 || want[1].Revoke != f.m.ID {
		t.Fatalf("live events of the removal and the leave = %+v; want the second to revoke %d", want, f.m.ID)
	}
	evs, err := f.svc.Missed(ctx, chat.ConvTopic(f.g.ID), f.g.LastSeq)
	if err != nil {
		t.Fatal(err)
	}
	var got []revoke
	for _, ev := range evs[len(evs)-2:] {
		got = append(got, revoke{ev.Message.Kind, ev.Revoke})
	}
	if !slices.Equal(got, want) {
		t.Errorf("Missed(group) = %+v; want %+v, as published live", got, want)
	}
	evs, err = f.svc.Missed(ctx, chat.ConvTopic(r.ID), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Revoke != 0 {
			t.Errorf("Missed(room) %s #%d revokes %d; want nothing revoked in a room", ev.Message.Kind, ev.Message.Seq, ev.Revoke)
		}
	}
}

// TestRemoveWhileRolesChange: an admin's removal of a member is refused
// if, by the time it is made, the owner has demoted the admin or promoted
// the member: the roles that count are those when the removal is made.
func TestRemoveWhileRolesChange(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		user func(f *groupFixture) chat.User // whose role the owner changes
		role chat.Role
	}{
		{"admin demoted", func(f *groupFixture) chat.User { return f.admin }, chat.RoleMember},
		{"target promoted", func(f *groupFixture) chat.User { return f.t }, chat.RoleAdmin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newGroupFixture(t)
			n := f.meanwhile(t, func() error { return f.svc.SetGroupRole(ctx, f.owner, f.g.ID, tc.user(f).ID, tc.role) })
			err := n.RemoveGroupMember(ctx, f.admin, f.g.ID, f.t.ID)
			wantError(t, "Admin removing Target", err, chat.ErrForbidden, chat.CodeForbidden, "")
			if role, err := f.store.GroupRole(ctx, f.g.ID, f.t.ID); err != nil || role == "" {
				t.Errorf("after the refused removal, Target's role = %q, %v; want a member still", role, err)
			}
		})
	}
}

// TestOwnerActsAfterTransfer: an owner who transfers the group (in one
// tab) while promoting a member or transferring it again (in another) is
// refused the second as an admin is, with forbidden: the owner's rights
// end with the transfer.
func TestOwnerActsAfterTransfer(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		do   func(n *chat.Service, f *groupFixture) error
	}{
		{"promote", func(n *chat.Service, f *groupFixture) error {
			return n.SetGroupRole(ctx, f.owner, f.g.ID, f.m.ID, chat.RoleAdmin)
		}},
		{"demote the new owner", func(n *chat.Service, f *groupFixture) error {
			return n.SetGroupRole(ctx, f.owner, f.g.ID, f.admin.ID, chat.RoleMember)
		}},
		{"transfer again", func(n *chat.Service, f *groupFixture) error {
			return n.TransferGroup(ctx, f.owner, f.g.ID, f.m.ID)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newGroupFixture(t)
			n := f.meanwhile(t, func() error { return f.svc.TransferGroup(ctx, f.owner, f.g.ID, f.admin.ID) })
			wantError(t, "the former owner's "+tc.name, tc.do(n, f), chat.ErrForbidden, chat.CodeForbidden, "")
			want := map[int64]chat.Role{f.owner.ID: chat.RoleAdmin, f.admin.ID: chat.RoleOwner, f.m.ID: chat.RoleMember}
			for id, role := range want {
				if got, err := f.store.GroupRole(ctx, f.g.ID, id); err != nil || got != role {
					t.Errorf("GroupRole(%d) = %q, %v; want %q", id, got, err, role)
				}
			}
		})
	}
}

// TestDeleteAfterTransfer: an owner who transfers the group (in one tab)
// while deleting it (in another) no longer owns it when the deletion is
// made, and may not delete the new owner's group.
func TestDeleteAfterTransfer(t *testing.T) {
	ctx := context.Background()
	f := newGroupFixture(t)
	n := f.meanwhile(t, func() error { return f.svc.TransferGroup(ctx, f.owner, f.g.ID, f.admin.ID) })
	wantError(t, "the former owner's DeleteGroup", n.DeleteGroup(ctx, f.owner, f.g.ID), chat.ErrForbidden, chat.CodeForbidden, "")
	if g, err := f.store.Group(ctx, f.g.ID); err != nil || g.OwnerID != f.admin.ID {
		t.Errorf("Group after the refused deletion = %+v, %v; want it owned by Admin", g, err)
	}
}

// TestDeleteDeletedByNonOwner: once the owner has deleted the group, the
// owner deleting it again (a retry whose answer was lost) gets success,
// but its former members, whose logs show the deletion too, get the
// not_found of any group that is not theirs: none of them deleted it.
func TestDeleteDeletedByNonOwner(t *testing.T) {
	ctx := context.Background()
	f := newGroupFixture(t)
	if err := f.svc.DeleteGroup(ctx, f.owner, f.g.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.DeleteGroup(ctx, f.owner, f.g.ID); err != nil {
		t.Errorf("the owner's DeleteGroup again: %v; want success", err)
	}
	for _, u := range []chat.User{f.admin, f.m, f.out} {
		wantError(t, u.Name+"'s DeleteGroup of the deleted group", f.svc.DeleteGroup(ctx, u, f.g.ID), chat.ErrNotFound, chat.CodeNotFound, "")
	}
}

// TestChangeWhileDemoted: an admin demoted as it adds a member or renames
// the group, and an owner who transferred the group as it changes the
// member cap, are refused: the role that counts is the one when the
// change is made.
func TestChangeWhileDemoted(t *testing.T) {
	ctx := context.Background()
	name, cap50 := "Renamed", 50
	demote := func(f *groupFixture) error {
		return f.svc.SetGroupRole(ctx, f.owner, f.g.ID, f.admin.ID, chat.RoleMember)
	}
	transfer := func(f *groupFixture) error { return f.svc.TransferGroup(ctx, f.owner, f.g.ID, f.admin.ID) }
	for _, tc := range []struct {
		name   string
		meant  func(f *groupFixture) error // the owner's change, made in between
		change func(n *chat.Service, f *groupFixture) error
		check  func(t *testing.T, f *groupFixture)
	}{
		{"add", demote,
			func(n *chat.Service, f *groupFixture) error {
				_, err := n.AddGroupMember(ctx, f.admin, f.g.ID, f.out.ID)
				return err
			},
			func(t *testing.T, f *groupFixture) {
				if role, err := f.store.GroupRole(ctx, f.g.ID, f.out.ID); err != nil || role != "" {
					t.Errorf("after the refused add, Out's role = %q, %v; want none", role, err)
				}
			}},
		{"rename", demote,
			func(n *chat.Service, f *groupFixture) error {
				_, err := n.UpdateGroup(ctx, f.admin, f.g.ID, chat.GroupUpdate{Name: &name})
				return err
			},
			func(t *testing.T, f *groupFixture) {
				if g, err := f.store.Group(ctx, f.g.ID); err != nil || g.Name != f.g.Name {
					t.Errorf("after the refused rename, the group is %q, %v; want %q", g.Name, err, f.g.Name)
				}
			}},
		{"cap", transfer,
			func(n *chat.Service, f *groupFixture) error {
				_, err := n.UpdateGroup(ctx, f.owner, f.g.ID, chat.GroupUpdate{MaxMembers: &cap50})
				return err
			},
			func(t *testing.T, f *groupFixture) {
				if g, err := f.store.Group(ctx, f.g.ID); err != nil || g.MaxMembers == 50 {
					t.Errorf("after the refused cap change, the cap is %d, %v; want it unchanged", g.MaxMembers, err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newGroupFixture(t)
			n := f.meanwhile(t, func() error { return tc.meant(f) })
			wantError(t, tc.name, tc.change(n, f), chat.ErrForbidden, chat.CodeForbidden, "")
			tc.check(t, f)
		})
	}
}

// groupHookStore runs before, once, when a group is first changed through
// it (members, roles, ownership, settings, deletion), before the store
// changes anything: what another request commits between the Service's
// role checks and the store's transaction.
type groupHookStore struct {
	chat.Store
	before func()
}

func (h *groupHookStore) hook() {
	if h.before != nil {
		h.before()
		h.before = nil
	}
}

func (h *groupHookStore) AddGroupMember(ctx context.Context, id, userID, by int64, at time.Time, added chat.Event) (chat.Message, chat.Event, error) {
	h.hook()
	return h.Store.AddGroupMember(ctx, id, userID, by, at, added)
}

func (h *groupHookStore) RemoveGroupMember(ctx context.Context, id, userID, by int64, at time.Time, removed chat.Event) (chat.Message, chat.Event, error) {
	h.hook()
	return h.Store.RemoveGroupMember(ctx, id, userID, by, at, removed)
}

func (h *groupHookStore) SetGroupRole(ctx context.Context, id, userID int64, role chat.Role, by int64, at time.Time) (chat.Message, bool, error) {
	h.hook()
	return h.Store.SetGroupRole(ctx, id, userID, role, by, at)
}

func (h *groupHookStore) TransferGroup(ctx context.Context, id, from, to int64, at time.Time) (chat.Message, error) {
	h.hook()
	return h.Store.TransferGroup(ctx, id, from, to, at)
}

func (h *groupHookStore) UpdateGroup(ctx context.Context, id int64, up chat.GroupUpdate, by int64, at time.Time) ([]chat.Message, error) {
	h.hook()
	return h.Store.UpdateGroup(ctx, id, up, by, at)
}

func (h *groupHookStore) DeleteGroup(ctx context.Context, id, by int64, at time.Time, removed chat.Event) ([]chat.UserEvent, error) {
	h.hook()
	return h.Store.DeleteGroup(ctx, id, by, at, removed)
}

// meanwhile is another node's Service whose first change to a group
// runs change first (groupHookStore).
func (f *groupFixture) meanwhile(t *testing.T, change func() error) *chat.Service {
	return f.nodeOn(&groupHookStore{Store: f.store, before: func() {
		if err := change(); err != nil {
			t.Errorf("the change made meanwhile: %v", err)
		}
	}})
}

// onBothStores runs fn, as subtest name, with a fixture on SQLite and,
// when PARLEY_TEST_POSTGRES names one, on PostgreSQL.
func onBothStores(t *testing.T, name string, fn func(t *testing.T, f *fixture)) {
	t.Run(name+"/sqlite", func(t *testing.T) { fn(t, newFixture(t, chat.Config{})) })
	t.Run(name+"/postgres", func(t *testing.T) { fn(t, postgresFixture(t)) })
}

// TestAddWhileBlocked: an add is refused, and writes nothing, if by the
// time it is made either user has blocked the other, though neither had
// when the Service checked: the blocks that count are those when the add
// is made, as the roles are. On SQLite and, when PARLEY_TEST_POSTGRES
// names one, PostgreSQL.
func TestAddWhileBlocked(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		blocker func(f *groupFixture) (chat.User, chat.User)
	}{
		{"invitee blocks", func(f *groupFixture) (chat.User, chat.User) { return f.out, f.owner }},
		{"inviter blocks", func(f *groupFixture) (chat.User, chat.User) { return f.owner, f.out }},
	} {
		onBothStores(t, tc.name, func(t *testing.T, base *fixture) {
			f := newGroupFixtureOn(t, base)
			var before addState // after the block, which may log a contact event
			n := f.meanwhile(t, func() error {
				a, b := tc.blocker(f)
				err := f.svc.Block(ctx, a, b.ID)
				before = f.addState(t, f.owner, f.g.ID, f.out)
				return err
			})
			_, err := n.AddGroupMember(ctx, f.owner, f.g.ID, f.out.ID)
			wantError(t, "adding a user blocked meanwhile", err, chat.ErrForbidden, chat.CodeRefused, "")
			if after := f.addState(t, f.owner, f.g.ID, f.out); after != before {
				t.Errorf("refused, and yet the group and the user's events went from %+v to %+v", before, after)
			}
		})
	}
}

// TestRateLimitWaitReadable: a refusal past a limit tells the wait as a
// person reads it. It said Go's duration ("try again in 1h0m0s", "in
// 47m48s"), which the web app shows as it is.
func TestRateLimitWaitReadable(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{NewConvsPerHour: 1})
	u, _ := f.signIn(t, "a@example.com", "A")
	f.enter(t, u, "one")
	var at time.Duration
	for _, tt := range []struct {
		after time.Duration // since the room was made
		want  string
	}{
		{0, "try again in 1 hour"},
		{12*time.Minute + 12*time.Second, "try again in 48 minutes"},
		{59*time.Minute + 30*time.Second, "try again in 30 seconds"},
		{59*time.Minute + 59*time.Second, "try again in 1 second"},
	} {
		f.clock.Advance(tt.after - at)
		at = tt.after
		_, err := f.svc.EnterRoom(ctx, u, "two")
		if e := chat.AsError(err); e == nil || !strings.HasSuffix(e.Message, tt.want) {
			t.Errorf("a new room refused %s after the first: %v; want it to end %q", tt.after, err, tt.want)
		}
	}
}

// TestChangeOfDeletedGroup: a removal, a role change or a transfer whose
// group the owner deletes between the Service's role check and the
// store's change gets not_found, as for any group that is not there
// (docs/protocol.md), not not_member: the user it names was not the
// trouble. On SQLite and, when PARLEY_TEST_POSTGRES names one,
// PostgreSQL.
func TestChangeOfDeletedGroup(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		by     func(f *groupFixture) chat.User
		change func(n *chat.Service, f *groupFixture, by chat.User) error
	}{
		{"remove", func(f *groupFixture) chat.User { return f.owner }, func(n *chat.Service, f *groupFixture, by chat.User) error {
			return n.RemoveGroupMember(ctx, by, f.g.ID, f.m.ID)
		}},
		{"remove by admin", func(f *groupFixture) chat.User { return f.admin }, func(n *chat.Service, f *groupFixture, by chat.User) error {
			return n.RemoveGroupMember(ctx, by, f.g.ID, f.m.ID)
		}},
		{"role", func(f *groupFixture) chat.User { return f.owner }, func(n *chat.Service, f *groupFixture, by chat.User) error {
			return n.SetGroupRole(ctx, by, f.g.ID, f.m.ID, chat.RoleAdmin)
		}},
		{"transfer", func(f *groupFixture) chat.User { return f.owner }, func(n *chat.Service, f *groupFixture, by chat.User) error {
			return n.TransferGroup(ctx, by, f.g.ID, f.m.ID)
		}},
	} {
		onBothStores(t, tc.name, func(t *testing.T, base *fixture) {
			f := newGroupFixtureOn(t, base)
			n := f.meanwhile(t, func() error { return f.svc.DeleteGroup(ctx, f.owner, f.g.ID) })
			wantError(t, tc.name+" in a group deleted meanwhile", tc.change(n, f, tc.by(f)), chat.ErrNotFound, chat.CodeNotFound, "")
		})
	}
}
