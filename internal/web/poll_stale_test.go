package web_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
)

// TestPollStaleCursorKeepsChannel: a poll whose cursor is two or more
// answers behind its live channel can only be one its client gave up on
// (the client had the next answer before it could poll for the one
// after): a request a proxy retried or delivered late. It used to tear
// the live channel down and rebuild it from that old cursor, counting its
// answers from there again: the next stale poll then matched the count
// and was answered from the channel, and the client, polling with its own
// cursor, found the count its own and never got what those answers held.
// The live channel now stays as it is (the stale poll is served by a
// channel of its own, rebuilt from its cursor), and the client loses
// nothing.
func TestPollStaleCursorKeepsChannel(t *testing.T) {
	ts, ada, grace, room, ap := pollingInRoom(t)

	type answer struct {
		Cursor string            `json:"cursor"`
		Frames []json.RawMessage `json:"frames"`
	}
	get := func(what, cur string) (answer, []byte) {
		t.Helper()
		r := ts.do(t, ada, "GET", "/api/poll?cursor="+url.QueryEscape(cur), nil)
		var a answer
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &a) != nil {
			t.Fatalf("%s: GET /api/poll = %s; want 200", what, r)
		}
		b, _ := json.Marshal(a.Frames)
		return a, b
	}
	// Two answers, each with a message: c1, c2 and c3 are the cursors
	// before, between and after them.
	c1 := ap.poll.getCursor()
	var c2, c3 string
	m1 := ts.post(t, grace, room.ID, "g1", "one")
	if a, b := get("answer 1", c1); !bytes.Contains(b, []byte(`"client_id":"g1"`)) {
		t.Fatalf("answer 1 = %s; want message %d", b, m1.Seq)
	} else {
		c2 = a.Cursor
	}
	m2 := ts.post(t, grace, room.ID, "g2", "two")
	if a, b := get("answer 2", c2); !bytes.Contains(b, []byte(`"client_id":"g2"`)) {
		t.Fatalf("answer 2 = %s; want message %d", b, m2.Seq)
	} else {
		c3 = a.Cursor
	}

	// A stale poll with c1; a message; a stale poll with c2; the
	// client's own poll with c3.
	get("stale poll c1", c1)
	m3 := ts.post(t, grace, room.ID, "g3", "three")
	get("stale poll c2", c2)
	_, frames := get("the client's poll c3", c3)
	want := fmt.Sprintf(`"client_id":%q`, "g3")
	if !bytes.Contains(frames, []byte(want)) {
		t.Errorf("the client's poll after message %d = %s; want it (%s)", m3.Seq, frames, want)
	}
	if bytes.Contains(frames, []byte(`"type":"resumed"`)) {
		t.Errorf("the client's poll = %s; want its live channel, not one rebuilt", frames)
	}
}

// TestPollStaleForkEndsWithChannel: a stale poll is answered by a channel
// of its own, a fork of the live one (TestPollStaleCursorKeepsChannel).
// The client's DELETE names its own channel, not the fork, which lived on
// until it idled out (20 s): the user stayed online that long, and a poll
// with the fork's cursor was still answered from it. A fork now ends with
// the channel it forked from, and a late poll for either is refused.
func TestPollStaleForkEndsWithChannel(t *testing.T) {
	ts, ada, grace, room, ap := pollingInRoom(t)

	get := func(what, cur string) string {
		t.Helper()
		r := ts.do(t, ada, "GET", "/api/poll?cursor="+url.QueryEscape(cur), nil)
		var a struct {
			Cursor string `json:"cursor"`
		}
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &a) != nil || a.Cursor == "" {
			t.Fatalf("%s: GET /api/poll = %s; want 200 with a cursor", what, r)
		}
		return a.Cursor
	}
	c1 := ap.poll.getCursor()
	ts.post(t, grace, room.ID, "g1", "one")
	c2 := get("answer 1", c1)
	ts.post(t, grace, room.ID, "g2", "two")
	c3 := get("answer 2", c2)
	fork := get("stale poll c1", c1) // the fork's cursor
	if n := ts.hub.UserClients(ada.ID); n != 2 {
		t.Fatalf("with the fork, Ada has %d connections; want 2", n)
	}

	// The page closes: it ends its own channel.
	ts.mustDo(t, ada, "DELETE", "/api/poll?cursor="+url.QueryEscape(c3), nil, http.StatusNoContent, nil)
	if n := ts.hub.UserClients(ada.ID); n != 0 {
		t.Errorf("after the DELETE, Ada has %d connections; want 0 (the fork lives on)", n)
	}
	ts.post(t, grace, room.ID, "g3", "three")
	r := ts.do(t, ada, "GET", "/api/poll?cursor="+url.QueryEscape(fork), nil)
	var b struct {
		Error  wireError `json:"error"`
		Cursor string    `json:"cursor"`
	}
	if err := decodeStrict(r.Body, &b); err != nil || r.Status != http.StatusGone || b.Error.Code != "channel_ended" {
		t.Errorf("a poll on the fork after the DELETE = %s (%v); want 410 channel_ended", r, err)
	}
	if n := ts.hub.UserClients(ada.ID); n != 0 {
		t.Errorf("after a poll on the fork, Ada has %d connections; want 0", n)
	}
}

// pollingInRoom starts a server on which Ada, long-polling, has room
// "general" open with Grace in it and has received Grace's first message;
// then Ada's client stops polling, for the test to poll by hand. It leaves
// once its poll under way is answered: a poll aborted instead may reach the
// server after the test's own polls, as a stale poll that forks the
// channel once more (seen once: "with the fork, Ada has 3 connections").
func pollingInRoom(t *testing.T) (ts *testServer, ada, grace *client, room wireRoom, ap *wsClient) {
	t.Helper()
	ts = newTestServer(t, withWeb(fastPoll))
	ada = ts.signIn(t, "ada@example.com", "Ada")
	grace = ts.signIn(t, "grace@example.com", "Grace")
	room = ts.enterRoom(t, ada, "general")
	ts.enterRoom(t, grace, "general")
	ap = ts.connectPoll(t, ada, "")
	ap.open(t, room.ID, nil)
	m0 := ts.post(t, grace, room.ID, "g0", "zero")
	ap.expectMessage(t, room.ID, m0.Seq)
	ap.leave()
	return ts, ada, grace, room, ap
}
