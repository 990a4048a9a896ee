package inmem_test

import (
	"context"
	"testing"
	"time"

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
