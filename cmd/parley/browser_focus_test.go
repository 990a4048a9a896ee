package main

import (
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestBrowserFocusVisible: focus moved with the keyboard is visible in
// forced colors (Windows' contrast themes), where the browser drops box
// shadows and paints outlines in the theme's colours: each focused
// control needs an outline, even a transparent one.
func TestBrowserFocusVisible(t *testing.T) {
	exe := chromiumPath(t)
	s := startServer(t)
	ada := startBrowser(t, exe, "ada", time.Now().Add(browserTestTimeout))
	ada.signIn(t, s, "ada@example.com", "Ada")
	ctx, cancel := ada.stepCtx()
	defer cancel()
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "forced-colors", Value: "active"}},
	}); err != nil {
		t.Fatalf("emulate forced colors: %v", err)
	}
	if !evaluate[bool](t, ada, "check forced colors", `matchMedia("(forced-colors: active)").matches`) {
		t.Fatal("forced colors are not emulated")
	}

	type focused struct {
		ID      string `json:"id"`
		Visible bool   `json:"visible"`
		Outline string `json:"outline"`
	}
	const read = `(() => {
		const e = document.activeElement;
		const s = getComputedStyle(e);
		return {id: e.id, visible: e.matches(":focus-visible"), outline: s.outlineStyle + " " + s.outlineWidth};
	})()`
	check := func(want string) {
		t.Helper()
		f := evaluate[focused](t, ada, "read the focused control", read)
		if f.ID != want || !f.Visible {
			t.Fatalf("focused %+v; want #%s, focus-visible", f, want)
		}
		if f.Outline == "" || f.Outline[:4] == "none" || f.Outline[len(f.Outline)-3:] == "0px" {
			t.Errorf("#%s has focus and the outline %q; want an outline, which forced colors show", want, f.Outline)
		}
	}
	ada.do(t, "focus the room name", chromedp.Focus(chromedp.ID("room-input")))
	check("room-input")
	ada.do(t, "press Tab", chromedp.KeyEvent(kb.Tab))
	check("room-enter")
	ada.checkQuiet(t)
}

// TestBrowserDialogFocusMovedOn: the "New group" dialog closes, and before
// its close event comes (a task later) the focus has moved on, to the
// profile's button. The page leaves it there, rather than take it back to
// "New group", where the next key, meant for the profile's button, would
// open the group dialog again.
func TestBrowserDialogFocusMovedOn(t *testing.T) {
	_, ada := startAda(t)
	ada.click(t, "open the group dialog", "#new-group")
	waitFor[bool](t, ada, "the group dialog is open", viewState, `() => document.getElementById("group-create").open`)
	ctx, cancel := ada.stepCtx()
	defer cancel()
	// The page's close listener runs before this one, added after it.
	focused, err := chromedp.Run(ctx, chromedp.Evaluate[string](`new Promise((resolve) => {
		const d = document.getElementById("group-create");
		d.addEventListener("close", () => resolve(document.activeElement?.id || ""), {once: true});
		d.close();
		document.getElementById("profile-open").focus();
	})`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("close the dialog and focus the profile's button: %v", err)
	}
	if focused != "profile-open" {
		t.Errorf("after the dialog closed and the focus moved to #profile-open, the focus is on #%s", focused)
	}
	ada.checkQuiet(t)
}
