package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/web"
)

// A user's limits (docs/protocol.md, Limits: sends, and other frames),
// which their connections share (user_limit_test.go), outlive the
// connections until full again: a connection that takes the place of one
// that ended starts where the limits were, so closing and opening a
// connection again makes no more room. Before, each connection
// started with a full burst: a client that opened a WebSocket, sent its
// burst, and opened another, without bound on how often, stored as many
// messages as it could open connections. The cap of one connection makes
// every connection here take the place of the one before.

// lowLimits is a send rate so low that no token comes back during a test,
// with a burst of one send (five other frames), and one connection a user.
func lowLimits(c *web.Config) { c.SendRate, c.SendBurst, c.MaxUserConns = 0.001, 1, 1 }

// reconnect opens /api/ws as c once the server has counted out c's
// connection that was closed (Config.MaxUserConns is 1).
func (ts *testServer) reconnect(tb testing.TB, c *client) *wsClient {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		conn, resp, err := ts.dial(tb, c, "/api/ws", dialOptions{})
		if err == nil {
			w := newWSClient(tb, c.Name, conn)
			w.startReading()
			w.expect(tb, "hello")
			return w
		}
		if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			tb.Fatalf("dial /api/ws as %s: %v (%s)", c.Name, err, statusOf(resp))
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no WebSocket within %s of the one before closed: %v", waitTimeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sendFrame(roomID int64, clientID string) map[string]any {
	return map[string]any{"type": "send", "room_id": roomID, "client_id": clientID, "body": "hi"}
}

// TestSendLimitAcrossReconnects: a WebSocket that replaces one that used
// up its sends has none either.
func TestSendLimitAcrossReconnects(t *testing.T) {
	ts := newTestServer(t, withWeb(lowLimits))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	w := ts.connect(t, ada)
	w.sendMessage(t, room.ID, "c-1", "hi")
	w.send(t, sendFrame(room.ID, "c-2"))
	if f := w.expectError(t, "c-2"); f.Code != chat.CodeRateLimited {
		t.Fatalf("second send = %s; want rate_limited", f)
	}
	w.conn.Close()
	for i := 3; i <= 5; i++ {
		w = ts.reconnect(t, ada)
		id := fmt.Sprintf("c-%d", i)
		w.send(t, sendFrame(room.ID, id))
		f := w.take(t, "answer to "+id, func(f frame) bool {
			return f.Type == "ack" && f.ClientID == id || f.Type == "error" && f.Ref == id
		})
		if f.Type != "error" || f.Code != chat.CodeRateLimited || f.RetryAfterMS <= 0 {
			t.Fatalf("send %s on a new connection = %s; want rate_limited with retry_after_ms", id, f)
		}
		w.conn.Close()
	}
	if n := len(ts.allMessages(t, ada, room.ID)); n != 2 {
		t.Errorf("the room holds %d messages; want 2: the join notice and c-1", n)
	}
}

// TestFrameLimitAcrossReconnects: so do the frames other than sends.
func TestFrameLimitAcrossReconnects(t *testing.T) {
	ts := newTestServer(t, withWeb(lowLimits))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	w := ts.connect(t, ada)
	for i := 1; i <= 5; i++ {
		ref := fmt.Sprintf("p-%d", i)
		w.send(t, map[string]any{"type": "ping", "ref": ref})
		w.take(t, "pong "+ref, func(f frame) bool { return f.Type == "pong" && f.Ref == ref })
	}
	w.conn.Close()
	w = ts.reconnect(t, ada)
	w.send(t, map[string]any{"type": "ping", "ref": "p-6"})
	f := w.take(t, "answer to p-6", func(f frame) bool { return f.Ref == "p-6" })
	if f.Type != "error" || f.Code != chat.CodeRateLimited {
		t.Fatalf("sixth ping, on a new connection = %s; want rate_limited", f)
	}
}

