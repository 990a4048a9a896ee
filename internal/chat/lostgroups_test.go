package chat_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
)

func (s *lostWriteStore) DeleteGroup(ctx context.Context, id, by int64, at time.Time, removed chat.Event) ([]chat.UserEvent, error) {
	evs, err := s.Store.DeleteGroup(ctx, id, by, at, removed)
	if err = s.lost(err); err != nil {
		return nil, err
	}
	return evs, nil
}

func (s *lostWriteStore) CreateGroup(ctx context.Context, g chat.NewGroup, created chat.Event) (chat.Group, chat.Message, chat.Event, error) {
	if s.failed() {
		return chat.Group{}, chat.Message{}, chat.Event{}, errLostCommit
	}
	gr, m, logged, err := s.Store.CreateGroup(ctx, g, created)
	if err = s.lost(err); err != nil {
		return chat.Group{}, chat.Message{}, chat.Event{}, err
	}
	return gr, m, logged, nil
}

// TestLostWriteDeleteGroup: a group deletion whose commit went through
// but whose caller got an error still tells every member, once, that
// the group is gone; a retry by the owner is no error.
func TestLostWriteDeleteGroup(t *testing.T) {
	ctx := context.Background()
	db := &lostWriteStore{Store: newFixture(t, chat.Config{}).store}
	f := lostFixture(t, db)
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

// groupCreated matches the logged event that tells an owner of a group
// created, named name (any name if name is "").
func groupCreated(name string) func(chat.Event) bool {
	return func(ev chat.Event) bool {
		return ev.Type == chat.EventConversation && ev.ConvKind == chat.ConvGroup && ev.Message != nil &&
			ev.Message.Kind == chat.KindCreated && ev.UserSeq > 0 && (name == "" || ev.Message.Body == name)
	}
}

// TestLostWriteCreateGroup: a group creation whose commit went through
// but whose caller got an error is answered, when its owner tries it
// again soon, with the group it made, not name_taken; the owner's
// clients learn of it once, and their log keeps it.
func TestLostWriteCreateGroup(t *testing.T) {
	ctx := context.Background()
	db := &lostWriteStore{Store: newFixture(t, chat.Config{}).store}
	f := lostFixture(t, db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	h := lostHub(t, f)
	adas := userClient(t, h, ada)
	created := groupCreated("")

	db.lose.Store(true)
	if _, err := f.svc.CreateGroup(ctx, ada, "team", "ours", 10); err == nil {
		t.Fatal("CreateGroup = nil; want the store's error")
	}
	g, err := f.svc.CreateGroup(ctx, ada, "team", "ours", 10)
	if err != nil {
		t.Fatalf("CreateGroup retried: %v; want the group", err)
	}
	if g.Name != "team" || g.OwnerID != ada.ID || g.ID == 0 {
		t.Errorf("CreateGroup retried = %+v; want Ada's team", g)
	}
	wantOnce(t, adas, "Ada's new group", created)

	// Not a retry: another user, other settings, a group with more in it,
	// or one made long ago.
	if _, err := f.svc.CreateGroup(ctx, grace, "team", "ours", 10); err == nil {
		t.Error("Grace's CreateGroup(team) = nil; want name_taken")
	}
	if _, err := f.svc.CreateGroup(ctx, ada, "team", "theirs", 10); err == nil {
		t.Error("CreateGroup(team) with another description = nil; want name_taken")
	}
	if _, err := f.svc.AddGroupMember(ctx, ada, g.ID, grace.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.CreateGroup(ctx, ada, "team", "ours", 10); err == nil {
		t.Error("CreateGroup(team) of a group with two members = nil; want name_taken")
	}
	if _, err := f.svc.CreateGroup(ctx, ada, "crew", "", 0); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Hour)
	if _, err := f.svc.CreateGroup(ctx, ada, "crew", "", 0); err == nil {
		t.Error("CreateGroup(crew) an hour after = nil; want name_taken")
	}

	// A creation that failed unmade is tried again, and made, once.
	db.fail.Store(true)
	if _, err := f.svc.CreateGroup(ctx, ada, "band", "", 0); err == nil {
		t.Fatal("CreateGroup = nil; want the store's error")
	}
	if _, err := f.svc.CreateGroup(ctx, ada, "band", "", 0); err != nil {
		t.Fatal(err)
	}

	// A creation of unknown outcome not tried again: the owner's clients
	// still learn of it.
	time.Sleep(50 * time.Millisecond)
	adas.Next(nil)
	db.lose.Store(true)
	if _, err := f.svc.CreateGroup(ctx, ada, "choir", "", 0); err == nil {
		t.Fatal("CreateGroup = nil; want the store's error")
	}
	wantOnce(t, adas, "Ada's choir", created)
}

// TestLostWriteCreateGroupRetriedLater: a creation of unknown outcome
// tried again after its owner made another group is answered with the
// group it made, found by its name, not name_taken; the owner's clients
// learn of it once.
func TestLostWriteCreateGroupRetriedLater(t *testing.T) {
	ctx := context.Background()
	db := &lostWriteStore{Store: newFixture(t, chat.Config{}).store}
	f := lostFixture(t, db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	h := lostHub(t, f)
	adas := userClient(t, h, ada)

	db.lose.Store(true)
	if _, err := f.svc.CreateGroup(ctx, ada, "team", "ours", 10); err == nil {
		t.Fatal("CreateGroup = nil; want the store's error")
	}
	if _, err := f.svc.CreateGroup(ctx, ada, "crew", "", 0); err != nil {
		t.Fatal(err)
	}
	// Grace's group, with Ada in it, is newer still.
	gg, err := f.svc.CreateGroup(ctx, grace, "band", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AddGroupMember(ctx, grace, gg.ID, ada.ID); err != nil {
		t.Fatal(err)
	}
	g, err := f.svc.CreateGroup(ctx, ada, "team", "ours", 10)
	if err != nil {
		t.Fatalf("CreateGroup(team) retried after another: %v; want the group", err)
	}
	if g.Name != "team" || g.OwnerID != ada.ID || g.Description != "ours" {
		t.Errorf("CreateGroup(team) retried = %+v; want Ada's team", g)
	}
	wantToldOnce(t, f, adas, ada, "Ada's team", groupCreated("team"))

	// Still not a retry: other settings, or a group made long ago.
	if _, err := f.svc.CreateGroup(ctx, ada, "team", "theirs", 10); err == nil {
		t.Error("CreateGroup(team) with another description = nil; want name_taken")
	}
	f.clock.Advance(time.Hour)
	if _, err := f.svc.CreateGroup(ctx, ada, "team", "ours", 10); err == nil {
		t.Error("CreateGroup(team) an hour after = nil; want name_taken")
	}
}

// TestDeletedBeforeCreationPublished: Ada's other device deletes the
// group she creates between the creation's commit and its publish. Her
// event log, which a device replays, and her connections must have the
// creation before the deletion that ended it: the group is gone from her
// list, and her connection does not follow it.
func TestDeletedBeforeCreationPublished(t *testing.T) {
	ctx := context.Background()
	f, db, h, ada, bob := newCommitRace(t)
	adas := userClient(t, h, ada)
	primeUserTopic(t, f, bob, ada, adas)
	hook := func(id int64) {
		if err := f.svc.DeleteGroup(ctx, ada, id); err != nil {
			t.Errorf("DeleteGroup = %v", err)
		}
	}
	db.after.Store(&hook)
	g, err := f.svc.CreateGroup(ctx, ada, "team", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // any follow done

	want := []chat.EventType{chat.EventConversation, chat.EventRemoved}
	logged, got := loggedAndGot(t, f, ada, adas)
	if got := membershipOf(logged, g.ID); !slices.Equal(got, want) {
		t.Errorf("Ada's event log has %v about the group; want %v", got, want)
	}
	if got := membershipOf(got, g.ID); !slices.Equal(got, want) {
		t.Errorf("Ada's clients got %v about the group; want %v", got, want)
	}
	if h.Follows(adas, chat.ConvTopic(g.ID)) {
		t.Errorf("Follows(Ada's connection, the deleted group) = true; want false")
	}
}

// wantToldOnce fails unless u's client c learns once of the logged event
// that is: it reaches c once, or, logged once before a logged event that
// reaches c (a republish of it is older than what the hub delivered, and
// dropped), it is what a client fills from the log as it sees that gap.
func wantToldOnce(t *testing.T, f *fixture, c *hub.Client, u chat.User, what string, is func(chat.Event) bool) {
	t.Helper()
	var live, after int64 // the UserSeq of the one that reached c, and the newest that did
	got := 0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		for _, it := range c.Next(nil) {
			if is(it.Event) {
				got++
				live = it.Event.UserSeq
			}
			after = max(after, it.Event.UserSeq)
		}
	}
	if got > 1 {
		t.Errorf("%s reached the client %d times; want once", what, got)
	}
	evs, err := f.svc.UserEvents(context.Background(), u, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var logged []int64
	for _, ev := range evs {
		if is(ev) {
			logged = append(logged, ev.UserSeq)
		}
	}
	switch {
	case len(logged) != 1:
		t.Errorf("%s is logged as %v; want once", what, logged)
	case got == 1 && live != logged[0]:
		t.Errorf("%s reached the client as %d; want %d, as logged", what, live, logged[0])
	case got == 0 && after <= logged[0]:
		t.Errorf("%s, logged as %d, reached the client neither itself nor through a later logged event (newest %d)", what, logged[0], after)
	}
}

// readFailStore is a lostWriteStore whose next failLast reads of a user's
// newest logged event number fail, as a store's reads do while its server
// cannot be reached: what a republish is for.
type readFailStore struct {
	*lostWriteStore
	failLast atomic.Int32
}

func (s *readFailStore) LastUserEvent(ctx context.Context, userID int64) (int64, error) {
	if n := s.failLast.Load(); n > 0 && s.failLast.CompareAndSwap(n, n-1) {
		return 0, errLostCommit
	}
	return s.lostWriteStore.LastUserEvent(ctx, userID)
}

// TestRepublishCreatedAfterFailedRead: the republish of a creation of
// unknown outcome whose read of the owner's log fails is tried again, as
// the other republishes are, and the owner's clients learn of the group.
func TestRepublishCreatedAfterFailedRead(t *testing.T) {
	ctx := context.Background()
	db := &readFailStore{lostWriteStore: &lostWriteStore{Store: newFixture(t, chat.Config{}).store}}
	f := lostFixture(t, db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	h := lostHub(t, f)
	adas := userClient(t, h, ada)

	db.lose.Store(true)
	if _, err := f.svc.CreateGroup(ctx, ada, "team", "", 0); err == nil {
		t.Fatal("CreateGroup = nil; want the store's error")
	}
	db.failLast.Store(1) // the republish's first read of Ada's log
	wantOnce(t, adas, "Ada's team, republished", groupCreated("team"))
}
