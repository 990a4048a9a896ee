package main

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// groupRenameState describes, for failure messages, what Ada's page shows
// of Grace: the open group's members and the conversation list.
const groupRenameState = `{
	conn: document.getElementById("conn-status").dataset.state,
	transport: document.getElementById("conn-status").dataset.transport,
	room: document.getElementById("room-title").textContent,
	members: [...document.querySelectorAll("#group-members li")].map((li) => li.dataset.userId + " " + li.querySelector(".person-name")?.textContent),
	convs: [...document.querySelectorAll("#conversations li")].map((li) => li.dataset.convId + " " + li.querySelector(".conv-name")?.textContent),
}`

// graceShownAs is true when Ada's page names Grace (user id) name in the
// open group's members and in the conversation list (their direct chat).
const graceShownAs = `(id, name) => {
	const member = document.querySelector('#group-members li[data-user-id="' + id + '"] .person-name');
	return member?.textContent === name &&
		[...document.querySelectorAll("#conversations .conv-name")].some((e) => e.textContent === name);
}`

// startAdaInGroupWithGrace signs Ada in, by the app's URL query, and
// Grace through the API: they are friends, Grace has written to Ada
// directly, and Ada has Grace's group Crew open, its members listing
// Grace. It returns Grace's client and user id.
func startAdaInGroupWithGrace(t *testing.T, query string) (*testServer, *browser, *http.Client, int64) {
	t.Helper()
	s, ada := startAdaBy(t, query)
	grace, graceID, _ := openCrewWithGrace(t, s, ada)
	return s, ada, grace, graceID
}

// openCrewWithGrace signs Grace in through the API, makes her Ada's
// friend, has her write to Ada directly and add her to her group Crew,
// and opens Crew in Ada's page (signed in), its members listing Grace.
// It returns Grace's client, her user id and Crew's id.
func openCrewWithGrace(t *testing.T, s *testServer, ada *browser) (*http.Client, int64, int64) {
	t.Helper()
	ada.userID = userIDOf(t, s, nil, ada)
	grace, groupID, _ := graceAddsToCrew(t, s, ada.userID)
	graceID := userIDOf(t, s, grace, nil)
	postJSON(t, grace, "POST", s.URL+"/api/contacts", map[string]int64{"user_id": ada.userID}, http.StatusOK, nil)
	ada.fetchJSON(t, "POST", fmt.Sprintf("/api/contacts/%d/accept", graceID), nil, nil)
	postJSON(t, grace, "POST", fmt.Sprintf("%s/api/direct/%d/messages", s.URL, ada.userID),
		map[string]string{"client_id": "c-hello", "body": "Hello Ada"}, http.StatusOK, nil)

	ada.do(t, "open Crew", chromedp.Navigate(ada.appURL(s, fmt.Sprintf("#conv/%d", groupID))))
	waitFor[bool](t, ada, "Crew is open and Grace is named in its members and the conversation list", groupRenameState, `(id, name) =>
		document.getElementById("room-title").textContent === "Crew" &&
		document.getElementById("conn-status").dataset.state === "connected" &&
		(`+graceShownAs+`)(id, name)`, graceID, "Grace")
	evaluate[chromedp.Void](t, ada, "mark the page", `window.parleyTestPage = true`)
	return grace, graceID, groupID
}

// renameWhileHidden has Grace rename herself while Ada's page is in the
// back/forward cache, its connection ended (a long-poll channel ended on
// the server by the page's DELETE: it is rebuilt from the cursor when the
// page is shown again), so that the frame of the rename reaches no
// connection of Ada's; then the page is shown again and reconnects.
func renameWhileHidden(t *testing.T, s *testServer, ada *browser, grace *http.Client, transport string) {
	t.Helper()
	evaluate[chromedp.Void](t, ada, "hide the page", `window.dispatchEvent(new PageTransitionEvent("pagehide", {persisted: true}))`)
	waitFor[bool](t, ada, "the page is disconnected", groupRenameState, `() =>
		document.getElementById("conn-status").dataset.state === "disconnected"`)
	postJSON(t, grace, "PATCH", s.URL+"/api/me", map[string]string{"name": "Grace Hopper"}, http.StatusOK, nil)
	evaluate[chromedp.Void](t, ada, "show the page", `window.dispatchEvent(new PageTransitionEvent("pageshow", {persisted: true}))`)
	waitFor[bool](t, ada, "Ada is connected by "+transport+" again", viewState, connectedBy, transport)
}

