package web_test

import (
	"net/http"
	"strconv"
	"testing"
)

// TestListsGiveNameVersion: every list that shows a user by name gives
// the version of that name (name_version), the one the user frame of the
// rename to it carries as "version": a stale rename told late to a
// connection that has given no frame of the user yet (just connected)
// is then known to be older than the list. Ada renames herself twice;
// her own frame gives the version; her hello and GET /api/me, and
// Grace's contacts, conversation list, direct chat, group members, room
// online lists and Carl's block list give Ada's name with that version.
func TestListsGiveNameVersion(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	gr := ts.signIn(t, "grace@example.com", "Grace")
	carl := ts.signIn(t, "carl@example.com", "Carl")
	ts.befriend(t, ada, gr)
	ts.sendDirect(t, ada, gr.ID, "d1", "hello")
	g := ts.createGroup(t, ada, "crew", 0)
	ts.addMember(t, ada, g.ID, gr)
	lobby := ts.enterRoom(t, ada, "lobby")
	ts.enterRoom(t, gr, "lobby")
	ts.mustDo(t, carl, "POST", "/api/blocks", map[string]int64{"user_id": ada.ID}, http.StatusNoContent, nil)

	aw := ts.connect(t, ada)
	aw.open(t, lobby.ID, nil)
	for _, name := range []string{"Ada Byron", "Ada Lovelace"} {
		ts.mustDo(t, ada, "PATCH", "/api/me", map[string]string{"name": name}, http.StatusOK, nil)
	}
	ada.Name = "Ada Lovelace"
	version := aw.take(t, "user frame of Ada's last rename", func(f frame) bool {
		return f.Type == "user" && f.RoomID == 0 && f.User != nil && f.User.Name == "Ada Lovelace"
	}).Version
	if version < 2 {
		t.Fatalf("the user frame of Ada's second rename has version %d; want 2 or more", version)
	}

	want := func(what string, u *wireUser) {
		t.Helper()
		if u == nil {
			t.Errorf("%s: no user; want Ada", what)
			return
		}
		if u.ID != ada.ID || u.Name != "Ada Lovelace" || u.NameVersion != version {
			t.Errorf("%s = %d %q, name_version %d; want %d %q, name_version %d", what, u.ID, u.Name, u.NameVersion, ada.ID, "Ada Lovelace", version)
		}
	}

	var me wireMe
	ts.mustDo(t, ada, "GET", "/api/me", nil, http.StatusOK, &me)
	want("GET /api/me", &me.User)
	hw := ts.connectWith(t, ada, dialOptions{})
	hw.startReading()
	want("hello", hw.expect(t, "hello").User)

	cs := ts.contacts(t, gr)
	if len(cs.Contacts) != 1 {
		t.Fatalf("Grace's contacts = %+v; want Ada", cs)
	}
	want("Grace's contact", &cs.Contacts[0].User)
	bl := ts.contacts(t, carl)
	if len(bl.Blocked) != 1 {
		t.Fatalf("Carl's blocked = %+v; want Ada", bl)
	}
	want("Carl's blocked user", &bl.Blocked[0])

	var direct int64
	for _, c := range ts.conversations(t, gr) {
		if c.Kind == "direct" {
			direct = c.ID
			want("Grace's conversation list's peer", c.Peer)
		}
	}
	if direct == 0 {
		t.Fatal("Grace's conversation list has no direct chat")
	}
	want("Grace's direct chat's peer", ts.conversation(t, gr, direct).Peer)

	var group struct {
		Group wireGroup `json:"group"`
	}
	ts.mustDo(t, gr, "GET", groupPath(g.ID, ""), nil, http.StatusOK, &group)
	found := false
	for _, m := range group.Group.MemberList {
		if m.ID == ada.ID {
			found = true
			want("the group's member", &wireUser{ID: m.ID, Name: m.Name, NameVersion: m.NameVersion})
		}
	}
	if !found {
		t.Errorf("the group's members = %+v; want Ada", group.Group.MemberList)
	}

	var online struct {
		Users []wireUser `json:"users"`
		Count int        `json:"count"`
	}
	ts.mustDo(t, gr, "GET", "/api/rooms/"+strconv.FormatInt(lobby.ID, 10)+"/online", nil, http.StatusOK, &online)
	if len(online.Users) != 1 {
		t.Fatalf("the lobby's online list = %+v; want Ada", online.Users)
	}
	want("the lobby's online list", &online.Users[0])
	gw := ts.connect(t, gr)
	opened := gw.open(t, lobby.ID, nil)
	if len(opened.OnlineUsers) == 0 {
		t.Fatalf("Grace's opened = %s; want Ada online", opened)
	}
	for _, u := range opened.OnlineUsers {
		if u.ID == ada.ID {
			want("the lobby's opened online list", &u)
		}
	}
}
