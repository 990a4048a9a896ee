package main

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserReconnectListsRoomEntered: Ada has #lobby open when her
// link breaks, and enters #garden on another device meanwhile, her
// first time there, which her event log does not keep. When the page
// reconnects it lists #garden among her rooms, as it lists the
// conversations changed meanwhile.
func TestBrowserReconnectListsRoomEntered(t *testing.T) {
	_, ada, _ := startAdaInLobby(t)
	evaluate[chromedp.Void](t, ada, "the link breaks", `(() => {
		window.parleyBlockWS = true;
		window.parleySockets.at(-1).close();
	})()`)
	waitFor[bool](t, ada, "the page knows it is disconnected", viewState, `() =>
		document.getElementById("conn-status").dataset.state !== "connected"`)
	ada.fetchJSON(t, "POST", "/api/rooms", map[string]string{"name": "garden"}, nil)
	evaluate[chromedp.Void](t, ada, "the link is back", `window.parleyBlockWS = false`)
	waitFor[bool](t, ada, "connected by a new WebSocket", viewState, `() =>
		window.parleySockets.length === 2 && document.getElementById("conn-status").dataset.state === "connected"`)
	waitFor[bool](t, ada, "#garden is among Ada's rooms", viewState, `() =>
		!!document.querySelector('#rooms-joined li[data-room-name="garden"]')`)
	ada.checkQuiet(t)
}
