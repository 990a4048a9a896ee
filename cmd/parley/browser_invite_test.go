package main

import (
	"fmt"
	"testing"
)

// TestBrowserInviteFollowsFriends: Ada has her group's settings open, with
// Grace offered for an invitation, when Grace ends their friendship. The
// settings follow at once: Grace is no longer offered, as she would not be
// had the settings been opened after.
func TestBrowserInviteFollowsFriends(t *testing.T) {
	_, ada, grace := startFriends(t)
	ada.createGroup(t, "Crew", "", "")
	waitFor[bool](t, ada, "Crew is open", groupsState, `() =>
		document.getElementById("room-title").textContent === "Crew" && !document.getElementById("group-settings").hidden`)
	ada.openGroupSettings(t)
	const offered = `(id) => [...document.getElementById("group-invite-user").options].some((o) => o.value === String(id))`
	waitFor[bool](t, ada, "Grace is offered", groupsState, offered, grace.userID)

	grace.fetchJSON(t, "DELETE", fmt.Sprintf("/api/contacts/%d", ada.userID), nil, nil)
	waitFor[bool](t, ada, "Grace is no longer a friend", groupsState, `(id) =>
		!document.querySelector('#friends li[data-user-id="' + id + '"]')`, grace.userID)
	waitFor[bool](t, ada, "Grace is no longer offered", `{
		state: `+groupsState+`,
		options: [...document.getElementById("group-invite-user").options].map((o) => o.value + " " + o.textContent),
	}`, `(id) => !(`+offered+`)(id) &&
		document.getElementById("group-invite-user").hidden &&
		document.getElementById("group-invite-hint").textContent === "Add friends under People to invite them."`, grace.userID)
	for _, b := range []*browser{ada, grace} {
		b.checkQuiet(t)
	}
}

// TestBrowserOwnerAloneLeaveHint: the owner of a group with no other
// member cannot hand it over; the settings tell them to delete it to
// leave, not to make "another member" the owner.
func TestBrowserOwnerAloneLeaveHint(t *testing.T) {
	_, ada := startAda(t)
	ada.createGroup(t, "Solo", "", "")
	waitFor[bool](t, ada, "Solo is open", groupsState, `() =>
		document.getElementById("room-title").textContent === "Solo" && !document.getElementById("group-settings").hidden`)
	ada.userID = userIDOf(t, nil, nil, ada)
	ada.openGroupSettings(t)
	waitFor[bool](t, ada, "the hint says to delete the group", `{
		state: `+groupsState+`,
		hint: document.getElementById("group-leave-hint").textContent,
	}`, `() =>
		document.getElementById("group-dialog-sub").textContent.startsWith("1 of ") &&
		!document.getElementById("group-leave-hint").hidden &&
		document.getElementById("group-leave-hint").textContent === "You are its only member: delete it to leave."`)
	ada.checkQuiet(t)
}
