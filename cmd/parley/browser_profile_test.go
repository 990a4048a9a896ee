package main

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// rename renames b's user through the profile dialog and waits for the
// new name in the header.
func (b *browser) rename(t *testing.T, name string) {
	t.Helper()
	b.click(t, "open the profile", "#profile-open")
	// The name is selected: what is typed replaces it.
	waitFor[bool](t, b, "the profile is open with the name selected", viewState, `() => {
		const e = document.getElementById("profile-name");
		return document.getElementById("profile").open && e.selectionStart === 0 && e.selectionEnd === e.value.length;
	}`)
	b.do(t, "rename", chromedp.SendKeys(chromedp.ID("profile-name"), name+kb.Enter))
	waitFor[bool](t, b, "the new name is in the header", `{
		view: `+viewState+`,
		me: document.getElementById("me-name").textContent,
		field: document.getElementById("profile-name").value,
		error: document.getElementById("profile-error").textContent,
	}`, `(name) =>
		!document.getElementById("profile").open && document.getElementById("me-name").textContent === name`, name)
	b.name = name
}

// TestBrowserRenameOnlineList: Ada renames herself while a room is open;
// the room's online list shows her by her new name, not the old one.
func TestBrowserRenameOnlineList(t *testing.T) {
	_, ada := startAda(t)
	ada.enterRoom(t, "lobby")
	waitFor[bool](t, ada, "Ada is in the online list", viewState, `() =>
		[...document.querySelectorAll("#online-list li .name")].some((e) => e.textContent === "Ada")`)
	ada.rename(t, "Ada Lovelace")
	waitFor[bool](t, ada, "the online list names Ada by her new name", viewState, `() => {
		const names = [...document.querySelectorAll("#online-list li .name")].map((e) => e.textContent);
		return names.length === 1 && names[0] === "Ada Lovelace";
	}`)
	ada.checkQuiet(t)
}

// TestBrowserRenameOtherTab: Ada has the app open in two tabs and renames
// herself in one. The other tab shows the new name too, in its header and
// in the open room's online list, without a reload.
func TestBrowserRenameOtherTab(t *testing.T) {
	s, ada := startAda(t)
	ada.enterRoom(t, "lobby")
	other := ada.newTab(t, "Ada's other tab")
	other.openApp(t, s, "")
	other.enterRoom(t, "lobby")
	waitFor[bool](t, other, "the other tab shows Ada online", viewState, `() =>
		[...document.querySelectorAll("#online-list li .name")].some((e) => e.textContent === "Ada")`)

	ada.rename(t, "Ada Lovelace")
	waitFor[bool](t, other, "the other tab shows the new name", `{
		view: `+viewState+`,
		me: document.getElementById("me-name").textContent,
	}`, `() => {
		const names = [...document.querySelectorAll("#online-list li .name")].map((e) => e.textContent);
		return document.getElementById("me-name").textContent === "Ada Lovelace" &&
			names.length === 1 && names[0] === "Ada Lovelace";
	}`)
	for _, b := range []*browser{ada, other} {
		b.checkQuiet(t)
	}
}

// TestBrowserLongEmojiNames: names are limited in characters, as the
// server counts them, not in the page's UTF-16 units: a display name of
// 29 characters, 25 of them emoji of two units each (54 units), and a
// group name of 60 characters (120 units) are taken whole, as typed.
func TestBrowserLongEmojiNames(t *testing.T) {
	_, ada := startAda(t)
	name := "Ada " + strings.Repeat("🦊", 25)
	group := strings.Repeat("🚀", 60)
	if n, m := utf8.RuneCountInString(name), utf8.RuneCountInString(group); n != 29 || m != 60 {
		t.Fatalf("the names have %d and %d characters; want 29 and 60", n, m)
	}
	ada.rename(t, name)

	// One character more is refused on the page, saying so.
	ada.click(t, "open the profile", "#profile-open")
	waitFor[bool](t, ada, "the profile is open with the name selected", viewState, `() => {
		const e = document.getElementById("profile-name");
		return document.getElementById("profile").open && e.selectionStart === 0 && e.selectionEnd === e.value.length;
	}`)
	ada.do(t, "type a name too long", chromedp.SendKeys(chromedp.ID("profile-name"), strings.Repeat("🦊", 41)+kb.Enter))
	waitFor[bool](t, ada, "the name is refused", viewState, `() => {
		const e = document.getElementById("profile-error");
		return document.getElementById("profile").open && !e.hidden &&
			e.textContent === "The name is 41 characters long; the limit is 40.";
	}`)
	ada.click(t, "cancel", "#profile-cancel")

	ada.createGroup(t, group, "", "")
	waitFor[bool](t, ada, "the group is open with its whole name", groupsState, `(name) =>
		document.getElementById("room-title").textContent === name`, group)
	ada.checkQuiet(t)
}

// TestBrowserRenameSeenByFriend: Ada and Grace are friends with the room
// lobby open. Ada renames herself; without reloading, Grace sees the new
// name in her friend list and in the room's online list.
func TestBrowserRenameSeenByFriend(t *testing.T) {
	s, ada, grace := startPair(t, browserTestTimeout)
	ada.signIn(t, s, "ada@example.com", "Ada")
	grace.signIn(t, s, "grace@example.com", "Grace")
	befriend(t, s, ada, grace)
	ada.enterRoom(t, "lobby")
	grace.enterRoom(t, "lobby")
	grace.waitOnline(t, ada)
	const names = `{
		view: ` + viewState + `,
		friends: [...document.querySelectorAll("#friends li[data-user-id] .person-name")].map((e) => e.textContent),
		online: [...document.querySelectorAll("#online-list li .name")].map((e) => e.textContent),
	}`
	waitFor[bool](t, grace, "Grace lists Ada as a friend", names, `(id) =>
		document.querySelector('#friends li[data-user-id="' + id + '"] .person-name')?.textContent === "Ada"`, ada.userID)
	evaluate[chromedp.Void](t, grace, "mark the page", `window.parleyTestPage = true`)

	ada.rename(t, "Ada Lovelace")
	waitFor[bool](t, grace, "Grace sees Ada's new name in her friends and the online list", names, `(id) => {
		const online = [...document.querySelectorAll("#online-list li .name")].map((e) => e.textContent).sort();
		return document.querySelector('#friends li[data-user-id="' + id + '"] .person-name')?.textContent === "Ada Lovelace" &&
			online.join() === "Ada Lovelace,Grace";
	}`, ada.userID)
	if !evaluate[bool](t, grace, "the page was not reloaded", `window.parleyTestPage === true`) {
		t.Errorf("Grace's page was reloaded; the name must come live")
	}
	for _, b := range []*browser{ada, grace} {
		b.checkQuiet(t)
	}
}
