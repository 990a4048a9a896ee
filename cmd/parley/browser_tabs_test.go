package main

import (
	"context"
	"fmt"
	"testing"

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
