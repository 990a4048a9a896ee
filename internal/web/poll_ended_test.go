package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/web"
)

// TestPollEndedNotRebuilt: a poll that the client cancelled as its page
// closed can reach the server after the DELETE of its channel. It carries
// the channel's cursor, which used to rebuild the channel, and with it
// the user's presence until the channel idled out: the user stayed online
// after closing the page. A channel ended by DELETE is answered 410
// channel_ended instead (GET and POST alike), with a cursor that resumes
// it on a new channel, losing nothing.
func TestPollEndedNotRebuilt(t *testing.T) {
	ts := newTestServer(t, withWeb(fastPoll))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	room := ts.enterRoom(t, ada, "general")
	ts.enterRoom(t, grace, "general")
	ap := ts.connectPoll(t, ada, "")
	ap.open(t, room.ID, nil)
	seen := ts.post(t, grace, room.ID, "g0", "before")
	ap.expectMessage(t, room.ID, seen.Seq) // the cursor names the room
	cursor := ap.poll.getCursor()
	ap.stopPolling() // the page closes: its poll is cancelled...
	path := "/api/poll?cursor=" + url.QueryEscape(cursor)
	ts.mustDo(t, ada, "DELETE", path, nil, http.StatusNoContent, nil) // ...and it ends its channel
	if n := ts.hub.UserClients(ada.ID); n != 0 {
		t.Fatalf("after the DELETE, Ada has %d connections; want 0", n)
	}
	missed := ts.post(t, grace, room.ID, "g1", "while Ada is away")

	// The cancelled poll arrives late, and a POST too.
	var resume string
	for _, method := range []string{"GET", "POST"} {
		var body any
		if method == "POST" {
			body = `{"type":"ping"}`
		}
		r := ts.do(t, ada, method, path, body)
		var b struct {
			Error  wireError `json:"error"`
			Cursor string    `json:"cursor"`
		}
		if err := decodeStrict(r.Body, &b); err != nil || r.Status != http.StatusGone || b.Error.Code != "channel_ended" ||
			b.Error.Field != "cursor" || b.Error.Message == "" {
			t.Errorf("late %s of an ended channel = %s (%v); want 410 channel_ended, field cursor", method, r, err)
		}
		if b.Cursor == "" || b.Cursor == cursor {
			t.Errorf("late %s = %s; want a cursor to resume on a new channel", method, r)
		}
		resume = b.Cursor
		if n := ts.hub.UserClients(ada.ID); n != 0 {
			t.Fatalf("after a late %s, Ada has %d connections; want 0 (the ended channel was rebuilt)", method, n)
		}
	}

	// The page comes back (the back/forward cache): the cursor of the
	// answer resumes the channel on a new one, with what was missed.
	back := ts.connectPoll(t, ada, resume)
	if f := back.expect(t, "resumed"); f.Raw != fmt.Sprintf(`{"type":"resumed","rooms":[%d]}`, room.ID) {
		t.Errorf("resumed = %s; want room %d", f, room.ID)
	}
	if got := seqs(back.expect(t, "sync").Messages); !slices.Equal(got, []int64{missed.Seq}) {
		t.Errorf("messages missed = %v; want [%d]", got, missed.Seq)
	}
	if n := ts.hub.UserClients(ada.ID); n != 1 {
		t.Errorf("resumed: Ada has %d connections; want 1", n)
	}
}

