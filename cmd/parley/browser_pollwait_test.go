package main

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// recordPolls records in window.parleyPolls each GET /api/poll the page
// makes: when it began and ended (performance.now()), its status, and the
// retry_after_ms of a 429.
const recordPolls = `(() => {
	window.parleyPolls = [];
	const orig = window.fetch;
	window.fetch = async function (input, init) {
		const url = String(input instanceof Request ? input.url : input);
		const method = (init && init.method) || "GET";
		if (!url.includes("/api/poll") || method !== "GET") return orig.call(this, input, init);
		const rec = {at: performance.now()};
		window.parleyPolls.push(rec);
		const res = await orig.call(this, input, init);
		rec.status = res.status;
		rec.doneAt = performance.now();
		if (res.status === 429) {
			try {
				rec.retryAfterMs = (await res.clone().json()).error.retry_after_ms;
			} catch {}
		}
		return res;
	};
})()`

// TestBrowserPollWaitsRetryAfter: Ada, allowed one connection on the node
// (--max-user-conns 1), long-polls in one tab and opens the app, long-
// polling too, in another. The server refuses the second tab's new channel
// with 429 rate_limited and retry_after_ms: the tab asks again no sooner
// than that, not on its back-off of half a second, says why it waits,
// and connects once the first tab has gone.
func TestBrowserPollWaitsRetryAfter(t *testing.T) {
	exe := chromiumPath(t)
	s := startServer(t, "--max-user-conns", "1")
	ada := startBrowser(t, exe, "ada", time.Now().Add(2*time.Minute))
	ada.query = "?transport=poll"
	ada.signIn(t, s, "ada@example.com", "Ada")
	waitFor[bool](t, ada, "connected", viewState, connectedBy, "poll")

	other := ada.newTab(t, "Ada's other tab")
	other.onEveryPage(t, "record polls", recordPolls)
	other.do(t, "open the app", chromedp.Navigate(other.appURL(s, "")))
	waitFor[bool](t, other, "a poll refused with 429, then another poll", `window.parleyPolls`, `() =>
		window.parleyPolls.length >= 2 && window.parleyPolls[0].status === 429`)
	type poll struct {
		At, DoneAt   float64
		Status       int
		RetryAfterMS float64 `json:"retryAfterMs"`
	}
	polls := evaluate[[]poll](t, other, "read the polls", `window.parleyPolls`)
	for i := 0; i+1 < len(polls); i++ {
		p, next := polls[i], polls[i+1]
		if p.Status != 429 || next.At == 0 {
			continue
		}
		if p.RetryAfterMS <= 0 {
			t.Fatalf("poll %d: 429 without retry_after_ms: %+v", i+1, p)
		}
		// A timer may fire a few milliseconds early.
		if gap := next.At - p.DoneAt; gap < p.RetryAfterMS-50 {
			t.Errorf("poll %d came %.0f ms after poll %d was refused with retry_after_ms %.0f; want no sooner", i+2, gap, i+1, p.RetryAfterMS)
		}
	}

	// The status says why the page waits, not that the server cannot be
	// reached.
	waitFor[bool](t, other, "the status says the server refused the connection for a limit",
		`{text: document.getElementById("conn-text").textContent, polls: window.parleyPolls}`, `(want) =>
		document.getElementById("conn-status").dataset.state === "disconnected" &&
		document.getElementById("conn-text").textContent.startsWith(want)`, limitedText)

	ada.do(t, "the first tab goes", chromedp.Navigate("about:blank"))
	const wait = 40 * time.Second
	ctx, cancel := context.WithTimeout(other.ctx, wait)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.PollFunction[bool](connectedBy,
		chromedp.WithPollingArgs("poll"),
		chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(wait))); err != nil {
		state := evaluate[string](t, other, "read the page state", `JSON.stringify({polls: window.parleyPolls, view: `+viewState+`})`)
		t.Fatalf("%s: not connected by long-polling within %s of the first tab going: %v\npage state: %s", other.name, wait, err, state)
	}
	other.checkQuiet(t)
}
