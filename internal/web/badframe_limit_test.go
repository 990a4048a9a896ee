package web_test

import (
	"fmt"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/web"
)

// TestWSBadFramesLimited: frames that are not JSON of the expected shape,
// or whose ref is too long, count against a connection's limit of frames
// other than sends (docs/protocol.md, Limits) as the frames they answer
// do: each costs an error frame, and a client sending them as fast as it
// can must be slowed down as one sending pings is.
func TestWSBadFramesLimited(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.SendRate, c.SendBurst = 0.001, 1 }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	w := ts.connect(t, ada)
	long := fmt.Sprintf("%070d", 0)
	for i := range 6 {
		if i%2 == 0 {
			w.sendRaw(t, websocket.TextMessage, []byte("not json"))
		} else {
			w.send(t, map[string]any{"type": "ping", "ref": long})
		}
	}
	var codes []string
	for range 6 {
		f := w.expect(t, "error")
		codes = append(codes, f.Code)
	}
	if codes[5] != "rate_limited" {
		t.Fatalf("error codes of six bad frames, five allowed = %v; want the sixth rate_limited", codes)
	}
}

// TestChannelsCompatBadFramesLimited: on the Django Channels endpoint,
// frames that are not {"message": "..."} are limited too, at five times
// the send rate and burst, as a native connection's frames other than
// sends.
func TestChannelsCompatBadFramesLimited(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) {
		c.ChannelsCompat = true
		c.SendRate, c.SendBurst = 0.001, 1
	}))
	compat := ts.connectCompat(t, "general")
	for range 6 {
		compat.sendRaw(t, websocket.TextMessage, []byte("not json"))
	}
	var codes []string
	for range 6 {
		f := compat.next(t)
		if f.Error == nil {
			t.Fatalf("got %s; want an error", f.Raw)
		}
		codes = append(codes, f.Error.Code)
	}
	if codes[5] != "rate_limited" {
		t.Fatalf("error codes of six bad frames, five allowed = %v; want the sixth rate_limited", codes)
	}
}
