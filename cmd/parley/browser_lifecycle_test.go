package main

import (
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserGroupLifecycle drives the rest of a group's life in three
// Chromium sessions: a full group offers no invitation, and says why,
// until its owner raises the limit; the owner cannot leave before handing the
// group over; once Grace owns it Ada leaves, and Grace deletes it, which
// Linus sees live.
func TestBrowserGroupLifecycle(t *testing.T) {
	s, ada, grace := startFriends(t)
	linus := startBrowser(t, chromiumPath(t), "linus", ada.deadline)
	linus.signIn(t, s, "linus@example.com", "Linus")
	waitFor[bool](t, linus, "connected", groupsState,
		`() => document.getElementById("conn-status").dataset.state === "connected"`)
	evaluate[chromedp.Void](t, linus, "mark the page", `window.parleyTestPage = true`)
	var me struct {
		User struct {
			ID int64 `json:"id"`
		} `json:"user"`
	}
	linus.fetchJSON(t, "GET", "/api/me", nil, &me)
	linus.userID = me.User.ID
	ada.fetchJSON(t, "POST", "/api/contacts", map[string]int64{"user_id": linus.userID}, nil)
	linus.fetchJSON(t, "POST", fmt.Sprintf("/api/contacts/%d/accept", ada.userID), nil, nil)
	waitFor[bool](t, ada, "Linus is a friend", groupsState, `(id) =>
		!!document.querySelector('#friends li[data-user-id="' + id + '"]')`, linus.userID)

	// A group of two: Ada and Grace fill it.
	ada.createGroup(t, "Tiny", "", "2")
	groupID := waitFor[int64](t, ada, "Tiny is open", groupsState, `() => {
		const m = /^#conv\/(\d+)$/.exec(location.hash);
		return document.getElementById("room-title").textContent === "Tiny" && !!m && Number(m[1]);
	}`)
	convSel := fmt.Sprintf(`#conversations li[data-conv-id="%d"]`, groupID)
	ada.openGroupSettings(t)
	invite := func(who *browser) {
		t.Helper()
		ada.do(t, "invite "+who.name,
			chromedp.SetValue(chromedp.CSS("#group-invite-user"), fmt.Sprint(who.userID)),
			chromedp.Click(chromedp.ID("group-invite-submit")),
		)
	}
	invite(grace)
	waitFor[bool](t, ada, "Grace is a member", groupsState, `(id) =>
		document.querySelector('#group-members li[data-user-id="' + id + '"]')?.dataset.role === "member"`, grace.userID)

	// Linus does not fit: he is not offered, and the settings say why and
	// what would help.
	waitFor[bool](t, ada, "the full group is reported", groupsState, `() =>
		document.getElementById("group-invite-user").hidden && document.getElementById("group-invite-submit").hidden &&
		document.getElementById("group-invite-hint").textContent === "The group is full. Raise its member limit to invite more."`)
	waitFor[bool](t, linus, "Tiny is not in Linus's list", groupsState, `(sel) => !document.querySelector(sel)`, convSel)

	// Ada raises the limit; now Linus fits and sees the group appear.
	evaluate[chromedp.Void](t, ada, "clear the limit", `document.getElementById("group-edit-cap").value = ""`)
	ada.do(t, "raise the limit",
		chromedp.SendKeys(chromedp.ID("group-edit-cap"), "3"),
		chromedp.Click(chromedp.ID("group-edit-save")),
	)
	waitFor[bool](t, ada, "the limit is saved", groupsState, `() =>
		document.getElementById("group-edit-info").textContent === "Saved." &&
		document.getElementById("group-dialog-sub").textContent.startsWith("2 of 3 members")`)
	invite(linus)
	waitFor[bool](t, ada, "Linus is a member", groupsState, `(id) =>
		document.querySelector('#group-members li[data-user-id="' + id + '"]')?.dataset.role === "member" &&
		document.getElementById("group-invite-error").hidden`, linus.userID)
	waitFor[bool](t, linus, "Tiny appears in Linus's list", groupsState, `(sel) =>
		document.querySelector(sel + '[data-kind="group"] .conv-name')?.textContent === "Tiny"`, convSel)

	// The owner may not leave: the button is not offered, the hint says why.
	waitFor[bool](t, ada, "the owner is told to hand over first", groupsState, `() =>
		document.getElementById("group-leave").hidden && !document.getElementById("group-leave-hint").hidden &&
		!document.getElementById("group-delete").hidden`)

	// Ada makes Grace the owner (a second click confirms), then leaves.
	owner := fmt.Sprintf(`#group-members li[data-user-id="%d"] .make-owner`, grace.userID)
	ada.click(t, "make Grace the owner", owner)
	waitFor[bool](t, ada, "the handover asks to be confirmed", groupsState, `(sel) =>
		document.querySelector(sel)?.dataset.armed === "true"`, owner)
	ada.click(t, "confirm", owner)
	waitFor[bool](t, ada, "Grace owns the group, Ada is an admin", groupsState, `(grace, me) =>
		document.querySelector('#group-members li[data-user-id="' + grace + '"]')?.dataset.role === "owner" &&
		document.querySelector('#group-members li[data-user-id="' + me + '"]')?.dataset.role === "admin" &&
		!document.getElementById("group-leave").hidden && document.getElementById("group-delete").hidden`,
		grace.userID, ada.userID)
	ada.do(t, "leave", chromedp.Click(chromedp.ID("group-leave")))
	waitFor[bool](t, ada, "leaving asks to be confirmed", groupsState, `() =>
		document.getElementById("group-leave").dataset.armed === "true"`)
	ada.do(t, "confirm", chromedp.Click(chromedp.ID("group-leave")))
	waitFor[bool](t, ada, "Tiny left Ada's list", groupsState, `(sel) =>
		!document.querySelector(sel) && !document.getElementById("group-dialog").open`, convSel)

	// Grace, the owner now, sees Ada go, and deletes the group; Linus, who
	// has it open, is told.
	linus.click(t, "open Tiny", convSel+" button")
	waitFor[bool](t, linus, "Tiny is open", groupsState, `() =>
		document.getElementById("room-title").textContent === "Tiny" && !document.getElementById("composer").disabled`)
	grace.click(t, "open Tiny", convSel+" button")
	waitFor[bool](t, grace, "Ada's leaving is in the history", groupsState, `() =>
		[...document.querySelectorAll("#messages .msg.event .notice-text")].some((e) => e.textContent.startsWith("Ada left"))`)
	grace.openGroupSettings(t)
	grace.do(t, "delete the group", chromedp.Click(chromedp.ID("group-delete")))
	waitFor[bool](t, grace, "deleting asks to be confirmed", groupsState, `() =>
		document.getElementById("group-delete").dataset.armed === "true"`)
	grace.do(t, "confirm", chromedp.Click(chromedp.ID("group-delete")))
	waitFor[bool](t, grace, "Tiny left Grace's list", groupsState, `(sel) => !document.querySelector(sel)`, convSel)
	waitFor[bool](t, linus, "Linus is told the group was deleted", groupsState, `(sel) => {
		const ended = document.getElementById("room-ended");
		return !document.querySelector(sel) && !ended.hidden && ended.dataset.reason === "deleted" &&
			ended.textContent === "This group was deleted." && document.getElementById("composer").disabled;
	}`, convSel)

	for _, b := range []*browser{ada, grace, linus} {
		b.checkSamePage(t)
		b.checkQuiet(t)
	}
}
