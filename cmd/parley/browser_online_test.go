package main

import (
	"net/http"
	"testing"
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
