package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// holdHistory makes the page's requests for history pages wait until
// window.parleyRelease() is called.
const holdHistory = `(() => {
	const held = [];
	const fetch = window.fetch;
	window.fetch = (url, init) => String(url).includes("/messages?")
		? new Promise((resolve) => held.push(() => resolve(fetch(url, init))))
		: fetch(url, init);
	window.parleyHeld = () => held.length;
	window.parleyRelease = () => held.splice(0).forEach((go) => go());
})()`

// TestBrowserSendWhileLoading: Ada sends in a room whose first page of
// history is still loading, and the page reads it only once the message
// is stored. The message is shown once, as sent: the page of history
// holds it, and the "Sending…" element made for it goes.
func TestBrowserSendWhileLoading(t *testing.T) {
	s, ada := startAda(t)
	waitFor[bool](t, ada, "connected", viewState, connectedBy, "ws")

	grace := signIn(t, s, "grace@example.com", "Grace")
	var room struct {
		Room struct{ ID int64 } `json:"room"`
	}
	postJSON(t, grace, "POST", s.URL+"/api/rooms", map[string]string{"name": "lobby"}, http.StatusOK, &room)
	ws := dialWS(t, s, grace)
	readUntil(t, ws, "hello")
	ws.WriteJSON(map[string]any{"type": "open", "room_id": room.Room.ID})
	readUntil(t, ws, "opened")

	evaluate[chromedp.Void](t, ada, "hold history", holdHistory)
	ada.do(t, "enter lobby",
		chromedp.SendKeys(chromedp.ID("room-input"), "lobby"),
		chromedp.Click(chromedp.ID("room-enter")),
	)
	waitFor[bool](t, ada, "lobby's history is asked for", viewState, `() =>
		document.getElementById("room-title").textContent === "lobby" && window.parleyHeld() === 1`)
	const text = "Sent before the history came."
	ada.do(t, "send", chromedp.SendKeys(chromedp.ID("composer"), text+kb.Enter))
	readUntil(t, ws, "message") // stored: the history will hold it
	evaluate[chromedp.Void](t, ada, "release history", `window.parleyRelease()`)

	waitFor[bool](t, ada, "the message is shown once, sent", viewState, `(text) => {
		const shown = [...document.querySelectorAll("#messages .msg")]
			.filter((m) => m.querySelector(".msg-body")?.textContent === text);
		return document.getElementById("history-text").textContent !== "Loading messages…" &&
			shown.length === 1 && !shown[0].classList.contains("pending") && !!shown[0].dataset.seq;
	}`, text)
	ada.checkQuiet(t)
}

// TestBrowserSendWhenRemoved: Ada writes in a group while her link is
// down, and is removed from it meanwhile. When she is back the group is
// ended, and her message, which was not and will not be sent, says so
// instead of "Sending…".
func TestBrowserSendWhenRemoved(t *testing.T) {
	s, ada := startAdaBy(t, "?transport=poll")
	waitFor[bool](t, ada, "connected", viewState, connectedBy, "poll")
	adaID := userIDOf(t, s, nil, ada)

	grace, groupID, members := graceAddsToCrew(t, s, adaID)

	evaluate[chromedp.Void](t, ada, "open Crew", fmt.Sprintf(`location.hash = "#conv/%d"`, groupID))
	waitFor[bool](t, ada, "Crew is open", viewState, `() =>
		document.getElementById("room-title").textContent === "Crew" &&
		document.getElementById("history-text").textContent !== "Loading messages…" &&
		document.getElementById("conn-status").dataset.state === "connected"`)

	evaluate[chromedp.Void](t, ada, "count answers to sends", countSendAnswers)
	ada.pollOffline(t, s, true)
	const text = "Written while cut off."
	ada.do(t, "send while cut off", chromedp.SendKeys(chromedp.ID("composer"), text+kb.Enter))
	ada.waitDisconnected(t)
	postJSON(t, grace, "DELETE", fmt.Sprintf("%s/%d", members, adaID), nil, http.StatusNoContent, nil)
	ada.pollOffline(t, s, false)

	waitFor[bool](t, ada, "the group is ended and the message not pending", viewState, `(text) => {
		const m = [...document.querySelectorAll("#messages .msg")]
			.filter((m) => m.querySelector(".msg-body")?.textContent === text);
		return !document.getElementById("room-ended").hidden && m.length === 1 &&
			m[0].querySelector(".msg-time").textContent === "Not sent";
	}`, text)
	// The resend went out before the page knew, and was refused: the
	// banner says why the group cannot be used; the refusal is no news.
	waitFor[bool](t, ada, "the resend is answered", viewState, `() => window.parleySendAnswers > 0`)
	if e := ada.composerError(t); e != "" {
		t.Errorf("under the ended group's banner the page says %q; want nothing", e)
	}
}

