package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"
)

// TestBrowserLargeRoom: with --online-max 2, a room with three present
// shows two of them and "+1 more", and "3 online", learnt from the count
// the server sends in place of Xena's presence; when Grace leaves and the
// room is back to two, Ada's list names exactly the two left (Xena, whom it
// never showed, is loaded again).
func TestBrowserLargeRoom(t *testing.T) {
	s, ada, grace := startPair(t, browserTestTimeout, "--online-max", "2")
	ada.signIn(t, s, "ada@example.com", "Ada")
	grace.signIn(t, s, "grace@example.com", "Grace")
	ada.enterRoom(t, "big")
	grace.enterRoom(t, "big")
	ada.waitOnline(t, grace)

	// Xena, a third user, opens the room over a plain WebSocket.
	xena := signIn(t, s, "xena@example.com", "Xena")
	var entered struct {
		Room struct {
			ID int64 `json:"id"`
		} `json:"room"`
	}
	postJSON(t, xena, "POST", s.URL+"/api/rooms", map[string]string{"name": "big"}, http.StatusOK, &entered)
	ws := dialWS(t, s, xena)
	if err := ws.WriteJSON(map[string]any{"type": "open", "room_id": entered.Room.ID, "ref": "x1"}); err != nil {
		t.Fatal(err)
	}
	opened := readUntil(t, ws, "opened")
	if n, _ := opened["online_count"].(float64); n != 3 {
		t.Fatalf("Xena's opened = %v; want online_count 3", opened)
	}

	const online = `() => ({
		names: [...document.querySelectorAll("#online-list li[data-user-id] .name")].map((e) => e.textContent),
		more: document.querySelector("#online-list li.more")?.textContent ?? "",
		sub: document.getElementById("room-sub").textContent,
		notices: [...document.querySelectorAll("#messages .notice.presence .notice-text")].map((e) => e.textContent),
	})`
	waitFor[bool](t, ada, "Ada sees 3 online, Xena as a count", online+`()`, `() => {
		const o = (`+online+`)();
		return o.sub.endsWith("· 3 online") && o.more === "+1 more" && o.names.length === 2 && !o.names.includes("Xena");
	}`)
	if evaluate[bool](t, ada, "look for a notice about Xena", `[...document.querySelectorAll("#messages .notice.presence")].some((e) => e.textContent.includes("Xena"))`) {
		t.Errorf("Ada was told of Xena's arrival one by one; in a room past --online-max she should only see the count")
	}

	// Grace leaves for another room: two present again, named exactly.
	grace.enterRoom(t, "elsewhere")
	waitFor[bool](t, ada, "Ada sees Ada and Xena, 2 online", online+`()`, `() => {
		const o = (`+online+`)();
		return o.sub.endsWith("· 2 online") && o.more === "" && o.names.join() === "Ada,Xena" &&
			o.notices.at(-1) === "Grace is offline";
	}`)
	for _, b := range []*browser{ada, grace} {
		b.checkQuiet(t)
	}
}

// youShown tells, of the user's own entry in the online list, whether
// "(you)" is shown whole: some element of the entry says it (as text or
// in ::after), is not cut short, and lies inside the entry and the
// screen.
const youShown = `(() => {
	const li = document.querySelector("#online-list li.is-me");
	if (!li) return {found: false};
	const box = li.getBoundingClientRect();
	const says = (el) => (el.childElementCount === 0 && el.textContent.includes("(you)")) ||
		getComputedStyle(el, "::after").content.includes("(you)");
	const marks = [...li.querySelectorAll("*")].filter(says).map((el) => {
		const r = el.getBoundingClientRect();
		return {
			cut: el.scrollWidth > el.clientWidth + 1,
			inside: r.width > 0 && r.left >= box.left - 1 && r.right <= box.right + 1 && r.right <= innerWidth,
		};
	});
	const name = li.querySelector(".name");
	return {
		found: true,
		text: li.textContent,
		marks,
		shown: marks.some((m) => !m.cut && m.inside),
		nameFits: !!name && name.getBoundingClientRect().right <= box.right + 1,
		overflowX: document.documentElement.scrollWidth > innerWidth,
	};
})()`

// TestBrowserLongNameYou: a user with a 40-character name sees "(you)"
// beside it in the room's online list, the name cut short instead, in the
// column of a wide screen and in the chips of a phone's.
func TestBrowserLongNameYou(t *testing.T) {
	s, ada := startAdaUnsigned(t)
	const name = "Augusta Ada King, Countess of Lovelace 1"
	if len(name) != 40 {
		t.Fatalf("name has %d characters; want 40", len(name))
	}
	ada.signIn(t, s, "ada@example.com", name)
	ada.enterRoom(t, "lobby")
	for _, layout := range []struct {
		name string
		view chromedp.Action[chromedp.Void]
	}{
		{"1280px", chromedp.EmulateViewport(1280, 800)},
		{"390px", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulatePortrait)},
	} {
		ada.do(t, layout.name+" viewport", layout.view)
		waitFor[bool](t, ada, "(you) is shown whole at "+layout.name, youShown, `() => {
			const s = `+youShown+`;
			return s.found && s.shown && s.nameFits && !s.overflowX;
		}`)
	}
	ada.checkQuiet(t)
}

