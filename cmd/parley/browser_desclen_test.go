package main

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserGroupDescCountedAsServer: the new group form counts a
// description as the server does, every character of it once trimmed,
// its line breaks included: one of 597 (120 lines of "ab" and blank
// lines between), over the server's 500, is refused in the form, with
// the server's count, not sent for the server to refuse.
func TestBrowserGroupDescCountedAsServer(t *testing.T) {
	exe := chromiumPath(t)
	s := startServer(t)
	ada := startBrowser(t, exe, "ada", time.Now().Add(2*time.Minute))
	ada.signIn(t, s, "ada@example.com", "Ada")
	waitFor[bool](t, ada, "connected", groupsState,
		`() => document.getElementById("conn-status").dataset.state === "connected"`)

	desc := strings.TrimSpace(strings.Repeat("ab\n\n\n", 120))
	ada.do(t, "open the new group form", chromedp.Click(chromedp.ID("new-group")))
	waitFor[bool](t, ada, "the form is open", groupsState, `() => document.getElementById("group-create").open`)
	ada.do(t, "make Crew with a long description",
		chromedp.SendKeys(chromedp.ID("group-create-name"), "Crew"),
		chromedp.SetValue(chromedp.ID("group-create-desc"), desc),
		chromedp.Click(chromedp.ID("group-create-submit")),
	)
	const want = "The description is 597 characters long; the limit is 500."
	got := waitFor[string](t, ada, "the form shows an error", groupsState, `() =>
		document.getElementById("group-create-error").textContent || null`)
	if got != want {
		t.Errorf("the form's error = %q; want %q", got, want)
	}
}
