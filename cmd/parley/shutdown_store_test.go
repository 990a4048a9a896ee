//go:build !sqlite_cgo

package main

import (
	"context"
	"database/sql"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/testenv"
)

// queuedStore tells, on queued, each message handed to the store's group
// commit.
type queuedStore struct {
	store
	queued chan struct{}
}

func (s queuedStore) QueueAppend(ctx context.Context, nm chat.NewMessage) chat.PendingAppend {
	p := s.store.QueueAppend(ctx, nm)
	select {
	case s.queued <- struct{}{}:
	default:
	}
	return p
}

// TestRunShutdownBoundedWhileStoreLocked: while another process holds the
// SQLite database's write lock (an operator's sqlite3 shell left in BEGIN
// IMMEDIATE, a long backup), a send waits in the group commit for the
// busy timeout (10 s). A shutdown then takes at most --shutdown-timeout
// and the few seconds more that closing the store may take
// (storeCloseWait), not until the lock is gone: closing the store
// waited for its group commit without bound.
func TestRunShutdownBoundedWhileStoreLocked(t *testing.T) {
	queued := make(chan struct{}, 1)
	s := startServerWith(t, func(db store) store { return queuedStore{store: db, queued: queued} },
		"--shutdown-timeout", "1s")
	ada := signIn(t, s, "ada@example.com", "Ada")
	var room struct {
		Room struct{ ID int64 } `json:"room"`
	}
	postJSON(t, ada, "POST", s.URL+"/api/rooms", map[string]string{"name": "general"}, http.StatusOK, &room)
	ws := dialWS(t, s, ada)
	readUntil(t, ws, "hello")
	ws.WriteJSON(map[string]any{"type": "open", "room_id": room.Room.ID})
	readUntil(t, ws, "opened")

	// Another process's connection takes the write lock.
	other, err := sql.Open("sqlite", "file:"+s.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx := context.Background()
	hold, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	if _, err := hold.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	defer hold.ExecContext(ctx, `ROLLBACK`)

	sendAndStop(t, s, ws, room.Room.ID, queued)
}

// TestRunShutdownBoundedWhilePostgresHangs: while PostgreSQL does not
// answer, a send waits in the group commit for its timeout (30 s). A
// shutdown takes at most --shutdown-timeout and storeCloseWait more.
func TestRunShutdownBoundedWhilePostgresHangs(t *testing.T) {
	u, err := url.Parse(testenv.PostgresSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.StartProxy(t, u.Host)
	u.Host = proxy.Addr()
	queued := make(chan struct{}, 1)
	s := startServerWith(t, func(db store) store { return queuedStore{store: db, queued: queued} },
		"--db", u.String(), "--shutdown-timeout", "1s")
	ada := signIn(t, s, "ada@example.com", "Ada")
	var room struct {
		Room struct{ ID int64 } `json:"room"`
	}
	postJSON(t, ada, "POST", s.URL+"/api/rooms", map[string]string{"name": "general"}, http.StatusOK, &room)
	ws := dialWS(t, s, ada)
	readUntil(t, ws, "hello")
	ws.WriteJSON(map[string]any{"type": "open", "room_id": room.Room.ID})
	readUntil(t, ws, "opened")

	proxy.Hang()
	sendAndStop(t, s, ws, room.Room.ID, queued)
}

// sendAndStop sends a message on ws to room, waits until it reached the
// store (queued), and shuts s down, which must take at most
// --shutdown-timeout (1s), storeCloseWait (2s) and a margin of 2s.
func sendAndStop(t *testing.T, s *testServer, ws *websocket.Conn, room int64, queued <-chan struct{}) {
	t.Helper()
	ws.WriteJSON(map[string]any{"type": "send", "room_id": room, "client_id": "c-1", "body": "hello"})
	select {
	case <-queued:
	case <-time.After(10 * time.Second):
		t.Fatal("the send did not reach the store within 10s")
	}

	start := time.Now()
	s.stop()
	const bound = 5 * time.Second
	select {
	case <-s.done:
		close(s.done) // s.shutdown then waits no more
	case <-time.After(60 * time.Second):
		t.Fatalf("run did not return within 60s of the shutdown's start, the store stuck")
	}
	if took := time.Since(start); took > bound {
		t.Errorf("shutdown with the store stuck took %v; want at most %v", took.Round(time.Millisecond), bound)
	}
}
