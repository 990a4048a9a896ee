package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/parley-chat/parley/internal/chat"
)

// unsureMark in a message's body makes unsureStore answer its first
// append with an error of unknown outcome.
const unsureMark = "[unsure]"

// downMark in a message's body makes unsureStore answer unavailable,
// storing nothing, while it is down. A body with both marks takes the
// store down with its first, unsure, append.
const downMark = "[down]"

// unsureStore is a store that, for the first append of each message whose
// body holds unsureMark, commits the message and then answers unavailable,
// as a store whose connection was lost after COMMIT does: the sender is
// told of an error, and nothing publishes the message. It counts the
// messages each body was stored as.
type unsureStore struct {
	store
	mu     sync.Mutex
	down   bool            // appends of bodies with downMark fail
	tries  map[string]int  // body → appends asked for
	failed map[string]bool // bodies whose first append failed
	stored map[string]int  // body → messages made
}

// errDown is the answer of a store that cannot be reached.
var errDown = chat.Errorf(chat.ErrUnavailable, chat.CodeUnavailable, "the database cannot be reached; try again later")

func (s *unsureStore) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// triesOf reports how many appends of body were asked for.
func (s *unsureStore) triesOf(body string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tries[body]
}

type failedAppend struct{ err error }

func (p failedAppend) Wait() (chat.Message, bool, error) { return chat.Message{}, false, p.err }

func (s *unsureStore) QueueAppend(ctx context.Context, nm chat.NewMessage) chat.PendingAppend {
	s.mu.Lock()
	s.tries[nm.Body]++
	down := s.down && strings.Contains(nm.Body, downMark)
	s.mu.Unlock()
	if down {
		return failedAppend{errDown}
	}
	p := unsureAppend{PendingAppend: s.store.QueueAppend(ctx, nm), s: s, body: nm.Body}
	if strings.Contains(nm.Body, unsureMark) {
		s.mu.Lock()
		p.fail = !s.failed[nm.Body]
		s.failed[nm.Body] = true
		if p.fail && strings.Contains(nm.Body, downMark) {
			s.down = true
		}
		s.mu.Unlock()
	}
	return p
}

// storedAs reports how many messages body was stored as.
func (s *unsureStore) storedAs(body string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stored[body]
}

type unsureAppend struct {
	chat.PendingAppend
	s    *unsureStore
	body string
	fail bool
}

func (p unsureAppend) Wait() (chat.Message, bool, error) {
	m, created, err := p.PendingAppend.Wait()
	if err == nil && created {
		p.s.mu.Lock()
		p.s.stored[p.body]++
		p.s.mu.Unlock()
	}
	if err == nil && p.fail {
		return chat.Message{}, false, chat.Errorf(chat.ErrUnavailable, chat.CodeUnavailable, "the database did not answer in time; try again later")
	}
	return m, created, err
}

// startUnsureServer runs parley, on SQLite and the in-process broker, on
// an unsureStore.
func startUnsureServer(t *testing.T) (*testServer, *unsureStore) {
	t.Helper()
	var st *unsureStore
	s := startServerWith(t, func(db store) store {
		st = &unsureStore{store: db, tries: make(map[string]int), failed: make(map[string]bool), stored: make(map[string]int)}
		return st
	})
	return s, st
}

