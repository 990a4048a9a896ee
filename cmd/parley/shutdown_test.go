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

	"github.com/parley-chat/parley/internal/mailer/smtptest"
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

// TestRunShutdownWaitsForMail: a sign-in mail whose request gave up
// waiting for the relay (the client went away) is still under way at
// shutdown; run waits for its SMTP session to end, within
// --shutdown-timeout, so that the mail goes out, its code being stored
// and counted. Before, run returned at once and the process would exit,
// cutting the session.
func TestRunShutdownWaitsForMail(t *testing.T) {
	held, release := make(chan struct{}, 1), make(chan struct{})
	relay := smtptest.Start(t, smtptest.WithHold(held, release))
	s := startServer(t, "--smtp", relay.URL(), "--shutdown-timeout", "20s")

	askCodeGivenUp(t, s, held)

	s.stop()
	select {
	case err := <-s.done:
		close(s.done)
		t.Fatalf("run returned (%v) while a sign-in mail was still being sent\n%s", err, s.stderr)
	case <-time.After(3 * time.Second):
	}
	close(release)
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("run = %v; want nil", err)
		}
	case <-time.After(25 * time.Second):
		close(s.done) // s.shutdown then fails no more
		t.Fatalf("run did not return once the relay took the mail\n%s", s.stderr)
	}
	close(s.done)
	if msgs := relay.Messages(); len(msgs) != 1 {
		t.Errorf("the relay has %d mails when run returned; want 1", len(msgs))
	}
}

// askCodeGivenUp asks s for a sign-in code for ada@example.com and gives
// the request up (the client times out) once the relay holds its mail
// (held): net/http then ends the request's context, and the SMTP session
// runs on.
func askCodeGivenUp(t *testing.T, s *testServer, held <-chan struct{}) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Post(s.URL+"/api/auth/code", "application/json", strings.NewReader(`{"email":"ada@example.com"}`))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("POST /api/auth/code while the relay holds the mail = %s; want the client to time out", resp.Status)
	}
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the sign-in mail did not reach the relay")
	}
}

// TestRunShutdownCutsMailAtTimeout: a relay that holds a sign-in mail
// past --shutdown-timeout does not hold up the shutdown; run logs how
// many SMTP sessions it cut.
func TestRunShutdownCutsMailAtTimeout(t *testing.T) {
	held := make(chan struct{}, 1)
	relay := smtptest.Start(t, smtptest.WithHold(held, make(chan struct{})))
	s := startServer(t, "--smtp", relay.URL(), "--shutdown-timeout", "2s")

	askCodeGivenUp(t, s, held)
	if err := s.shutdown(t); err != nil {
		t.Errorf("run = %v; want nil", err)
	}
	log := s.stderr.String()
	if !strings.Contains(log, "1 SMTP session") {
		t.Errorf("the log does not say 1 SMTP session was cut:\n%s", log)
	}
	// Cut before the store closed: its code was removed, the mail unsent.
	if !strings.Contains(log, "login code not mailed") {
		t.Errorf("the log does not say the login code of the mail cut was removed:\n%s", log)
	}
}
