package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// newTab opens another tab in b's browser: the same profile, so the same
// signed-in user, as a second tab of the app would be. Its errors and
// dialogs are its own.
func (b *browser) newTab(t *testing.T, name string) *browser {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	tab := &browser{name: name, query: b.query, ctx: ctx, deadline: b.deadline, userID: b.userID, output: b.output}
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			tab.mu.Lock()
			tab.console = append(tab.console, m)
			if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source == "") {
				tab.problems = append(tab.problems, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
			}
			tab.mu.Unlock()
		}
	}()
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	sctx, scancel := context.WithDeadline(context.Background(), b.stepDeadline())
	defer scancel()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("%s: open a tab: %v", name, err)
		}
	case <-sctx.Done():
		t.Fatalf("%s: no new tab within the step's time", name)
	}
	tab.do(t, "set viewport", chromedp.EmulateViewport(1280, 800))
	return tab
}

// openApp loads the app in tab, signed in already, and waits for the chat.
func (b *browser) openApp(t *testing.T, s *testServer, hash string) {
	t.Helper()
	b.do(t, "open the app", chromedp.Navigate(b.appURL(s, hash)))
	waitFor[bool](t, b, "the chat view is connected", viewState, `() =>
		document.getElementById("app").dataset.view === "chat" &&
		document.getElementById("conn-status").dataset.state === "connected"`)
}

// TestBrowserLeaveRoomOtherTab: Ada has #lobby open in two tabs and leaves
// it in one. The other tab is told: it drops #lobby from its lists and
// closes it, instead of showing a room whose sends are refused.
func TestBrowserLeaveRoomOtherTab(t *testing.T) {
	s, ada := startAda(t)
	ada.enterRoom(t, "lobby")
	other := ada.newTab(t, "Ada's other tab")
	other.openApp(t, s, "")
	other.enterRoom(t, "lobby")
	waitFor[bool](t, other, "#lobby is in the other tab's lists", viewState, `() =>
		!!document.querySelector('#rooms-joined li[data-room-name="lobby"]') &&
		!!document.querySelector('#conversations li[data-room-name="lobby"]')`)

	ada.click(t, "leave #lobby", "#leave-room")
	waitFor[bool](t, ada, "#lobby is closed here", viewState, `() =>
		document.querySelector(".chat").dataset.screen === "list" &&
		!document.querySelector('#rooms-joined li[data-room-name="lobby"]')`)

	waitFor[bool](t, other, "the other tab has closed #lobby and dropped it from its lists", `{
		view: `+viewState+`,
		joined: [...document.querySelectorAll("#rooms-joined li")].map((li) => li.dataset.roomName),
		convs: [...document.querySelectorAll("#conversations li")].map((li) => li.dataset.roomName),
		hasRoom: document.querySelector(".room").classList.contains("has-room"),
	}`, `() =>
		!document.querySelector(".room").classList.contains("has-room") &&
		document.querySelector(".chat").dataset.screen === "list" &&
		!document.querySelector('#rooms-joined li[data-room-name="lobby"]') &&
		!document.querySelector('#conversations li[data-room-name="lobby"]')`)
	for _, b := range []*browser{ada, other} {
		b.checkQuiet(t)
	}
}

// drainBeforeOpen makes the page's WebSocket send pings ahead of its
// first open frame, enough to use up the connection's allowance of
// frames: the server refuses that open with rate_limited. It records in
// window.parleyRoomSubs what the room's subtitle said meanwhile.
const drainBeforeOpen = `(() => {
	const send = WebSocket.prototype.send;
	let drained = false;
	WebSocket.prototype.send = function (data) {
		if (!drained && String(data).includes('"type":"open"')) {
			drained = true;
			for (let i = 0; i < 8; i++) send.call(this, JSON.stringify({type: "ping"}));
		}
		return send.call(this, data);
	};
	window.parleyRoomSubs = [];
	new MutationObserver(() => window.parleyRoomSubs.push(document.getElementById("room-sub").textContent))
		.observe(document.getElementById("room-sub"), {childList: true, characterData: true, subtree: true});
})()`

