package web_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/parley-chat/parley/internal/web"
)

// TestRESTReadLimit: POST /api/conversations/{id}/read is limited per
// user as a connection's read frames are, five times the send rate and
// burst (docs/protocol.md, Limits): each is a write to the store, moved
// or not. Past the burst it is 429 rate_limited with a Retry-After.
func TestRESTReadLimit(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.SendRate, c.SendBurst = 0.001, 1 }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	path := "/api/conversations/" + strconv.FormatInt(room.ID, 10) + "/read"
	for i := range 5 {
		if r := ts.do(t, ada, "POST", path, map[string]int64{"seq": 1}); r.Status != http.StatusOK {
			t.Fatalf("read %d of 5: %s", i+1, r)
		}
	}
	r := ts.do(t, ada, "POST", path, map[string]int64{"seq": 1})
	wantError(t, "sixth read", r, http.StatusTooManyRequests, "rate_limited")
	if r.Header.Get("Retry-After") == "" {
		t.Errorf("sixth read: no Retry-After header")
	}
	// Another user's reads are not counted with Ada's.
	grace := ts.signIn(t, "grace@example.com", "Grace")
	ts.enterRoom(t, grace, "general")
	if r := ts.do(t, grace, "POST", path, map[string]int64{"seq": 1}); r.Status != http.StatusOK {
		t.Fatalf("Grace's first read: %s", r)
	}
}
