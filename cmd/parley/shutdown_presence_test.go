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

// TestRunShutdownStoresLastSeenWhenHubCloseTimesOut: a user whose last
// connection ended within the presence grace period gets a last-seen time
// at shutdown, also when the hub's close runs to --shutdown-timeout (a
// connection stuck as it starts). Before, the presence flush was given
// the shutdown's context after the hub's close had used it up: it marked
// every pending user counted out and returned at once, storing none.
func TestRunShutdownStoresLastSeenWhenHubCloseTimesOut(t *testing.T) {
	var armed atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	var freeOnce sync.Once
	free := func() { freeOnce.Do(func() { close(release) }) }
	t.Cleanup(free)
	wrap := func(st store) store {
		return stuckGroups{store: st, armed: &armed, entered: entered, release: release, once: new(sync.Once)}
	}
	s := startServerWith(t, wrap, "--shutdown-timeout", "1s")
	ada := signIn(t, s, "ada@example.com", "Ada")
	bob := signIn(t, s, "bob@example.com", "Bob")
	var me struct {
		User struct{ ID int64 } `json:"user"`
	}
	postJSON(t, ada, "GET", s.URL+"/api/me", nil, http.StatusOK, &me)

	// Ada's page closes: her presence ends after the grace period (5 s).
	var poll struct {
		Cursor string `json:"cursor"`
	}
	postJSON(t, ada, "GET", s.URL+"/api/poll", nil, http.StatusOK, &poll)
	postJSON(t, ada, "DELETE", s.URL+"/api/poll?cursor="+url.QueryEscape(poll.Cursor), nil, http.StatusNoContent, nil)

	// Bob's connection gets stuck as it starts.
	armed.Store(true)
	go func() {
		u, _ := url.Parse(s.URL)
		d := websocket.Dialer{Jar: bob.Jar, HandshakeTimeout: 5 * time.Second}
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
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("Bob's connection did not start within 10 s")
	}

	if err := s.shutdown(t); err == nil {
		t.Log("run returned nil; the hub's close was expected to time out")
	}
	free()
	db, err := sqlite.Open(context.Background(), s.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	seen, err := db.LastSeen(context.Background(), []int64{me.User.ID})
	if err != nil {
		t.Fatal(err)
	}
	if seen[me.User.ID].IsZero() {
		t.Errorf("Ada's last-seen time after a shutdown whose hub close timed out: none stored; want the shutdown's\n%s", s.stderr)
	}
}

// TestRunShutdownStoresLastSeenOfOpenConnection: a user whose connection
// is still open when the hub's close times out (stuck as it starts) gets
// a last-seen time at shutdown. Before, only connections that had ended
// were counted out: with the in-process Presence nothing else stored one,
// and the session's late end started a grace timer the exit dropped.
func TestRunShutdownStoresLastSeenOfOpenConnection(t *testing.T) {
	var armed atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	var freeOnce sync.Once
	free := func() { freeOnce.Do(func() { close(release) }) }
	t.Cleanup(free)
	wrap := func(st store) store {
		return stuckGroups{store: st, armed: &armed, entered: entered, release: release, once: new(sync.Once)}
	}
	s := startServerWith(t, wrap, "--shutdown-timeout", "1s")
	bob := signIn(t, s, "bob@example.com", "Bob")
	var me struct {
		User struct{ ID int64 } `json:"user"`
	}
	postJSON(t, bob, "GET", s.URL+"/api/me", nil, http.StatusOK, &me)

	// Bob's connection is counted in, then gets stuck.
	armed.Store(true)
	go func() {
		u, _ := url.Parse(s.URL)
		d := websocket.Dialer{Jar: bob.Jar, HandshakeTimeout: 5 * time.Second}
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
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("Bob's connection did not start within 10 s")
	}

	if err := s.shutdown(t); err == nil {
		t.Log("run returned nil; the hub's close was expected to time out")
	}
	free()
	db, err := sqlite.Open(context.Background(), s.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	seen, err := db.LastSeen(context.Background(), []int64{me.User.ID})
	if err != nil {
		t.Fatal(err)
	}
	if seen[me.User.ID].IsZero() {
		t.Errorf("Bob's last-seen time after a shutdown that found his connection open: none stored; want the shutdown's\n%s", s.stderr)
	}
}