// TestBrowserOpenRateLimited: the server refuses the open of a room with
// rate_limited (the connection sent too many frames). The page says it is
// waiting and asks again after the retry_after_ms the error gives: the
// room opens, with who is there and its live messages.
func TestBrowserOpenRateLimited(t *testing.T) {
	exe := chromiumPath(t)
	// Other frames than sends: five times --send-rate, bursts of five times --send-burst.
	s := startServer(t, "--send-rate", "1", "--send-burst", "1")
	ada := startBrowser(t, exe, "ada", time.Now().Add(2*time.Minute))
	ada.signIn(t, s, "ada@example.com", "Ada")
	waitFor[bool](t, ada, "connected", viewState, connectedBy, "ws")

	evaluate[chromedp.Void](t, ada, "drain the frame allowance before the open", drainBeforeOpen)
	ada.enterRoom(t, "lobby") // waits for the opened reply: Ada is listed there
	if subs := evaluate[[]string](t, ada, "read the subtitles", `window.parleyRoomSubs`); !slices.ContainsFunc(subs, func(s string) bool {
		return strings.Contains(s, "Waiting")
	}) {
		t.Errorf("the room's subtitle said %q while the open was refused; want it to say it is waiting", subs)
	}

	grace := signIn(t, s, "grace@example.com", "Grace")
	var room struct {
		Room struct{ ID int64 } `json:"room"`
	}
	postJSON(t, grace, "POST", s.URL+"/api/rooms", map[string]string{"name": "lobby"}, http.StatusOK, &room)
	postJSON(t, grace, "POST", fmt.Sprintf("%s/api/rooms/%d/messages", s.URL, room.Room.ID),
		map[string]string{"client_id": "c-grace-1", "body": "Is anyone here?"}, http.StatusOK, nil)
	ada.waitMessage(t, "Is anyone here?")
	ada.checkQuiet(t)
}

// throttledTimers is run in the page before the app: the socket's
// 5-second timer runs only when window.parleyMinute() is called, which
// first moves the page's clock a minute and a second on, as Chrome does
// with the timers of a tab hidden for a while (once a minute). It counts
// the WebSockets made and the pongs received, and drops the page's pings
// while window.parleyDropPings is set (a link that died).
const throttledTimers = `(() => {
	let off = 0;
	const now = Date.now.bind(Date);
	Date.now = () => now() + off;
	const setInterval = window.setInterval.bind(window);
	const ticks = [];
	window.setInterval = (fn, ms, ...args) => {
		if (ms !== 5000) return setInterval(fn, ms, ...args);
		ticks.push(fn);
		return 0;
	};
	window.parleyMinute = () => {
		off += 61000;
		for (const fn of ticks) fn();
	};
	window.parleySockets = 0;
	window.parleyPongs = 0;
	window.parleyDropPings = false;
	window.WebSocket = class extends WebSocket {
		constructor(...args) {
			super(...args);
			window.parleySockets++;
			this.addEventListener("message", (e) => {
				if (String(e.data).includes('"type":"pong"')) window.parleyPongs++;
			});
		}
		send(data) {
			if (window.parleyDropPings && String(data).includes('"type":"ping"')) return;
			super.send(data);
		}
	};
})()`

// TestBrowserHiddenTabKeepsSocket: in a tab hidden for long, whose timers
// run once a minute, the page does not take its WebSocket for dead and
// reconnect each minute while the link answers; a link that stops
// answering is still given up.
func TestBrowserHiddenTabKeepsSocket(t *testing.T) {
	_, ada := startAdaWith(t, "throttle the page's timers", throttledTimers)
	waitFor[bool](t, ada, "connected", viewState, connectedBy, "ws")

	const sockets = `{sockets: window.parleySockets, pongs: window.parleyPongs,
		conn: document.getElementById("conn-status").dataset.state}`
	for i := 1; i <= 3; i++ {
		evaluate[chromedp.Void](t, ada, "a minute passes", `window.parleyMinute()`)
		waitFor[bool](t, ada, fmt.Sprintf("minute %d: the ping is answered on the first WebSocket", i), sockets, `(n) =>
			window.parleyPongs >= n && window.parleySockets === 1 &&
			document.getElementById("conn-status").dataset.state === "connected"`, i)
	}

	evaluate[chromedp.Void](t, ada, "the link dies", `window.parleyDropPings = true`)
	evaluate[chromedp.Void](t, ada, "a minute passes", `window.parleyMinute()`)
	evaluate[chromedp.Void](t, ada, "another minute passes", `window.parleyMinute()`)
	waitFor[bool](t, ada, "the page reconnects", sockets, `() =>
		window.parleySockets === 2 && document.getElementById("conn-status").dataset.state === "connected"`)
	ada.checkQuiet(t)
}

