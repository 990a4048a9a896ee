package chat_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/inmem"
)

// wantLimit fails unless err is the limit_reached conflict.
func wantLimit(tb testing.TB, what string, err error) {
	tb.Helper()
	if e := chat.AsError(err); e == nil || !errors.Is(err, chat.ErrConflict) || e.Code != chat.CodeLimitReached {
		tb.Fatalf("%s: err = %v; want %s (conflict)", what, err, chat.CodeLimitReached)
	}
}

// TestGroupsPerUser: a user is in at most Config.MaxUserGroups groups,
// owned or joined: past it, neither creating one nor being added to one
// goes through, and a refused create does not count as a group made.
func TestGroupsPerUser(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{MaxUserGroups: 2, NewConvsPerHour: 3})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	bob, _ := f.signIn(t, "bob@example.com", "Bob")
	a, err := f.svc.CreateGroup(ctx, ada, "A", "", 0)
	if err != nil {
		t.Fatalf("CreateGroup(A): %v", err)
	}
	b, err := f.svc.CreateGroup(ctx, bob, "B", "", 0)
	if err != nil {
		t.Fatalf("CreateGroup(B): %v", err)
	}
	if _, err := f.svc.AddGroupMember(ctx, bob, b.ID, ada.ID); err != nil {
		t.Fatalf("AddGroupMember(B, Ada): %v", err)
	}
	_, err = f.svc.CreateGroup(ctx, ada, "C", "", 0)
	wantLimit(t, "Ada makes a third group", err)
	c, err := f.svc.CreateGroup(ctx, bob, "C", "", 0)
	if err != nil {
		t.Fatalf("CreateGroup(C): %v", err)
	}
	_, err = f.svc.AddGroupMember(ctx, bob, c.ID, ada.ID)
	wantLimit(t, "Bob adds Ada to a third group", err)
	if err := f.svc.DeleteGroup(ctx, ada, a.ID); err != nil {
		t.Fatalf("DeleteGroup(A): %v", err)
	}
	if _, err := f.svc.AddGroupMember(ctx, bob, c.ID, ada.ID); err != nil {
		t.Fatalf("AddGroupMember(C, Ada) after Ada deleted A: %v", err)
	}
	if err := f.svc.RemoveGroupMember(ctx, ada, b.ID, ada.ID); err != nil {
		t.Fatalf("Ada leaves B: %v", err)
	}
	// Two made and one refused: the refused one did not count.
	if _, err := f.svc.CreateGroup(ctx, ada, "D", "", 0); err != nil {
		t.Fatalf("CreateGroup(D) once Ada is in one group: %v", err)
	}
}

// TestRoomsPerUser: a user is in at most Config.MaxUserRooms rooms: past
// it, entering another, made or not, is refused, makes no room and does
// not count as a room made; entering one of theirs again still works, and
// once they leave one, they may enter another.
func TestRoomsPerUser(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{MaxUserRooms: 2, NewConvsPerHour: 3})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	bob, _ := f.signIn(t, "bob@example.com", "Bob")
	a, err := f.svc.EnterRoom(ctx, ada, "a")
	if err != nil {
		t.Fatalf("EnterRoom(a): %v", err)
	}
	if _, err := f.svc.EnterRoom(ctx, ada, "b"); err != nil {
		t.Fatalf("EnterRoom(b): %v", err)
	}
	if _, err := f.svc.EnterRoom(ctx, bob, "c"); err != nil {
		t.Fatalf("Bob enters c: %v", err)
	}
	_, err = f.svc.EnterRoom(ctx, ada, "c")
	wantLimit(t, "Ada enters a third room", err)
	_, err = f.svc.EnterRoom(ctx, ada, "d")
	wantLimit(t, "Ada makes a third room", err)
	if _, err := f.svc.RoomByName(ctx, "d"); !errors.Is(err, chat.ErrNotFound) {
		t.Fatalf("room d after a refused enter: err = %v; want not found", err)
	}
	if _, err := f.svc.EnterRoom(ctx, ada, "a"); err != nil {
		t.Fatalf("Ada enters a again: %v", err)
	}
	if err := f.svc.LeaveRoom(ctx, ada, a.ID); err != nil {
		t.Fatalf("LeaveRoom(a): %v", err)
	}
	// Two made and one refused: the refused one did not count.
	if _, err := f.svc.EnterRoom(ctx, ada, "d"); err != nil {
		t.Fatalf("EnterRoom(d) after leaving a: %v", err)
	}
}

