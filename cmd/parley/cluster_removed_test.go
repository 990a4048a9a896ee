package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	goredis "github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/testenv"
)

// A link carries the native protocol between a test client and a node:
// a WebSocket or a long-poll channel, so that one test body covers both.
type link interface {
	// send sends frame f; replies arrive through next.
	send(t testing.TB, f map[string]any)
	// next returns the frames (JSON objects, one each) that arrive next,
	// waiting at most until deadline.
	next(deadline time.Time) ([][]byte, error)
}

// dialLink opens a link of user c to node s.
type dialLink func(t testing.TB, s *testServer, c *http.Client) link

type wsLink struct{ ws *websocket.Conn }

func dialWSLink(t testing.TB, s *testServer, c *http.Client) link {
	return wsLink{dialWS(t, s, c)}
}

func (l wsLink) send(t testing.TB, f map[string]any) {
	t.Helper()
	if err := l.ws.WriteJSON(f); err != nil {
		t.Fatalf("write %v: %v", f, err)
	}
}

func (l wsLink) next(deadline time.Time) ([][]byte, error) {
	l.ws.SetReadDeadline(deadline)
	_, data, err := l.ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	return bytes.Split(data, []byte("\n")), nil
}

// pollLink long-polls: next is a GET /api/poll with the cursor of the
// last answer (none at first, which starts the channel), send a POST,
// whose reply frames next gives before polling again.
type pollLink struct {
	url    string
	c      *http.Client // no timeout of its own: next's deadline bounds a poll
	cursor string
	queued [][]byte
}

func dialPollLink(t testing.TB, s *testServer, c *http.Client) link {
	return &pollLink{url: s.URL + "/api/poll", c: &http.Client{Jar: c.Jar}}
}

func (l *pollLink) target() string {
	if l.cursor == "" {
		return l.url
	}
	return l.url + "?cursor=" + url.QueryEscape(l.cursor)
}

