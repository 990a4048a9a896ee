package web_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/web"
)

type wireGroup struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	MaxMembers  int       `json:"max_members"`
	OwnerID     int64     `json:"owner_id"`
	CreatedAt   time.Time `json:"created_at"`
	LastSeq     int64     `json:"last_seq"`
	Members     int       `json:"members"`
	MemberList  []struct {
		ID          int64     `json:"id"`
		Name        string    `json:"name"`
		NameVersion int64     `json:"name_version"`
		Role        string    `json:"role"`
		JoinedAt    time.Time `json:"joined_at"`
	} `json:"member_list"`
}

func groupPath(id int64, rest string) string {
	return "/api/groups/" + strconv.FormatInt(id, 10) + rest
}

func (ts *testServer) createGroup(tb testing.TB, c *client, name string, maxMembers int) wireGroup {
	tb.Helper()
	var out struct {
		Group wireGroup `json:"group"`
	}
	body := map[string]any{"name": name, "description": "about " + name}
	if maxMembers > 0 {
		body["max_members"] = maxMembers
	}
	ts.mustDo(tb, c, "POST", "/api/groups", body, http.StatusCreated, &out)
	return out.Group
}

func (ts *testServer) addMember(tb testing.TB, c *client, id int64, u *client) wireMessage {
	tb.Helper()
	var out struct {
		Message wireMessage `json:"message"`
	}
	ts.mustDo(tb, c, "POST", groupPath(id, "/members"), map[string]int64{"user_id": u.ID}, http.StatusOK, &out)
	return out.Message
}

func memberPath(id int64, u *client, rest string) string {
	return groupPath(id, "/members/"+strconv.FormatInt(u.ID, 10)+rest)
}

