package main

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// watchOpened is run in a tab before the app. It keeps in
// window.parleyOpenSeq the user_seq of the newest opened reply of each
// conversation on the page's WebSocket, and window.parleyInject(frame)
// hands the page a frame as if that WebSocket had received it.
const watchOpened = `(() => {
	window.parleyOpenSeq = {};
	const add = WebSocket.prototype.addEventListener;
	WebSocket.prototype.addEventListener = function (type, fn, opts) {
		if (type !== "message") return add.call(this, type, fn, opts);
		const ws = this;
		window.parleyWS = ws;
		window.parleyInject = (f) => ws.dispatchEvent(new MessageEvent("message", {data: JSON.stringify(f)}));
		return add.call(this, type, function (e) {
			for (const line of String(e.data).split("\n")) {
				let f = null;
				try { f = JSON.parse(line); } catch {}
				if (f && f.type === "opened" && f.room) window.parleyOpenSeq[f.room.id] = f.user_seq || 0;
			}
			return fn.call(this, e);
		}, opts);
	};
})()`

// TestBrowserStaleRemovedKeepsGroup: a removed whose user_seq is at most
// the one of the connection's newest opened reply of the group ended an
// earlier membership (docs/protocol.md): the server still delivers the
// group there, and the page must keep it open and usable. A removed that
// is news (Grace removes Ada for real, with a larger user_seq) still ends
// Ada's access.
func TestBrowserStaleRemovedKeepsGroup(t *testing.T) {
	s, ada := startAdaWith(t, "install the watch", watchOpened)
	waitFor[bool](t, ada, "connected", viewState, connectedBy, "ws")
	adaID := userIDOf(t, s, nil, ada)
	grace, groupID, members := graceAddsToCrew(t, s, adaID)
	say := func(client, text string) {
		t.Helper()
		postJSON(t, grace, "POST", fmt.Sprintf("%s/api/conversations/%d/messages", s.URL, groupID),
			map[string]string{"client_id": client, "body": text}, http.StatusOK, nil)
	}

	const state = `{view: ` + viewState + `, openSeq: window.parleyOpenSeq}`
	crewListed := fmt.Sprintf(`!!document.querySelector('#conversations li[data-conv-id="%d"]')`, groupID)
	waitFor[bool](t, ada, "Crew is listed", state, `() => `+crewListed)
	evaluate[chromedp.Void](t, ada, "open Crew", fmt.Sprintf(`location.hash = "#conv/%d"`, groupID))
	openSeq := waitFor[int64](t, ada, "Crew is open", state, `(id) =>
		document.getElementById("room-title").textContent === "Crew" &&
		document.getElementById("history-text").textContent !== "Loading messages…" &&
		document.getElementById("conn-status").dataset.state === "connected" &&
		window.parleyOpenSeq[id]`, groupID)

	// A removed of an earlier membership comes late: it stops nothing.
	evaluate[chromedp.Void](t, ada, "a stale removed", fmt.Sprintf(
		`window.parleyInject({type: "removed", room_id: %d, reason: "removed", user_seq: %d})`, groupID, openSeq))
	const after = "Still here, Ada?"
	say("g1", after)
	shown := `(text) => [...document.querySelectorAll("#messages .msg .msg-body")].some((b) => b.textContent === text)`
	ended := `!document.getElementById("room-ended").hidden`
	waitFor[bool](t, ada, "Grace's message is shown, or Crew ended", state, `(text) => (`+shown+`)(text) || `+ended, after)
	if evaluate[bool](t, ada, "is Crew ended", ended) {
		t.Errorf("a removed with user_seq %d, that of the opened reply, ended Crew (%q); want it kept",
			openSeq, evaluate[string](t, ada, "the banner", `document.getElementById("room-ended").textContent`))
	}
	if !evaluate[bool](t, ada, "is Crew listed", crewListed) {
		t.Errorf("Crew left the list after a stale removed")
	}
	if t.Failed() {
		return
	}
	// Ada can still write there.
	const reply = "Still here."
	ada.do(t, "reply", chromedp.SendKeys(chromedp.ID("composer"), reply+kb.Enter))
	waitFor[bool](t, ada, "the reply is sent", state, `(text) => {
		const m = [...document.querySelectorAll("#messages .msg")]
			.filter((m) => m.querySelector(".msg-body")?.textContent === text);
		return m.length === 1 && !m[0].classList.contains("pending") && !!m[0].dataset.seq;
	}`, reply)

	// Grace removes Ada: that removed is news, and ends Crew.
	postJSON(t, grace, "DELETE", fmt.Sprintf("%s/%d", members, adaID), nil, http.StatusNoContent, nil)
	waitFor[bool](t, ada, "Crew is ended and gone from the list", state, `() => `+ended+` && !`+crewListed+` &&
		document.getElementById("room-ended").dataset.reason === "removed"`)
	ada.checkQuiet(t)
}

// TestBrowserStaleRemovedKeepsRoom: in a room, a removed that is old news
// by its user_seq stops nothing either, and the page need not ask the
// server whether Ada is a member: it keeps the room open, receiving.
func TestBrowserStaleRemovedKeepsRoom(t *testing.T) {
	s, ada := startAdaWith(t, "install the watch", watchOpened)
	waitFor[bool](t, ada, "connected", viewState, connectedBy, "ws")
	// Being added to a group puts an event in Ada's log, so that opened
	// replies carry a user_seq.
	grace, _, _ := graceAddsToCrew(t, s, userIDOf(t, s, nil, ada))
	ada.enterRoom(t, "lobby")
	id := evaluate[int64](t, ada, "the room's id", `Number(document.querySelector('#rooms-joined li[data-room-name="lobby"]').dataset.roomId)`)
	const state = `{view: ` + viewState + `, openSeq: window.parleyOpenSeq, checks: window.parleyRoomChecks}`
	openSeq := waitFor[int64](t, ada, "lobby's opened reply", state, `(id) => window.parleyOpenSeq[id]`, id)

	evaluate[chromedp.Void](t, ada, "count the room's checks", fmt.Sprintf(`(() => {
		window.parleyRoomChecks = 0;
		const fetch = window.fetch;
		window.fetch = (url, init) => {
			if (String(url) === "/api/rooms/%d") window.parleyRoomChecks++;
			return fetch(url, init);
		};
	})()`, id))
	evaluate[chromedp.Void](t, ada, "a stale removed", fmt.Sprintf(
		`window.parleyInject({type: "removed", room_id: %d, reason: "left", user_seq: %d})`, id, openSeq))
	postJSON(t, grace, "POST", s.URL+"/api/rooms", map[string]string{"name": "lobby"}, http.StatusOK, nil)
	const text = "Hello, lobby."
	postJSON(t, grace, "POST", fmt.Sprintf("%s/api/rooms/%d/messages", s.URL, id),
		map[string]string{"client_id": "g1", "body": text}, http.StatusOK, nil)
	waitFor[bool](t, ada, "Grace's message is shown", state, `(text) =>
		[...document.querySelectorAll("#messages .msg .msg-body")].some((b) => b.textContent === text)`, text)
	if n := evaluate[int](t, ada, "count the checks", `window.parleyRoomChecks`); n != 0 {
		t.Errorf("the page asked GET /api/rooms/%d %d times after a removed with user_seq %d, that of the opened reply; want 0", id, n, openSeq)
	}
	if !evaluate[bool](t, ada, "is lobby listed", `!!document.querySelector('#rooms-joined li[data-room-name="lobby"]')`) {
		t.Errorf("lobby left the list after a stale removed")
	}
	ada.checkQuiet(t)
}
