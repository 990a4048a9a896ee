package web_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/parley-chat/parley/internal/web"
)

// TestBlocksLimited: a block is a write to the store and a contact event
// kept in the blocker's event log and sent to their connections (and to
// the one blocked, if they had a relation), so it counts as one of the
// blocker's REST sends (docs/protocol.md, Limits). Past them, 429
// rate_limited with Retry-After, and nobody is blocked. An unblock is not
// counted: each undoes a counted block. Before, a user could block and
// unblock in a loop without any limit.
func TestBlocksLimited(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.SendRate, c.SendBurst = 0.001, 3 }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	block := map[string]int64{"user_id": grace.ID}
	unblock := "/api/blocks/" + strconv.FormatInt(grace.ID, 10)
	for range 3 {
		ts.mustDo(t, ada, "POST", "/api/blocks", block, http.StatusNoContent, nil)
		ts.mustDo(t, ada, "DELETE", unblock, nil, http.StatusNoContent, nil)
	}
	ts.wantLimited(t, ada, []limitedRequest{{"a fourth block", "POST", "/api/blocks", block}})
	// Nobody was blocked: Grace may still ask Ada.
	ts.mustDo(t, grace, "POST", "/api/contacts", map[string]int64{"user_id": ada.ID}, http.StatusOK, nil)
	var got struct {
		Contacts []any `json:"contacts"`
		Blocked  []struct {
			ID int64 `json:"id"`
		} `json:"blocked"`
	}
	ts.mustDo(t, ada, "GET", "/api/contacts", nil, http.StatusOK, &got)
	if len(got.Blocked) != 0 {
		t.Errorf("blocked after the refusal: %v; want none", got.Blocked)
	}
}
