package web_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/chat/chattest"
	"github.com/parley-chat/parley/internal/web"
)

// The session cookie's names are spelt out here rather than taken from
// web's constants: they are part of the protocol (clients and nginx
// configurations name them), so a rename must fail a test.
const (
	plainCookie  = "parley_session"
	secureCookie = "__Host-parley_session"
)

// cookieModes are the ways a server is reached, and the session cookie
// it uses in each.
var cookieModes = []struct {
	name   string
	opt    option
	secure bool
	cookie string // the session cookie's name
	other  string // the name the server does not read
}{
	{"HTTP", withWeb(func(*web.Config) {}), false, plainCookie, secureCookie},
	{"TLS", withTLS(), true, secureCookie, plainCookie},
	{"BehindProxy", behindProxy(), true, secureCookie, plainCookie},
	{"BehindProxyHTTPS", behindProxy("https"), true, secureCookie, plainCookie},
	// A proxy serving plain HTTP (a LAN, a test set-up) says so: a
	// browser there would drop a Secure cookie.
	{"BehindProxyHTTP", behindProxy("http"), false, plainCookie, secureCookie},
	// The proxy's value is the last: one it appended, as its own line or
	// at the end of the client's list, after what the client sent.
	{"BehindProxyAppendedHTTP", behindProxy("https", "http"), false, plainCookie, secureCookie},
	{"BehindProxyListHTTPS", behindProxy("http, https"), true, secureCookie, plainCookie},
	// Without BehindProxy the header is the client's, and ignored.
	{"HTTPForgedHTTPS", withForwardedProto("https"), false, plainCookie, secureCookie},
	{"TLSForgedHTTP", func(c *testConfig) { withTLS()(c); withForwardedProto("http")(c) }, true, secureCookie, plainCookie},
}

// sessionOf signs email in by mail and returns the user's id and the
// session cookie the verify answer set, of whatever name.
func (ts *testServer) sessionOf(tb testing.TB, email string) (int64, *http.Cookie) {
	tb.Helper()
	code := ts.requestCode(tb, email)
	r := ts.do(tb, nil, "POST", "/api/auth/verify", map[string]string{"email": email, "code": code})
	var v verifyAnswer
	if r.Status != http.StatusOK || decodeStrict(r.Body, &v) != nil {
		tb.Fatalf("verify %s = %s; want 200", email, r)
	}
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if strings.HasSuffix(c.Name, plainCookie) && c.Value != "" {
			return v.User.ID, c
		}
	}
	tb.Fatalf("verify %s: Set-Cookie %q; want a session cookie", email, r.Header.Values("Set-Cookie"))
	return 0, nil
}

// withCookie does method path as a browser whose Cookie header is cookie.
func (ts *testServer) withCookie(tb testing.TB, cookie, method, path string, body any) response {
	tb.Helper()
	req := ts.newRequest(tb, method, path, body)
	req.Header.Set("Cookie", cookie)
	return send(tb, ts.anonClient(), req)
}

// pollAnswer is a long-poll answer's body.
type pollAnswer struct {
	Cursor string            `json:"cursor"`
	Frames []json.RawMessage `json:"frames"`
}

// identities returns the user each reader of the session cookie takes
// a browser whose Cookie header is cookie for: the REST API (GET
// /api/me), the WebSocket upgrade (hello), a long poll starting a channel
// (hello), and a POST to that channel (answered for its user, or
// refused).
func (ts *testServer) identities(tb testing.TB, cookie string) (rest, ws, poll int64, post response) {
	tb.Helper()
	r := ts.withCookie(tb, cookie, "GET", "/api/me", nil)
	var me wireMe
	if r.Status != http.StatusOK || decodeStrict(r.Body, &me) != nil {
		tb.Fatalf("GET /api/me with Cookie %q = %s; want 200", cookie, r)
	}
	rest = me.User.ID

	conn, resp, err := ts.dial(tb, nil, "/api/ws", dialOptions{header: http.Header{"Cookie": {cookie}}})
	if err != nil {
		tb.Fatalf("dial /api/ws with Cookie %q: %v (%s)", cookie, err, statusOf(resp))
	}
	w := newWSClient(tb, "ws", conn)
	w.startReading()
	if h := w.expect(tb, "hello"); h.User != nil {
		ws = h.User.ID
	}

	r = ts.withCookie(tb, cookie, "GET", "/api/poll", nil)
	var pa pollAnswer
	if r.Status != http.StatusOK || decodeStrict(r.Body, &pa) != nil || len(pa.Frames) == 0 {
		tb.Fatalf("GET /api/poll with Cookie %q = %s; want 200 and frames", cookie, r)
	}
	h, err := parseFrame(pa.Frames[0])
	if err != nil || h.Type != "hello" || h.User == nil {
		tb.Fatalf("GET /api/poll: first frame %s (%v); want hello", pa.Frames[0], err)
	}
	poll = h.User.ID
	post = ts.withCookie(tb, cookie, "POST", "/api/poll?cursor="+url.QueryEscape(pa.Cursor), `{"type":"ping","ref":"p"}`)
	return rest, ws, poll, post
}

