package web_test

import (
	"net/http"
	"testing"
	"time"
)

// wireMe is the answer to GET /api/me.
type wireMe struct {
	User    wireUser  `json:"user"`
	RenewAt time.Time `json:"session_renew_at"`
	RenewBy time.Time `json:"session_renew_by"`
}

// TestHelloSessionRenewal: a page whose only traffic is its WebSocket
// (or long poll) cannot have its cookie renewed by the connection, so the
// hello, and GET /api/me, tell it when a request renews the session and
// the cookie with it: from the start of the session's second half
// (session_renew_at) until the node's check of open connections would
// renew it instead (session_renew_by, an hour before the end). They
// follow the session as requests renew it. They are given in whole
// seconds, within the window.
func TestHelloSessionRenewal(t *testing.T) {
	ts := newTestServer(t) // sessions live 30 days
	ada := ts.signIn(t, "ada@example.com", "Ada")
	const day = 24 * time.Hour
	check := func(what string, start time.Time) {
		t.Helper()
		wantAt, wantBy := ceilSecond(start.Add(15*day)), start.Add(30*day-time.Hour).Truncate(time.Second)
		for _, h := range []frame{ts.connectWith(t, ada, dialOptions{}).readNow(t, "hello"), ts.connectPoll(t, ada, "").hello} {
			if !h.RenewAt.Equal(wantAt) || !h.RenewBy.Equal(wantBy) {
				t.Errorf("%s: hello %s; want session_renew_at %v, session_renew_by %v", what, h, wantAt, wantBy)
			}
		}
		var me wireMe
		ts.mustDo(t, ada, "GET", "/api/me", nil, http.StatusOK, &me)
		if !me.RenewAt.Equal(wantAt) || !me.RenewBy.Equal(wantBy) {
			t.Errorf("%s: GET /api/me = %+v; want session_renew_at %v, session_renew_by %v", what, me, wantAt, wantBy)
		}
	}
	signedIn := ts.clock.Now()
	check("a new session", signedIn)
	ts.clock.Advance(14 * day)
	check("a session 14 days old", signedIn)

	// In the second half, the request renews the session: its answer
	// tells the new times.
	ts.clock.Advance(2 * day)
	renewed := ts.clock.Now()
	var me wireMe
	ts.mustDo(t, ada, "GET", "/api/me", nil, http.StatusOK, &me)
	if wantAt := ceilSecond(renewed.Add(15 * day)); !me.RenewAt.Equal(wantAt) {
		t.Errorf("GET /api/me that renewed the session = %+v; want session_renew_at %v", me, wantAt)
	}
	check("a renewed session", renewed)

	// So does the WebSocket upgrade that renews it, in its hello.
	ts.clock.Advance(16 * day)
	upgraded := ts.clock.Now()
	h := ts.connectWith(t, ada, dialOptions{}).readNow(t, "hello")
	if wantAt := ceilSecond(upgraded.Add(15 * day)); !h.RenewAt.Equal(wantAt) {
		t.Errorf("hello of the upgrade that renewed the session: %s; want session_renew_at %v", h, wantAt)
	}
}

// ceilSecond is t rounded up to a whole second.
func ceilSecond(t time.Time) time.Time {
	if s := t.Truncate(time.Second); s.Before(t) {
		return s.Add(time.Second)
	}
	return t
}
