package web_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/web"
)

// TestListedOriginsAsWritten: an origin listed with capitals, a trailing
// slash or its scheme's default port (all of which --origins accepts) is
// the origin a browser names without them, for REST writes as for
// WebSocket upgrades: the page it serves can do both, or it could open a
// socket and then send nothing over REST.
func TestListedOriginsAsWritten(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) {
		c.Origins = []string{"https://Chat.Example.com/", "https://other.example:443", "http://plain.example:80", "https://port.example:8443"}
	}))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	for _, origin := range []string{"https://chat.example.com", "https://other.example", "http://plain.example", "https://port.example:8443"} {
		req := ts.newRequest(t, "POST", roomPath(room.ID, "/messages"), map[string]string{"client_id": "c-" + origin, "body": "from " + origin})
		req.Header.Set("Origin", origin)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		if r := send(t, ada.Client, req); r.Status != http.StatusOK {
			t.Errorf("POST with Origin %s = %s; want 200", origin, r)
		}
		conn, resp, err := ts.dial(t, ada, "/api/ws", dialOptions{header: http.Header{"Origin": {origin}}})
		if err != nil {
			t.Errorf("upgrade with Origin %s: %v (%s); want 101", origin, err, statusOf(resp))
			continue
		}
		conn.Close()
	}
	// A listed origin's port is not dropped: another is another origin.
	for _, origin := range []string{"https://chat.example.com:8443", "https://port.example", "http://chat.example.com"} {
		req := ts.newRequest(t, "POST", roomPath(room.ID, "/messages"), map[string]string{"client_id": "x", "body": "x"})
		req.Header.Set("Origin", origin)
		wantError(t, "POST with Origin "+origin, send(t, ada.Client, req), http.StatusForbidden, "forbidden")
		_, resp, err := ts.dial(t, ada, "/api/ws", dialOptions{header: http.Header{"Origin": {origin}}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("upgrade with Origin %s: %v (%s); want 403", origin, err, statusOf(resp))
		}
	}
}

// TestStrictTransportSecurity: over TLS, or behind a TLS-terminating
// proxy, every answer tells the browser to come back over HTTPS only
// (Strict-Transport-Security), the app's pages and the API alike; over
// plain HTTP, where it would mean nothing, none does.
func TestStrictTransportSecurity(t *testing.T) {
	for _, m := range cookieModes {
		t.Run(m.name, func(t *testing.T) {
			ts := newTestServer(t, m.opt)
			ada := ts.signIn(t, "ada@example.com", "Ada")
			for _, r := range []struct {
				c    *client
				path string
			}{{nil, "/"}, {nil, "/healthz"}, {ada, "/api/me"}, {nil, "/api/me"}} {
				got := ts.do(t, r.c, "GET", r.path, nil).Header.Values("Strict-Transport-Security")
				var want []string
				if m.secure {
					want = []string{"max-age=31536000"}
				}
				if !slices.Equal(got, want) {
					t.Errorf("GET %s: Strict-Transport-Security = %q; want %q", r.path, got, want)
				}
			}
		})
	}
}

// TestConnectSrcOwnOrigin: every answer's Content-Security-Policy lets the
// page connect to its own origin only, the WebSocket's ws: or wss: origin
// of the Host it was asked for named (wss: over TLS or behind a
// TLS-terminating proxy); not to the listed origins, which the app never
// connects to, and not to a Host that would add to the policy.
func TestConnectSrcOwnOrigin(t *testing.T) {
	for _, m := range cookieModes {
		t.Run(m.name, func(t *testing.T) {
			ts := newTestServer(t, m.opt, withWeb(func(c *web.Config) { c.Origins = []string{"https://other.example"} }))
			ada := ts.signIn(t, "ada@example.com", "Ada")
			scheme := "ws://"
			if m.secure {
				scheme = "wss://"
			}
			for _, r := range []struct {
				c          *client
				path, host string
				want       string
			}{
				{nil, "/", "", "connect-src 'self' " + scheme + ts.Listener.Addr().String()},
				{nil, "/healthz", "chat.example.com", "connect-src 'self' " + scheme + "chat.example.com"},
				{ada, "/api/me", "", "connect-src 'self' " + scheme + ts.Listener.Addr().String()},
				{nil, "/", "chat.example.com;script-src", "connect-src 'self'"},
				{nil, "/", "chat.example.com;connect-src", "connect-src 'self'"},
			} {
				req := ts.newRequest(t, "GET", r.path, nil)
				if r.host != "" {
					req.Host = r.host
				}
				hc := ts.anonClient()
				if r.c != nil {
					hc = r.c.Client
				}
				policy := send(t, hc, req).Header.Get("Content-Security-Policy")
				var got []string
				for _, d := range strings.Split(policy, ";") {
					if d = strings.TrimSpace(d); strings.HasPrefix(d, "connect-src") || strings.HasPrefix(d, "script-src") {
						got = append(got, d)
					}
				}
				if !slices.Equal(got, []string{r.want}) {
					t.Errorf("GET %s, Host %q: policy %q; want its connect-src (and script-src) %q", r.path, r.host, policy, r.want)
				}
			}
		})
	}
}

