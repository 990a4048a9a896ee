package chat_test

import (
	"context"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
	"github.com/parley-chat/parley/internal/inmem"
)

// lostWriteStore makes the next membership or group change, once lose is
// set, commit and then answer errLostCommit, as a store does that lost
// its connection after sending COMMIT.
type lostWriteStore struct {
	chat.Store
	lose atomic.Bool
	fail atomic.Bool // the next change fails before it is made
}

func (s *lostWriteStore) lost(err error) error {
	if err == nil && s.lose.CompareAndSwap(true, false) {
		return errLostCommit
	}
	return err
}

// failed reports whether the next change must fail unmade, and then
// fails no more.
func (s *lostWriteStore) failed() bool { return s.fail.CompareAndSwap(true, false) }

func (s *lostWriteStore) JoinRoom(ctx context.Context, roomID, userID int64, at time.Time, announce bool) (chat.Message, bool, error) {
	if s.failed() {
		return chat.Message{}, false, errLostCommit
	}
	m, joined, err := s.Store.JoinRoom(ctx, roomID, userID, at, announce)
	if err = s.lost(err); err != nil {
		return chat.Message{}, false, err
	}
	return m, joined, nil
}

func (s *lostWriteStore) LeaveRoom(ctx context.Context, roomID, userID int64, at time.Time, announce bool, removed chat.Event) (chat.Message, chat.Event, bool, error) {
	m, logged, left, err := s.Store.LeaveRoom(ctx, roomID, userID, at, announce, removed)
	if err = s.lost(err); err != nil {
		return chat.Message{}, chat.Event{}, false, err
	}
	return m, logged, left, nil
}

func (s *lostWriteStore) AddGroupMember(ctx context.Context, id, userID, by int64, at time.Time, added chat.Event) (chat.Message, chat.Event, error) {
	m, logged, err := s.Store.AddGroupMember(ctx, id, userID, by, at, added)
	if err = s.lost(err); err != nil {
		return chat.Message{}, chat.Event{}, err
	}
	return m, logged, nil
}

func (s *lostWriteStore) RemoveGroupMember(ctx context.Context, id, userID, by int64, at time.Time, removed chat.Event) (chat.Message, chat.Event, error) {
	m, logged, err := s.Store.RemoveGroupMember(ctx, id, userID, by, at, removed)
	if err = s.lost(err); err != nil {
		return chat.Message{}, chat.Event{}, err
	}
	return m, logged, nil
}

func (s *lostWriteStore) SetGroupRole(ctx context.Context, id, userID int64, role chat.Role, by int64, at time.Time) (chat.Message, bool, error) {
	m, changed, err := s.Store.SetGroupRole(ctx, id, userID, role, by, at)
	if err = s.lost(err); err != nil {
		return chat.Message{}, false, err
	}
	return m, changed, nil
}

func (s *lostWriteStore) TransferGroup(ctx context.Context, id, from, to int64, at time.Time) (chat.Message, error) {
	m, err := s.Store.TransferGroup(ctx, id, from, to, at)
	if err = s.lost(err); err != nil {
		return chat.Message{}, err
	}
	return m, nil
}

func (s *lostWriteStore) UpdateGroup(ctx context.Context, id int64, up chat.GroupUpdate, by int64, at time.Time) ([]chat.Message, error) {
	if s.failed() {
		return nil, errLostCommit
	}
	ms, err := s.Store.UpdateGroup(ctx, id, up, by, at)
	if err = s.lost(err); err != nil {
		return nil, err
	}
	return ms, nil
}

