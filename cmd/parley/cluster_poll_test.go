package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// pollAs sends a long-poll request as u to node n: its status and body.
func (e *faultEnv) pollAs(u *fuser, n *node, method, cursor string) (int, string) {
	e.t.Helper()
	target := n.URL() + "/api/poll"
	if cursor != "" {
		target += "?cursor=" + url.QueryEscape(cursor)
	}
	req, _ := http.NewRequest(method, target, nil)
	req.AddCookie(&http.Cookie{Name: "parley_session", Value: u.token})
	resp, err := (&http.Client{Timeout: 40 * time.Second}).Do(req)
	if err != nil {
		e.t.Fatalf("%s /api/poll on %s: %v", method, n.id, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// newPollChannel starts a long-poll channel for u on node n and returns
// its cursor.
func (e *faultEnv) newPollChannel(u *fuser, n *node) string {
	e.t.Helper()
	status, body := e.pollAs(u, n, "GET", "")
	var first struct{ Cursor string }
	if status != http.StatusOK || json.Unmarshal([]byte(body), &first) != nil || first.Cursor == "" {
		e.t.Fatalf("first poll on %s = %d %s; want 200 with a cursor", n.id, status, body)
	}
	return first.Cursor
}

// wantChannelEnded checks that a late poll answer is 410 channel_ended.
func wantChannelEnded(t *testing.T, what string, status int, body string) {
	t.Helper()
	var b struct {
		Error struct{ Code string } `json:"error"`
	}
	if json.Unmarshal([]byte(body), &b) != nil || status != http.StatusGone || b.Error.Code != "channel_ended" {
		t.Errorf("%s = %d %s; want 410 channel_ended", what, status, body)
	}
}

// TestClusterPollEndedElsewhere: a client ends its long-poll channel with
// DELETE on one node, and a poll it cancelled reaches another node after
// that (the balancer lost its stickiness). Each node remembered only the
// channels ended through it, so the other one rebuilt the channel, and
// the user's presence with it, for another 20 s.
func TestClusterPollEndedElsewhere(t *testing.T) {
	e := newFaultEnv(t, envOptions{nodes: 2, users: 2})
	ada := e.users[0]
	cursor := e.newPollChannel(ada, e.nodes[0])
	if status, body := e.pollAs(ada, e.nodes[0], "DELETE", cursor); status != http.StatusNoContent {
		t.Fatalf("DELETE on n0 = %d %s; want 204", status, body)
	}
	status, body := e.pollAs(ada, e.nodes[1], "GET", cursor)
	wantChannelEnded(t, "late GET on n1", status, body)
}

// TestClusterPollEndedOnOtherNode: the DELETE that ends a long-poll
// channel reaches a node other than the one holding it. That node had no
// channel to end, so the channel lived on until it idled out (20 s), and
// the user stayed online for friends that long. Now the holding node
// ends it at once: the user goes offline after the presence grace period
// (5 s), well before the channel could have idled out, and a late poll
// on the holding node is refused.
func TestClusterPollEndedOnOtherNode(t *testing.T) {
	e := newFaultEnv(t, envOptions{nodes: 2, users: 2})
	ada, grace := e.users[0], e.users[1] // friends (setup)
	gws := e.dialWS(grace, e.nodes[1])
	readUntil(t, gws, "hello") // subscribed to her friends' presence: Ada's going online is not missed
	cursor := e.newPollChannel(ada, e.nodes[0])
	waitFriendPresence(t, gws, ada.id, true, 10*time.Second)

	if status, body := e.pollAs(ada, e.nodes[1], "DELETE", cursor); status != http.StatusNoContent {
		t.Fatalf("DELETE on n1 = %d %s; want 204", status, body)
	}
	// Idling out would take 20 s and the grace period 5 s more.
	waitFriendPresence(t, gws, ada.id, false, 15*time.Second)
	status, body := e.pollAs(ada, e.nodes[0], "GET", cursor)
	wantChannelEnded(t, "late GET on n0", status, body)
}

// TestClusterPollForkEndedOnOtherNode: a stale poll on the node holding a
// long-poll channel is answered by a fork of the channel, and the client's
// DELETE of its channel then reaches another node. The record of the
// DELETE and the event telling the other nodes named the channel, not the
// fork: the fork lived on until it idled out, keeping the user online,
// and a poll with its cursor on a third node was answered by a rebuild.
// Both name the family of the channel and its forks now.
func TestClusterPollForkEndedOnOtherNode(t *testing.T) {
	e := newFaultEnv(t, envOptions{nodes: 2, users: 2})
	ada, grace := e.users[0], e.users[1] // friends, in a group (setup)
	gws := e.dialWS(grace, e.nodes[1])
	readUntil(t, gws, "hello") // subscribed to her friends' presence: Ada's going online is not missed
	c1 := e.newPollChannel(ada, e.nodes[0])
	waitFriendPresence(t, gws, ada.id, true, 10*time.Second)

	// answer polls on n0 with cursor cur, after a message of the group if
	// one is named.
	answer := func(what, msg, cur string) string {
		t.Helper()
		if msg != "" {
			e.api(grace, "POST", fmt.Sprintf("/api/conversations/%d/messages", e.group), map[string]string{"client_id": msg, "body": msg}, http.StatusOK, nil)
		}
		status, body := e.pollAs(ada, e.nodes[0], "GET", cur)
		var a struct{ Cursor string }
		if status != http.StatusOK || json.Unmarshal([]byte(body), &a) != nil || a.Cursor == "" {
			t.Fatalf("%s on n0 = %d %s; want 200 with a cursor", what, status, body)
		}
		return a.Cursor
	}
	c2 := answer("answer 1", "g1", c1)
	c3 := answer("answer 2", "g2", c2)
	fork := answer("stale poll c1", "", c1)

	if status, body := e.pollAs(ada, e.nodes[1], "DELETE", c3); status != http.StatusNoContent {
		t.Fatalf("DELETE on n1 = %d %s; want 204", status, body)
	}
	// Idling out would take 20 s and the grace period 5 s more.
	waitFriendPresence(t, gws, ada.id, false, 15*time.Second)
	status, body := e.pollAs(ada, e.nodes[1], "GET", fork)
	wantChannelEnded(t, "a poll on the fork on n1", status, body)
	status, body = e.pollAs(ada, e.nodes[0], "GET", fork)
	wantChannelEnded(t, "a poll on the fork on n0", status, body)
}
