package web_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/web"
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

// TestFramesAcrossReads: frames written back to back in one write, more
// than the server reads at once, one of them longer than that, are all
// read and answered in order, whichever read ends inside which frame.
func TestFramesAcrossReads(t *testing.T) {
	w, _ := connectCountingPongs(t)
	const n, long = 60, 30
	var b []byte
	for i := range n {
		payload := fmt.Sprintf(`{"type":"ping","ref":"r%d"}`, i)
		if i == long {
			payload = fmt.Sprintf(`{"type":"ping",%s"ref":"r%d"}`, strings.Repeat(" ", 3000), i)
		}
		b = append(b, clientFrame(websocket.TextMessage, true, false, payload)...)
	}
	if _, err := w.conn.NetConn().Write(b); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if f := w.next(t); f.Type != "pong" || f.Ref != fmt.Sprintf("r%d", i) {
			t.Fatalf("answer %d: %s; want the pong r%d", i, f, i)
		}
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

// TestPipelinedSends sends many messages without waiting for their acks,
// two bad ones among them, then a sync: the server queues the sends in the
// store while it reads on, and answers every frame in the order sent, with
// the messages stored in that order.
func TestPipelinedSends(t *testing.T) {
	ts := newTestServer(t, withChat(func(c *chat.Config) { c.MaxMessageLen = 100 }), withWeb(func(c *web.Config) { c.SendBurst = 1000 }))
	_, _, room, wa, wg := ts.adaAndGrace(t)
	const n = 80 // more than one connection may have queued
	// Refused once queued (too long), and before (no body).
	const tooLong, noBody = 50, 60
	for i := range n {
		f := map[string]any{"type": "send", "room_id": room.ID, "client_id": fmt.Sprintf("c%d", i), "body": fmt.Sprintf("m%d", i)}
		switch i {
		case tooLong:
			f["body"] = strings.Repeat("x", 101)
		case noBody:
			delete(f, "body")
		}
		wa.send(t, f)
	}
	wa.send(t, map[string]any{"type": "sync", "room_id": room.ID, "ref": "after", "after": 0})
	wa.send(t, map[string]any{"type": "ping", "ref": "last"})

	var stored []string // bodies in the order acked
	var last int64      // the seq of the last ack
	next := 0           // the send whose answer comes next
	for done := false; !done; {
		f := wa.next(t)
		switch f.Type {
		case "message", "presence", "read":
			continue // events, not answers
		case "ack":
			if next >= n || next == tooLong || next == noBody || f.ClientID != fmt.Sprintf("c%d", next) || f.Message == nil || (last != 0 && f.Message.Seq != last+1) {
				t.Fatalf("answer %d: %s; want the ack of c%d, after seq %d", next, f, next, last)
			}
			last = f.Message.Seq
			stored = append(stored, f.Message.Body)
			next++
		case "error":
			if (next != tooLong && next != noBody) || f.Ref != fmt.Sprintf("c%d", next) {
				t.Fatalf("answer %d: %s; want the ack of c%d", next, f, next)
			}
			next++
		case "sync":
			texts := 0
			for _, m := range f.Messages {
				if m.Kind == "text" {
					texts++
				}
			}
			if next != n || f.Ref != "after" || texts != len(stored) {
				t.Fatalf("sync (ref %q) after %d answers, with %d texts; want it after all %d, with %d", f.Ref, next, texts, n, len(stored))
			}
		case "pong":
			done = true
		default:
			t.Fatalf("unexpected frame %s", f)
		}
	}
	if len(stored) != n-2 {
		t.Fatalf("%d acks; want %d", len(stored), n-2)
	}
	first := last - int64(len(stored)) + 1
	for i, body := range stored {
		if m := wg.expectMessage(t, room.ID, first+int64(i)); m.Body != body {
			t.Errorf("seq %d holds %q; want %q", first+int64(i), m.Body, body)
		}
	}
	if want := []string{"m49", "m51"}; stored[49] != want[0] || stored[50] != want[1] {
		t.Errorf("acked bodies %q around the refused one; want %q", stored[49:51], want)
	}
}

// TestBinaryErrorAfterAcks: "The server answers a connection's
// frames in the order it received them" (docs/protocol.md). A binary frame
// sent after pipelined sends must be answered (with its error) after their
// acks.
func TestBinaryErrorAfterAcks(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.SendBurst = 1000 }))
	_, _, room, wa, _ := ts.adaAndGrace(t)
	const n = 20
	for i := range n {
		wa.send(t, map[string]any{"type": "send", "room_id": room.ID, "client_id": fmt.Sprintf("c%d", i), "body": fmt.Sprintf("m%d", i)})
	}
	wa.sendRaw(t, websocket.BinaryMessage, []byte(`{"type":"ping","ref":"bin"}`))
	wa.send(t, map[string]any{"type": "ping", "ref": "last"})
	acks := 0
	for done := false; !done; {
		f := wa.next(t)
		switch f.Type {
		case "ack":
			acks++
		case "error":
			if acks != n {
				t.Fatalf("error frame %s came after %d acks; want it after all %d", f, acks, n)
			}
		case "pong":
			done = true
		}
	}
}

