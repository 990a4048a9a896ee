package web_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"
)

// TestRenameLive: Ada renames herself. Her other connections (WebSocket
// and long-poll), her friend Grace, the members of her group and those
// who have open a room where Ada is present get a user frame with the new
// name; someone in a room Ada is a member of but does not have open gets
// none. Ada's other connection then types under the new name.
func TestRenameLive(t *testing.T) {
	ts := newTestServer(t, withWeb(fastPoll))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	gr := ts.signIn(t, "grace@example.com", "Grace")
	bob := ts.signIn(t, "bob@example.com", "Bob")
	carl := ts.signIn(t, "carl@example.com", "Carl")
	ts.befriend(t, ada, gr)
	g := ts.createGroup(t, ada, "crew", 0)
	ts.addMember(t, ada, g.ID, bob)
	lobby := ts.enterRoom(t, ada, "lobby")
	ts.enterRoom(t, gr, "lobby")
	quiet := ts.enterRoom(t, ada, "quiet")
	ts.enterRoom(t, carl, "quiet")

	aw := ts.connect(t, ada)
	aw.open(t, lobby.ID, nil)
	ap := ts.connectPoll(t, ada, "")
	gw := ts.connect(t, gr)
	gw.open(t, lobby.ID, nil)
	bw := ts.connect(t, bob)
	cw := ts.connect(t, carl)
	cw.open(t, quiet.ID, nil)
	for _, w := range []*wsClient{aw, gw, bw, cw} {
		w.barrier(t)
		w.drain()
	}

	var out struct {
		User wireUser `json:"user"`
	}
	ts.mustDo(t, ada, "PATCH", "/api/me", map[string]string{"name": "Ada Lovelace"}, http.StatusOK, &out)
	if out.User.Name != "Ada Lovelace" {
		t.Fatalf("PATCH /api/me = %+v; want the new name", out.User)
	}

	renamed := func(w *wsClient, roomID int64) {
		t.Helper()
		f := w.take(t, "user frame of Ada's rename", func(f frame) bool {
			return f.Type == "user" && f.RoomID == roomID && f.User != nil && f.User.ID == ada.ID
		})
		if f.User.Name != "Ada Lovelace" || f.User.Email != "" {
			t.Errorf("%s: user frame %s; want Ada's new name and no email", w.name, f)
		}
	}
	renamed(aw, 0)
	renamed(ap, 0)
	renamed(gw, 0)        // a friend
	renamed(gw, lobby.ID) // Ada is present in the room Grace has open
	renamed(bw, g.ID)     // a member of Ada's group

	cw.barrier(t)
	for _, f := range cw.drain() {
		if f.Type == "user" {
			t.Errorf("Carl got %s; Ada does not have the room open", f)
		}
	}

	// Ada's WebSocket, opened before the rename, speaks under the new name.
	aw.send(t, map[string]any{"type": "typing", "room_id": lobby.ID})
	f := gw.expect(t, "typing")
	if f.User == nil || f.User.Name != "Ada Lovelace" {
		t.Errorf("Grace got %s; want Ada typing under her new name", f)
	}
}

// TestRenameRateLimited: renames are bounded, as each is told to every
// friend, group and room the user is present in.
func TestRenameRateLimited(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	limit := ts.svc.Config().RenamesPerHour
	for i := range limit {
		ts.mustDo(t, ada, "PATCH", "/api/me", map[string]string{"name": "Ada " + string(rune('A'+i%26))}, http.StatusOK, nil)
	}
	r := ts.do(t, ada, "PATCH", "/api/me", map[string]string{"name": "Ada Z"})
	wantError(t, "rename past the limit", r, http.StatusTooManyRequests, "rate_limited")
	// The same name again changes nothing and is not refused.
	ts.mustDo(t, ada, "PATCH", "/api/me", map[string]string{"name": "Ada " + string(rune('A'+(limit-1)%26))}, http.StatusOK, nil)
}

