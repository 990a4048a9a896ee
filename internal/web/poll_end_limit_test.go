package web_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/parley-chat/parley/internal/web"
)

// TestPollEndsLimited: a DELETE /api/poll publishes the end of the channel
// to every node (and, in a cluster, records it in Redis), so it counts
// against the user's limit of frames other than sends, as a WebSocket's
// close frame would (docs/protocol.md, Limits). Before, a client could
// send the DELETE of one cursor in a loop, without any limit.
func TestPollEndsLimited(t *testing.T) {
	// Other frames: five times the send burst.
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.SendRate, c.SendBurst = 0.001, 1 }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	var body struct {
		Cursor string            `json:"cursor"`
		Frames []json.RawMessage `json:"frames"`
	}
	ts.mustDo(t, ada, "GET", "/api/poll", nil, http.StatusOK, &body)
	end := "/api/poll?cursor=" + url.QueryEscape(body.Cursor)
	for range 5 {
		ts.mustDo(t, ada, "DELETE", end, nil, http.StatusNoContent, nil)
	}
	ts.wantLimited(t, ada, []limitedRequest{{"a sixth end", "DELETE", end, nil}})
}
