package web_test

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"

	"github.com/parley-chat/parley/internal/web"
)

// TestGroupChangesLimited: a change of a group that posts to all its
// members (a rename, a new description or cap, a role given or taken, the
// ownership passed on) counts as one of its maker's REST sends
// (docs/protocol.md, Limits). Before, an admin could rename a group in a
// loop, and every member received each rename.
func TestGroupChangesLimited(t *testing.T) {
	// Four: Grace's add, and three renames.
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.SendRate, c.SendBurst = 0.001, 4 }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	g := ts.createGroup(t, ada, "Crew", 0)
	ts.addMember(t, ada, g.ID, grace)
	for i := range 3 {
		if r := ts.do(t, ada, "PATCH", groupPath(g.ID, ""), map[string]string{"name": fmt.Sprintf("Crew %d", i)}); r.Status != http.StatusOK {
			t.Fatalf("rename %d of 3: %s", i+1, r)
		}
	}
	ts.wantLimited(t, ada, []limitedRequest{
		{"a fourth rename", "PATCH", groupPath(g.ID, ""), map[string]string{"name": "Crew 4"}},
		{"a new description", "PATCH", groupPath(g.ID, ""), map[string]string{"description": "spam"}},
		{"a role given", "PUT", memberPath(g.ID, grace, "/role"), map[string]string{"role": "admin"}},
		{"the ownership passed on", "POST", groupPath(g.ID, "/owner"), map[string]int64{"user_id": grace.ID}},
	})
	// Nothing changed, and another member's allowance is their own.
	var got struct {
		Group wireGroup `json:"group"`
	}
	ts.mustDo(t, grace, "GET", groupPath(g.ID, ""), nil, http.StatusOK, &got)
	if got.Group.Name != "Crew 2" || got.Group.Description != "about Crew" {
		t.Errorf("group after the refusals: %q, %q; want \"Crew 2\", \"about Crew\"", got.Group.Name, got.Group.Description)
	}
}

// TestGroupMembersLimited: adding a member and removing one post to every
// member of the group, and an event to the user, so each counts as one of
// the acting admin's REST sends, as the other group changes do. Past
// them, 429 rate_limited with Retry-After, and nobody is added or
// removed. A member leaving is not counted: a member is in a group only
// by a counted add, and must always be able to leave. Before, an admin
// could add and remove one user in a loop.
func TestGroupMembersLimited(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.SendRate, c.SendBurst = 0.001, 3 }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	bob := ts.signIn(t, "bob@example.com", "Bob")
	cy := ts.signIn(t, "cy@example.com", "Cy")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	g := ts.createGroup(t, ada, "Crew", 0)
	ts.addMember(t, ada, g.ID, grace)
	ts.addMember(t, ada, g.ID, bob)
	ts.mustDo(t, ada, "DELETE", memberPath(g.ID, bob, ""), nil, http.StatusNoContent, nil)
	ts.wantLimited(t, ada, []limitedRequest{
		{"a fourth add", "POST", groupPath(g.ID, "/members"), map[string]int64{"user_id": cy.ID}},
		{"a removal", "DELETE", memberPath(g.ID, grace, ""), nil},
	})
	var got struct {
		Group wireGroup `json:"group"`
	}
	ts.mustDo(t, grace, "GET", groupPath(g.ID, ""), nil, http.StatusOK, &got)
	var ids []int64
	for _, m := range got.Group.MemberList {
		ids = append(ids, m.ID)
	}
	if want := []int64{ada.ID, grace.ID}; !slices.Equal(ids, want) {
		t.Errorf("members after the refusals: %v; want %v", ids, want)
	}
	// Grace's own allowance is hers, and leaving costs none of it.
	for i := range 3 {
		ts.mustDo(t, grace, "POST", "/api/conversations/"+strconv.FormatInt(g.ID, 10)+"/messages",
			map[string]string{"body": "bye", "client_id": fmt.Sprintf("bye-%d", i)}, http.StatusOK, nil)
	}
	ts.mustDo(t, grace, "DELETE", memberPath(g.ID, grace, ""), nil, http.StatusNoContent, nil)
}

// limitedRequest is a request that a limit should refuse.
type limitedRequest struct {
	what, method, path string
	body               any
}

// wantLimited checks that each of reqs, made as u, is refused with 429
// rate_limited and a Retry-After.
func (ts *testServer) wantLimited(t *testing.T, u *client, reqs []limitedRequest) {
	t.Helper()
	for _, c := range reqs {
		r := ts.do(t, u, c.method, c.path, c.body)
		wantError(t, c.what, r, http.StatusTooManyRequests, "rate_limited")
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After header", c.what)
		}
	}
}
