package main

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/testenv"
	"github.com/parley-chat/parley/internal/web"
)

// TestClusterSessionCap: a sign-in on node a past --max-sessions-per-user
// ends the least recently used session of the user, whose WebSocket is on
// node b: b closes it with 4001 on the event that comes through Redis, as
// after a sign-out, well before its own check of its connections'
// sessions (every 15 s) would.
func TestClusterSessionCap(t *testing.T) {
	db := testenv.PostgresSchema(t)
	rurl, prefix, _ := testenv.Redis(t)
	common := []string{"--db", db, "--broker", rurl, "--redis-prefix", prefix, "--max-sessions-per-user", "2"}
	a := startServer(t, append(common, "--node-id", "a")...)
	b := startServer(t, append(common, "--node-id", "b")...)
	first := signIn(t, a, "ada@example.com", "Ada")
	second := signIn(t, a, "ada@example.com", "Ada")
	ws := dialWS(t, b, first)
	readUntil(t, ws, "hello")

	third := signIn(t, a, "ada@example.com", "Ada")
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != web.CloseSessionEnded {
			t.Fatalf("the WebSocket on node b of the session past the cap: %v; want close %d within 5 s", err, web.CloseSessionEnded)
		}
		break
	}
	postJSON(t, first, "GET", b.URL+"/api/me", nil, http.StatusUnauthorized, nil)
	for _, c := range []*http.Client{second, third} {
		postJSON(t, c, "GET", b.URL+"/api/me", nil, http.StatusOK, nil)
	}
}