// TestRenameToldBeyondContacts: Ada renames herself. Whoever's lists show
// her name hears it: Grace, an ex-friend whose direct chat with Ada is
// still in her list; Hal, who asked Ada to be a friend, and Ivy, whom Ada
// asked; Carl, who blocked Ada and whose block list names her; Fay, whom
// Ada blocked after they had chatted, whose direct chat still shows Ada
// (as a reload shows it); Jo, a friend with a direct chat, once. Dan, whom Ada blocked without a chat, shows
// Ada nowhere and hears nothing.
func TestRenameToldBeyondContacts(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	gr := ts.signIn(t, "grace@example.com", "Grace")
	hal := ts.signIn(t, "hal@example.com", "Hal")
	ivy := ts.signIn(t, "ivy@example.com", "Ivy")
	carl := ts.signIn(t, "carl@example.com", "Carl")
	fay := ts.signIn(t, "fay@example.com", "Fay")
	dan := ts.signIn(t, "dan@example.com", "Dan")
	jo := ts.signIn(t, "jo@example.com", "Jo")

	ts.befriend(t, ada, gr)
	ts.sendDirect(t, ada, gr.ID, "g1", "hello Grace")
	ts.mustDo(t, gr, "DELETE", "/api/contacts/"+strconv.FormatInt(ada.ID, 10), nil, http.StatusNoContent, nil)
	ts.requestFriend(t, hal, ada.ID)
	ts.requestFriend(t, ada, ivy.ID)
	ts.mustDo(t, carl, "POST", "/api/blocks", map[string]int64{"user_id": ada.ID}, http.StatusNoContent, nil)
	ts.befriend(t, ada, fay)
	ts.sendDirect(t, fay, ada.ID, "f1", "hello Ada")
	ts.mustDo(t, ada, "POST", "/api/blocks", map[string]int64{"user_id": fay.ID}, http.StatusNoContent, nil)
	ts.mustDo(t, ada, "POST", "/api/blocks", map[string]int64{"user_id": dan.ID}, http.StatusNoContent, nil)
	ts.befriend(t, ada, jo)
	ts.sendDirect(t, jo, ada.ID, "j1", "hello Ada")

	ws := map[string]*wsClient{}
	for _, c := range []*client{gr, hal, ivy, carl, fay, dan, jo} {
		w := ts.connect(t, c)
		w.barrier(t)
		w.drain()
		ws[c.Name] = w
	}

	ts.mustDo(t, ada, "PATCH", "/api/me", map[string]string{"name": "Ada Lovelace"}, http.StatusOK, nil)

	for _, name := range []string{"Grace", "Hal", "Ivy", "Carl", "Fay", "Jo"} {
		f := ws[name].take(t, "user frame of Ada's rename", func(f frame) bool {
			return f.Type == "user" && f.User != nil && f.User.ID == ada.ID
		})
		if f.User.Name != "Ada Lovelace" || f.RoomID != 0 {
			t.Errorf("%s got %s; want Ada's new name on the user topic", name, f)
		}
	}
	for _, name := range []string{"Grace", "Jo"} { // once each

		ws[name].barrier(t)
		for _, f := range ws[name].drain() {
			if f.Type == "user" {
				t.Errorf("%s got %s again", name, f)
			}
		}
	}
	ws["Dan"].barrier(t)
	for _, f := range ws["Dan"].drain() {
		if f.Type == "user" {
			t.Errorf("Dan got %s; Ada blocked him and he shows her nowhere", f)
		}
	}
}

