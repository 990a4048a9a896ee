package main

import (
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"
)

// blockWebSocketLater is blockWebSocket from the moment
// window.parleyBlockWS is set, until it is unset; window.parleySockets
// holds the WebSockets that were not blocked.
const blockWebSocketLater = `(() => {
	window.parleySockets = [];
	const Orig = window.WebSocket;
	class Failing extends EventTarget {
		constructor() {
			super();
			this.readyState = 0;
			setTimeout(() => {
				this.readyState = 3;
				this.dispatchEvent(new Event("error"));
				this.dispatchEvent(new CloseEvent("close", {code: 1006, wasClean: false}));
			}, 20);
		}
		send() {
			throw new DOMException("WebSocket is not open", "InvalidStateError");
		}
		close() {}
	}
	function WebSocket(url, protocols) {
		if (window.parleyBlockWS) return new Failing();
		const ws = new Orig(url, protocols);
		window.parleySockets.push(ws);
		return ws;
	}
	Object.assign(WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
	window.WebSocket = WebSocket;
})()`

// startAdaInLobby starts a server and Ada's browser, run with
// blockWebSocketLater, signed in with #lobby open over a WebSocket; it
// returns #lobby's id.
func startAdaInLobby(t *testing.T) (*testServer, *browser, int64) {
	t.Helper()
	s, ada := startAdaWith(t, "wrap WebSocket", blockWebSocketLater)
	ada.enterRoom(t, "lobby")
	waitFor[bool](t, ada, "connected by WebSocket", viewState, connectedBy, "ws")
	roomID := evaluate[int64](t, ada, "read #lobby's id",
		`Number(document.querySelector('#rooms-joined li[data-room-name="lobby"]').dataset.roomId)`)
	return s, ada, roomID
}

// waitLobbyGone waits until b's page has closed #lobby and dropped it from
// its lists.
func waitLobbyGone(t *testing.T, b *browser) {
	t.Helper()
	waitFor[bool](t, b, "#lobby is closed and gone from the lists", viewState, `() =>
		!document.querySelector(".room").classList.contains("has-room") &&
		document.querySelector(".chat").dataset.screen === "list" &&
		!document.querySelector('#rooms-joined li[data-room-name="lobby"]') &&
		!document.querySelector('#conversations li[data-room-name="lobby"]')`)
}

// breakLink ends b's WebSocket and keeps WebSockets from getting through
// (its page runs blockWebSocketLater, window.parleyBlockWS), and waits
// until the page knows it is disconnected.
func (b *browser) breakLink(t *testing.T) {
	t.Helper()
	evaluate[chromedp.Void](t, b, "the link breaks", `(() => {
		window.parleyBlockWS = true;
		window.parleySockets.at(-1).close();
	})()`)
	waitFor[bool](t, b, "the page knows it is disconnected", viewState, `() =>
		document.getElementById("conn-status").dataset.state !== "connected"`)
}

// TestBrowserReconnectKeepsFirstEvent: Ada, whose event log is empty, has
// #lobby open; while her page is disconnected she leaves #lobby on another
// device, the first event of her log. The page reconnects asking for the
// events after none: it learns of the leave and closes #lobby, instead of
// showing a room whose open and sends are refused.
func TestBrowserReconnectKeepsFirstEvent(t *testing.T) {
	_, ada, roomID := startAdaInLobby(t)
	ada.breakLink(t)
	ada.fetchJSON(t, "DELETE", fmt.Sprintf("/api/rooms/%d/members/me", roomID), nil, nil)
	evaluate[chromedp.Void](t, ada, "the link is back", `window.parleyBlockWS = false`)
	waitFor[bool](t, ada, "connected by a new WebSocket", viewState, `() =>
		window.parleySockets.length === 2 && document.getElementById("conn-status").dataset.state === "connected"`)
	waitLobbyGone(t, ada)
	ada.checkQuiet(t)
}

// TestBrowserFallbackKeepsEvents: Ada has #lobby open when WebSockets stop
// getting through, and leaves #lobby on another device before her page
// has switched to long-polling. The page's first long-poll channel carries
// on from the events its WebSocket had: it learns of the leave and closes
// #lobby.
func TestBrowserFallbackKeepsEvents(t *testing.T) {
	_, ada, roomID := startAdaInLobby(t)
	evaluate[chromedp.Void](t, ada, "WebSockets stop getting through", `(() => {
		window.parleyBlockWS = true;
		window.parleySockets.at(-1).close();
	})()`)
	ada.fetchJSON(t, "DELETE", fmt.Sprintf("/api/rooms/%d/members/me", roomID), nil, nil)
	waitFor[bool](t, ada, "connected by long-polling", viewState, connectedBy, "poll")
	waitLobbyGone(t, ada)
	ada.checkQuiet(t)
}
