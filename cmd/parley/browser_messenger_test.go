package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// messengerState describes the messenger parts of the page, for failure messages.
const messengerState = `{
	view: document.getElementById("app").dataset.view,
	hash: location.hash,
	conn: document.getElementById("conn-status").dataset.state,
	transport: document.getElementById("conn-status").dataset.transport,
	title: document.getElementById("room-title").textContent,
	composerError: document.getElementById("composer-error").textContent,
	roomHint: document.getElementById("room-hint").textContent,
	peopleInfo: document.getElementById("people-info").textContent,
	results: [...document.querySelectorAll("#people-results li")].map((li) => li.dataset.userId + " " + li.textContent),
	requests: [...document.querySelectorAll("#requests li")].map((li) => li.dataset.userId + " " + li.textContent),
	sent: [...document.querySelectorAll("#sent li")].map((li) => li.dataset.userId + " " + li.textContent),
	friends: [...document.querySelectorAll("#friends li")].map((li) => li.dataset.userId + " " + li.textContent),
	conversations: [...document.querySelectorAll("#conversations li")].map((li) =>
		[li.dataset.convId, li.dataset.kind, li.textContent, li.querySelector(".badge")?.hidden].join(" | ")),
	messages: [...document.querySelectorAll("#messages .msg")].map((m) =>
		[m.dataset.seq, m.dataset.kind, m.className, m.textContent].join(" | ")),
}`

// TestBrowserMessenger drives contacts and direct chats in two Chromium
// sessions over WebSockets: Ada finds Grace by email and asks to be
// friends, Grace accepts live, Ada writes to her; Grace leaves the page
// (and so goes offline) while Ada writes more, and on her return sees the
// right unread count, reads everything in order and the badge goes away.
// TestBrowserPoll runs the same over long-polling.
func TestBrowserMessenger(t *testing.T) {
	runMessengerScenario(t, "", "ws")
}

// connectedBy is a JavaScript function that is true once the page is
// connected by the transport given as its argument ("ws" or "poll").
const connectedBy = `(transport) => {
	const el = document.getElementById("conn-status");
	return el.dataset.state === "connected" && el.dataset.transport === transport;
}`

