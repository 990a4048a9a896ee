package web_test

import (
	"encoding/binary"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// clientFrame is a masked frame of opcode op as a client sends it; long
// writes the length in 64 bits, as a client may even for a short payload.
func clientFrame(op byte, fin, long bool, payload string) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case long:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	case n > 125:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|byte(n))
	}
	mask := []byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, mask...)
	for i := range len(payload) {
		b = append(b, payload[i]^mask[i%4])
	}
	return b
}

// connectCountingPongs connects a signed-in user, reads past the hello and
// counts the pongs the server sends.
func connectCountingPongs(t *testing.T) (*wsClient, *atomic.Int64) {
	t.Helper()
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	w := ts.connectWith(t, ada, dialOptions{})
	pongs := new(atomic.Int64)
	w.conn.SetPongHandler(func(string) error { pongs.Add(1); return nil })
	w.startReading()
	w.expect(t, "hello")
	return w, pongs
}

// TestFramesAsSent: the server reads frames however the client cuts and
// batches them: pings and pongs between messages and inside one,
// fragmented messages, lengths in 7, 16 and 64 bits, several frames in one
// write and a frame over several writes.
func TestFramesAsSent(t *testing.T) {
	w, pongs := connectCountingPongs(t)

	const text, cont, ping, pong = websocket.TextMessage, 0, websocket.PingMessage, websocket.PongMessage
	padded := `{"type":"ping",` + strings.Repeat(" ", 300) + `"ref":"r2"}` // over 125 bytes
	var b []byte
	for _, f := range [][]byte{
		clientFrame(ping, true, false, "p1"),
		clientFrame(text, true, false, `{"type":"ping","ref":"r1"}`),
		clientFrame(text, false, false, padded[:100]),
		clientFrame(ping, true, false, "p2"),
		clientFrame(cont, true, false, padded[100:]),
		clientFrame(text, true, true, `{"type":"ping","ref":"r3"}`),
		clientFrame(pong, true, false, ""),
		clientFrame(text, false, false, `{"type":"ping",`),
		clientFrame(cont, true, false, `"ref":"r4"}`),
	} {
		b = append(b, f...)
	}
	raw := w.conn.NetConn()
	for _, part := range [][]byte{b[:1], b[1:9], b[9:150], b[150:]} {
		if _, err := raw.Write(part); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // let the server read each part alone
	}
	for _, ref := range []string{"r1", "r2", "r3", "r4"} {
		w.take(t, "pong "+ref, func(f frame) bool { return f.Type == "pong" && f.Ref == ref })
	}
	// The server answered both pings before the frames after them.
	if n := pongs.Load(); n != 2 {
		t.Errorf("pongs received = %d; want 2", n)
	}

	// A malformed control frame (unmasked) ends the connection.
	if _, err := raw.Write([]byte{0x80 | ping, 0}); err != nil {
		t.Fatal(err)
	}
	if err := w.waitEnd(t, "the connection closed"); !websocket.IsCloseError(err, websocket.CloseProtocolError) {
		t.Errorf("connection ended with %v; want a protocol error", err)
	}
}

// TestReaderIdleHandoff: a connection idle for longer than the reader's
// idle time (its wait moves to a fresh goroutine) still reads pings and
// frames in order, before and after.
func TestReaderIdleHandoff(t *testing.T) {
	w, pongs := connectCountingPongs(t)
	raw := w.conn.NetConn()
	send := func(f []byte) {
		t.Helper()
		if _, err := raw.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	send(clientFrame(websocket.TextMessage, true, false, `{"type":"ping","ref":"r1"}`))
	w.take(t, "pong r1", func(f frame) bool { return f.Type == "pong" && f.Ref == "r1" })
	for i, ref := range []string{"r2", "r3"} {
		time.Sleep(400 * time.Millisecond) // longer than the reader's idle time
		send(clientFrame(websocket.PingMessage, true, false, "p"))
		send(clientFrame(websocket.TextMessage, true, false, `{"type":"ping","ref":"`+ref+`"}`))
		w.take(t, "pong "+ref, func(f frame) bool { return f.Type == "pong" && f.Ref == ref })
		if n := pongs.Load(); n != int64(i+1) {
			t.Errorf("after idle %d: pongs received = %d; want %d", i+1, n, i+1)
		}
	}
}
