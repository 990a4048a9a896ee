package web_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/web"
)

// TestChannelsCompatConnCap: the anonymous Django Channels endpoint holds
// each client address to Config.MaxUserConns connections on a node, as a
// user is held on /api/ws: without a cap, anyone could hold open any
// number of connections (a hub client, its outbox and a goroutine each)
// with no account at all. One more is refused 429 before the upgrade,
// and a place freed is taken again.
func TestChannelsCompatConnCap(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.ChannelsCompat = true; c.MaxUserConns = 2 }))
	first := ts.connectCompat(t, "lobby")
	ts.connectCompat(t, "other")
	conn, resp, err := ts.dial(t, nil, "/ws/chat/lobby/", dialOptions{})
	if err == nil {
		conn.Close()
		t.Fatal("a third compat connection from one address with a cap of 2 was opened")
	}
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a third compat connection: %v (%s); want 429 with Retry-After", err, statusOf(resp))
	}

	first.conn.Close()
	deadline := time.Now().Add(waitTimeout)
	for {
		conn, _, err := ts.dial(t, nil, "/ws/chat/lobby/", dialOptions{})
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no compat connection within %s of one closed: %v", waitTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
