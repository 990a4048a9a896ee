package main

import (
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"
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
