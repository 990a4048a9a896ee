package web_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
)

// TestHistoryBeforeZero pages backwards to the start: before=0 asks for
// the messages before seq 0, of which there are none, not for the newest
// page again; a negative before is refused.
func TestHistoryBeforeZero(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	for i := range 3 {
		ts.post(t, ada, room.ID, fmt.Sprintf("c-%d", i), "hello")
	}
	for _, q := range []string{"before=0", "before=0&limit=2", "before=1"} {
		p := ts.history(t, ada, room.ID, q)
		if len(p.Messages) != 0 || p.HasMore {
			t.Errorf("history?%s = %v messages, has_more %v; want none, false", q, seqs(p.Messages), p.HasMore)
		}
	}
	if p := ts.history(t, ada, room.ID, "before=2"); len(p.Messages) != 1 || p.Messages[0].Seq != 1 {
		t.Errorf("history?before=2 = %v; want [1]", seqs(p.Messages))
	}
	r := ts.do(t, ada, "GET", roomPath(room.ID, "/messages?before=-1"), nil)
	if e := wantError(t, "history?before=-1", r, http.StatusBadRequest, chat.CodeInvalidField); e.Field != "before" {
		t.Errorf("history?before=-1: field %q; want before", e.Field)
	}
	// Still only for those who may read: a group's history is its members'.
	grace := ts.signIn(t, "grace@example.com", "Grace")
	var g struct {
		Group map[string]any `json:"group"`
	}
	ts.mustDo(t, ada, "POST", "/api/groups", map[string]any{"name": "Crew"}, http.StatusCreated, &g)
	r = ts.do(t, grace, "GET", fmt.Sprintf("/api/conversations/%v/messages?before=0", g.Group["id"]), nil)
	wantError(t, "history?before=0 of another's group", r, http.StatusNotFound, chat.CodeNotFound)
}

// TestHistoryBeforeAndAfter: a page has one bound; before and after
// together were answered as after alone, silently, and are now refused.
func TestHistoryBeforeAndAfter(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	for i := range 3 {
		ts.post(t, ada, room.ID, fmt.Sprintf("c-%d", i), "hello")
	}
	r := ts.do(t, ada, "GET", roomPath(room.ID, "/messages?after=0&before=2"), nil)
	if e := wantError(t, "history?after=0&before=2", r, http.StatusBadRequest, chat.CodeInvalidField); e.Field != "before" {
		t.Errorf("history?after=0&before=2: field %q; want before", e.Field)
	}
}

// TestHistoryMalformedParams: a history parameter given without a value,
// given twice, or not decodable is refused with the field it names, as a
// non-numeric one is; it was taken as absent (an empty before as before=0,
// an empty page, as if the history had no start), or as its first value,
// and the page answered.
func TestHistoryMalformedParams(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	for i := range 3 {
		ts.post(t, ada, room.ID, fmt.Sprintf("c-%d", i), "hello")
	}
	for _, tt := range []struct{ query, field string }{
		{"before=", "before"},
		{"after=", "after"},
		{"limit=", "limit"},
		{"before", "before"},
		{"before=3&before=x", "before"},
		{"after=0&after=3", "after"},
		{"limit=1&limit=2", "limit"},
		{"before=%zz", "before"},
		{"limit=2&after=%", "after"},
	} {
		t.Run(tt.query, func(t *testing.T) {
			r := ts.do(t, ada, "GET", roomPath(room.ID, "/messages?"+tt.query), nil)
			if e := wantError(t, "history?"+tt.query, r, http.StatusBadRequest, chat.CodeInvalidField); e.Field != tt.field {
				t.Errorf("history?%s: field %q; want %q", tt.query, e.Field, tt.field)
			}
		})
	}
	// Other parameters are no business of the history's.
	if p := ts.history(t, ada, room.ID, "limit=2&x=&x=%zz"); len(p.Messages) != 2 {
		t.Errorf("history?limit=2&x=&x=%%zz = %v; want 2 messages", seqs(p.Messages))
	}
}

// TestSearchMalformedQuery: a search's q given twice, or that does not
// decode, is refused naming q, as the history's parameters are. url.Values
// took the first of two, and dropped one that does not decode, so that
// q=%zz was answered "a search query is required".
func TestSearchMalformedQuery(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	ts.signIn(t, "grace@example.com", "Grace")
	for _, query := range []string{"q=gra&q=ada", "q=%zz", "q=gr%"} {
		r := ts.do(t, ada, "GET", "/api/users?"+query, nil)
		if e := wantError(t, "users?"+query, r, http.StatusBadRequest, chat.CodeInvalidField); e.Field != "q" {
			t.Errorf("users?%s: field %q; want q", query, e.Field)
		}
	}
	var found struct {
		Users []wireUser `json:"users"`
	}
	ts.mustDo(t, ada, "GET", "/api/users?q=gr%61&x=%zz", nil, http.StatusOK, &found)
	if len(found.Users) != 1 || found.Users[0].Name != "Grace" {
		t.Errorf("users?q=gr%%61 = %+v; want Grace", found.Users)
	}
}

// TestHistoryHugeParams: a before, after or limit too large for an int64
// is still a non-negative number: a limit is capped as any other over
// 100, a before past every seq is the newest page, an after past every
// seq an empty one. They were refused with 400 invalid_field, "must be a
// non-negative integer".
func TestHistoryHugeParams(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	for i := range 3 {
		ts.post(t, ada, room.ID, fmt.Sprintf("c-%d", i), "hello")
	}
	const huge = "99999999999999999999" // past 2⁶³−1
	for _, tt := range []struct {
		query string
		want  []int64
	}{
		{"limit=" + huge, seqRange(1, 4)},
		{"before=" + huge, seqRange(1, 4)},
		{"before=" + huge + "&limit=2", seqRange(3, 4)},
		{"after=" + huge, nil},
		{"after=2&limit=" + huge, seqRange(3, 4)},
	} {
		r := ts.do(t, ada, "GET", roomPath(room.ID, "/messages?"+tt.query), nil)
		if r.Status != http.StatusOK {
			t.Errorf("history?%s = %s; want 200", tt.query, r)
			continue
		}
		p := ts.history(t, ada, room.ID, tt.query)
		if got := seqs(p.Messages); !slices.Equal(got, tt.want) {
			t.Errorf("history?%s = %v; want %v", tt.query, got, tt.want)
		}
	}
}