// TestPollSendLimitAcrossChannels: a long-poll channel that a client
// ends (DELETE) and makes again has the sends the ended one had left.
func TestPollSendLimitAcrossChannels(t *testing.T) {
	ts := newTestServer(t, withWeb(lowLimits))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	newChannel := func() string {
		var body struct {
			Cursor string            `json:"cursor"`
			Frames []json.RawMessage `json:"frames"`
		}
		ts.mustDo(t, ada, "GET", "/api/poll", nil, http.StatusOK, &body)
		return body.Cursor
	}
	post := func(cursor, clientID string) frame { return ts.pollSend(t, ada, cursor, room.ID, clientID) }
	cur := newChannel()
	if f := post(cur, "c-1"); f.Type != "ack" {
		t.Fatalf("first send = %s; want its ack", f)
	}
	if f := post(cur, "c-2"); f.Code != chat.CodeRateLimited {
		t.Fatalf("second send = %s; want rate_limited", f)
	}
	for i := 3; i <= 5; i++ {
		ts.mustDo(t, ada, "DELETE", "/api/poll?cursor="+url.QueryEscape(cur), nil, http.StatusNoContent, nil)
		cur = newChannel()
		id := fmt.Sprintf("c-%d", i)
		if f := post(cur, id); f.Type != "error" || f.Code != chat.CodeRateLimited {
			t.Fatalf("send %s on a new channel = %s; want rate_limited", id, f)
		}
	}
}

// TestChannelsCompatSendLimitAcrossReconnects: the Django Channels
// endpoint's limits are the client address's in the same way.
func TestChannelsCompatSendLimitAcrossReconnects(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { lowLimits(c); c.ChannelsCompat = true }))
	w := ts.connectCompat(t, "lobby")
	w.send(t, map[string]string{"message": "one"})
	if f := w.take(t, "echo of one", func(f frame) bool { return f.Text != "" || f.Error != nil }); f.Error != nil {
		t.Fatalf("first message = %s; want its echo", f)
	}
	w.send(t, map[string]string{"message": "two"})
	if f := w.take(t, "answer to two", func(f frame) bool { return f.Text != "" || f.Error != nil }); f.Error == nil || f.Error.Code != chat.CodeRateLimited {
		t.Fatalf("second message = %s; want rate_limited", f)
	}
	w.conn.Close()
	deadline := time.Now().Add(waitTimeout)
	for i := 3; i <= 5; i++ {
		var w *wsClient
		for w == nil {
			conn, resp, err := ts.dial(t, nil, "/ws/chat/lobby/", dialOptions{})
			switch {
			case err == nil:
				w = newWSClient(t, "compat", conn)
				w.startReading()
			case resp == nil || resp.StatusCode != http.StatusTooManyRequests:
				t.Fatalf("dial /ws/chat/lobby/: %v (%s)", err, statusOf(resp))
			case time.Now().After(deadline):
				t.Fatalf("no connection within %s of the one before closed", waitTimeout)
			default:
				time.Sleep(10 * time.Millisecond)
			}
		}
		w.send(t, map[string]string{"message": "again"})
		f := w.take(t, "answer to again", func(f frame) bool { return f.Text != "" || f.Error != nil })
		if f.Error == nil || f.Error.Code != chat.CodeRateLimited {
			t.Fatalf("message %d, on a new connection = %s; want rate_limited", i, f)
		}
		w.conn.Close()
	}
}

// pollSend sends message clientID to conversation convID on u's long-poll
// channel of cursor, and returns the one frame that answers it.
func (ts *testServer) pollSend(t *testing.T, u *client, cursor string, convID int64, clientID string) frame {
	t.Helper()
	var body struct {
		Frames []json.RawMessage `json:"frames"`
	}
	ts.mustDo(t, u, "POST", "/api/poll?cursor="+url.QueryEscape(cursor), sendFrame(convID, clientID), http.StatusOK, &body)
	if len(body.Frames) != 1 {
		t.Fatalf("send %s: %d frames; want 1", clientID, len(body.Frames))
	}
	f, err := parseFrame(body.Frames[0])
	if err != nil {
		t.Fatal(err)
	}
	return f
}
