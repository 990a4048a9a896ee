package web_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
)

// TestCodeRefusedForAddressKeepsIPAllowance: a code refused because its
// address has had its codes does not use up the client IP's.
func TestCodeRefusedForAddressKeepsIPAllowance(t *testing.T) {
	ts := newTestServer(t, func(c *testConfig) {
		c.chat.CodesPerIP = 8
		c.chat.CodesPerEmail = 2
		c.web.BehindProxy = true
	})
	ask := func(email, ip string) response {
		req := ts.newRequest(t, "POST", "/api/auth/code", map[string]string{"email": email})
		req.Header.Set("X-Forwarded-For", ip)
		return send(t, nil, req)
	}
	for i := 1; i <= 2; i++ {
		if r := ask("ada@example.com", "192.0.2.1"); r.Status != http.StatusAccepted {
			t.Fatalf("code %d for ada = %s; want 202", i, r)
		}
	}
	for i := 3; i <= 12; i++ {
		wantError(t, fmt.Sprintf("code %d for ada", i), ask("ada@example.com", "192.0.2.1"), http.StatusTooManyRequests, chat.CodeRateLimited)
	}
	wantError(t, "code for a bad address", ask("not an address", "192.0.2.1"), http.StatusBadRequest, chat.CodeInvalidField)
	// Two of eight used: six more addresses may ask from 192.0.2.1.
	for i := 1; i <= 6; i++ {
		if r := ask(fmt.Sprintf("user%d@example.com", i), "192.0.2.1"); r.Status != http.StatusAccepted {
			t.Fatalf("code for user%d from 192.0.2.1 = %s; want 202", i, r)
		}
	}
	wantError(t, "ninth code from 192.0.2.1", ask("grace@example.com", "192.0.2.1"), http.StatusTooManyRequests, chat.CodeRateLimited)
	// Refused for the IP: the address's allowance is untouched.
	if r := ask("grace@example.com", "192.0.2.2"); r.Status != http.StatusAccepted {
		t.Errorf("code for grace from another IP = %s; want 202", r)
	}
}
