package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	goredis "github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/testenv"
)

// TestClusterNodeCutFromRedis: a message stored through a node that has
// lost Redis (its publish fails; the other nodes' connections stay up, so
// they have nothing to resync) reaches a client on another node once the
// node has Redis back, without the client asking, even if nothing more is
// said in the room.
func TestClusterNodeCutFromRedis(t *testing.T) {
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
	a := startServer(t, "--db", db, "--broker", viaProxy.String(), "--redis-prefix", prefix, "--node-id", "a")
	b := startServer(t, "--db", db, "--broker", rurl, "--redis-prefix", prefix, "--node-id", "b")

	ada := signIn(t, a, "ada@example.com", "Ada")
	grace := signIn(t, a, "grace@example.com", "Grace") // sessions are in PostgreSQL: good on b too
	var room struct {
		Room struct{ ID int64 } `json:"room"`
	}
	postJSON(t, ada, "POST", a.URL+"/api/rooms", map[string]string{"name": "general"}, http.StatusOK, &room)
	postJSON(t, grace, "POST", a.URL+"/api/rooms", map[string]string{"name": "general"}, http.StatusOK, &room)
	wa, wg := dialWS(t, a, ada), dialWS(t, b, grace)
	for _, ws := range []*websocket.Conn{wa, wg} {
		readUntil(t, ws, "hello")
		ws.WriteJSON(map[string]any{"type": "open", "room_id": room.Room.ID})
		readUntil(t, ws, "opened")
	}
	send := func(cid, body string) {
		t.Helper()
		wa.WriteJSON(map[string]any{"type": "send", "room_id": room.Room.ID, "client_id": cid, "body": body})
		readUntil(t, wa, "ack")
	}
	send("a1", "before the cut")
	if m := readUntil(t, wg, "message")["message"].(map[string]any); m["body"] != "before the cut" {
		t.Fatalf("Grace received %v; want the message before the cut", m)
	}

	proxy.Cut()
	// Once node a knows, its publishes fail without sending anything (one
	// made before might still go out when Redis is back).
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(a.stderr.String(), "pub/sub connection lost") {
		if time.Now().After(deadline) {
			t.Fatalf("node a did not notice it was cut from Redis within 10s\n%s", a.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	send("a2", "during the cut") // stored and acknowledged; its publish fails
	proxy.Restore(t)

	deadline = time.Now().Add(20 * time.Second)
	for {
		wg.SetReadDeadline(deadline)
		_, data, err := wg.ReadMessage()
		if err != nil {
			t.Fatalf("Grace, on node b, did not receive the message sent through node a while it was cut from Redis: %v", err)
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			var f struct {
				Type    string `json:"type"`
				Message struct {
					Body string `json:"body"`
				} `json:"message"`
			}
			if json.Unmarshal(line, &f) == nil && f.Type == "message" && f.Message.Body == "during the cut" {
				return
			}
		}
	}
}
