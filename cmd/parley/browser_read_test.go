package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserReadThrottle: the web app moves the read position of the
// room it shows as messages arrive, at most every 5 s (READ_EVERY_ROOM in
// ui/dist/app.js; once a second in a group, for its receipts): twenty
// messages over 3 s cost two moves, not twenty (nor three or four, as at
// once a second), and the position still ends at the last of them. Each
// move is a write, and a frame to each of the user's connections. On a
// loaded machine the messages may take longer than 5 s to send; then
// another move per 5 s is due.
func TestBrowserReadThrottle(t *testing.T) {
	s, ada := startAda(t)
	ada.enterRoom(t, "lobby")

	grace := signIn(t, s, "grace@example.com", "Grace")
	var room struct {
		Room struct{ ID int64 } `json:"room"`
	}
	postJSON(t, grace, "POST", s.URL+"/api/rooms", map[string]string{"name": "lobby"}, http.StatusOK, &room)
	// A second session of Ada's, on a socket of its own, gets a read frame
	// each time her read position moves.
	watch := dialWS(t, s, signIn(t, s, "ada@example.com", "Ada"))
	readUntil(t, watch, "hello")
	ws := dialWS(t, s, grace)
	readUntil(t, ws, "hello")
	ws.WriteJSON(map[string]any{"type": "open", "room_id": room.Room.ID})
	readUntil(t, ws, "opened")

	const n = 20
	var last int64
	start := time.Now()
	for i := range n {
		ws.WriteJSON(map[string]any{"type": "send", "room_id": room.Room.ID, "client_id": "g" + strconv.Itoa(i), "body": "message " + strconv.Itoa(i)})
		ack := readUntil(t, ws, "ack")
		last = int64(ack["message"].(map[string]any)["seq"].(float64))
		time.Sleep(150 * time.Millisecond)
	}
	ada.waitMessage(t, "message "+strconv.Itoa(n-1))
	// The first move comes within 5 s of the first message shown, and
	// one more at most every 5 s until the last is read.
	const readEveryRoom = 5 * time.Second // READ_EVERY_ROOM
	took := time.Since(start)
	maxMoves := 1 + int((took+readEveryRoom-1)/readEveryRoom)

	moves := 0
	deadline := time.Now().Add(10 * time.Second)
	for seq := int64(0); seq < last; {
		watch.SetReadDeadline(deadline)
		_, data, err := watch.ReadMessage()
		if err != nil {
			t.Fatalf("after %d moves to seq %d, waiting for Ada's read position to reach %d: %v", moves, seq, last, err)
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			var f struct {
				Type   string `json:"type"`
				RoomID int64  `json:"room_id"`
				Seq    int64  `json:"seq"`
			}
			if err := json.Unmarshal(line, &f); err != nil {
				t.Fatalf("frame line %q: %v", line, err)
			}
			if f.Type == "read" && f.RoomID == room.Room.ID {
				moves++
				seq = f.Seq
			}
		}
	}
	if moves > maxMoves {
		t.Errorf("Ada's read position moved %d times for %d messages in %v; want at most %d", moves, n, took.Round(time.Millisecond), maxMoves)
	}
	t.Logf("%d messages in %v, %d moves of the read position", n, took.Round(time.Millisecond), moves)
}

// TestBrowserGroupReceipts: three members read Ada's message in a group
// at once; the server sends the moves together as one receipts frame (or
// the first as a receipt and the others in a receipts frame, if they come
// more than chat.Config.ReceiptDelay apart), and Ada's page counts all
// three.
func TestBrowserGroupReceipts(t *testing.T) {
	s, ada := startAda(t)
	waitFor[bool](t, ada, "connected", groupsState,
		`() => document.getElementById("conn-status").dataset.state === "connected"`)
	evaluate[chromedp.Void](t, ada, "mark the page", `window.parleyTestPage = true`)
	ada.userID = userIDOf(t, s, nil, ada)
	ada.createGroup(t, "Crew", "", "")
	groupID := waitFor[int64](t, ada, "Crew is open", groupsState, `() => {
		const m = /^#conv\/(\d+)$/.exec(location.hash);
		return document.getElementById("room-title").textContent === "Crew" && !!m && Number(m[1]);
	}`)
	var readers []*http.Client
	for _, name := range []string{"Grace", "Cy", "Dan"} {
		c := signIn(t, s, strings.ToLower(name)+"@example.com", name)
		ada.fetchJSON(t, "POST", fmt.Sprintf("/api/groups/%d/members", groupID), map[string]int64{"user_id": userIDOf(t, s, c, nil)}, nil)
		readers = append(readers, c)
	}
	seq := ada.send(t, "Read this, crew.")
	for _, c := range readers {
		postJSON(t, c, "POST", fmt.Sprintf("%s/api/conversations/%d/read", s.URL, groupID), map[string]int64{"seq": seq}, http.StatusOK, nil)
	}
	waitFor[bool](t, ada, "Ada's message is read by 3", groupsState, `(seq) => {
		const r = document.querySelector('#messages .msg.own[data-seq="' + seq + '"] [data-receipt]');
		return !!r && r.dataset.receipt === "read-by" && r.dataset.count === "3" && r.textContent === "Read by 3";
	}`, seq)
}

// userIDOf returns the ID of the user signed in on c, or else in b's page.
func userIDOf(t *testing.T, s *testServer, c *http.Client, b *browser) int64 {
	t.Helper()
	var me struct {
		User struct {
			ID int64 `json:"id"`
		} `json:"user"`
	}
	if c != nil {
		postJSON(t, c, "GET", s.URL+"/api/me", nil, http.StatusOK, &me)
	} else {
		b.fetchJSON(t, "GET", "/api/me", nil, &me)
	}
	return me.User.ID
}

// startAda starts a server, whose output a failed test shows, and a
// browser signed in as Ada.
func startAda(t *testing.T) (*testServer, *browser) {
	t.Helper()
	return startAdaBy(t, "")
}

// startAdaBy is startAda with the app's URL ending in query.
func startAdaBy(t *testing.T, query string) (*testServer, *browser) {
	t.Helper()
	s, ada := startAdaUnsigned(t)
	ada.query = query
	ada.signIn(t, s, "ada@example.com", "Ada")
	return s, ada
}

// startAdaWith starts a server and Ada's browser, whose every page runs
// script (which does what) before the app, and signs her in.
func startAdaWith(t *testing.T, what, script string) (*testServer, *browser) {
	t.Helper()
	s, ada := startAdaUnsigned(t)
	ada.onEveryPage(t, what, script)
	ada.signIn(t, s, "ada@example.com", "Ada")
	return s, ada
}

// startAdaUnsigned starts a server, whose log a failing test shows, and
// Ada's browser, not yet signed in.
func startAdaUnsigned(t *testing.T) (*testServer, *browser) {
	t.Helper()
	exe := chromiumPath(t)
	s := startServer(t)
	ada := startBrowser(t, exe, "ada", time.Now().Add(2*time.Minute))
	return s, ada
}
