package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/testenv"
)

// TestClusterStaleRemovedKeepsNewerOpen: Ada leaves a room and enters it
// again through node a, then opens it on a connection to node b, which
// learns of the leave only after that (b was cut from Redis, and resyncs
// Ada's events when it is back; a slow pub/sub connection does the same).
// That removed ended a membership older than the one the open found: the
// connection goes on receiving the room.
func TestClusterStaleRemovedKeepsNewerOpen(t *testing.T) {
	db := testenv.PostgresSchema(t)
	rurl, prefix, _ := testenv.Redis(t)
	opt, err := goredis.ParseURL(rurl)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.StartProxy(t, opt.Addr)
	viaProxy, err := url.Parse(rurl)
	if err != nil {
		t.Fatal(err)
	}
	viaProxy.Host = proxy.Addr()
	a := startServer(t, "--db", db, "--broker", rurl, "--redis-prefix", prefix, "--node-id", "a")
	b := startServer(t, "--db", db, "--broker", viaProxy.String(), "--redis-prefix", prefix, "--node-id", "b")

	ada := signIn(t, a, "ada@example.com", "Ada")
	grace := signIn(t, a, "grace@example.com", "Grace")
	type roomReply struct {
		Room struct{ ID int64 } `json:"room"`
	}
	var lobby, general roomReply
	postJSON(t, ada, "POST", a.URL+"/api/rooms", map[string]string{"name": "lobby"}, http.StatusOK, &lobby)
	postJSON(t, ada, "POST", a.URL+"/api/rooms", map[string]string{"name": "general"}, http.StatusOK, &general)
	postJSON(t, grace, "POST", a.URL+"/api/rooms", map[string]string{"name": "general"}, http.StatusOK, &general)

	wb := dialWS(t, b, ada)
	adaID := readUntil(t, wb, "hello")["user"].(map[string]any)["id"]
	// A first logged event, delivered live on b: b's topic of Ada then
	// resyncs what follows it.
	postJSON(t, ada, "DELETE", fmt.Sprintf("%s/api/rooms/%d/members/me", a.URL, lobby.Room.ID), nil, http.StatusNoContent, nil)
	readUntil(t, wb, "removed")

	proxy.Cut()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.stderr.String(), "pub/sub connection lost") {
		if time.Now().After(deadline) {
			t.Fatalf("node b did not notice it was cut from Redis within 10s\n%s", b.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	postJSON(t, ada, "DELETE", fmt.Sprintf("%s/api/rooms/%d/members/me", a.URL, general.Room.ID), nil, http.StatusNoContent, nil)
	postJSON(t, ada, "POST", a.URL+"/api/rooms", map[string]string{"name": "general"}, http.StatusOK, nil)
	wb.WriteJSON(map[string]any{"type": "open", "room_id": general.Room.ID})
	opened := readUntil(t, wb, "opened")
	proxy.Restore(t)

	// b delivers what it missed: the removed of the leave, then the
	// conversation of the entry again.
	var seen []string
	got := func(want func(f map[string]any) bool, what string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			wb.SetReadDeadline(deadline)
			_, data, err := wb.ReadMessage()
			if err != nil {
				t.Fatalf("Ada, on node b, did not receive %s: %v; frames since the open: %v", what, err, seen)
			}
			for _, line := range bytes.Split(data, []byte("\n")) {
				var f map[string]any
				if json.Unmarshal(line, &f) != nil {
					continue
				}
				seen = append(seen, string(line))
				if want(f) {
					return
				}
			}
		}
	}
	got(func(f map[string]any) bool {
		return f["type"] == "conversation" && f["room_id"] == float64(general.Room.ID)
	},
		"the conversation frame of her entry again", 20*time.Second)
	removedSeq := -1.0
	for _, line := range seen {
		var f map[string]any
		if json.Unmarshal([]byte(line), &f) == nil && f["type"] == "removed" && f["room_id"] == float64(general.Room.ID) {
			removedSeq, _ = f["user_seq"].(float64)
		}
	}
	if removedSeq < 0 {
		t.Fatalf("no removed of general before the conversation frame: %v", seen)
	}
	if mark, _ := opened["user_seq"].(float64); mark < removedSeq {
		t.Errorf("opened user_seq = %v; want at least the removed's %v, which ended an earlier membership", opened["user_seq"], removedSeq)
	}

	wg := dialWS(t, a, grace)
	readUntil(t, wg, "hello")
	wg.WriteJSON(map[string]any{"type": "open", "room_id": general.Room.ID})
	// The old removed did not close the room on Ada's connection either:
	// she is present there.
	online, _ := readUntil(t, wg, "opened")["online"].([]any)
	if !slices.ContainsFunc(online, func(u any) bool { m, _ := u.(map[string]any); return m["id"] == adaID }) {
		t.Errorf("Grace's opened online = %v; want Ada (%v) among them", online, adaID)
	}
	wg.WriteJSON(map[string]any{"type": "send", "room_id": general.Room.ID, "client_id": "g1", "body": "still here?"})
	readUntil(t, wg, "ack")
	got(func(f map[string]any) bool {
		m, _ := f["message"].(map[string]any)
		return f["type"] == "message" && m["body"] == "still here?"
	}, "Grace's message in the room she opened after entering it again", 10*time.Second)
}
