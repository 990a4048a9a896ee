package web_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
)

// TestWrongCodesLimitedPerClient: one client's wrong codes are limited
// across addresses, not only per code: as many as the codes it may ask
// for could take (CodesPerIP × CodeAttempts per CodeWindow). Otherwise
// one client could spend the tries of every pending code, each user's
// fresh one as soon as it was asked for, and keep them from signing in.
// A right code from that client is not counted, and another client is
// not bound by the first's tries.
func TestWrongCodesLimitedPerClient(t *testing.T) {
	ts := newTestServer(t, func(c *testConfig) {
		c.chat.CodesPerIP = 2
		c.chat.CodeAttempts = 3
		c.web.BehindProxy = true
	})
	verify := func(email, code, ip string) response {
		req := ts.newRequest(t, "POST", "/api/auth/verify", map[string]string{"email": email, "code": code})
		req.Header.Set("X-Forwarded-For", ip)
		return send(t, nil, req)
	}
	code := ts.requestCode(t, "ada@example.com")
	if r := verify("ada@example.com", code, "192.0.2.1"); r.Status != http.StatusOK {
		t.Fatalf("right code from 192.0.2.1 = %s; want 200", r)
	}
	for i := 1; i <= 6; i++ {
		wantError(t, fmt.Sprintf("wrong code %d from 192.0.2.1", i), verify(fmt.Sprintf("user%d@example.com", i), "000000", "192.0.2.1"), http.StatusUnauthorized, chat.CodeBadCode)
	}
	wantError(t, "seventh wrong code from 192.0.2.1", verify("grace@example.com", "000000", "192.0.2.1"), http.StatusTooManyRequests, chat.CodeRateLimited)
	wantError(t, "wrong code from 192.0.2.2", verify("grace@example.com", "000000", "192.0.2.2"), http.StatusUnauthorized, chat.CodeBadCode)
}
