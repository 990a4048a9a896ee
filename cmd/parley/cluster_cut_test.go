package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	goredis "github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/redis"
	"github.com/parley-chat/parley/internal/testenv"
)

// TestClusterNodeCutFromRedis: a message stored through node a while one
// node is cut from Redis reaches a client on node b once the node has
// Redis back, without the client asking, even if nothing more is said in
// the room. With a cut ("sender"), a's publish fails, and the other
// nodes' connections stay up, so they have nothing to resync: a publishes
// it again. With b cut ("receiver"), a's publish succeeds while b is not
// listening: b resyncs its conversations from the store (hub.Resync).
func TestClusterNodeCutFromRedis(t *testing.T) {
	t.Run("sender", func(t *testing.T) { testNodeCutFromRedis(t, true) })
	t.Run("receiver", func(t *testing.T) { testNodeCutFromRedis(t, false) })
}

func testNodeCutFromRedis(t *testing.T, cutSender bool) {
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
	aBroker, bBroker := viaProxy.String(), rurl
	if !cutSender {
		aBroker, bBroker = bBroker, aBroker
	}
	a := startServer(t, "--db", db, "--broker", aBroker, "--redis-prefix", prefix, "--node-id", "a")
	b := startServer(t, "--db", db, "--broker", bBroker, "--redis-prefix", prefix, "--node-id", "b")
	cut := a
	if !cutSender {
		cut = b
	}

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
	// Once the node knows, a's publishes fail without sending anything
	// (one made before might still go out when Redis is back), or b is
	// not subscribed.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(cut.stderr.String(), "pub/sub connection lost") {
		if time.Now().After(deadline) {
			t.Fatalf("the node did not notice it was cut from Redis within 10s\n%s", cut.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	send("a2", "during the cut") // stored and acknowledged
	proxy.Restore(t)

	deadline = time.Now().Add(20 * time.Second)
	for {
		wg.SetReadDeadline(deadline)
		_, data, err := wg.ReadMessage()
		if err != nil {
			t.Fatalf("Grace, on node b, did not receive the message sent through node a while a node was cut from Redis: %v", err)
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

// TestClusterRedisDownOpen: while Redis is unreachable, a client that
// connects opens a conversation and reads it, and lists its contacts:
// Redis only shows who is online, which can wait until it is back.
func TestClusterRedisDownOpen(t *testing.T) {
	rs := startRedisServer(t)
	s := startServer(t, "--broker", rs.URL(), "--redis-prefix", "parleydown:"+testenv.RandHex(6)+":")
	ada := signIn(t, s, "ada@example.com", "Ada")
	grace := signIn(t, s, "grace@example.com", "Grace")
	var room struct {
		Room struct{ ID int64 } `json:"room"`
	}
	postJSON(t, ada, "POST", s.URL+"/api/rooms", map[string]string{"name": "general"}, http.StatusOK, &room)
	postJSON(t, grace, "POST", s.URL+"/api/rooms", map[string]string{"name": "general"}, http.StatusOK, &room)
	adaID, graceID := userIDOf(t, s, ada, nil), userIDOf(t, s, grace, nil)
	postJSON(t, ada, "POST", s.URL+"/api/contacts", map[string]any{"user_id": graceID}, http.StatusOK, nil)
	postJSON(t, grace, "POST", fmt.Sprintf("%s/api/contacts/%d/accept", s.URL, adaID), nil, http.StatusOK, nil)
	postJSON(t, ada, "POST", fmt.Sprintf("%s/api/rooms/%d/messages", s.URL, room.Room.ID),
		map[string]string{"client_id": "c1", "body": "before the outage"}, http.StatusOK, nil)

	rs.stop()
	ws := dialWS(t, s, grace)
	readUntil(t, ws, "hello")
	ws.WriteJSON(map[string]any{"type": "open", "room_id": room.Room.ID, "after": 0, "ref": "o"})
	deadline := time.Now().Add(20 * time.Second)
	for opened, synced := false, false; !opened || !synced; {
		ws.SetReadDeadline(deadline)
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("open with Redis down: no opened and sync within 20s: %v", err)
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			var f struct {
				Type     string                  `json:"type"`
				Code     string                  `json:"code"`
				Messages []struct{ Body string } `json:"messages"`
			}
			json.Unmarshal(line, &f)
			switch f.Type {
			case "error":
				t.Fatalf("open with Redis down: %s", line)
			case "opened":
				opened = true
			case "sync":
				synced = len(f.Messages) > 0 && f.Messages[len(f.Messages)-1].Body == "before the outage"
				if !synced {
					t.Fatalf("sync with Redis down = %s; want the message before the outage", line)
				}
			}
		}
	}
	resp, err := grace.Get(s.URL + "/api/contacts")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"Ada"`)) {
		t.Errorf("GET /api/contacts with Redis down = %d %s; want 200 with Ada", resp.StatusCode, body)
	}
	// Who is online, asked for alone, is what is unavailable, and so are
	// the limits kept in Redis (docs/deploy.md).
	postJSON(t, grace, "GET", fmt.Sprintf("%s/api/rooms/%d/online", s.URL, room.Room.ID), nil, http.StatusServiceUnavailable, nil)
	postJSON(t, grace, "POST", s.URL+"/api/auth/code", map[string]string{"email": "linus@example.com"}, http.StatusServiceUnavailable, nil)
}

// TestClusterRedisDownOpenAgain: a client that opens again a
// conversation it has open (switching back to it) while Redis is
// unreachable gets it as the first open would: opened, with itself alone
// in the online list, not an error.
func TestClusterRedisDownOpenAgain(t *testing.T) {
	rs := startRedisServer(t)
	s := startServer(t, "--broker", rs.URL(), "--redis-prefix", "parleydown:"+testenv.RandHex(6)+":")
	ada := signIn(t, s, "ada@example.com", "Ada")
	var room struct {
		Room struct{ ID int64 } `json:"room"`
	}
	postJSON(t, ada, "POST", s.URL+"/api/rooms", map[string]string{"name": "general"}, http.StatusOK, &room)
	ws := dialWS(t, s, ada)
	readUntil(t, ws, "hello")
	ws.WriteJSON(map[string]any{"type": "open", "room_id": room.Room.ID, "ref": "o1"})
	readUntil(t, ws, "opened")

	rs.stop()
	ws.WriteJSON(map[string]any{"type": "open", "room_id": room.Room.ID, "ref": "o2"})
	deadline := time.Now().Add(20 * time.Second)
	for {
		ws.SetReadDeadline(deadline)
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("open again with Redis down: no opened within 20s: %v", err)
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			var f struct {
				Type   string `json:"type"`
				Ref    string `json:"ref"`
				Online []struct {
					Name string `json:"name"`
				} `json:"online"`
			}
			json.Unmarshal(line, &f)
			switch {
			case f.Type == "error":
				t.Fatalf("open again with Redis down: %s", line)
			case f.Type == "opened" && f.Ref == "o2":
				if len(f.Online) != 1 || f.Online[0].Name != "Ada" {
					t.Errorf("open again with Redis down = %s; want Ada alone online", line)
				}
				return
			}
		}
	}
}

// TestClusterRedisHangsConnectOpen: while Redis hangs (its host gone:
// connections are accepted and never answered), a client connects,
// opens a room and opens it again without waiting for Redis at every
// step: who is present is only shown. (Each presence call used to wait
// for Redis until it timed out, the open until the whole operation did,
// 15 s.)
func TestClusterRedisHangsConnectOpen(t *testing.T) {
	rs := startRedisServer(t)
	p := testenv.StartProxy(t, strings.TrimPrefix(rs.URL(), "redis://"))
	s := startServer(t, "--broker", "redis://"+p.Addr(), "--redis-prefix", "parleyhang:"+testenv.RandHex(6)+":")
	ada := signIn(t, s, "ada@example.com", "Ada")
	var room struct {
		Room struct{ ID int64 } `json:"room"`
	}
	postJSON(t, ada, "POST", s.URL+"/api/rooms", map[string]string{"name": "general"}, http.StatusOK, &room)

	p.Hang()
	defer p.Restore(t) // the node's shutdown would wait for Redis
	deadline := time.Now().Add(8 * time.Second)
	ws := dialWS(t, s, ada)
	next := func(what string) []byte {
		ws.SetReadDeadline(deadline)
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("connect, open and open again with Redis hanging: no %s within 8s: %v", what, err)
		}
		return data
	}
	if data := next("hello"); !bytes.Contains(data, []byte(`"hello"`)) {
		t.Fatalf("first frame %s; want hello", data)
	}
	for _, ref := range []string{"o1", "o2"} {
		ws.WriteJSON(map[string]any{"type": "open", "room_id": room.Room.ID, "ref": ref})
		for answered := false; !answered; {
			for _, line := range bytes.Split(next("opened "+ref), []byte("\n")) {
				var f struct{ Type, Ref string }
				json.Unmarshal(line, &f)
				if f.Ref == ref {
					if f.Type != "opened" {
						t.Fatalf("open %s with Redis hanging: %s", ref, line)
					}
					answered = true
				}
			}
		}
	}
}

// TestClusterRedisHangsShutdown: a node whose Redis hangs (its host gone)
// while it serves a client in a room stops within its --shutdown-timeout
// (5 s, from startServer) and redis.CloseTimeout, with a second for the
// rest: the closing of its presence and broker gives up on Redis. (It
// waited for the heartbeat and the sweep under way, then up to 10 s for
// the presences' removal, and for the pub/sub connection's dial: over
// 20 s.)
func TestClusterRedisHangsShutdown(t *testing.T) {
	rs := startRedisServer(t)
	p := testenv.StartProxy(t, strings.TrimPrefix(rs.URL(), "redis://"))
	s := startServer(t, "--broker", "redis://"+p.Addr(), "--redis-prefix", "parleyhang:"+testenv.RandHex(6)+":")
	ada := signIn(t, s, "ada@example.com", "Ada")
	var room struct {
		Room struct{ ID int64 } `json:"room"`
	}
	postJSON(t, ada, "POST", s.URL+"/api/rooms", map[string]string{"name": "general"}, http.StatusOK, &room)
	ws := dialWS(t, s, ada)
	readUntil(t, ws, "hello")
	ws.WriteJSON(map[string]any{"type": "open", "room_id": room.Room.ID, "ref": "o1"})
	readUntil(t, ws, "opened")

	p.Hang()
	const bound = 5*time.Second + redis.CloseTimeout + time.Second
	start := time.Now()
	s.stop()
	select {
	case <-s.done:
		close(s.done)
	case <-time.After(bound):
		t.Fatalf("with Redis hanging, parley did not stop within %v\n%s", bound, s.stderr)
	}
	t.Logf("stopped in %v", time.Since(start).Round(time.Millisecond))
}
