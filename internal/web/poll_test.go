package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/web"
)

// pollTransport makes a wsClient speak long-poll: a goroutine polls GET
// /api/poll and queues the frames; send POSTs a frame and queues the
// replies.
type pollTransport struct {
	ts     *testServer
	hc     *http.Client
	cancel context.CancelFunc
	ctx    context.Context
	ending atomic.Bool // leave: poll no more once the poll under way is answered

	mu     sync.Mutex
	cursor string
}

// connectPoll starts long-polling as c, from cursor ("" for a new
// channel, whose hello it checks).
func (ts *testServer) connectPoll(tb testing.TB, c *client, cursor string) *wsClient {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &pollTransport{ts: ts, hc: &http.Client{Jar: c.Jar}, ctx: ctx, cancel: cancel, cursor: cursor}
	w := &wsClient{name: c.Name + " (poll)", changed: make(chan struct{}), done: make(chan struct{}), poll: p, reading: true}
	go p.loop(w)
	tb.Cleanup(w.stopPolling)
	if cursor == "" {
		w.hello = w.expect(tb, "hello")
		if h := w.hello; h.User == nil || h.User.ID != c.ID {
			tb.Fatalf("%s: hello = %s; want user %d", w.name, h, c.ID)
		}
	}
	return w
}

// stopPolling ends the poll loop and waits for it, as a closed page.
func (w *wsClient) stopPolling() {
	w.poll.cancel()
	<-w.done
}

// leave ends the poll loop once the poll under way is answered, and waits
// for it: a page that closes between polls. stopPolling aborts the poll
// under way instead, which may reach the server after a DELETE of the
// channel (it is answered 410 channel_ended then, TestPollEndedNotRebuilt).
func (w *wsClient) leave() {
	w.poll.ending.Store(true)
	<-w.done
}

func (p *pollTransport) getCursor() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cursor
}

func (p *pollTransport) loop(w *wsClient) {
	defer close(w.done)
	for p.ctx.Err() == nil && !p.ending.Load() {
		req, _ := http.NewRequestWithContext(p.ctx, "GET", p.ts.URL+"/api/poll?cursor="+url.QueryEscape(p.getCursor()), nil)
		var body struct {
			Cursor string            `json:"cursor"`
			Frames []json.RawMessage `json:"frames"`
		}
		resp, err := p.hc.Do(req)
		if err == nil {
			data, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case rerr != nil:
				err = rerr
			case resp.StatusCode != http.StatusOK:
				err = fmt.Errorf("GET /api/poll: %d %s", resp.StatusCode, bytes.TrimSpace(data))
			default:
				err = decodeStrict(data, &body)
			}
		}
		var fs []frame
		for _, raw := range body.Frames {
			f, perr := parseFrame(raw)
			if perr != nil {
				err = perr
				break
			}
			fs = append(fs, f)
		}
		if p.ctx.Err() != nil {
			return // stopped: like a closed page, this response is not read
		}
		if err == nil {
			// The cursor moves before the frames are seen: a test that
			// has seen hello may POST at once, and a POST needs it.
			p.mu.Lock()
			p.cursor = body.Cursor
			p.mu.Unlock()
		}
		w.queueFrames(fs, err)
		if err != nil {
			return
		}
	}
}

// post sends one frame and queues its replies.
func (p *pollTransport) post(tb testing.TB, w *wsClient, b []byte) {
	tb.Helper()
	r := send(tb, p.hc, p.ts.newRequest(tb, "POST", "/api/poll?cursor="+url.QueryEscape(p.getCursor()), string(b)))
	if r.Status != http.StatusOK {
		tb.Fatalf("%s: POST /api/poll %s: %s", w.name, b, r)
	}
	var body struct {
		Frames []json.RawMessage `json:"frames"`
	}
	if err := decodeStrict(r.Body, &body); err != nil {
		tb.Fatalf("%s: POST /api/poll: %v", w.name, err)
	}
	if body.Frames == nil {
		tb.Fatalf("%s: POST /api/poll %s = %s; want frames, a list", w.name, b, r)
	}
	fs := make([]frame, 0, len(body.Frames))
	for _, raw := range body.Frames {
		f, err := parseFrame(raw)
		if err != nil {
			tb.Fatalf("%s: %v", w.name, err)
		}
		fs = append(fs, f)
	}
	w.queueFrames(fs, nil)
}

