package web_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/web"
)

// GET /api/ws/check asks whether an open of a connection would be let in
// now, taking none (docs/protocol.md, "Opening a connection"): a browser
// cannot read the status of a refused upgrade, and the web app must tell
// an open refused by a limit (wait, then try the WebSocket again) from a
// network that lets no WebSocket through (long-poll).

// checkOpen asks GET /api/ws/check as c.
func (ts *testServer) checkOpen(tb testing.TB, c *client) response {
	tb.Helper()
	return ts.do(tb, c, http.MethodGet, "/api/ws/check", nil)
}

// wantOpenAllowed checks that r, a check's answer, is 204.
func wantOpenAllowed(tb testing.TB, what string, r response) {
	tb.Helper()
	if r.Status != http.StatusNoContent {
		tb.Fatalf("%s: GET /api/ws/check = %s; want 204", what, r)
	}
}

// wantCheckRefused checks that r, a check's answer, is 429 rate_limited
// with retry_after_ms and Retry-After.
func wantCheckRefused(tb testing.TB, what string, r response) wireError {
	tb.Helper()
	e := wantError(tb, what+": GET /api/ws/check", r, http.StatusTooManyRequests, chat.CodeRateLimited)
	if e.RetryAfterMS <= 0 {
		tb.Errorf("%s: retry_after_ms = %d; want it positive", what, e.RetryAfterMS)
	}
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
		tb.Errorf("%s: Retry-After = %q; want whole seconds", what, r.Header.Get("Retry-After"))
	}
	return e
}

// TestOpenCheckCap: the check answers 429 while the user holds
// Config.MaxUserConns connections, as an open would get, and 204 once one
// has ended; it never takes a place.
func TestOpenCheckCap(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.MaxUserConns = 2 }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	wantOpenAllowed(t, "no connection", ts.checkOpen(t, ada))
	for range 5 { // checks take no place: both connections go through
		wantOpenAllowed(t, "no connection", ts.checkOpen(t, ada))
	}
	w1 := ts.connect(t, ada)
	wantOpenAllowed(t, "one connection of two", ts.checkOpen(t, ada))
	w2 := ts.connect(t, ada)
	defer w2.conn.Close()
	wantCheckRefused(t, "at the cap", ts.checkOpen(t, ada))
	_, resp, err := ts.dial(t, ada, "/api/ws", dialOptions{})
	if err == nil {
		t.Fatal("third WebSocket opened; want it refused at the cap of 2")
	}
	wantOpenRefused(t, "third WebSocket", resp)

	grace := ts.signIn(t, "grace@example.com", "Grace")
	wantOpenAllowed(t, "another user", ts.checkOpen(t, grace)) // the cap is Ada's

	w1.conn.Close()
	deadline := time.Now().Add(waitTimeout)
	for r := ts.checkOpen(t, ada); r.Status != http.StatusNoContent; r = ts.checkOpen(t, ada) {
		wantCheckRefused(t, "a connection closed", r)
		if time.Now().After(deadline) {
			t.Fatalf("GET /api/ws/check = %s %s after one of 2 connections closed; want 204", waitTimeout, r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ts.connect(t, ada).conn.Close() // the check's 204 held: the open goes through
}

// TestOpenCheckRate: the check answers 429 with the wait an open would get
// once the user has opened connections too often, and takes none of the
// opens: checks as many as the burst leave the whole burst to the opens.
func TestOpenCheckRate(t *testing.T) {
	const burst = 3
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.OpenRate, c.OpenBurst = 0.01, burst }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	for i := range 2 * burst {
		wantOpenAllowed(t, "check "+strconv.Itoa(i+1)+" before any open", ts.checkOpen(t, ada))
	}
	for i := range burst {
		w := ts.connect(t, ada) // the checks took none of the burst
		w.conn.Close()
		if i < burst-1 {
			wantOpenAllowed(t, "open "+strconv.Itoa(i+1)+" of "+strconv.Itoa(burst), ts.checkOpen(t, ada))
		}
	}
	e := wantCheckRefused(t, "the burst used", ts.checkOpen(t, ada))
	if e.RetryAfterMS < 50_000 { // one open at 0.01/s: 100 s
		t.Errorf("retry_after_ms = %d; want the wait for the next open, about 100 s", e.RetryAfterMS)
	}
	_, resp, err := ts.dial(t, ada, "/api/ws", dialOptions{})
	if err == nil {
		t.Fatal("WebSocket opened past the burst; want it refused")
	}
	wantOpenRefused(t, "open past the burst", resp)
}

// TestOpenCheckLimited: the checks themselves are limited as the user's
// other frames are (five times the send burst), and need a session.
func TestOpenCheckLimited(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.SendRate, c.SendBurst = 0.001, 1 }))
	wantError(t, "GET /api/ws/check without a session", ts.checkOpen(t, nil), http.StatusUnauthorized, chat.CodeUnauthorized)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	for i := range 5 {
		wantOpenAllowed(t, "check "+strconv.Itoa(i+1)+" of 5", ts.checkOpen(t, ada))
	}
	wantCheckRefused(t, "check 6", ts.checkOpen(t, ada))
	ts.connect(t, ada).conn.Close() // the checks took no open
}