// TestSessionCookieTossed: a page on a sibling subdomain can set a cookie
// of the session cookie's plain name for the whole site (Domain=, a more
// specific Path=), which the browser sends before the server's own. Over
// TLS the session cookie is __Host- prefixed, which no other host can set,
// and the server reads that one only: the tossed cookie does not sign the
// victim in as the attacker, over REST, WebSocket or long-polling.
func TestSessionCookieTossed(t *testing.T) {
	for _, m := range cookieModes {
		if !m.secure {
			continue
		}
		t.Run(m.name, func(t *testing.T) {
			ts := newTestServer(t, m.opt)
			victim, vc := ts.sessionOf(t, "ada@example.com")
			attacker, ac := ts.sessionOf(t, "mallory@example.com")
			// As the browser sends them: the longer path first.
			cookie := plainCookie + "=" + ac.Value + "; " + vc.Name + "=" + vc.Value
			rest, ws, poll, post := ts.identities(t, cookie)
			if rest != victim || ws != victim || poll != victim {
				t.Errorf("with a tossed %s of user %d beside user %d's %s, the user is %d over REST, %d over WebSocket, %d long-polling; want %d",
					plainCookie, attacker, victim, vc.Name, rest, ws, poll, victim)
			}
			if post.Status != http.StatusOK || !strings.Contains(string(post.Body), `"pong"`) {
				t.Errorf("POST /api/poll (ping) with the tossed cookie = %s; want 200 and pong", post)
			}
		})
	}
}

// TestSessionCookieName: over plain HTTP the session cookie is
// parley_session; over TLS, or behind a proxy that terminates it,
// __Host-parley_session (Secure, Path=/, no Domain). Signing in, renewal
// and every reader use the name of the request's scheme only: a secure
// request carrying only a parley_session (set before the upgrade, or
// tossed by a sibling subdomain at a user signed out) is not signed in.
func TestSessionCookieName(t *testing.T) {
	for _, m := range cookieModes {
		t.Run(m.name, func(t *testing.T) {
			ts := newTestServer(t, m.opt)
			code := ts.requestCode(t, "ada@example.com")
			r := ts.do(t, nil, "POST", "/api/auth/verify", map[string]string{"email": "ada@example.com", "code": code})
			c := findCookie(r.Header, m.cookie)
			if r.Status != http.StatusOK || c == nil || findCookie(r.Header, m.other) != nil {
				t.Fatalf("verify = %s, Set-Cookie %q; want 200 and the cookie %s only", r, r.Header.Values("Set-Cookie"), m.cookie)
			}
			const month = 30 * 24 * 60 * 60
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure != m.secure || c.Path != "/" || c.Domain != "" ||
				c.MaxAge < month-5 || c.MaxAge > month || len(c.Value) < 32 {
				t.Errorf("session cookie = %q; want HttpOnly, SameSite=Lax, Path=/, no Domain, Max-Age=%d, Secure=%v and a long token",
					r.Header.Get("Set-Cookie"), month, m.secure)
			}
			ts.clock.Advance(16 * 24 * time.Hour) // renewed when used in the second half
			r = ts.withCookie(t, m.cookie+"="+c.Value, "GET", "/api/me", nil)
			if rc := findCookie(r.Header, m.cookie); r.Status != http.StatusOK || rc == nil || rc.Secure != m.secure || findCookie(r.Header, m.other) != nil {
				t.Errorf("GET /api/me after 16 days = %s, Set-Cookie %q; want 200 and %s renewed", r, r.Header.Values("Set-Cookie"), m.cookie)
			}

			other := m.other + "=" + c.Value
			wantError(t, "GET /api/me with the session under "+m.other, ts.withCookie(t, other, "GET", "/api/me", nil), http.StatusUnauthorized, "unauthorized")
			wantError(t, "GET /api/poll with the session under "+m.other, ts.withCookie(t, other, "GET", "/api/poll", nil), http.StatusUnauthorized, "unauthorized")
			if _, resp, err := ts.dial(t, nil, "/api/ws", dialOptions{header: http.Header{"Cookie": {other}}}); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("dial /api/ws with the session under %s: %v (%s); want 401", m.other, err, statusOf(resp))
			}
		})
	}
}