// TestHelloFirstOnResume: "hello — first frame after the upgrade"
// (docs/protocol.md), also when events_after replays logged events.
func TestHelloFirstOnResume(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	ts.requestFriend(t, ada, grace.ID) // a logged event for Grace: user_seq 1
	conn, resp, err := ts.dial(t, grace, "/api/ws?events_after=0", dialOptions{})
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, statusOf(resp))
	}
	w := newWSClient(t, grace.Name, conn)
	w.startReading()
	if f := w.next(t); f.Type != "hello" {
		t.Fatalf("first frame %s; want hello", f)
	}
}

// TestNothingHandledAfterSignOut: once the hub closed a connection because its
// session signed out, frames that arrive on it before the socket closes
// should not be acted on.
func TestNothingHandledAfterSignOut(t *testing.T) {
	ts := newTestServer(t)
	phone := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	room := ts.enterRoom(t, phone, "general")
	ts.enterRoom(t, grace, "general")
	wp := ts.connectWith(t, phone, dialOptions{}) // read here only: a reader would answer the close at once
	wp.readNow(t, "hello")
	wp.send(t, map[string]any{"type": "open", "room_id": room.ID, "ref": "o"})
	wp.readNow(t, "opened")

	if r := ts.do(t, phone, "POST", "/api/auth/signout", nil); r.Status != http.StatusNoContent {
		t.Fatalf("sign out = %s; want 204", r)
	}
	b, _ := json.Marshal(map[string]any{"type": "send", "room_id": room.ID, "client_id": "after-signout", "body": "posted after sign-out"})
	if _, err := wp.conn.NetConn().Write(clientFrame(websocket.TextMessage, true, false, string(b))); err != nil {
		t.Fatal(err)
	}
	wp.startReading()
	wp.expectClose(t, web.CloseSessionEnded)
	time.Sleep(100 * time.Millisecond)
	for _, m := range ts.allMessages(t, grace, room.ID) {
		if m.ClientID == "after-signout" {
			t.Fatalf("message %q stored after its session signed out", m.Body)
		}
	}
}