// TestLostWritePublishes: a change that appends a message of its own (a
// join, a leave, a group event) or logs a user event, whose commit went
// through but whose caller got an error, is not published by the call
// that made it, nor by a retry, which finds the change made. The other
// members' clients must still get it live, not at the conversation's
// next message, which in a quiet group may be long in coming.
func TestLostWritePublishes(t *testing.T) {
	ctx := context.Background()
	db := &lostWriteStore{Store: newFixture(t, chat.Config{}).store}
	f := lostFixture(t, db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	bob, _ := f.signIn(t, "bob@example.com", "Bob")
	h := lostHub(t, f)

	// client registers a client of u, following conversation id, if not 0.
	client := func(t *testing.T, u chat.User, id int64) *hub.Client {
		t.Helper()
		c, err := h.Register(u.ID, 0, 64, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Unregister(c) })
		if id == 0 {
			return c
		}
		mark, err := f.svc.CheckMemberAt(ctx, u, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.SubscribeMember(c, chat.ConvTopic(id), mark); err != nil {
			t.Fatal(err)
		}
		h.Seen(chat.ConvTopic(id), mark.Seq)
		return c
	}
	// lose makes do fail once, having committed, and then calls it again.
	lose := func(t *testing.T, what string, do func() error) {
		t.Helper()
		db.lose.Store(true)
		if err := do(); err == nil {
			t.Fatalf("%s = nil; want the store's error", what)
		}
		do() // a retry: it finds the change made, and may say so
	}
	// want waits until an event that is reaches c, once.
	want := func(t *testing.T, c *hub.Client, what string, is func(chat.Event) bool) {
		t.Helper()
		got := 0
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) && got == 0 {
			for _, it := range c.Next(nil) {
				if is(it.Event) {
					got++
				}
			}
			time.Sleep(time.Millisecond)
		}
		if got == 0 {
			t.Errorf("%s never reached the client", what)
			return
		}
		time.Sleep(100 * time.Millisecond)
		for _, it := range c.Next(nil) {
			if is(it.Event) {
				t.Errorf("%s reached the client twice", what)
			}
		}
	}
	message := func(id int64, kind chat.MessageKind, sender int64) func(chat.Event) bool {
		return func(ev chat.Event) bool {
			m := ev.Message
			return ev.Type == chat.EventMessage && m != nil && m.ConvID == id && m.Kind == kind && m.SenderID == sender
		}
	}

	t.Run("room", func(t *testing.T) {
		r := f.enter(t, grace, "lobby")
		c := client(t, grace, r.ID)
		other := client(t, ada, 0) // another of Ada's tabs
		lose(t, "EnterRoom", func() error { _, err := f.svc.EnterRoom(ctx, ada, "lobby"); return err })
		want(t, c, "Ada's join", message(r.ID, chat.KindJoin, ada.ID))
		want(t, other, "Ada's conversation", func(ev chat.Event) bool {
			return ev.Type == chat.EventConversation && ev.ConvID == r.ID && ev.Message != nil && ev.Message.Kind == chat.KindJoin
		})

		lose(t, "LeaveRoom", func() error { return f.svc.LeaveRoom(ctx, ada, r.ID) })
		want(t, c, "Ada's leave", message(r.ID, chat.KindLeave, ada.ID))
		want(t, other, "Ada's removed", func(ev chat.Event) bool { return ev.Type == chat.EventRemoved && ev.ConvID == r.ID })
		lose(t, "EnterRoom again", func() error { _, err := f.svc.EnterRoom(ctx, ada, "lobby"); return err })
		want(t, c, "Ada's second join", message(r.ID, chat.KindJoin, ada.ID))
		want(t, other, "Ada's second conversation", func(ev chat.Event) bool {
			return ev.Type == chat.EventConversation && ev.ConvID == r.ID && ev.UserSeq > 0 // logged, after a removed
		})
	})

	t.Run("group", func(t *testing.T) {
		g, err := f.svc.CreateGroup(ctx, ada, "team", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.AddGroupMember(ctx, ada, g.ID, grace.ID); err != nil {
			t.Fatal(err)
		}
		c := client(t, grace, g.ID)
		bobs := client(t, bob, 0)
		lose(t, "AddGroupMember", func() error { _, err := f.svc.AddGroupMember(ctx, ada, g.ID, bob.ID); return err })
		want(t, c, "Bob's addition", message(g.ID, chat.KindAdded, ada.ID))
		want(t, bobs, "Bob's conversation", func(ev chat.Event) bool { return ev.Type == chat.EventConversation && ev.ConvID == g.ID })

		lose(t, "SetGroupRole", func() error { return f.svc.SetGroupRole(ctx, ada, g.ID, grace.ID, chat.RoleAdmin) })
		want(t, c, "Grace's promotion", message(g.ID, chat.KindAdminGranted, ada.ID))

		name := "crew"
		lose(t, "UpdateGroup", func() error { _, err := f.svc.UpdateGroup(ctx, ada, g.ID, chat.GroupUpdate{Name: &name}); return err })
		want(t, c, "the renaming", message(g.ID, chat.KindRenamed, ada.ID))

		lose(t, "RemoveGroupMember", func() error { return f.svc.RemoveGroupMember(ctx, ada, g.ID, bob.ID) })
		want(t, c, "Bob's removal", message(g.ID, chat.KindRemoved, ada.ID))
		want(t, bobs, "Bob's removed", func(ev chat.Event) bool { return ev.Type == chat.EventRemoved && ev.ConvID == g.ID })

		lose(t, "TransferGroup", func() error { return f.svc.TransferGroup(ctx, ada, g.ID, grace.ID) })
		want(t, c, "the transfer", message(g.ID, chat.KindOwnerTransferred, ada.ID))
	})
}

// TestFailedWritePublishesNothing: a change that failed unmade, with an
// error that does not say so, is looked for in the store as one that was
// made; what is found there, delivered already, is not delivered again.
func TestFailedWritePublishesNothing(t *testing.T) {
	ctx := context.Background()
	db := &lostWriteStore{Store: newFixture(t, chat.Config{}).store}
	f := lostFixture(t, db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	h := lostHub(t, f)
	g, err := f.svc.CreateGroup(ctx, ada, "team", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AddGroupMember(ctx, ada, g.ID, grace.ID); err != nil {
		t.Fatal(err)
	}
	c, err := h.Register(grace.ID, 0, 64, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Unregister(c) })
	mark, err := f.svc.CheckMemberAt(ctx, grace, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.SubscribeMember(c, chat.ConvTopic(g.ID), mark); err != nil {
		t.Fatal(err)
	}
	h.Seen(chat.ConvTopic(g.ID), mark.Seq)
	rec := f.record(t, chat.ConvTopic(g.ID))
	name := "crew"
	db.fail.Store(true)
	if _, err := f.svc.UpdateGroup(ctx, ada, g.ID, chat.GroupUpdate{Name: &name}); err == nil {
		t.Fatal("UpdateGroup = nil; want the store's error")
	}
	var evs []chat.Event
	for deadline := time.Now().Add(5 * time.Second); len(evs) == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		evs = rec.take()
	}
	if len(evs) != 1 || !evs[0].Repeat || evs[0].Message == nil || evs[0].Message.Kind != chat.KindAdded {
		t.Fatalf("published %+v; want the group's newest message again, marked Repeat", evs)
	}
	time.Sleep(50 * time.Millisecond)
	if its := c.Next(nil); len(its) != 0 {
		t.Errorf("Grace's client got %d events; want none (the added message, again)", len(its))
		for _, it := range its {
			t.Logf("%+v", it.Event)
		}
	}
}

// TestCloseStopsRepublish: a republish due when the Service closes is not
// made.
func TestCloseStopsRepublish(t *testing.T) {
	ctx := context.Background()
	db := &lostWriteStore{Store: newFixture(t, chat.Config{}).store}
	f := newFixtureOn(t, chat.Config{RepublishWait: 50 * time.Millisecond}, inmem.NewPresence(), db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	r := f.enter(t, grace, "lobby")
	rec := f.record(t, chat.ConvTopic(r.ID))
	db.lose.Store(true)
	if _, err := f.svc.EnterRoom(ctx, ada, "lobby"); err == nil {
		t.Fatal("EnterRoom = nil; want the store's error")
	}
	f.svc.Close()
	time.Sleep(200 * time.Millisecond)
	if evs := rec.take(); len(evs) != 0 {
		t.Errorf("published %d events after Close; want none", len(evs))
	}
}

// appendHookStore is a lostWriteStore that calls before, once set, ahead
// of logging a user event, as a change made meanwhile by another request
// would come first.
type appendHookStore struct {
	*lostWriteStore
	before atomic.Pointer[func(userID int64, ev chat.Event)]
}

func (s *appendHookStore) AppendUserEvent(ctx context.Context, userID int64, ev chat.Event, at time.Time) (chat.Event, error) {
	if f := s.before.Swap(nil); f != nil {
		(*f)(userID, ev)
	}
	return s.lostWriteStore.AppendUserEvent(ctx, userID, ev, at)
}

func (s *appendHookStore) AppendMemberEvent(ctx context.Context, userID, convID int64, ev chat.Event, at time.Time) (chat.Event, bool, error) {
	if f := s.before.Swap(nil); f != nil {
		(*f)(userID, ev)
	}
	return s.lostWriteStore.AppendMemberEvent(ctx, userID, convID, ev, at)
}

// loseRacing makes change fail once, having committed, and runs meanwhile
// (a change on another device) when its republish is about to log its
// event; it returns once the republish, and any follow, is done.
func loseRacing(t *testing.T, db *appendHookStore, change, meanwhile func() error) {
	t.Helper()
	done := make(chan error, 1)
	hook := func(int64, chat.Event) { done <- meanwhile() }
	db.before.Store(&hook)
	db.lose.Store(true)
	if err := change(); err == nil {
		t.Fatal("the change = nil; want the store's error")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the change meanwhile = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the change was never republished")
	}
	time.Sleep(200 * time.Millisecond) // the republish, and any follow, done
}

// TestRepublishAfterLaterRemoval: an entry into a room, or an addition to
// a group, whose outcome was unknown is republished, and the user leaves
// on another device meanwhile. The republish of the entry finds the user a
// member, and the leave comes before it logs the event that tells their
// clients: it is neither logged nor published, as it would announce a
// membership that has ended, after the removed that ended it. The addition was logged
// in its transaction, before the removal: republished after it, it is not
// taken for a membership newer than the removal (a hub would follow the
// group for a user who is no member).
func TestRepublishAfterLaterRemoval(t *testing.T) {
	ctx := context.Background()
	db := &appendHookStore{lostWriteStore: &lostWriteStore{Store: newFixture(t, chat.Config{}).store}}
	f := lostFixture(t, db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	bob, _ := f.signIn(t, "bob@example.com", "Bob")
	h := lostHub(t, f)
	bobs, err := h.Register(bob.ID, 0, 64, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Unregister(bobs) })

	// run runs race, a change that fails having committed and Bob's
	// leave on another device. Then Ada writes to conversation id.
	run := func(t *testing.T, id int64, race func(t *testing.T)) {
		t.Helper()
		race(t)
		if _, err := f.svc.Send(ctx, ada, id, "c"+strconv.FormatInt(id, 10), "for members only"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		removed := false
		for _, it := range bobs.Next(nil) {
			switch ev := it.Event; {
			case ev.Type == chat.EventRemoved && ev.ConvID == id:
				removed = true
			case ev.Type == chat.EventMessage && ev.ConvID == id && ev.Message.Kind == chat.KindText:
				// Ada's, after the leave. The leave itself may come: a
				// republish that ran before it made Bob a member
				// meanwhile, and a member gets the message that ends
				// their membership (docs/protocol.md, removed).
				t.Errorf("Bob, no member, got message %d of conversation %d (%s)", ev.Message.Seq, id, ev.Message.Kind)
			case ev.Type == chat.EventConversation && ev.ConvID == id && removed:
				t.Errorf("Bob's clients got the conversation event %d of %d after its removed", ev.UserSeq, id)
			}
		}
		if !removed {
			t.Errorf("Bob's clients never got the removed of %d", id)
		}
	}

	t.Run("group", func(t *testing.T) {
		g, err := f.svc.CreateGroup(ctx, ada, "team", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		run(t, g.ID, func(t *testing.T) {
			db.lose.Store(true)
			if _, err := f.svc.AddGroupMember(ctx, ada, g.ID, bob.ID); err == nil {
				t.Fatal("AddGroupMember = nil; want the store's error")
			}
			if err := f.svc.RemoveGroupMember(ctx, bob, g.ID, bob.ID); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond) // the republish, and any follow, done
		})
	})
	t.Run("room", func(t *testing.T) {
		r := f.enter(t, ada, "lobby")
		// A first entry is not logged, nor told of again after a lost
		// commit by a logged event: one after a leave is.
		f.enter(t, bob, "lobby")
		if err := f.svc.LeaveRoom(ctx, bob, r.ID); err != nil {
			t.Fatal(err)
		}
		bobs.Next(nil)
		run(t, r.ID, func(t *testing.T) {
			loseRacing(t, db,
				func() error { _, err := f.svc.EnterRoom(ctx, bob, "lobby"); return err },
				func() error { return f.svc.LeaveRoom(ctx, bob, r.ID) })
		})
	})
}

// TestUnpublishedMemberEventHoldsNothing: a republished entry into a room
// whose membership ended before it was logged is neither logged nor
// published (TestRepublishAfterLaterRemoval); nothing of it may hold the
// user's next logged event back in a hub, waiting for a number.
func TestUnpublishedMemberEventHoldsNothing(t *testing.T) {
	ctx := context.Background()
	db := &appendHookStore{lostWriteStore: &lostWriteStore{Store: newFixture(t, chat.Config{}).store}}
	f := lostFixture(t, db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	bob, _ := f.signIn(t, "bob@example.com", "Bob")
	bobs := userClient(t, lostHub(t, f), bob)
	// A first entry is not logged, nor republished as a logged event: one
	// after a leave is.
	r := f.enter(t, bob, "lobby")
	if err := f.svc.LeaveRoom(ctx, bob, r.ID); err != nil {
		t.Fatal(err)
	}
	loseRacing(t, db,
		func() error { _, err := f.svc.EnterRoom(ctx, bob, "lobby"); return err },
		func() error { return f.svc.LeaveRoom(ctx, bob, r.ID) })
	bobs.Next(nil)

	if _, err := f.svc.RequestFriend(ctx, ada, bob.ID); err != nil {
		t.Fatal(err)
	}
	// The in-process broker delivers as it publishes: what the hub does
	// not hold back is queued already.
	var got []chat.EventType
	for _, it := range bobs.Next(nil) {
		got = append(got, it.Event.Type)
	}
	if !slices.Contains(got, chat.EventContact) {
		t.Errorf("Bob's clients got %v as Ada asked him to be her friend; want %s at once", got, chat.EventContact)
	}
}

// TestRemovedBeforeAdditionPublished: Bob is removed from a group by
// another request between his addition's commit and its publish. His
// event log, which a device replays, and his connections must have the
// addition before the removal that ended it: the group is gone from his
// list, and nothing of it reaches him.
func TestRemovedBeforeAdditionPublished(t *testing.T) {
	ctx := context.Background()
	f, db, h, ada, bob := newCommitRace(t)
	adas, bobs := userClient(t, h, ada), userClient(t, h, bob)
	g, err := f.svc.CreateGroup(ctx, ada, "team", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Subscribe(adas, chat.ConvTopic(g.ID)); err != nil {
		t.Fatal(err)
	}
	primeUserTopic(t, f, ada, bob, bobs)
	hook := func(int64) {
		if err := f.svc.RemoveGroupMember(ctx, ada, g.ID, bob.ID); err != nil {
			t.Errorf("RemoveGroupMember = %v", err)
		}
	}
	db.after.Store(&hook)
	if _, err := f.svc.AddGroupMember(ctx, ada, g.ID, bob.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // any follow done
	if _, err := f.svc.Send(ctx, ada, g.ID, "c1", "for members only"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)

	want := []chat.EventType{chat.EventConversation, chat.EventRemoved}
	logged, got := loggedAndGot(t, f, bob, bobs)
	if got := membershipOf(logged, g.ID); !slices.Equal(got, want) {
		t.Errorf("Bob's event log has %v about the group; want %v", got, want)
	}
	for _, ev := range got {
		if ev.Type == chat.EventMessage && ev.ConvID == g.ID && ev.Message.Kind == chat.KindText {
			t.Errorf("Bob, no member, got message %d of the group", ev.Message.Seq)
		}
	}
	if got := membershipOf(got, g.ID); !slices.Equal(got, want) {
		t.Errorf("Bob's clients got %v about the group; want %v", got, want)
	}
	if h.Follows(bobs, chat.ConvTopic(g.ID)) {
		t.Errorf("Follows(Bob's connection, the group) = true; want false")
	}
}

// TestLeftBeforeEntryPublished: Bob, who left a room before, enters it
// again, and leaves it on another device between the entry's commit and
// its publish. His event log, which a device replays, and his
// connections must end with the leave that ended the entry: the room is
// not in his list.
func TestLeftBeforeEntryPublished(t *testing.T) {
	ctx := context.Background()
	f, db, h, ada, bob := newCommitRace(t)
	bobs := userClient(t, h, bob)
	r := f.enter(t, ada, "lobby")
	f.enter(t, bob, "lobby")
	if err := f.svc.LeaveRoom(ctx, bob, r.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	bobs.Next(nil)
	hook := func(int64) {
		if err := f.svc.LeaveRoom(ctx, bob, r.ID); err != nil {
			t.Errorf("LeaveRoom = %v", err)
		}
	}
	db.after.Store(&hook)
	f.enter(t, bob, "lobby")
	time.Sleep(200 * time.Millisecond)

	logged, got := loggedAndGot(t, f, bob, bobs)
	if got := membershipOf(logged, r.ID); len(got) == 0 || got[len(got)-1] != chat.EventRemoved {
		t.Errorf("Bob's event log has %v about the room; want it to end with %q", got, chat.EventRemoved)
	}
	if got := membershipOf(got, r.ID); len(got) == 0 || got[len(got)-1] != chat.EventRemoved {
		t.Errorf("Bob's clients got %v about the room; want it to end with %q", got, chat.EventRemoved)
	}
}

// membershipOf lists the types of the membership events of evs
// (EventConversation, EventRemoved) about conversation id, in order.
func membershipOf(evs []chat.Event, id int64) []chat.EventType {
	var types []chat.EventType
	for _, ev := range evs {
		if ev.ConvID == id && (ev.Type == chat.EventConversation || ev.Type == chat.EventRemoved) {
			types = append(types, ev.Type)
		}
	}
	return types
}

// loggedAndGot returns u's logged events, and the events that reached
// u's client c since it was last read.
func loggedAndGot(t *testing.T, f *fixture, u chat.User, c *hub.Client) (logged, got []chat.Event) {
	t.Helper()
	logged, err := f.svc.UserEvents(context.Background(), u, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range c.Next(nil) {
		got = append(got, it.Event)
	}
	return logged, got
}

// commitHookStore is a lostWriteStore that calls after, once set, when a
// group's creation, an addition to a group or an entry into a room has
// committed, with the conversation's id, before its caller goes on: a
// change another request (another member, the user's other device) makes
// meanwhile.
type commitHookStore struct {
	*lostWriteStore
	after atomic.Pointer[func(convID int64)]
}

// newCommitRace is the set-up of a test of a change made between
// another's commit and its publish: a lost-write fixture over a
// commitHookStore, its hub, and Ada and Bob signed in.
func newCommitRace(t *testing.T) (*fixture, *commitHookStore, *hub.Hub, chat.User, chat.User) {
	t.Helper()
	db := &commitHookStore{lostWriteStore: &lostWriteStore{Store: newFixture(t, chat.Config{}).store}}
	f := lostFixture(t, db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	bob, _ := f.signIn(t, "bob@example.com", "Bob")
	return f, db, lostHub(t, f), ada, bob
}

// committed calls the hook, once, after a change to id that err did not
// refuse.
func (s *commitHookStore) committed(id int64, err error) {
	if f := s.after.Swap(nil); f != nil && err == nil {
		(*f)(id)
	}
}

func (s *commitHookStore) CreateGroup(ctx context.Context, ng chat.NewGroup, created chat.Event) (chat.Group, chat.Message, chat.Event, error) {
	g, m, logged, err := s.lostWriteStore.CreateGroup(ctx, ng, created)
	s.committed(g.ID, err)
	return g, m, logged, err
}

func (s *commitHookStore) AddGroupMember(ctx context.Context, id, userID, by int64, at time.Time, added chat.Event) (chat.Message, chat.Event, error) {
	m, logged, err := s.lostWriteStore.AddGroupMember(ctx, id, userID, by, at, added)
	s.committed(id, err)
	return m, logged, err
}

func (s *commitHookStore) JoinRoom(ctx context.Context, roomID, userID int64, at time.Time, announce bool) (chat.Message, bool, error) {
	m, joined, err := s.lostWriteStore.JoinRoom(ctx, roomID, userID, at, announce)
	s.committed(roomID, err)
	return m, joined, err
}

// primeUserTopic has u's topic on the hub of u's client c deliver a
// logged event (a friend request from other), so that it delivers the
// next ones in their log's order, as a client admits them, and empties c.
func primeUserTopic(t *testing.T, f *fixture, other, u chat.User, c *hub.Client) {
	t.Helper()
	if _, err := f.svc.RequestFriend(context.Background(), other, u.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	c.Next(nil)
}
