package main

import (
	"math"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestBrowserKeepsCookie: a page left open renews its session cookie. A
// WebSocket cannot set a cookie, and the node's check of open connections
// renews the session near its end without it: a page whose only traffic
// was its WebSocket kept the cookie it signed in with, and a reload after
// that cookie ended signed the user out. The chat view's refresh of its
// lists every 30 s renewed the cookie too, by chance; here it is cut off,
// so that the WebSocket is the page's only traffic. The page makes a
// request in the session's second half (the hello's session_renew_at),
// before the check would renew the session (session_renew_by), and the
// browser's cookie moves with the session. With one-minute sessions, the
// second half starts 30 s in and the check takes over 37.5 s in.
func TestBrowserKeepsCookie(t *testing.T) {
	exe := chromiumPath(t)
	s := startServer(t, "--session-ttl", "1m")
	ada := startBrowser(t, exe, "ada", time.Now().Add(3*time.Minute))
	ada.signIn(t, s, "ada@example.com", "Ada")
	waitFor[bool](t, ada, "connected", viewState, connectedBy, "ws")

	ada.cutOffAll(t, s.URL+"/api/rooms*", s.URL+"/api/conversations*", s.URL+"/api/contacts*")

	first := ada.sessionCookieExpiry(t, s)
	// The page renews the cookie 30 to 33.75 s into the session; bounded
	// by the cookie's first expiry, after which renewing is too late.
	var renewed time.Time
	for i := 0; i < 120 && time.Now().Before(first); i++ {
		if e := ada.sessionCookieExpiry(t, s); e.After(first.Add(10 * time.Second)) {
			renewed = e
			break
		}
		time.Sleep(time.Second)
	}
	if renewed.IsZero() {
		t.Fatalf("the session cookie still expires at %v, past which the page is signed out; want it renewed while the page is open", first)
	}

	// Past the first cookie's end, a reload stays signed in.
	time.Sleep(time.Until(first.Add(time.Second)))
	ada.cutOffAll(t)
	ada.do(t, "reload the page", chromedp.Reload())
	waitFor[bool](t, ada, "the chat opens again, signed in", viewState, `(name) =>
		document.getElementById("app").dataset.view === "chat" &&
		document.getElementById("me-name").textContent === name &&
		document.getElementById("conn-status").dataset.state === "connected"`, ada.name)
	ada.checkQuiet(t)
}

// sessionCookieExpiry returns when the browser's session cookie for s
// expires; it fails the test if there is none.
func (b *browser) sessionCookieExpiry(t *testing.T, s *testServer) time.Time {
	t.Helper()
	ctx, cancel := b.stepCtx()
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{s.URL + "/"}})
	if err != nil {
		t.Fatalf("%s: read cookies: %v", b.name, err)
	}
	for _, c := range res.Cookies {
		if c.Name == "parley_session" {
			sec, frac := math.Modf(c.Expires)
			return time.Unix(int64(sec), int64(frac*1e9))
		}
	}
	t.Fatalf("%s: no parley_session cookie for %s", b.name, s.URL)
	return time.Time{}
}
