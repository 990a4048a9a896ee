package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// pendingClientID waits until b shows its message text as pending, once,
// in the room titled room, and returns the send's client ID.
func pendingClientID(t *testing.T, b *browser, room, text string) string {
	t.Helper()
	return waitFor[string](t, b, "the message is shown as pending", viewState, `(room, text) => {
		if (document.getElementById("room-title").textContent !== room) return "";
		const shown = [...document.querySelectorAll("#messages .msg")]
			.filter((m) => m.querySelector(".msg-body")?.textContent === text);
		return shown.length === 1 && shown[0].classList.contains("pending") && shown[0].dataset.clientId;
	}`, room, text)
}

// TestBrowserUnsentSurvivesReload: the store cannot be reached while Ada
// sends, and she reloads the page while her message is still pending. The
// reloaded page shows it as pending again, with its client ID, and once
// the store is back it goes: Grace gets it once, live, stored once with
// the client ID of Ada's first try.
func TestBrowserUnsentSurvivesReload(t *testing.T) {
	_, st, ada, grace := adaAndGrace(t)
	ada.enterRoom(t, "lobby")
	grace.enterRoom(t, "lobby")
	ada.send(t, "Before the store goes down.")
	grace.waitMessage(t, "Before the store goes down.")

	st.setDown(true)
	text := "Sent while the store is down, then the page reloaded. " + downMark
	ada.do(t, "send", chromedp.SendKeys(chromedp.ID("composer"), text+kb.Enter))
	waitRetrying(t, ada, text)
	id := pendingClientID(t, ada, "lobby", text)

	ada.do(t, "reload the page", chromedp.Reload())
	if got := pendingClientID(t, ada, "lobby", text); got != id {
		t.Fatalf("after the reload, the message is pending with client ID %q; want %q", got, id)
	}
	evaluate[chromedp.Void](t, ada, "mark the page", `window.parleyTestPage = true`)
	upAndRetried(t, st, text)
	seq := waitSent(t, ada, text)
	wantFromAda(t, grace, ada, text, seq)

	var room struct {
		Room struct{ ID int64 } `json:"room"`
	}
	ada.fetchJSON(t, "POST", "/api/rooms", map[string]string{"name": "lobby"}, &room)
	wantStoredOnce(t, st, ada, grace, fmt.Sprintf("/api/rooms/%d/messages", room.Room.ID), text, id)
}

// TestBrowserUnsentStoredSurvivesReload: the store commits Ada's message
// but answers unavailable, and is down after it; she reloads the page
// while the message is pending. The reloaded page's history brings it, so
// it is shown sent, once; but nothing published it, so the page still
// sends it again with its client ID once the store is back, and Grace,
// who keeps the room open, gets it live. It is stored once.
func TestBrowserUnsentStoredSurvivesReload(t *testing.T) {
	_, st, ada, grace := adaAndGrace(t)
	ada.enterRoom(t, "lobby")
	grace.enterRoom(t, "lobby")
	ada.send(t, "Before the store falters.")
	grace.waitMessage(t, "Before the store falters.")

	text := "Stored, though the store did not say so, then the page reloaded. " + unsureMark + " " + downMark
	reloadedStoredLive(t, st, ada, grace, "send", text)
}

// TestBrowserUnsentStoredHistoryBeforeHello: as
// TestBrowserUnsentStoredSurvivesReload, but the reloaded page's history
// comes before its WebSocket's hello, as it may on a slow link: the page
// knows whose the message is before the hello says so, and shows it once,
// sent.
func TestBrowserUnsentStoredHistoryBeforeHello(t *testing.T) {
	_, st, ada, grace := adaAndGrace(t)
	ada.enterRoom(t, "lobby")
	grace.enterRoom(t, "lobby")
	ada.send(t, "Before the store falters.")
	grace.waitMessage(t, "Before the store falters.")

	// On the reloaded page, every frame reaches the app 1.5 s late.
	ada.onEveryPage(t, "hold the frames", `(() => {
		const add = WebSocket.prototype.addEventListener;
		WebSocket.prototype.addEventListener = function (type, fn, opts) {
			if (type !== "message") return add.call(this, type, fn, opts);
			return add.call(this, type, (e) => setTimeout(() => fn(e), 1500), opts);
		};
	})()`)
	text := "Stored, the store unsure, reloaded, the history first. " + unsureMark + " " + downMark
	reloadedStoredLive(t, st, ada, grace, "send", text)
}

