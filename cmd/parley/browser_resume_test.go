package main

import (
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestBrowserPollRenameResume: a long-polling page that resumes its
// channel after the back/forward cache keeps the name its user chose meanwhile: the
// hello it replays is the channel's first, which holds the old name.
func TestBrowserPollRenameResume(t *testing.T) {
	_, ada := startAdaBy(t, "?transport=poll")
	waitFor[bool](t, ada, "Ada is connected by long-polling", viewState, connectedBy, "poll")

	ada.click(t, "open the profile", "#profile-open")
	waitFor[bool](t, ada, "the profile is open with the name selected", viewState, `() => { const e = document.getElementById("profile-name"); return document.getElementById("profile").open && e.selectionStart === 0 && e.selectionEnd === e.value.length && e.value === "Ada"; }`)
	ada.do(t, "rename", chromedp.SendKeys(chromedp.ID("profile-name"), "Ada Lovelace"+kb.Enter))
	waitFor[bool](t, ada, "the new name is shown", viewState, `() =>
		!document.getElementById("profile").open && document.getElementById("me-name").textContent === "Ada Lovelace"`)

	// The page goes into the back/forward cache and comes back: it ends
	// its channel, then resumes it from its cursor.
	evaluate[chromedp.Void](t, ada, "hide and show the page", `(() => {
		window.dispatchEvent(new PageTransitionEvent("pagehide", {persisted: true}));
		window.dispatchEvent(new PageTransitionEvent("pageshow", {persisted: true}));
	})()`)
	waitFor[bool](t, ada, "Ada is connected by long-polling again", viewState, connectedBy, "poll")
	if got := evaluate[string](t, ada, "read the name", `document.getElementById("me-name").textContent`); got != "Ada Lovelace" {
		t.Errorf("after the channel resumed, the page shows the user as %q; want %q", got, "Ada Lovelace")
	}
	ada.checkQuiet(t)
}