// countSendAnswers counts in window.parleySendAnswers the answers to
// the long-poll POSTs of send frames, once the page has handled them.
const countSendAnswers = `(() => {
	window.parleySendAnswers = 0;
	const fetch = window.fetch;
	window.fetch = async (url, init) => {
		const res = await fetch(url, init);
		if (String(url).includes("/api/poll") && String(init?.body).includes('"type":"send"')) {
			const json = res.json.bind(res);
			// The page handles the frames in the microtasks after json();
			// a timer runs after them.
			res.json = async () => {
				const v = await json();
				setTimeout(() => window.parleySendAnswers++);
				return v;
			};
		}
		return res;
	};
})()`

// TestBrowserSendFailsElsewhere: Ada writes in #lobby while her link is
// down and goes on to #other; meanwhile she leaves #lobby on another
// device. When she is back the resend is refused: the page says where the
// message did not go, and #lobby gives her text back, to send again.
func TestBrowserSendFailsElsewhere(t *testing.T) {
	s, ada := startAdaBy(t, "?transport=poll")
	waitFor[bool](t, ada, "connected", viewState, connectedBy, "poll")
	ada.enterRoom(t, "lobby")

	ada.pollOffline(t, s, true)
	const text = "Written in the lobby while cut off."
	ada.do(t, "send while cut off", chromedp.SendKeys(chromedp.ID("composer"), text+kb.Enter))
	ada.waitDisconnected(t)
	evaluate[chromedp.Void](t, ada, "go to #other", `location.hash = "#room/other"`)
	waitFor[bool](t, ada, "#other is shown", viewState, `() =>
		document.getElementById("room-title").textContent === "other" &&
		document.getElementById("history-text").textContent !== "Loading messages…"`)

	elsewhere := signIn(t, s, "ada@example.com", "Ada")
	var room struct {
		Room struct{ ID int64 } `json:"room"`
	}
	postJSON(t, elsewhere, "POST", s.URL+"/api/rooms", map[string]string{"name": "lobby"}, http.StatusOK, &room)
	postJSON(t, elsewhere, "DELETE", fmt.Sprintf("%s/api/rooms/%d/members/me", s.URL, room.Room.ID), nil, http.StatusNoContent, nil)
	ada.pollOffline(t, s, false)

	said := waitFor[string](t, ada, "the refusal is shown", viewState, `() => {
		const e = document.getElementById("composer-error");
		return !e.hidden && e.textContent;
	}`)
	if !strings.Contains(said, "#lobby") {
		t.Errorf("in #other the page says %q; want it to name #lobby", said)
	}
	evaluate[chromedp.Void](t, ada, "back to #lobby", `location.hash = "#room/lobby"`)
	got := waitFor[[]string](t, ada, "#lobby is shown", viewState, `() =>
		document.getElementById("room-title").textContent === "lobby" &&
		document.getElementById("history-text").textContent !== "Loading messages…" &&
		[document.getElementById("composer").value, document.getElementById("composer-error").textContent]`)
	if got[0] != text || got[1] == "" {
		t.Errorf("back in #lobby the composer holds %q, the error line %q; want %q and why it was not sent", got[0], got[1], text)
	}
	ada.checkQuiet(t)
}