// TestBrowserResendUnsure: the store commits Ada's message but answers
// unavailable, so the outcome is unknown to her page and nothing has
// published the message. The page keeps it pending and sends it again
// with the same client ID: the message is shown once to Ada and once to
// Grace, who sends nothing meanwhile, and it is stored once.
func TestBrowserResendUnsure(t *testing.T) {
	_, st, ada, grace := adaAndGrace(t)
	ada.enterRoom(t, "lobby")
	grace.enterRoom(t, "lobby")
	ada.send(t, "Before the store falters.")
	grace.waitMessage(t, "Before the store falters.")

	text := "Stored, though the store did not say so. " + unsureMark
	ada.do(t, "send", chromedp.SendKeys(chromedp.ID("composer"), text+kb.Enter))
	seq := waitFor[int64](t, ada, "the message is sent", viewState, `(text) => {
		const shown = [...document.querySelectorAll("#messages .msg")]
			.filter((m) => m.querySelector(".msg-body")?.textContent === text);
		return shown.length === 1 && !shown[0].classList.contains("pending") &&
			document.getElementById("composer").value === "" && Number(shown[0].dataset.seq);
	}`, text)
	wantFromAda(t, grace, ada, text, seq)

	var room struct {
		Room struct{ ID int64 } `json:"room"`
	}
	ada.fetchJSON(t, "POST", "/api/rooms", map[string]string{"name": "lobby"}, &room)
	var page struct {
		Messages []struct {
			Body string `json:"body"`
		} `json:"messages"`
	}
	ada.fetchJSON(t, "GET", fmt.Sprintf("/api/rooms/%d/messages", room.Room.ID), nil, &page)
	n := 0
	for _, m := range page.Messages {
		if m.Body == text {
			n++
		}
	}
	if n != 1 || st.storedAs(text) != 1 {
		t.Errorf("%q is %d times in the history, stored %d times; want once", text, n, st.storedAs(text))
	}
	for _, b := range []*browser{ada, grace} {
		if n := shownTimes(t, b, text); n != 1 {
			t.Errorf("%s shows %q %d times; want once", b.name, text, n)
		}
	}
	for _, b := range []*browser{ada, grace} {
		b.checkQuiet(t)
	}
}

// hurryTimers makes the live connection's timers (socket.js) of a second
// or more run a hundred times sooner, so that a send's tries are over in a
// moment. Others, the test's own waits among them, keep their time.
const hurryTimers = `(() => {
	const setTimeout = window.setTimeout;
	window.setTimeout = (fn, ms, ...args) => {
		const hurry = ms >= 1000 && String(new Error().stack).includes("/socket.js");
		return setTimeout(fn, hurry ? ms / 100 : ms, ...args);
	};
})()`

// holdLists makes the page's answers to GET /api/conversations wait, once
// received, until window.parleyLetListsGo() lets them all go (and those
// after it through).
const holdLists = `(() => {
	const fetch = window.fetch.bind(window);
	let held = [];
	window.parleyLetListsGo = () => {
		const go = held;
		held = null;
		for (const resolve of go) resolve();
	};
	window.fetch = async (input, init) => {
		const res = await fetch(input, init);
		if (held && String(input) === "/api/conversations") await new Promise((resolve) => held.push(resolve));
		return res;
	};
})()`

// TestBrowserResendStuck: the store cannot be reached while Ada sends.
// Her page tries a bounded number of times, then shows the message as
// not sent, with Retry and Discard. Once the store is back, Retry sends
// it with the same client ID: shown once to Ada and to Grace, stored
// once. Discard drops another such message for good.
func TestBrowserResendStuck(t *testing.T) {
	_, st, ada, grace := adaAndGrace(t)
	ada.enterRoom(t, "lobby")
	grace.enterRoom(t, "lobby")

	st.setDown(true)
	evaluate[chromedp.Void](t, ada, "hurry timers", hurryTimers)
	text := "Sent while the store is down. " + downMark
	ada.do(t, "send", chromedp.SendKeys(chromedp.ID("composer"), text+kb.Enter))
	waitNotSent(t, ada, text)
	if n := st.triesOf(text); n < 2 || n > 8 {
		t.Errorf("the page tried %q %d times before giving up; want 2 to 8", text, n)
	}

	other := "Given up on. " + downMark
	ada.do(t, "send another", chromedp.SendKeys(chromedp.ID("composer"), other+kb.Enter))
	waitFor[bool](t, ada, "the other is shown as not sent", viewState, `(text) =>
		[...document.querySelectorAll("#messages .msg.failed")]
			.some((m) => m.querySelector(".msg-body")?.textContent === text)`, other)
	evaluate[chromedp.Void](t, ada, "discard it", fmt.Sprintf(`[...document.querySelectorAll("#messages .msg.failed")]
		.find((m) => m.querySelector(".msg-body")?.textContent === %q)
		.querySelector("button[data-action=discard]").click()`, other))

	st.setDown(false)
	seq := retrySent(t, ada, text)
	wantFromAda(t, grace, ada, text, seq)
	if n := st.storedAs(text); n != 1 {
		t.Errorf("%q stored %d times; want once", text, n)
	}
	ada.send(t, "And on we go.")
	grace.waitMessage(t, "And on we go.")
	for _, b := range []*browser{ada, grace} {
		if n := shownTimes(t, b, other); n != 0 {
			t.Errorf("%s shows the discarded %q %d times; want none", b.name, other, n)
		}
	}
	if n := st.storedAs(other); n != 0 {
		t.Errorf("the discarded %q is stored %d times; want none", other, n)
	}
	for _, b := range []*browser{ada, grace} {
		b.checkQuiet(t)
	}
}