// runMessengerScenario runs TestBrowserMessenger's scenario with the app's
// URL ending in query, and checks that every page is connected by
// transport.
func runMessengerScenario(t *testing.T, query, transport string) {
	s, ada, grace := startPair(t, 2*browserTestTimeout)
	ada.query, grace.query = query, query

	ada.signIn(t, s, "ada@example.com", "Ada")
	grace.signIn(t, s, "grace@example.com", "Grace")
	for _, b := range []*browser{ada, grace} {
		waitFor[bool](t, b, "connected by "+transport, messengerState, connectedBy, transport)
		evaluate[chromedp.Void](t, b, "mark the page", `window.parleyTestPage = true`)
	}

	// Ada finds Grace by her address and asks her to be a friend.
	ada.do(t, "search for Grace", chromedp.SendKeys(chromedp.ID("people-search"), "grace@example.com"+kb.Enter))
	grace.userID = waitFor[int64](t, ada, "Grace is found", messengerState, `() => {
		const li = [...document.querySelectorAll("#people-results li[data-user-id]")]
			.find((li) => li.querySelector(".person-name")?.textContent === "Grace");
		return li && li.querySelector(".add-friend") && Number(li.dataset.userId);
	}`)
	ada.click(t, "add Grace", fmt.Sprintf(`#people-results li[data-user-id="%d"] .add-friend`, grace.userID))
	waitFor[bool](t, ada, "the request is listed as sent", messengerState, `(id) =>
		!!document.querySelector('#sent li[data-user-id="' + id + '"]')`, grace.userID)

	// Grace gets the request live and accepts it; Ada sees her as a friend at once.
	ada.userID = waitFor[int64](t, grace, "Ada's request arrives", messengerState, `() => {
		const li = [...document.querySelectorAll("#requests li[data-user-id]")]
			.find((li) => li.querySelector(".person-name")?.textContent === "Ada");
		return li && li.querySelector(".accept") && li.querySelector(".decline") && Number(li.dataset.userId);
	}`)
	if shot := os.Getenv("PARLEY_SCREENSHOT"); shot != "" {
		grace.screenshot(t, strings.TrimSuffix(shot, filepath.Ext(shot))+"-request"+filepath.Ext(shot))
	}
	grace.click(t, "accept Ada", fmt.Sprintf(`#requests li[data-user-id="%d"] .accept`, ada.userID))
	for _, p := range []struct {
		b     *browser
		other *browser
	}{{ada, grace}, {grace, ada}} {
		waitFor[bool](t, p.b, p.other.name+" is a friend", messengerState, `(id) =>
			!!document.querySelector('#friends li[data-user-id="' + id + '"]') &&
			!document.querySelector('#requests li[data-user-id="' + id + '"]') &&
			!document.querySelector('#sent li[data-user-id="' + id + '"]')`, p.other.userID)
	}

	// Ada opens the (still empty) direct chat and writes; it is created by that message.
	ada.click(t, "open the chat with Grace", fmt.Sprintf(`#friends li[data-user-id="%d"] .person-open`, grace.userID))
	waitFor[bool](t, ada, "the direct chat with Grace is open", messengerState, `(id) =>
		document.getElementById("room-title").textContent === "Grace" &&
		location.hash === "#dm/" + id &&
		document.getElementById("history-text").textContent !== "Loading messages…"`, grace.userID)
	texts := []string{"Hi Grace, it's Ada. Got a minute?"}
	seqs := []int64{ada.send(t, texts[0])}

	// Grace has not opened it: it shows in her list, live, with one unread.
	convID := waitFor[int64](t, grace, "the direct chat shows up with 1 unread", messengerState, `(text) => {
		const li = document.querySelector('#conversations li[data-kind="direct"]');
		const badge = li && li.querySelector(".badge");
		return badge && !badge.hidden && badge.textContent === "1" &&
			li.textContent.includes(text) && Number(li.dataset.convId);
	}`, texts[0])
	read := 0 // what Grace has read of it
	unreadBefore := int(seqs[0]) - read

	// Grace closes her page; the page ends its connection as it goes, so
	// Ada sees her offline after the grace period, not an idle timeout.
	presenceIs := `(id, online) =>
		document.querySelector('#friends li[data-user-id="' + id + '"] .presence-dot')?.dataset.online === String(online)`
	waitFor[bool](t, ada, "Grace is shown online", messengerState, presenceIs, grace.userID, true)
	grace.do(t, "leave the page", chromedp.Navigate("about:blank"))
	waitFor[bool](t, ada, "Grace is shown offline", messengerState, presenceIs, grace.userID, false)

	for _, text := range []string{"The release notes are ready for review.", "Tests are green on my side.", "Ping me when you are back!"} {
		texts = append(texts, text)
		seqs = append(seqs, ada.send(t, text))
	}
	if !slices.IsSorted(seqs) || seqs[len(seqs)-1]-seqs[0] != int64(len(seqs)-1) {
		t.Fatalf("Ada's messages have seqs %v; want consecutive", seqs)
	}
	want := unreadBefore + len(texts) - 1
	if want != 4 {
		t.Fatalf("expected unread count %d; the scenario makes it 4", want)
	}

	// Grace comes back (same profile, so still signed in): the badge counts
	// what she missed.
	grace.do(t, "come back", chromedp.Navigate(grace.appURL(s, "")))
	waitFor[bool](t, grace, fmt.Sprintf("the badge shows %d", want), messengerState, `(id, want) => {
		const li = document.querySelector('#conversations li[data-conv-id="' + id + '"][data-kind="direct"]');
		const badge = li && li.querySelector(".badge");
		return document.getElementById("app").dataset.view === "chat" &&
			!!badge && !badge.hidden && badge.textContent === String(want);
	}`, convID, want)
	evaluate[chromedp.Void](t, grace, "mark the page", `window.parleyTestPage = true`)

	// A second tab of Grace's shows the same badge, and loses it when she
	// reads the chat in the first one (the server's read frame).
	tabCtx, closeTab := chromedp.NewContext(grace.ctx)
	defer closeTab()
	tab := &browser{name: "Grace (second tab)", query: query, ctx: tabCtx, deadline: grace.deadline, output: newSyncBuffer()}
	// The first Do ties the tab to the context it gets: give it the tab's own.
	opened := make(chan error, 1)
	go func() { opened <- chromedp.Do(tabCtx) }()
	select {
	case err := <-opened:
		if err != nil {
			t.Fatalf("open a second tab: %v", err)
		}
	case <-time.After(browserStepTimeout):
		t.Fatalf("a second tab did not open within %v", browserStepTimeout)
	}
	tab.do(t, "load the app in the second tab", chromedp.Navigate(tab.appURL(s, "")))
	badgeIs := `(id, want) => {
		const li = document.querySelector('#conversations li[data-conv-id="' + id + '"][data-kind="direct"]');
		const badge = li && li.querySelector(".badge");
		return document.getElementById("conn-status").dataset.state === "connected" && !!badge &&
			(want === 0 ? badge.hidden : !badge.hidden && badge.textContent === String(want));
	}`
	waitFor[bool](t, tab, fmt.Sprintf("the second tab shows %d unread", want), messengerState, badgeIs, convID, want)
	for _, b := range []*browser{grace, tab} {
		waitFor[bool](t, b, "connected by "+transport, messengerState, connectedBy, transport)
	}

	// She opens it and reads everything, in order; the badge goes away.
	grace.click(t, "open the chat with Ada", fmt.Sprintf(`#conversations li[data-conv-id="%d"] button`, convID))
	type shown struct {
		Seqs  []int64  `json:"seqs"`
		Texts []string `json:"texts"`
	}
	got := waitFor[shown](t, grace, "all of Ada's messages are shown", messengerState, `(n, sender) => {
		if (document.getElementById("room-title").textContent !== "Ada") return null;
		const ms = [...document.querySelectorAll("#messages .msg[data-kind=text]")];
		if (ms.length < n) return null;
		return {
			seqs: ms.map((m) => Number(m.dataset.seq)),
			texts: ms.map((m) => m.dataset.senderId === String(sender) ? m.querySelector(".msg-body").textContent : "?"),
		};
	}`, len(texts), ada.userID)
	if !slices.Equal(got.Seqs, seqs) || !slices.Equal(got.Texts, texts) {
		t.Fatalf("Grace sees seqs %v texts %q; want %v %q", got.Seqs, got.Texts, seqs, texts)
	}
	waitFor[bool](t, grace, "the badge is gone", messengerState, `(id) => {
		const badge = document.querySelector('#conversations li[data-conv-id="' + id + '"] .badge');
		return !!badge && badge.hidden;
	}`, convID)
	waitFor[bool](t, tab, "the second tab's badge is gone", messengerState, badgeIs, convID, 0)
	closeTab()
	if h := evaluate[string](t, grace, "read the hash", `location.hash`); h != fmt.Sprintf("#dm/%d", ada.userID) {
		t.Errorf("Grace's location hash is %q; want #dm/%d", h, ada.userID)
	}

	// And the conversation goes on live both ways.
	for _, p := range []struct {
		from, to *browser
		text     string
	}{{grace, ada, "Back now. Reading the notes."}, {ada, grace, "Great, thanks!"}} {
		seq := p.from.send(t, p.text)
		m := p.to.waitMessage(t, p.text)
		if m.Seq != seq || m.SenderID != p.from.userID || m.Pending {
			t.Fatalf("%s sees %q as %+v; want seq %d from %d", p.to.name, p.text, m, seq, p.from.userID)
		}
	}
	// Grace has it open: Ada's latest message counts as read at once.
	waitFor[bool](t, grace, "the open chat stays read", messengerState, `(id) => {
		const badge = document.querySelector('#conversations li[data-conv-id="' + id + '"] .badge');
		return !!badge && badge.hidden;
	}`, convID)

	// Switching to a room and back shows the same history at once: the
	// elements are kept per conversation, not fetched again.
	evaluate[chromedp.Void](t, grace, "mark the history", `document.querySelector("#messages .msg[data-seq]").parleyKept = true`)
	grace.enterRoom(t, "lobby")
	waitFor[bool](t, grace, "lobby is in the conversation list", messengerState, `() =>
		!!document.querySelector('#conversations li[data-kind="room"][data-room-name="lobby"]')`)
	grace.click(t, "back to Ada", fmt.Sprintf(`#conversations li[data-conv-id="%d"] button`, convID))
	waitFor[bool](t, grace, "the chat with Ada is shown from the cache", messengerState, `(n) =>
		document.getElementById("room-title").textContent === "Ada" &&
		document.querySelector("#messages .msg[data-seq]")?.parleyKept === true &&
		document.querySelectorAll("#messages .msg[data-kind=text]").length === n`, len(texts)+2)

	// On a phone the chat fills the screen; Back shows the lists alone.
	shot := os.Getenv("PARLEY_SCREENSHOT")
	base := strings.TrimSuffix(shot, filepath.Ext(shot))
	if shot != "" {
		grace.screenshot(t, base+"-messenger"+filepath.Ext(shot))
	}
	grace.do(t, "phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulatePortrait))
	grace.waitPhoneLayout(t)
	if shot != "" {
		grace.screenshot(t, base+"-messenger-phone"+filepath.Ext(shot))
	}
	grace.do(t, "back to the list", chromedp.Click(chromedp.ID("back")))
	waitFor[bool](t, grace, "the lists fill the phone screen", messengerState, `(id) => {
		const li = document.querySelector('#conversations li[data-conv-id="' + id + '"]');
		const r = li && li.getBoundingClientRect();
		return document.querySelector(".chat").dataset.screen === "list" &&
			getComputedStyle(document.querySelector(".room")).display === "none" &&
			document.documentElement.scrollWidth <= innerWidth &&
			!!r && r.width > 0 && r.left >= 0 && r.right <= innerWidth;
	}`, convID)
	if shot != "" {
		grace.screenshot(t, base+"-messenger-phone-list"+filepath.Ext(shot))
	}

	// A link to the direct chat opens it on a fresh page.
	ada.do(t, "open #dm/ link", chromedp.Navigate("about:blank"), chromedp.Navigate(ada.appURL(s, fmt.Sprintf("#dm/%d", grace.userID))))
	got = waitFor[shown](t, ada, "the direct chat opens from its link", messengerState, `(n) => {
		if (document.getElementById("room-title").textContent !== "Grace") return null;
		const ms = [...document.querySelectorAll("#messages .msg[data-kind=text]")];
		if (ms.length !== n) return null;
		return {seqs: ms.map((m) => Number(m.dataset.seq)), texts: ms.map((m) => m.querySelector(".msg-body").textContent)};
	}`, len(texts)+2)
	if !slices.Equal(got.Seqs[:len(seqs)], seqs) || !slices.Equal(got.Texts[:len(texts)], texts) {
		t.Fatalf("Ada sees seqs %v texts %q after opening the link; want %v %q first", got.Seqs, got.Texts, seqs, texts)
	}
	waitFor[bool](t, ada, "connected by "+transport, messengerState, connectedBy, transport)

	for _, b := range []*browser{ada, grace} {
		b.checkQuiet(t)
	}
}