func fastPoll(c *web.Config) { c.PollHold = 500 * time.Millisecond }

// TestPollPostNoReply: a POST whose frame has no reply (typing) answers
// with an empty list of frames, not null: "the answer holds its reply
// frames" (docs/protocol.md, "Long-polling").
func TestPollPostNoReply(t *testing.T) {
	ts := newTestServer(t, withWeb(fastPoll))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	ap := ts.connectPoll(t, ada, "")
	ap.open(t, room.ID, nil)
	ap.send(t, map[string]any{"type": "typing", "room_id": room.ID}) // post checks the answer
}

// TestPollChat: a long-polling user and a WebSocket user chat in a room;
// errors come back as over WebSocket.
func TestPollChat(t *testing.T) {
	ts := newTestServer(t, withWeb(fastPoll))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	room := ts.enterRoom(t, ada, "general")
	ts.enterRoom(t, grace, "general")

	ap := ts.connectPoll(t, ada, "")
	gws := ts.connect(t, grace)
	ap.open(t, room.ID, nil)
	gws.open(t, room.ID, nil)
	for i := range 5 {
		m := ap.sendMessage(t, room.ID, fmt.Sprint("a", i), fmt.Sprint("from poll ", i))
		gws.expectMessage(t, room.ID, m.Seq)
		ap.expectMessage(t, room.ID, m.Seq)
		g := gws.sendMessage(t, room.ID, fmt.Sprint("g", i), fmt.Sprint("from ws ", i))
		ap.expectMessage(t, room.ID, g.Seq)
		gws.expectMessage(t, room.ID, g.Seq)
	}
	// The same errors as over WebSocket, with the connection still usable.
	ap.send(t, map[string]any{"type": "send", "room_id": room.ID, "client_id": "x"})
	if f := ap.expectError(t, "x"); f.Code != chat.CodeMissingField || f.Field != "body" {
		t.Errorf("send without body = %s; want missing_field body", f)
	}
	ap.send(t, map[string]any{"type": "nope", "ref": "r1"})
	if f := ap.expectError(t, "r1"); f.Code != chat.CodeUnknownType {
		t.Errorf("unknown type = %s; want unknown_type", f)
	}
	ap.sendMessage(t, room.ID, "after-errors", "still here")

	// A POST without a cursor, a forged cursor, and no session.
	wantError(t, "POST without cursor", ts.do(t, ada, "POST", "/api/poll", `{"type":"ping"}`), http.StatusBadRequest, chat.CodeMissingField)
	wantError(t, "forged cursor", ts.do(t, ada, "GET", "/api/poll?cursor=%21%21", nil), http.StatusBadRequest, chat.CodeInvalidField)
	wantError(t, "no session", ts.do(t, nil, "GET", "/api/poll", nil), http.StatusUnauthorized, chat.CodeUnauthorized)
}