// TestPollRestoreNotRateLimited: a channel rebuilt from its cursor opens
// again every conversation the cursor names (up to 256). Those opens are
// the server's, not the client's, but they went through the client's
// request limit (five times --send-rate and --send-burst): past its
// burst, the rest were dropped from "resumed" with rate_limited errors,
// and the client had to open them again under the same limit.
func TestPollRestoreNotRateLimited(t *testing.T) {
	const rooms = 8
	db := t.TempDir() + "/parley.db"
	ts := newTestServer(t, withWeb(fastPoll), withDB(db))
	ada, _, ids, cursor := ts.cursorOfRooms(t, rooms)

	// A restart, on a node whose request limit is a burst of 5.
	ts.stop()
	ts2 := newTestServer(t, withDB(db), withWeb(func(c *web.Config) { fastPoll(c); c.SendRate, c.SendBurst = 0.001, 1 }))
	ada.Client.Jar = rejar(t, ts, ts2, ada)
	back := ts2.connectPoll(t, ada, cursor)
	f := back.expect(t, "resumed")
	slices.Sort(ids)
	want, _ := json.Marshal(map[string]any{"type": "resumed", "rooms": ids})
	var got struct {
		Rooms []int64 `json:"rooms"`
	}
	if err := json.Unmarshal([]byte(f.Raw), &got); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got.Rooms)
	if !slices.Equal(got.Rooms, ids) {
		t.Errorf("resumed = %s; want every room open: %s", f, want)
	}
	back.barrier(t)
	for _, f := range back.drain() {
		if f.Type == "error" {
			t.Errorf("rebuilding the channel: %s", f)
		}
	}
}

// downLog is a web.EndedLog whose store cannot be reached.
type downLog struct{ adds, reads atomic.Int32 }

func (d *downLog) Add(context.Context, int64, string, time.Duration, int) error {
	d.adds.Add(1)
	return errors.New("redis down")
}

func (d *downLog) Has(context.Context, int64, string) (bool, error) {
	d.reads.Add(1)
	return false, errors.New("redis down")
}

// TestPollEndedSharedLogDown: with the record shared by the nodes
// (Config.Ended) unreachable, a DELETE still ends the channel on its node,
// which still refuses a late poll for it; and a channel this node does
// not know is still rebuilt from its cursor.
func TestPollEndedSharedLogDown(t *testing.T) {
	log := new(downLog)
	ts := newTestServer(t, withWeb(func(c *web.Config) { fastPoll(c); c.Ended = log }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	ap := ts.connectPoll(t, ada, "")
	ap.barrier(t)
	cursor := ap.poll.getCursor()
	ap.stopPolling()
	path := "/api/poll?cursor=" + url.QueryEscape(cursor)
	ts.mustDo(t, ada, "DELETE", path, nil, http.StatusNoContent, nil)
	if n := ts.hub.UserClients(ada.ID); n != 0 {
		t.Fatalf("after the DELETE, Ada has %d connections; want 0", n)
	}
	if n := log.adds.Load(); n != 1 {
		t.Errorf("records of the ended channel tried = %d; want 1", n)
	}
	r := ts.do(t, ada, "GET", path, nil)
	var b struct {
		Error  wireError `json:"error"`
		Cursor string    `json:"cursor"`
	}
	if err := decodeStrict(r.Body, &b); err != nil || r.Status != http.StatusGone || b.Error.Code != "channel_ended" {
		t.Fatalf("late GET = %s (%v); want 410 channel_ended", r, err)
	}
	back := ts.connectPoll(t, ada, b.Cursor)
	back.expect(t, "resumed")
	if log.reads.Load() == 0 {
		t.Error("the rebuild did not read the shared record")
	}
}

// cursorOfRooms signs Ada and Grace in, both in n rooms, which Ada has
// open on a long-poll channel; it returns the rooms and the cursor of an
// answer given after every open, which names them all.
func (ts *testServer) cursorOfRooms(t *testing.T, n int) (ada, grace *client, ids []int64, cursor string) {
	t.Helper()
	ada = ts.signIn(t, "ada@example.com", "Ada")
	grace = ts.signIn(t, "grace@example.com", "Grace")
	ap := ts.connectPoll(t, ada, "")
	for i := range n {
		room := ts.enterRoom(t, ada, fmt.Sprint("r", i))
		ts.enterRoom(t, grace, room.Name)
		ap.open(t, room.ID, nil)
		ids = append(ids, room.ID)
	}
	m := ts.post(t, grace, ids[n-1], "g0", "named in the cursor")
	ap.expectMessage(t, ids[n-1], m.Seq)
	ap.stopPolling()
	return ada, grace, ids, ap.poll.getCursor()
}