// TestRenamePollRebuilt: Ada's long-poll channel is lost (a restart) and
// she renames herself in another tab meanwhile. The user frame went to no
// channel, and is kept nowhere; the rebuilt channel's first answer, whose
// resumed frame makes the web app replay its first hello (with the old
// name), tells her own name as it is now.
func TestRenamePollRebuilt(t *testing.T) {
	db := t.TempDir() + "/parley.db"
	ts := newTestServer(t, withWeb(fastPoll), withDB(db))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	ap := ts.connectPoll(t, ada, "")
	ap.barrier(t)
	ap.stopPolling()
	cursor := ap.poll.getCursor()

	ts.stop()
	ts2 := newTestServer(t, withDB(db), withWeb(fastPoll))
	ada.Client.Jar = rejar(t, ts, ts2, ada)
	ts2.mustDo(t, ada, "PATCH", "/api/me", map[string]string{"name": "Ada Lovelace"}, http.StatusOK, nil)
	back := ts2.connectPoll(t, ada, cursor)
	back.expect(t, "resumed")
	f := back.take(t, "user frame of Ada's own name", func(f frame) bool {
		return f.Type == "user" && f.User != nil && f.User.ID == ada.ID
	})
	if f.User.Name != "Ada Lovelace" || f.RoomID != 0 {
		t.Errorf("user frame %s; want Ada's new name, on no conversation", f)
	}
}

// TestRenamePollForkTellsNameNow: Ada's long-poll channel is built, she
// renames herself, and a poll of hers two answers behind the channel
// comes late (a retry): it gets a channel of its own, rebuilt from its
// cursor (a fork), whose user frame tells her name as it is now, not as
// it was when the live channel, whose session the poll was let in by
// without a read, was built.
func TestRenamePollForkTellsNameNow(t *testing.T) {
	ts := newTestServer(t, withWeb(fastPoll))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	get := func(cursor string) (string, []frame) {
		t.Helper()
		path := "/api/poll"
		if cursor != "" {
			path += "?cursor=" + url.QueryEscape(cursor)
		}
		r := ts.do(t, ada, "GET", path, nil)
		var body struct {
			Cursor string            `json:"cursor"`
			Frames []json.RawMessage `json:"frames"`
		}
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &body) != nil || body.Cursor == "" {
			t.Fatalf("GET %s = %s; want 200 with a cursor", path, r)
		}
		var fs []frame
		for _, raw := range body.Frames {
			f, err := parseFrame(raw)
			if err != nil {
				t.Fatalf("GET %s: frame %s: %v", path, raw, err)
			}
			fs = append(fs, f)
		}
		return body.Cursor, fs
	}
	c0, _ := get("") // the channel, built with the name Ada
	ts.mustDo(t, ada, "PATCH", "/api/me", map[string]string{"name": "Ada Lovelace"}, http.StatusOK, nil)
	c1, _ := get(c0)
	get(c1)
	_, fs := get(c0) // two answers behind: a fork
	var names []string
	for _, f := range fs {
		if f.Type == "user" && f.User != nil && f.User.ID == ada.ID {
			names = append(names, f.User.Name)
		}
	}
	if len(fs) == 0 || fs[0].Type != "resumed" || len(names) != 1 || names[0] != "Ada Lovelace" {
		t.Errorf("the late poll's answer %v tells Ada's name as %q; want a resumed channel that tells it once, as Ada Lovelace", fs, names)
	}
}

// TestRenameSameNameWritesNothing: a PATCH /api/me with the name the user
// has is not counted as a rename, so it must not write either: before,
// it was stored again, its version bumped, as often as a client liked.
func TestRenameSameNameWritesNothing(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	me := func() [3]any {
		t.Helper()
		var got struct {
			User struct {
				ID          int64  `json:"id"`
				Name        string `json:"name"`
				Email       string `json:"email"`
				NameVersion int64  `json:"name_version"`
			} `json:"user"`
			RenewAt string `json:"session_renew_at"`
			RenewBy string `json:"session_renew_by"`
		}
		ts.mustDo(t, ada, "GET", "/api/me", nil, http.StatusOK, &got)
		return [3]any{got.User.Name, got.User.Email, got.User.NameVersion}
	}
	before := me()
	for range 3 {
		ts.mustDo(t, ada, "PATCH", "/api/me", map[string]string{"name": "Ada"}, http.StatusOK, nil)
	}
	if after := me(); after != before {
		t.Errorf("GET /api/me after PATCHes of the same name: name, email, name_version = %v; want %v", after, before)
	}
}
