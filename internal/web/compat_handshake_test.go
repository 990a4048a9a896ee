package web_test

import (
	"net/http"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/web"
)

// TestChannelsCompatRefusedHandshakeMakesNoRoom: a request the upgrade
// refuses makes no room (handleCompatWS), whatever makes the upgrade
// refuse it: a WebSocket version other than 13, or no key. Each address
// may make one room here: after the refused requests, it still may.
func TestChannelsCompatRefusedHandshakeMakesNoRoom(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.ChannelsCompat = true }),
		withChat(func(c *chat.Config) { c.NewConvsPerHour = 1 }))
	for _, tc := range []struct{ name, version, key string }{
		{"noroom1", "8", "dGhlIHNhbXBsZSBub25jZQ=="},
		{"noroom2", "13", ""},
	} {
		req, _ := http.NewRequest("GET", ts.URL+"/ws/chat/"+tc.name+"/", nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", tc.version)
		if tc.key != "" {
			req.Header.Set("Sec-WebSocket-Key", tc.key)
		}
		resp, err := ts.anonClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("%s: handshake answered %s; want it refused", tc.name, resp.Status)
		}
	}
	_, resp, err := ts.dial(t, nil, "/ws/chat/general/", dialOptions{})
	if err != nil {
		t.Fatalf("the first room this address makes: %v (%s); want it made (the refused handshakes made none)", err, statusOf(resp))
	}
}
