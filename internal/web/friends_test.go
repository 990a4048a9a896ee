package web_test

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

type wireContact struct {
	User     wireUser  `json:"user"`
	State    string    `json:"state"`
	Since    time.Time `json:"since"`
	Online   *bool     `json:"online"`
	LastSeen time.Time `json:"last_seen"`
}

type wireContacts struct {
	Contacts []wireContact `json:"contacts"`
	Blocked  []wireUser    `json:"blocked"`
}

func (ts *testServer) search(tb testing.TB, c *client, q string) []wireUser {
	tb.Helper()
	var out struct {
		Users []wireUser `json:"users"`
	}
	ts.mustDo(tb, c, "GET", "/api/users?q="+url.QueryEscape(q), nil, http.StatusOK, &out)
	if out.Users == nil {
		tb.Fatalf("GET /api/users?q=%s: users is null; want a list", q)
	}
	return out.Users
}

func (ts *testServer) contacts(tb testing.TB, c *client) wireContacts {
	tb.Helper()
	var out wireContacts
	ts.mustDo(tb, c, "GET", "/api/contacts", nil, http.StatusOK, &out)
	if out.Contacts == nil || out.Blocked == nil {
		tb.Fatalf("GET /api/contacts = %+v; want lists, not null", out)
	}
	return out
}

func (ts *testServer) requestFriend(tb testing.TB, c *client, id int64) wireContact {
	tb.Helper()
	var out struct {
		Contact wireContact `json:"contact"`
	}
	ts.mustDo(tb, c, "POST", "/api/contacts", map[string]int64{"user_id": id}, http.StatusOK, &out)
	return out.Contact
}

func ref(c *client) wireUser { return wireUser{ID: c.ID, Name: c.Name, NameVersion: c.NameVersion} }

// expectContact waits for the contact frame about u with state.
func (w *wsClient) expectContact(tb testing.TB, u *client, state string) frame {
	tb.Helper()
	f := w.take(tb, "contact "+u.Name+" "+state, func(f frame) bool {
		return f.Type == "contact" && f.User != nil && f.User.ID == u.ID && f.State == state
	})
	if diff := cmp.Diff(ref(u), *f.User); diff != "" {
		tb.Errorf("contact frame user mismatch (-want +got):\n%s", diff)
	}
	return f
}

// noContact checks, after a barrier, that no contact frame is queued.
func (w *wsClient) noContact(tb testing.TB) {
	tb.Helper()
	w.barrier(tb)
	for _, f := range w.drain() {
		if f.Type == "contact" {
			tb.Errorf("%s: unexpected contact frame %s", w.name, f)
		}
	}
}

