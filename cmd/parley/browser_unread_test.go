package main

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"
)

// loseFrames is run in a tab before the app. While window.parleyDrop is
// set, the page's WebSockets lose the frames that come, as over a link
// that died unnoticed (window.parleyDropped counts those with a
// message or conversation); window.parleySockets holds every WebSocket made. While
// window.parleyHoldList is set, the answers to GET /api/conversations
// wait, once received, until window.parleyReleaseList() lets the first of
// them go (window.parleyHeldLists counts them).
const loseFrames = `(() => {
	window.parleySockets = [];
	window.parleyDropped = 0;
	const Orig = window.WebSocket;
	const add = Orig.prototype.addEventListener;
	Orig.prototype.addEventListener = function (type, fn, opts) {
		if (type !== "message") return add.call(this, type, fn, opts);
		return add.call(this, type, function (e) {
			if (window.parleyDrop) {
				if (/"type":"(conversation|message)"/.test(String(e.data))) window.parleyDropped++;
				return;
			}
			return fn.call(this, e);
		}, opts);
	};
	window.WebSocket = class extends Orig {
		constructor(...args) {
			super(...args);
			window.parleySockets.push(this);
		}
	};
	const fetch = window.fetch.bind(window);
	const held = [];
	window.parleyHeldLists = 0;
	window.parleyReleaseList = () => held.shift()?.();
	window.fetch = async (input, init) => {
		const res = await fetch(input, init);
		if (window.parleyHoldList && String(input) === "/api/conversations") {
			window.parleyHeldLists++;
			await new Promise((resolve) => held.push(resolve));
		}
		return res;
	};
})()`

// TestBrowserUnreadAfterGap: Ada's link dies unnoticed while Grace writes
// to her twice; when the page reconnects, it reads its list again, and
// Grace's next message arrives live before that answer does. The badge
// counts all three (and the first, from before), not only what came live.
func TestBrowserUnreadAfterGap(t *testing.T) {
	s, ada := startAdaLosingFrames(t)
	grace, _, direct := graceBefriendsAda(t, s, ada)
	write := func(text string) int64 {
		t.Helper()
		var sent struct {
			Message struct {
				RoomID int64 `json:"room_id"`
			} `json:"message"`
		}
		postJSON(t, grace, "POST", direct, map[string]string{"client_id": "c-" + text, "body": text}, http.StatusOK, &sent)
		return sent.Message.RoomID
	}
	convID := write("one")
	const state = `{title: document.title, conn: document.getElementById("conn-status").dataset.state,
		dropped: window.parleyDropped, held: window.parleyHeldLists,
		convs: [...document.querySelectorAll("#conversations li")].map((li) =>
			[li.dataset.convId, li.textContent, li.querySelector(".badge")?.hidden].join(" | "))}`
	const shows = `(id, preview, unread) => {
		const li = document.querySelector('#conversations li[data-conv-id="' + id + '"]');
		const badge = li && li.querySelector(".badge");
		return !!badge && li.querySelector(".conv-preview").textContent === preview &&
			!badge.hidden && badge.textContent === String(unread);
	}`
	waitFor[bool](t, ada, "Grace's chat shows 1 unread", state, shows, convID, "one", 1)

	evaluate[chromedp.Void](t, ada, "the link dies", `window.parleyDrop = true`)
	write("two")
	write("three")
	waitFor[bool](t, ada, "both messages are lost", state, `() => window.parleyDropped >= 2`)

	ada.reconnectHoldingList(t)
	write("four")
	waitFor[bool](t, ada, "the new message arrives live", state, `(id) =>
		document.querySelector('#conversations li[data-conv-id="' + id + '"] .conv-preview')?.textContent === "four"`, convID)
	evaluate[chromedp.Void](t, ada, "the list's answer arrives", `window.parleyReleaseList()`)
	waitFor[bool](t, ada, "Grace's chat shows 4 unread", state, shows, convID, "four", 4)
	ada.checkQuiet(t)
}