// TestCrossOriginPolicies: every answer, the app's page as the API's and
// errors alike, keeps the page out of other sites' windows
// (Cross-Origin-Opener-Policy) and its responses out of other sites'
// pages (Cross-Origin-Resource-Policy), listed origins included.
func TestCrossOriginPolicies(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.Origins = []string{"https://other.example"} }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	for _, r := range []struct {
		c      *client
		path   string
		origin string
	}{{nil, "/", ""}, {nil, "/healthz", ""}, {ada, "/api/me", ""}, {nil, "/api/me", ""}, {nil, "/no-such-page", ""}, {ada, "/api/me", "https://other.example"}} {
		req := ts.newRequest(t, "GET", r.path, nil)
		if r.origin != "" {
			req.Header.Set("Origin", r.origin)
			req.Header.Set("Sec-Fetch-Site", "cross-site")
		}
		hc := http.DefaultClient
		if r.c != nil {
			hc = r.c.Client
		}
		resp := send(t, hc, req)
		for _, k := range []string{"Cross-Origin-Opener-Policy", "Cross-Origin-Resource-Policy"} {
			if got := resp.Header.Values(k); !slices.Equal(got, []string{"same-origin"}) {
				t.Errorf("GET %s (%d), Origin %q: %s = %q; want same-origin", r.path, resp.Status, r.origin, k, got)
			}
		}
	}
}

// TestUpgradeFromPlainHTTPOrigin: a server reached over TLS (or behind a
// TLS-terminating proxy) refuses upgrades from its own host's plain-HTTP
// origin, both WebSocket endpoints. A page there is whatever anyone on
// the network path made it, and the session cookie reaches the socket in
// browsers that tell sites apart by host only.
func TestUpgradeFromPlainHTTPOrigin(t *testing.T) {
	for _, m := range cookieModes {
		t.Run(m.name, func(t *testing.T) {
			ts := newTestServer(t, m.opt, withWeb(func(c *web.Config) { c.ChannelsCompat = true }))
			ada := ts.signIn(t, "ada@example.com", "Ada")
			host := ts.Listener.Addr().String()
			for _, path := range []string{"/api/ws", "/ws/chat/general/"} {
				for _, origin := range []string{"http://" + host, "https://" + host} {
					want := http.StatusSwitchingProtocols
					if m.secure && origin == "http://"+host {
						want = http.StatusForbidden
					}
					conn, resp, _ := ts.dial(t, ada, path, dialOptions{header: http.Header{"Origin": {origin}}})
					if conn != nil {
						conn.Close()
					}
					if resp == nil || resp.StatusCode != want {
						t.Errorf("upgrade %s with Origin %s: %s; want %d", path, origin, statusOf(resp), want)
					}
				}
			}
		})
	}
}

// TestPollFromAnotherSite: a long-poll GET from another site's page,
// same-site or cross-site, is refused before it makes a channel: each
// channel shows the user online and takes one of their connections
// (MaxUserConns), so a page on a sibling subdomain, whose requests carry
// the SameSite=Lax cookie, could fill those and keep the user's own tabs
// out. The app's own polls, and clients that are no browser, go on.
func TestPollFromAnotherSite(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) {
		c.MaxUserConns = 3
		c.Origins = []string{"https://chat.example.com"}
	}))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "same-site"},
		{"Sec-Fetch-Site": "cross-site"},
		{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
		{"Sec-Fetch-Site": "same-site", "Origin": "null"},
	} {
		for range 4 { // more than MaxUserConns
			req := ts.newRequest(t, "GET", "/api/poll", nil)
			for k, v := range h {
				req.Header.Set(k, v)
			}
			wantError(t, fmt.Sprintf("GET /api/poll with %v", h), send(t, ada.Client, req), http.StatusForbidden, "forbidden")
		}
	}
	if n := ts.hub.UserClients(ada.ID); n != 0 {
		t.Errorf("Ada's connections after polls from other sites = %d; want 0", n)
	}
	// A listed origin's page and the app's own each get a channel, and a
	// WebSocket the last place.
	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site", "Origin": "https://chat.example.com"},
		{"Sec-Fetch-Site": "same-origin"},
	} {
		req := ts.newRequest(t, "GET", "/api/poll", nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		if r := send(t, ada.Client, req); r.Status != http.StatusOK {
			t.Errorf("GET /api/poll with %v = %s; want 200", h, r)
		}
	}
	ts.connect(t, ada).barrier(t)
}

// TestPollFromOldBrowserOfAnotherSite: a browser that sends no
// Sec-Fetch-Site (Safari before 16.4) still names the page's origin in
// the Origin of a cross-origin GET: a long-poll GET whose Origin is
// another site's, unlisted, is refused as a write from it is and as an
// upgrade from it is, before it makes a channel. Its own origin, a listed
// one and no Origin at all (no browser) go on.
func TestPollFromOldBrowserOfAnotherSite(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) {
		c.MaxUserConns = 3
		c.Origins = []string{"https://chat.example.com"}
	}))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	for _, origin := range []string{"https://evil.example", "null", "http://sibling.example.com"} {
		req := ts.newRequest(t, "POST", roomPath(room.ID, "/messages"), map[string]string{"client_id": "c", "body": "x"})
		req.Header.Set("Origin", origin)
		wantError(t, "POST with Origin "+origin, send(t, ada.Client, req), http.StatusForbidden, "forbidden")
		for range 4 { // more than MaxUserConns
			req := ts.newRequest(t, "GET", "/api/poll", nil)
			req.Header.Set("Origin", origin)
			wantError(t, "GET /api/poll with Origin "+origin, send(t, ada.Client, req), http.StatusForbidden, "forbidden")
		}
	}
	if n := ts.hub.UserClients(ada.ID); n != 0 {
		t.Errorf("Ada's connections after polls from other sites = %d; want 0", n)
	}
	for _, origin := range []string{"https://chat.example.com", "http://" + ts.Listener.Addr().String(), ""} {
		req := ts.newRequest(t, "GET", "/api/poll", nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if r := send(t, ada.Client, req); r.Status != http.StatusOK {
			t.Errorf("GET /api/poll with Origin %q = %s; want 200", origin, r)
		}
	}
}
