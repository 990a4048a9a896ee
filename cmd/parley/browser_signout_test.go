package main

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserSignOutFails: the session cookie is HttpOnly, so only the
// server can end a session. When the sign-out request fails, the page
// must not say "You are signed out" (a reload would show the chat again,
// to whoever uses the computer next): it stays in the chat and says why.
// Once the request goes through, the page signs out.
func TestBrowserSignOutFails(t *testing.T) {
	s, ada := startAda(t)
	waitFor[bool](t, ada, "connected", viewState, connectedBy, "ws")
	me := func() int {
		t.Helper()
		ctx, cancel := ada.stepCtx()
		defer cancel()
		status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch("/api/me").then((r) => r.status)`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("Ada: GET /api/me: %v", err)
		}
		return status
	}
	const signedOut = `() => {
		const view = document.getElementById("app").dataset.view;
		const err = document.getElementById("signout-error");
		return view === "signin" ? document.getElementById("auth-info").textContent :
			err && !err.hidden && err.textContent ? "chat: " + err.textContent : "";
	}`

	ada.cutOff(t, s.URL+"/api/auth/signout", true)
	ada.click(t, "sign out", "#signout")
	got := waitFor[string](t, ada, "the sign-out attempt ends", viewState, signedOut)
	if st := me(); st != 200 {
		t.Fatalf("GET /api/me after the failed sign-out = %d; want 200, the session was not ended", st)
	}
	if got == "You are signed out." || got[:6] != "chat: " {
		t.Errorf("after a sign-out that did not reach the server, the page shows %q; want the chat and an error", got)
	}

	ada.cutOff(t, "", false)
	ada.click(t, "sign out again", "#signout")
	if got := waitFor[string](t, ada, "signed out", viewState, `() =>
		document.getElementById("app").dataset.view === "signin" && document.getElementById("auth-info").textContent`); got != "You are signed out." {
		t.Errorf("after signing out, the page says %q; want %q", got, "You are signed out.")
	}
	if st := me(); st != 401 {
		t.Errorf("GET /api/me after signing out = %d; want 401", st)
	}
	ada.checkQuiet(t)
}
