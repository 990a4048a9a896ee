package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/web"
)

// TestPollRenewalAnsweredAtOnce: the long-poll GET that renews the
// session answers at once, whatever it has, so that the fresh cookie it
// carries reaches the browser. Held, it was lost whenever its client gave
// up on it (a page hidden or closed aborts the poll under way): the
// session was renewed in the store, so no request after it renewed the
// cookie, which ended half a session before the session.
func TestPollRenewalAnsweredAtOnce(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.PollHold = 5 * time.Second }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	poll := func(ctx context.Context, cursor string) (*http.Response, string, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/poll?cursor="+url.QueryEscape(cursor), nil)
		resp, err := ada.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		var body struct {
			Cursor string `json:"cursor"`
		}
		data, err := io.ReadAll(resp.Body)
		if err == nil {
			err = json.Unmarshal(data, &body)
		}
		return resp, body.Cursor, err
	}
	// The channel's first answer, its hello, and what follows at once.
	resp, cursor, err := poll(context.Background(), "")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("first GET /api/poll: %v, %v", resp, err)
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		resp, next, err := poll(ctx, cursor)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break // held: nothing more to give
		}
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/poll: %v, %v", resp, err)
		}
		cursor = next
	}

	// In the session's second half, a poll renews it; its client gives
	// up on it after a moment, as a page that is hidden does.
	ts.clock.Advance(16 * 24 * time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, _, err = poll(ctx, cursor)
	var fresh *http.Cookie
	if err == nil {
		fresh = findCookie(resp.Header, web.CookieName)
	}
	// A later request that does not renew: the session was renewed.
	r := ts.do(t, ada, "GET", "/api/me", nil)
	if c := findCookie(r.Header, web.CookieName); c != nil {
		fresh = c
	}
	if fresh == nil || fresh.MaxAge != int((30*24*time.Hour)/time.Second) {
		t.Errorf("GET /api/poll in the session's second half, given up on after 2 s (%v), then GET /api/me: fresh cookie %v; want one of 30 days", err, fresh)
	}
}