// TestBrowserUnsentSignOut: Ada signs out while a message of hers is
// pending, the store down. The page keeps it for a reload until then, but
// not past the sign-out: the browser's storage no longer holds it, and
// when Grace signs in on the same browser, with the store back, it is
// neither tried again nor stored.
func TestBrowserUnsentSignOut(t *testing.T) {
	exe := chromiumPath(t)
	s, st := startUnsureServer(t)
	b := startBrowser(t, exe, "ada", time.Now().Add(2*time.Minute))
	b.signIn(t, s, "ada@example.com", "Ada")
	b.enterRoom(t, "lobby")

	st.setDown(true)
	text := "Sent while the store is down, then signed out. " + downMark
	b.do(t, "send", chromedp.SendKeys(chromedp.ID("composer"), text+kb.Enter))
	waitRetrying(t, b, text)
	const kept = `(text) => Object.keys(sessionStorage).concat(Object.keys(localStorage))
		.some((k) => (sessionStorage.getItem(k) || localStorage.getItem(k) || "").includes(JSON.stringify(text).slice(1, -1)))`
	waitFor[bool](t, b, "the browser keeps the message", viewState, kept, text)

	// The server ends the session's WebSocket as it signs out: the page
	// may learn of the end from the socket before the sign-out's answer.
	// It does here, always.
	evaluate[chromedp.Void](t, b, "hold the sign-out's answer", `(() => {
		const fetch = window.fetch;
		window.fetch = async (url, init) => {
			const res = await fetch(url, init);
			if (String(url).endsWith("/api/auth/signout")) {
				for (let i = 0; i < 100 && document.getElementById("app").dataset.view !== "signin"; i++) {
					await new Promise((resolve) => setTimeout(resolve, 50));
				}
			}
			return res;
		};
	})()`)
	b.click(t, "sign out", "#signout")
	waitFor[bool](t, b, "signed out", viewState, `() => document.getElementById("app").dataset.view === "signin" &&
		document.getElementById("auth-info").textContent === "You are signed out."`)
	if evaluate[bool](t, b, "look for the message", `(`+kept+`)(`+jsString(text)+`)`) {
		t.Errorf("after signing out, the browser's storage still holds %q", text)
	}
	tries := st.triesOf(text)

	st.setDown(false)
	b.signIn(t, s, "grace@example.com", "Grace")
	b.enterRoom(t, "lobby")
	b.send(t, "Grace here.")
	if n, got := st.storedAs(text), st.triesOf(text); n != 0 || got != tries {
		t.Errorf("after Grace signed in, %q was tried %d times more and stored %d times; want neither", text, got-tries, n)
	}
	if n := shownTimes(t, b, text); n != 0 {
		t.Errorf("Grace's page shows %q %d times; want none", text, n)
	}
	b.checkQuiet(t)
}