// TestBrowserPollGroupRenameResumed: Ada long-polls with the group Crew
// open, whose members list Grace; her page is hidden, which ends the
// channel on the server, while Grace renames herself. When the page is
// shown again the server rebuilds the channel from its cursor, and the
// frame of the rename is not given again: the open group's members and
// the conversation list must show Grace's new name all the same.
func TestBrowserPollGroupRenameResumed(t *testing.T) {
	renamedWhileHiddenShown(t, "?transport=poll", "poll")
}

// TestBrowserWSGroupRenameReconnected is TestBrowserPollGroupRenameResumed
// over a WebSocket: the rename is made while the page has none, and the
// reconnected page's hello is all it learns from.
func TestBrowserWSGroupRenameReconnected(t *testing.T) {
	renamedWhileHiddenShown(t, "", "ws")
}

// renamedWhileHiddenShown: Ada, connected by transport (her page's URL
// ending in query), has the group Crew open when Grace renames herself
// while Ada's page is hidden; shown again, it names Grace Hopper in the
// group's members and the conversation list.
func renamedWhileHiddenShown(t *testing.T, query, transport string) {
	t.Helper()
	s, ada, grace, graceID := startAdaInGroupWithGrace(t, query)
	waitFor[bool](t, ada, "Ada is connected by "+transport, viewState, connectedBy, transport)
	renameWhileHidden(t, s, ada, grace, transport)
	waitFor[bool](t, ada, "the open group's members and the conversation list name Grace Hopper", groupRenameState, graceShownAs, graceID, "Grace Hopper")
	ada.checkSamePage(t)
	ada.checkQuiet(t)
}

// holdPolls is run in a page before the app: while window.parleyHoldPolls
// is set, its requests to /api/poll wait in the page, none reaching the
// server, until window.parleyReleasePolls(); window.parleyHeldPolls
// counts the GETs held. window.parleyResumed counts
// the poll answers that began with a resumed frame (a channel the server
// rebuilt).
const holdPolls = `(() => {
	const fetch = window.fetch.bind(window);
	let gate = null;
	let release = () => {};
	window.parleyHoldPolls = false;
	window.parleyHeldPolls = 0;
	window.parleyResumed = 0;
	window.parleyReleasePolls = () => {
		window.parleyHoldPolls = false;
		release();
	};
	window.fetch = async (input, init) => {
		const url = String(input instanceof Request ? input.url : input);
		if (!url.includes("/api/poll")) return fetch(input, init);
		if (window.parleyHoldPolls) {
			if ((init?.method ?? "GET") === "GET") window.parleyHeldPolls++;
			gate ??= new Promise((r) => { release = () => { gate = null; r(); }; });
			await gate;
		}
		const res = await fetch(input, init);
		res.clone().json().then((b) => {
			if (b && Array.isArray(b.frames) && b.frames[0]?.type === "resumed") window.parleyResumed++;
		}, () => {});
		return res;
	};
})()`

// noListTimer is run in a page before the app: the lists' reload every
// 30 s (enterChat's roomsTimer) does not run, so that only what the page
// does on an event can show what the lists missed.
const noListTimer = `(() => {
	const setInterval = window.setInterval.bind(window);
	window.setInterval = (fn, ms, ...args) => ms === 30000 ? 0 : setInterval(fn, ms, ...args);
})()`

