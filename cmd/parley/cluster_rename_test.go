package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestClusterRename: Ada renames herself through node n0, where she has
// the shared room open. On node n1, Grace (her friend), Bob (a member of
// her group) and Carl (who has the room open) each get the user frame of
// it: Grace on her user topic, Bob on the group's, Carl on the room's.
func TestClusterRename(t *testing.T) {
	e := newFaultEnv(t, envOptions{nodes: 2, users: 4})
	ada, grace, bob, carl := e.users[0], e.users[1], e.users[2], e.users[3] // all in e.room and e.group; Ada and Grace friends
	a, b := e.nodes[0], e.nodes[1]

	gws, bws, cws := e.dialWS(grace, b), e.dialWS(bob, b), e.dialWS(carl, b)
	for _, ws := range []*websocket.Conn{gws, bws, cws} {
		readUntil(t, ws, "hello")
	}
	cws.WriteJSON(map[string]any{"type": "open", "room_id": e.room, "ref": "c1"})
	readUntil(t, cws, "opened")
	aws := e.dialWS(ada, a)
	readUntil(t, aws, "hello")
	aws.WriteJSON(map[string]any{"type": "open", "room_id": e.room, "ref": "a1"})
	readUntil(t, aws, "opened")
	waitPresence(t, cws, e.room, ada.id, 10*time.Second) // n1 knows Ada is present

	e.api(ada, "PATCH", "/api/me", map[string]string{"name": "Ada Lovelace"}, 200, nil)
	for _, c := range []struct {
		who  string
		ws   *websocket.Conn
		room int64
	}{{"Grace, a friend", gws, 0}, {"Bob, a group member", bws, e.group}, {"Carl, present in the room", cws, e.room}} {
		if name := waitRenamed(t, c.ws, c.room, ada.id, 10*time.Second); name != "Ada Lovelace" {
			t.Errorf("%s on n1 got Ada's name %q; want %q", c.who, name, "Ada Lovelace")
		}
	}
}

// waitPresence reads ws until the presence frame of userID online in
// conversation roomID, failing after within.
func waitPresence(t *testing.T, ws *websocket.Conn, roomID, userID int64, within time.Duration) {
	t.Helper()
	waitFrame(t, ws, within, "presence of the user in the room", func(f frameOf) bool {
		return f.Type == "presence" && f.RoomID == roomID && f.User.ID == userID && f.Online
	})
}

// waitRenamed reads ws until the user frame of userID's rename with
// room_id roomID (0: on a user topic), failing after within, and returns
// the name it carries.
func waitRenamed(t *testing.T, ws *websocket.Conn, roomID, userID int64, within time.Duration) string {
	t.Helper()
	return waitFrame(t, ws, within, "user frame of the rename", func(f frameOf) bool {
		return f.Type == "user" && f.RoomID == roomID && f.User.ID == userID
	}).User.Name
}

// frameOf is what waitFrame reads of a frame.
type frameOf struct {
	Type   string `json:"type"`
	RoomID int64  `json:"room_id"`
	User   struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	} `json:"user"`
	Online bool `json:"online"`
}

// waitFrame reads ws until a frame matches, failing after within.
func waitFrame(t *testing.T, ws *websocket.Conn, within time.Duration, what string, match func(frameOf) bool) frameOf {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ws.SetReadDeadline(deadline)
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("no %s within %v: %v", what, within, err)
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			var f frameOf
			if json.Unmarshal(line, &f) == nil && match(f) {
				return f
			}
		}
	}
}