// TestBrowserResendFirstDirect: Ada's first message to her friend Grace
// goes over REST, which makes their conversation. The store commits it
// but answers unavailable, and is down for the tries after. Ada's page
// keeps it pending with its client ID, then shows it as not sent, with
// Retry and Discard, and the composer empty: sending the text again would
// store it twice. Once the store is back, Retry gets the stored message:
// it is shown once to Ada and to Grace, and stored once.
func TestBrowserResendFirstDirect(t *testing.T) {
	s, st, ada, grace := adaAndGrace(t)
	befriend(t, s, ada, grace)

	ada.openNewChat(t, grace)
	evaluate[chromedp.Void](t, ada, "mark the page", `window.parleyTestPage = true`)
	evaluate[chromedp.Void](t, ada, "hurry timers", hurryTimers)
	// The conversation list, read again at any frame of presence, would
	// show the conversation the stored message made, and the page would
	// follow it and find the message there, sent: until Retry, the page
	// gets no answer to it.
	evaluate[chromedp.Void](t, ada, "hold the lists", holdLists)
	text := "Hello Grace; stored, though the store did not say so. " + unsureMark + " " + downMark
	ada.do(t, "write to Grace", chromedp.SendKeys(chromedp.ID("composer"), text+kb.Enter))
	waitNotSent(t, ada, text)
	if n := st.triesOf(text); n < 2 || n > 8 {
		t.Errorf("the page tried %q %d times before giving up; want 2 to 8", text, n)
	}

	st.setDown(false)
	seq := retrySent(t, ada, text)
	evaluate[chromedp.Void](t, ada, "let the lists go", `window.parleyLetListsGo()`)
	ada.checkSamePage(t)

	evaluate[chromedp.Void](t, grace, "mark the page", `window.parleyTestPage = true`)
	evaluate[chromedp.Void](t, grace, "open the chat with Ada", fmt.Sprintf(`location.hash = "#dm/%d"`, ada.userID))
	wantFromAda(t, grace, ada, text, seq)
	shownOnceAfterMore(t, st, ada, grace, text)
}

// shownOnceAfterMore checks that after one more message of Ada's, both
// pages show her text once, that it was stored once, and that neither
// page logged an error.
func shownOnceAfterMore(t *testing.T, st *unsureStore, ada, grace *browser, text string) {
	t.Helper()
	ada.send(t, "And on we go.")
	grace.waitMessage(t, "And on we go.")
	for _, b := range []*browser{ada, grace} {
		if n := shownTimes(t, b, text); n != 1 {
			t.Errorf("%s shows %q %d times; want once", b.name, text, n)
		}
	}
	if n := st.storedAs(text); n != 1 {
		t.Errorf("%q stored %d times; want once", text, n)
	}
	for _, b := range []*browser{ada, grace} {
		b.checkQuiet(t)
	}
}