// TestBrowserFirstDirectFailsElsewhere: Ada writes the first message to
// her friend Grace (sent over REST, which makes the conversation) while
// the server cannot be reached, and moves on to a room. A request with no
// answer may have stored the message: the page keeps trying with its
// client ID while she is away, and once the server is reached again the
// chat with Grace shows the message sent, once, and nothing to send again.
func TestBrowserFirstDirectFailsElsewhere(t *testing.T) {
	s, ada := startAda(t)
	waitFor[bool](t, ada, "connected", viewState, connectedBy, "ws")
	ada.userID = userIDOf(t, s, nil, ada)
	grace := signIn(t, s, "grace@example.com", "Grace")
	graceID := userIDOf(t, s, grace, nil)
	postJSON(t, grace, "POST", s.URL+"/api/contacts", map[string]int64{"user_id": ada.userID}, http.StatusOK, nil)
	ada.fetchJSON(t, "POST", fmt.Sprintf("/api/contacts/%d/accept", graceID), nil, nil)

	dm := fmt.Sprintf("#dm/%d", graceID)
	evaluate[chromedp.Void](t, ada, "open the chat with Grace", `location.hash = "`+dm+`"`)
	waitFor[bool](t, ada, "the chat with Grace is open", viewState, `() =>
		document.getElementById("room-title").textContent === "Grace" &&
		document.getElementById("history-text").textContent.startsWith("This is the beginning")`)
	evaluate[chromedp.Void](t, ada, "count failed sends", `(() => {
		window.parleyDirectFailures = 0;
		const fetch = window.fetch;
		window.fetch = (url, init) => {
			const p = fetch(url, init);
			if (/\/api\/direct\/\d+\/messages$/.test(String(url))) {
				// The page handles the failure in the microtasks after it;
				// a timer runs after them.
				p.catch(() => setTimeout(() => window.parleyDirectFailures++));
			}
			return p;
		};
	})()`)
	ada.cutOff(t, s.URL+"/api/direct/*", true)
	const text = "Hello Grace, from a train."
	ada.do(t, "write to Grace", chromedp.SendKeys(chromedp.ID("composer"), text+kb.Enter))
	waitFor[bool](t, ada, "the send failed once", viewState, `() => window.parleyDirectFailures > 0`)
	evaluate[chromedp.Void](t, ada, "go to #lobby", `location.hash = "#room/lobby"`)
	waitFor[bool](t, ada, "the send is tried again in #lobby", viewState, `() =>
		document.getElementById("room-title").textContent === "lobby" && window.parleyDirectFailures > 1`)
	if said := ada.composerError(t); said != "" {
		t.Errorf("in #lobby, while the page still tries, it says %q; want nothing", said)
	}

	ada.cutOff(t, "", false)
	evaluate[chromedp.Void](t, ada, "back to Grace", `location.hash = "`+dm+`"`)
	waitFor[bool](t, ada, "the message is sent, once", viewState, `(text) => {
		const shown = [...document.querySelectorAll("#messages .msg")]
			.filter((m) => m.querySelector(".msg-body")?.textContent === text);
		return document.getElementById("room-title").textContent === "Grace" &&
			shown.length === 1 && !shown[0].classList.contains("pending") && Number(shown[0].dataset.seq) > 0 &&
			document.getElementById("composer").value === "";
	}`, text)
}

// TestBrowserDraftStays: what Ada types but does not send stays with its
// conversation: #other opens with an empty composer, not the words meant
// for #lobby (an Enter would send them there), and #lobby gives them back.
func TestBrowserDraftStays(t *testing.T) {
	_, ada := startAda(t)
	ada.enterRoom(t, "lobby")
	const draft = "Only for the lobby, half writ"
	ada.do(t, "type without sending", chromedp.SendKeys(chromedp.ID("composer"), draft))
	ada.enterRoom(t, "other")
	if got := evaluate[string](t, ada, "read the composer", `document.getElementById("composer").value`); got != "" {
		t.Errorf("#other opens with %q in the composer; want it empty", got)
	}
	evaluate[chromedp.Void](t, ada, "back to #lobby", `location.hash = "#room/lobby"`)
	waitFor[bool](t, ada, "#lobby has its draft back", viewState, `(draft) =>
		document.getElementById("room-title").textContent === "lobby" &&
		document.getElementById("composer").value === draft`, draft)
}

// waitDisconnected waits until b's page shows its connection lost.
func (b *browser) waitDisconnected(t *testing.T) {
	t.Helper()
	waitFor[bool](t, b, b.name+" is disconnected", viewState, `() => document.getElementById("conn-status").dataset.state === "disconnected"`)
}

// composerError returns the error line above b's composer ("" if hidden).
func (b *browser) composerError(t *testing.T) string {
	t.Helper()
	return evaluate[string](t, b, "read the error line", `(() => {
		const e = document.getElementById("composer-error");
		return e.hidden ? "" : e.textContent;
	})()`)
}

