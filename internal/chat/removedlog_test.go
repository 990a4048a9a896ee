package chat_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
	"github.com/parley-chat/parley/internal/inmem"
)

// leaveGapStore is a Store whose next room leave or group removal, once
// the store has committed it, waits for release: what the Service does
// after the store's call (publishing the removed) comes only then.
type leaveGapStore struct {
	chat.Store
	committed chan struct{} // closed once the change is committed
	release   chan struct{}
}

func newLeaveGapStore(s chat.Store) *leaveGapStore {
	return &leaveGapStore{Store: s, committed: make(chan struct{}), release: make(chan struct{})}
}

func (s *leaveGapStore) gap() {
	close(s.committed)
	<-s.release
}

func (s *leaveGapStore) LeaveRoom(ctx context.Context, roomID, userID int64, at time.Time, announce bool, removed chat.Event) (chat.Message, chat.Event, bool, error) {
	m, logged, left, err := s.Store.LeaveRoom(ctx, roomID, userID, at, announce, removed)
	s.gap()
	return m, logged, left, err
}

func (s *leaveGapStore) RemoveGroupMember(ctx context.Context, id, userID, by int64, at time.Time, removed chat.Event) (chat.Message, chat.Event, error) {
	m, logged, err := s.Store.RemoveGroupMember(ctx, id, userID, by, at, removed)
	s.gap()
	return m, logged, err
}

// TestRemovedBeforeCheck: a user's membership ends, and before the
// Service is back from the store, the user is a member again and opens
// the conversation. The removed that ends the first membership was stored
// before the open's check: it is old news to the open (its user_seq at or
// below the mark's), and the hub keeps the open. When the removed was
// logged only after the store's call, it came after the mark and cut an
// open of a membership that still holds. On SQLite and, when
// PARLEY_TEST_POSTGRES names one, PostgreSQL.
func TestRemovedBeforeCheck(t *testing.T) {
	stores := []struct {
		name string
		open func(t *testing.T) chat.Store
	}{
		{"sqlite", func(t *testing.T) chat.Store { return newFixture(t, chat.Config{}).store }},
		{"postgres", func(t *testing.T) chat.Store { return postgresStore(t) }},
	}
	for _, st := range stores {
		t.Run(st.name+"/room", func(t *testing.T) {
			db := newLeaveGapStore(st.open(t))
			f := newFixtureOn(t, chat.Config{}, inmem.NewPresence(), db)
			ada, _ := f.signIn(t, "ada@example.com", "Ada")
			r := f.enter(t, ada, "lobby")
			removedBeforeCheck(t, f, db, ada, r.ID,
				func() error { return f.svc.LeaveRoom(context.Background(), ada, r.ID) },
				func() error { _, err := f.svc.EnterRoom(context.Background(), ada, "lobby"); return err })
		})
		t.Run(st.name+"/group", func(t *testing.T) {
			db := newLeaveGapStore(st.open(t))
			f := newFixtureOn(t, chat.Config{}, inmem.NewPresence(), db)
			ctx := context.Background()
			grace, _ := f.signIn(t, "grace@example.com", "Grace")
			ada, _ := f.signIn(t, "ada@example.com", "Ada")
			g, err := f.svc.CreateGroup(ctx, grace, "crew", "", 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.AddGroupMember(ctx, grace, g.ID, ada.ID); err != nil {
				t.Fatal(err)
			}
			removedBeforeCheck(t, f, db, ada, g.ID,
				func() error { return f.svc.RemoveGroupMember(ctx, grace, g.ID, ada.ID) },
				func() error { _, err := f.svc.AddGroupMember(ctx, grace, g.ID, ada.ID); return err })
		})
	}
}

// removedBeforeCheck ends u's membership of conversation id with leave,
// and while the Service waits in db's gap, makes u a member again with
// again, opens the conversation on a hub client of u, and then lets the
// leave go on: the client must still follow the conversation.
func removedBeforeCheck(t *testing.T, f *fixture, db *leaveGapStore, u chat.User, id int64, leave, again func() error) {
	ctx := context.Background()
	h := hub.New(f.broker, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { h.Close(context.Background()) })
	c, err := h.Register(u.ID, 0, 64, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Unregister(c) }) // before Close, which waits for it
	left := make(chan error, 1)
	go func() { left <- leave() }()
	select {
	case <-db.committed:
	case err := <-left:
		t.Fatalf("the leave ended before its store call did: %v", err)
	}
	if err := again(); err != nil {
		close(db.release)
		t.Fatalf("member again: %v", err)
	}
	mark, err := f.svc.CheckMemberAt(ctx, u, id)
	if err == nil {
		err = h.SubscribeMember(c, chat.ConvTopic(id), mark)
	}
	close(db.release)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if err := <-left; err != nil {
		t.Fatalf("leave: %v", err)
	}

	// The removed reaches the client; the open is kept or cut by then.
	var removed chat.Event
	deadline := time.Now().Add(10 * time.Second)
	for removed.Type == "" && time.Now().Before(deadline) {
		for _, it := range c.Next(nil) {
			if it.Event.Type == chat.EventRemoved && it.Event.ConvID == id {
				removed = it.Event
			}
		}
		time.Sleep(time.Millisecond)
	}
	if removed.Type == "" {
		t.Fatal("the removed never reached the client")
	}
	if !h.Follows(c, chat.ConvTopic(id)) {
		t.Errorf("the open made on the membership after the leave was cut: removed user_seq %d, mark %+v; want user_seq ≤ mark", removed.UserSeq, mark)
	}
}