// TestBrowserUnfriendedOnline: Ada and Grace both have their direct chat
// open; Grace ends the friendship. The server no longer tells Ada when
// Grace has the chat open (docs/protocol.md), so her page stops showing
// Grace there as online, rather than for good.
func TestBrowserUnfriendedOnline(t *testing.T) {
	_, ada, grace := startFriends(t)
	grace.fetchJSON(t, "POST", fmt.Sprintf("/api/direct/%d/messages", ada.userID), map[string]string{"client_id": "c-hi", "body": "hi"}, nil)
	for _, p := range []struct{ b, other *browser }{{ada, grace}, {grace, ada}} {
		sel := fmt.Sprintf(`#conversations li[data-peer-id="%d"] button`, p.other.userID)
		waitFor[bool](t, p.b, "the chat is listed", viewState, `(sel) => !!document.querySelector(sel)`, sel)
		p.b.click(t, "open the chat with "+p.other.name, sel)
		p.b.waitMessage(t, "hi")
	}
	ada.waitOnline(t, grace)
	waitFor[bool](t, ada, "Grace shows online", viewState, `() =>
		document.getElementById("room-sub").textContent === "Direct chat · online"`)

	grace.fetchJSON(t, "DELETE", fmt.Sprintf("/api/contacts/%d", ada.userID), nil, nil)
	waitFor[bool](t, ada, "Grace is no longer a friend", viewState, `(id) =>
		!document.querySelector('#friends li[data-user-id="' + id + '"]')`, grace.userID)
	waitFor[bool](t, ada, "Grace no longer shows online", `{sub: document.getElementById("room-sub").textContent, state: `+viewState+`}`, `(id) =>
		!document.querySelector('#online-list li[data-user-id="' + id + '"]') &&
		document.getElementById("room-sub").textContent === "Direct chat"`, grace.userID)
	for _, b := range []*browser{ada, grace} {
		b.checkQuiet(t)
	}
}

// startAdaLosingFrames starts a server and Ada's browser, signed in, her
// page run with loseFrames.
func startAdaLosingFrames(t *testing.T) (*testServer, *browser) {
	t.Helper()
	s, ada := startAdaWith(t, "wrap the page", loseFrames)
	ada.userID = userIDOf(t, s, nil, ada)
	return s, ada
}

// graceBefriendsAda signs Grace in by HTTP and makes her Ada's friend. It
// returns her client, her id, and the URL by which she writes to Ada.
func graceBefriendsAda(t *testing.T, s *testServer, ada *browser) (grace *http.Client, graceID int64, direct string) {
	t.Helper()
	grace = signIn(t, s, "grace@example.com", "Grace")
	graceID = userIDOf(t, s, grace, nil)
	ada.fetchJSON(t, "POST", "/api/contacts", map[string]int64{"user_id": graceID}, nil)
	postJSON(t, grace, "POST", fmt.Sprintf("%s/api/contacts/%d/accept", s.URL, ada.userID), nil, http.StatusOK, nil)
	return grace, graceID, fmt.Sprintf("%s/api/direct/%d/messages", s.URL, ada.userID)
}

// reconnectHoldingList has b's page (run with loseFrames) notice that its
// WebSocket died and connect again, its list's answer held.
func (b *browser) reconnectHoldingList(t *testing.T) {
	t.Helper()
	evaluate[chromedp.Void](t, b, "the page notices", `(() => {
		window.parleyHoldList = true;
		window.parleyDrop = false;
		window.parleySockets.at(-1).close();
	})()`)
	waitFor[bool](t, b, "the page reconnected and asks for its list", `{sockets: window.parleySockets.length,
		held: window.parleyHeldLists, conn: document.getElementById("conn-status").dataset.state}`, `() =>
		window.parleySockets.length === 2 && window.parleyHeldLists >= 1 &&
		document.getElementById("conn-status").dataset.state === "connected"`)
}

