package web

import (
	"bytes"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/hub"
)

// congestedConn returns a native connection whose peer reads nothing, on
// sockets with small buffers, and its hub client, with an outbox of
// outbox frames and no writer: the test flushes it.
func congestedConn(t *testing.T, outbox int) (*conn, *hub.Client) {
	t.Helper()
	ws, peer := wsPair(t)
	if tc, ok := ws.NetConn().(*frameConn).Conn.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4 << 10)
	}
	if tc, ok := peer.NetConn().(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 10)
	}
	cl, err := hub.New(nil, slog.New(slog.DiscardHandler)).Register(0, 0, outbox, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{WriteWait: time.Minute} // cut off for being slow, not by a write timeout
	c := &conn{s: &server{cfg: cfg, log: slog.New(slog.DiscardHandler), writers: newWriters()}, format: formatNative, client: cl}
	c.setWS(ws)
	if !c.nb {
		t.Fatal("the upgraded socket's writes may block")
	}
	t.Cleanup(func() { _ = ws.Close() })
	return c, cl
}

// A client whose socket congested while its writer held frames taken
// from the outbox is closed as slow once those and the ones queued since
// pass the outbox's bound: the writer's frames are still the client's
// to read. Before, Next emptied the outbox into the writer, which kept
// what the congested socket stopped, and the outbox took as many again.
func TestCongestedWriterKeepsOutboxBound(t *testing.T) {
	t.Run("frames", func(t *testing.T) {
		const outbox = 8
		c, cl := congestedConn(t, outbox)
		frame := func(b byte) *hub.Item { // larger than a coalesced frame: one frame each
			return &hub.Item{Raw: bytes.Repeat([]byte{b}, maxCoalesce+1)}
		}
		for i := range outbox {
			if !cl.Push(frame(byte('a' + i))) {
				t.Fatalf("Push %d of %d closed the client", i+1, outbox)
			}
		}
		c.flush(cl, false) // writes the first frame, which congests the socket
		if !c.sock().draining() {
			t.Fatal("the socket did not congest on a peer that reads nothing")
		}
		pushed := 0
		for range outbox {
			if !cl.Push(frame('z')) {
				break
			}
			pushed++
		}
		if !cl.Closed() || cl.Reason() != hub.ReasonSlow {
			t.Fatalf("%d frames taken from an outbox of %d, %d of them unwritten, and %d more queued: client closed %v (%v); want closed as slow",
				outbox, outbox, outbox-1, pushed, cl.Closed(), cl.Reason())
		}
		if pushed > 1 {
			t.Errorf("the outbox took %d frames after %d unwritten; want at most 1 (a bound of %d)", pushed, outbox-1, outbox)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		c, cl := congestedConn(t, 256)
		const size = 1 << 20
		for i := range 4 { // maxOwnBytes
			if !cl.Push(&hub.Item{Raw: bytes.Repeat([]byte{byte('a' + i)}, size)}) {
				t.Fatalf("Push of own frame %d closed the client", i+1)
			}
		}
		c.flush(cl, false)
		if !c.sock().draining() {
			t.Fatal("the socket did not congest on a peer that reads nothing")
		}
		pushed := 0
		for range 8 {
			if !cl.Push(&hub.Item{Raw: bytes.Repeat([]byte{'z'}, size)}) {
				break
			}
			pushed++
		}
		if !cl.Closed() || cl.Reason() != hub.ReasonSlow {
			t.Fatalf("3 MiB of own frames unwritten and %d MiB more queued: client closed %v (%v); want closed as slow", pushed, cl.Closed(), cl.Reason())
		}
		if pushed > 1 {
			t.Errorf("the outbox took %d MiB of own frames after 3 MiB unwritten; want at most 1 (a bound of 4 MiB past the first)", pushed)
		}
	})
}

// TestSlowCloseFreesOutbox: a WebSocket closed as too slow is told so
// with its goodbye, and nothing of its outbox is written after it: once
// its writer has seen the close, neither the outbox nor the writer holds
// a frame, though the connection lingers until the peer answers the
// goodbye or its write times out (WriteWait, then closeGrace). Before,
// the outbox's frames (up to its bound, and 4 MiB of own frames) stayed
// until then, for every client evicted at once.
func TestSlowCloseFreesOutbox(t *testing.T) {
	const outbox = 8
	c, cl := congestedConn(t, outbox)
	frame := func(b byte) *hub.Item { // larger than a coalesced frame: one frame each
		return &hub.Item{Raw: bytes.Repeat([]byte{b}, maxCoalesce+1)}
	}
	for i := range outbox {
		if !cl.Push(frame(byte('a' + i))) {
			t.Fatalf("Push %d of %d closed the client", i+1, outbox)
		}
	}
	c.flush(cl, false) // writes the first frame, which congests the socket
	if !c.sock().draining() {
		t.Fatal("the socket did not congest on a peer that reads nothing")
	}
	for range outbox {
		if !cl.Push(frame('z')) {
			break
		}
	}
	if cl.Reason() != hub.ReasonSlow {
		t.Fatalf("client closed for %v; want closed as slow", cl.Reason())
	}
	c.flush(cl, false) // as the close's wake does: says goodbye
	c.wmu.Lock()
	held := len(c.buf) - int(c.off)
	c.wmu.Unlock()
	if n := cl.Queued(); n != 0 || held != 0 {
		t.Errorf("after the goodbye of a client closed as slow, its outbox holds %d frames and its writer %d; want 0 and 0", n, held)
	}
}