// TestBrowserRemovedStaysGone: the page re-reads its conversation list
// after events (here a friend request), and the answer may be on its way
// when Ada is removed from a group: the answer read before the removal
// must not bring the group back into the list.
func TestBrowserRemovedStaysGone(t *testing.T) {
	s, ada := startAda(t)
	waitFor[bool](t, ada, "connected", viewState, connectedBy, "ws")
	adaID := userIDOf(t, s, nil, ada)
	grace, groupID, members := graceAddsToCrew(t, s, adaID)
	crewShown := fmt.Sprintf(`!!document.querySelector('#conversations li[data-conv-id="%d"]')`, groupID)
	waitFor[bool](t, ada, "Crew is listed", viewState, `() => `+crewShown)

	// The answers to the page's reads of the list are held (the server
	// answers at once, the page gets the answer on release); the reads
	// after the release are counted.
	evaluate[chromedp.Void](t, ada, "hold the list", `(() => {
		const held = [];
		let holding = true;
		const fetch = window.fetch;
		window.parleyListReads = 0;
		window.fetch = (url, init) => {
			if (String(url) !== "/api/conversations") return fetch(url, init);
			const answer = fetch(url, init);
			if (!holding) {
				window.parleyListReads++;
				return answer;
			}
			return new Promise((resolve) => {
				const hold = () => held.push(() => resolve(answer));
				answer.then(hold, hold);
			});
		};
		window.parleyHeld = () => held.length;
		window.parleyRelease = () => {
			holding = false;
			held.splice(0).forEach((go) => go());
		};
	})()`)
	postJSON(t, grace, "POST", s.URL+"/api/contacts", map[string]int64{"user_id": adaID}, http.StatusOK, nil)
	waitFor[bool](t, ada, "the list is answered", viewState, `() => window.parleyHeld() > 0`)
	postJSON(t, grace, "DELETE", fmt.Sprintf("%s/%d", members, adaID), nil, http.StatusNoContent, nil)
	waitFor[bool](t, ada, "Crew is gone", viewState, `() => !`+crewShown)

	evaluate[chromedp.Void](t, ada, "release the list", `window.parleyRelease()`)
	// Either the page shows the stale answer, or it reads the list again.
	waitFor[bool](t, ada, "the stale answer is handled", viewState, `() => `+crewShown+` || window.parleyListReads > 0`)
	if evaluate[bool](t, ada, "look for Crew", crewShown) {
		t.Errorf("Crew is listed again after Ada was removed from it")
	}
}

// graceAddsToCrew signs Grace in, has her make the group Crew and add
// userID to it, and returns her client, the group's id and the URL of its
// members.
func graceAddsToCrew(t *testing.T, s *testServer, userID int64) (grace *http.Client, groupID int64, members string) {
	t.Helper()
	grace = signIn(t, s, "grace@example.com", "Grace")
	var group struct {
		Group struct{ ID int64 } `json:"group"`
	}
	postJSON(t, grace, "POST", s.URL+"/api/groups", map[string]string{"name": "Crew"}, http.StatusCreated, &group)
	members = fmt.Sprintf("%s/api/groups/%d/members", s.URL, group.Group.ID)
	postJSON(t, grace, "POST", members, map[string]int64{"user_id": userID}, http.StatusOK, nil)
	return grace, group.Group.ID, members
}

// refuseOnce is run in a tab before the app. The first send frame whose
// body is window.parleyWatch does not go: the page gets the refusal the
// server gives past its rate, rate_limited with retry_after_ms 7777. The
// others go, counted in window.parleySent. The page's 7777 ms timers wait
// for window.parleyFireRetries() (window.parleyRetries() counts them).
// While window.parleyHoldAcks is set, frames with an ack are held until
// window.parleyRelease(); while window.parleyHoldRemoved is, so are those
// with a removed (counted in window.parleyHeldRemoved).
const refuseOnce = `(() => {
	const setTimeout = window.setTimeout.bind(window);
	const clearTimeout = window.clearTimeout.bind(window);
	const retries = new Map();
	let next = 1e9;
	window.setTimeout = (fn, ms, ...args) => {
		if (ms !== 7777) return setTimeout(fn, ms, ...args);
		const id = next++;
		retries.set(id, () => fn(...args));
		return id;
	};
	window.clearTimeout = (id) => retries.delete(id) || clearTimeout(id);
	window.parleyRetries = () => retries.size;
	window.parleyFireRetries = () => {
		for (const [id, fn] of [...retries]) {
			retries.delete(id);
			fn();
		}
	};

	window.parleyWatch = "";
	window.parleyRefused = 0;
	window.parleySent = 0;
	const send = WebSocket.prototype.send;
	WebSocket.prototype.send = function (data) {
		let f = null;
		try { f = JSON.parse(data); } catch {}
		if (f && f.type === "send" && window.parleyWatch && f.body === window.parleyWatch) {
			if (window.parleyRefused === 0) {
				window.parleyRefused++;
				const refusal = {type: "error", ref: f.client_id, room_id: f.room_id, code: "rate_limited",
					message: "too many requests; slow down", retry_after_ms: 7777};
				setTimeout(() => this.dispatchEvent(new MessageEvent("message", {data: JSON.stringify(refusal)})));
				return;
			}
			window.parleySent++;
		}
		return send.call(this, data);
	};

	window.parleyHoldAcks = false;
	window.parleyHoldRemoved = false;
	window.parleyHeldRemoved = 0;
	const held = [];
	window.parleyRelease = () => {
		window.parleyHoldAcks = false;
		window.parleyHoldRemoved = false;
		for (const f of held.splice(0)) f();
	};
	const add = WebSocket.prototype.addEventListener;
	WebSocket.prototype.addEventListener = function (type, fn, opts) {
		if (type !== "message") return add.call(this, type, fn, opts);
		window.parleyWS = this;
		return add.call(this, type, function (e) {
			const data = String(e.data);
			const removed = window.parleyHoldRemoved && data.includes('"type":"removed"');
			if (removed) window.parleyHeldRemoved++;
			if (removed || (window.parleyHoldAcks && data.includes('"type":"ack"'))) {
				held.push(() => fn.call(this, e));
				return;
			}
			return fn.call(this, e);
		}, opts);
	};
})()`