// TestPendingFriendRequests: a user has at most
// Config.MaxPendingRequests friend requests unanswered: past it, a new one
// is refused and not counted against FriendRequestsPerHour, while
// repeating one, accepting one by asking back, and asking again once one
// was answered still work.
func TestPendingFriendRequests(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{MaxPendingRequests: 2, FriendRequestsPerHour: 6})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	bob, _ := f.signIn(t, "bob@example.com", "Bob")
	cy, _ := f.signIn(t, "cy@example.com", "Cy")
	dee, _ := f.signIn(t, "dee@example.com", "Dee")
	eve, _ := f.signIn(t, "eve@example.com", "Eve")
	for _, u := range []chat.User{bob, cy} {
		if _, err := f.svc.RequestFriend(ctx, ada, u.ID); err != nil {
			t.Fatalf("Ada asks %s: %v", u.Name, err)
		}
	}
	if _, err := f.svc.RequestFriend(ctx, eve, ada.ID); err != nil {
		t.Fatalf("Eve asks Ada: %v", err)
	}
	_, err := f.svc.RequestFriend(ctx, ada, dee.ID)
	wantLimit(t, "Ada asks a third user", err)
	if _, err := f.svc.RequestFriend(ctx, ada, bob.ID); err != nil {
		t.Fatalf("Ada asks Bob again: %v", err)
	}
	if c, err := f.svc.RequestFriend(ctx, ada, eve.ID); err != nil || c.State != chat.StateFriends {
		t.Fatalf("Ada asks Eve, who asked her = %+v, %v; want friends", c, err)
	}
	if _, err := f.svc.AcceptFriend(ctx, bob, ada.ID); err != nil {
		t.Fatalf("Bob accepts: %v", err)
	}
	// Five asked, one refused: the refused one did not count.
	if _, err := f.svc.RequestFriend(ctx, ada, dee.ID); err != nil {
		t.Fatalf("Ada asks Dee once Bob answered: %v", err)
	}
}

// TestFriendsPerUser: a user has at most Config.MaxFriends friends: a
// request from a user who has as many, and an acceptance (by accepting,
// or by asking back) that would give either user one more, are refused.
// Once a friendship ends, they go through.
func TestFriendsPerUser(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{MaxFriends: 1})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	bob, _ := f.signIn(t, "bob@example.com", "Bob")
	cy, _ := f.signIn(t, "cy@example.com", "Cy")
	dee, _ := f.signIn(t, "dee@example.com", "Dee")
	if _, err := f.svc.RequestFriend(ctx, ada, bob.ID); err != nil {
		t.Fatalf("Ada asks Bob: %v", err)
	}
	if _, err := f.svc.RequestFriend(ctx, cy, ada.ID); err != nil {
		t.Fatalf("Cy asks Ada: %v", err)
	}
	if _, err := f.svc.RequestFriend(ctx, dee, ada.ID); err != nil {
		t.Fatalf("Dee asks Ada: %v", err)
	}
	if _, err := f.svc.AcceptFriend(ctx, bob, ada.ID); err != nil {
		t.Fatalf("Bob accepts Ada: %v", err)
	}
	_, err := f.svc.AcceptFriend(ctx, ada, cy.ID)
	wantLimit(t, "Ada, with one friend, accepts Cy", err)
	_, err = f.svc.RequestFriend(ctx, ada, dee.ID)
	wantLimit(t, "Ada, with one friend, asks Dee back", err)
	_, err = f.svc.RequestFriend(ctx, bob, cy.ID)
	wantLimit(t, "Bob, with one friend, asks Cy", err)
	if err := f.svc.RemoveContact(ctx, ada, bob.ID); err != nil {
		t.Fatalf("Ada removes Bob: %v", err)
	}
	if c, err := f.svc.AcceptFriend(ctx, ada, cy.ID); err != nil || c.State != chat.StateFriends {
		t.Fatalf("Ada accepts Cy once Bob is gone = %+v, %v; want friends", c, err)
	}
	_, err = f.svc.AcceptFriend(ctx, dee, ada.ID)
	if err == nil {
		t.Fatalf("Dee accepts Ada: want an error, Dee asked Ada")
	}
}

