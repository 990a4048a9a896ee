package main

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// onlineFits is a JavaScript function that is true once the room's online
// list shows the user and every entry of it fits, whole, in the width of
// the online panel: a long name is cut short, not run out of the panel.
const onlineFits = `() => {
	const online = document.querySelector(".online");
	const panel = online.getBoundingClientRect();
	const items = [...document.querySelectorAll("#online-list li")];
	return items.length > 0 &&
		items.every((li) => li.getBoundingClientRect().width <= panel.width) &&
		(innerWidth < 1100 || online.scrollWidth <= online.clientWidth + 1);
}`

// TestBrowserLongNameOnline: a user with a 40-character name without a
// space sees herself in the room's online list, on a wide screen (a
// column) and on a phone (a strip of chips): her entry is cut short to
// fit, instead of running out of the column or taking a chip wider than
// the screen.
func TestBrowserLongNameOnline(t *testing.T) {
	s, ada := startAdaUnsigned(t)
	ada.signIn(t, s, "ada@example.com", strings.Repeat("W", 40))
	ada.enterRoom(t, "lobby")
	const state = `[...document.querySelectorAll("#online-list li")].map((li) =>
		li.textContent + " " + Math.round(li.getBoundingClientRect().width) + "px of " +
		Math.round(document.querySelector(".online").getBoundingClientRect().width) + "px")`
	waitFor[bool](t, ada, "the online list fits the wide screen's column", state, onlineFits)
	ada.do(t, "phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulatePortrait))
	ada.waitPhoneLayout(t)
	waitFor[bool](t, ada, "the online list's chips fit the phone", state, onlineFits)
	ada.checkQuiet(t)
}
