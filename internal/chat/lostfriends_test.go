package chat_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
	"github.com/parley-chat/parley/internal/inmem"
)

func (s *lostWriteStore) RequestFriend(ctx context.Context, from, to int64, at time.Time, lim chat.FriendLimits) (chat.Contact, bool, error) {
	c, changed, err := s.Store.RequestFriend(ctx, from, to, at, lim)
	if err = s.lost(err); err != nil {
		return chat.Contact{}, false, err
	}
	return c, changed, nil
}

func (s *lostWriteStore) AcceptFriend(ctx context.Context, me, from int64, at time.Time, maxFriends int) (chat.Contact, error) {
	c, err := s.Store.AcceptFriend(ctx, me, from, at, maxFriends)
	if err = s.lost(err); err != nil {
		return chat.Contact{}, err
	}
	return c, nil
}

func (s *lostWriteStore) RemoveContact(ctx context.Context, a, b int64) (string, error) {
	prev, err := s.Store.RemoveContact(ctx, a, b)
	if err = s.lost(err); err != nil {
		return "", err
	}
	return prev, nil
}

func (s *lostWriteStore) Block(ctx context.Context, blocker, blocked int64, at time.Time, maxBlocks int) (string, error) {
	prev, err := s.Store.Block(ctx, blocker, blocked, at, maxBlocks)
	if err = s.lost(err); err != nil {
		return "", err
	}
	return prev, nil
}

func (s *lostWriteStore) Unblock(ctx context.Context, blocker, blocked int64) (bool, error) {
	ok, err := s.Store.Unblock(ctx, blocker, blocked)
	if err = s.lost(err); err != nil {
		return false, err
	}
	return ok, nil
}

// lostFixture is a fixture on db that republishes changes of unknown
// outcome 10 ms after their error.
func lostFixture(t *testing.T, db chat.Store) *fixture {
	return newFixtureOn(t, chat.Config{RepublishWait: 10 * time.Millisecond}, inmem.NewPresence(), db)
}

// lostHub is a hub on f's broker, as parley wires it.
func lostHub(t *testing.T, f *fixture) *hub.Hub {
	t.Helper()
	h := hub.New(f.broker, slog.New(slog.DiscardHandler))
	h.UseStore(f.svc.Missed) // as parley wires it
	t.Cleanup(func() { h.Close(context.Background()) })
	return h
}

// userClient registers a client of u that follows no conversation: it
// gets u's user events.
func userClient(t *testing.T, h *hub.Hub, u chat.User) *hub.Client {
	t.Helper()
	c, err := h.Register(u.ID, 0, 64, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Unregister(c) })
	return c
}

