package chat_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/inmem"
)

// stuckBroker is a Broker whose Publish, while stuck, blocks until its
// context is done (or the test ends), as a publish to a Redis that does
// not answer does; it reports each publish's context, as it was when the
// publish began, on started.
type stuckBroker struct {
	*inmem.Broker
	stuck   bool
	started chan pubCtx
	release chan struct{}
}

type pubCtx struct {
	err error
}

func newStuckBroker(t *testing.T, stuck bool) *stuckBroker {
	b := &stuckBroker{Broker: inmem.NewBroker(), stuck: stuck, started: make(chan pubCtx, 64), release: make(chan struct{})}
	t.Cleanup(func() { close(b.release); b.Broker.Close() })
	return b
}

func (b *stuckBroker) Publish(ctx context.Context, t chat.Topic, ev chat.Event) error {
	select {
	case b.started <- pubCtx{err: ctx.Err()}:
	default:
	}
	if !b.stuck {
		return b.Broker.Publish(ctx, t, ev)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-b.release:
		return nil
	}
}

// TestCloseWhilePublishStuck: Service.Close returns promptly while a
// republish job's publish is stuck in the broker.
func TestCloseWhilePublishStuck(t *testing.T) {
	ctx := context.Background()
	db := &lostWriteStore{Store: newFixture(t, chat.Config{}).store}
	f := lostFixture(t, db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	b := newStuckBroker(t, true)
	svc := chat.NewService(chat.Config{RepublishWait: time.Millisecond, Now: f.clock.Now}, chat.Deps{
		Store: db, Broker: b, Presence: inmem.NewPresence(), Limiter: inmem.NewLimiter(f.clock.Now),
	})

	db.lose.Store(true)
	if _, err := svc.CreateGroup(ctx, ada, "team", "", 0); err == nil {
		t.Fatal("CreateGroup = nil; want the store's error")
	}
	select {
	case <-b.started: // the republish of the creation is stuck
	case <-time.After(3 * time.Second):
		t.Fatal("no republish of the creation")
	}
	closed := make(chan struct{})
	go func() { svc.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatal("Service.Close still waiting after 3s for a stuck publish")
	}
}

// TestPublishOutlivesRequest: a change whose request is cancelled once
// the store made it is published all the same.
func TestPublishOutlivesRequest(t *testing.T) {
	db := &cancelAfterStore{Store: newFixture(t, chat.Config{}).store}
	f := newFixtureOn(t, chat.Config{}, inmem.NewPresence(), db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	b := newStuckBroker(t, false)
	svc := chat.NewService(chat.Config{Now: f.clock.Now}, chat.Deps{
		Store: db, Broker: b, Presence: inmem.NewPresence(), Limiter: inmem.NewLimiter(f.clock.Now),
	})
	t.Cleanup(svc.Close)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db.mu.Lock()
	db.cancel = cancel
	db.mu.Unlock()
	if _, err := svc.CreateGroup(ctx, ada, "team", "", 0); err != nil {
		t.Fatal(err)
	}
	n := 0
	for len(b.started) > 0 {
		pctx := <-b.started
		n++
		if pctx.err != nil {
			t.Errorf("publish context: %v; want live", pctx.err)
		}
	}
	if n == 0 {
		t.Error("CreateGroup published nothing")
	}
}

// cancelAfterStore cancels the request of a group creation once the
// store has made it.
type cancelAfterStore struct {
	chat.Store
	mu     sync.Mutex
	cancel context.CancelFunc
}

func (s *cancelAfterStore) CreateGroup(ctx context.Context, g chat.NewGroup, created chat.Event) (chat.Group, chat.Message, chat.Event, error) {
	gr, m, logged, err := s.Store.CreateGroup(ctx, g, created)
	s.mu.Lock()
	if s.cancel != nil {
		s.cancel()
	}
	s.mu.Unlock()
	return gr, m, logged, err
}