// barrierContactsStore holds the reads of user's contacts, once armed,
// until n of them have come: n acceptances at once all read the counts
// before any changes them.
type barrierContactsStore struct {
	chat.Store
	user  atomic.Int64
	n     int
	mu    sync.Mutex
	came  int
	ready chan struct{}
}

func (s *barrierContactsStore) Contacts(ctx context.Context, me int64) ([]chat.Contact, error) {
	cs, err := s.Store.Contacts(ctx, me)
	if me == s.user.Load() {
		s.mu.Lock()
		if s.came++; s.came == s.n {
			close(s.ready)
		}
		s.mu.Unlock()
		<-s.ready
	}
	return cs, err
}

// TestFriendsPerUserAtOnce: acceptances made at once by a user with room
// for one more friend make one friend, not as many as they are: the
// store counts in the acceptance's transaction.
func TestFriendsPerUserAtOnce(t *testing.T) {
	ctx := context.Background()
	db := &barrierContactsStore{Store: sqliteStore(t), n: 3, ready: make(chan struct{})}
	f := newFixtureOn(t, chat.Config{MaxFriends: 1}, inmem.NewPresence(), db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	var askers []chat.User
	for _, name := range []string{"Bob", "Cy", "Dee"} {
		u, _ := f.signIn(t, strings.ToLower(name)+"@example.com", name)
		if _, err := f.svc.RequestFriend(ctx, u, ada.ID); err != nil {
			t.Fatalf("%s asks Ada: %v", name, err)
		}
		askers = append(askers, u)
	}
	db.user.Store(ada.ID)
	errs := make(chan error, len(askers))
	for _, u := range askers {
		go func() {
			_, err := f.svc.AcceptFriend(ctx, ada, u.ID)
			errs <- err
		}()
	}
	accepted := 0
	for range askers {
		if err := <-errs; err == nil {
			accepted++
		} else {
			wantLimit(t, "Ada accepts at once", err)
		}
	}
	db.user.Store(0)
	friends := 0
	cs, _, err := f.svc.Contacts(ctx, ada)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.State == chat.StateFriends {
			friends++
		}
	}
	if accepted != 1 || friends != 1 {
		t.Errorf("3 acceptances at once with --max-friends 1: %d accepted, Ada has %d friends; want 1 and 1", accepted, friends)
	}
}

// TestPendingFriendRequestsAtOnce: requests made at once by a user with
// room for one more unanswered request make one, not as many as they
// are: the store counts in the request's transaction.
func TestPendingFriendRequestsAtOnce(t *testing.T) {
	ctx := context.Background()
	db := &barrierContactsStore{Store: sqliteStore(t), n: 3, ready: make(chan struct{})}
	f := newFixtureOn(t, chat.Config{MaxPendingRequests: 1}, inmem.NewPresence(), db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	var asked []chat.User
	for _, name := range []string{"Bob", "Cy", "Dee"} {
		u, _ := f.signIn(t, strings.ToLower(name)+"@example.com", name)
		asked = append(asked, u)
	}
	db.user.Store(ada.ID)
	errs := make(chan error, len(asked))
	for _, u := range asked {
		go func() {
			_, err := f.svc.RequestFriend(ctx, ada, u.ID)
			errs <- err
		}()
	}
	made := 0
	for range asked {
		if err := <-errs; err == nil {
			made++
		} else {
			wantLimit(t, "Ada asks at once", err)
		}
	}
	db.user.Store(0)
	cs, _, err := f.svc.Contacts(ctx, ada)
	if err != nil {
		t.Fatal(err)
	}
	if made != 1 || len(cs) != 1 {
		t.Errorf("3 requests at once with --max-pending-requests 1: %d made, Ada has %d pending; want 1 and 1", made, len(cs))
	}
}
