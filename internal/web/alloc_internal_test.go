package web

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
)

// wsPair returns the server's end of a WebSocket on loopback, upgraded
// as the server upgrades, and the client's end.
func wsPair(t *testing.T) (srv, peer *websocket.Conn) {
	t.Helper()
	up := newUpgrader(func(*http.Request) bool { return true })
	got := make(chan *websocket.Conn, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(hijacker{w}, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		got <- ws
	}))
	t.Cleanup(hs.Close)
	peer, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = peer.Close() })
	select {
	case srv = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not upgrade")
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv, peer
}

// countingPair is wsPair's server end as a native connection of a server
// configured by cfg, for a test that counts allocations; it skips the test
// under the race detector, whose sync.Pool drops items (.ci/run runs these
// tests without -race).
func countingPair(t *testing.T, cfg Config) (*conn, *websocket.Conn) {
	t.Helper()
	if raceEnabled {
		t.Skip("the race detector's sync.Pool drops items; .ci/run runs this test without -race")
	}
	ws, peer := wsPair(t)
	c := &conn{s: &server{cfg: cfg}, format: formatNative}
	c.setWS(ws)
	return c, peer
}

// Writing a delivery allocates nothing. What the server allocated per
// delivery had the collector run every few seconds while it fanned
// messages out to a room of 10,000 (target 4 of docs/benchmarks.md). An
// item shared by every client is written as the
// frame prepared once for all of them, on the RawConn the socket's
// frameConn keeps; the peer reads what WriteMessage would have framed.
// An item of one client's own (Raw), or of a room smaller than
// minPrepared, is written the usual way.
func TestWriteAllocatesNothing(t *testing.T) {
	c, peer := countingPair(t, Config{WriteWait: time.Minute})
	if !c.nb {
		t.Fatal("the upgraded socket's writes may block")
	}
	cl := &hub.Client{UserID: 1}
	ev := chat.Event{Type: chat.EventMessage, ConvID: 7, Message: &chat.Message{
		ConvID: 7, Seq: 42, Kind: chat.KindText, SenderID: 2, SenderName: "bo", Body: "hello, room", CreatedAt: time.Unix(1e9, 0).UTC(),
	}}
	shared := &hub.Item{Event: ev, Fanout: minPrepared}
	own := &hub.Item{Raw: []byte(`{"type":"pong","ref":"r1"}`)}

	const runs = 100
	want := shared.Encoded(formatNative, encodeNative)
	read := make(chan error, 1)
	go func() {
		for i := range runs + 2 { // AllocsPerRun calls once more to warm up; then own
			_, b, err := peer.ReadMessage()
			if err != nil {
				read <- err
				return
			}
			if i == runs+1 {
				want = own.Raw
			}
			if !bytes.Equal(b, want) {
				read <- fmt.Errorf("frame %d is %q; want %q", i, b, want)
				return
			}
		}
		read <- nil
	}()
	items := []*hub.Item{shared}
	var failed error
	allocs := testing.AllocsPerRun(runs, func() {
		if n, err := c.write(cl, items); (n != 1 || err != nil) && failed == nil {
			failed = fmt.Errorf("write = %d, %v; want 1, nil", n, err)
		}
	})
	if failed != nil {
		t.Fatal(failed)
	}
	if _, err := c.write(cl, []*hub.Item{own}); err != nil {
		t.Fatal(err)
	}
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Fatalf("writing a delivery allocates %v times; want none", allocs)
	}
	if c.prepared(shared) == nil || c.prepared(own) != nil {
		t.Fatal("a shared item has no prepared frame, or one client's own has one")
	}
	// An item of a small room is not worth preparing: written the usual
	// way, it costs gorilla's one allocation.
	small := &hub.Item{Event: ev, Fanout: minPrepared - 1}
	go func() {
		for range runs + 1 {
			if _, _, err := peer.ReadMessage(); err != nil {
				return
			}
		}
	}()
	if allocs := testing.AllocsPerRun(runs, func() { _, _ = c.write(cl, []*hub.Item{small}) }); allocs != 1 || c.prepared(small) != nil {
		t.Fatalf("an item of a small room: %v allocations per write, prepared %v; want 1, none", allocs, c.prepared(small) != nil)
	}
}

// Reading a message allocates no buffer for it: the message is read into a
// pooled buffer, which the next one reuses (gorilla's ReadMessage made a
// new one of 512 bytes and more for each). Gorilla's reader of the message
// is the one allocation left.
func TestReadAllocatesNoBuffer(t *testing.T) {
	c, peer := countingPair(t, Config{PongWait: time.Minute})
	const runs = 50
	// Longer than 512 bytes, so that io.ReadAll would grow its buffer.
	msg := []byte(`{"type":"send","room_id":7,"client_id":"c1","body":"` + strings.Repeat("x", 600) + `"}`)
	// All written before counting: the writer's allocations would count
	// too. They fit in the sockets' buffers.
	for range runs + 1 { // AllocsPerRun calls once more to warm up
		if err := peer.WriteMessage(websocket.TextMessage, msg); err != nil {
			t.Fatal(err)
		}
	}
	var failed error
	allocs := testing.AllocsPerRun(runs, func() {
		err := c.readMessage(func(b []byte, _ bool) {
			if !bytes.Equal(b, msg) && failed == nil {
				failed = fmt.Errorf("read %q; want %q", b, msg)
			}
		})
		if err != nil && failed == nil {
			failed = fmt.Errorf("readMessage: %v", err)
		}
	})
	if failed != nil {
		t.Fatal(failed)
	}
	if allocs > 1 {
		t.Fatalf("reading a message allocates %v times; want at most gorilla's reader", allocs)
	}
}
