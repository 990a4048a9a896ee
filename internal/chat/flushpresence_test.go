package chat_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/inmem"
)

// heldSeen is a Store whose last-seen writes wait for release; entered is
// closed as the first begins, and wrote is set once one has ended.
type heldSeen struct {
	chat.Store
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	wrote   atomic.Bool
}

// newHeldSeen holds the last-seen writes of store.
func newHeldSeen(store chat.Store) *heldSeen {
	return &heldSeen{Store: store, entered: make(chan struct{}), release: make(chan struct{})}
}

// hold is what a last-seen write waits for: release, or the end of ctx.
func (s *heldSeen) hold(ctx context.Context) error {
	s.once.Do(func() { close(s.entered) })
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *heldSeen) SetLastSeen(ctx context.Context, userID int64, at time.Time) error {
	if err := s.hold(ctx); err != nil {
		return err
	}
	err := s.Store.SetLastSeen(ctx, userID, at)
	s.wrote.Store(true)
	return err
}

// TestFlushPresenceWaitsForTimerUnderWay: a user whose grace period ended
// just before FlushPresence is being counted out by their timer as it
// runs; FlushPresence waits for that (within its context), so that a node
// shutting down closes its store and broker after the user's last-seen
// time is written and they are counted out. Before, FlushPresence saw
// only the users whose timers had not fired, and returned while the
// write was under way, to be cut by the store's close.
func TestFlushPresenceWaitsForTimerUnderWay(t *testing.T) {
	p := inmem.NewPresence()
	st := newHeldSeen(sqliteStore(t))
	var release sync.Once
	free := func() { release.Do(func() { close(st.release) }) }
	t.Cleanup(free)
	f := newFixtureOn(t, chat.Config{PresenceGrace: time.Millisecond}, p, st)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	ctx := context.Background()
	if err := f.svc.Connect(ctx, ada); err != nil {
		t.Fatal(err)
	}
	f.svc.Disconnect(ada)
	select {
	case <-st.entered: // the timer fired, and is writing
	case <-time.After(10 * time.Second):
		t.Fatal("Ada not counted out 10 s after a grace period of 1 ms")
	}

	type result struct{ wrote, online bool }
	flushed := make(chan result, 1)
	go func() {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		f.svc.FlushPresence(fctx)
		online, _, err := p.State(ctx, chat.Everywhere, ada.ID)
		flushed <- result{st.wrote.Load(), online || err != nil}
	}()
	var got result
	select {
	case got = <-flushed: // returned with the write held: wrong whatever it found
	case <-time.After(100 * time.Millisecond):
		free()
		select {
		case got = <-flushed:
		case <-time.After(15 * time.Second):
			t.Fatal("FlushPresence did not return within 15 s")
		}
	}
	free()
	if !got.wrote || got.online {
		t.Errorf("FlushPresence returned with Ada's last-seen write done = %v, Ada online = %v; want her counted out first", got.wrote, got.online)
	}
}
