package web_test

import (
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// waitGoroutines waits, waitTimeout at most, until no goroutine runs a
// function whose name contains one of fns.
func waitGoroutines(tb testing.TB, fns ...string) {
	tb.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(waitTimeout); ; {
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !slices.ContainsFunc(fns, func(fn string) bool { return strings.Contains(stacks, fn) }) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("goroutines of %v still running after %s:\n%s", fns, waitTimeout, stacks)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitOpenAllowed waits, waitTimeout at most, until GET /api/ws/check
// answers c 204: a connection of c's that ended gave its place back.
func waitOpenAllowed(tb testing.TB, ts *testServer, c *client) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for r := ts.checkOpen(tb, c); r.Status != http.StatusNoContent; r = ts.checkOpen(tb, c) {
		if time.Now().After(deadline) {
			tb.Fatalf("GET /api/ws/check = %s %s after the connection ended; want 204", waitTimeout, r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// congestedPair starts a server with a small socket send buffer, and
// config (if not nil) applied, where Ada and Slowpoke are in room
// "general": for congestedClient.
func congestedPair(t *testing.T, config func(*testConfig)) (*testServer, *client, *client, wireRoom) {
	t.Helper()
	ts := newTestServer(t, func(c *testConfig) {
		c.web.SendRate, c.web.SendBurst = 1000, 1000
		c.sndbuf = 8 << 10
		if config != nil {
			config(c)
		}
	})
	ada := ts.signIn(t, "ada@example.com", "Ada")
	slow := ts.signIn(t, "slow@example.com", "Slowpoke")
	room := ts.enterRoom(t, ada, "general")
	ts.enterRoom(t, slow, "general")
	return ts, ada, slow, room
}

// congestedClient connects slow, with room open, and has ada post to it
// far more than its socket and the server's hold, fewer frames than its
// outbox: the server's socket to it is congested while it reads nothing,
// and it is not cut off as too slow. The posts' client_ids begin with
// tag: a test that calls it again must give another.
func congestedClient(t *testing.T, ts *testServer, ada, slow *client, room wireRoom, tag string) *wsClient {
	t.Helper()
	ws := ts.connectWith(t, slow, dialOptions{rcvbuf: 16 << 10})
	ws.readNow(t, "hello")
	ws.send(t, map[string]any{"type": "open", "room_id": room.ID})
	ws.readNow(t, "opened")
	ws.drain()
	body := strings.Repeat("flood ", 400)
	for i := range 40 {
		ts.post(t, ada, room.ID, fmt.Sprintf("%s-%d", tag, i), body)
	}
	return ws
}

// TestTooBigCloseOutlivesCongestion: a client that reads nothing until the
// server's socket to it is congested, then sends a frame over
// max_frame_bytes, gets close 1009 once it reads: the close frame waits
// behind what the socket holds, rather than the socket being cut (a reset).
// The connection's place is given back once, and nothing of it lingers.
func TestTooBigCloseOutlivesCongestion(t *testing.T) {
	ts, ada, slow, room := congestedPair(t, func(c *testConfig) {
		c.web.MaxFrameBytes = 1000
		c.web.MaxUserConns = 1
	})
	ws := congestedClient(t, ts, ada, slow, room, "f")

	big := `{"type":"ping","ref":"` + strings.Repeat("y", 2000) + `"}`
	ws.sendRaw(t, websocket.TextMessage, []byte(big))
	ws.startReading()
	ws.expectClose(t, websocket.CloseMessageTooBig)

	// Its place is given back: a new connection goes through, and only
	// one, at the cap of 1.
	waitOpenAllowed(t, ts, slow)
	w := ts.connect(t, slow)
	defer w.conn.Close()
	wantCheckRefused(t, "at the cap of 1", ts.checkOpen(t, slow))
	waitGoroutines(t, "web.(*frameConn).drain", "web.(*conn).linger")
}

// TestProtocolErrorCloseOutlivesCongestion is
// TestTooBigCloseOutlivesCongestion for a frame that breaks RFC 6455: close
// 1002.
func TestProtocolErrorCloseOutlivesCongestion(t *testing.T) {
	ts, ada, slow, room := congestedPair(t, nil)
	for _, c := range []struct {
		name, tag string
		b         []byte
	}{
		{"opcode 3", "op3", clientFrame(3, true, false, "x")},
		{"ping 126", "ping126", clientFrame(websocket.PingMessage, true, false, strings.Repeat("p", 126))},
	} {
		t.Run(c.name, func(t *testing.T) {
			ws := congestedClient(t, ts, ada, slow, room, c.tag)
			if _, err := ws.conn.NetConn().Write(c.b); err != nil {
				t.Fatal(err)
			}
			ws.startReading()
			ws.expectClose(t, websocket.CloseProtocolError)
		})
	}
	waitGoroutines(t, "web.(*frameConn).drain", "web.(*conn).linger")
}

// TestTooBigCloseToSilentPeer: a congested client that sends a frame over
// max_frame_bytes, reads its close 1009 and then neither answers it nor
// closes the socket holds its connection for the goodbye's grace only.
func TestTooBigCloseToSilentPeer(t *testing.T) {
	ts, ada, slow, room := congestedPair(t, func(c *testConfig) {
		c.web.MaxFrameBytes = 1000
		c.web.MaxUserConns = 1
	})
	ws := congestedClient(t, ts, ada, slow, room, "f")
	ws.conn.SetCloseHandler(func(int, string) error { return nil }) // no answer
	big := `{"type":"ping","ref":"` + strings.Repeat("y", 2000) + `"}`
	ws.sendRaw(t, websocket.TextMessage, []byte(big))
	ws.startReading()
	ws.expectClose(t, websocket.CloseMessageTooBig)
	waitOpenAllowed(t, ts, slow)
	waitGoroutines(t, "web.(*frameConn).drain", "web.(*conn).linger")
}

// TestPeerCloseAnsweredWhenCongested: a client that closes while the
// server's socket to it is congested gets the server's answer once it
// reads, behind what the socket held, rather than a reset.
func TestPeerCloseAnsweredWhenCongested(t *testing.T) {
	ts, ada, slow, room := congestedPair(t, nil)
	ws := congestedClient(t, ts, ada, slow, room, "f")
	msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "bye")
	if err := ws.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	ws.startReading()
	ws.expectClose(t, websocket.CloseGoingAway)
	waitGoroutines(t, "web.(*frameConn).drain", "web.(*conn).linger")
}
