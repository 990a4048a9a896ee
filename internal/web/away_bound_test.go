package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// lastSeenCount counts the store's last-seen writes: one for each time
// the service counted a user's ended connections out.
type lastSeenCount struct {
	chat.Store
	n *atomic.Int64
}

func (s lastSeenCount) SetLastSeen(ctx context.Context, userID int64, at time.Time) error {
	s.n.Add(1)
	return s.Store.SetLastSeen(ctx, userID, at)
}

// TestDisconnectsWithinGraceCountedOutOnce: the connections of a user
// that end within the presence grace period are counted out together,
// with one timer and one write of when the user was last seen. Before,
// each ended connection had a timer of its own for the grace period, and
// then a write to the store: the cap on a user's connections bounds those
// open at once, not how many end, so a client that opened and ended
// long-poll channels (or WebSockets) in a loop made the server hold a
// timer per connection it ended in the last grace period, and write to
// the store once per connection, as fast as it could loop.
func TestDisconnectsWithinGraceCountedOutOnce(t *testing.T) {
	const cycles = 20
	var writes atomic.Int64
	ts := newTestServer(t,
		withChat(func(c *chat.Config) { c.PresenceGrace = time.Hour }), // none ends during the test
		withStore(func(s chat.Store) chat.Store { return lastSeenCount{s, &writes} }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	for range cycles {
		var body struct {
			Cursor string            `json:"cursor"`
			Frames []json.RawMessage `json:"frames"`
		}
		ts.mustDo(t, ada, "GET", "/api/poll", nil, http.StatusOK, &body)
		ts.mustDo(t, ada, "DELETE", "/api/poll?cursor="+url.QueryEscape(body.Cursor), nil, http.StatusNoContent, nil)
	}
	if n := writes.Load(); n != 0 {
		t.Fatalf("%d last-seen writes before the grace period ended; want none", n)
	}
	// What a node shutting down does: count out every ended connection
	// whose grace period is still running.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ts.svc.FlushPresence(ctx)
	if n := writes.Load(); n != 1 {
		t.Errorf("%d channels ended within the grace period were counted out with %d last-seen writes; want 1", cycles, n)
	}
	// Counted out: Ada is offline, and a friend sees when she was last seen.
	grace := ts.signIn(t, "grace@example.com", "Grace")
	ts.befriend(t, grace, ada)
	cs := ts.contacts(t, grace).Contacts
	if len(cs) != 1 || cs[0].Online == nil || *cs[0].Online || cs[0].LastSeen.IsZero() {
		t.Errorf("Grace's contacts = %+v; want Ada offline, with a last-seen time", cs)
	}
}
