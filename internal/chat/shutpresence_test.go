package chat_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/inmem"
)

// closingSeen is a Store whose last-seen writes fail, as a closed
// database's do, once closed is set; late counts those.
type closingSeen struct {
	chat.Store
	closed atomic.Bool
	late   atomic.Int32
}

func (s *closingSeen) SetLastSeen(ctx context.Context, userID int64, at time.Time) error {
	if s.closed.Load() {
		s.late.Add(1)
		return errors.New("sql: database is closed")
	}
	return s.Store.SetLastSeen(ctx, userID, at)
}

// TestDisconnectAfterFlushPresence: a connection that ends after the
// presence flush (its session ended late, the hub's close having timed
// out) leaves nothing to run once the store is closing. Before, its
// Disconnect started a grace timer that fired after the flush, its
// last-seen write failing on the closed store (or never made, the
// process gone).
func TestDisconnectAfterFlushPresence(t *testing.T) {
	st := &closingSeen{Store: sqliteStore(t)}
	f := newFixtureOn(t, chat.Config{PresenceGrace: time.Millisecond}, inmem.NewPresence(), st)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	ctx := context.Background()
	if err := f.svc.Connect(ctx, ada); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	f.svc.FlushPresence(fctx)
	st.closed.Store(true) // the store closes next
	f.svc.Disconnect(ada)
	// A grace period of 1 ms: a timer started would have written within
	// the second.
	for range 200 {
		if st.late.Load() > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := st.late.Load(); n > 0 {
		t.Errorf("last-seen writes after FlushPresence returned (the store closing) = %d; want 0", n)
	}
}

// TestFlushPresenceCountsOutOpenConnections: a user still connected as
// the node shuts down (the hub's close timed out before their session
// ended) is counted out by the flush, with the shutdown's last-seen time,
// and a Disconnect after counts nothing out again. Before, only the
// connections already ended were: with the in-process Presence, nothing
// else ever stored when the user was last seen.
func TestFlushPresenceCountsOutOpenConnections(t *testing.T) {
	p := inmem.NewPresence()
	st := &closingSeen{Store: sqliteStore(t)}
	f := newFixtureOn(t, chat.Config{PresenceGrace: time.Hour}, p, st)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	ctx := context.Background()
	for range 2 { // two tabs
		if err := f.svc.Connect(ctx, ada); err != nil {
			t.Fatal(err)
		}
	}
	f.svc.Disconnect(ada) // one tab closed: its grace period runs
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	f.svc.FlushPresence(fctx)
	seen, err := st.LastSeen(ctx, []int64{ada.ID})
	if err != nil {
		t.Fatal(err)
	}
	online, _, err := p.State(ctx, chat.Everywhere, ada.ID)
	if err != nil {
		t.Fatal(err)
	}
	if seen[ada.ID].IsZero() || online {
		t.Errorf("after FlushPresence with a connection of Ada's open: last seen %v, online = %v; want her counted out, last seen now", seen[ada.ID], online)
	}
	st.closed.Store(true)
	f.svc.Disconnect(ada) // her session ends late
	if n := st.late.Load(); n > 0 {
		t.Errorf("last-seen writes after FlushPresence returned = %d; want 0", n)
	}
}

// watched is a Presence that keeps the function given to Watch, for a
// test to report presences that ended on their own (a shared Presence's
// Close reaping this node's).
type watched struct {
	chat.Presence
	fn atomic.Pointer[func(convID, userID int64, online bool)]
}

func (p *watched) Watch(fn func(convID, userID int64, online bool)) { p.fn.Store(&fn) }

// heldAfterClose is a heldSeen that counts in late each call to the store
// after closed is set.
type heldAfterClose struct {
	*heldSeen
	closed atomic.Bool
	late   atomic.Int32
}

func (s *heldAfterClose) SetLastSeen(ctx context.Context, userID int64, at time.Time) error {
	if err := s.hold(ctx); err != nil {
		return err
	}
	if s.closed.Load() {
		s.late.Add(1)
	}
	return s.Store.SetLastSeen(ctx, userID, at)
}

func (s *heldAfterClose) User(ctx context.Context, id int64) (chat.User, error) {
	if s.closed.Load() {
		s.late.Add(1)
	}
	return s.Store.User(ctx, id)
}

// TestCloseEndsWatchedPresenceWrites: a presence the Presence reports
// ended (a shared one's Close reaping this node's, which Client.Close
// stops waiting for after redis.CloseTimeout) writes nothing once the
// Service's Close has returned, since the store closes next: Close ends
// those under way and waits for them, and those reported after do
// nothing. Before, each ran on with a context of 10 s of its own, writing
// to a store that was closing.
func TestCloseEndsWatchedPresenceWrites(t *testing.T) {
	p := &watched{Presence: inmem.NewPresence()}
	st := &heldAfterClose{heldSeen: newHeldSeen(sqliteStore(t))}
	var once sync.Once
	free := func() { once.Do(func() { close(st.release) }) }
	t.Cleanup(free)
	f := newFixtureOn(t, chat.Config{}, p, st)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	bob, _ := f.signIn(t, "bob@example.com", "Bob")
	fn := *p.fn.Load()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(chat.Everywhere, ada.ID, false)
	}()
	select {
	case <-st.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("Ada's last-seen write not begun within 10 s")
	}
	f.svc.Close()
	st.closed.Store(true) // the store closes next
	free()
	fn(chat.Everywhere, bob.ID, false) // reported after Close
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the Watch function did not return within 15 s")
	}
	if n := st.late.Load(); n > 0 {
		t.Errorf("store calls of presences reported ended, after the Service's Close returned = %d; want 0", n)
	}
}