// TestBrowserResendFirstDirectAway: the store is down while Ada writes her
// first message to Grace, and Ada goes to a room and back while the page
// tries. The chat with Grace still shows the message as not sent, with
// Retry, and not its text in the composer; once the store is back, Retry
// sends it: shown once to Ada and to Grace, stored once.
func TestBrowserResendFirstDirectAway(t *testing.T) {
	s, st, ada, grace := adaAndGrace(t)
	befriend(t, s, ada, grace)

	dm := fmt.Sprintf("#dm/%d", grace.userID)
	openGrace := func() {
		t.Helper()
		evaluate[chromedp.Void](t, ada, "open the chat with Grace", `location.hash = "`+dm+`"`)
		waitFor[bool](t, ada, "the chat with Grace is open", viewState, `() =>
			document.getElementById("room-title").textContent === "Grace" &&
			document.getElementById("history-text").textContent.startsWith("This is the beginning")`)
	}
	openGrace()
	evaluate[chromedp.Void](t, ada, "mark the page", `window.parleyTestPage = true`)
	st.setDown(true)
	text := "Hello Grace, while the store is down. " + downMark
	ada.do(t, "write to Grace", chromedp.SendKeys(chromedp.ID("composer"), text+kb.Enter))
	waitRetrying(t, ada, text)
	evaluate[chromedp.Void](t, ada, "go to #lobby", `location.hash = "#room/lobby"`)
	waitFor[bool](t, ada, "#lobby is open", viewState, `() =>
		document.getElementById("room-title").textContent === "lobby" &&
		document.getElementById("history-text").textContent !== "Loading messages…"`)
	evaluate[chromedp.Void](t, ada, "hurry timers", hurryTimers)
	waitFor[bool](t, ada, "#lobby says the message was not sent", viewState, `() =>
		document.getElementById("composer-error").textContent.includes("Grace")`)

	openGrace()
	waitFor[bool](t, ada, "the message is shown as not sent", viewState, `(text) => {
		const shown = [...document.querySelectorAll("#messages .msg")]
			.filter((m) => m.querySelector(".msg-body")?.textContent === text);
		return shown.length === 1 && shown[0].classList.contains("failed") &&
			!!shown[0].querySelector("button[data-action=retry]") &&
			document.getElementById("composer").value === "";
	}`, text)
	st.setDown(false)
	seq := retrySent(t, ada, text)
	ada.checkSamePage(t)

	evaluate[chromedp.Void](t, grace, "mark the page", `window.parleyTestPage = true`)
	evaluate[chromedp.Void](t, grace, "open the chat with Ada", fmt.Sprintf(`location.hash = "#dm/%d"`, ada.userID))
	wantFromAda(t, grace, ada, text, seq)
	if n := st.storedAs(text); n != 1 {
		t.Errorf("%q stored %d times; want once", text, n)
	}
	for _, b := range []*browser{ada, grace} {
		b.checkQuiet(t)
	}
}

// slowTimers makes the live connection's timers (socket.js) of a second or
// more run a hundred times later, so that a send's next try is well past
// the test's waits.
const slowTimers = `(() => {
	const setTimeout = window.setTimeout;
	window.setTimeout = (fn, ms, ...args) => {
		const slow = ms >= 1000 && String(new Error().stack).includes("/socket.js");
		return setTimeout(fn, slow ? ms * 100 : ms, ...args);
	};
})()`

// waitRetrying waits until b shows its message text as pending, to be
// tried again.
func waitRetrying(t *testing.T, b *browser, text string) {
	t.Helper()
	waitFor[bool](t, b, "the page is to try again", viewState, `(text) =>
		[...document.querySelectorAll("#messages .msg.pending")]
			.some((m) => m.querySelector(".msg-body")?.textContent === text &&
				m.querySelector(".msg-time").textContent === "Retrying…")`, text)
}

// goAwayAndBack shows b the room lobby and then the conversation at hash
// again, whose title is title.
func goAwayAndBack(t *testing.T, b *browser, hash, title string) {
	t.Helper()
	for _, to := range []struct{ hash, title string }{{"#room/lobby", "lobby"}, {hash, title}} {
		evaluate[chromedp.Void](t, b, "go to "+to.hash, fmt.Sprintf(`location.hash = %q`, to.hash))
		waitFor[bool](t, b, to.title+" is open", viewState, `(title) =>
			document.getElementById("room-title").textContent === title &&
			document.getElementById("history-text").textContent !== "Loading messages…"`, to.title)
	}
}

