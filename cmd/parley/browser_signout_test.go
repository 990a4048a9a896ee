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

// TestBrowserStartOffline: the page loads while the server cannot be
// reached (a restored tab before the network is up, a server
// restarting). It says so on the sign-in card, and once the server
// answers it finds the session still valid and opens the chat by itself:
// a session is not lost to a failed request.
func TestBrowserStartOffline(t *testing.T) {
	s, ada := startAda(t)
	waitFor[bool](t, ada, "connected", viewState, connectedBy, "ws")

	ada.cutOff(t, s.URL+"/api/me", true)
	ada.do(t, "load the page again", chromedp.Navigate(ada.appURL(s, "")))
	waitFor[bool](t, ada, "the page says the server cannot be reached", viewState, `() =>
		document.getElementById("app").dataset.view === "signin" &&
		!document.getElementById("auth-error").hidden`)
	ada.cutOff(t, "", false)
	waitFor[bool](t, ada, "the chat opens", viewState, `(name) =>
		document.getElementById("app").dataset.view === "chat" &&
		document.getElementById("me-name").textContent === name &&
		document.getElementById("conn-status").dataset.state === "connected"`, ada.name)
	ada.checkQuiet(t)
}

// TestBrowserSessionEndsInDialog: the session ends (signed out on
// another tab) while the new group form is open. The sign-in shows, and
// no dialog of the chat stays over it, keeping the page inert.
func TestBrowserSessionEndsInDialog(t *testing.T) {
	_, ada := startAda(t)
	waitFor[bool](t, ada, "connected", viewState, connectedBy, "ws")
	ada.click(t, "open the new group form", "#new-group")
	waitFor[bool](t, ada, "the form is open", viewState, `() => document.getElementById("group-create").open`)

	ada.fetchJSON(t, "POST", "/api/auth/signout", nil, nil)
	open := waitFor[[]string](t, ada, "the sign-in shows", viewState, `() =>
		document.getElementById("app").dataset.view === "signin" &&
		[...document.querySelectorAll("dialog[open]")].map((d) => d.id)`)
	if len(open) > 0 {
		t.Errorf("over the sign-in, dialogs %q are open; want none", open)
	}
}
