package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parley-chat/parley/internal/chat"
)

// TestBrowserReconnectListsRoomEntered: Ada has #lobby open when her
// link breaks, and enters #garden on another device meanwhile, her
// first time there, which her event log does not keep. When the page
// reconnects it lists #garden among her rooms, as it lists the
// conversations changed meanwhile.
func TestBrowserReconnectListsRoomEntered(t *testing.T) {
	_, ada, _ := startAdaInLobby(t)
	ada.breakLink(t)
	ada.fetchJSON(t, "POST", "/api/rooms", map[string]string{"name": "garden"}, nil)
	evaluate[chromedp.Void](t, ada, "the link is back", `window.parleyBlockWS = false`)
	waitFor[bool](t, ada, "connected by a new WebSocket", viewState, `() =>
		window.parleySockets.length === 2 && document.getElementById("conn-status").dataset.state === "connected"`)
	waitFor[bool](t, ada, "#garden is among Ada's rooms", viewState, `() =>
		!!document.querySelector('#rooms-joined li[data-room-name="garden"]')`)
	ada.checkQuiet(t)
}

// leaveGateStore is a store whose LeaveRoom, once armed, holds its answer
// after the leave is committed (and its removed logged) until released:
// the removed is in the user's event log, and not yet published.
type leaveGateStore struct {
	store
	armed   atomic.Bool
	left    chan struct{} // a held leave is committed
	release chan struct{} // lets it answer
}

func (s *leaveGateStore) LeaveRoom(ctx context.Context, roomID, userID int64, at time.Time, announce bool, removed chat.Event) (chat.Message, chat.Event, bool, error) {
	m, ev, left, err := s.store.LeaveRoom(ctx, roomID, userID, at, announce, removed)
	if s.armed.CompareAndSwap(true, false) {
		s.left <- struct{}{}
		select {
		case <-s.release:
		case <-time.After(browserStepTimeout):
		}
	}
	return m, ev, left, err
}

// recordFrames has the page's WebSockets made from now on keep every
// frame they receive in window.parleyFrames.
const recordFrames = `(() => {
	window.parleyFrames = [];
	const Prev = window.WebSocket;
	function WebSocket(url, protocols) {
		const ws = new Prev(url, protocols);
		ws.addEventListener("message", (e) => window.parleyFrames.push(String(e.data)));
		return ws;
	}
	Object.assign(WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
	window.WebSocket = WebSocket;
})()`

// adaInLobby starts Ada's browser, whose WebSockets a test can block
// (blockWebSocketLater), signs her in to s and has her enter #lobby, whose
// id it returns.
func adaInLobby(t *testing.T, exe string, s *testServer) (*browser, int64) {
	t.Helper()
	ada := startBrowser(t, exe, "ada", time.Now().Add(2*time.Minute))
	ada.onEveryPage(t, "wrap WebSocket", blockWebSocketLater)
	ada.signIn(t, s, "ada@example.com", "Ada")
	ada.enterRoom(t, "lobby")
	return ada, evaluate[int64](t, ada, "read #lobby's id",
		`Number(document.querySelector('#rooms-joined li[data-room-name="lobby"]').dataset.roomId)`)
}

// TestBrowserReconnectKeepsEventBehindOpen: Ada leaves #lobby on another
// device, and her page opens #garden after the leave is logged but before
// it is published, so that the opened reply's mark (user_seq) is past the
// last event the page received. The link breaks before the removed comes.
// The page reconnects asking for the events after the last one it
// received, not after the mark: the removed is given again.
func TestBrowserReconnectKeepsEventBehindOpen(t *testing.T) {
	exe := chromiumPath(t)
	var st *leaveGateStore
	s := startServerWith(t, func(db store) store {
		st = &leaveGateStore{store: db, left: make(chan struct{}, 1), release: make(chan struct{})}
		return st
	})
	ada, lobbyID := adaInLobby(t, exe, s)

	st.armed.Store(true)
	evaluate[chromedp.Void](t, ada, "leave #lobby on another device",
		fmt.Sprintf(`void fetch("/api/rooms/%d/members/me", {method: "DELETE"})`, lobbyID))
	select {
	case <-st.left:
	case <-time.After(browserStepTimeout):
		t.Fatal("the leave of #lobby was not committed")
	}
	ada.enterRoom(t, "garden") // opened: its mark is the removed's user_seq

	ada.breakLink(t)
	close(st.release) // the removed is published to no connection of Ada's
	evaluate[chromedp.Void](t, ada, "record frames", recordFrames)
	evaluate[chromedp.Void](t, ada, "the link is back", `window.parleyBlockWS = false`)
	waitFor[bool](t, ada, "the reconnected page is given #lobby's removed", `{
		urls: window.parleySockets.map((ws) => ws.url), frames: window.parleyFrames}`, `(id) =>
		window.parleyFrames.some((f) => f.split("\n").some((l) => {
			const v = JSON.parse(l);
			return v.type === "removed" && v.room_id === id;
		}))`, lobbyID)
	ada.checkQuiet(t)
}

