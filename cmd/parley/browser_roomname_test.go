package main

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserRoomNamesWithMarks: the room form takes names written with
// combining marks, as the server does, and shows a name typed decomposed
// in its composed form, the room's; a mark with nothing to sit on is
// refused before anything is sent.
func TestBrowserRoomNamesWithMarks(t *testing.T) {
	_, ada := startAdaBy(t, "")

	ada.enterRoom(t, "नमस्ते")

	// "café" typed as e and U+0301 is the room "café", shown composed.
	// (Set as a value: a key event of its own for U+0301 is not typed.)
	ada.do(t, "enter cafe\u0301",
		chromedp.SetValue(chromedp.ID("room-input"), "cafe\u0301"),
		chromedp.Click(chromedp.ID("room-enter")),
	)
	waitFor[bool](t, ada, "room café is open", viewState, `() =>
		document.getElementById("room-title").textContent === "caf\u00e9" &&
		document.getElementById("conn-status").dataset.state === "connected"`)
	// Each list that names rooms (the user's rooms, and the chats) names
	// both once: the chats list names them too, once it has them, so a
	// count over both lists passed only while it did not have café yet.
	waitFor[bool](t, ada, "the room list and the chats name both rooms once", viewState, `() =>
		["rooms-joined", "conversations"].every((list) => {
			const names = [...document.querySelectorAll("#" + list + " li[data-room-name]")].map((li) => li.dataset.roomName);
			return names.filter((n) => n === "caf\u00e9").length === 1 && names.includes("नमस्ते") &&
				!names.includes("cafe\u0301");
		})`)

	// A leading mark is refused by the form, with a hint.
	evaluate[chromedp.Void](t, ada, "type a leading mark", `(() => {
		const input = document.getElementById("room-input");
		input.value = "\u0301abc";
		input.dispatchEvent(new Event("input"));
	})()`)
	waitFor[bool](t, ada, "the hint says the name is refused", viewState, `() =>
		document.getElementById("room-hint").classList.contains("error") &&
		document.getElementById("room-input").getAttribute("aria-invalid") === "true"`)
	ada.checkQuiet(t)
}
