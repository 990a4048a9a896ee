package web_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/web"
)

// TestChannelsCompatPathIsOneRoom: the Django Channels endpoint is
// /ws/chat/<room_name>/ and nothing under it. A path with more segments,
// such as a client's unescaped "a/b" (a name POST /api/rooms refuses),
// is not a way into the room of its first segment: it is refused and
// makes no room.
func TestChannelsCompatPathIsOneRoom(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.ChannelsCompat = true }))
	for _, path := range []string{"/ws/chat/a/b/", "/ws/chat/lobby/extra"} {
		conn, resp, err := ts.dial(t, nil, path, dialOptions{})
		if err == nil {
			conn.Close()
			t.Errorf("dial %s: connected; want it refused", path)
		} else if resp == nil || resp.StatusCode != http.StatusNotFound {
			t.Errorf("dial %s: %v (%s); want 404", path, err, statusOf(resp))
		}
	}
	for _, name := range []string{"a", "lobby"} {
		if r, err := ts.svc.RoomByName(context.Background(), name); !errors.Is(err, chat.ErrNotFound) {
			t.Errorf("room %q after a dial of a longer path: %+v, %v; want none", name, r, err)
		}
	}
}
