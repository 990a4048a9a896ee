package web

import (
	"testing"

	"golang.org/x/time/rate"
)

// TestLeftLimitsBounded: the limits left by ended connections are held at
// most max per key, and none that is full: a user who ends many
// connections leaves no more than the cap on their connections.
func TestLeftLimitsBounded(t *testing.T) {
	const max = 4
	var l leftLimits[int64]
	used := func() connLimits {
		lim := rate.NewLimiter(0.001, 1)
		lim.Allow()
		return connLimits{send: lim}
	}
	for range 100 {
		l.put(1, used(), max)
	}
	l.put(2, connLimits{send: rate.NewLimiter(0.001, 1)}, max) // full: not held
	l.put(3, connLimits{}, max)                                // never limited: not held
	if n := len(l.m[1]); n != max {
		t.Errorf("user 1 left %d limits after 100 connections; want %d", n, max)
	}
	if len(l.m) != 1 {
		t.Errorf("limits held for %d keys; want 1", len(l.m))
	}
	for i := range max {
		if c := l.take(1); c.send == nil {
			t.Fatalf("take %d of %d: none", i+1, max)
		}
	}
	if c := l.take(1); c.send != nil || len(l.m) != 0 {
		t.Errorf("after taking all: took %v, %d keys held; want none", c, len(l.m))
	}
}