// TestBrowserRenameAfterGap: Grace renames a group of Ada's while Ada's
// link is dead, unnoticed; when the page reconnects, Grace's next message
// in the group arrives live before the list's answer does. The list shows
// the group's new name, not the one the page knew.
func TestBrowserRenameAfterGap(t *testing.T) {
	s, ada := startAdaLosingFrames(t)
	grace, groupID, _ := graceAddsToCrew(t, s, ada.userID)
	const state = `{conn: document.getElementById("conn-status").dataset.state,
		dropped: window.parleyDropped, held: window.parleyHeldLists,
		convs: [...document.querySelectorAll("#conversations li")].map((li) => [li.dataset.convId, li.textContent].join(" | "))}`
	const named = `(id, name) =>
		document.querySelector('#conversations li[data-conv-id="' + id + '"] .conv-name')?.textContent === name`
	waitFor[bool](t, ada, "Crew is listed", state, named, groupID, "Crew")

	evaluate[chromedp.Void](t, ada, "the link dies", `window.parleyDrop = true`)
	postJSON(t, grace, "PATCH", fmt.Sprintf("%s/api/groups/%d", s.URL, groupID), map[string]string{"name": "Crew 2"}, http.StatusOK, nil)
	waitFor[bool](t, ada, "the rename is lost", state, `() => window.parleyDropped >= 1`)
	ada.reconnectHoldingList(t)

	postJSON(t, grace, "POST", fmt.Sprintf("%s/api/rooms/%d/messages", s.URL, groupID), map[string]string{"client_id": "c-after", "body": "after"}, http.StatusOK, nil)
	waitFor[bool](t, ada, "the new message arrives live", state, `(id) =>
		document.querySelector('#conversations li[data-conv-id="' + id + '"] .conv-preview')?.textContent === "Grace: after"`, groupID)
	evaluate[chromedp.Void](t, ada, "the list's answer arrives", `window.parleyReleaseList()`)
	waitFor[bool](t, ada, "the list has the group's new name", state, named, groupID, "Crew 2")
	ada.checkQuiet(t)
}

// TestBrowserListOlderThanRename: Ada's conversation list is read as her
// page reconnects, and its answer comes late, after Grace's rename frame.
// The answer (which also brings the message the page missed) has Grace's
// name before the rename, with its version: the list must keep the newer
// name the frame gave, not show the older one until the next rename.
func TestBrowserListOlderThanRename(t *testing.T) {
	s, ada := startAdaLosingFrames(t)
	grace, graceID, direct := graceBefriendsAda(t, s, ada)
	postJSON(t, grace, "POST", direct, map[string]string{"client_id": "c-one", "body": "one"}, http.StatusOK, nil)

	const state = `{conn: document.getElementById("conn-status").dataset.state,
		dropped: window.parleyDropped, held: window.parleyHeldLists,
		convs: [...document.querySelectorAll("#conversations li")].map((li) => li.textContent)}`
	shows := fmt.Sprintf(`(name, preview) => {
		const li = document.querySelector('#conversations li[data-peer-id="%d"]');
		return !!li && li.querySelector(".conv-name").textContent === name &&
			li.querySelector(".conv-preview").textContent === preview;
	}`, graceID)
	waitFor[bool](t, ada, "the chat with Grace is listed", state, shows, "Grace", "one")

	evaluate[chromedp.Void](t, ada, "the link dies", `window.parleyDrop = true`)
	postJSON(t, grace, "POST", direct, map[string]string{"client_id": "c-two", "body": "two"}, http.StatusOK, nil)
	waitFor[bool](t, ada, "the message is lost", state, `() => window.parleyDropped >= 1`)
	ada.reconnectHoldingList(t)

	postJSON(t, grace, "PATCH", s.URL+"/api/me", map[string]string{"name": "Grace Hopper"}, http.StatusOK, nil)
	waitFor[bool](t, ada, "the rename's frame shows Grace's new name", state, shows, "Grace Hopper", "one")
	evaluate[chromedp.Void](t, ada, "the list's answer arrives", `window.parleyReleaseList()`)
	preview := fmt.Sprintf(`document.querySelector('#conversations li[data-peer-id="%d"] .conv-preview')?.textContent`, graceID)
	waitFor[bool](t, ada, "the list's answer brings the lost message", state, `() => `+preview+` === "two"`)
	name := fmt.Sprintf(`document.querySelector('#conversations li[data-peer-id="%d"] .conv-name')?.textContent`, graceID)
	if got := evaluate[string](t, ada, "read Grace's name in the list", name); got != "Grace Hopper" {
		t.Errorf("after the list's answer, read before the rename, the chat is named %q; want %q", got, "Grace Hopper")
	}
	ada.checkQuiet(t)
}