// TestHostileFrames sends one malformed sequence per connection and
// checks the server ends it as RFC 6455 asks, and then still serves a
// fresh connection.
func TestHostileFrames(t *testing.T) {
	// A WebSocket a case, opened in a row: past the default burst of opens.
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.MaxFrameBytes = 1000; c.PongWait = 500 * time.Millisecond; c.OpenBurst = 100 }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	const text, cont, closeOp, ping, pong = websocket.TextMessage, 0, websocket.CloseMessage, websocket.PingMessage, websocket.PongMessage
	unmasked := func(b0 byte, payload string) []byte { return append([]byte{b0, byte(len(payload))}, payload...) }
	cat := func(fs ...[]byte) []byte {
		var b []byte
		for _, f := range fs {
			b = append(b, f...)
		}
		return b
	}
	msg := `{"type":"ping","ref":"x"}`
	big := `{"type":"ping","ref":"` + strings.Repeat("y", 1000) + `"}`
	cases := []struct {
		name string
		b    []byte
		code int // 0: any end
	}{
		{"unmasked text", unmasked(0x80|text, msg), websocket.CloseProtocolError},
		{"unmasked ping", unmasked(0x80|ping, "p"), websocket.CloseProtocolError},
		{"ping 126", clientFrame(ping, true, false, strings.Repeat("p", 126)), websocket.CloseProtocolError},
		{"ping 125 in 64 bits", clientFrame(ping, true, true, strings.Repeat("p", 125)), websocket.CloseProtocolError},
		{"pong 200", clientFrame(pong, true, false, strings.Repeat("p", 200)), websocket.CloseProtocolError},
		{"ping not final", clientFrame(ping, false, false, "p"), websocket.CloseProtocolError},
		{"ping rsv1", func() []byte { b := clientFrame(ping, true, false, "p"); b[0] |= 0x40; return b }(), websocket.CloseProtocolError},
		{"text rsv2", func() []byte { b := clientFrame(text, true, false, msg); b[0] |= 0x20; return b }(), websocket.CloseProtocolError},
		{"opcode 3", clientFrame(3, true, false, "x"), websocket.CloseProtocolError},
		{"opcode 0xb", clientFrame(0xb, true, false, "x"), websocket.CloseProtocolError},
		{"lone continuation", clientFrame(cont, true, false, msg), websocket.CloseProtocolError},
		{"text inside text", cat(clientFrame(text, false, false, "{"), clientFrame(text, true, false, msg)), websocket.CloseProtocolError},
		{"big ping inside fragments", cat(clientFrame(text, false, false, "{"), clientFrame(ping, true, false, strings.Repeat("p", 126))), websocket.CloseProtocolError},
		{"fragmented ping inside fragments", cat(clientFrame(text, false, false, "{"), clientFrame(ping, false, false, "p")), websocket.CloseProtocolError},
		{"too big", clientFrame(text, true, false, big), websocket.CloseMessageTooBig},
		{"too big in fragments", cat(clientFrame(text, false, false, big[:600]), clientFrame(cont, true, false, big[600:])), websocket.CloseMessageTooBig},
		{"64-bit length msb", []byte{0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, 0},
		{"close code 1005", clientFrame(closeOp, true, false, "\x03\xed"), websocket.CloseProtocolError},
		{"close bad utf8", clientFrame(closeOp, true, false, "\x03\xe8\xff\xfe"), websocket.CloseProtocolError},
		{"close 126", clientFrame(closeOp, true, false, "\x03\xe8"+strings.Repeat("c", 124)), websocket.CloseProtocolError},
		{"header then stall", clientFrame(text, true, false, msg)[:3], 0},
		{"half header then stall", clientFrame(text, true, false, msg)[:1], 0},
		{"ping header then stall", clientFrame(ping, true, false, "abc")[:4], 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := ts.connectWith(t, ada, dialOptions{})
			w.readNow(t, "hello")
			w.startReading()
			if _, err := w.conn.NetConn().Write(c.b); err != nil {
				t.Fatal(err)
			}
			err := w.waitEnd(t, "the connection's end")
			if c.code != 0 && !websocket.IsCloseError(err, c.code) {
				t.Errorf("ended with %v; want close %d", err, c.code)
			}
		})
	}
	w := ts.connect(t, ada)
	w.barrier(t)
}

// TestReplayPastOutbox: a client that returns with
// events_after behind by more logged events than its outbox holds (but
// fewer than the 1,000 replayed) gets them, rather than a close as too
// slow before it could read a thing.
func TestReplayPastOutbox(t *testing.T) {
	// The default outbox, 256 frames; sends, and adds of a user who is
	// not a friend, enough for Ada's adds and removals.
	const cycles = 130 // 260 logged events for Grace: more than the outbox holds, fewer than maxReplay
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.SendRate, c.SendBurst = 1000, 1000 }),
		withChat(func(c *chat.Config) { c.AddsByStrangersPerDay, c.StrangerAddsPerHour = cycles, cycles }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	g := ts.createGroup(t, ada, "crew", 0)
	for range cycles {
		ts.addMember(t, ada, g.ID, grace)
		ts.mustDo(t, ada, "DELETE", memberPath(g.ID, grace, ""), nil, http.StatusNoContent, nil)
	}
	conn, resp, err := ts.dial(t, grace, "/api/ws?events_after=0", dialOptions{})
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, statusOf(resp))
	}
	w := newWSClient(t, grace.Name, conn)
	w.startReading()
	for i := range 2 * cycles {
		f := w.take(t, fmt.Sprintf("logged event %d", i+1), func(f frame) bool { return f.UserSeq > 0 })
		if f.UserSeq != int64(i+1) {
			t.Fatalf("logged event %d: %s", i+1, f)
		}
	}
}

