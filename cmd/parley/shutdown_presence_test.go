package main

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/sqlite"
)

// stuckGroups is a store whose reads of a user's groups, once armed, wait
// for release (at most 10 s): a connection starting then holds the hub's
// close up.
type stuckGroups struct {
	store
	armed   *atomic.Bool
	entered chan struct{}
	release chan struct{}
	once    *sync.Once
}

func (s stuckGroups) UserGroups(ctx context.Context, userID int64) ([]chat.MemberAt, error) {
	if s.armed.Load() {
		s.once.Do(func() { close(s.entered) })
		select {
		case <-s.release:
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
		}
	}
	return s.store.UserGroups(ctx, userID)
}

// stuckShutdown is a server (--shutdown-timeout 1s) whose store holds a
// user's connection up as it starts, once armed (stuckGroups).
type stuckShutdown struct {
	*testServer
	armed   atomic.Bool
	entered chan struct{}
	free    func()
}

func startStuckShutdown(t *testing.T) *stuckShutdown {
	t.Helper()
	ss := &stuckShutdown{entered: make(chan struct{})}
	release := make(chan struct{})
	var freeOnce sync.Once
	ss.free = func() { freeOnce.Do(func() { close(release) }) }
	t.Cleanup(ss.free)
	wrap := func(st store) store {
		return stuckGroups{store: st, armed: &ss.armed, entered: ss.entered, release: release, once: new(sync.Once)}
	}
	ss.testServer = startServerWith(t, wrap, "--shutdown-timeout", "1s")
	return ss
}

// userID is the ID of the user of client c.
func (ss *stuckShutdown) userID(t *testing.T, c *http.Client) int64 {
	t.Helper()
	var me struct {
		User struct{ ID int64 } `json:"user"`
	}
	postJSON(t, c, "GET", ss.URL+"/api/me", nil, http.StatusOK, &me)
	return me.User.ID
}

// stickAndShutDown opens a WebSocket of c's user, which gets stuck as it
// starts, shuts the server down with it stuck (the hub's close runs to
// the timeout), and returns the last-seen time stored of user id.
func (ss *stuckShutdown) stickAndShutDown(t *testing.T, c *http.Client, id int64) time.Time {
	t.Helper()
	ss.armed.Store(true)
	go func() {
		u, _ := url.Parse(ss.URL)
		d := websocket.Dialer{Jar: c.Jar, HandshakeTimeout: 5 * time.Second}
		if ws, _, err := d.Dial("ws://"+u.Host+"/api/ws", nil); err == nil {
			defer ws.Close()
			ws.SetReadDeadline(time.Now().Add(15 * time.Second))
			for range 100 {
				if _, _, err := ws.NextReader(); err != nil {
					return
				}
			}
		}
	}()
	select {
	case <-ss.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection did not start within 10 s")
	}
	if err := ss.shutdown(t); err == nil {
		t.Log("run returned nil; the hub's close was expected to time out")
	}
	ss.free()
	db, err := sqlite.Open(context.Background(), ss.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	seen, err := db.LastSeen(context.Background(), []int64{id})
	if err != nil {
		t.Fatal(err)
	}
	return seen[id]
}

// TestRunShutdownStoresLastSeenWhenHubCloseTimesOut: a user whose last
// connection ended within the presence grace period gets a last-seen time
// at shutdown, also when the hub's close runs to --shutdown-timeout (a
// connection stuck as it starts). Before, the presence flush was given
// the shutdown's context after the hub's close had used it up: it marked
// every pending user counted out and returned at once, storing none.
func TestRunShutdownStoresLastSeenWhenHubCloseTimesOut(t *testing.T) {
	s := startStuckShutdown(t)
	ada := signIn(t, s.testServer, "ada@example.com", "Ada")
	bob := signIn(t, s.testServer, "bob@example.com", "Bob")
	adaID := s.userID(t, ada)

	// Ada's page closes: her presence ends after the grace period (5 s).
	var poll struct {
		Cursor string `json:"cursor"`
	}
	postJSON(t, ada, "GET", s.URL+"/api/poll", nil, http.StatusOK, &poll)
	postJSON(t, ada, "DELETE", s.URL+"/api/poll?cursor="+url.QueryEscape(poll.Cursor), nil, http.StatusNoContent, nil)

	// Bob's connection gets stuck as it starts.
	if s.stickAndShutDown(t, bob, adaID).IsZero() {
		t.Errorf("Ada's last-seen time after a shutdown whose hub close timed out: none stored; want the shutdown's\n%s", s.stderr)
	}
}

// TestRunShutdownStoresLastSeenOfOpenConnection: a user whose connection
// is still open when the hub's close times out (stuck as it starts) gets
// a last-seen time at shutdown. Before, only connections that had ended
// were counted out: with the in-process Presence nothing else stored one,
// and the session's late end started a grace timer the exit dropped.
func TestRunShutdownStoresLastSeenOfOpenConnection(t *testing.T) {
	s := startStuckShutdown(t)
	bob := signIn(t, s.testServer, "bob@example.com", "Bob")
	// Bob's connection is counted in, then gets stuck.
	if s.stickAndShutDown(t, bob, s.userID(t, bob)).IsZero() {
		t.Errorf("Bob's last-seen time after a shutdown that found his connection open: none stored; want the shutdown's\n%s", s.stderr)
	}
}
