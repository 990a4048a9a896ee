package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/web"
)

// A user's WebSockets and long-poll channels on a node share the user's
// limits (docs/protocol.md, Limits): before, each connection had limits of
// its own, and a user could send Config.MaxUserConns times the send rate
// by opening that many connections at once, where the REST API holds them
// to one.

// sharedLimits is a send rate so low that no token comes back during a
// test, with a burst of three sends (fifteen other frames).
func sharedLimits(c *web.Config) { c.SendRate, c.SendBurst = 0.001, 3 }

// answerTo takes the ack or error answering the send with clientID.
func answerTo(tb testing.TB, w *wsClient, clientID string) frame {
	tb.Helper()
	return w.take(tb, "answer to "+clientID, func(f frame) bool {
		return f.Type == "ack" && f.ClientID == clientID || f.Type == "error" && f.Ref == clientID
	})
}

// TestSendLimitSharedByConnections: of sends spread over three WebSockets
// of one user, only one burst is stored.
func TestSendLimitSharedByConnections(t *testing.T) {
	ts := newTestServer(t, withWeb(sharedLimits))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	ws := []*wsClient{ts.connect(t, ada), ts.connect(t, ada), ts.connect(t, ada)}
	acked, limited := 0, 0
	for i := range 2 {
		for j, w := range ws {
			id := fmt.Sprintf("c-%d-%d", j, i)
			w.send(t, sendFrame(room.ID, id))
			switch f := answerTo(t, w, id); {
			case f.Type == "ack":
				acked++
			case f.Code == chat.CodeRateLimited:
				limited++
			default:
				t.Fatalf("send %s = %s; want its ack or rate_limited", id, f)
			}
		}
	}
	if acked != 3 || limited != 3 {
		t.Errorf("6 sends over 3 connections: %d acked, %d rate_limited; want 3 and 3 (one burst for the user)", acked, limited)
	}
	if n := len(ts.allMessages(t, ada, room.ID)); n != 1+3 {
		t.Errorf("the room holds %d messages; want 4: the join notice and one burst", n)
	}
}

// TestFrameLimitSharedByConnections: so are the frames other than sends.
func TestFrameLimitSharedByConnections(t *testing.T) {
	ts := newTestServer(t, withWeb(sharedLimits))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	ws := []*wsClient{ts.connect(t, ada), ts.connect(t, ada)}
	pongs, limited := 0, 0
	for i := range 10 { // 20 pings; the burst is 15
		for j, w := range ws {
			ref := fmt.Sprintf("p-%d-%d", j, i)
			w.send(t, map[string]any{"type": "ping", "ref": ref})
			switch f := w.take(t, "answer to "+ref, func(f frame) bool { return f.Ref == ref }); {
			case f.Type == "pong":
				pongs++
			case f.Type == "error" && f.Code == chat.CodeRateLimited:
				limited++
			default:
				t.Fatalf("ping %s = %s; want pong or rate_limited", ref, f)
			}
		}
	}
	if pongs != 15 || limited != 5 {
		t.Errorf("20 pings over 2 connections: %d pongs, %d rate_limited; want 15 and 5", pongs, limited)
	}
}

// TestSendLimitSharedByWebSocketAndPoll: a WebSocket and a long-poll
// channel of one user share the user's sends.
func TestSendLimitSharedByWebSocketAndPoll(t *testing.T) {
	ts := newTestServer(t, withWeb(sharedLimits))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	w := ts.connect(t, ada)
	var poll struct {
		Cursor string            `json:"cursor"`
		Frames []json.RawMessage `json:"frames"`
	}
	ts.mustDo(t, ada, "GET", "/api/poll", nil, http.StatusOK, &poll)
	postSend := func(clientID string) frame { return ts.pollSend(t, ada, poll.Cursor, room.ID, clientID) }
	if f := postSend("p-1"); f.Type != "ack" {
		t.Fatalf("send p-1 on the long-poll channel = %s; want its ack", f)
	}
	for _, id := range []string{"w-1", "w-2"} {
		w.send(t, sendFrame(room.ID, id))
		if f := answerTo(t, w, id); f.Type != "ack" {
			t.Fatalf("send %s on the WebSocket = %s; want its ack", id, f)
		}
	}
	if f := postSend("p-2"); f.Type != "error" || f.Code != chat.CodeRateLimited {
		t.Errorf("send p-2 on the long-poll channel, past the user's burst = %s; want rate_limited", f)
	}
	w.send(t, sendFrame(room.ID, "w-3"))
	if f := answerTo(t, w, "w-3"); f.Type != "error" || f.Code != chat.CodeRateLimited {
		t.Errorf("send w-3 on the WebSocket, past the user's burst = %s; want rate_limited", f)
	}
}

// TestSendLimitNotSharedByUsers: one user's sends leave another's alone.
func TestSendLimitNotSharedByUsers(t *testing.T) {
	ts := newTestServer(t, withWeb(sharedLimits))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	room := ts.enterRoom(t, ada, "general")
	ts.enterRoom(t, grace, "general")
	wa, wg := ts.connect(t, ada), ts.connect(t, grace)
	for i := range 3 {
		for _, w := range []*wsClient{wa, wg} {
			id := fmt.Sprintf("%s-%d", w.name, i)
			w.send(t, sendFrame(room.ID, id))
			if f := answerTo(t, w, id); f.Type != "ack" {
				t.Fatalf("send %s = %s; want its ack: each user has a burst of 3", id, f)
			}
		}
	}
}