func (l *pollLink) send(t testing.TB, f map[string]any) {
	t.Helper()
	if l.cursor == "" {
		t.Fatal("POST /api/poll before the first poll: no cursor")
	}
	b, _ := json.Marshal(f)
	req, _ := http.NewRequest("POST", l.target(), bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := l.c.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("POST /api/poll %s: %v", b, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out struct{ Frames []json.RawMessage }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &out) != nil {
		t.Fatalf("POST /api/poll %s = %d %s; want 200 with frames", b, resp.StatusCode, data)
	}
	for _, f := range out.Frames {
		l.queued = append(l.queued, f)
	}
}

func (l *pollLink) next(deadline time.Time) ([][]byte, error) {
	if len(l.queued) > 0 {
		q := l.queued
		l.queued = nil
		return q, nil
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", l.target(), nil)
	resp, err := l.c.Do(req)
	if err != nil {
		return nil, err // given up on: the next poll, with the same cursor, has its answer
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var out struct {
		Cursor string
		Frames []json.RawMessage
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &out) != nil || out.Cursor == "" {
		return nil, fmt.Errorf("GET /api/poll = %d %s; want 200 with a cursor", resp.StatusCode, data)
	}
	l.cursor = out.Cursor
	frames := make([][]byte, len(out.Frames))
	for i, f := range out.Frames {
		frames[i] = f
	}
	return frames, nil
}

// linkUntil reads l until a frame of type typ comes, within 5 s.
func linkUntil(t testing.TB, l link, typ string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		frames, err := l.next(deadline)
		if err != nil {
			t.Fatalf("waiting for %q: %v", typ, err)
		}
		for _, b := range frames {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("frame %q: %v", b, err)
			}
			if m["type"] == typ {
				return m
			}
		}
	}
}

// TestClusterStaleRemovedKeepsNewerOpen: Ada leaves a room and enters it
// again through node a, then opens it on a connection to node b, which
// learns of the leave only after that (b was cut from Redis, and resyncs
// Ada's events when it is back; a slow pub/sub connection does the same).
// That removed ended a membership older than the one the open found: the
// connection goes on receiving the room.
func TestClusterStaleRemovedKeepsNewerOpen(t *testing.T) {
	testStaleRemovedKeepsNewerOpen(t, dialWSLink)
}

// TestClusterPollStaleRemovedKeepsNewerOpen is
// TestClusterStaleRemovedKeepsNewerOpen with Ada long-polling node b.
func TestClusterPollStaleRemovedKeepsNewerOpen(t *testing.T) {
	testStaleRemovedKeepsNewerOpen(t, dialPollLink)
}

// cutPair starts two nodes on one PostgreSQL database and Redis, node b
// reaching Redis through the returned proxy.
func cutPair(t *testing.T) (a, b *testServer, proxy *testenv.Proxy) {
	t.Helper()
	db := testenv.PostgresSchema(t)
	rurl, prefix, _ := testenv.Redis(t)
	opt, err := goredis.ParseURL(rurl)
	if err != nil {
		t.Fatal(err)
	}
	proxy = testenv.StartProxy(t, opt.Addr)
	viaProxy, err := url.Parse(rurl)
	if err != nil {
		t.Fatal(err)
	}
	viaProxy.Host = proxy.Addr()
	a = startServer(t, "--db", db, "--broker", rurl, "--redis-prefix", prefix, "--node-id", "a")
	b = startServer(t, "--db", db, "--broker", viaProxy.String(), "--redis-prefix", prefix, "--node-id", "b")
	return a, b, proxy
}

// cut cuts node b from Redis and waits until b notices.
func cut(t *testing.T, proxy *testenv.Proxy, b *testServer) {
	t.Helper()
	proxy.Cut()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.stderr.String(), "pub/sub connection lost") {
		if time.Now().After(deadline) {
			t.Fatalf("node b did not notice it was cut from Redis within 10s\n%s", b.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// linkReader reads a link, keeping the frames it read to show them.
type linkReader struct {
	t    *testing.T
	l    link
	who  string
	seen []string
}

// until reads until a frame that want accepts, within the time given.
func (r *linkReader) until(want func(f map[string]any) bool, what string, within time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for range 1000 {
		frames, err := r.l.next(deadline)
		if err != nil {
			r.t.Fatalf("%s did not receive %s: %v; frames since the open: %v", r.who, what, err, r.seen)
		}
		for _, line := range frames {
			var f map[string]any
			if json.Unmarshal(line, &f) != nil {
				continue
			}
			r.seen = append(r.seen, string(line))
			if want(f) {
				return
			}
		}
	}
	r.t.Fatalf("%s did not receive %s in 1000 reads; frames since the open: %v", r.who, what, r.seen)
}

// removedSeq returns the user_seq of the last removed of conversation id
// read so far, -1 if none.
func (r *linkReader) removedSeq(id int64) float64 {
	seq := -1.0
	for _, line := range r.seen {
		var f map[string]any
		if json.Unmarshal([]byte(line), &f) == nil && f["type"] == "removed" && f["room_id"] == float64(id) {
			seq, _ = f["user_seq"].(float64)
		}
	}
	return seq
}

// keepsOpen checks, once node b delivered what it missed, that Ada's
// link there still has conversation id open: Grace, opening it on node
// a, sees Ada present, and Ada receives Grace's message in it.
func keepsOpen(t *testing.T, a *testServer, grace *http.Client, adaID any, r *linkReader, id int64) {
	t.Helper()
	wg := dialWS(t, a, grace)
	readUntil(t, wg, "hello")
	wg.WriteJSON(map[string]any{"type": "open", "room_id": id})
	// The old removal did not close the conversation on Ada's link
	// either: she is present there.
	isAda := func(u any) bool { m, _ := u.(map[string]any); return m["id"] == adaID }
	online, _ := readUntil(t, wg, "opened")["online"].([]any)
	if !slices.ContainsFunc(online, isAda) {
		// Ada opened it on node b while b was cut from Redis, so her
		// presence failed to reach Redis; b's presence heartbeat (every
		// NodeTTL/6, 5 s) writes it again once Redis answers, which may
		// come after this open, and Grace then hears of it. A link whose
		// conversation the old removal closed would never be present.
		deadline := time.Now().Add(15 * time.Second)
		for n := 0; ; n++ {
			f := readUntilBy(t, wg, "presence", deadline)
			if on, _ := f["online"].(bool); on && isAda(f["user"]) {
				break
			}
			if n == 100 {
				t.Fatalf("Grace's opened online = %v, and 100 presence frames came without Ada (%v) online", online, adaID)
			}
		}
	}
	wg.WriteJSON(map[string]any{"type": "send", "room_id": id, "client_id": "g1", "body": "still here?"})
	readUntil(t, wg, "ack")
	r.until(func(f map[string]any) bool {
		m, _ := f["message"].(map[string]any)
		return f["type"] == "message" && m["body"] == "still here?"
	}, "Grace's message in the conversation she opened after being a member again", 10*time.Second)
}

func testStaleRemovedKeepsNewerOpen(t *testing.T, dial dialLink) {
	a, b, proxy := cutPair(t)
	ada := signIn(t, a, "ada@example.com", "Ada")
	grace := signIn(t, a, "grace@example.com", "Grace")
	type roomReply struct {
		Room struct{ ID int64 } `json:"room"`
	}
	var lobby, general roomReply
	postJSON(t, ada, "POST", a.URL+"/api/rooms", map[string]string{"name": "lobby"}, http.StatusOK, &lobby)
	postJSON(t, ada, "POST", a.URL+"/api/rooms", map[string]string{"name": "general"}, http.StatusOK, &general)
	postJSON(t, grace, "POST", a.URL+"/api/rooms", map[string]string{"name": "general"}, http.StatusOK, &general)

	lb := dial(t, b, ada)
	adaID := linkUntil(t, lb, "hello")["user"].(map[string]any)["id"]
	// A first logged event, delivered live on b: b's topic of Ada then
	// resyncs what follows it.
	postJSON(t, ada, "DELETE", fmt.Sprintf("%s/api/rooms/%d/members/me", a.URL, lobby.Room.ID), nil, http.StatusNoContent, nil)
	linkUntil(t, lb, "removed")

	cut(t, proxy, b)
	postJSON(t, ada, "DELETE", fmt.Sprintf("%s/api/rooms/%d/members/me", a.URL, general.Room.ID), nil, http.StatusNoContent, nil)
	postJSON(t, ada, "POST", a.URL+"/api/rooms", map[string]string{"name": "general"}, http.StatusOK, nil)
	lb.send(t, map[string]any{"type": "open", "room_id": general.Room.ID})
	opened := linkUntil(t, lb, "opened")
	proxy.Restore(t)

	// b delivers what it missed: the removed of the leave, then the
	// conversation of the entry again.
	r := &linkReader{t: t, l: lb, who: "Ada, on node b,"}
	r.until(func(f map[string]any) bool {
		return f["type"] == "conversation" && f["room_id"] == float64(general.Room.ID)
	}, "the conversation frame of her entry again", 20*time.Second)
	removedSeq := r.removedSeq(general.Room.ID)
	if removedSeq < 0 {
		t.Fatalf("no removed of general before the conversation frame: %v", r.seen)
	}
	if mark, _ := opened["user_seq"].(float64); mark < removedSeq {
		t.Errorf("opened user_seq = %v; want at least the removed's %v, which ended an earlier membership", opened["user_seq"], removedSeq)
	}
	keepsOpen(t, a, grace, adaID, r, general.Room.ID)
}

// TestClusterStaleGroupRemovalKeepsNewerOpen: Grace removes Ada from a
// group and adds her again through node a, and Ada opens the group on a
// connection to node b, which learns of the removal only after that (b
// was cut from Redis). Besides the removed on Ada's topic, the removal is
// a message of the group that cuts Ada from it on every node: that one
// too is old news to the connection, which goes on receiving the group.
func TestClusterStaleGroupRemovalKeepsNewerOpen(t *testing.T) {
	testStaleGroupRemovalKeepsNewerOpen(t, dialWSLink)
}

// TestClusterPollStaleGroupRemovalKeepsNewerOpen is
// TestClusterStaleGroupRemovalKeepsNewerOpen with Ada long-polling node b.
func TestClusterPollStaleGroupRemovalKeepsNewerOpen(t *testing.T) {
	testStaleGroupRemovalKeepsNewerOpen(t, dialPollLink)
}

func testStaleGroupRemovalKeepsNewerOpen(t *testing.T, dial dialLink) {
	a, b, proxy := cutPair(t)
	ada := signIn(t, a, "ada@example.com", "Ada")
	grace := signIn(t, a, "grace@example.com", "Grace")
	var me struct {
		User struct{ ID int64 } `json:"user"`
	}
	postJSON(t, ada, "GET", a.URL+"/api/me", nil, http.StatusOK, &me)
	var crew struct {
		Group struct{ ID int64 } `json:"group"`
	}
	postJSON(t, grace, "POST", a.URL+"/api/groups", map[string]string{"name": "crew"}, http.StatusCreated, &crew)
	id := crew.Group.ID
	members := fmt.Sprintf("%s/api/groups/%d/members", a.URL, id)
	postJSON(t, grace, "POST", members, map[string]int64{"user_id": me.User.ID}, http.StatusOK, nil)

	lb := dial(t, b, ada)
	adaID := linkUntil(t, lb, "hello")["user"].(map[string]any)["id"]
	// A first logged event on Ada's topic and a first message of the
	// group, delivered live on b: b's topics then resync what follows.
	var lobby struct {
		Room struct{ ID int64 } `json:"room"`
	}
	postJSON(t, ada, "POST", a.URL+"/api/rooms", map[string]string{"name": "lobby"}, http.StatusOK, &lobby)
	postJSON(t, ada, "DELETE", fmt.Sprintf("%s/api/rooms/%d/members/me", a.URL, lobby.Room.ID), nil, http.StatusNoContent, nil)
	linkUntil(t, lb, "removed")
	postJSON(t, grace, "POST", fmt.Sprintf("%s/api/conversations/%d/messages", a.URL, id), map[string]string{"client_id": "g0", "body": "hi crew"}, http.StatusOK, nil)
	r := &linkReader{t: t, l: lb, who: "Ada, on node b,"}
	r.until(func(f map[string]any) bool {
		m, _ := f["message"].(map[string]any)
		return f["type"] == "message" && m["body"] == "hi crew"
	}, "Grace's first message in the group", 5*time.Second)

	cut(t, proxy, b)
	postJSON(t, grace, "DELETE", fmt.Sprintf("%s/%d", members, me.User.ID), nil, http.StatusNoContent, nil)
	postJSON(t, grace, "POST", members, map[string]int64{"user_id": me.User.ID}, http.StatusOK, nil)
	lb.send(t, map[string]any{"type": "open", "room_id": id})
	linkUntil(t, lb, "opened")
	proxy.Restore(t)

	// b delivers what it missed: on Ada's topic the removed and the
	// conversation of the addition again; on the group's the removed and
	// added messages, which the hub delivers in order before any later
	// one, Grace's below among them.
	r.seen = nil
	r.until(func(f map[string]any) bool {
		return f["type"] == "conversation" && f["room_id"] == float64(id)
	}, "the conversation frame of her addition again", 20*time.Second)
	keepsOpen(t, a, grace, adaID, r, id)
}