// holdRemoved is run in a tab before the app: WebSocket frames carrying a
// removed are held back until window.parleyReleaseRemoved() is called (a
// removed that comes late), and window.parleyHeldRemoved counts them.
const holdRemoved = `(() => {
	const add = WebSocket.prototype.addEventListener;
	window.parleyHeldRemoved = 0;
	const held = [];
	window.parleyReleaseRemoved = () => { for (const f of held.splice(0)) f(); };
	WebSocket.prototype.addEventListener = function (type, fn, opts) {
		if (type !== "message") return add.call(this, type, fn, opts);
		return add.call(this, type, function (e) {
			if (String(e.data).includes('"type":"removed"')) {
				window.parleyHeldRemoved++;
				held.push(() => fn.call(this, e));
				return;
			}
			return fn.call(this, e);
		}, opts);
	};
})()`

// TestBrowserEnterRoomAgainOtherTab: Ada leaves #lobby in one tab and, in
// the other, enters it again before that tab has handled the removed of
// the leave (as when the removed comes late, from another node). The late removed must not close the room she is a member of
// again, nor leave it shown without its live messages.
func TestBrowserEnterRoomAgainOtherTab(t *testing.T) {
	s, ada := startAda(t)
	ada.enterRoom(t, "lobby")
	other := ada.newTab(t, "Ada's other tab")
	other.onEveryPage(t, "hold the removed frames", holdRemoved)
	other.openApp(t, s, "")

	ada.click(t, "leave #lobby", "#leave-room")
	waitFor[bool](t, ada, "#lobby is closed here", viewState, `() =>
		document.querySelector(".chat").dataset.screen === "list" &&
		!document.querySelector('#rooms-joined li[data-room-name="lobby"]')`)
	waitFor[bool](t, other, "the other tab has received the removed", viewState, `() => window.parleyHeldRemoved > 0`)
	other.enterRoom(t, "lobby")
	evaluate[chromedp.Void](t, other, "let the removed through", `window.parleyReleaseRemoved()`)

	grace := signIn(t, s, "grace@example.com", "Grace")
	var room struct {
		Room struct{ ID int64 } `json:"room"`
	}
	postJSON(t, grace, "POST", s.URL+"/api/rooms", map[string]string{"name": "lobby"}, http.StatusOK, &room)
	postJSON(t, grace, "POST", fmt.Sprintf("%s/api/rooms/%d/messages", s.URL, room.Room.ID),
		map[string]string{"client_id": "c-grace-1", "body": "Still here, Ada?"}, http.StatusOK, nil)
	other.waitMessage(t, "Still here, Ada?")
	waitFor[bool](t, other, "#lobby is open and in the other tab's lists", viewState, `() =>
		document.querySelector(".room").classList.contains("has-room") &&
		document.getElementById("room-title").textContent === "lobby" &&
		!!document.querySelector('#rooms-joined li[data-room-name="lobby"]')`)
	other.send(t, "Yes, back again")
	for _, b := range []*browser{ada, other} {
		b.checkQuiet(t)
	}
}

// deafSocket is run in a tab before the app: while window.parleyDeaf is
// set, what the WebSocket receives is lost, as on a link that died
// without a word; window.parleyCut() then closes that socket, and the app
// reconnects.
const deafSocket = `(() => {
	const add = WebSocket.prototype.addEventListener;
	window.parleyDeaf = false;
	window.parleyCut = () => { window.parleyDeaf = false; window.parleyWS.close(); };
	WebSocket.prototype.addEventListener = function (type, fn, opts) {
		if (type !== "message") return add.call(this, type, fn, opts);
		window.parleyWS = this;
		return add.call(this, type, function (e) {
			if (window.parleyDeaf) return;
			return fn.call(this, e);
		}, opts);
	};
})()`

// TestBrowserEnterRoomAgainOffline: Ada has #lobby open in a tab whose
// link is down while she leaves the room elsewhere and enters it again.
// When the tab reconnects, the server replays the removed of the leave
// and the conversation of entering again: the tab keeps #lobby open, with
// its live messages.
func TestBrowserEnterRoomAgainOffline(t *testing.T) {
	s, ada := startAda(t)
	ada.onEveryPage(t, "install the deaf socket", deafSocket)
	ada.openApp(t, s, "")
	ada.enterRoom(t, "lobby")
	id := evaluate[int64](t, ada, "the room's id", `Number(document.querySelector('#rooms-joined li[data-room-name="lobby"]').dataset.roomId)`)
	evaluate[chromedp.Void](t, ada, "the link goes deaf", `window.parleyDeaf = true`)

	// Ada's phone: leave #lobby and enter it again.
	ada.fetchJSON(t, "DELETE", fmt.Sprintf("/api/rooms/%d/members/me", id), nil, nil)
	ada.fetchJSON(t, "POST", "/api/rooms", map[string]string{"name": "lobby"}, nil)
	evaluate[chromedp.Void](t, ada, "cut the link", `window.parleyCut()`)
	waitFor[bool](t, ada, "reconnected", viewState, connectedBy, "ws")

	grace := signIn(t, s, "grace@example.com", "Grace")
	postJSON(t, grace, "POST", s.URL+"/api/rooms", map[string]string{"name": "lobby"}, http.StatusOK, nil)
	postJSON(t, grace, "POST", fmt.Sprintf("%s/api/rooms/%d/messages", s.URL, id),
		map[string]string{"client_id": "c-grace-1", "body": "Still here, Ada?"}, http.StatusOK, nil)
	ada.waitMessage(t, "Still here, Ada?")
	waitFor[bool](t, ada, "#lobby is open and in the lists", viewState, `() =>
		document.querySelector(".room").classList.contains("has-room") &&
		document.getElementById("room-title").textContent === "lobby" &&
		!!document.querySelector('#rooms-joined li[data-room-name="lobby"]')`)
	ada.checkQuiet(t)
}