// TestBrowserRateLimitedRetry: a send refused rate_limited is sent again
// after the retry_after_ms the refusal gives, by a timer of the page. Once
// the socket has reconnected, which sends it again at once, or the room
// was left, which forgets it (and entered again, which sends it again
// at once), that timer must not send it once more.
func TestBrowserRateLimitedRetry(t *testing.T) {
	_, ada := startAdaWith(t, "install the refusal", refuseOnce)
	ada.enterRoom(t, "lobby")
	id := evaluate[int64](t, ada, "the room's id", `Number(document.querySelector('#rooms-joined li[data-room-name="lobby"]').dataset.roomId)`)
	const state = `{view: ` + viewState + `, refused: window.parleyRefused, sent: window.parleySent,
		retries: window.parleyRetries(), heldRemoved: window.parleyHeldRemoved}`

	// refused sends text, refused once, and waits for the retry's timer.
	refused := func(text string) {
		t.Helper()
		evaluate[chromedp.Void](t, ada, "watch "+text, fmt.Sprintf(
			`window.parleyWatch = %q; window.parleyRefused = 0; window.parleySent = 0; window.parleyHoldAcks = true`, text))
		ada.do(t, "send "+text, chromedp.SendKeys(chromedp.ID("composer"), text+kb.Enter))
		waitFor[bool](t, ada, "the send is refused and its retry due", state, `() => window.parleyRefused === 1 && window.parleyRetries() === 1`)
	}
	// fire runs the retry timers and returns how often text went since
	// it was refused.
	fire := func(text string) int {
		t.Helper()
		evaluate[chromedp.Void](t, ada, "the retry's time comes", `window.parleyFireRetries()`)
		return evaluate[int](t, ada, "count the sends", `window.parleySent`)
	}
	acked := func(text string) {
		t.Helper()
		evaluate[chromedp.Void](t, ada, "let the acks through", `window.parleyRelease()`)
		waitFor[bool](t, ada, fmt.Sprintf("%q is sent, once", text), state, `(text) => {
			const shown = [...document.querySelectorAll("#messages .msg")]
				.filter((m) => m.querySelector(".msg-body")?.textContent === text);
			return shown.length === 1 && !shown[0].classList.contains("pending") && !!shown[0].dataset.seq;
		}`, text)
	}

	// The socket reconnects before the retry's time: the new one sends it.
	const first = "Sent again by the new socket."
	refused(first)
	evaluate[chromedp.Void](t, ada, "cut the socket", `window.parleyWS.close()`)
	waitFor[bool](t, ada, "the new socket sends it again", state, `() =>
		window.parleySent === 1 && document.getElementById("conn-status").dataset.state === "connected"`)
	if n := fire(first); n != 1 {
		t.Errorf("%q went %d times after the socket reconnected and the retry's time came; want 1 (the new socket's)", first, n)
	}
	acked(first)

	// Ada leaves #lobby on her phone and enters it again; the page learns
	// from the late removed that she is a member still, and sends again.
	const second = "Sent again in the room entered again."
	evaluate[chromedp.Void](t, ada, "hold the removed", `window.parleyHoldRemoved = true`)
	refused(second)
	ada.fetchJSON(t, "DELETE", fmt.Sprintf("/api/rooms/%d/members/me", id), nil, nil)
	ada.fetchJSON(t, "POST", "/api/rooms", map[string]string{"name": "lobby"}, nil)
	waitFor[bool](t, ada, "the removed of the leave has come", state, `() => window.parleyHeldRemoved > 0`)
	evaluate[chromedp.Void](t, ada, "let the removed through", `(() => {
		window.parleyHoldRemoved = false;
		window.parleyRelease();
		window.parleyHoldAcks = true;
	})()`)
	waitFor[bool](t, ada, "the page sends it again", state, `() => window.parleySent === 1`)
	if n := fire(second); n != 1 {
		t.Errorf("%q went %d times after the room was left and entered again and the retry's time came; want 1", second, n)
	}
	acked(second)
	ada.checkQuiet(t)
}

