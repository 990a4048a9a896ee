package main

import (
	"fmt"
	"net/http"
	"testing"
)

// countReads is run in a tab before the app: window.parleyReadFrames
// holds the read frames its WebSockets received ({room, seq}), each once
// the page has handled it.
const countReads = `(() => {
	window.parleyReadFrames = [];
	const add = window.WebSocket.prototype.addEventListener;
	window.WebSocket.prototype.addEventListener = function (type, fn, opts) {
		if (type !== "message") return add.call(this, type, fn, opts);
		return add.call(this, type, function (e) {
			const r = fn.call(this, e);
			for (const line of String(e.data).split("\n")) {
				let f = null;
				try { f = JSON.parse(line); } catch {}
				if (f && f.type === "read") window.parleyReadFrames.push({room: f.room_id, seq: f.seq});
			}
			return r;
		}, opts);
	};
})()`

// TestBrowserShownRoomOlderRead: Ada looks at a room while Grace writes
// twice; before the page's read position of the second message is stored
// (it waits up to READ_EVERY_ROOM), a read frame of an older one comes (her
// phone's, or the echo of the page's own first). The room she is looking
// at is not listed with an unread message, nor counted in the tab's title.
func TestBrowserShownRoomOlderRead(t *testing.T) {
	s, ada := startAdaUnsigned(t)
	ada.onEveryPage(t, "watch the reads", watchReads)
	ada.onEveryPage(t, "count the read frames", countReads)
	ada.signIn(t, s, "ada@example.com", "Ada")
	ada.enterRoom(t, "lobby")
	_, lobby, write := graceInLobby(t, s, ada)
	phone := signIn(t, s, "ada@example.com", "Ada")
	const state = `{reads: window.parleyReads, frames: window.parleyReadFrames, title: document.title,
		convs: [...document.querySelectorAll("#conversations li")].map((li) => li.textContent)}`
	waitFor[bool](t, ada, "lobby is listed", state, `() => !!document.querySelector('#conversations li[data-room-name="lobby"]')`)
	// The page's reads never reach the server: its position stays where
	// the phone puts it.
	evaluate[any](t, ada, "lose the reads", `window.parleyLoseReads = true`)
	one := write("one")
	write("two")
	frames := evaluate[int](t, ada, "count the read frames", `window.parleyReadFrames.length`)
	postJSON(t, phone, "POST", fmt.Sprintf("%s/api/conversations/%d/read", s.URL, lobby), map[string]int64{"seq": one}, http.StatusOK, nil)
	waitFor[bool](t, ada, "the phone's read frame is handled", state, `(n) => window.parleyReadFrames.length > n`, frames)
	got := evaluate[map[string]any](t, ada, "read lobby's badge and the title", `(() => {
		const b = document.querySelector('#conversations li[data-room-name="lobby"] .badge');
		return {badge: b && !b.hidden ? b.textContent : "", title: document.title};
	})()`)
	if got["badge"] != "" || got["title"] != "#lobby · Parley" {
		t.Errorf("Ada looks at lobby, read to its last message, after a read frame of an older one: badge %q, title %q; want no badge, %q",
			got["badge"], got["title"], "#lobby · Parley")
	}
	ada.checkQuiet(t)
}

