package main

import (
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestBrowserRoomNameJoiners: room names with the zero-width non-joiner
// and joiner where Persian and the Indic scripts need them (می‌خواهم,
// क्‍ष), which the server takes, are taken by the page too: entering one
// opens the room, where the page's check of the name refused them as
// not letters.
func TestBrowserRoomNameJoiners(t *testing.T) {
	_, ada := startAda(t)
	for _, name := range []string{"\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "\u0915\u094d\u200d\u0937"} {
		ada.do(t, "enter "+name,
			chromedp.SetValue(chromedp.ID("room-input"), name),
			chromedp.SendKeys(chromedp.ID("room-input"), kb.Enter),
		)
		got := waitFor[string](t, ada, "the room opens or the name is refused", `{
			room: document.getElementById("room-title").textContent,
			hint: document.getElementById("room-hint").textContent,
		}`, `(name) => {
			const hint = document.getElementById("room-hint");
			if (hint.classList.contains("error")) return "refused: " + hint.textContent;
			return document.getElementById("room-title").textContent.includes(name) ? "open" : null;
		}`, name)
		if got != "open" {
			t.Errorf("entering the room %+q: %s; want it open", name, got)
		}
	}
	ada.checkQuiet(t)
}