// TestPollCursor: a response the client did not get is given again for
// the same cursor; a server that lost the channel (here: another server
// on the same database, as after a restart) rebuilds it from the cursor,
// with what was missed and nothing twice.
func TestPollCursor(t *testing.T) {
	dir := t.TempDir()
	db := dir + "/parley.db"
	ts := newTestServer(t, withWeb(fastPoll), withDB(db))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	room := ts.enterRoom(t, ada, "general")
	ts.enterRoom(t, grace, "general")
	ap := ts.connectPoll(t, ada, "")
	ap.open(t, room.ID, nil)
	ap.barrier(t)
	first := ts.post(t, grace, room.ID, "g1", "one")
	ap.expectMessage(t, room.ID, first.Seq)
	ap.stopPolling()
	cursor := ap.poll.getCursor()

	// The same cursor twice: the same answer.
	get := func(cur string) (string, []byte) {
		t.Helper()
		r := ts.do(t, ada, "GET", "/api/poll?cursor="+url.QueryEscape(cur), nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET /api/poll: %s", r)
		}
		var body struct {
			Cursor string            `json:"cursor"`
			Frames []json.RawMessage `json:"frames"`
		}
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(body.Frames)
		return body.Cursor, b
	}
	second := ts.post(t, grace, room.ID, "g2", "two")
	next, frames := get(cursor)
	if !bytes.Contains(frames, []byte(`"client_id":"g2"`)) {
		t.Fatalf("poll after a send = %s; want message g2", frames)
	}
	if _, again := get(cursor); !bytes.Equal(again, frames) {
		t.Errorf("poll with the same cursor = %s; want the lost response again %s", again, frames)
	}

	// "Restart": the first server goes away with its channels; messages
	// are sent meanwhile; the cursor resumes on a new server.
	ts.stop()
	ts2 := newTestServer(t, withWeb(fastPoll), withDB(db))
	ada.Client.Jar, grace.Client.Jar = rejar(t, ts, ts2, ada), rejar(t, ts, ts2, grace)
	var sent []int64
	for i := range 3 {
		sent = append(sent, ts2.post(t, grace, room.ID, fmt.Sprint("r", i), fmt.Sprint("while away ", i)).Seq)
	}
	ap2 := ts2.connectPoll(t, ada, next)
	if f := ap2.expect(t, "resumed"); f.Raw != fmt.Sprintf(`{"type":"resumed","rooms":[%d]}`, room.ID) {
		t.Errorf("resumed = %s; want room %d", f, room.ID)
	}
	sync := ap2.expect(t, "sync")
	if got := seqs(sync.Messages); !slices.Equal(got, sent) {
		t.Errorf("messages after the restart = %v; want %v (second was %d)", got, sent, second.Seq)
	}
	live := ts2.post(t, grace, room.ID, "live", "after")
	ap2.expectMessage(t, room.ID, live.Seq)
	ap2.barrier(t)
	for _, f := range ap2.drain() {
		if f.Type == "message" || f.Type == "sync" {
			t.Errorf("frame delivered twice: %s", f)
		}
	}
}

// rejar moves c's session cookie from ts to ts2 (another port).
func rejar(t *testing.T, ts, ts2 *testServer, c *client) http.CookieJar {
	t.Helper()
	u1, _ := url.Parse(ts.URL)
	u2, _ := url.Parse(ts2.URL)
	jar := c.Client.Jar
	jar.SetCookies(u2, jar.Cookies(u1))
	return jar
}

// scenario is what one user saw in TestMessengerScenario, transport aside.
type scenario struct {
	Events   []string            // logged user events received on return, in order
	Unread   map[string]int64    // conversation name → unread on return
	Messages map[string][]string // conversation name → "seq body" read on return, in order
	Live     []string            // messages received live before going away
}

// TestMessengerScenario runs one story over WebSocket and over
// long-polling and checks both give the same results: friendship, a
// direct chat, a group chat, Grace away while messages, a friend request,
// an invitation and a removal arrive, then back.
func TestMessengerScenario(t *testing.T) {
	results := map[string]scenario{}
	for _, transport := range []string{"ws", "poll"} {
		t.Run(transport, func(t *testing.T) { results[transport] = runScenario(t, transport) })
	}
	if diff := cmp.Diff(results["ws"], results["poll"]); diff != "" {
		t.Errorf("WebSocket and long-poll results differ (-ws +poll):\n%s", diff)
	}
	if len(results["ws"].Events) != 3 || len(results["ws"].Messages["direct"]) != 3 {
		t.Errorf("scenario result = %+v; want 3 events and 3 direct messages", results["ws"])
	}
}