func TestGroup(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	bob := ts.signIn(t, "bob@example.com", "Bob")
	cy := ts.signIn(t, "cy@example.com", "Cy")
	eve := ts.signIn(t, "eve@example.com", "Eve")

	g := ts.createGroup(t, ada, "Crew", 0)
	if g.Name != "Crew" || g.Description != "about Crew" || g.MaxMembers != 200 || g.OwnerID != ada.ID || g.Members != 1 ||
		len(g.MemberList) != 1 || g.MemberList[0].Role != "owner" {
		t.Fatalf("POST /api/groups = %+v; want Crew owned by Ada, cap 200", g)
	}
	wantError(t, "create a taken name", ts.do(t, bob, "POST", "/api/groups", map[string]string{"name": "crew"}), http.StatusConflict, "name_taken")
	wantError(t, "create over the cap", ts.do(t, bob, "POST", "/api/groups", map[string]any{"name": "x", "max_members": 201}), http.StatusBadRequest, "invalid_field")

	// Bob learns of the invitation live.
	bws := ts.connect(t, bob)
	added := ts.addMember(t, ada, g.ID, bob)
	if added.Kind != "added" || added.SenderID != ada.ID || added.TargetID != bob.ID || added.Seq != 2 {
		t.Errorf("add Bob = %+v; want added #2 by Ada of Bob", added)
	}
	f := bws.take(t, "conversation event", func(f frame) bool { return f.Type == "conversation" && f.RoomID == g.ID })
	if f.Kind != "group" || f.Message == nil || *f.Message != added {
		t.Errorf("Bob's conversation frame = %s; want the group and the added message", f)
	}
	ts.addMember(t, ada, g.ID, cy)
	wantError(t, "add twice", ts.do(t, ada, "POST", groupPath(g.ID, "/members"), map[string]int64{"user_id": cy.ID}), http.StatusConflict, "already_member")
	if c := ts.conversation(t, bob, g.ID); c.Kind != "group" || c.Name != "Crew" || c.Members != 3 {
		t.Errorf("Bob's list entry = %+v; want the group", c)
	}

	// Members only: Eve can neither read nor post nor see it.
	wantError(t, "Eve GET group", ts.do(t, eve, "GET", groupPath(g.ID, ""), nil), http.StatusNotFound, "not_found")
	wantError(t, "Eve history", ts.do(t, eve, "GET", roomPath(g.ID, "/messages"), nil), http.StatusNotFound, "not_found")
	wantError(t, "Eve online list", ts.do(t, eve, "GET", roomPath(g.ID, "/online"), nil), http.StatusNotFound, "not_found")
	wantError(t, "Eve conversation", ts.do(t, eve, "GET", "/api/conversations/"+strconv.FormatInt(g.ID, 10), nil), http.StatusNotFound, "not_found")
	wantError(t, "Eve sends", ts.do(t, eve, "POST", "/api/conversations/"+strconv.FormatInt(g.ID, 10)+"/messages",
		map[string]string{"client_id": "e1", "body": "hi"}), http.StatusNotFound, "not_found")
	wantError(t, "Eve adds", ts.do(t, eve, "POST", groupPath(g.ID, "/members"), map[string]int64{"user_id": eve.ID}), http.StatusNotFound, "not_found")
	ews := ts.connect(t, eve)
	for _, req := range []map[string]any{
		{"type": "open", "room_id": g.ID, "ref": "o"},
		{"type": "sync", "room_id": g.ID, "after": 0, "ref": "s"},
		{"type": "send", "room_id": g.ID, "client_id": "e2", "body": "hi", "ref": "w"},
	} {
		ews.send(t, req)
		if f := ews.expectError(t, req["ref"].(string)); f.Code != "not_found" {
			t.Errorf("Eve %s: %s; want not_found", req["type"], f)
		}
	}

	// Only the owner and admins invite and remove; only the owner promotes,
	// transfers and deletes.
	wantError(t, "member adds", ts.do(t, bob, "POST", groupPath(g.ID, "/members"), map[string]int64{"user_id": eve.ID}), http.StatusForbidden, "forbidden")
	wantError(t, "member removes", ts.do(t, bob, "DELETE", memberPath(g.ID, cy, ""), nil), http.StatusForbidden, "forbidden")
	wantError(t, "member promotes", ts.do(t, bob, "PUT", memberPath(g.ID, bob, "/role"), map[string]string{"role": "admin"}), http.StatusForbidden, "forbidden")
	wantError(t, "member renames", ts.do(t, bob, "PATCH", groupPath(g.ID, ""), map[string]string{"name": "Mine"}), http.StatusForbidden, "forbidden")
	ts.mustDo(t, ada, "PUT", memberPath(g.ID, bob, "/role"), map[string]string{"role": "admin"}, http.StatusNoContent, nil)
	wantError(t, "admin promotes", ts.do(t, bob, "PUT", memberPath(g.ID, cy, "/role"), map[string]string{"role": "admin"}), http.StatusForbidden, "forbidden")
	wantError(t, "admin transfers", ts.do(t, bob, "POST", groupPath(g.ID, "/owner"), map[string]int64{"user_id": bob.ID}), http.StatusForbidden, "forbidden")
	wantError(t, "admin deletes", ts.do(t, bob, "DELETE", groupPath(g.ID, ""), nil), http.StatusForbidden, "forbidden")
	wantError(t, "admin sets the cap", ts.do(t, bob, "PATCH", groupPath(g.ID, ""), map[string]int{"max_members": 10}), http.StatusForbidden, "forbidden")
	wantError(t, "admin removes the owner", ts.do(t, bob, "DELETE", memberPath(g.ID, ada, ""), nil), http.StatusForbidden, "forbidden")
	wantError(t, "owner leaves", ts.do(t, ada, "DELETE", memberPath(g.ID, ada, ""), nil), http.StatusConflict, "owner_must_transfer")
	var renamed struct {
		Group wireGroup `json:"group"`
	}
	ts.mustDo(t, bob, "PATCH", groupPath(g.ID, ""), map[string]string{"name": "Crew 2"}, http.StatusOK, &renamed)
	if renamed.Group.Name != "Crew 2" || len(renamed.Group.MemberList) != 3 || renamed.Group.MemberList[1].ID != bob.ID || renamed.Group.MemberList[1].Role != "admin" {
		t.Errorf("PATCH name = %+v; want Crew 2 with Bob second as admin", renamed.Group)
	}

	// All three have it open; Ada posts; then Bob (admin) removes Cy while
	// Cy is connected: Cy gets the removal and a removed frame, then
	// nothing more of the group, while Ada and Bob keep receiving.
	aws := ts.connect(t, ada)
	cws := ts.connect(t, cy)
	for _, w := range []*wsClient{aws, bws, cws} {
		w.open(t, g.ID, nil)
	}
	m1 := aws.sendMessage(t, g.ID, "a1", "hello crew")
	for _, w := range []*wsClient{bws, cws} {
		w.expectMessage(t, g.ID, m1.Seq)
	}
	ts.mustDo(t, bob, "DELETE", memberPath(g.ID, cy, ""), nil, http.StatusNoContent, nil)
	rm := cws.expectMessage(t, g.ID, m1.Seq+1)
	if rm.Kind != "removed" || rm.TargetID != cy.ID || rm.SenderID != bob.ID {
		t.Errorf("removal message = %+v; want removed of Cy by Bob", rm)
	}
	if f := cws.expect(t, "removed"); f.RoomID != g.ID || f.Reason != "removed" {
		t.Errorf("removed frame = %s", f)
	}
	aws.expectPresence(t, g.ID, cy, false) // Cy's presence ends with the membership
	for i := range 5 {
		m := aws.sendMessage(t, g.ID, fmt.Sprintf("a%d", i+2), "after")
		bws.expectMessage(t, g.ID, m.Seq)
	}
	cws.send(t, map[string]any{"type": "send", "room_id": g.ID, "client_id": "c1", "body": "let me in", "ref": "cs"})
	if f := cws.expectError(t, "cs"); f.Code != "not_found" {
		t.Errorf("Cy sends after removal: %s; want not_found", f)
	}
	cws.send(t, map[string]any{"type": "sync", "room_id": g.ID, "after": 0, "ref": "cy"})
	if f := cws.expectError(t, "cy"); f.Code != "not_found" {
		t.Errorf("Cy syncs after removal: %s; want not_found", f)
	}
	cws.barrier(t)
	for _, f := range cws.drain() {
		if f.Type == "message" && f.RoomID == g.ID {
			t.Errorf("Cy received after removal: %s", f)
		}
	}
	wantError(t, "Cy history after removal", ts.do(t, cy, "GET", roomPath(g.ID, "/messages"), nil), http.StatusNotFound, "not_found")

	// Added back, Cy opens it again on the same connection and receives.
	ts.addMember(t, bob, g.ID, cy)
	cws.open(t, g.ID, nil)
	m := aws.sendMessage(t, g.ID, "back", "welcome back")
	cws.expectMessage(t, g.ID, m.Seq)

	// Cy leaves; Ada transfers to Bob; the sequence records it all.
	ts.mustDo(t, cy, "DELETE", memberPath(g.ID, cy, ""), nil, http.StatusNoContent, nil)
	if f := cws.expect(t, "removed"); f.Reason != "left" {
		t.Errorf("removed frame on leaving = %s", f)
	}
	ts.mustDo(t, ada, "POST", groupPath(g.ID, "/owner"), map[string]int64{"user_id": bob.ID}, http.StatusNoContent, nil)
	var kinds []string
	for _, m := range ts.allMessages(t, ada, g.ID) {
		if m.Kind != "text" {
			kinds = append(kinds, m.Kind)
		}
		if want := map[int64]string{bob.ID: "Bob", cy.ID: "Cy"}[m.TargetID]; m.TargetName != want {
			t.Errorf("%s event's target_name = %q; want %q", m.Kind, m.TargetName, want)
		}
	}
	want := []string{"created", "added", "added", "admin_granted", "renamed", "removed", "added", "leave", "owner_transferred"}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Errorf("group events = %v; want %v", kinds, want)
	}

	// Bob, now the owner, deletes it: everyone is cut off.
	ts.mustDo(t, bob, "DELETE", groupPath(g.ID, ""), nil, http.StatusNoContent, nil)
	if f := aws.expect(t, "removed"); f.RoomID != g.ID || f.Reason != "deleted" {
		t.Errorf("Ada's removed frame = %s", f)
	}
	wantError(t, "GET deleted group", ts.do(t, bob, "GET", groupPath(g.ID, ""), nil), http.StatusNotFound, "not_found")
	wantError(t, "history of deleted group", ts.do(t, ada, "GET", roomPath(g.ID, "/messages"), nil), http.StatusNotFound, "not_found")
}