// TestUserConnCap: a user holds at most Config.MaxUserConns connections
// on a node, WebSockets and long-poll channels together; one more is
// refused as too many, before any upgrade, and a place freed is taken
// again.
func TestUserConnCap(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.MaxUserConns = 2; c.PollHold = 100 * time.Millisecond }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	first := ts.connect(t, ada)
	ts.connect(t, ada)
	conn, resp, err := ts.dial(t, ada, "/api/ws", dialOptions{})
	if err == nil {
		conn.Close()
		t.Fatal("a third WebSocket with a cap of 2 was opened")
	}
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a third WebSocket: %v (%s); want 429", err, statusOf(resp))
	}
	wantError(t, "a long-poll channel past the cap", ts.do(t, ada, "GET", "/api/poll", nil), http.StatusTooManyRequests, "rate_limited")
	ts.connect(t, grace).barrier(t) // another user is not bound by Ada's connections

	first.conn.Close()
	deadline := time.Now().Add(waitTimeout)
	for {
		conn, _, err := ts.dial(t, ada, "/api/ws", dialOptions{})
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no WebSocket within %s of one closed: %v", waitTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWebSocketRequestRateLimit: frames other than send have a limit of
// their own per connection, five times the send rate and burst
// (docs/protocol.md, Limits): past it they get rate_limited and are not
// acted on.
func TestWebSocketRequestRateLimit(t *testing.T) {
	// A rate so low that no token comes back during the test.
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.SendRate, c.SendBurst = 0.001, 1 }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	w := ts.connect(t, ada)
	for i := 1; i <= 6; i++ {
		w.send(t, map[string]any{"type": "ping", "ref": fmt.Sprintf("p-%d", i)})
	}
	for i := 1; i <= 5; i++ {
		ref := fmt.Sprintf("p-%d", i)
		w.take(t, "pong "+ref, func(f frame) bool { return f.Type == "pong" && f.Ref == ref })
	}
	if f := w.expectError(t, "p-6"); f.Code != chat.CodeRateLimited || f.RetryAfterMS <= 0 {
		t.Fatalf("sixth ping = %s; want rate_limited with retry_after_ms", f)
	}
}

// TestUserConnCapConcurrent: WebSockets of one user that connect all at
// once are held to the cap as those that come one after another.
func TestUserConnCapConcurrent(t *testing.T) {
	const max, tries = 2, 16
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.MaxUserConns = max }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	start := make(chan struct{})
	var wg sync.WaitGroup
	var opened atomic.Int64
	for range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			conn, _, err := ts.dial(t, ada, "/api/ws", dialOptions{})
			if err != nil {
				return
			}
			t.Cleanup(func() { conn.Close() }) // none closes before all are dialled
			_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
			if _, data, err := conn.ReadMessage(); err == nil && strings.Contains(string(data), `"type":"hello"`) {
				opened.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := opened.Load(); n > max {
		t.Errorf("%d of %d WebSockets dialled at once were opened; want at most %d", n, tries, max)
	}
}

// TestOpenBadAfterChangesNothing: an open whose after is negative gets an
// invalid_field error, and nothing else: the room is not opened (no
// opened reply, no presence, no live messages).
func TestOpenBadAfterChangesNothing(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	room := ts.enterRoom(t, ada, "general")
	ts.enterRoom(t, grace, "general")
	wa := ts.connect(t, ada)
	wa.open(t, room.ID, nil)
	wg := ts.connect(t, grace)

	ref := wg.newRef()
	wg.send(t, map[string]any{"type": "open", "room_id": room.ID, "after": -1, "ref": ref})
	f := wg.take(t, "the answer to open", func(f frame) bool { return f.Ref == ref })
	if f.Type != "error" || f.Code != "invalid_field" || f.Field != "after" {
		t.Fatalf("open with after -1: got %s; want an invalid_field error on after", f)
	}
	m := wa.sendMessage(t, room.ID, "a-1", "hello")
	wg.barrier(t)
	for _, f := range wg.drain() {
		if f.Ref == ref || f.Type == "message" && f.Message != nil && f.Message.Seq == m.Seq {
			t.Errorf("after a refused open: got %s", f)
		}
	}
	wa.barrier(t)
	for _, f := range wa.drain() {
		if f.Type == "presence" {
			t.Errorf("after Grace's refused open, Ada got %s", f)
		}
	}
}

// failConversation is a store whose Conversation, once armed, fails once,
// as a database that is briefly unreachable would.
type failConversation struct {
	chat.Store
	armed atomic.Bool
}

func (s *failConversation) Conversation(ctx context.Context, id, userID int64) (chat.Conversation, bool, error) {
	if s.armed.CompareAndSwap(true, false) {
		return chat.Conversation{}, false, errors.New("database unreachable")
	}
	return s.Store.Conversation(ctx, id, userID)
}