// wantOnce waits until an event that is reaches c, and fails unless it
// reaches c exactly once.
func wantOnce(t *testing.T, c *hub.Client, what string, is func(chat.Event) bool) {
	t.Helper()
	got := 0
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && got == 0; {
		for _, it := range c.Next(nil) {
			if is(it.Event) {
				got++
			}
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	for _, it := range c.Next(nil) {
		if is(it.Event) {
			got++
		}
	}
	if got != 1 {
		t.Errorf("%s reached the client %d times; want once", what, got)
	}
}

// contactIs matches the contact event of user id in state.
func contactIs(id int64, state string) func(chat.Event) bool {
	return func(ev chat.Event) bool {
		return ev.Type == chat.EventContact && ev.Contact != nil && ev.Contact.User.ID == id && ev.Contact.State == state
	}
}

// wantLogged fails unless u's newest logged contact event about user id
// is in state.
func wantLogged(t *testing.T, f *fixture, u chat.User, id int64, state string) {
	t.Helper()
	evs, err := f.svc.UserEvents(context.Background(), u, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	got := "(none)"
	for _, ev := range evs {
		if ev.Type == chat.EventContact && ev.Contact != nil && ev.Contact.User.ID == id {
			got = ev.Contact.State
		}
	}
	if got != state {
		t.Errorf("%s's log: newest contact event of user %d is %s; want %s", u.Name, id, got, state)
	}
}

// TestLostWriteFriends: a friend request, acceptance, removal, block or
// unblock whose commit went through but whose caller got an error is
// not published, nor kept in the users' event logs, by the call that made
// it. Both users' clients must still get the contact event live, once,
// and their logs keep it. A retry, which finds the change made, tells
// nothing more; a retried request or acceptance answers as the call would
// have, and a retried block succeeds.
func TestLostWriteFriends(t *testing.T) {
	ctx := context.Background()
	db := &lostWriteStore{Store: newFixture(t, chat.Config{}).store}
	f := lostFixture(t, db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	bob, _ := f.signIn(t, "bob@example.com", "Bob")
	h := lostHub(t, f)
	adas, graces, bobs := userClient(t, h, ada), userClient(t, h, grace), userClient(t, h, bob)

	// lose makes do fail once, having committed, and retries it: the
	// retry must answer a contact in state.
	lose := func(t *testing.T, what, state string, do func() (chat.Contact, error)) {
		t.Helper()
		db.lose.Store(true)
		if _, err := do(); err == nil {
			t.Fatalf("%s = nil; want the store's error", what)
		}
		if c, err := do(); err != nil || c.State != state {
			t.Errorf("%s retried = %q, %v; want %q", what, c.State, err, state)
		}
	}
	both := func(t *testing.T, state string) {
		t.Helper()
		wantOnce(t, adas, "Grace's "+state, contactIs(grace.ID, state))
		wantOnce(t, graces, "Ada's "+mirrorState(state), contactIs(ada.ID, mirrorState(state)))
		wantLogged(t, f, ada, grace.ID, state)
		wantLogged(t, f, grace, ada.ID, mirrorState(state))
	}

	lose(t, "RequestFriend", chat.StateRequestSent, func() (chat.Contact, error) { return f.svc.RequestFriend(ctx, ada, grace.ID) })
	both(t, chat.StateRequestSent)
	lose(t, "AcceptFriend", chat.StateFriends, func() (chat.Contact, error) { return f.svc.AcceptFriend(ctx, grace, ada.ID) })
	both(t, chat.StateFriends)
	db.lose.Store(true)
	if err := f.svc.RemoveContact(ctx, ada, grace.ID); err == nil {
		t.Fatal("RemoveContact = nil; want the store's error")
	}
	both(t, chat.StateNone)
	if _, err := f.svc.RequestFriend(ctx, grace, ada.ID); err != nil {
		t.Fatal(err)
	}
	wantOnce(t, adas, "Grace's request", contactIs(grace.ID, chat.StateRequestReceived))
	wantOnce(t, graces, "Grace's request", contactIs(ada.ID, chat.StateRequestSent))
	db.lose.Store(true)
	if _, err := f.svc.RequestFriend(ctx, ada, grace.ID); err == nil { // accepts Grace's
		t.Fatal("RequestFriend = nil; want the store's error")
	}
	both(t, chat.StateFriends)

	if _, err := f.svc.RequestFriend(ctx, bob, ada.ID); err != nil {
		t.Fatal(err)
	}
	wantOnce(t, adas, "Bob's request", contactIs(bob.ID, chat.StateRequestReceived))
	wantOnce(t, bobs, "Bob's request", contactIs(ada.ID, chat.StateRequestSent))
	db.lose.Store(true)
	if err := f.svc.Block(ctx, ada, bob.ID); err == nil {
		t.Fatal("Block = nil; want the store's error")
	}
	wantOnce(t, adas, "Bob blocked", contactIs(bob.ID, chat.StateBlocked))
	wantOnce(t, bobs, "Ada's none", contactIs(ada.ID, chat.StateNone))
	wantLogged(t, f, ada, bob.ID, chat.StateBlocked)
	wantLogged(t, f, bob, ada.ID, chat.StateNone)
	// A retry tells nobody anything: the failed call had them told.
	if err := f.svc.Block(ctx, ada, bob.ID); err != nil {
		t.Errorf("Block retried: %v; want success", err)
	}
	db.lose.Store(true)
	if err := f.svc.Unblock(ctx, ada, bob.ID); err == nil {
		t.Fatal("Unblock = nil; want the store's error")
	}
	wantOnce(t, adas, "Bob unblocked", contactIs(bob.ID, chat.StateNone))
	wantLogged(t, f, ada, bob.ID, chat.StateNone)
	time.Sleep(50 * time.Millisecond)
	for _, it := range bobs.Next(nil) {
		t.Errorf("Bob got %+v after Ada's block; want nothing", it.Event)
	}
}

func mirrorState(s string) string {
	switch s {
	case chat.StateRequestSent:
		return chat.StateRequestReceived
	case chat.StateRequestReceived:
		return chat.StateRequestSent
	}
	return s
}

// TestLostWriteFriendsFailed: a friend operation that failed unmade,
// with an error that does not say so, tells nobody anything.
func TestLostWriteFriendsFailed(t *testing.T) {
	ctx := context.Background()
	db := &failFriendStore{Store: newFixture(t, chat.Config{}).store}
	f := lostFixture(t, db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	if _, err := f.svc.RequestFriend(ctx, ada, grace.ID); err != nil {
		t.Fatal(err)
	}
	adaEv, graceEv := f.record(t, chat.UserTopic(ada.ID)), f.record(t, chat.UserTopic(grace.ID))
	db.fail = true
	if _, err := f.svc.AcceptFriend(ctx, grace, ada.ID); err == nil {
		t.Fatal("AcceptFriend = nil; want the store's error")
	}
	if err := f.svc.RemoveContact(ctx, grace, ada.ID); err == nil {
		t.Fatal("RemoveContact = nil; want the store's error")
	}
	time.Sleep(200 * time.Millisecond)
	if evs := append(adaEv.take(), graceEv.take()...); len(evs) != 0 {
		t.Errorf("published %+v; want nothing", evs)
	}
}

// failFriendStore fails every friend change unmade while fail is set.
type failFriendStore struct {
	chat.Store
	fail bool
}

func (s *failFriendStore) AcceptFriend(ctx context.Context, me, from int64, at time.Time, maxFriends int) (chat.Contact, error) {
	if s.fail {
		return chat.Contact{}, errLostCommit
	}
	return s.Store.AcceptFriend(ctx, me, from, at, maxFriends)
}

func (s *failFriendStore) RemoveContact(ctx context.Context, a, b int64) (string, error) {
	if s.fail {
		return "", errLostCommit
	}
	return s.Store.RemoveContact(ctx, a, b)
}

// TestContactRepeatsReadNoLog: a repeat of a contact change that any
// signed-in user can make at no cost (a request asked again, or to a
// friend; an acceptance between friends; a removal, unblock or block
// with nothing to end) must schedule nothing: no later read of a log.
// Only the call that got an error of unknown outcome does.
func TestContactRepeatsReadNoLog(t *testing.T) {
	ctx := context.Background()
	db := &logReadStore{Store: newFixture(t, chat.Config{}).store}
	f := newFixtureOn(t, chat.Config{RepublishWait: time.Millisecond}, inmem.NewPresence(), db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	bob, _ := f.signIn(t, "bob@example.com", "Bob")
	carol, _ := f.signIn(t, "carol@example.com", "Carol")
	f.befriend(t, ada, grace)
	if _, err := f.svc.RequestFriend(ctx, ada, carol.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	db.reads.Store(0)

	if _, err := f.svc.RequestFriend(ctx, ada, carol.ID); err != nil {
		t.Errorf("RequestFriend repeated: %v", err)
	}
	if _, err := f.svc.RequestFriend(ctx, ada, grace.ID); err == nil {
		t.Error("RequestFriend of a friend = nil; want already_friends")
	}
	if _, err := f.svc.AcceptFriend(ctx, grace, ada.ID); err != nil {
		t.Errorf("AcceptFriend between friends: %v; want success", err)
	}
	if err := f.svc.RemoveContact(ctx, ada, bob.ID); err == nil {
		t.Error("RemoveContact of no contact = nil; want not_found")
	}
	if err := f.svc.Unblock(ctx, ada, bob.ID); err == nil {
		t.Error("Unblock of one not blocked = nil; want not_found")
	}
	for range 2 {
		if err := f.svc.Block(ctx, ada, bob.ID); err != nil {
			t.Errorf("Block: %v", err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if n := db.reads.Load(); n != 0 {
		t.Errorf("LastUserEvent read %d times; want 0", n)
	}
}

// logReadStore counts the reads of a user's newest logged event.
type logReadStore struct {
	chat.Store
	reads atomic.Int64
}

func (s *logReadStore) LastUserEvent(ctx context.Context, userID int64) (int64, error) {
	s.reads.Add(1)
	return s.Store.LastUserEvent(ctx, userID)
}

// TestLostWriteBlockRetried: a block of unknown outcome, tried again by
// the blocker after or before the republish of its event, tells the
// blocker blocked once.
func TestLostWriteBlockRetried(t *testing.T) {
	for _, wait := range []time.Duration{10 * time.Millisecond, time.Second} {
		t.Run("republish after "+wait.String(), func(t *testing.T) {
			ctx := context.Background()
			db := &lostWriteStore{Store: newFixture(t, chat.Config{}).store}
			f := newFixtureOn(t, chat.Config{RepublishWait: wait}, inmem.NewPresence(), db)
			ada, _ := f.signIn(t, "ada@example.com", "Ada")
			bob, _ := f.signIn(t, "bob@example.com", "Bob")
			h := lostHub(t, f)
			adas, bobs := userClient(t, h, ada), userClient(t, h, bob)
			if _, err := f.svc.RequestFriend(ctx, bob, ada.ID); err != nil {
				t.Fatal(err)
			}
			db.lose.Store(true)
			if err := f.svc.Block(ctx, ada, bob.ID); err == nil {
				t.Fatal("Block = nil; want the store's error")
			}
			if wait < time.Second {
				time.Sleep(20 * wait) // the republish runs first
			}
			if err := f.svc.Block(ctx, ada, bob.ID); err != nil {
				t.Fatalf("Block retried: %v; want success", err)
			}
			if wait >= time.Second {
				time.Sleep(wait + 500*time.Millisecond) // the republish runs after
			}
			wantOnce(t, adas, "Bob blocked", contactIs(bob.ID, chat.StateBlocked))
			wantOnce(t, bobs, "Ada's none", contactIs(ada.ID, chat.StateNone))
			wantLogged(t, f, ada, bob.ID, chat.StateBlocked)
		})
	}
}

// userReadFailStore fails the next read of a user, once fail is set.
type userReadFailStore struct {
	chat.Store
	fail atomic.Bool
}

func (s *userReadFailStore) User(ctx context.Context, id int64) (chat.User, error) {
	if s.fail.CompareAndSwap(true, false) {
		return chat.User{}, errors.New("user read failed")
	}
	return s.Store.User(ctx, id)
}

// TestBlockUserReadFails: a block made, whose answer is an error because
// the read of the blocked user after it failed, is told to the two all
// the same, once, though the blocker's retry finds it made.
func TestBlockUserReadFails(t *testing.T) {
	ctx := context.Background()
	db := &userReadFailStore{Store: newFixture(t, chat.Config{}).store}
	f := newFixtureOn(t, chat.Config{RepublishWait: 10 * time.Millisecond}, inmem.NewPresence(), db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	bob, _ := f.signIn(t, "bob@example.com", "Bob")
	h := lostHub(t, f)
	adas, bobs := userClient(t, h, ada), userClient(t, h, bob)
	if _, err := f.svc.RequestFriend(ctx, bob, ada.ID); err != nil {
		t.Fatal(err)
	}
	wantOnce(t, adas, "Bob's request", contactIs(bob.ID, chat.StateRequestReceived))
	wantOnce(t, bobs, "Bob's request", contactIs(ada.ID, chat.StateRequestSent))
	db.fail.Store(true)
	if err := f.svc.Block(ctx, ada, bob.ID); err == nil {
		t.Fatal("Block = nil; want the store's error")
	}
	if err := f.svc.Block(ctx, ada, bob.ID); err != nil {
		t.Fatalf("Block retried: %v; want success", err)
	}
	wantOnce(t, adas, "Bob blocked", contactIs(bob.ID, chat.StateBlocked))
	wantOnce(t, bobs, "Ada's none", contactIs(ada.ID, chat.StateNone))
	wantLogged(t, f, ada, bob.ID, chat.StateBlocked)
	wantLogged(t, f, bob, ada.ID, chat.StateNone)
}
