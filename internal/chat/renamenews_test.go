package chat_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/inmem"
)

// downBroker refuses every publish, as a Redis that is down does.
type downBroker struct{ *inmem.Broker }

func (downBroker) Publish(context.Context, chat.Topic, chat.Event) error {
	return errors.New("redis: unreachable")
}

// gateBroker holds every publish until open is closed (or its context
// is done), then publishes it; started has one value per publish begun.
type gateBroker struct {
	*inmem.Broker
	open    chan struct{}
	started chan struct{}
}

func (b *gateBroker) Publish(ctx context.Context, t chat.Topic, ev chat.Event) error {
	select {
	case b.started <- struct{}{}:
	default:
	}
	select {
	case <-b.open:
		return b.Broker.Publish(ctx, t, ev)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// syncBuffer is a log destination safe for several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestRenameNewsLostLogsOnce: Ada, a friend of Grace's, a member of
// three groups and present in two rooms, renames herself while no
// publish goes through. The failures are one warning, with their count,
// not one line each.
func TestRenameNewsLostLogsOnce(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	gr, _ := f.signIn(t, "grace@example.com", "Grace")
	f.befriend(t, ada, gr)
	for _, name := range []string{"one", "two", "three"} {
		if _, err := f.svc.CreateGroup(ctx, ada, name, "", 0); err != nil {
			t.Fatalf("CreateGroup(%s): %v", name, err)
		}
	}
	p := inmem.NewPresence()
	for _, name := range []string{"lobby", "hall"} {
		r := f.enter(t, ada, name)
		if _, err := p.Add(ctx, r.ID, ada.ID); err != nil {
			t.Fatal(err)
		}
	}

	var logs syncBuffer
	b := downBroker{inmem.NewBroker()}
	t.Cleanup(func() { b.Broker.Close() })
	svc := chat.NewService(chat.Config{Now: f.clock.Now}, chat.Deps{
		Store: f.store, Broker: b, Presence: p, Limiter: inmem.NewLimiter(f.clock.Now),
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if _, err := svc.SetName(ctx, ada, "Ada Lovelace"); err != nil {
		t.Fatalf("SetName: %v", err)
	}
	// The news may go out after SetName returns: wait for its warning,
	// then for the rest of it (Close waits for the news being told).
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), "level=WARN") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	svc.Close()
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	// Ada's topic, Grace's, three groups, two rooms: 7 publishes.
	if len(lines) != 1 || !strings.Contains(lines[0], "failed=7") {
		t.Errorf("logged %d lines:\n%s\nwant one warning counting 7 failed publishes", len(lines), logs.String())
	}
}

// TestRenameNewsFlushedAndClosed: Ada renames herself twice while
// publishes hang. A shutdown's FlushRenames lets the news due go out once
// the broker answers, the second name last; news that still hangs at
// Close is dropped, without holding Close up.
func TestRenameNewsFlushedAndClosed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	b := &gateBroker{Broker: inmem.NewBroker(), open: make(chan struct{}), started: make(chan struct{}, 64)}
	t.Cleanup(func() { b.Broker.Close() })
	svc := chat.NewService(chat.Config{Now: f.clock.Now}, chat.Deps{
		Store: f.store, Broker: b, Presence: inmem.NewPresence(), Limiter: inmem.NewLimiter(f.clock.Now),
	})
	var (
		mu    sync.Mutex
		names []string
	)
	cancel, err := b.Broker.Subscribe(chat.UserTopic(ada.ID), func(ev chat.Event) {
		mu.Lock()
		defer mu.Unlock()
		names = append(names, ev.User.Name)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	u, err := svc.SetName(ctx, ada, "Ada L")
	if err != nil {
		t.Fatalf("SetName: %v", err)
	}
	if _, err := svc.SetName(ctx, u, "Ada Lovelace"); err != nil {
		t.Fatalf("SetName: %v", err)
	}
	<-b.started // the first news hangs
	close(b.open)
	fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
	defer fcancel()
	svc.FlushRenames(fctx)
	if fctx.Err() != nil {
		t.Fatalf("FlushRenames waited for its context: the news due was not told")
	}
	mu.Lock()
	if len(names) == 0 || names[len(names)-1] != "Ada Lovelace" {
		t.Errorf("Ada's topic was told %q; want Ada Lovelace last", names)
	}
	mu.Unlock()

	// News that hangs at Close is dropped, and Close returns.
	b2 := newStuckBroker(t, true)
	svc2 := chat.NewService(chat.Config{Now: f.clock.Now}, chat.Deps{
		Store: f.store, Broker: b2, Presence: inmem.NewPresence(), Limiter: inmem.NewLimiter(f.clock.Now),
	})
	me, err := svc2.User(ctx, ada.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc2.SetName(ctx, me, "Ada King"); err != nil {
		t.Fatalf("SetName: %v", err)
	}
	<-b2.started
	svc2.Close()
}

// TestFlushRenamesWhileRenaming: renames answered while a shutdown's
// FlushRenames waits (a request its server's Shutdown gave up on) start
// tellers as it waits; the two must not race (go test -race), and
// FlushRenames returns once none is left.
func TestFlushRenamesWhileRenaming(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{})
	var users []chat.User
	for i := range 4 {
		u, _ := f.signIn(t, fmt.Sprintf("u%d@example.com", i), fmt.Sprintf("User %d", i))
		users = append(users, u)
	}
	done := make(chan error, 1)
	go func() {
		for round := range 5 {
			for i, u := range users {
				nu, err := f.svc.SetName(ctx, u, fmt.Sprintf("User %d.%d", i, round))
				if err != nil {
					done <- err
					return
				}
				users[i] = nu
			}
		}
		done <- nil
	}()
	for flushes := 0; ; flushes++ {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		f.svc.FlushRenames(fctx)
		err := fctx.Err()
		cancel()
		if err != nil {
			t.Fatalf("FlushRenames %d waited for its context with no rename hanging", flushes)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("SetName: %v", err)
			}
			return
		default:
		}
	}
}
