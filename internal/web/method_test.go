package web_test

import (
	"net/http"
	"strconv"
	"testing"
)

// TestMethodNotAllowed checks that a request with a method an endpoint
// does not serve is 405 method_not_allowed with the methods it does in
// Allow, not a 404 that says the endpoint does not exist.
func TestMethodNotAllowed(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	g := ts.createGroup(t, ada, "Crew", 0)

	tests := []struct {
		method, path string
		allow        string
	}{
		{"PUT", "/api/me", "GET, HEAD, PATCH"},
		{"DELETE", "/api/rooms", "GET, HEAD, POST"},
		{"GET", "/api/auth/code", "POST"},
		{"GET", "/api/auth/signout", "POST"},
		{"POST", "/api/ws", "GET, HEAD"},
		{"PATCH", roomPath(room.ID, "/messages"), "GET, HEAD, POST"},
		{"DELETE", "/api/conversations/" + strconv.FormatInt(room.ID, 10), "GET, HEAD"},
		{"GET", "/api/conversations/" + strconv.FormatInt(room.ID, 10) + "/read", "POST"},
		{"PUT", groupPath(g.ID, ""), "GET, HEAD, PATCH, DELETE"},
		{"GET", groupPath(g.ID, "/members"), "POST"},
		{"GET", groupPath(g.ID, "/members/1/role"), "PUT"},
		{"PATCH", "/api/contacts", "GET, HEAD, POST"},
		{"GET", "/api/blocks", "POST"},
		{"OPTIONS", "/api/me", "GET, HEAD, PATCH"},
		{"PUT", "/api/poll", "GET, HEAD, POST, DELETE"},
	}
	for _, tt := range tests {
		r := ts.do(t, ada, tt.method, tt.path, nil)
		what := tt.method + " " + tt.path
		wantError(t, what, r, http.StatusMethodNotAllowed, "method_not_allowed")
		if got := r.Header.Get("Allow"); got != tt.allow {
			t.Errorf("%s: Allow = %q; want %q", what, got, tt.allow)
		}
	}

	// A path no method serves is still not found, with no Allow.
	for _, path := range []string{"/api/nope", roomPath(room.ID, "/nope"), "/api/rooms/1/members/2"} {
		r := ts.do(t, ada, "GET", path, nil)
		wantError(t, "GET "+path, r, http.StatusNotFound, "not_found")
		if got := r.Header.Get("Allow"); got != "" {
			t.Errorf("GET %s: Allow = %q; want none", path, got)
		}
	}
}

// TestDirectPathField checks that a bad {user_id} of /api/direct is
// refused naming the field as docs/protocol.md does, and as the same
// endpoints name it for one's own id: user_id.
func TestDirectPathField(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	send := map[string]string{"client_id": "c-1", "body": "hi"}
	tests := []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/direct/abc", nil},
		{"GET", "/api/direct/0", nil},
		{"GET", "/api/direct/9223372036854775808", nil},
		{"GET", "/api/direct/" + strconv.FormatInt(ada.ID, 10), nil},
		{"POST", "/api/direct/-3/messages", send},
		{"POST", "/api/direct/" + strconv.FormatInt(ada.ID, 10) + "/messages", send},
	}
	for _, tt := range tests {
		e := wantError(t, tt.method+" "+tt.path, ts.do(t, ada, tt.method, tt.path, tt.body), http.StatusBadRequest, "invalid_field")
		if e.Field != "user_id" {
			t.Errorf("%s %s: field = %q; want user_id", tt.method, tt.path, e.Field)
		}
	}
}