// TestGroupConcurrentInvites sends 50 invitations at once to a group with
// 10 free places: exactly 10 succeed and the rest get group_full. Each
// is one of the owner's REST sends: the test server allows them all.
func TestGroupConcurrentInvites(t *testing.T) {
	ts := newTestServer(t, withChat(func(c *chat.Config) { c.CodesPerIP = 1000 }),
		withWeb(func(c *web.Config) { c.SendRate, c.SendBurst = 1000, 1000 }))
	owner := ts.signIn(t, "owner@example.com", "Owner")
	g := ts.createGroup(t, owner, "Packed", 11)
	const n = 50
	users := make([]*client, n)
	for i := range users {
		users[i] = ts.signIn(t, fmt.Sprintf("u%d@example.com", i), fmt.Sprintf("U%d", i))
	}
	var wg sync.WaitGroup
	statuses := make([]response, n)
	for i, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = ts.do(t, owner, "POST", groupPath(g.ID, "/members"), map[string]int64{"user_id": u.ID})
		}()
	}
	wg.Wait()
	ok := 0
	for i, r := range statuses {
		if r.Status == http.StatusOK {
			ok++
			continue
		}
		wantError(t, fmt.Sprintf("invite %d", i), r, http.StatusConflict, "group_full")
	}
	if ok != 10 {
		t.Errorf("%d invitations succeeded; want 10", ok)
	}
	var out struct {
		Group wireGroup `json:"group"`
	}
	ts.mustDo(t, owner, "GET", groupPath(g.ID, ""), nil, http.StatusOK, &out)
	if out.Group.Members != 11 || len(out.Group.MemberList) != 11 {
		t.Errorf("group has %d members; want 11", out.Group.Members)
	}
}