// holdOnline, run in a page, holds the answers to its GETs of a room's
// online list until window.parleyReleaseOnline(): window.parleyHeldOnline
// counts those held; window.parleyOnlineAsked counts the GETs, and
// window.parleyOnlineRead those whose answer the app has read and had a
// turn to use.
const holdOnline = `(() => {
	const fetch = window.fetch;
	let gate = null;
	let release = () => {};
	let hold = true;
	window.parleyHeldOnline = 0;
	window.parleyOnlineAsked = 0;
	window.parleyOnlineRead = 0;
	window.parleyReleaseOnline = () => {
		hold = false;
		release();
	};
	window.fetch = async (input, init) => {
		const path = new URL(String(input instanceof Request ? input.url : input), location.href).pathname;
		if (!/^\/api\/rooms\/[^/]+\/online$/.test(path) || (init?.method ?? "GET") !== "GET") return fetch(input, init);
		window.parleyOnlineAsked++;
		const res = await fetch(input, init);
		const text = res.text.bind(res);
		res.text = async () => {
			const v = await text();
			setTimeout(() => window.parleyOnlineRead++, 0);
			return v;
		};
		if (hold) {
			window.parleyHeldOnline++;
			gate ??= new Promise((r) => { release = r; });
			await gate;
		}
		return res;
	};
})()`

// TestBrowserPresenceNewerThanOnline: with --online-max 2, Ada's room
// holds Ada, Bea and Cy, Cy shown as a count. Bea leaves: two present,
// one of them unnamed, so Ada's page reads the online list again; its
// answer (Ada and Cy) comes late, after Cy left too and the page was told.
// The answer, older than that frame, must not bring Cy back.
func TestBrowserPresenceNewerThanOnline(t *testing.T) {
	exe := chromiumPath(t)
	s := startServer(t, "--online-max", "2")
	ada := startBrowser(t, exe, "ada", time.Now().Add(2*time.Minute))
	ada.signIn(t, s, "ada@example.com", "Ada")
	ada.enterRoom(t, "big")

	const online = `(() => ({
		names: [...document.querySelectorAll("#online-list li[data-user-id] .name")].map((e) => e.textContent),
		more: document.querySelector("#online-list li.more")?.textContent ?? "",
		sub: document.getElementById("room-sub").textContent,
		held: window.parleyHeldOnline,
		asked: window.parleyOnlineAsked,
		read: window.parleyOnlineRead,
	}))()`
	open := func(email, name string) *websocket.Conn {
		t.Helper()
		c := signIn(t, s, email, name)
		var entered struct {
			Room struct {
				ID int64 `json:"id"`
			} `json:"room"`
		}
		postJSON(t, c, "POST", s.URL+"/api/rooms", map[string]string{"name": "big"}, http.StatusOK, &entered)
		ws := dialWS(t, s, c)
		if err := ws.WriteJSON(map[string]any{"type": "open", "room_id": entered.Room.ID, "ref": "o1"}); err != nil {
			t.Fatal(err)
		}
		readUntil(t, ws, "opened")
		return ws
	}
	bea := open("bea@example.com", "Bea")
	defer bea.Close()
	waitFor[bool](t, ada, "Ada sees Bea, 2 online", online, `() => {
		const o = `+online+`;
		return o.sub.endsWith("· 2 online") && o.names.join() === "Ada,Bea";
	}`)
	cy := open("cy@example.com", "Cy")
	defer cy.Close()
	waitFor[bool](t, ada, "Ada sees 3 online, Cy as a count", online, `() => {
		const o = `+online+`;
		return o.sub.endsWith("· 3 online") && o.more === "+1 more" && o.names.join() === "Ada,Bea";
	}`)

	evaluate[chromedp.Void](t, ada, "hold the online list's answers", holdOnline)
	bea.Close()
	waitFor[bool](t, ada, "Ada's page reads the online list, its answer held", online,
		`() => window.parleyHeldOnline >= 1`)
	cy.Close()
	waitFor[bool](t, ada, "Ada's page is told Cy left: 1 online", online, `() => {
		const o = `+online+`;
		return o.sub.endsWith("· 1 online");
	}`)
	evaluate[chromedp.Void](t, ada, "let the online list's answers go", `window.parleyReleaseOnline()`)
	waitFor[bool](t, ada, "Ada's page has used every answer", online,
		`() => window.parleyOnlineRead >= 1 && window.parleyOnlineRead === window.parleyOnlineAsked`)
	type shown struct {
		Names []string `json:"names"`
		More  string   `json:"more"`
		Sub   string   `json:"sub"`
	}
	got := evaluate[shown](t, ada, "read the online list", online)
	if got.Names == nil {
		got.Names = []string{}
	}
	want := shown{Names: []string{"Ada"}, More: "", Sub: "3 members · 1 online"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Ada's online list after Cy left, with the older answer read (-want +got):\n%s", diff)
	}
	ada.checkQuiet(t)
}
