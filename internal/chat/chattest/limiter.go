package chattest

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// TestLimiter checks that a Limiter implementation keeps the chat.Limiter
// contract on the real clock, with short windows. open returns a fresh
// Limiter (with its own keys) for each subtest.
func TestLimiter(t *testing.T, open func(t *testing.T) chat.Limiter) {
	const window = 300 * time.Millisecond
	ctx := context.Background()
	allowN := func(t *testing.T, l chat.Limiter, key string, n int) {
		t.Helper()
		for i := range n {
			ok, after, err := l.Allow(ctx, key, n, window)
			if err != nil || !ok || after != 0 {
				t.Fatalf("Allow(%q) event %d = %v, %v, %v; want allowed", key, i+1, ok, after, err)
			}
		}
	}
	refused := func(t *testing.T, l chat.Limiter, key string, n int) time.Duration {
		t.Helper()
		ok, after, err := l.Allow(ctx, key, n, window)
		if err != nil || ok {
			t.Fatalf("Allow(%q) event %d = %v, %v; want refused", key, n+1, ok, err)
		}
		if after <= 0 || after > window {
			t.Fatalf("Allow(%q) event %d: retryAfter = %v; want in (0, %v]", key, n+1, after, window)
		}
		return after
	}
	// allowedWithin polls (refusals do not count) until key is allowed
	// again, failing after limit.
	allowedWithin := func(t *testing.T, l chat.Limiter, key string, n int, limit time.Duration) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for {
			ok, _, err := l.Allow(ctx, key, n, window)
			if err != nil {
				t.Fatalf("Allow(%q): %v", key, err)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("Allow(%q) still refused %v after the window", key, limit)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	t.Run("AllowsNPerWindow", func(t *testing.T) {
		l := open(t)
		allowN(t, l, "send:1", 3)
		refused(t, l, "send:1", 3)
		refused(t, l, "send:1", 3) // a refusal does not reset or extend the window
	})

	t.Run("KeysAreSeparate", func(t *testing.T) {
		l := open(t)
		allowN(t, l, "login:a@example.com", 2)
		refused(t, l, "login:a@example.com", 2)
		allowN(t, l, "login:b@example.com", 2)
		refused(t, l, "login:b@example.com", 2)
	})

	t.Run("AllowsAgainAfterWindow", func(t *testing.T) {
		l := open(t)
		allowN(t, l, "k", 2)
		after := refused(t, l, "k", 2)
		time.Sleep(after)
		allowedWithin(t, l, "k", 2, 5*window)
		// Once the whole window has passed, every earlier event has left it.
		time.Sleep(window)
		allowN(t, l, "k", 2)
		refused(t, l, "k", 2)
	})

	t.Run("Undo", func(t *testing.T) {
		l := open(t)
		const n = 2
		for i := range n {
			if ok, _, err := l.Allow(ctx, "u", n, time.Hour); err != nil || !ok {
				t.Fatalf("Allow(u) event %d = %v, %v; want allowed", i+1, ok, err)
			}
		}
		if ok, _, err := l.Allow(ctx, "u", n, time.Hour); err != nil || ok {
			t.Fatalf("Allow(u) event %d = %v, %v; want refused", n+1, ok, err)
		}
		if err := l.Undo(ctx, "u"); err != nil {
			t.Fatalf("Undo(u): %v", err)
		}
		if ok, _, err := l.Allow(ctx, "u", n, time.Hour); err != nil || !ok {
			t.Fatalf("Allow(u) after Undo = %v, %v; want allowed", ok, err)
		}
		if ok, _, err := l.Allow(ctx, "u", n, time.Hour); err != nil || ok {
			t.Fatalf("Allow(u) again = %v, %v; want refused", ok, err)
		}
		if err := l.Undo(ctx, "never"); err != nil {
			t.Fatalf("Undo(never) = %v; want nil", err)
		}
		if ok, _, err := l.Allow(ctx, "never", 1, time.Hour); err != nil || !ok {
			t.Fatalf("Allow(never) after Undo = %v, %v; want allowed", ok, err)
		}
	})

	t.Run("OnlyOne", func(t *testing.T) {
		l := open(t)
		allowN(t, l, "one", 1)
		refused(t, l, "one", 1)
		allowN(t, l, "two", 1)
	})
}