func TestFriendsLive(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace Hopper")
	ts.signIn(t, "gwen@example.com", "Gwen")

	// Find Grace by exact email (any case) and by name prefix.
	if diff := cmp.Diff([]wireUser{ref(grace)}, ts.search(t, ada, " Grace@Example.com ")); diff != "" {
		t.Errorf("search by email mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]wireUser{ref(grace)}, ts.search(t, ada, "grace h")); diff != "" {
		t.Errorf("search by name mismatch (-want +got):\n%s", diff)
	}
	if got := ts.search(t, ada, "g"); len(got) != 2 {
		t.Errorf("search \"g\" = %+v; want Grace and Gwen", got)
	}
	// No email enumeration: partial addresses and domains find no one.
	for _, q := range []string{"grace@", "grace@example", "@example.com", "example.com", "ada@example.com"} {
		if got := ts.search(t, ada, q); len(got) != 0 {
			t.Errorf("search %q = %+v; want nobody", q, got)
		}
	}
	wantError(t, "search without q", ts.do(t, ada, "GET", "/api/users", nil), http.StatusBadRequest, "missing_field")

	gws := ts.connect(t, grace)
	aws := ts.connect(t, ada)

	c := ts.requestFriend(t, ada, grace.ID)
	if c.User != ref(grace) || c.State != "request_sent" || c.Since.IsZero() {
		t.Errorf("POST /api/contacts = %+v; want request_sent to Grace", c)
	}
	gws.expectContact(t, ada, "request_received")
	aws.expectContact(t, grace, "request_sent")

	var acc struct {
		Contact wireContact `json:"contact"`
	}
	ts.mustDo(t, grace, "POST", "/api/contacts/"+strconv.FormatInt(ada.ID, 10)+"/accept", nil, http.StatusOK, &acc)
	if acc.Contact.User != ref(ada) || acc.Contact.State != "friends" {
		t.Errorf("accept = %+v; want friends with Ada", acc.Contact)
	}
	gws.expectContact(t, ada, "friends")
	aws.expectContact(t, grace, "friends")

	got := ts.contacts(t, ada)
	online := true // Grace is connected
	if diff := cmp.Diff(wireContacts{Contacts: []wireContact{{User: ref(grace), State: "friends", Online: &online}}, Blocked: []wireUser{}},
		got, cmpopts.IgnoreFields(wireContact{}, "Since")); diff != "" {
		t.Errorf("Ada's contacts mismatch (-want +got):\n%s", diff)
	}
	wantError(t, "request a friend", ts.do(t, ada, "POST", "/api/contacts", map[string]int64{"user_id": grace.ID}), http.StatusConflict, "already_friends")

	// Unfriend: both are told.
	ts.mustDo(t, grace, "DELETE", "/api/contacts/"+strconv.FormatInt(ada.ID, 10), nil, http.StatusNoContent, nil)
	gws.expectContact(t, ada, "none")
	aws.expectContact(t, grace, "none")
	if got := ts.contacts(t, grace); len(got.Contacts) != 0 {
		t.Errorf("Grace's contacts after unfriend = %+v; want none", got)
	}
	wantError(t, "remove again", ts.do(t, grace, "DELETE", "/api/contacts/"+strconv.FormatInt(ada.ID, 10), nil), http.StatusNotFound, "not_found")
}

func TestFriendRequestOffline(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	ts.mustDo(t, grace, "POST", "/api/auth/signout", nil, http.StatusNoContent, nil)

	ts.requestFriend(t, ada, grace.ID)

	grace = ts.signIn(t, "grace@example.com", "Grace")
	got := ts.contacts(t, grace)
	if len(got.Contacts) != 1 || got.Contacts[0].User != ref(ada) || got.Contacts[0].State != "request_received" {
		t.Fatalf("Grace's contacts at sign-in = %+v; want Ada's request", got)
	}
	// Decline.
	ts.mustDo(t, grace, "DELETE", "/api/contacts/"+strconv.FormatInt(ada.ID, 10), nil, http.StatusNoContent, nil)
	if got := ts.contacts(t, ada); len(got.Contacts) != 0 {
		t.Errorf("Ada's contacts after decline = %+v; want none", got)
	}
}

func TestBlockRefusesQuietly(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	mallory := ts.signIn(t, "mallory@example.com", "Mallory")
	eve := ts.signIn(t, "eve@example.com", "Eve")

	aws := ts.connect(t, ada)
	ts.mustDo(t, ada, "POST", "/api/blocks", map[string]int64{"user_id": mallory.ID}, http.StatusNoContent, nil)
	aws.expectContact(t, mallory, "blocked")
	got := ts.contacts(t, ada)
	if diff := cmp.Diff([]wireUser{ref(mallory)}, got.Blocked); diff != "" {
		t.Errorf("Ada's blocked list mismatch (-want +got):\n%s", diff)
	}

	// Mallory's request gets the generic refusal, the same Ada would get,
	// and nothing reaches Ada.
	eb := wantError(t, "request by the blocked", ts.do(t, mallory, "POST", "/api/contacts", map[string]int64{"user_id": ada.ID}), http.StatusForbidden, "refused")
	ea := wantError(t, "request by the blocker", ts.do(t, ada, "POST", "/api/contacts", map[string]int64{"user_id": mallory.ID}), http.StatusForbidden, "refused")
	if eb != ea {
		t.Errorf("refusals differ: %+v and %+v", eb, ea)
	}
	aws.noContact(t)
	if got := ts.contacts(t, ada); len(got.Contacts) != 0 {
		t.Errorf("Ada's contacts = %+v; want none", got.Contacts)
	}
	// Neither finds the other; others find both.
	if got := ts.search(t, mallory, "ada@example.com"); len(got) != 0 {
		t.Errorf("Mallory finds Ada: %+v", got)
	}
	if got := ts.search(t, eve, "ada@example.com"); len(got) != 1 {
		t.Errorf("Eve's search = %+v; want Ada", got)
	}

	wantError(t, "request unknown", ts.do(t, ada, "POST", "/api/contacts", map[string]int64{"user_id": 1 << 40}), http.StatusNotFound, "not_found")
	wantError(t, "request self", ts.do(t, ada, "POST", "/api/contacts", map[string]int64{"user_id": ada.ID}), http.StatusBadRequest, "invalid_field")
	wantError(t, "request without id", ts.do(t, ada, "POST", "/api/contacts", map[string]string{}), http.StatusBadRequest, "missing_field")
	wantError(t, "bad path id", ts.do(t, ada, "DELETE", "/api/blocks/x", nil), http.StatusBadRequest, "invalid_field")

	ts.mustDo(t, ada, "DELETE", "/api/blocks/"+strconv.FormatInt(mallory.ID, 10), nil, http.StatusNoContent, nil)
	aws.expectContact(t, mallory, "none")
	ts.requestFriend(t, mallory, ada.ID)
	aws.expectContact(t, mallory, "request_received")
}

// TestNewFriendPresence: the contact that answers an acceptance, by
// POST /api/contacts/{id}/accept or by a request to who asked first,
// carries the new friend's presence, as every friend in GET /api/contacts
// and the contact frame do (docs/protocol.md, "Contacts"). A client that
// takes the answer after the frame (the web app does) would otherwise show
// an online friend offline.
func TestNewFriendPresence(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	bob := ts.signIn(t, "bob@example.com", "Bob")
	ts.connect(t, grace)
	ts.connect(t, bob)

	ts.requestFriend(t, grace, ada.ID)
	var out struct {
		Contact wireContact `json:"contact"`
	}
	ts.mustDo(t, ada, "POST", "/api/contacts/"+strconv.FormatInt(grace.ID, 10)+"/accept", nil, http.StatusOK, &out)
	if c := out.Contact; c.State != "friends" || c.Online == nil || !*c.Online {
		t.Errorf("Ada accepts Grace, who is online: contact %s, online %v; want friends, online", c.State, c.Online != nil && *c.Online)
	}

	ts.requestFriend(t, bob, ada.ID)
	if c := ts.requestFriend(t, ada, bob.ID); c.State != "friends" || c.Online == nil || !*c.Online {
		t.Errorf("Ada asks Bob, who asked first and is online: contact %s, online %v; want friends, online", c.State, c.Online != nil && *c.Online)
	}
}