// TestBrowserFirstDirectStopsAtSignOut: Ada's first message to her friend
// Grace (sent over REST) is refused rate_limited, and she signs out before
// the page would send it again. The page's timer must not send it then:
// not with no session, nor with the session of whoever signs in next.
func TestBrowserFirstDirectStopsAtSignOut(t *testing.T) {
	s, ada := startAda(t)
	waitFor[bool](t, ada, "connected", viewState, connectedBy, "ws")
	ada.userID = userIDOf(t, s, nil, ada)
	grace := signIn(t, s, "grace@example.com", "Grace")
	graceID := userIDOf(t, s, grace, nil)
	postJSON(t, grace, "POST", s.URL+"/api/contacts", map[string]int64{"user_id": ada.userID}, http.StatusOK, nil)
	ada.fetchJSON(t, "POST", fmt.Sprintf("/api/contacts/%d/accept", graceID), nil, nil)

	evaluate[chromedp.Void](t, ada, "open the chat with Grace", fmt.Sprintf(`location.hash = "#dm/%d"`, graceID))
	waitFor[bool](t, ada, "the chat with Grace is open", viewState, `() =>
		document.getElementById("room-title").textContent === "Grace" &&
		document.getElementById("history-text").textContent.startsWith("This is the beginning")`)
	// The first send is refused with retry_after_ms 7777; the page's
	// 7777 ms timers wait for window.parleyFireRetries().
	evaluate[chromedp.Void](t, ada, "refuse the first send", `(() => {
		const setTimeout = window.setTimeout.bind(window);
		const retries = [];
		window.setTimeout = (fn, ms, ...args) => ms === 7777 ? retries.push(() => fn(...args)) + 1e9 : setTimeout(fn, ms, ...args);
		window.parleyRetries = () => retries.length;
		window.parleyFireRetries = () => retries.splice(0).forEach((fn) => fn());
		window.parleyDirectPosts = 0;
		const fetch = window.fetch;
		window.fetch = (url, init) => {
			if (!/\/api\/direct\/\d+\/messages$/.test(String(url))) return fetch(url, init);
			if (window.parleyDirectPosts++ > 0) return fetch(url, init);
			return Promise.resolve(new Response(
				'{"error":{"code":"rate_limited","message":"too many requests; slow down","retry_after_ms":7777}}',
				{status: 429, headers: {"Content-Type": "application/json"}}));
		};
	})()`)
	ada.do(t, "write to Grace", chromedp.SendKeys(chromedp.ID("composer"), "Hello Grace."+kb.Enter))
	const state = `{view: ` + viewState + `, posts: window.parleyDirectPosts, retries: window.parleyRetries()}`
	waitFor[bool](t, ada, "the send is refused and its retry due", state, `() => window.parleyDirectPosts === 1 && window.parleyRetries() === 1`)
	ada.click(t, "sign out", "#signout")
	waitFor[bool](t, ada, "signed out", state, `() => document.getElementById("app").dataset.view === "signin"`)

	ctx, cancel := ada.stepCtx()
	defer cancel()
	posts, err := chromedp.Run(ctx, chromedp.Evaluate[int](`(async () => {
		window.parleyFireRetries();
		// What the timer starts runs in the microtasks after it.
		await new Promise((resolve) => setTimeout(resolve, 100));
		return window.parleyDirectPosts;
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("Ada: fire the retry: %v", err)
	}
	if posts != 1 {
		t.Errorf("after Ada signed out and the retry's time came, the message was posted %d times; want 1 (refused, not sent again)", posts)
	}
}