// TestBrowserNewChatDuringList: Ada's conversation list is read as her
// page reconnects, and its answer comes late: after Grace's first message
// to her, which made their direct chat and came live. The answer, read
// before the chat existed, does not drop the chat and its unread message
// from the list and the tab's title.
func TestBrowserNewChatDuringList(t *testing.T) {
	s, ada := startAdaLosingFrames(t)
	grace, graceID, direct := graceBefriendsAda(t, s, ada)
	const state = `{title: document.title, conn: document.getElementById("conn-status").dataset.state,
		held: window.parleyHeldLists,
		convs: [...document.querySelectorAll("#conversations li")].map((li) => li.textContent)}`
	waitFor[bool](t, ada, "Grace is a friend", state, `(id) => !!document.querySelector('#friends li[data-user-id="' + id + '"]')`, graceID)
	ada.reconnectHoldingList(t)
	postJSON(t, grace, "POST", direct, map[string]string{"client_id": "c-hi", "body": "hi"}, http.StatusOK, nil)
	shows := fmt.Sprintf(`() => {
		const li = document.querySelector('#conversations li[data-peer-id="%d"]');
		const badge = li && li.querySelector(".badge");
		return !!badge && !badge.hidden && badge.textContent === "1" && document.title === "(1) Parley";
	}`, graceID)
	waitFor[bool](t, ada, "the chat with Grace shows 1 unread", state, shows)
	held := evaluate[int](t, ada, "count the lists asked", `window.parleyHeldLists`)
	evaluate[any](t, ada, "the list's answer arrives", `window.parleyReleaseList()`)
	waitFor[bool](t, ada, "the answer is taken", state, fmt.Sprintf(`(n) =>
		!document.querySelector('#conversations li[data-peer-id="%d"]') || window.parleyHeldLists > n`, graceID), held)
	if !evaluate[bool](t, ada, "look at the chat", "("+shows+")()") {
		t.Errorf("after a list read before Grace's first message: %v; want the chat with Grace listed with 1 unread, title %q",
			evaluate[any](t, ada, "read the list", "("+state+")"), "(1) Parley")
	}
	evaluate[any](t, ada, "let the lists go", `window.parleyHoldList = false; for (let i = 0; i < 10; i++) window.parleyReleaseList()`)
	waitFor[bool](t, ada, "the chat with Grace shows 1 unread", state, shows)
	ada.checkQuiet(t)
}

// TestBrowserReadLostWithLink: Ada reads a room and goes to another one
// as her link dies, unnoticed: the read position of what she read, sent
// as she left, is lost with it. When the page connects again, the room
// she read is not listed unread: the page sends that position again.
func TestBrowserReadLostWithLink(t *testing.T) {
	s, ada := startAdaUnsigned(t)
	ada.onEveryPage(t, "wrap the page", loseFrames)
	ada.onEveryPage(t, "watch the reads", watchReads)
	ada.onEveryPage(t, "count the read frames", countReads)
	ada.signIn(t, s, "ada@example.com", "Ada")
	ada.enterRoom(t, "lobby")
	_, lobby, write := graceInLobby(t, s, ada)
	const state = `{reads: window.parleyReads, frames: window.parleyReadFrames, lists: window.parleyLists, title: document.title,
		sockets: window.parleySockets.length, conn: document.getElementById("conn-status").dataset.state,
		convs: [...document.querySelectorAll("#conversations li")].map((li) => li.textContent)}`
	const sentRead = `(room, seq) => window.parleyReads.some((r) => r.room === room && r.seq >= seq)`
	waitFor[bool](t, ada, "Ada's page sends its first read", state, sentRead, lobby, write("one"))
	two := write("two")

	evaluate[any](t, ada, "the link dies", `window.parleyLoseReads = true`)
	ada.enterRoom(t, "side")
	waitFor[bool](t, ada, "the read of lobby went out as Ada left", state, sentRead, lobby, two)
	lists := evaluate[int](t, ada, "count the lists read", `window.parleyLists`)
	evaluate[any](t, ada, "the page notices", `window.parleyLoseReads = false; window.parleySockets.at(-1).close()`)
	waitFor[bool](t, ada, "the page reconnected and read its list", state, `(n) =>
		window.parleySockets.length === 2 && document.getElementById("conn-status").dataset.state === "connected" &&
		window.parleyLists > n`, lists)
	if unread := evaluate[string](t, ada, "read lobby's badge", `(() => {
		const b = document.querySelector('#conversations li[data-room-name="lobby"] .badge');
		return b && !b.hidden ? b.textContent : "";
	})()`); unread != "" {
		t.Errorf("after Ada read lobby up to seq %d, left it, and her page reconnected, the list shows it with %s unread", two, unread)
	}
	waitFor[bool](t, ada, "the server has Ada's read position in lobby", state, `(room, seq) =>
		window.parleyReadFrames.some((r) => r.room === room && r.seq >= seq)`, lobby, two)
	ada.checkQuiet(t)
}