// TestBrowserReconnectFollowsNewDirect: Ada looks at her empty chat with
// Grace, who has never written to her, when her link breaks; Grace writes
// her first message meanwhile, which makes their conversation. A direct
// chat's conversation frame is in no event log, so the page learns of it
// from its list after reconnecting: it follows the new conversation in the
// chat it shows, and Grace's message is shown there.
func TestBrowserReconnectFollowsNewDirect(t *testing.T) {
	s, ada := startAdaWith(t, "wrap WebSocket", blockWebSocketLater)
	ada.userID = userIDOf(t, s, nil, ada)
	grace, graceID, direct := graceBefriendsAda(t, s, ada)
	evaluate[chromedp.Void](t, ada, "open the chat with Grace", fmt.Sprintf(`location.hash = "#dm/%d"`, graceID))
	waitFor[bool](t, ada, "the empty chat with Grace is open and connected", viewState, `() =>
		document.getElementById("room-title").textContent === "Grace" &&
		document.getElementById("history-text").textContent.startsWith("This is the beginning") &&
		document.getElementById("conn-status").dataset.state === "connected"`)
	evaluate[chromedp.Void](t, ada, "mark the page", `window.parleyTestPage = true`)

	ada.breakLink(t)
	postJSON(t, grace, "POST", direct, map[string]string{"client_id": "c-first", "body": "Are you there?"}, http.StatusOK, nil)
	evaluate[chromedp.Void](t, ada, "the link is back", `window.parleyBlockWS = false`)
	waitFor[bool](t, ada, "connected by a new WebSocket", viewState, `() =>
		window.parleySockets.length === 2 && document.getElementById("conn-status").dataset.state === "connected"`)
	ada.waitMessage(t, "Are you there?")
	ada.checkQuiet(t)
}

// openFailStore is a store that, once armed for a conversation and a
// user, answers the next check of that membership unavailable, as a
// database that did not answer in time.
type openFailStore struct {
	store
	conv, user atomic.Int64 // armed for; 0: not armed
	failed     atomic.Int32 // checks answered unavailable
}

func (s *openFailStore) Conversation(ctx context.Context, id, userID int64) (chat.Conversation, bool, error) {
	if id == s.conv.Load() && userID == s.user.Load() && s.conv.CompareAndSwap(id, 0) {
		s.failed.Add(1)
		return chat.Conversation{}, false, chat.Errorf(chat.ErrUnavailable, chat.CodeUnavailable, "the database did not answer in time; try again later")
	}
	return s.store.Conversation(ctx, id, userID)
}

