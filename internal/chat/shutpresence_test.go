package chat_test

import (
	"context"
	"errors"
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
