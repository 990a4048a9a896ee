package main

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// axControl is a control in Chromium's accessibility tree: what a screen
// reader is told of it.
type axControl struct {
	Role string
	Name string
}

// controlRoles are the roles a user operates, each of which needs a name.
var controlRoles = map[string]bool{
	"button": true, "link": true, "textbox": true, "searchbox": true, "combobox": true,
	"spinbutton": true, "checkbox": true, "radio": true, "listbox": true, "menuitem": true,
	"tab": true, "switch": true, "slider": true,
}

// axControls lists the controls of b's page that are exposed to assistive
// technology (not ignored: hidden ones are), as Chromium computes them.
func (b *browser) axControls(t *testing.T) []axControl {
	t.Helper()
	ctx, cancel := b.stepCtx()
	defer cancel()
	res, err := chromedp.Call(ctx, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	if err != nil {
		t.Fatalf("%s: read the accessibility tree: %v", b.name, err)
	}
	var out []axControl
	for _, n := range res.Nodes {
		if n.Ignored || n.Role == nil {
			continue
		}
		role := strings.Trim(string(n.Role.Value), `"`)
		if !controlRoles[role] {
			continue
		}
		name := ""
		if n.Name != nil {
			name = strings.Trim(string(n.Name.Value), `"`)
		}
		out = append(out, axControl{Role: role, Name: strings.TrimSpace(name)})
	}
	return out
}

// checkNamed fails the test for every control of b's page without an
// accessible name, and returns the controls.
func (b *browser) checkNamed(t *testing.T, where string) []axControl {
	t.Helper()
	controls := b.axControls(t)
	if len(controls) == 0 {
		t.Fatalf("%s: %s: no controls in the accessibility tree", b.name, where)
	}
	for _, c := range controls {
		if c.Name == "" {
			t.Errorf("%s: %s: a %s has no accessible name (controls: %+v)", b.name, where, c.Role, controls)
		}
	}
	return controls
}

// roomListRefresh is how long a page takes at most to show a message of a
// room it has not open: the app reads its conversation list again every
// 30 s (app.js, roomsTimer), and a step's wait on top.
const roomListRefresh = 30*time.Second + browserStepTimeout

// TestBrowserAccessibility uses the app as one who relies on a keyboard
// and a screen reader: every control has a name, which holds the text it
// shows; history loaded into the message log is not read out while new
// messages are; a conversation is opened with Tab and Enter and its
// unread count is spoken; dialogs close with Escape and give focus back;
// the page's title keeps the unread total wherever the user is; and
// errors at sign-in are announced.
func TestBrowserAccessibility(t *testing.T) {
	s, ada, grace := startPair(t, 2*browserTestTimeout+roomListRefresh)
	ada.signIn(t, s, "ada@example.com", "Ada")
	grace.signIn(t, s, "grace@example.com", "Grace")
	grace.checkNamed(t, "the chat view")
	// Label in name (WCAG 2.5.3): a control named apart from its text
	// has that text in its name, so that one who says what they see
	// (speech input) reaches it.
	if bad := evaluate[[]string](t, grace, "compare labels and text", `[...document.querySelectorAll("button[aria-label], a[aria-label]")].flatMap((e) => {
		const c = e.cloneNode(true);
		for (const x of c.querySelectorAll('[aria-hidden="true"]')) x.remove();
		const text = c.textContent.replace(/[^\p{L}\p{N}]+/gu, " ").trim().toLowerCase();
		const label = e.getAttribute("aria-label").replace(/[^\p{L}\p{N}]+/gu, " ").trim().toLowerCase();
		return text && !label.includes(text) ? ["#" + e.id + ": shows " + JSON.stringify(text) + ", named " + JSON.stringify(label)] : [];
	})`); len(bad) > 0 {
		t.Errorf("controls whose name leaves out the text they show: %q", bad)
	}

	// Grace's page records, for every message put in the log, whether the
	// log was busy (a screen reader holds back what is added then).
	evaluate[chromedp.Void](t, grace, "watch the log", `(() => {
		window.parleyAdded = [];
		const log = document.getElementById("messages");
		new MutationObserver((records) => {
			for (const r of records) for (const n of r.addedNodes) {
				if (!n.classList || !n.classList.contains("msg")) continue;
				window.parleyAdded.push({
					text: n.querySelector(".msg-body")?.textContent || n.textContent,
					busy: log.getAttribute("aria-busy") === "true",
					live: log.getAttribute("aria-live") || "",
					role: log.getAttribute("role") || "",
				});
			}
		}).observe(log, {childList: true});
	})()`)

	ada.enterRoom(t, "lobby")
	ada.send(t, "history one")
	ada.send(t, "history two")
	grace.enterRoom(t, "lobby")
	grace.waitMessage(t, "history two")
	waitFor[bool](t, grace, "the log is no longer busy", `document.getElementById("messages").outerHTML.slice(0, 200)`,
		`() => document.getElementById("messages").getAttribute("aria-busy") !== "true"`)
	ada.send(t, "live one")
	grace.waitMessage(t, "live one")

	type added struct {
		Text string `json:"text"`
		Busy bool   `json:"busy"`
		Live string `json:"live"`
		Role string `json:"role"`
	}
	seen := map[string]added{}
	for _, a := range evaluate[[]added](t, grace, "read what was added", `window.parleyAdded`) {
		seen[a.Text] = a
	}
	for _, text := range []string{"history one", "history two"} {
		a, ok := seen[text]
		if !ok || !a.Busy {
			t.Errorf("history message %q was added to the log as %+v (found %v); want it added while aria-busy=true, so that a screen reader does not read the whole history out", text, a, ok)
		}
	}
	if a := seen["live one"]; a.Busy || a.Role != "log" || (a.Live != "" && a.Live != "polite") {
		t.Errorf("live message was added to the log as %+v; want role log, aria-live polite, not busy, so that it is announced", a)
	}

	// Tab and Enter: the conversation list is made of buttons; one opens
	// with Enter, and its unread count is part of its name.
	grace.enterRoom(t, "side")
	ada.send(t, "unread one")
	// A room not open sends no frames: its count comes with the
	// conversation list, which the page reads again on entering a room
	// (#side, maybe before the message was stored) and every 30 s.
	waitForWithin[bool](t, grace, roomListRefresh, "the title counts the unread message", `document.title`,
		`() => document.title === "(1) #side · Parley"`)
	grace.click(t, "go back to the list", "#back")
	if got := evaluate[string](t, grace, "read the title", `document.title`); got != "(1) Parley" {
		t.Errorf("after going back to the list the title is %q; want %q (the unread total)", got, "(1) Parley")
	}
	waitFor[bool](t, grace, "lobby shows 1 unread", `document.getElementById("conversations").innerHTML`,
		`() => document.querySelector('#conversations li[data-room-name="lobby"] .badge:not([hidden])')?.textContent === "1"`)
	controls := grace.checkNamed(t, "the conversation list")
	named := false
	for _, c := range controls {
		named = named || (c.Role == "button" && strings.Contains(c.Name, "lobby") && strings.HasSuffix(c.Name, "1 unread"))
	}
	if !named {
		t.Errorf("no button of lobby is named with %q; controls: %+v", "1 unread", controls)
	}
	// Focused, then Enter: the list may be drawn again in between, and
	// keeps the focus (replaceList), where a key sent to a node found
	// before would find it gone.
	grace.focus(t, "focus lobby", `#conversations li[data-room-name="lobby"] button`)
	grace.do(t, "press Enter on lobby", chromedp.KeyEvent(kb.Enter))
	waitFor[bool](t, grace, "lobby is open, its message read", viewState, `() =>
		document.getElementById("room-title").textContent === "lobby" &&
		[...document.querySelectorAll("#messages .msg-body")].some((e) => e.textContent === "unread one") &&
		document.title === "#lobby · Parley"`)

	// Dialogs: Escape closes them, and focus goes back to what opened them.
	for _, d := range []struct{ opener, dialog, field string }{
		{"#new-group", "#group-create", "#group-create-name"},
		{"#profile-open", "#profile", "#profile-name"},
	} {
		// Focused first, then Enter to whatever has the focus: a key sent
		// with the node to focus may reach the control that had the
		// focus before (the last dialog's opener, given it back).
		grace.focus(t, "focus "+d.opener, d.opener)
		grace.do(t, "open "+d.dialog+" with Enter", chromedp.KeyEvent(kb.Enter))
		waitFor[bool](t, grace, d.dialog+" is open with focus in it", `document.activeElement?.id`,
			`(d, f) => document.querySelector(d).open && document.activeElement === document.querySelector(f)`, d.dialog, d.field)
		grace.checkNamed(t, d.dialog)
		grace.do(t, "press Escape in "+d.dialog, chromedp.KeyEvent(kb.Escape)) // the focus is in d.field (above)
		waitFor[bool](t, grace, d.dialog+" is closed, focus on "+d.opener, `({open: document.querySelector("`+d.dialog+`").open, focus: document.activeElement?.id})`,
			`(d, o) => !document.querySelector(d).open && document.activeElement === document.querySelector(o)`, d.dialog, d.opener)
	}

	// Sign-in: every control is named, and an error is announced.
	grace.click(t, "sign out", "#signout")
	waitFor[bool](t, grace, "the sign-in shows", viewState, `() => document.getElementById("app").dataset.view === "signin"`)
	grace.checkNamed(t, "the sign-in")
	if got := evaluate[string](t, grace, "read the language", `document.documentElement.lang`); got == "" {
		t.Errorf("<html lang> is empty; want the page's language")
	}
	evaluate[chromedp.Void](t, grace, "type a wrong address", `document.getElementById("email").value = "not-an-address"`)
	grace.click(t, "send the code", "#send-code")
	waitFor[bool](t, grace, "the error is shown as an alert", viewState, `() => {
		const e = document.getElementById("auth-error");
		return !e.hidden && e.textContent !== "" && e.getAttribute("role") === "alert";
	}`)
	for _, b := range []*browser{ada, grace} {
		b.checkQuiet(t)
	}
}

// TestBrowserListFocusKept: a list the page draws again (a message came,
// a friend's presence changed) keeps the keyboard focus on the control
// that had it, not on the page's body: one who moves through the
// conversations with Tab would otherwise start over at every message.
func TestBrowserListFocusKept(t *testing.T) {
	s, ada, grace := startPair(t, browserTestTimeout)
	ada.signIn(t, s, "ada@example.com", "Ada")
	grace.signIn(t, s, "grace@example.com", "Grace")
	ada.enterRoom(t, "lobby")
	grace.enterRoom(t, "lobby")
	grace.enterRoom(t, "side")
	ada.enterRoom(t, "side")
	grace.click(t, "go back to the list", "#back")
	const lobby = `#conversations li[data-room-name="lobby"] button`
	grace.focus(t, "focus lobby", lobby)
	ada.send(t, "drawn again")
	waitFor[bool](t, grace, "side shows the message", `document.getElementById("conversations").innerText`,
		`() => document.querySelector('#conversations li[data-room-name="side"] .conv-preview')?.textContent.includes("drawn again")`)
	if got := evaluate[string](t, grace, "read the focus", `(() => {
		const e = document.activeElement;
		return e === document.querySelector('`+lobby+`') ? "lobby" : e.tagName + " " + (e.closest("li")?.dataset.roomName || "");
	})()`); got != "lobby" {
		t.Errorf("after the list was drawn again the focus is on %q; want lobby's button", got)
	}
}

// focus moves the keyboard focus to the element sel finds, once there is
// one.
func (b *browser) focus(t *testing.T, what, sel string) {
	t.Helper()
	waitFor[bool](t, b, what, `document.activeElement?.outerHTML`, `(sel) => {
		const e = document.querySelector(sel);
		if (!e) return false;
		e.focus();
		return document.activeElement === e;
	}`, sel)
}