// TestBrowserReconnectOpenUnavailable: when Ada's page reconnects, the
// server cannot answer its open of #lobby for now (unavailable). The page
// asks again after a back-off, as for an open refused for a limit, and
// Grace's next message in #lobby reaches it live.
func TestBrowserReconnectOpenUnavailable(t *testing.T) {
	exe := chromiumPath(t)
	var st *openFailStore
	s := startServerWith(t, func(db store) store {
		st = &openFailStore{store: db}
		return st
	})
	ada, lobbyID := adaInLobby(t, exe, s)
	grace := signIn(t, s, "grace@example.com", "Grace")
	postJSON(t, grace, "POST", s.URL+"/api/rooms", map[string]string{"name": "lobby"}, http.StatusOK, nil)

	ada.breakLink(t)
	st.user.Store(ada.userID)
	st.conv.Store(lobbyID)
	evaluate[chromedp.Void](t, ada, "the link is back", `window.parleyBlockWS = false`)
	waitFor[bool](t, ada, "connected by a new WebSocket", viewState, `() =>
		window.parleySockets.length === 2 && document.getElementById("conn-status").dataset.state === "connected"`)
	for deadline := time.Now().Add(browserStepTimeout); st.failed.Load() == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the page's open of #lobby was not refused")
		}
	}
	postJSON(t, grace, "POST", fmt.Sprintf("%s/api/rooms/%d/messages", s.URL, lobbyID),
		map[string]string{"client_id": "c-back", "body": "Back again?"}, http.StatusOK, nil)
	ada.waitMessage(t, "Back again?")
	if got := ada.composerError(t); got != "" {
		t.Errorf("Ada's composer says %q; want nothing: the page asked again by itself", got)
	}
	ada.checkQuiet(t)
}

// watchPolls keeps, in window.parleyPolls, how long the page's answered
// long-poll GETs were held (held: the longest) and how many channels it
// ended (deletes), and the connection states the page showed (states).
const watchPolls = `(() => {
	window.parleyPolls = {held: 0, deletes: 0, states: []};
	const orig = window.fetch;
	window.fetch = function (input, init) {
		const url = String(input instanceof Request ? input.url : input);
		const method = ((init && init.method) || "GET").toUpperCase();
		const p = orig.apply(this, arguments);
		if (url.includes("/api/poll") && method === "DELETE") window.parleyPolls.deletes++;
		if (url.includes("/api/poll") && method === "GET") {
			const start = Date.now();
			p.then((res) => res.ok && res.clone().json()).then(() => {
				window.parleyPolls.held = Math.max(window.parleyPolls.held, Date.now() - start);
			}, () => {});
		}
		return p;
	};
	document.addEventListener("DOMContentLoaded", () => {
		const el = document.getElementById("conn-status");
		new MutationObserver(() => {
			const s = window.parleyPolls.states;
			if (s.at(-1) !== el.dataset.state) s.push(el.dataset.state);
		}).observe(el, {attributes: true, attributeFilter: ["data-state"]});
	});
})()`

// TestBrowserPollHoldLongerThanDeadCheck: the server holds long-polls up
// to 70 s (--poll-hold), longer than the page waits for a frame before
// it wonders whether the link is dead. Idle in #lobby, the page checks
// the link and finds it alive: it keeps its channel through a poll held
// the whole 70 s, rather than ending it and reconnecting every minute.
func TestBrowserPollHoldLongerThanDeadCheck(t *testing.T) {
	exe := chromiumPath(t)
	s := startServer(t, "--poll-hold", "70s")
	ada := startBrowser(t, exe, "ada", time.Now().Add(4*time.Minute))
	ada.query = "?transport=poll"
	ada.onEveryPage(t, "watch the polls", watchPolls)
	ada.signIn(t, s, "ada@example.com", "Ada")
	ada.enterRoom(t, "lobby")
	type polls struct {
		Held    int64    `json:"held"`
		Deletes int      `json:"deletes"`
		States  []string `json:"states"`
	}
	var got polls
	for deadline := time.Now().Add(100 * time.Second); ; time.Sleep(time.Second) {
		got = evaluate[polls](t, ada, "read the polls", `window.parleyPolls`)
		if got.Deletes > 0 || got.Held >= 65000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no poll was held 65 s within 100 s: %+v", got)
		}
	}
	if got.Deletes > 0 || got.Held < 65000 {
		t.Errorf("Ada's page ended its channel (%d DELETEs), its longest poll held %d ms; want a poll held 70 s, no channel ended", got.Deletes, got.Held)
	}
	if n := len(got.States); n == 0 || got.States[n-1] != "connected" || slices.Contains(got.States, "disconnected") {
		t.Errorf("Ada's page showed the states %q; want it connected throughout", got.States)
	}
	ada.checkQuiet(t)
}