// TestBrowserResendSettledBySync: the store commits Ada's message but
// answers unavailable, and before her page tries again she goes to another
// room and back: the sync of the reopened room brings the message. Nothing
// has published it, so the page still sends it again with its client ID,
// and Grace, who keeps the room open, gets it live. Ada sees it once,
// sent, throughout; it is stored once.
func TestBrowserResendSettledBySync(t *testing.T) {
	_, st, ada, grace := adaAndGrace(t)
	ada.enterRoom(t, "general")
	grace.enterRoom(t, "general")
	ada.send(t, "Before the store falters.")
	grace.waitMessage(t, "Before the store falters.")

	evaluate[chromedp.Void](t, ada, "slow timers", slowTimers)
	text := "Stored, and brought by a sync. " + unsureMark
	ada.do(t, "send", chromedp.SendKeys(chromedp.ID("composer"), text+kb.Enter))
	waitRetrying(t, ada, text)
	goAwayAndBack(t, ada, "#room/general", "general")
	settledLive(t, st, ada, grace, text)
}

// TestBrowserResendFirstDirectSettledByHistory: Ada's first message to
// Grace, over REST, is committed with its conversation, but the store
// answers unavailable; before her page tries again, she goes to a room and
// back, and the chat's history brings the message. Nothing has published
// it, so the page still sends it again with its client ID, and Grace, who
// has her empty chat with Ada open, gets it live. Ada sees it once, sent;
// it is stored once.
func TestBrowserResendFirstDirectSettledByHistory(t *testing.T) {
	s, st, ada, grace := adaAndGrace(t)
	befriend(t, s, ada, grace)
	for _, o := range []struct{ b, peer *browser }{{grace, ada}, {ada, grace}} {
		o.b.openNewChat(t, o.peer)
		evaluate[chromedp.Void](t, o.b, "mark the page", `window.parleyTestPage = true`)
	}

	evaluate[chromedp.Void](t, ada, "slow timers", slowTimers)
	text := "Hello Grace; stored, and brought by the history. " + unsureMark
	ada.do(t, "write to Grace", chromedp.SendKeys(chromedp.ID("composer"), text+kb.Enter))
	waitRetrying(t, ada, text)
	goAwayAndBack(t, ada, fmt.Sprintf("#dm/%d", grace.userID), "Grace")
	settledLive(t, st, ada, grace, text)
}

// settledLive checks that Ada's send of text, settled by what her page
// loaded, was sent again and reached Grace live: Grace has it with the
// seq Ada shows, each shows it once, sent, also after a message more, and
// it was stored once, in two tries.
func settledLive(t *testing.T, st *unsureStore, ada, grace *browser, text string) {
	t.Helper()
	seq := waitSent(t, ada, text)
	wantFromAda(t, grace, ada, text, seq)
	ada.send(t, "And on we go.")
	grace.waitMessage(t, "And on we go.")
	waitSent(t, ada, text)
	for _, b := range []*browser{ada, grace} {
		if n := shownTimes(t, b, text); n != 1 {
			t.Errorf("%s shows %q %d times; want once", b.name, text, n)
		}
	}
	if n, tries := st.storedAs(text), st.triesOf(text); n != 1 || tries != 2 {
		t.Errorf("%q stored %d times in %d tries; want once in 2", text, n, tries)
	}
	for _, b := range []*browser{ada, grace} {
		b.checkQuiet(t)
	}
}

// adaAndGrace starts the unsure server and two browsers signed in to it,
// Ada's and Grace's.
func adaAndGrace(t *testing.T) (*testServer, *unsureStore, *browser, *browser) {
	t.Helper()
	exe := chromiumPath(t)
	s, st := startUnsureServer(t)
	deadline := time.Now().Add(2 * time.Minute)
	ada, grace := startBrowser(t, exe, "ada", deadline), startBrowser(t, exe, "grace", deadline)
	ada.signIn(t, s, "ada@example.com", "Ada")
	grace.signIn(t, s, "grace@example.com", "Grace")
	return s, st, ada, grace
}