// TestGroupReceipts: a member who has a group open sees the first move of
// another member's read position as a receipt frame (once
// chat.Config.ReceiptDelay has passed), and the moves right after it as one
// receipts frame with each member's latest position.
func TestGroupReceipts(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	bob := ts.signIn(t, "bob@example.com", "Bob")
	cy := ts.signIn(t, "cy@example.com", "Cy")
	g := ts.createGroup(t, ada, "Crew", 0)
	ts.addMember(t, ada, g.ID, bob)
	ts.addMember(t, ada, g.ID, cy)
	aws := ts.connect(t, ada)
	aws.open(t, g.ID, nil)
	var seqs []int64
	for i := range 3 {
		seqs = append(seqs, aws.sendMessage(t, g.ID, fmt.Sprintf("r%d", i), "hello").Seq)
	}
	ts.markRead(t, bob, g.ID, seqs[0])
	aws.take(t, "Bob's receipt", func(f frame) bool {
		return f.Type == "receipt" && f.RoomID == g.ID && f.UserID == bob.ID && f.Seq == seqs[0]
	})
	ts.markRead(t, cy, g.ID, seqs[1])
	ts.markRead(t, bob, g.ID, seqs[2])
	want := []wireRead{{UserID: bob.ID, Seq: seqs[2]}, {UserID: cy.ID, Seq: seqs[1]}}
	slices.SortFunc(want, func(a, b wireRead) int { return cmp.Compare(a.UserID, b.UserID) })
	f := aws.take(t, "receipts of Bob and Cy", func(f frame) bool { return f.Type == "receipts" || f.Type == "receipt" })
	if f.Type != "receipts" || f.RoomID != g.ID || !slices.Equal(f.Positions, want) {
		t.Errorf("after two more moves: %s; want one receipts frame with %+v", f, want)
	}
}

// TestGroupNameControlCharacters: a group name holding control characters
// is refused with invalid_field, on create and on rename, and so is a NUL
// in a description; nothing is made or changed.
func TestGroupNameControlCharacters(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	g := ts.createGroup(t, ada, "Crew", 0)
	for _, name := range []string{"Crew\x00", "\x1b[2JCrew", "Cr\x7few", "Cr\u009bew"} {
		wantError(t, fmt.Sprintf("create %q", name), ts.do(t, ada, "POST", "/api/groups", map[string]string{"name": name}), http.StatusBadRequest, "invalid_field")
		wantError(t, fmt.Sprintf("rename to %q", name), ts.do(t, ada, "PATCH", groupPath(g.ID, ""), map[string]string{"name": name}), http.StatusBadRequest, "invalid_field")
	}
	// A description may hold line breaks, but not NUL, which PostgreSQL
	// cannot store: refused alike on every store, not a 500 on one.
	desc := "about\x00Crew"
	wantError(t, "create with a NUL in the description", ts.do(t, ada, "POST", "/api/groups", map[string]string{"name": "Crew 2", "description": desc}), http.StatusBadRequest, "invalid_field")
	wantError(t, "describe with a NUL", ts.do(t, ada, "PATCH", groupPath(g.ID, ""), map[string]string{"description": desc}), http.StatusBadRequest, "invalid_field")
	if cs := ts.conversations(t, ada); len(cs) != 1 || cs[0].Name != "Crew" || cs[0].LastSeq != g.LastSeq {
		t.Errorf("Ada's conversations = %+v; want only Crew, unchanged", cs)
	}
}

