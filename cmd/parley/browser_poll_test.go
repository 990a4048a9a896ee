package main

import (
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestBrowserPoll runs TestBrowserMessenger's scenario with every page on
// long-polling, forced by ?transport=poll in the app's URL.
func TestBrowserPoll(t *testing.T) {
	runMessengerScenario(t, "?transport=poll", "poll")
}

// blockWebSocket replaces the page's WebSocket with one that never
// connects, as behind a proxy that refuses upgrades: each attempt fails
// with an error and a close 1006. It counts the attempts.
const blockWebSocket = `(() => {
	window.parleyWebSocketAttempts = 0;
	class BlockedWebSocket extends EventTarget {
		static CONNECTING = 0;
		static OPEN = 1;
		static CLOSING = 2;
		static CLOSED = 3;
		constructor(url) {
			super();
			window.parleyWebSocketAttempts++;
			this.url = String(url);
			this.readyState = BlockedWebSocket.CONNECTING;
			setTimeout(() => {
				this.readyState = BlockedWebSocket.CLOSED;
				this.dispatchEvent(new Event("error"));
				this.dispatchEvent(new CloseEvent("close", {code: 1006, wasClean: false}));
			}, 20);
		}
		send() {
			throw new DOMException("WebSocket is not open", "InvalidStateError");
		}
		close() {}
	}
	window.WebSocket = BlockedWebSocket;
})()`

// TestBrowserPollFallback checks that the app falls back to long-polling
// by itself when no WebSocket can be opened while the HTTP API answers:
// Ada's browser has no working WebSocket, Grace's has; they talk live in
// a room and see each other online.
func TestBrowserPollFallback(t *testing.T) {
	s, ada, grace := startPair(t, browserTestTimeout)

	ada.onEveryPage(t, "block WebSockets", blockWebSocket)

	ada.signIn(t, s, "ada@example.com", "Ada")
	grace.signIn(t, s, "grace@example.com", "Grace")
	waitFor[bool](t, ada, "Ada is connected by long-polling", viewState, connectedBy, "poll")
	waitFor[bool](t, grace, "Grace is connected by WebSocket", viewState, connectedBy, "ws")
	if n := evaluate[int](t, ada, "count WebSocket attempts", `window.parleyWebSocketAttempts`); n < 2 {
		t.Errorf("Ada's page tried %d WebSockets before long-polling; want at least 2", n)
	}

	ada.enterRoom(t, "lobby")
	grace.enterRoom(t, "lobby")
	for _, p := range []struct {
		from, to *browser
		text     string
	}{
		{ada, grace, "Hello from behind a proxy that blocks WebSockets."},
		{grace, ada, "Loud and clear, Ada."},
		{ada, grace, "Long-polling it is, then."},
	} {
		seq := p.from.send(t, p.text)
		m := p.to.waitMessage(t, p.text)
		if m.Seq != seq || m.Kind != "text" || m.SenderID != p.from.userID || m.Sender != p.from.name || m.Pending {
			t.Fatalf("%s sees %q as %+v; want seq %d, kind text, sender %d %q, not pending",
				p.to.name, p.text, m, seq, p.from.userID, p.from.name)
		}
	}
	ada.waitOnline(t, grace)
	grace.waitOnline(t, ada)

	// The page keeps long-polling: no WebSocket is tried once it switched.
	before := evaluate[int](t, ada, "count WebSocket attempts", `window.parleyWebSocketAttempts`)
	ada.send(t, "Still here.")
	grace.waitMessage(t, "Still here.")
	if n := evaluate[int](t, ada, "count WebSocket attempts", `window.parleyWebSocketAttempts`); n != before {
		t.Errorf("Ada's page tried %d more WebSockets after it switched to long-polling; want none", n-before)
	}
	waitFor[bool](t, ada, "Ada is still connected by long-polling", viewState, connectedBy, "poll")

	// Ada's link fails while she sends: the page reconnects, resumes its
	// channel, and the message arrives once.
	ada.pollOffline(t, s, true)
	ada.do(t, "send while cut off", chromedp.SendKeys(chromedp.ID("composer"), "Sent through a broken link."+kb.Enter))
	ada.waitDisconnected(t)
	ada.pollOffline(t, s, false)
	grace.waitMessage(t, "Sent through a broken link.")
	ada.waitMessage(t, "Sent through a broken link.")
	waitFor[bool](t, ada, "Ada is connected by long-polling again", viewState, connectedBy, "poll")
	ada.send(t, "And back.")
	grace.waitMessage(t, "And back.")

	for _, b := range []*browser{ada, grace} {
		b.checkQuiet(t)
	}
}

// pollOffline cuts b's page off /api/poll, or restores it.
func (b *browser) pollOffline(t *testing.T, s *testServer, offline bool) {
	t.Helper()
	b.cutOff(t, s.URL+"/api/poll*", offline)
}

// cutOff cuts b's page off the addresses that pattern matches (a * matches
// anything), or, with offline false, restores every address.
func (b *browser) cutOff(t *testing.T, pattern string, offline bool) {
	t.Helper()
	if !offline {
		b.cutOffAll(t)
		return
	}
	b.cutOffAll(t, pattern)
}

// cutOffAll cuts b's page off the addresses that any of patterns match,
// and restores every other address.
func (b *browser) cutOffAll(t *testing.T, patterns ...string) {
	t.Helper()
	var rules []*network.Conditions
	for _, pattern := range patterns {
		rules = append(rules, &network.Conditions{URLPattern: pattern, Offline: true, DownloadThroughput: -1, UploadThroughput: -1})
	}
	ctx, cancel := b.stepCtx()
	defer cancel()
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("%s: enable network: %v", b.name, err)
	}
	if _, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: rules}); err != nil {
		t.Fatalf("%s: emulate network conditions: %v", b.name, err)
	}
}