func runScenario(t *testing.T, transport string) scenario {
	ts := newTestServer(t, withWeb(fastPoll))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	eve := ts.signIn(t, "eve@example.com", "Eve")
	connect := func(c *client, resume string) *wsClient {
		if transport == "poll" {
			return ts.connectPoll(t, c, resume)
		}
		if resume == "" {
			return ts.connect(t, c)
		}
		conn, resp, err := ts.dial(t, c, "/api/ws?events_after="+resume, dialOptions{})
		if err != nil {
			t.Fatalf("dial: %v (%s)", err, statusOf(resp))
		}
		w := newWSClient(t, c.Name, conn)
		w.startReading()
		w.expect(t, "hello")
		return w
	}
	var res scenario
	aw := connect(ada, "")
	gw := connect(grace, "")

	// Friendship, live.
	userSeq := int64(0) // Grace's newest logged event
	ts.requestFriend(t, ada, grace.ID)
	userSeq = max(userSeq, gw.expectContact(t, ada, "request_received").UserSeq)
	ts.mustDo(t, grace, "POST", "/api/contacts/"+strconv.FormatInt(ada.ID, 10)+"/accept", nil, http.StatusOK, nil)
	aw.expectContact(t, grace, "friends")

	// A direct chat, then a group.
	_, dc := ts.sendDirect(t, ada, grace.ID, "d0", "hello Grace")
	gw.take(t, "conversation", func(f frame) bool { return f.Type == "conversation" && f.RoomID == dc.ID })
	g := ts.createGroup(t, ada, "crew", 0)
	ts.addMember(t, ada, g.ID, grace)
	added := gw.take(t, "group conversation", func(f frame) bool { return f.Type == "conversation" && f.RoomID == g.ID })
	userSeq = max(userSeq, added.UserSeq)
	for _, w := range []*wsClient{aw, gw} {
		w.open(t, dc.ID, nil)
		w.open(t, g.ID, nil)
	}
	for i, id := range []int64{dc.ID, g.ID, dc.ID} {
		m := aw.sendMessage(t, id, fmt.Sprint("live", i), fmt.Sprint("live ", i))
		got := gw.expectMessage(t, id, m.Seq)
		res.Live = append(res.Live, fmt.Sprintf("%d %d %s", id, got.Seq, got.Body))
	}
	gw.barrier(t)
	lastSeq := map[int64]int64{}
	for _, id := range []int64{dc.ID, g.ID} {
		lastSeq[id] = ts.conversation(t, grace, id).LastSeq
		ts.markRead(t, grace, id, lastSeq[id])
	}
	gw.barrier(t)
	for _, f := range gw.drain() {
		userSeq = max(userSeq, f.UserSeq)
	}

	// Grace goes away.
	if transport == "poll" {
		gw.stopPolling()
	} else {
		_ = gw.conn.Close()
	}
	for i := range 3 {
		ts.sendDirect(t, ada, grace.ID, fmt.Sprint("away", i), fmt.Sprint("while away ", i))
	}
	aw.sendMessage(t, g.ID, "away-g", "group while away")
	ts.requestFriend(t, eve, grace.ID)
	g2 := ts.createGroup(t, ada, "brief", 0)
	ts.addMember(t, ada, g2.ID, grace)
	ts.mustDo(t, ada, "DELETE", memberPath(g2.ID, grace, ""), nil, http.StatusNoContent, nil)

	// Grace comes back.
	var back *wsClient
	if transport == "poll" {
		back = connect(grace, gw.poll.getCursor())
	} else {
		back = connect(grace, strconv.FormatInt(userSeq, 10))
	}
	for range 3 {
		f := back.take(t, "logged event", func(f frame) bool { return f.UserSeq > 0 })
		switch f.Type {
		case "contact":
			res.Events = append(res.Events, fmt.Sprintf("contact %d %s", f.User.ID, f.State))
		case "conversation":
			res.Events = append(res.Events, fmt.Sprintf("conversation %d %s", f.RoomID, f.Kind))
		default:
			res.Events = append(res.Events, fmt.Sprintf("%s %d %s", f.Type, f.RoomID, f.Reason))
		}
	}
	res.Unread = map[string]int64{}
	names := map[int64]string{dc.ID: "direct", g.ID: "group"}
	for _, c := range ts.conversations(t, grace) {
		res.Unread[names[c.ID]] = c.Unread
	}
	res.Messages = map[string][]string{}
	for _, id := range []int64{dc.ID, g.ID} {
		var got []wireMessage
		if transport == "poll" { // the channel kept them open: they come as messages
			for range ts.conversation(t, grace, id).LastSeq - lastSeq[id] {
				f := back.take(t, "message", func(f frame) bool { return f.Type == "message" && f.RoomID == id })
				got = append(got, *f.Message)
			}
		} else {
			after := lastSeq[id]
			back.open(t, id, &after)
			got = back.expect(t, "sync").Messages
		}
		for _, m := range got {
			res.Messages[names[id]] = append(res.Messages[names[id]], fmt.Sprintf("%d %s", m.Seq, m.Body))
		}
	}
	back.barrier(t)
	for _, f := range back.drain() {
		if (f.Type == "message" && names[f.RoomID] != "") || f.UserSeq > 0 {
			t.Errorf("%s: frame delivered twice or unexpected: %s", transport, f)
		}
	}
	return res
}

