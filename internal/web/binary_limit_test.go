package web_test

import (
	"testing"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/web"
)

// TestBinaryFramesLimited: a binary frame is a frame that is not valid
// (docs/protocol.md, Limits): it costs an error frame, and counts
// against the connection's limit of frames other than sends, on the
// native endpoint and on the Django Channels one alike, as a text frame
// that is not JSON does.
func TestBinaryFramesLimited(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) {
		c.ChannelsCompat = true
		c.SendRate, c.SendBurst = 0.001, 1 // five other frames
	}))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	for _, tc := range []struct {
		name string
		w    *wsClient
		code func(frame) string
	}{
		{"native", ts.connect(t, ada), func(f frame) string { return f.Code }},
		{"compat", ts.connectCompat(t, "general"), func(f frame) string {
			if f.Error == nil {
				return ""
			}
			return f.Error.Code
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 6 {
				tc.w.sendRaw(t, websocket.BinaryMessage, []byte(`{"type":"ping"}`))
			}
			var codes []string
			for range 6 {
				codes = append(codes, tc.code(tc.w.next(t)))
			}
			if codes[5] != "rate_limited" {
				t.Fatalf("error codes of six binary frames, five allowed = %v; want the sixth rate_limited", codes)
			}
		})
	}
}
