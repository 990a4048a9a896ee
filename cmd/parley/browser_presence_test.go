package main

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"
)

// holdContacts is run in a page before the app: while
// window.parleyHoldContacts is set, the answers to its GETs of the
// contact list reach the app only at window.parleyReleaseContacts()
// (window.parleyHeldContacts counts them); window.parleyPresence counts
// the presence frames its WebSockets received.
const holdContacts = `(() => {
	const fetch = window.fetch;
	let gate = null;
	let release = () => {};
	window.parleyHoldContacts = true;
	window.parleyHeldContacts = 0;
	window.parleyReleaseContacts = () => {
		window.parleyHoldContacts = false;
		release();
	};
	window.fetch = async (input, init) => {
		const res = await fetch(input, init);
		const path = new URL(String(input instanceof Request ? input.url : input), location.href).pathname;
		if (path !== "/api/contacts" || (init?.method ?? "GET") !== "GET" || !window.parleyHoldContacts) return res;
		window.parleyHeldContacts++;
		gate ??= new Promise((r) => { release = r; });
		await gate;
		return res;
	};
	window.parleyPresence = 0;
	const add = WebSocket.prototype.addEventListener;
	WebSocket.prototype.addEventListener = function (type, fn, opts) {
		if (type !== "message") return add.call(this, type, fn, opts);
		return add.call(this, type, (e) => {
			if (String(e.data).includes('"type":"presence"')) window.parleyPresence++;
			fn(e);
		}, opts);
	};
})()`

// TestBrowserPresenceNewerThanContacts: Ada's page loads with Grace, her
// friend, online; its contact list is read then, but its answer comes
// late, after Grace went offline and the page's WebSocket said so. The
// list, older than the frame, must not show Grace online again.
func TestBrowserPresenceNewerThanContacts(t *testing.T) {
	s, ada := startAdaBy(t, "")
	ada.userID = userIDOf(t, s, nil, ada)
	grace := signIn(t, s, "grace@example.com", "Grace")
	graceID := userIDOf(t, s, grace, nil)
	postJSON(t, grace, "POST", s.URL+"/api/contacts", map[string]int64{"user_id": ada.userID}, http.StatusOK, nil)
	ada.fetchJSON(t, "POST", fmt.Sprintf("/api/contacts/%d/accept", graceID), nil, nil)
	ws := dialWS(t, s, grace)
	defer ws.Close()

	ada.onEveryPage(t, "hold the contact list's answers", holdContacts)
	ada.do(t, "reload the page", chromedp.Reload())
	waitFor[bool](t, ada, "Ada is connected, the contact list's answers held", `{held: window.parleyHeldContacts, view: `+viewState+`}`,
		`() => document.getElementById("conn-status").dataset.state === "connected" && window.parleyHeldContacts >= 2`)
	ws.Close() // Grace goes offline
	waitFor[bool](t, ada, "Ada's page is told that Grace is offline", `{presence: window.parleyPresence}`,
		`() => window.parleyPresence >= 1`)
	evaluate[chromedp.Void](t, ada, "let the contact list's answers go", `window.parleyReleaseContacts()`)
	dot := fmt.Sprintf(`document.querySelector('#friends li[data-user-id="%d"] .presence-dot')?.dataset.online`, graceID)
	waitFor[bool](t, ada, "Grace is listed", dot, `() => `+dot+` !== undefined`)
	if got := evaluate[string](t, ada, "read Grace's presence", dot); got != "false" {
		t.Errorf("Grace's presence dot says online=%q after her offline frame; want \"false\"", got)
	}
	ada.checkQuiet(t)
}
