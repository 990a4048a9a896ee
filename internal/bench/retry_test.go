package bench_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/bench"
	"github.com/parley-chat/parley/internal/web"
)

// tooMany answers r as a server over its rate limit does: 429
// rate_limited, with retryAfter as its Retry-After.
func tooMany(w http.ResponseWriter, retryAfter string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", retryAfter)
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write([]byte(`{"error":{"code":"rate_limited","message":"too many requests; slow down"}}`))
}

// TestBenchFollowsRetryAfter: a REST call of the run's set-up or clean-up
// that the server refuses with 429 and Retry-After (the server limits
// group changes, docs/protocol.md) is made again after the wait, and the
// run goes on. Before, the first 429 failed the run.
func TestBenchFollowsRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		groups bool
		want   map[string]int // requests of each kind, the refused one included
	}{
		{"groups", true, map[string]int{
			"GET /api/me":                   4 + 1,
			"POST /api/groups":              2 + 1,
			"POST /api/groups/{id}/members": 2*(4/2-1) + 1,
			"DELETE /api/groups/{id}":       2 + 1,
		}},
		{"rooms", false, map[string]int{"POST /api/rooms": 4 + 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t)
			tokens := s.tokens(t, 4)
			var mu sync.Mutex
			refused := make(map[string]bool)
			s.setFront(func(w http.ResponseWriter, r *http.Request) bool {
				kind := r.Method + " " + pathID.ReplaceAllString(r.URL.Path, "/{id}$1")
				if _, ok := tc.want[kind]; !ok {
					return false
				}
				mu.Lock()
				defer mu.Unlock()
				if refused[kind] {
					return false
				}
				refused[kind] = true
				tooMany(w, "1")
				return true
			})
			res := mustRun(t, bench.Config{
				Targets:        []string{s.URL},
				Conns:          4,
				Rooms:          2,
				Groups:         tc.groups,
				SendersPerRoom: 1,
				Rate:           50,
				Duration:       500 * time.Millisecond,
				Tokens:         tokens,
				RoomPrefix:     "r",
			})
			checkClean(t, res, 4)
			for req, want := range tc.want {
				if got := s.count(req); got != want {
					t.Errorf("%s: %d requests; want %d (one refused)", req, got, want)
				}
			}
			if tc.groups {
				s.checkNoGroups(t, tokens)
			}
		})
	}
}

// TestBenchRetryAfterBounded: the tool follows Retry-After only so far.
// A server that keeps refusing fails the run after a bounded number of
// tries, and one that asks for a longer wait than the tool allows fails it
// at once; both say why, and no group is left behind.
func TestBenchRetryAfterBounded(t *testing.T) {
	for _, tc := range []struct {
		name, retryAfter, want string
	}{
		{"keeps refusing", "0", "refused 10 times"},
		{"asks too long a wait", "3600", "asks to wait 1h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t)
			s.setFront(func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/members") {
					return false
				}
				tooMany(w, tc.retryAfter)
				return true
			})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s.groupRunFails(t, ctx, 4, 1, "429 rate_limited", tc.want, "--send-rate")
		})
	}
}

// TestBenchGroupsDefaultLimits: with the server's limits at their defaults
// (--send-rate 10, --send-burst 20), the owner of a group of 40 users
// makes more adds at once than the server allows (each counts as one of
// the owner's REST sends, docs/protocol.md): the server refuses some with
// 429 and Retry-After, the tool makes them again, and the run is clean.
func TestBenchGroupsDefaultLimits(t *testing.T) {
	s := newTestServerWeb(t, func(c *web.Config) { c.SendRate, c.SendBurst = 0, 0 })
	const users, adds = 40, 40 - 1
	tokens := s.tokens(t, users)
	// The first tries of the adds reach the server together, as they would
	// from a machine faster than the one the test runs on.
	var mu sync.Mutex
	arrived := 0
	all := make(chan struct{})
	s.setHold(func(r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/members") {
			return
		}
		mu.Lock()
		if arrived++; arrived == adds {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(30 * time.Second):
		}
	})
	res := mustRun(t, bench.Config{
		Targets:        []string{s.URL},
		Conns:          users,
		Rooms:          1,
		Groups:         true,
		SendersPerRoom: 1,
		Rate:           5,
		Duration:       500 * time.Millisecond,
		Tokens:         tokens,
		RoomPrefix:     "d",
	})
	checkClean(t, res, users)
	if got := s.count("POST /api/groups/{id}/members"); got <= adds {
		t.Errorf("POST /api/groups/{id}/members: %d requests; want more than the %d adds (some refused, then made again)", got, adds)
	}
	s.checkNoGroups(t, tokens)
}