// TestBrowserUnsentFirstDirectSignOut: Ada signs out while her first
// message to Grace is pending, the store down. The page keeps it for a
// reload until then, but not past the sign-out: the browser's storage no
// longer holds it, and when Hedy signs in on the same browser, with the
// store back, it is neither shown nor tried again.
func TestBrowserUnsentFirstDirectSignOut(t *testing.T) {
	s, st, ada, grace := adaAndGrace(t)
	befriend(t, s, ada, grace)
	dm := fmt.Sprintf(`location.hash = "#dm/%d"`, grace.userID)
	evaluate[chromedp.Void](t, ada, "open the chat with Grace", dm)
	waitFor[bool](t, ada, "the chat with Grace is open", viewState, `() =>
		document.getElementById("room-title").textContent === "Grace" &&
		document.getElementById("history-text").textContent.startsWith("This is the beginning")`)

	st.setDown(true)
	text := "Hello Grace, while the store is down, then signed out. " + downMark
	ada.do(t, "write to Grace", chromedp.SendKeys(chromedp.ID("composer"), text+kb.Enter))
	waitRetrying(t, ada, text)
	const kept = `(text) => Object.keys(sessionStorage).concat(Object.keys(localStorage))
		.some((k) => (sessionStorage.getItem(k) || localStorage.getItem(k) || "").includes(JSON.stringify(text).slice(1, -1)))`
	waitFor[bool](t, ada, "the browser keeps the message", viewState, kept, text)

	ada.click(t, "sign out", "#signout")
	waitFor[bool](t, ada, "signed out", viewState, `() => document.getElementById("app").dataset.view === "signin" &&
		document.getElementById("auth-info").textContent === "You are signed out."`)
	if evaluate[bool](t, ada, "look for the message", `(`+kept+`)(`+jsString(text)+`)`) {
		t.Errorf("after signing out, the browser's storage still holds %q", text)
	}
	tries := st.triesOf(text)

	st.setDown(false)
	b := ada
	b.signIn(t, s, "hedy@example.com", "Hedy")
	b.enterRoom(t, "lobby")
	b.send(t, "Hedy here.")
	if n, got := st.storedAs(text), st.triesOf(text); n != 0 || got != tries {
		t.Errorf("after Hedy signed in, %q was tried %d times more and stored %d times; want neither", text, got-tries, n)
	}
	if n := shownTimes(t, b, text); n != 0 {
		t.Errorf("Hedy's page shows %q %d times; want none", text, n)
	}
	b.checkQuiet(t)
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	return fmt.Sprintf("%q", s)
}

