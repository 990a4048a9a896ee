package main

import (
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestBrowserWhiteSpaceAsServer: the app's white space is the server's
// (Go's unicode.IsSpace, Unicode's White_Space), not JavaScript's \s and
// trim(), which take U+FEFF ZERO WIDTH NO-BREAK SPACE and leave U+0085
// NEXT LINE; and a text is blank where the server finds it so. So the
// room "side" written with a U+0085 before it, which the server trims,
// is entered; a name of U+0085 is refused by the page as empty, not sent
// to be refused; and a message of U+0085 and a zero-width space, which
// the server refuses as empty, is not sent: it stays in the composer.
func TestBrowserWhiteSpaceAsServer(t *testing.T) {
	_, ada := startAda(t)
	ada.enterRoom(t, "lobby")

	setValue(t, ada, "room-input", "\u0085side")
	ada.do(t, "enter \\u0085side", chromedp.Click(chromedp.ID("room-enter")))
	if !eventually(t, ada, "enter \\u0085side", `document.getElementById("room-title").textContent === "side"`) {
		t.Errorf("the room \\u0085side, which the server takes as side, is not entered: the hint says %q",
			evaluate[string](t, ada, "read the hint", `document.getElementById("room-hint").textContent`))
	}

	ada.click(t, "open the profile", "#profile-open")
	waitFor[bool](t, ada, "the profile is open", viewState, `() => document.getElementById("profile").open`)
	setValue(t, ada, "profile-name", "\u0085")
	ada.do(t, "name Ada \\u0085", chromedp.SendKeys(chromedp.ID("profile-name"), kb.Enter))
	const profileError = `document.getElementById("profile-error").textContent`
	if !eventually(t, ada, "refuse the name \\u0085", profileError+` === "Your name cannot be empty."`) {
		t.Errorf("the name \\u0085: the error line says %q; want the page's own %q",
			evaluate[string](t, ada, "read the error", profileError), "Your name cannot be empty.")
	}
	ada.do(t, "close the profile", chromedp.SendKeys(chromedp.ID("profile-name"), kb.Escape))

	setValue(t, ada, "composer", "\u0085 \u200b")
	ada.do(t, "send a blank message", chromedp.SendKeys(chromedp.ID("composer"), kb.Enter))
	if got := evaluate[string](t, ada, "read the composer", `document.getElementById("composer").value`); got != "\u0085 \u200b" {
		t.Fatalf("a blank message: the composer holds %q after Enter; want it kept, unsent", got)
	}
	setValue(t, ada, "composer", "")
	ada.send(t, "ok")
	ada.checkQuiet(t)
}

// setValue sets the value of the field with id to v, as if typed: an
// input event follows.
func setValue(t *testing.T, b *browser, id, v string) {
	t.Helper()
	evaluate[chromedp.Void](t, b, "set "+id, `(() => {
		const e = document.getElementById(`+strconv.Quote(id)+`);
		e.value = `+strconv.Quote(v)+`;
		e.dispatchEvent(new Event("input", {bubbles: true}));
	})()`)
}

// eventually reports whether the JavaScript expression cond is true in
// b's page within 5 seconds.
func eventually(t *testing.T, b *browser, what, cond string) bool {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if evaluate[bool](t, b, what, cond) {
			return true
		}
	}
	return false
}
