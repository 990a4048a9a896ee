package web

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
)

// TestUserLimitsShared: a user's connections share one set of limits,
// kept after the last ends until full again, and given up once full.
func TestUserLimitsShared(t *testing.T) {
	var u userLimits
	a, b := u.acquire(1), u.acquire(1)
	if a != b {
		t.Fatal("two connections of user 1 got limits of their own; want the user's")
	}
	if c := u.acquire(2); c == a {
		t.Fatal("user 2 got user 1's limits")
	} else {
		u.release(2, c) // never used: full
	}
	if _, ok := u.m[2]; ok {
		t.Error("user 2's limits, full, are held after their connection ended")
	}
	a.send.allow(0.001, 1)
	if b.send.allow(0.001, 1) {
		t.Fatal("the connections of user 1 hold two send buckets")
	}
	u.release(1, a)
	u.release(1, b)
	c := u.acquire(1)
	if c != a || c.send.allow(0.001, 1) {
		t.Error("user 1 connected again after their connections ended, and has a full burst again")
	}
	u.release(1, c)
}

// TestUserLimitsBounded: limits no connection holds go once full again,
// at a sweep, so the users held stay bounded; those a connection holds
// stay, full or not.
func TestUserLimitsBounded(t *testing.T) {
	var u userLimits
	held := u.acquire(0)
	held.send.allow(1, 1)
	for id := range int64(1000) {
		l := u.acquire(id + 1)
		l.send.allow(1, 1) // full again in a second
		u.release(id+1, l)
	}
	u.mu.Lock()
	u.sweepLocked(time.Now().Add(2 * time.Minute))
	n, ok := len(u.m), u.m[0] == held
	u.mu.Unlock()
	if n != 1 || !ok {
		t.Errorf("after a sweep with all full: limits held for %d users (user 0's among them: %v); want user 0's only, which a connection holds", n, ok)
	}
}

// TestUserLimitsReleasedOnFailedStart: a session whose start fails (the
// hub is shut down) gives its user's limits back, which are then swept
// once full: a count left behind would hold them for good.
func TestUserLimitsReleasedOnFailedStart(t *testing.T) {
	h := hub.New(nil, slog.New(slog.DiscardHandler))
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := &server{cfg: DefaultConfig(), hub: h}
	n := s.newSession(chat.User{ID: 7, Name: "Ada"})
	if got := n.lims.conns; got != 1 {
		t.Fatalf("a new session counts %d connections holding its limits; want 1", got)
	}
	if err := n.start(context.Background(), 1, nil, nil); !errors.Is(err, hub.ErrClosed) {
		t.Fatalf("start on a closed hub = %v; want %v", err, hub.ErrClosed)
	}
	if got := n.lims.conns; got != 0 {
		t.Errorf("after a failed start, %d connections hold the limits; want 0", got)
	}
	if _, ok := s.limits.m[7]; ok {
		t.Error("after a failed start, the user's limits (full) are still held")
	}
}

// TestOpenLimitsBounded: the limiters of how often users open connections
// (allowOpen, and per address on the Django Channels endpoint) go once
// full again, at a sweep, however many users or addresses opened one; an
// open refused leaves the limiter where it was.
func TestOpenLimitsBounded(t *testing.T) {
	var u userLimits
	for id := range int64(1000) {
		if err := u.allowOpen(id, 1, 1); err != nil {
			t.Fatalf("first open of user %d: %v", id, err)
		}
	}
	if err := u.allowOpen(999, 0.001, 1); err == nil {
		t.Fatal("second open of user 999 with a burst of 1 went through")
	} else if e := chat.AsError(err); e == nil || e.Code != chat.CodeRateLimited || e.RetryAfter <= 0 {
		t.Fatalf("second open of user 999 = %v; want rate_limited with a retry-after", err)
	}
	u.mu.Lock()
	u.sweepLocked(time.Now().Add(2 * time.Minute))
	n := len(u.m)
	u.mu.Unlock()
	if n != 0 {
		t.Errorf("after a sweep with all full: open limits held for %d users; want none", n)
	}

	var a restLimits[string]
	for i := range 1000 {
		a.take(string(rune('a'+i%26))+strconv.Itoa(i), 1, 1, time.Now())
	}
	a.take("late", 1, 1, time.Now().Add(2*time.Minute))
	a.mu.Lock()
	n = len(a.m)
	a.mu.Unlock()
	if n > 1 {
		t.Errorf("after a sweep with all full: open limits held for %d addresses; want the newest only", n)
	}
}

