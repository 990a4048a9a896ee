package main

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"
)

// dropContactFrames is run in a page before the app: while
// window.parleyDropContacts is set, its WebSockets lose the contact frames
// that come, frame by frame (window.parleyDroppedContacts counts them), as a page that
// was away for longer than the server's replay loses them;
// window.parleySockets holds every WebSocket made.
const dropContactFrames = `(() => {
	window.parleySockets = [];
	window.parleyDroppedContacts = 0;
	const Orig = window.WebSocket;
	const add = Orig.prototype.addEventListener;
	Orig.prototype.addEventListener = function (type, fn, opts) {
		if (type !== "message") return add.call(this, type, fn, opts);
		return add.call(this, type, function (e) {
			if (!window.parleyDropContacts) return fn.call(this, e);
			// A message may hold several frames, a line each.
			const kept = String(e.data).split("\n").filter((line) => {
				if (!line.includes('"type":"contact"')) return true;
				window.parleyDroppedContacts++;
				return false;
			});
			if (kept.some((line) => line.trim())) return fn.call(this, new MessageEvent("message", {data: kept.join("\n")}));
		}, opts);
	};
	window.WebSocket = class extends Orig {
		constructor(...args) {
			super(...args);
			window.parleySockets.push(this);
		}
	};
})()`

// TestBrowserUnfriendedMissedFrame: Grace, online, ends her friendship
// with Ada, and Ada's page misses the contact frame that says so. When
// the page reconnects it reads its contact list again, which no longer
// has Grace: the page must stop showing her presence (her dot on their
// direct chat), which only friends are told, rather than show her online
// for good.
func TestBrowserUnfriendedMissedFrame(t *testing.T) {
	s, ada := startAdaLosingContacts(t)
	grace := signIn(t, s, "grace@example.com", "Grace")
	graceID := userIDOf(t, s, grace, nil)
	postJSON(t, grace, "POST", s.URL+"/api/contacts", map[string]int64{"user_id": ada.userID}, http.StatusOK, nil)
	ada.fetchJSON(t, "POST", fmt.Sprintf("/api/contacts/%d/accept", graceID), nil, nil)
	postJSON(t, grace, "POST", fmt.Sprintf("%s/api/direct/%d/messages", s.URL, ada.userID),
		map[string]string{"client_id": "c-hi", "body": "hi"}, http.StatusOK, nil)
	ws := dialWS(t, s, grace)
	defer ws.Close()

	dot := fmt.Sprintf(`document.querySelector('#conversations li[data-peer-id="%d"] .presence-dot')?.dataset.online`, graceID)
	state := `{dot: ` + dot + `, dropped: window.parleyDroppedContacts, sockets: window.parleySockets.map((s) => s.readyState), view: ` + viewState + `}`
	waitFor[bool](t, ada, "the chat with Grace shows her online", state, `() => `+dot+` === "true"`)

	evaluate[chromedp.Void](t, ada, "lose contact frames", `window.parleyDropContacts = true`)
	postJSON(t, grace, "DELETE", fmt.Sprintf("%s/api/contacts/%d", s.URL, ada.userID), nil, http.StatusNoContent, nil)
	waitFor[bool](t, ada, "the contact frame is lost", state, `() => window.parleyDroppedContacts >= 1`)

	evaluate[chromedp.Void](t, ada, "the page reconnects", `window.parleySockets.at(-1).close()`)
	friend := fmt.Sprintf(`!!document.querySelector('#friends li[data-user-id="%d"]')`, graceID)
	waitFor[bool](t, ada, "the contact list, read again, has Grace no more", state, `() =>
		window.parleySockets.length === 2 && document.getElementById("conn-status").dataset.state === "connected" && !`+friend)
	waitFor[bool](t, ada, "the chat with Grace shows no presence", state, `() => `+dot+` === undefined`)
	ada.checkQuiet(t)
}

// startAdaLosingContacts starts a server and Ada's browser, signed in,
// her page run with dropContactFrames.
func startAdaLosingContacts(t *testing.T) (*testServer, *browser) {
	t.Helper()
	s, ada := startAdaWith(t, "wrap the page", dropContactFrames)
	ada.userID = userIDOf(t, s, nil, ada)
	return s, ada
}
