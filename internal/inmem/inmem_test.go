package inmem_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/chat/chattest"
	"github.com/parley-chat/parley/internal/inmem"
)

func TestBroker(t *testing.T) {
	chattest.TestBroker(t, func(t *testing.T) chat.Broker {
		b := inmem.NewBroker()
		t.Cleanup(func() { b.Close() })
		return b
	})
}

func TestPresenceConformance(t *testing.T) {
	chattest.TestPresence(t, func(t *testing.T) chat.Presence { return inmem.NewPresence() })
}

func TestLimiterConformance(t *testing.T) {
	chattest.TestLimiter(t, func(t *testing.T) chat.Limiter { return inmem.NewLimiter(nil) })
}

func TestBrokerClosed(t *testing.T) {
	b := inmem.NewBroker()
	b.Close()
	if err := b.Publish(context.Background(), chat.ConvTopic(1), chat.Event{}); err == nil {
		t.Error("Publish after Close = nil; want an error")
	}
	if _, err := b.Subscribe(chat.ConvTopic(1), func(chat.Event) {}); err == nil {
		t.Error("Subscribe after Close = nil error; want an error")
	}
}

func TestPresenceCountsConnectionsOnce(t *testing.T) {
	ctx := context.Background()
	p := inmem.NewPresence()
	steps := []struct {
		add        bool
		user       int64
		transition bool
	}{
		{true, 1, true},   // first tab: online
		{true, 1, false},  // second tab
		{true, 2, true},   // another user
		{false, 1, false}, // one tab closes: still online
		{false, 1, true},  // last tab: offline
		{false, 1, false}, // extra remove is harmless
	}
	for i, s := range steps {
		var got bool
		var err error
		if s.add {
			got, err = p.Add(ctx, 10, s.user)
		} else {
			got, err = p.Remove(ctx, 10, s.user)
		}
		if err != nil || got != s.transition {
			t.Fatalf("step %d (add=%v user=%d) = %v, %v; want %v", i, s.add, s.user, got, err, s.transition)
		}
	}
	online, _, err := p.Online(ctx, 10, 100)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{2}, online); diff != "" {
		t.Errorf("Online mismatch (-want +got):\n%s", diff)
	}
}

func TestPresenceConcurrent(t *testing.T) {
	ctx := context.Background()
	p := inmem.NewPresence()
	var mu sync.Mutex
	firsts, lasts := 0, 0
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, _ := p.Add(ctx, 1, 7)
			l, _ := p.Remove(ctx, 1, 7)
			mu.Lock()
			defer mu.Unlock()
			if f {
				firsts++
			}
			if l {
				lasts++
			}
		}()
	}
	wg.Wait()
	if firsts != lasts || firsts < 1 {
		t.Errorf("online transitions = %d, offline = %d; want equal and at least 1", firsts, lasts)
	}
	if online, n, _ := p.Online(ctx, 1, 100); len(online) != 0 || n != 0 {
		t.Errorf("Online = %v; want none", online)
	}
}

func TestLimiter(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := inmem.NewLimiter(func() time.Time { return now })
	for i := range 3 {
		if ok, _, _ := l.Allow(ctx, "k", 3, time.Minute); !ok {
			t.Fatalf("event %d refused; want allowed", i+1)
		}
	}
	ok, after, err := l.Allow(ctx, "k", 3, time.Minute)
	if ok || err != nil || after != time.Minute {
		t.Fatalf("4th event = %v, %v, %v; want refused, retry after 1m", ok, after, err)
	}
	if ok, _, _ := l.Allow(ctx, "other", 3, time.Minute); !ok {
		t.Error("another key was refused")
	}
	now = now.Add(30 * time.Second)
	if ok, after, _ := l.Allow(ctx, "k", 3, time.Minute); ok || after != 30*time.Second {
		t.Errorf("after 30s = %v, retry %v; want refused, retry after 30s", ok, after)
	}
	now = now.Add(31 * time.Second)
	if ok, _, _ := l.Allow(ctx, "k", 3, time.Minute); !ok {
		t.Error("after the window the key is still refused")
	}
}