// watchReads is run in a tab before the app: window.parleyReads holds the
// read positions its WebSockets sent ({room, seq}), and while
// window.parleyLoseReads is set they are lost on the way (the server never
// stores them). window.parleyLists counts the answers to GET
// /api/conversations the page has read, and drawn (a task after).
const watchReads = `(() => {
	window.parleyReads = [];
	window.parleyLists = 0;
	const send = window.WebSocket.prototype.send;
	window.WebSocket.prototype.send = function (data) {
		let f = null;
		try { f = JSON.parse(data); } catch {}
		if (f && f.type === "read") {
			window.parleyReads.push({room: f.room_id, seq: f.seq});
			if (window.parleyLoseReads) return;
		}
		return send.call(this, data);
	};
	const fetch = window.fetch.bind(window);
	window.fetch = async (input, init) => {
		const res = await fetch(input, init);
		if (String(input) === "/api/conversations") {
			const text = res.text.bind(res);
			res.text = async () => {
				const body = await text();
				setTimeout(() => window.parleyLists++, 0);
				return body;
			};
		}
		return res;
	};
})()`

// TestBrowserLeftRoomNotUnread: Ada reads a room's messages and goes to
// another room. The read position of what she read goes out as she leaves
// (not up to 5 s later, READ_EVERY_ROOM), and the conversation list, read
// again as she enters the other room, never shows the room she read with
// unread messages: not even when the server has not stored her read
// position yet (here, it never gets it).
func TestBrowserLeftRoomNotUnread(t *testing.T) {
	s, ada := startAdaWith(t, "watch the reads", watchReads)
	ada.enterRoom(t, "lobby")
	_, lobby, readRoom := graceInLobby(t, s, ada)
	const state = `{reads: window.parleyReads, lists: window.parleyLists, title: document.title,
		convs: [...document.querySelectorAll("#conversations li")].map((li) => li.textContent)}`
	const sentRead = `(room, seq) => window.parleyReads.some((r) => r.room === room && r.seq >= seq)`
	// A first read goes out within READ_EVERY_ROOM; the next one waits
	// for the rest of it.
	waitFor[bool](t, ada, "Ada's page sends its first read", state, sentRead, lobby, readRoom("one"))
	two := readRoom("two")
	leave := func(read int64) {
		t.Helper()
		lists := evaluate[int](t, ada, "count the lists read", `window.parleyLists`)
		ada.enterRoom(t, "side")
		if !evaluate[bool](t, ada, "look for the read", fmt.Sprintf(`(%s)(%d, %d)`, sentRead, lobby, read)) {
			t.Errorf("Ada left lobby having read seq %d; its read position did not go out as she left: %v", read,
				evaluate[any](t, ada, "read the reads", `window.parleyReads`))
		}
		waitFor[bool](t, ada, "the list is read again", state, `(n) => window.parleyLists > n`, lists)
		if unread := evaluate[string](t, ada, "read lobby's badge", `(() => {
			const b = document.querySelector('#conversations li[data-room-name="lobby"] .badge');
			return b && !b.hidden ? b.textContent : "";
		})()`); unread != "" {
			t.Errorf("after Ada read lobby up to seq %d and left it, the list shows it with %s unread", read, unread)
		}
	}
	leave(two)

	// Back in lobby, her reads are lost from now on: the list the server
	// gives counts what she read as unread, and the page knows better.
	ada.enterRoom(t, "lobby")
	evaluate[chromedp.Void](t, ada, "lose the reads", `window.parleyLoseReads = true`)
	leave(readRoom("three"))
	ada.checkQuiet(t)
}

// graceInLobby signs Grace in by HTTP and has her enter lobby, where b's
// user is. It returns her client, the room's id, and a function by which
// she writes text there, which returns the message's seq once b shows it.
func graceInLobby(t *testing.T, s *testServer, b *browser) (grace *http.Client, lobby int64, write func(text string) int64) {
	t.Helper()
	grace = signIn(t, s, "grace@example.com", "Grace")
	var room struct {
		Room struct{ ID int64 } `json:"room"`
	}
	postJSON(t, grace, "POST", s.URL+"/api/rooms", map[string]string{"name": "lobby"}, http.StatusOK, &room)
	lobby = room.Room.ID
	return grace, lobby, func(text string) int64 {
		t.Helper()
		var sent struct {
			Message struct{ Seq int64 } `json:"message"`
		}
		postJSON(t, grace, "POST", fmt.Sprintf("%s/api/rooms/%d/messages", s.URL, lobby),
			map[string]string{"client_id": "c-" + text, "body": text}, http.StatusOK, &sent)
		b.waitMessage(t, text)
		return sent.Message.Seq
	}
}