// TestPollChannelAuth: a poll for a live channel skips the session read
// only with that channel's own session token. Another user's token with
// the channel's cursor gets a channel of its own; no token, and the
// signed-out one, get 401, at once after the sign-out.
func TestPollChannelAuth(t *testing.T) {
	ts := newTestServer(t, withWeb(fastPoll))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	ap := ts.connectPoll(t, ada, "")
	ap.barrier(t) // a ping answered: the channel's cursor is past the hello
	cursor := ap.poll.getCursor()
	path := "/api/poll?cursor=" + url.QueryEscape(cursor)
	token := ada.Jar.Cookies(mustParseURL(t, ts.URL))[0].Value

	r := ts.do(t, grace, "GET", path, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("Grace's GET with Ada's cursor = %s; want 200", r)
	}
	var body struct {
		Cursor string            `json:"cursor"`
		Frames []json.RawMessage `json:"frames"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil || len(body.Frames) == 0 {
		t.Fatalf("Grace's GET with Ada's cursor: %s, %v; want frames", r.Body, err)
	}
	// A channel of Grace's own, rebuilt from the cursor with nothing open,
	// that tells Grace her own name.
	wantFrames := []string{`{"type":"resumed","rooms":[]}`, fmt.Sprintf(`{"type":"user","user":{"id":%d,"name":"Grace"},"version":1}`, grace.ID)}
	var gotFrames []string
	for _, f := range body.Frames {
		gotFrames = append(gotFrames, string(f))
	}
	if !slices.Equal(gotFrames, wantFrames) {
		t.Errorf("Grace's GET with Ada's cursor = %s; want an empty resumed frame and Grace's name", r.Body)
	}
	if body.Cursor == cursor {
		t.Errorf("Grace's GET with Ada's cursor answered with Ada's cursor")
	}
	ap.barrier(t) // Ada's channel goes on
	wantError(t, "GET with Ada's cursor and no cookie", ts.do(t, nil, "GET", path, nil), http.StatusUnauthorized, chat.CodeUnauthorized)

	// Nor does Grace's DELETE with Ada's cursor end Ada's channel: one
	// rebuilt would start with a resumed frame.
	ts.mustDo(t, grace, "DELETE", path, nil, http.StatusNoContent, nil)
	ap.barrier(t)
	ap.barrier(t) // the GET after a rebuild has answered by now
	for _, f := range ap.drain() {
		if f.Type == "resumed" {
			t.Errorf("Ada's channel was rebuilt after Grace's DELETE with Ada's cursor: %s", f)
		}
	}
	wantError(t, "DELETE without a cursor", ts.do(t, ada, "DELETE", "/api/poll", nil), http.StatusBadRequest, chat.CodeMissingField)
	wantError(t, "DELETE with a forged cursor", ts.do(t, ada, "DELETE", "/api/poll?cursor=%21%21", nil), http.StatusBadRequest, chat.CodeInvalidField)
	wantError(t, "DELETE with no cookie", ts.do(t, nil, "DELETE", path, nil), http.StatusUnauthorized, chat.CodeUnauthorized)

	ts.mustDo(t, ada, "POST", "/api/auth/signout", nil, http.StatusNoContent, nil)
	if err := ap.waitEnd(t, "the session's end"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("Ada's poll ended with %v; want a 401", err)
	}
	for _, p := range []string{path, "/api/poll?cursor=" + url.QueryEscape(ap.poll.getCursor())} {
		req := ts.newRequest(t, "GET", p, nil)
		req.AddCookie(&http.Cookie{Name: web.CookieName, Value: token})
		wantError(t, "GET with the signed-out cookie", send(t, nil, req), http.StatusUnauthorized, chat.CodeUnauthorized)
	}
}

// TestPollHeldChannelStays: a channel does not idle out under a GET that
// is held on it. With a hold longer than the idle time (as the defaults
// are: 25 s and 20 s), a quiet channel was stopped under every poll and
// rebuilt by the next, "resumed" and all.
func TestPollHeldChannelStays(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.PollHold = 1500 * time.Millisecond; c.PollIdle = 500 * time.Millisecond }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	token := ada.Jar.Cookies(mustParseURL(t, ts.URL))[0].Value
	cur := cursorOf(t, pollAs(t, ts, "GET", token, "", "")) // hello
	for i := range 2 {
		r := pollAs(t, ts, "GET", token, cur, "")
		cur = cursorOf(t, r)
		var body struct {
			Frames []json.RawMessage `json:"frames"`
		}
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatal(err)
		}
		if len(body.Frames) != 0 {
			t.Fatalf("quiet poll %d = %s; want no frames (the channel went on)", i, r)
		}
	}
}

// TestPollManyOpen: a long-poll channel whose client opens more
// conversations than a cursor may name (256) goes on polling: the server
// never gives a cursor that it then refuses as forged.
func TestPollManyOpen(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { fastPoll(c); c.SendRate, c.SendBurst = 1000, 1000 }),
		withChat(func(c *chat.Config) { c.NewConvsPerHour = 1000 }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	ap := ts.connectPoll(t, ada, "")
	var first wireRoom
	opened := 0
	for i := range 260 {
		room := ts.enterRoom(t, ada, fmt.Sprint("r", i))
		if i == 0 {
			first = room
		}
		ref := ap.newRef()
		ap.send(t, map[string]any{"type": "open", "room_id": room.ID, "ref": ref})
		f := ap.take(t, "opened or error "+ref, func(f frame) bool { return (f.Type == "opened" || f.Type == "error") && f.Ref == ref })
		switch {
		case f.Type == "opened":
			opened++
		case f.Code != chat.CodeRateLimited || opened < 256:
			t.Fatalf("open of conversation %d, after %d opened: %s; want it opened, or rate_limited past 256", i+1, opened, f)
		}
	}
	ts.enterRoom(t, grace, first.Name)
	for i := range 2 {
		m := ts.post(t, grace, first.ID, fmt.Sprint("g", i), "hi")
		ap.expectMessage(t, first.ID, m.Seq)
	}
}

// TestPollPostNotJSON: a POST /api/poll body must be application/json, as
// every request body of the API: a plain HTML form (text/plain can carry
// a JSON frame) cannot post a frame, here a send as the signed-in user.
func TestPollPostNotJSON(t *testing.T) {
	ts := newTestServer(t, withWeb(fastPoll))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	cursor := web.ForgedCursor("any")
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", ""} {
		req := ts.newRequest(t, "POST", "/api/poll?cursor="+url.QueryEscape(cursor), fmt.Sprintf(`{"type":"send","room_id":%d,"client_id":"form","body":"=x"}`, room.ID))
		req.Header.Set("Content-Type", ct)
		wantError(t, "POST /api/poll as "+ct, send(t, ada.Client, req), http.StatusUnsupportedMediaType, chat.CodeInvalidField)
	}
	for _, m := range ts.allMessages(t, ada, room.ID) {
		if m.Kind == "text" {
			t.Errorf("stored from a POST that is not JSON: %+v", m)
		}
	}
}

// TestPollPostTooLarge: a POST /api/poll frame over max_frame_bytes is a
// request body over the limit: 413 too_large, as the protocol's error
// codes say, and nothing is done.
func TestPollPostTooLarge(t *testing.T) {
	ts := newTestServer(t, withWeb(fastPoll))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	body := fmt.Sprintf(`{"type":"send","room_id":%d,"client_id":"big","body":%q}`, room.ID, strings.Repeat("x", 40<<10))
	r := ts.do(t, ada, "POST", "/api/poll?cursor="+url.QueryEscape(web.ForgedCursor("any")), body)
	wantError(t, "POST /api/poll of 40 KiB", r, http.StatusRequestEntityTooLarge, "too_large")
}

// stallReadPositions is a store whose ReadPositions, once armed, first
// waits until it is let go: an open of a group reads them after the
// group's last_seq, before the channel takes the group as open.
type stallReadPositions struct {
	chat.Store
	armed   atomic.Bool
	stalled chan struct{} // closed when a read waits
	resume  chan struct{} // closed to let it go on
}

func (s *stallReadPositions) ReadPositions(ctx context.Context, convID int64) ([]chat.ReadPosition, error) {
	if s.armed.CompareAndSwap(true, false) {
		close(s.stalled)
		<-s.resume
	}
	return s.Store.ReadPositions(ctx, convID)
}

// TestPollOpenGroupNoDuplicate: a long-poll channel receives a group's
// messages before it opens the group (for the list); one that arrives
// while the open is under way, after it read last_seq, was delivered
// again with the next message (filled in as missed), where a WebSocket
// delivers each once.
func TestPollOpenGroupNoDuplicate(t *testing.T) {
	st := &stallReadPositions{stalled: make(chan struct{}), resume: make(chan struct{})}
	ts := newTestServer(t, withWeb(fastPoll), withStore(func(s chat.Store) chat.Store { st.Store = s; return st }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	g := ts.createGroup(t, ada, "crew", 0)
	ts.addMember(t, ada, g.ID, grace)
	gp := ts.connectPoll(t, grace, "")

	st.armed.Store(true)
	opened := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("POST", ts.URL+"/api/poll?cursor="+url.QueryEscape(gp.poll.getCursor()),
			strings.NewReader(fmt.Sprintf(`{"type":"open","room_id":%d}`, g.ID)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := grace.Client.Do(req)
		if err != nil {
			opened <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		opened <- string(b)
	}()
	select {
	case <-st.stalled:
	case <-time.After(waitTimeout):
		t.Fatal("the open did not read the group's read positions")
	}
	during := ts.post(t, ada, g.ID, "during", "while Grace opens")
	gp.expectMessage(t, g.ID, during.Seq) // live, for the list
	close(st.resume)
	if b := <-opened; !strings.Contains(b, `"type":"opened"`) {
		t.Fatalf("open of the group = %s; want opened", b)
	}
	after := ts.post(t, ada, g.ID, "after", "once Grace has it open")
	gp.expectMessage(t, g.ID, after.Seq)
	gp.barrier(t)
	for _, f := range gp.drain() {
		if f.Type == "message" && f.RoomID == g.ID {
			t.Errorf("delivered twice: %s", f)
		}
	}
}

// TestPollWhileShuttingDown: a poll that would make a channel once the
// hub has closed (the server is shutting down) is told to come again,
// 503 unavailable, not an internal error.
func TestPollWhileShuttingDown(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := ts.hub.Close(ctx); err != nil {
		t.Fatalf("close hub: %v", err)
	}
	wantError(t, "a poll after the hub closed", ts.do(t, ada, "GET", "/api/poll", nil), http.StatusServiceUnavailable, chat.CodeUnavailable)
}