// TestBrowserPollGroupRenameRebuilt: Ada long-polls with the group Crew
// open, whose members list Grace. The page's polls stop reaching the
// server (held in the page, as on a link that stalls without failing)
// until her channel idles out there, and Grace renames herself
// meanwhile. The page's next poll, the same connection's, has the server
// rebuild the channel from its cursor: no hello is given again, only the
// resumed frame says that the rename's frame was lost. The open group's
// members and the conversation list must show Grace's new name (then,
// not at the lists' next reload every 30 s, which is held off here).
func TestBrowserPollGroupRenameRebuilt(t *testing.T) {
	exe := chromiumPath(t)
	// Polls are answered within 2 s, so that one held at the server ends
	// soon after the page's polls are held; the channel then idles out
	// (web.Config.PollIdle, 20 s).
	s := startServer(t, "--poll-hold", "2s")
	ada := startBrowser(t, exe, "ada", time.Now().Add(3*time.Minute))
	ada.query = "?transport=poll"
	ada.onEveryPage(t, "hold polls on demand", holdPolls)
	ada.onEveryPage(t, "no reload of the lists every 30 s", noListTimer)
	ada.signIn(t, s, "ada@example.com", "Ada")
	grace, graceID, groupID := openCrewWithGrace(t, s, ada)
	waitFor[bool](t, ada, "Ada is connected by long-polling", viewState, connectedBy, "poll")

	online := fmt.Sprintf("%s/api/rooms/%d/online", s.URL, groupID)
	adaOnline := func() bool {
		var got struct {
			Users []struct {
				ID int64 `json:"id"`
			} `json:"users"`
		}
		postJSON(t, grace, "GET", online, nil, http.StatusOK, &got)
		return slices.ContainsFunc(got.Users, func(u struct {
			ID int64 `json:"id"`
		}) bool {
			return u.ID == ada.userID
		})
	}
	if !adaOnline() {
		t.Fatalf("GET %s does not list Ada (%d) with Crew open", online, ada.userID)
	}

	evaluate[chromedp.Void](t, ada, "hold the page's polls", `window.parleyHoldPolls = true`)
	// The poll the server held has been answered: the rename's frame
	// reaches no poll.
	waitFor[bool](t, ada, "a poll is held in the page", `{held: window.parleyHeldPolls, view: `+viewState+`}`,
		`() => window.parleyHeldPolls >= 1`)
	postJSON(t, grace, "PATCH", s.URL+"/api/me", map[string]string{"name": "Grace Hopper"}, http.StatusOK, nil)
	// The channel idles out 20 s after the last poll ended.
	for deadline := time.Now().Add(45 * time.Second); adaOnline(); time.Sleep(250 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Ada's channel did not end on the server within 45 s of her polls being held")
		}
	}
	evaluate[chromedp.Void](t, ada, "let the page's polls go", `window.parleyReleasePolls()`)
	waitFor[bool](t, ada, "the server rebuilt the channel", `{resumed: window.parleyResumed, view: `+viewState+`}`,
		`() => window.parleyResumed >= 1`)
	waitFor[bool](t, ada, "the open group's members and the conversation list name Grace Hopper", groupRenameState, graceShownAs, graceID, "Grace Hopper")
	ada.checkSamePage(t)
	ada.checkQuiet(t)
}

// countListReads is run in a page: window.parleyListReads counts its
// GETs of the conversation and contact lists from then on.
const countListReads = `(() => {
	const fetch = window.fetch;
	window.parleyListReads = {conversations: 0, contacts: 0, overlaps: 0};
	const inFlight = {conversations: 0, contacts: 0};
	window.fetch = (input, init) => {
		const path = new URL(String(input instanceof Request ? input.url : input), location.href).pathname;
		if ((init?.method ?? "GET") !== "GET" || (path !== "/api/conversations" && path !== "/api/contacts")) {
			return fetch(input, init);
		}
		const list = path.slice(5);
		window.parleyListReads[list]++;
		if (inFlight[list]++ > 0) window.parleyListReads.overlaps++;
		const done = () => { inFlight[list]--; };
		return fetch(input, init).then((r) => { done(); return r; }, (e) => { done(); throw e; });
	};
})()`

// TestBrowserPollResumedReadsListsOnce: as
// TestBrowserPollGroupRenameResumed, the server rebuilds Ada's long-poll
// channel when her page is shown again. The page learns of it twice: the
// hello it gives again on any resume, and the resumed frame of the
// rebuild. It must load its lists again once, not for each: the contact
// list is read once. (The conversation list may be read a second time by
// that one load: a frame that changes it, such as the rename's, coming
// while it is read has it read again, and a reload per news would read
// the contacts again too.)
func TestBrowserPollResumedReadsListsOnce(t *testing.T) {
	s, ada, grace, graceID := startAdaInGroupWithGrace(t, "?transport=poll")
	waitFor[bool](t, ada, "Ada is connected by long-polling", viewState, connectedBy, "poll")
	time.Sleep(time.Second) // the reloads of opening Crew are done
	evaluate[chromedp.Void](t, ada, "count the lists' reads", countListReads)
	renameWhileHidden(t, s, ada, grace, "poll")
	waitFor[bool](t, ada, "the open group's members and the conversation list name Grace Hopper", groupRenameState, graceShownAs, graceID, "Grace Hopper")
	time.Sleep(time.Second) // a second reload, if any, is under way
	type reads struct {
		Conversations int `json:"conversations"`
		Contacts      int `json:"contacts"`
		Overlaps      int `json:"overlaps"`
	}
	// Loaded once, not once for the hello and again for resumed: no read
	// of a list starts while one is under way. A read that follows the
	// one before it is the page reading again for a frame that came
	// meanwhile (readSettled: the rename, if it came while the contacts
	// were read), at most four in all.
	got := evaluate[reads](t, ada, "read the count", `window.parleyListReads`)
	if got.Overlaps != 0 || got.Contacts < 1 || got.Contacts > 4 || got.Conversations < 1 {
		t.Errorf("lists read after the rebuilt channel's resume: %+v; want each loaded once, no read of a list started while one was under way", got)
	}
	ada.checkSamePage(t)
	ada.checkQuiet(t)
}