// TestUserLimitsSmall: a user's limits cost one allocation, their
// sharedLimits, whatever they take from (a first open of a connection, a
// first send, a first other frame), not a limiter more for each: every
// connected user holds them (acquire), nearly every connection takes from
// the limit of other frames (an open frame), and an idle connection's
// memory is a target (docs/benchmarks.md, target 5).
func TestUserLimitsSmall(t *testing.T) {
	u := userLimits{m: make(map[int64]*sharedLimits, 2000), sweep: time.Now(), sweepAt: 4000}
	id := int64(0)
	allocs := testing.AllocsPerRun(1000, func() {
		id++
		if err := u.allowOpen(id, 2, 20); err != nil {
			t.Fatalf("first open of user %d: %v", id, err)
		}
		l := u.acquire(id)
		if !l.send.allow(10, 20) || !l.other.allow(50, 100) {
			t.Fatalf("user %d's first send or other frame refused", id)
		}
	})
	if allocs != 1 {
		t.Errorf("a user's first open, send and other frame allocate %v times; want 1 (their sharedLimits)", allocs)
	}
}

// TestSharedBucketConcurrent: connections of a user taking from their
// sharedBucket at once get its burst, no more and no less.
func TestSharedBucketConcurrent(t *testing.T) {
	const burst, takers, each = 50, 8, 100
	var b sharedBucket
	var wg sync.WaitGroup
	var got atomic.Int64
	for range takers {
		wg.Go(func() {
			for range each {
				if b.allow(0.001, burst) { // none back during the test
					got.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got.Load() != burst {
		t.Errorf("%d takers of %d events each got %d; want the burst, %d", takers, each, got.Load(), burst)
	}
}

// TestBucket: a bucket lets events come as a rate.Limiter of the same
// limit and burst does, and tells the same wait when it refuses.
func TestBucket(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	for _, c := range []struct {
		limit rate.Limit
		burst int
	}{{2, 20}, {1, 1}, {0.5, 3}, {1000, 5}} {
		var b bucket
		lim := rate.NewLimiter(c.limit, c.burst)
		now := start
		// Opens at uneven steps, bursts and pauses, for 3 minutes.
		for i := range 400 {
			now = now.Add(time.Duration(i%7*i%13) * 37 * time.Millisecond)
			want := lim.AllowN(now, 1)
			wait, got := b.take(now, c.limit, c.burst)
			if got != want {
				t.Fatalf("limit %v burst %d, open %d at +%v: allowed %v; a rate.Limiter: %v", c.limit, c.burst, i, now.Sub(start), got, want)
			}
			if !got {
				wantWait := time.Duration((1 - lim.TokensAt(now)) / float64(c.limit) * float64(time.Second))
				if d := wait - wantWait; d < -time.Microsecond || d > time.Microsecond {
					t.Fatalf("limit %v burst %d, open %d: wait %v; a rate.Limiter's %v", c.limit, c.burst, i, wait, wantWait)
				}
			}
			if full := lim.TokensAt(now) >= float64(c.burst); b.full(now) != full {
				t.Fatalf("limit %v burst %d, open %d: full %v; a rate.Limiter: %v", c.limit, c.burst, i, b.full(now), full)
			}
		}
	}
	// The widest bounds the configuration allows do not overflow: the
	// times are bounded by maxInterval.
	for _, c := range []struct {
		limit rate.Limit
		burst int
	}{{1e-12, 1_000_000_000}, {1e-12, 1}, {1e12, 1_000_000_000}} {
		var b bucket
		for i := range 3 {
			wait, ok := b.take(start, c.limit, c.burst)
			if wait < 0 || (i == 0 && !ok) || (!ok && wait == 0) {
				t.Errorf("limit %v burst %d, open %d: %v, %v", c.limit, c.burst, i, wait, ok)
			}
		}
		if int64(b) < start.UnixNano() || int64(b) > start.UnixNano()+3*int64(maxInterval) {
			t.Errorf("limit %v burst %d: bucket at %d, beyond 3 maxIntervals of now", c.limit, c.burst, int64(b)-start.UnixNano())
		}
	}
}
