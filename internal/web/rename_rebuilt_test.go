package web_test

import (
	"net/http"
	"testing"
)

// TestRenameShownAfterPollRebuilt: Grace has the lobby open on a
// long-poll channel, and the server loses the channel (a restart). Ada,
// present in the lobby, renames herself meanwhile: the user frame went to
// no channel. The rebuilt channel's answer shows the lobby's online list
// as it is now, with Ada's new name, as a WebSocket that reconnects and
// opens the room again sees it.
func TestRenameShownAfterPollRebuilt(t *testing.T) {
	db := t.TempDir() + "/parley.db"
	ts := newTestServer(t, withWeb(fastPoll), withDB(db))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	gr := ts.signIn(t, "grace@example.com", "Grace")
	lobby := ts.enterRoom(t, ada, "lobby")
	ts.enterRoom(t, gr, "lobby")
	gp := ts.connectPoll(t, gr, "")
	gp.open(t, lobby.ID, nil)
	m := ts.post(t, ada, lobby.ID, "a0", "named in the cursor")
	gp.expectMessage(t, lobby.ID, m.Seq)
	gp.stopPolling()
	cursor := gp.poll.getCursor()

	ts.stop()
	ts2 := newTestServer(t, withDB(db), withWeb(fastPoll))
	ada.Client.Jar = rejar(t, ts, ts2, ada)
	gr.Client.Jar = rejar(t, ts, ts2, gr)
	aw := ts2.connect(t, ada)
	aw.open(t, lobby.ID, nil)
	ts2.mustDo(t, ada, "PATCH", "/api/me", map[string]string{"name": "Ada Lovelace"}, http.StatusOK, nil)

	back := ts2.connectPoll(t, gr, cursor)
	back.expect(t, "resumed")
	back.barrier(t)
	var names []string
	fs := back.drain()
	for _, f := range fs {
		if f.Type == "user" && f.User != nil && f.User.ID == ada.ID {
			names = append(names, f.User.Name)
		}
		if f.Type == "opened" && f.Room != nil && f.Room.ID == lobby.ID {
			for _, u := range f.OnlineUsers {
				if u.ID == ada.ID {
					names = append(names, u.Name)
				}
			}
		}
	}
	if len(names) == 0 || names[len(names)-1] != "Ada Lovelace" {
		t.Errorf("the rebuilt channel names Ada %q; want her name as it is now, Ada Lovelace, last", names)
	}

	// A WebSocket of Grace's, as after a reconnect, opens the lobby again.
	gw := ts2.connect(t, gr)
	f := gw.open(t, lobby.ID, nil)
	var got string
	for _, u := range f.OnlineUsers {
		if u.ID == ada.ID {
			got = u.Name
		}
	}
	if got != "Ada Lovelace" {
		t.Errorf("opened after a reconnect names Ada %q in the online list %v; want Ada Lovelace", got, f.OnlineUsers)
	}
}
