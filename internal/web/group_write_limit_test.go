package web_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/parley-chat/parley/internal/web"
)

// TestGroupChangesLimited: a change of a group that posts to all its
// members (a rename, a new description or cap, a role given or taken, the
// ownership passed on) counts as one of its maker's REST sends
// (docs/protocol.md, Limits). Before, an admin could rename a group in a
// loop, and every member received each rename.
func TestGroupChangesLimited(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.SendRate, c.SendBurst = 0.001, 3 }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	g := ts.createGroup(t, ada, "Crew", 0)
	ts.addMember(t, ada, g.ID, grace)
	for i := range 3 {
		if r := ts.do(t, ada, "PATCH", groupPath(g.ID, ""), map[string]string{"name": fmt.Sprintf("Crew %d", i)}); r.Status != http.StatusOK {
			t.Fatalf("rename %d of 3: %s", i+1, r)
		}
	}
	for _, c := range []struct {
		what, method, path string
		body               any
	}{
		{"a fourth rename", "PATCH", groupPath(g.ID, ""), map[string]string{"name": "Crew 4"}},
		{"a new description", "PATCH", groupPath(g.ID, ""), map[string]string{"description": "spam"}},
		{"a role given", "PUT", memberPath(g.ID, grace, "/role"), map[string]string{"role": "admin"}},
		{"the ownership passed on", "POST", groupPath(g.ID, "/owner"), map[string]int64{"user_id": grace.ID}},
	} {
		r := ts.do(t, ada, c.method, c.path, c.body)
		wantError(t, c.what, r, http.StatusTooManyRequests, "rate_limited")
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After header", c.what)
		}
	}
	// Nothing changed, and another member's allowance is their own.
	var got struct {
		Group wireGroup `json:"group"`
	}
	ts.mustDo(t, grace, "GET", groupPath(g.ID, ""), nil, http.StatusOK, &got)
	if got.Group.Name != "Crew 2" || got.Group.Description != "about Crew" {
		t.Errorf("group after the refusals: %q, %q; want \"Crew 2\", \"about Crew\"", got.Group.Name, got.Group.Description)
	}
}
