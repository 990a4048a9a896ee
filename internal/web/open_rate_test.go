package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/web"
)

// How often a connection may be opened (docs/protocol.md, Limits): each
// open costs a session read, a hello with the user's state read from the
// store, presence news to their friends and hub subscriptions, so a
// client opening and closing connections in a loop is refused 429
// rate_limited before the upgrade, past a burst no real client needs at
// once (several tabs and devices, a reload storm). The tests loop with the
// default limits, a burst of 20 and two a second: openLoopMax opens come
// well before the burst could come back.

// openLoopMax is how many opens in a row a test tries before it gives up
// on being refused.
const openLoopMax = 50

// openBurst is the default burst of opens, which must all go through.
const openBurst = 20

// wantOpenRefused checks that resp, the answer to an open refused, is 429
// rate_limited with retry_after_ms and Retry-After.
func wantOpenRefused(tb testing.TB, what string, resp *http.Response) {
	tb.Helper()
	if resp == nil {
		tb.Fatalf("%s: no response", what)
	}
	body, _ := io.ReadAll(resp.Body)
	e := wantError(tb, what, response{Status: resp.StatusCode, Header: resp.Header, Body: body}, http.StatusTooManyRequests, chat.CodeRateLimited)
	if e.RetryAfterMS <= 0 {
		tb.Errorf("%s: retry_after_ms = %d; want it positive", what, e.RetryAfterMS)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
		tb.Errorf("%s: Retry-After = %q; want whole seconds", what, resp.Header.Get("Retry-After"))
	}
}

// TestWSOpenRate: a user opening and closing WebSockets in a loop is
// refused once past the burst; another user is not.
func TestWSOpenRate(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	dialUntilRefused(t, "WebSockets opened and closed in a row", func() (*websocket.Conn, *http.Response, error) {
		conn, resp, err := ts.dial(t, ada, "/api/ws", dialOptions{})
		if err == nil {
			w := newWSClient(t, ada.Name, conn)
			w.startReading()
			w.expect(t, "hello")
		}
		return conn, resp, err
	})
	grace := ts.signIn(t, "grace@example.com", "Grace")
	ts.connect(t, grace) // the limit is Ada's
}

// TestPollOpenRate: a user starting new long-poll channels in a loop is
// refused once past the burst, as with WebSockets, and the limit is the
// same: WebSocket opens count against new channels.
func TestPollOpenRate(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	for range 10 {
		ts.connect(t, ada).conn.Close()
	}
	refused := 0
	for i := 11; i <= openLoopMax; i++ {
		r := ts.do(t, ada, "GET", "/api/poll", nil)
		if r.Status == http.StatusOK {
			continue
		}
		if i <= openBurst {
			t.Fatalf("open %d (a new channel): %s; want the first %d to go through", i, r, openBurst)
		}
		e := wantError(t, "open "+strconv.Itoa(i)+" (a new channel)", r, http.StatusTooManyRequests, chat.CodeRateLimited)
		if e.RetryAfterMS <= 0 || r.Header.Get("Retry-After") == "" {
			t.Errorf("open %d (a new channel) = %s; want retry_after_ms and Retry-After", i, r)
		}
		refused = i
		break
	}
	if refused == 0 {
		t.Fatalf("%d connections and new long-poll channels opened in a row, none refused; want 429 rate_limited past a burst of %d", openLoopMax, openBurst)
	}
}

// TestChannelsCompatOpenRate: the anonymous Django Channels endpoint
// limits how often a client address opens connections, as /api/ws does
// a user (each open enters a room, maybe making it, and subscribes).
func TestChannelsCompatOpenRate(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.ChannelsCompat = true }))
	dialUntilRefused(t, "compat connections opened and closed in a row from one address", func() (*websocket.Conn, *http.Response, error) {
		return ts.dial(t, nil, "/ws/chat/lobby/", dialOptions{})
	})
}