// failRoomChecks makes the page's next reads of a room (GET
// /api/rooms/ID) fail for a passing reason, one each of: no answer, 503,
// 429. window.parleyRoomChecks counts the reads.
const failRoomChecks = `(() => {
	const fails = [
		() => Promise.reject(new TypeError("Failed to fetch")),
		() => Promise.resolve(new Response('{"error":{"code":"unavailable","message":"try later"}}',
			{status: 503, headers: {"Content-Type": "application/json"}})),
		() => Promise.resolve(new Response('{"error":{"code":"rate_limited","message":"slow down"}}',
			{status: 429, headers: {"Content-Type": "application/json"}})),
	];
	window.parleyRoomChecks = 0;
	const fetch = window.fetch;
	window.fetch = (url, init) => {
		if (!/^\/api\/rooms\/\d+$/.test(String(url)) || (init && init.method !== "GET")) return fetch(url, init);
		window.parleyRoomChecks++;
		const fail = fails.shift();
		return fail ? fail() : fetch(url, init);
	};
})()`

// TestBrowserRoomCheckRetried: Ada leaves #lobby on her phone and enters
// it again; the removed of the leave comes late to her tab, which asks the
// server whether she is still a member, and the first answers fail for a
// passing reason (no answer, 503, 429). The tab asks again until it
// learns she is: #lobby stays open and listed, with its live messages.
func TestBrowserRoomCheckRetried(t *testing.T) {
	s, ada := startAda(t)
	ada.onEveryPage(t, "hold the removed frames", holdRemoved)
	ada.openApp(t, s, "")
	ada.enterRoom(t, "lobby")
	id := evaluate[int64](t, ada, "the room's id", `Number(document.querySelector('#rooms-joined li[data-room-name="lobby"]').dataset.roomId)`)

	// Ada's phone: leave #lobby and enter it again.
	ada.fetchJSON(t, "DELETE", fmt.Sprintf("/api/rooms/%d/members/me", id), nil, nil)
	ada.fetchJSON(t, "POST", "/api/rooms", map[string]string{"name": "lobby"}, nil)
	waitFor[bool](t, ada, "the removed of the leave has come", viewState, `() => window.parleyHeldRemoved > 0`)
	evaluate[chromedp.Void](t, ada, "fail the room checks", failRoomChecks)
	evaluate[chromedp.Void](t, ada, "let the removed through", `window.parleyReleaseRemoved()`)

	const lobbyState = `{view: ` + viewState + `, checks: window.parleyRoomChecks,
		joined: [...document.querySelectorAll("#rooms-joined li")].map((li) => li.dataset.roomName)}`
	waitFor[bool](t, ada, "the room was checked again after three failures", lobbyState, `() => window.parleyRoomChecks >= 4`)
	grace := signIn(t, s, "grace@example.com", "Grace")
	postJSON(t, grace, "POST", s.URL+"/api/rooms", map[string]string{"name": "lobby"}, http.StatusOK, nil)
	postJSON(t, grace, "POST", fmt.Sprintf("%s/api/rooms/%d/messages", s.URL, id),
		map[string]string{"client_id": "c-grace-1", "body": "Still here, Ada?"}, http.StatusOK, nil)
	waitFor[bool](t, ada, "#lobby is open and listed, with Grace's message", lobbyState, `() =>
		document.querySelector(".room").classList.contains("has-room") &&
		document.getElementById("room-title").textContent === "lobby" &&
		!!document.querySelector('#rooms-joined li[data-room-name="lobby"]') &&
		[...document.querySelectorAll("#messages .msg-body")].some((e) => e.textContent === "Still here, Ada?")`)
	ada.send(t, "Yes, still here")
	ada.checkQuiet(t)
}