// checkGapStore is a Store whose LastUserEvent, once armed, waits for
// release after reading: what the caller reads next comes only then.
type checkGapStore struct {
	chat.Store
	armed   atomic.Bool   // the next LastUserEvent waits
	read    chan struct{} // closed once the armed read is done
	release chan struct{}
}

func (s *checkGapStore) LastUserEvent(ctx context.Context, userID int64) (int64, error) {
	n, err := s.Store.LastUserEvent(ctx, userID)
	if s.armed.CompareAndSwap(true, false) {
		close(s.read)
		<-s.release
	}
	return n, err
}

// TestRemovedBetweenCheckReads: an open's check reads the membership and
// the user's log position. Should it read the log apart (it reads both in
// one statement, Conversation.UserSeq), a leave and an entry again between
// the reads would leave the mark below the leave's removed, which ended
// the membership before the one found, and the removed would cut the open
// (over Redis, where it can reach the hub after the open's subscription).
// The store here holds any read of the log apart while Ada leaves and
// enters again; the mark must be at or above the removed.
func TestRemovedBetweenCheckReads(t *testing.T) {
	ctx := context.Background()
	db := &checkGapStore{read: make(chan struct{}), release: make(chan struct{})}
	db.Store = newFixture(t, chat.Config{}).store
	f := newFixtureOn(t, chat.Config{}, inmem.NewPresence(), db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	r := f.enter(t, ada, "lobby")

	db.armed.Store(true)
	type result struct {
		mark chat.Mark
		err  error
	}
	checked := make(chan result, 1)
	go func() {
		m, err := f.svc.CheckMemberAt(ctx, ada, r.ID)
		checked <- result{m, err}
	}()
	var res result
	gap := false
	select {
	case <-db.read: // the log read apart: leave and enter in the gap
		gap = true
	case res = <-checked:
		db.armed.Store(false) // the check read no log apart
	case <-time.After(10 * time.Second):
		t.Fatal("the check did not end within 10s")
	}
	err := f.svc.LeaveRoom(ctx, ada, r.ID)
	if err == nil {
		_, err = f.svc.EnterRoom(ctx, ada, "lobby")
	}
	close(db.release)
	if err != nil {
		t.Fatalf("leave and enter again: %v", err)
	}
	if gap {
		res = <-checked
	} else if res.err == nil {
		// The check was over before the leave: check again, now that
		// the removed is logged, as an open after it would.
		res.mark, res.err = f.svc.CheckMemberAt(ctx, ada, r.ID)
	}
	if res.err != nil {
		t.Fatalf("CheckMemberAt: %v", res.err)
	}
	removed := loggedRemoved(t, f, ada, r.ID)
	if res.mark.UserSeq < removed {
		t.Errorf("the check found Ada a member again, with mark %+v, below the removed (user_seq %d) of the membership before", res.mark, removed)
	}
}

// loggedRemoved returns the UserSeq of the newest removed of conversation
// id in u's event log, which must hold one.
func loggedRemoved(t *testing.T, f *fixture, u chat.User, id int64) int64 {
	t.Helper()
	evs, err := f.svc.UserEvents(context.Background(), u, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var removed int64
	for _, ev := range evs {
		if ev.Type == chat.EventRemoved && ev.ConvID == id {
			removed = ev.UserSeq
		}
	}
	if removed == 0 {
		t.Fatalf("no removed of conversation %d in %s's log %+v", id, u.Name, evs)
	}
	return removed
}
