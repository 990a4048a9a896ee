package main

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// countWebSockets records in window.parleyWSTries how many WebSockets the
// page has made.
const countWebSockets = `(() => {
	window.parleyWSTries = 0;
	const Orig = window.WebSocket;
	function WebSocket(url, protocols) {
		window.parleyWSTries++;
		return new Orig(url, protocols);
	}
	Object.assign(WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
	window.WebSocket = WebSocket;
})()`

// recordConnText records in window.parleyConnTexts each text the
// connection status shows, in order, once the page has one.
const recordConnText = `(() => {
	window.parleyConnTexts = [];
	document.addEventListener("DOMContentLoaded", () => {
		const el = document.getElementById("conn-text");
		const note = () => {
			if (window.parleyConnTexts.at(-1) !== el.textContent) window.parleyConnTexts.push(el.textContent);
		};
		note();
		new MutationObserver(note).observe(el, {childList: true, characterData: true, subtree: true});
	});
})()`

// limitedText is the start of the connection status of a page whose
// connection the server refused for the user's limits.
const limitedText = "Too many open tabs or reconnects — retrying in "

// wsTries is true once the page has made at least n WebSockets and still
// means to connect by WebSocket.
const wsTries = `(n) => window.parleyWSTries >= n &&
	document.getElementById("conn-status").dataset.transport === "ws"`

// TestBrowserWSRefusedAtCap: Ada, allowed one connection on the node
// (--max-user-conns 1), has the app open in one tab and opens it in
// another. The server refuses the second tab's WebSocket upgrades with 429,
// which a page cannot read; the HTTP API answers all the while. The tab
// must not take that for a network that lets no WebSocket through and
// long-poll for good: it asks GET /api/ws/check, which says an open would
// be refused for now, waits and tries the WebSocket again, and connects by
// WebSocket once the first tab has gone. Meanwhile its status says why
// it is not connected (the server refused it for a limit), not that the
// server cannot be reached.
func TestBrowserWSRefusedAtCap(t *testing.T) {
	exe := chromiumPath(t)
	s := startServer(t, "--max-user-conns", "1")
	ada := startBrowser(t, exe, "ada", time.Now().Add(2*time.Minute))
	ada.signIn(t, s, "ada@example.com", "Ada")
	waitFor[bool](t, ada, "connected", viewState, connectedBy, "ws")

	other := ada.newTab(t, "Ada's other tab")
	other.onEveryPage(t, "count WebSockets", countWebSockets)
	other.onEveryPage(t, "record the connection status", recordConnText)
	other.do(t, "open the app", chromedp.Navigate(other.appURL(s, "")))
	// The page long-polls after 2 WebSockets failed (FALLBACK_AFTER in
	// socket.js) with the HTTP API up; each try after the first comes some
	// 10 s after the one before (the Retry-After of the cap).
	for n := 2; n <= 3; n++ {
		waitFor[bool](t, other, fmt.Sprintf("WebSocket try %d, refused at the cap (not long-polling)", n),
			`{tries: window.parleyWSTries, view: `+viewState+`}`, wsTries, n)
	}
	// The status says so once the check has answered, and keeps saying
	// so at the tries that follow.
	texts := waitFor[[]string](t, other, "the status says the server refused the connection for a limit",
		`{texts: window.parleyConnTexts, view: `+viewState+`}`, `(want) => {
		const el = document.getElementById("conn-status");
		return el.dataset.state === "disconnected" && window.parleyConnTexts.at(-1).startsWith(want) &&
			window.parleyConnTexts;
	}`, limitedText)
	since := slices.IndexFunc(texts, func(s string) bool { return strings.HasPrefix(s, limitedText) })
	for _, s := range texts[since:] {
		if s != "Connecting…" && !strings.HasPrefix(s, limitedText) {
			t.Errorf("after the status said %q, it said %q; want it to say why the page waits (texts: %q)", texts[since], s, texts)
		}
	}
	if got := texts[len(texts)-1]; !regexp.MustCompile(`^` + limitedText + `\d+ seconds?…$`).MatchString(got) {
		t.Errorf("the status says %q; want %q and the seconds to wait", got, limitedText)
	}

	ada.do(t, "the first tab goes", chromedp.Navigate("about:blank"))
	// The next try may come a back-off step after the one under way.
	const wait = 40 * time.Second
	ctx, cancel := context.WithTimeout(other.ctx, wait)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.PollFunction[bool](connectedBy,
		chromedp.WithPollingArgs("ws"),
		chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(wait))); err != nil {
		state := evaluate[string](t, other, "read the page state", `JSON.stringify({tries: window.parleyWSTries, view: `+viewState+`})`)
		t.Fatalf("%s: not connected by WebSocket within %s of the first tab going: %v\npage state: %s", other.name, wait, err, state)
	}
	other.checkQuiet(t)
}
