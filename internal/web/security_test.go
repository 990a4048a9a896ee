package web_test

import (
	"net/http"
	"testing"

	"github.com/parley-chat/parley/internal/web"
)

// TestListedOriginsAsWritten: an origin listed with capitals, a trailing
// slash or its scheme's default port (all of which --origins accepts) is
// the origin a browser names without them, for REST writes as for
// WebSocket upgrades: the page it serves can do both, or it could open a
// socket and then send nothing over REST.
func TestListedOriginsAsWritten(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) {
		c.Origins = []string{"https://Chat.Example.com/", "https://other.example:443", "http://plain.example:80", "https://port.example:8443"}
	}))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	for _, origin := range []string{"https://chat.example.com", "https://other.example", "http://plain.example", "https://port.example:8443"} {
		req := ts.newRequest(t, "POST", roomPath(room.ID, "/messages"), map[string]string{"client_id": "c-" + origin, "body": "from " + origin})
		req.Header.Set("Origin", origin)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		if r := send(t, ada.Client, req); r.Status != http.StatusOK {
			t.Errorf("POST with Origin %s = %s; want 200", origin, r)
		}
		conn, resp, err := ts.dial(t, ada, "/api/ws", dialOptions{header: http.Header{"Origin": {origin}}})
		if err != nil {
			t.Errorf("upgrade with Origin %s: %v (%s); want 101", origin, err, statusOf(resp))
			continue
		}
		conn.Close()
	}
	// A listed origin's port is not dropped: another is another origin.
	for _, origin := range []string{"https://chat.example.com:8443", "https://port.example", "http://chat.example.com"} {
		req := ts.newRequest(t, "POST", roomPath(room.ID, "/messages"), map[string]string{"client_id": "x", "body": "x"})
		req.Header.Set("Origin", origin)
		wantError(t, "POST with Origin "+origin, send(t, ada.Client, req), http.StatusForbidden, "forbidden")
		_, resp, err := ts.dial(t, ada, "/api/ws", dialOptions{header: http.Header{"Origin": {origin}}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("upgrade with Origin %s: %v (%s); want 403", origin, err, statusOf(resp))
		}
	}
}