// befriend makes a and b friends: a asks, b accepts.
func befriend(t *testing.T, s *testServer, a, b *browser) {
	t.Helper()
	a.userID = userIDOf(t, s, nil, a)
	b.userID = userIDOf(t, s, nil, b)
	a.fetchJSON(t, "POST", "/api/contacts", map[string]int64{"user_id": b.userID}, nil)
	b.fetchJSON(t, "POST", fmt.Sprintf("/api/contacts/%d/accept", a.userID), nil, nil)
}

// waitNotSent waits until b shows its message text as not sent, once,
// with Retry and Discard, and the composer empty.
func waitNotSent(t *testing.T, b *browser, text string) {
	t.Helper()
	waitFor[bool](t, b, "the message is shown as not sent", viewState, `(text) => {
		const shown = [...document.querySelectorAll("#messages .msg")]
			.filter((m) => m.querySelector(".msg-body")?.textContent === text);
		return shown.length === 1 && shown[0].classList.contains("failed") &&
			shown[0].querySelector(".msg-time").textContent === "Not sent" &&
			!!shown[0].querySelector("button[data-action=retry]") &&
			!!shown[0].querySelector("button[data-action=discard]") &&
			document.getElementById("composer").value === "";
	}`, text)
}

// retrySent clicks Retry on b's message text, shown as not sent, waits
// until it is shown sent, once, and returns its seq.
func retrySent(t *testing.T, b *browser, text string) int64 {
	t.Helper()
	evaluate[chromedp.Void](t, b, "retry it", fmt.Sprintf(`[...document.querySelectorAll("#messages .msg.failed")]
		.find((m) => m.querySelector(".msg-body")?.textContent === %q)
		.querySelector("button[data-action=retry]").click()`, text))
	return waitSent(t, b, text)
}

// wantFromAda waits until Grace shows Ada's message text, and checks it
// is the one of seq, from Ada, not pending.
func wantFromAda(t *testing.T, grace, ada *browser, text string, seq int64) {
	t.Helper()
	if got := grace.waitMessage(t, text); got.Seq != seq || got.Pending || got.SenderID != ada.userID {
		t.Errorf("Grace sees %q as %+v; want seq %d from Ada (%d), not pending", text, got, seq, ada.userID)
	}
}

// waitSent waits until b shows its message text sent, once, and returns
// its seq.
func waitSent(t *testing.T, b *browser, text string) int64 {
	t.Helper()
	return waitFor[int64](t, b, "the message is sent", viewState, `(text) => {
		const shown = [...document.querySelectorAll("#messages .msg")]
			.filter((m) => m.querySelector(".msg-body")?.textContent === text);
		return shown.length === 1 && !shown[0].classList.contains("pending") &&
			!shown[0].classList.contains("failed") && Number(shown[0].dataset.seq);
	}`, text)
}

// shownTimes counts the messages b shows whose body is text.
func shownTimes(t *testing.T, b *browser, text string) int {
	t.Helper()
	return evaluate[int](t, b, "count the message", fmt.Sprintf(`[...document.querySelectorAll("#messages .msg")]
		.filter((m) => m.querySelector(".msg-body")?.textContent === %q).length`, text))
}

// openNewChat opens b's direct chat with peer, which holds no message yet,
// and waits until it shows so.
func (b *browser) openNewChat(t *testing.T, peer *browser) {
	t.Helper()
	evaluate[chromedp.Void](t, b, "open the chat with "+peer.name, fmt.Sprintf(`location.hash = "#dm/%d"`, peer.userID))
	waitFor[bool](t, b, "the chat with "+peer.name+" is open", viewState, `(name) =>
		document.getElementById("room-title").textContent === name &&
		document.getElementById("history-text").textContent.startsWith("This is the beginning")`, peer.name)
}
