package main

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/testenv"
)

// TestClusterSharedLimits: the sign-in throttle of one address holds
// across nodes sharing a Redis: five codes, asked for through two nodes in
// turn, use it up, and the sixth is refused, whichever node it goes to.
func TestClusterSharedLimits(t *testing.T) {
	e := newFaultEnv(t, envOptions{nodes: 2, users: 2})
	ask := func(n *node) (int, string) {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"email": "throttled@example.com"})
		c := &http.Client{Timeout: 10 * time.Second}
		resp, err := c.Post(n.URL()+"/api/auth/code", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("POST /api/auth/code on %s: %v", n.id, err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	for i := range 5 {
		n := e.nodes[i%2]
		if st, body := ask(n); st != http.StatusAccepted {
			t.Fatalf("code %d through %s = %d %s; want 202", i+1, n.id, st, body)
		}
	}
	for _, n := range e.nodes {
		st, body := ask(n)
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		_ = json.Unmarshal([]byte(body), &e)
		if st != http.StatusTooManyRequests || e.Error.Code != "rate_limited" {
			t.Errorf("sixth code through %s = %d %s; want 429 rate_limited", n.id, st, body)
		}
	}
}

// TestClusterPresence: a user connected to one node shows online to a
// friend who asks another node, and offline, with a last-seen time, once
// they have gone.
func TestClusterPresence(t *testing.T) {
	e := newFaultEnv(t, envOptions{nodes: 2, users: 2})
	ada, grace := e.users[0], e.users[1] // friends (setup)
	contact := func() (online bool, lastSeen time.Time) {
		t.Helper()
		req, _ := http.NewRequest("GET", e.nodes[1].URL()+"/api/contacts", nil)
		req.AddCookie(&http.Cookie{Name: "parley_session", Value: grace.token})
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Contacts []struct {
				User     struct{ ID int64 } `json:"user"`
				Online   *bool              `json:"online"`
				LastSeen time.Time          `json:"last_seen"`
			} `json:"contacts"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("GET /api/contacts: %d %v", resp.StatusCode, err)
		}
		for _, c := range out.Contacts {
			if c.User.ID == ada.id && c.Online != nil {
				return *c.Online, c.LastSeen
			}
		}
		t.Fatalf("Grace's contacts %+v lack Ada as a friend", out.Contacts)
		return false, time.Time{}
	}
	// waitOnline polls, bounded, for Ada's state as seen through node n1.
	waitOnline := func(want bool, within time.Duration) time.Time {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			online, seen := contact()
			if online == want {
				return seen
			}
			if time.Now().After(deadline) {
				t.Fatalf("Ada online = %v through node n1 after %v; want %v", online, within, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitOnline(false, 5*time.Second)

	ws := e.dialWS(ada, e.nodes[0])
	waitOnline(true, 5*time.Second)

	left := time.Now()
	ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	ws.Close()
	// Going offline waits out the presence grace period (5 s) first.
	seen := waitOnline(false, 20*time.Second)
	if seen.IsZero() || seen.Before(left.Add(-time.Minute)) {
		t.Errorf("Ada's last_seen = %v; want about %v", seen, left)
	}
}

// dialWS opens a WebSocket as u on node n, closed when the test ends.
func (e *faultEnv) dialWS(u *fuser, n *node) *websocket.Conn {
	e.t.Helper()
	h := http.Header{}
	h.Set("Cookie", "parley_session="+u.token)
	wsURL := "ws" + strings.TrimPrefix(n.URL(), "http") + "/api/ws"
	ws, resp, err := websocket.DefaultDialer.Dial(wsURL, h)
	if err != nil {
		e.t.Fatalf("dial %s: %v (%v)", wsURL, err, resp)
	}
	e.t.Cleanup(func() { ws.Close() })
	return ws
}

// waitFriendPresence reads ws until a friend's presence frame about
// userID says online, failing after within.
func waitFriendPresence(t *testing.T, ws *websocket.Conn, userID int64, online bool, within time.Duration) (lastSeen time.Time) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ws.SetReadDeadline(deadline)
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("no presence of user %d with online=%v within %v: %v", userID, online, within, err)
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			var f struct {
				Type   string             `json:"type"`
				RoomID int64              `json:"room_id"`
				User   struct{ ID int64 } `json:"user"`
				Online bool               `json:"online"`
				Seen   time.Time          `json:"last_seen"`
			}
			if json.Unmarshal(line, &f) == nil && f.Type == "presence" && f.RoomID == 0 && f.User.ID == userID && f.Online == online {
				return f.Seen
			}
		}
	}
}

// TestClusterPresenceNodeRestartedSameID: a node is killed and started
// again at once under the same --node-id, as deploy.md advises, and its
// user does not come back: friends on another node are told the user went
// offline, with a last-seen time, as after any node's death.
func TestClusterPresenceNodeRestartedSameID(t *testing.T) {
	e := newFaultEnv(t, envOptions{nodes: 2, users: 2})
	ada, grace := e.users[0], e.users[1] // friends (setup)
	gws := e.dialWS(grace, e.nodes[1])
	readUntil(t, gws, "hello")
	connected := time.Now()
	aws := e.dialWS(ada, e.nodes[0])
	readUntil(t, aws, "hello")
	waitFriendPresence(t, gws, ada.id, true, 10*time.Second)

	e.signal(e.nodes[0], sigkill)
	aws.Close()
	e.startNode(e.nodes[0])
	// NodeTTL (30 s) bounds it after a death; a restart must not make it never.
	seen := waitFriendPresence(t, gws, ada.id, false, 40*time.Second)
	if seen.Before(connected.Add(-time.Second)) {
		t.Errorf("Ada's last_seen = %v; want after she connected (%v)", seen, connected)
	}
}

// TestMigratePostgres: "parley migrate --db postgres://…" applies every
// embedded migration to an empty schema and records it; run again, it
// applies nothing more.
func TestMigratePostgres(t *testing.T) {
	db := testenv.PostgresSchema(t)
	files, err := fs.Glob(os.DirFS("../../internal/postgres/migrations"), "*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migration files: %v, %v", files, err)
	}
	for range 2 {
		var out, errb bytes.Buffer
		if err := run(t.Context(), []string{"migrate", "--db", db}, func(string) string { return "" }, &out, &errb); err != nil {
			t.Fatalf("parley migrate: %v\n%s", err, errb.String())
		}
		conn, err := pgx.Connect(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		var n, top int
		err = conn.QueryRow(t.Context(), `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &top)
		conn.Close(t.Context())
		if err != nil || n != len(files) || top != len(files) {
			t.Errorf("schema_migrations holds %d versions up to %d (%v); want the %d embedded ones", n, top, err, len(files))
		}
	}
}
