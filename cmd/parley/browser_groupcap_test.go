package main

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserGroupCapFollowsServer checks that the new group form tells
// the member limit of this server: with --max-group-members 50, a group
// made without a limit gets 50, not the 200 of the default server, and a
// limit past 50 is refused in the form, readably, before any request.
func TestBrowserGroupCapFollowsServer(t *testing.T) {
	exe := chromiumPath(t)
	s := startServer(t, "--max-group-members", "50")
	ada := startBrowser(t, exe, "ada", time.Now().Add(2*time.Minute))
	ada.signIn(t, s, "ada@example.com", "Ada")
	waitFor[bool](t, ada, "connected", groupsState,
		`() => document.getElementById("conn-status").dataset.state === "connected"`)

	ada.do(t, "open the new group form", chromedp.Click(chromedp.ID("new-group")))
	waitFor[bool](t, ada, "the form offers this server's limit", `{
		placeholder: document.getElementById("group-create-cap").placeholder,
		max: document.getElementById("group-create-cap").max,
	}`, `() => {
		const cap = document.getElementById("group-create-cap");
		return document.getElementById("group-create").open && cap.placeholder === "50" && cap.max === "50";
	}`)
	ada.do(t, "ask for 60 members",
		chromedp.SendKeys(chromedp.ID("group-create-name"), "Crew"),
		chromedp.SendKeys(chromedp.ID("group-create-cap"), "60"),
		chromedp.Click(chromedp.ID("group-create-submit")),
	)
	waitFor[bool](t, ada, "the limit is refused in the form", groupsState, `() =>
		document.getElementById("group-create").open &&
		document.getElementById("group-create-error").textContent === "The member limit is at most 50." &&
		document.activeElement === document.getElementById("group-create-cap")`)
	var list struct {
		Conversations []struct {
			ID   int64  `json:"id"`
			Kind string `json:"kind"`
		} `json:"conversations"`
	}
	ada.fetchJSON(t, "GET", "/api/conversations", nil, &list)
	for _, c := range list.Conversations {
		if c.Kind == "group" {
			t.Fatalf("a group was made: %+v", list.Conversations)
		}
	}
}

// holdFrames is run in a page before the app: while window.parleyHoldFrames
// is set, the messages its WebSockets receive are kept, and given to the
// app in order at window.parleyReleaseFrames() (window.parleyHeldFrames
// counts them).
const holdFrames = `(() => {
	let held = [];
	window.parleyHoldFrames = true;
	window.parleyHeldFrames = 0;
	window.parleyReleaseFrames = () => {
		window.parleyHoldFrames = false;
		const h = held;
		held = [];
		for (const [fn, e] of h) fn(e);
	};
	const add = WebSocket.prototype.addEventListener;
	WebSocket.prototype.addEventListener = function (type, fn, opts) {
		if (type !== "message") return add.call(this, type, fn, opts);
		return add.call(this, type, (e) => {
			if (!window.parleyHoldFrames) return fn(e);
			window.parleyHeldFrames++;
			held.push([fn, e]);
		}, opts);
	};
})()`

// TestBrowserGroupCapBeforeHello: with --max-group-members 50, Ada opens
// the new group form before her page's first hello came (it is held); once
// it comes, the form offers this server's limit.
func TestBrowserGroupCapBeforeHello(t *testing.T) {
	exe := chromiumPath(t)
	s := startServer(t, "--max-group-members", "50")
	ada := startBrowser(t, exe, "ada", time.Now().Add(2*time.Minute))
	ada.signIn(t, s, "ada@example.com", "Ada")
	ada.onEveryPage(t, "hold the WebSocket's frames", holdFrames)
	ada.do(t, "reload the page", chromedp.Reload())
	waitFor[bool](t, ada, "the hello is held", `{held: window.parleyHeldFrames, view: `+viewState+`}`,
		`() => window.parleyHeldFrames >= 1 && document.getElementById("conn-status").dataset.state !== "connected"`)
	ada.click(t, "open the new group form", "#new-group")
	waitFor[bool](t, ada, "the form is open", groupsState, `() => document.getElementById("group-create").open`)
	evaluate[chromedp.Void](t, ada, "let the frames go", `window.parleyReleaseFrames()`)
	waitFor[bool](t, ada, "connected", groupsState,
		`() => document.getElementById("conn-status").dataset.state === "connected"`)
	type caps struct {
		Open        bool   `json:"open"`
		Placeholder string `json:"placeholder"`
		Max         string `json:"max"`
	}
	got := evaluate[caps](t, ada, "read the form's limit", `({
		open: document.getElementById("group-create").open,
		placeholder: document.getElementById("group-create-cap").placeholder,
		max: document.getElementById("group-create-cap").max,
	})`)
	if want := (caps{Open: true, Placeholder: "50", Max: "50"}); got != want {
		t.Errorf("the new group form opened before the hello, after it = %+v; want %+v", got, want)
	}
	ada.checkQuiet(t)
}
