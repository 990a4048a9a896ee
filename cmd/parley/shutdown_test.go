package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsFrames1 reads one message of ws.
func wsFrames1(ws *websocket.Conn, deadline time.Time) ([]map[string]any, error) {
	ws.SetReadDeadline(deadline)
	_, data, err := ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	var frames []map[string]any
	for _, line := range bytes.Split(data, []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil {
			frames = append(frames, m)
		}
	}
	return frames, nil
}

// waitAcks reads ws until n acks came, each read within 15 s; when, if
// not "", says when in the failure.
func waitAcks(t *testing.T, ws *websocket.Conn, n int, when string) {
	t.Helper()
	for acks := 0; acks < n; {
		fs, err := wsFrames1(ws, time.Now().Add(15*time.Second))
		if err != nil {
			t.Fatalf("%s%d of %d sends acknowledged: %v", when, acks, n, err)
		}
		for _, f := range fs {
			if f["type"] == "ack" {
				acks++
			}
		}
	}
}

// TestRunShutdownWithStalledReader: a client that stopped reading, its
// socket full, does not hold up the graceful shutdown: run returns nil,
// within --shutdown-timeout.
func TestRunShutdownWithStalledReader(t *testing.T) {
	s := startServer(t, "--send-rate", "100000", "--send-burst", "100000", "--outbox", "4096", "--shutdown-timeout", "5s")
	ada := signIn(t, s, "ada@example.com", "Ada")
	grace := signIn(t, s, "grace@example.com", "Grace")
	var room struct {
		Room struct{ ID int64 } `json:"room"`
	}
	postJSON(t, ada, "POST", s.URL+"/api/rooms", map[string]string{"name": "general"}, http.StatusOK, &room)
	postJSON(t, grace, "POST", s.URL+"/api/rooms", map[string]string{"name": "general"}, http.StatusOK, &room)

	// Grace opens the room and reads nothing more, on a socket whose
	// receive buffer is small: the server's writes to her soon stall.
	u, _ := url.Parse(s.URL)
	d := websocket.Dialer{Jar: grace.Jar, HandshakeTimeout: 5 * time.Second, NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err == nil {
			_ = c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}}
	stalled, _, err := d.Dial("ws://"+u.Host+"/api/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	stalled.WriteJSON(map[string]any{"type": "open", "room_id": room.Room.ID})

	wa := dialWS(t, s, ada)
	readUntil(t, wa, "hello")
	body := strings.Repeat("x", 3000)
	const n = 2500
	go func() { // while the acks are read
		for i := range n {
			wa.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if wa.WriteJSON(map[string]any{"type": "send", "room_id": room.Room.ID, "client_id": fmt.Sprintf("a-%d", i), "body": body}) != nil {
				return
			}
		}
	}()
	waitAcks(t, wa, n, "")
	start := time.Now()
	err = s.shutdown(t)
	t.Logf("shutdown took %v", time.Since(start))
	if err != nil {
		t.Errorf("run after shutdown with a stalled reader = %v; want nil", err)
	}
}