// TestSignOutExpiresSessionCookies: signing out expires the session
// cookie of the request's scheme and, over TLS, the plain name's too (a
// cookie left from before the upgrade).
func TestSignOutExpiresSessionCookies(t *testing.T) {
	for _, m := range cookieModes {
		t.Run(m.name, func(t *testing.T) {
			ts := newTestServer(t, m.opt)
			_, c := ts.sessionOf(t, "ada@example.com")
			cookie := c.Name + "=" + c.Value
			r := ts.withCookie(t, cookie, "POST", "/api/auth/signout", nil)
			if r.Status != http.StatusNoContent {
				t.Fatalf("sign out = %s; want 204", r)
			}
			want := []string{m.cookie}
			if m.secure {
				want = append(want, plainCookie)
			}
			for _, name := range want {
				if x := findCookie(r.Header, name); x == nil || x.MaxAge >= 0 || x.Value != "" || x.Path != "/" || x.Domain != "" || x.Secure != m.secure {
					t.Errorf("sign out: Set-Cookie %q; want %s expired (Path=/, Secure=%v)", r.Header.Values("Set-Cookie"), name, m.secure)
				}
			}
			if !m.secure && findCookie(r.Header, secureCookie) != nil {
				t.Errorf("sign out over HTTP: Set-Cookie %q; want no %s (a browser refuses it without TLS)", r.Header.Values("Set-Cookie"), secureCookie)
			}
			wantError(t, "GET /api/me after signing out", ts.withCookie(t, cookie, "GET", "/api/me", nil), http.StatusUnauthorized, "unauthorized")
		})
	}
}

// TestSessionCookieMaxAge: the session cookie lives as long as the
// session, in whole seconds: a sign-in's and a renewal's Max-Age are
// --session-ttl's (2592000 by default, as docs/protocol.md shows), not a
// second less for the time the request took between making the session
// and writing the cookie.
func TestSessionCookieMaxAge(t *testing.T) {
	clk := chattest.NewClock(time.Now().UTC())
	clk.Tick = time.Millisecond // as a real clock moves between the reads of one request
	ts := newTestServer(t, withChat(func(c *chat.Config) { c.Now = clk.Now }))
	const month = 30 * 24 * 60 * 60
	code := ts.requestCode(t, "ada@example.com")
	r := ts.do(t, nil, "POST", "/api/auth/verify", map[string]string{"email": "ada@example.com", "code": code})
	c := findCookie(r.Header, plainCookie)
	if r.Status != http.StatusOK || c == nil || c.MaxAge != month {
		t.Fatalf("verify = %s, Set-Cookie %q; want 200 and Max-Age=%d", r, r.Header.Values("Set-Cookie"), month)
	}
	clk.Advance(16 * 24 * time.Hour) // renewed when used in the second half
	r = ts.withCookie(t, plainCookie+"="+c.Value, "GET", "/api/me", nil)
	if rc := findCookie(r.Header, plainCookie); r.Status != http.StatusOK || rc == nil || rc.MaxAge != month {
		t.Errorf("GET /api/me after 16 days = %s, Set-Cookie %q; want 200 and Max-Age=%d", r, r.Header.Values("Set-Cookie"), month)
	}
}
