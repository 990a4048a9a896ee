package web

import (
	"testing"
	"time"
)

// TestLeftLimitsBounded: the limits left by ended connections are held at
// most max per key, and none that is full: a user who ends many
// connections leaves no more than the cap on their connections.
func TestLeftLimitsBounded(t *testing.T) {
	const max = 4
	var l leftLimits[int64]
	used := func() connLimits {
		var c connLimits
		c.send.allow(0.001, 1)
		return c
	}
	for range 100 {
		l.put(1, used(), max)
	}
	l.put(2, connLimits{send: bucket(time.Now().Add(-time.Second).UnixNano())}, max) // full again: not held
	l.put(3, connLimits{}, max)                                                      // never limited: not held
	if n := len(l.m[1]); n != max {
		t.Errorf("user 1 left %d limits after 100 connections; want %d", n, max)
	}
	if len(l.m) != 1 {
		t.Errorf("limits held for %d keys; want 1", len(l.m))
	}
	for i := range max {
		if c := l.take(1); c.send == 0 {
			t.Fatalf("take %d of %d: none", i+1, max)
		}
	}
	if c := l.take(1); c.send != 0 || len(l.m) != 0 {
		t.Errorf("after taking all: took %v, %d keys held; want none", c, len(l.m))
	}
}