// dialUntilRefused opens and closes connections with dial, up to
// openLoopMax: the first openBurst must go through, and one after them
// must be refused as wantOpenRefused says.
func dialUntilRefused(t *testing.T, what string, dial func() (*websocket.Conn, *http.Response, error)) {
	t.Helper()
	for i := 1; i <= openLoopMax; i++ {
		conn, resp, err := dial()
		if err == nil {
			conn.Close()
			continue
		}
		if i <= openBurst {
			t.Fatalf("open %d: %v (%s); want the first %d to go through", i, err, statusOf(resp), openBurst)
		}
		wantOpenRefused(t, "open "+strconv.Itoa(i), resp)
		return
	}
	t.Fatalf("%d %s, none refused; want 429 rate_limited past a burst of %d", openLoopMax, what, openBurst)
}

// TestPlainGetTakesNoOpen: a GET of /api/ws that is no WebSocket upgrade
// (a link followed, a crawler with the cookie, a proxy that drops the
// Upgrade header) is answered by the upgrader's 400 and opens nothing, so
// it takes nothing of the open rate: after more of them than the burst,
// a WebSocket still opens.
func TestPlainGetTakesNoOpen(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	for i := range openBurst + 5 {
		if r := ts.do(t, ada, "GET", "/api/ws", nil); r.Status != http.StatusBadRequest {
			t.Fatalf("plain GET %d of /api/ws = %d %s; want 400", i+1, r.Status, r.Body)
		}
	}
	conn, resp, err := ts.dial(t, ada, "/api/ws", dialOptions{})
	if err != nil {
		t.Fatalf("WebSocket after %d plain GETs: %v (%s); want it open", openBurst+5, err, statusOf(resp))
	}
	conn.Close()
}

// TestStalePollsTakeNoOpen: a poll its client gave up on, retried or
// delivered late (two or more answers behind its live channel), is
// answered by a fork of the channel, rebuilt from its cursor. That is the
// network's doing, not a client opening connections: more of them than the
// burst of opens are all answered, and a new connection still opens. (The
// forks count against the cap of connections, as any channel.)
func TestStalePollsTakeNoOpen(t *testing.T) {
	ts, ada, grace, room, ap := pollingInRoom(t)
	c1 := ap.poll.getCursor()
	cur := c1
	for i := range 2 { // two answers past c1
		ts.post(t, grace, room.ID, "g"+strconv.Itoa(i), "hello")
		r := ts.do(t, ada, "GET", "/api/poll?cursor="+url.QueryEscape(cur), nil)
		var a struct {
			Cursor string `json:"cursor"`
		}
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &a) != nil {
			t.Fatalf("answer %d: GET /api/poll = %s; want 200", i+1, r)
		}
		cur = a.Cursor
	}
	for i := range openBurst + 5 {
		if r := ts.do(t, ada, "GET", "/api/poll?cursor="+url.QueryEscape(c1), nil); r.Status != http.StatusOK {
			t.Fatalf("stale poll %d: GET /api/poll = %s; want 200, answered by a fork", i+1, r)
		}
	}
	ts.connect(t, ada).conn.Close()
}

// TestRefusedUpgradeTakesNoOpen: an upgrade of /api/ws the upgrader
// refuses (another site's Origin, a handshake it does not take) opens
// nothing, so it takes nothing of the open rate: each is answered by the
// upgrader itself, and after more of them than the burst a WebSocket
// still opens. Otherwise a page of a sibling site, which the session
// cookie reaches, could keep a user's own WebSockets from opening.
func TestRefusedUpgradeTakesNoOpen(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	for i := range openBurst + 5 {
		conn, resp, err := ts.dial(t, ada, "/api/ws", dialOptions{header: http.Header{"Origin": {"http://evil.example"}}})
		if err == nil {
			conn.Close()
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("upgrade %d from another site's origin: %v (%s); want 403", i+1, err, statusOf(resp))
		}
	}
	for i := range openBurst + 5 {
		req := ts.newRequest(t, "GET", "/api/ws", nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "8")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		if r := send(t, ada.Client, req); r.Status != http.StatusBadRequest {
			t.Fatalf("upgrade %d with version 8 = %s; want 400", i+1, r)
		}
	}
	conn, resp, err := ts.dial(t, ada, "/api/ws", dialOptions{})
	if err != nil {
		t.Fatalf("WebSocket after %d refused upgrades: %v (%s); want it open", 2*(openBurst+5), err, statusOf(resp))
	}
	conn.Close()
}
