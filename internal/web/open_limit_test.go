package web_test

import (
	"fmt"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/web"
)

// TestWSOpenLimit: a WebSocket holds at most Config.MaxOpen conversations
// open at once (docs/protocol.md, Limits): each is a subscription in the
// hub and a presence, and a user may enter any number of rooms. The open
// past it gets rate_limited; once one is closed, it goes through.
func TestWSOpenLimit(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.MaxOpen = 2 }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	var rooms []wireRoom
	for i := range 3 {
		rooms = append(rooms, ts.enterRoom(t, ada, fmt.Sprintf("room-%d", i)))
	}
	w := ts.connect(t, ada)
	w.open(t, rooms[0].ID, nil)
	w.open(t, rooms[1].ID, nil)
	w.open(t, rooms[1].ID, nil) // open again: no more open than before
	w.send(t, map[string]any{"type": "open", "room_id": rooms[2].ID, "ref": "third"})
	if f := w.expectError(t, "third"); f.Code != chat.CodeRateLimited || f.RetryAfterMS <= 0 {
		t.Fatalf("third open = %s; want rate_limited with retry_after_ms", f)
	}
	w.send(t, map[string]any{"type": "close", "room_id": rooms[0].ID})
	w.open(t, rooms[2].ID, nil)
}