// TestGroupFollowedAfterFailedOpenOrClose: a connection receives the
// messages of every group its user belongs to, opened or not; an open or
// a close of a group that fails on the store's side does not stop that.
func TestGroupFollowedAfterFailedOpenOrClose(t *testing.T) {
	st := &failConversation{}
	ts := newTestServer(t, withStore(func(s chat.Store) chat.Store { st.Store = s; return st }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	g := ts.createGroup(t, ada, "crew", 0)
	ts.addMember(t, ada, g.ID, grace)
	wa := ts.connect(t, ada)
	wg := ts.connect(t, grace)

	st.armed.Store(true)
	ref := wg.newRef()
	wg.send(t, map[string]any{"type": "open", "room_id": g.ID, "ref": ref})
	if f := wg.expectError(t, ref); f.Code != "internal" {
		t.Fatalf("open while the store fails: got %s; want an internal error", f)
	}
	m := wa.sendMessage(t, g.ID, "a-1", "after the failed open")
	wg.expectMessage(t, g.ID, m.Seq)

	wg.open(t, g.ID, nil)
	st.armed.Store(true)
	ref = wg.newRef()
	wg.send(t, map[string]any{"type": "close", "room_id": g.ID, "ref": ref})
	wg.take(t, "the answer to close", func(f frame) bool { return f.Ref == ref })
	m = wa.sendMessage(t, g.ID, "a-2", "after the close")
	wg.expectMessage(t, g.ID, m.Seq)
}

// TestClientPingsKeepAlive: a connection is closed after PongWait with
// nothing from the client, "no pong, no frame" (docs/protocol.md); a ping
// of the client's own is a frame from it, and answered, even from a client
// that does not answer the server's.
func TestClientPingsKeepAlive(t *testing.T) {
	// PongWait is far above the 100 ms between the client's pings: on a
	// loaded machine under -race, the client's or the server's goroutine
	// may stall for a good part of a second between two of them.
	const pongWait = 2 * time.Second
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.PingInterval, c.PongWait = 50*time.Millisecond, pongWait }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	conn, _, err := ts.dial(t, ada, "/api/ws", dialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetPingHandler(func(string) error { return nil }) // the server's pings go unanswered
	pongs := make(chan struct{}, 64)
	conn.SetPongHandler(func(string) error {
		select {
		case pongs <- struct{}{}:
		default:
		}
		return nil
	})
	read := make(chan error, 1)
	go func() {
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				read <- err
				return
			}
		}
	}()
	for i, start := 0, time.Now(); time.Since(start) < 2*pongWait; i++ {
		if err := conn.WriteControl(websocket.PingMessage, []byte(fmt.Sprint(i)), time.Now().Add(time.Second)); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
		select {
		case err := <-read:
			t.Fatalf("connection ended after %d pings of the client's own: %v", i, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if len(pongs) == 0 {
		t.Errorf("no pong answered the client's pings")
	}
}

// TestSlowReaderGoodbyeOutlivesPings: the close frame 4000 of a client cut
// off for being slow waits behind what its congested socket holds; a ping
// due meanwhile must not cut the socket, and the goodbye with it, short.
// Pings come every few milliseconds here, so several fall due while the
// client reads nothing; it must still get 4000 once it reads.
func TestSlowReaderGoodbyeOutlivesPings(t *testing.T) {
	ts := newTestServer(t, func(c *testConfig) {
		c.web.Outbox = 8
		c.web.SendRate, c.web.SendBurst = 1000, 1000
		c.web.WriteWait = time.Minute // cut off for being slow, not by a write timeout
		c.web.PingInterval = 20 * time.Millisecond
		c.sndbuf = 8 << 10
	})
	ada := ts.signIn(t, "ada@example.com", "Ada")
	slow := ts.signIn(t, "slow@example.com", "Slowpoke")
	room := ts.enterRoom(t, ada, "general")
	ts.enterRoom(t, slow, "general")
	ws := ts.connectWith(t, slow, dialOptions{rcvbuf: 16 << 10})
	ws.readNow(t, "hello")
	ws.send(t, map[string]any{"type": "open", "room_id": room.ID})
	ws.readNow(t, "opened")
	ws.drain()

	body := strings.Repeat("flood ", 400)
	for i := range 100 {
		ts.post(t, ada, room.ID, fmt.Sprintf("f-%d", i), body)
	}
	time.Sleep(300 * time.Millisecond) // pings fall due while the goodbye waits
	ws.startReading()
	ws.expectClose(t, web.CloseTooSlow)
}