// TestBrowserUnsentNoStorage: where the browser refuses the tab's storage
// (disabled, or full, as in some private modes), the page cannot keep its
// sends for a reload, but sends them all the same, without errors.
func TestBrowserUnsentNoStorage(t *testing.T) {
	for _, tc := range []struct{ name, script string }{
		{"unavailable", `Object.defineProperty(window, "sessionStorage", {get() {
			throw new DOMException("The operation is insecure.", "SecurityError");
		}})`},
		{"full", `Storage.prototype.setItem = function () {
			throw new DOMException("The quota has been exceeded.", "QuotaExceededError");
		}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ada := startAdaWith(t, "refuse the storage", tc.script)
			ada.enterRoom(t, "lobby")
			ada.send(t, "Sent without storage.")
			ada.checkQuiet(t)
		})
	}
}

// TestBrowserUnsentFirstDirectSurvivesReload: the store cannot take Ada's
// first message to her friend Grace, which goes over REST; the first try
// made their conversation all the same. Ada reloads the page while the
// message is pending. The reloaded chat with Grace shows it as pending
// again, with its client ID, and once the store is back it goes: Grace,
// who has her chat with Ada open, gets it once, live, stored once with the
// client ID of Ada's first try.
func TestBrowserUnsentFirstDirectSurvivesReload(t *testing.T) {
	s, st, ada, grace := adaAndGrace(t)
	befriend(t, s, ada, grace)
	ada.openNewChat(t, grace)

	st.setDown(true)
	text := "Hello Grace, while the store is down, then the page reloaded. " + downMark
	ada.do(t, "write to Grace", chromedp.SendKeys(chromedp.ID("composer"), text+kb.Enter))
	waitRetrying(t, ada, text)
	id := pendingClientID(t, ada, "Grace", text)

	ada.do(t, "reload the page", chromedp.Reload())
	if got := pendingClientID(t, ada, "Grace", text); got != id {
		t.Fatalf("after the reload, the message is pending with client ID %q; want %q", got, id)
	}
	evaluate[chromedp.Void](t, ada, "mark the page", `window.parleyTestPage = true`)
	grace.openNewChat(t, ada)
	evaluate[chromedp.Void](t, grace, "mark the page", `window.parleyTestPage = true`)
	upAndRetried(t, st, text)
	seq := waitSent(t, ada, text)
	wantFromAda(t, grace, ada, text, seq)

	var conv struct {
		Conversation struct{ ID int64 } `json:"conversation"`
	}
	ada.fetchJSON(t, "GET", fmt.Sprintf("/api/direct/%d", grace.userID), nil, &conv)
	wantStoredOnce(t, st, ada, grace, fmt.Sprintf("/api/conversations/%d/messages", conv.Conversation.ID), text, id)
}

// TestBrowserUnsentFirstDirectStoredSurvivesReload: Ada's first message
// to Grace, over REST, is committed with their conversation, but the store
// answers unavailable, and is down after it; Ada reloads the page while
// the message is pending. The reloaded chat's history brings it, so it is
// shown sent, once; but nothing published it, so the page still posts it
// again with its client ID once the store is back, and Grace, who has her
// chat with Ada open, gets it live. It is stored once.
func TestBrowserUnsentFirstDirectStoredSurvivesReload(t *testing.T) {
	s, st, ada, grace := adaAndGrace(t)
	befriend(t, s, ada, grace)
	grace.openNewChat(t, ada)
	ada.openNewChat(t, grace)
	evaluate[chromedp.Void](t, grace, "mark the page", `window.parleyTestPage = true`)

	text := "Hello Grace; stored, though the store did not say so, then the page reloaded. " + unsureMark + " " + downMark
	reloadedStoredLive(t, st, ada, grace, "write to Grace", text)
}

// TestBrowserUnsentNotSentSurvivesReload: the store cannot be reached
// while Ada sends, and her page gives up: the message is not sent, with
// Retry and Discard. The store comes back and she reloads the page. The
// message is still not sent, with Retry and Discard, and is not tried on
// its own (she may have written it again meanwhile); Retry sends it, with
// its client ID: Grace gets it once, stored once.
func TestBrowserUnsentNotSentSurvivesReload(t *testing.T) {
	_, st, ada, grace := adaAndGrace(t)
	ada.enterRoom(t, "lobby")
	grace.enterRoom(t, "lobby")

	st.setDown(true)
	evaluate[chromedp.Void](t, ada, "hurry timers", hurryTimers)
	text := "Not sent, then the page reloaded. " + downMark
	ada.do(t, "send", chromedp.SendKeys(chromedp.ID("composer"), text+kb.Enter))
	waitNotSent(t, ada, text)
	id := evaluate[string](t, ada, "read its client ID", fmt.Sprintf(`[...document.querySelectorAll("#messages .msg.failed")]
		.find((m) => m.querySelector(".msg-body")?.textContent === %q).dataset.clientId`, text))
	tries := st.triesOf(text)

	st.setDown(false)
	ada.do(t, "reload the page", chromedp.Reload())
	waitNotSent(t, ada, text)
	if got := evaluate[string](t, ada, "read its client ID", fmt.Sprintf(`[...document.querySelectorAll("#messages .msg.failed")]
		.find((m) => m.querySelector(".msg-body")?.textContent === %q).dataset.clientId`, text)); got != id {
		t.Errorf("after the reload, the message is not sent with client ID %q; want %q", got, id)
	}
	evaluate[chromedp.Void](t, ada, "mark the page", `window.parleyTestPage = true`)
	ada.do(t, "send another", chromedp.SendKeys(chromedp.ID("composer"), "Meanwhile, something else."+kb.Enter))
	waitSent(t, ada, "Meanwhile, something else.")
	grace.waitMessage(t, "Meanwhile, something else.")
	if n, got := st.storedAs(text), st.triesOf(text); n != 0 || got != tries {
		t.Errorf("after the reload, %q was tried %d times more and stored %d times; want neither, until Retry", text, got-tries, n)
	}
	waitNotSent(t, ada, text)

	seq := retrySent(t, ada, text)
	wantFromAda(t, grace, ada, text, seq)
	if n := st.storedAs(text); n != 1 {
		t.Errorf("%q stored %d times; want once", text, n)
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

// TestBrowserUnsentFirstDirectNotSentSurvivesReload: the store cannot take
// Ada's first message to Grace, and her page gives up: not sent, with
// Retry and Discard. The store comes back and she reloads the page. The
// chat with Grace still shows the message as not sent, and the page does
// not post it on its own; Retry does, with its client ID: Grace gets it
// once, stored once.
func TestBrowserUnsentFirstDirectNotSentSurvivesReload(t *testing.T) {
	s, st, ada, grace := adaAndGrace(t)
	befriend(t, s, ada, grace)
	ada.openNewChat(t, grace)

	st.setDown(true)
	evaluate[chromedp.Void](t, ada, "hurry timers", hurryTimers)
	text := "Hello Grace, not sent, then the page reloaded. " + downMark
	ada.do(t, "write to Grace", chromedp.SendKeys(chromedp.ID("composer"), text+kb.Enter))
	waitNotSent(t, ada, text)
	tries := st.triesOf(text)

	st.setDown(false)
	ada.do(t, "reload the page", chromedp.Reload())
	waitNotSent(t, ada, text)
	evaluate[chromedp.Void](t, ada, "mark the page", `window.parleyTestPage = true`)
	ada.do(t, "send another", chromedp.SendKeys(chromedp.ID("composer"), "Meanwhile, something else."+kb.Enter))
	waitSent(t, ada, "Meanwhile, something else.")
	if n, got := st.storedAs(text), st.triesOf(text); n != 0 || got != tries {
		t.Errorf("after the reload, %q was tried %d times more and stored %d times; want neither, until Retry", text, got-tries, n)
	}
	waitNotSent(t, ada, text)

	seq := retrySent(t, ada, text)
	evaluate[chromedp.Void](t, grace, "mark the page", `window.parleyTestPage = true`)
	evaluate[chromedp.Void](t, grace, "open the chat with Ada", fmt.Sprintf(`location.hash = "#dm/%d"`, ada.userID))
	wantFromAda(t, grace, ada, text, seq)
	if n := st.storedAs(text); n != 1 {
		t.Errorf("%q stored %d times; want once", text, n)
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

// upAndRetried brings st back and waits until the page has tried text
// again: after a reload its retries are spaced as the page's backoff has
// it (up to 30 s), longer than one step of a test may wait on a loaded
// machine.
func upAndRetried(t *testing.T, st *unsureStore, text string) {
	t.Helper()
	tries := st.triesOf(text)
	st.setDown(false)
	deadline := time.Now().Add(45 * time.Second)
	for st.triesOf(text) == tries {
		if time.Now().After(deadline) {
			t.Fatalf("the page did not try %q again within 45s of the store's return (%d tries)", text, tries)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantStoredOnce checks that Ada's text is in the history at path once,
// with client ID id, and stored once; that after one more message of hers
// both pages show it once; and that neither page logged an error.
func wantStoredOnce(t *testing.T, st *unsureStore, ada, grace *browser, path, text, id string) {
	t.Helper()
	var page struct {
		Messages []struct {
			Body     string `json:"body"`
			ClientID string `json:"client_id"`
		} `json:"messages"`
	}
	ada.fetchJSON(t, "GET", path, nil, &page)
	var ids []string
	for _, m := range page.Messages {
		if m.Body == text {
			ids = append(ids, m.ClientID)
		}
	}
	if len(ids) != 1 || ids[0] != id {
		t.Errorf("%q is in the history with client IDs %q; want once, with %q", text, ids, id)
	}
	shownOnceAfterMore(t, st, ada, grace, text)
}

// reloadedStoredLive has Ada send text (the action's name: what), stored
// but answered as failed, reload her page while it is pending, and
// checks that the reloaded page shows it sent, sends it again once the
// store is back, and that Grace gets it live (shownOnceAfterMore).
func reloadedStoredLive(t *testing.T, st *unsureStore, ada, grace *browser, what, text string) {
	t.Helper()
	ada.do(t, what, chromedp.SendKeys(chromedp.ID("composer"), text+kb.Enter))
	waitRetrying(t, ada, text)
	ada.do(t, "reload the page", chromedp.Reload())
	seq := waitSent(t, ada, text)
	evaluate[chromedp.Void](t, ada, "mark the page", `window.parleyTestPage = true`)
	upAndRetried(t, st, text)
	wantFromAda(t, grace, ada, text, seq)
	shownOnceAfterMore(t, st, ada, grace, text)
}