// TestGroupUpdateAllOrNothing: a PATCH that changes several settings, one
// of them refused, changes none of them (the app saves its whole form in
// one PATCH).
func TestGroupUpdateAllOrNothing(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	bob := ts.signIn(t, "bob@example.com", "Bob")
	cy := ts.signIn(t, "cy@example.com", "Cy")
	g := ts.createGroup(t, ada, "Crew", 0)
	ts.addMember(t, ada, g.ID, bob)
	ts.addMember(t, ada, g.ID, cy)
	ts.createGroup(t, bob, "Taken", 0)

	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
		code   string
	}{
		{"cap below members", map[string]any{"name": "Crew 2", "description": "new", "max_members": 2}, http.StatusConflict, "cap_below_members"},
		{"name taken", map[string]any{"name": "taken", "description": "new", "max_members": 50}, http.StatusConflict, "name_taken"},
	} {
		wantError(t, tc.name, ts.do(t, ada, "PATCH", groupPath(g.ID, ""), tc.body), tc.status, tc.code)
		var got struct {
			Group wireGroup `json:"group"`
		}
		ts.mustDo(t, ada, "GET", groupPath(g.ID, ""), nil, http.StatusOK, &got)
		if got.Group.Name != "Crew" || got.Group.Description != "about Crew" || got.Group.MaxMembers != 200 || got.Group.LastSeq != g.LastSeq+2 {
			t.Errorf("%s: after the refused PATCH the group is %q %q cap %d, last seq %d; want it unchanged: %q %q cap 200, last seq %d",
				tc.name, got.Group.Name, got.Group.Description, got.Group.MaxMembers, got.Group.LastSeq, "Crew", "about Crew", g.LastSeq+2)
		}
	}
}

// openedReads returns the reads of opened frame f, nil if it has none.
func openedReads(tb testing.TB, f frame) *[]wireRead {
	tb.Helper()
	var v struct {
		Reads *[]wireRead `json:"reads"`
	}
	if err := json.Unmarshal([]byte(f.Raw), &v); err != nil {
		tb.Fatalf("opened frame %s: %v", f, err)
	}
	return v.Reads
}

// TestOpenedReadsAlwaysThere: the opened reply of a direct chat or a group
// carries the other members' read positions in reads (docs/protocol.md,
// "receipt"), also when there are none to give: the group's other members
// have left, or the direct chat's pair may no longer talk. A client that
// keeps the positions it was given last (the web app does) would otherwise
// go on showing "Read" and "Read by N" from those who are gone.
func TestOpenedReadsAlwaysThere(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	g := ts.createGroup(t, ada, "crew", 0)
	ts.addMember(t, ada, g.ID, grace)
	ts.befriend(t, ada, grace)
	_, dm := ts.sendDirect(t, ada, grace.ID, "d-1", "hello")
	m := ts.post(t, ada, g.ID, "g-1", "hello")
	ts.markRead(t, grace, g.ID, m.Seq)
	ts.markRead(t, grace, dm.ID, 1)

	wa := ts.connect(t, ada)
	for _, id := range []int64{g.ID, dm.ID} {
		if r := openedReads(t, wa.open(t, id, nil)); r == nil || len(*r) != 1 || (*r)[0].UserID != grace.ID {
			t.Fatalf("opened %d: reads %v; want Grace's position", id, r)
		}
		wa.send(t, map[string]any{"type": "close", "room_id": id})
	}

	ts.mustDo(t, grace, "DELETE", memberPath(g.ID, grace, ""), nil, http.StatusNoContent, nil)
	ts.mustDo(t, ada, "POST", "/api/blocks", map[string]int64{"user_id": grace.ID}, http.StatusNoContent, nil)
	for _, id := range []int64{g.ID, dm.ID} {
		f := wa.open(t, id, nil)
		if r := openedReads(t, f); r == nil || len(*r) != 0 {
			t.Errorf("opened %d after Grace left or was blocked: %s; want \"reads\": []", id, f)
		}
	}
}

// TestGroupRoleMissing: a role change without a role is refused with
// missing_field, as every absent or empty required field is
// (docs/protocol.md, "Error codes"), and changes nothing.
func TestGroupRoleMissing(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	bob := ts.signIn(t, "bob@example.com", "Bob")
	g := ts.createGroup(t, ada, "Crew", 0)
	ts.addMember(t, ada, g.ID, bob)
	for _, body := range []map[string]any{{}, {"role": ""}} {
		e := wantError(t, fmt.Sprintf("PUT role %v", body), ts.do(t, ada, "PUT", memberPath(g.ID, bob, "/role"), body), http.StatusBadRequest, "missing_field")
		if e.Field != "role" {
			t.Errorf("PUT role %v: field %q; want \"role\"", body, e.Field)
		}
	}
	wantError(t, "PUT role owner", ts.do(t, ada, "PUT", memberPath(g.ID, bob, "/role"), map[string]string{"role": "owner"}), http.StatusBadRequest, "invalid_field")
}
