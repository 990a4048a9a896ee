package web

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// TestClassifyDeadline: an operation that ran out of the server's own time
// for it (opTimeout; a database pool with no connection free for that
// long) is a dependency too slow to answer, 503 unavailable, which a client
// retries, not an internal error; a cancelled request stays 499.
func TestClassifyDeadline(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	status, d := classify(log, fmt.Errorf("load room 1: %w", context.DeadlineExceeded))
	if status != http.StatusServiceUnavailable || d.Code != chat.CodeUnavailable {
		t.Errorf("deadline exceeded = %d %q; want 503 %q", status, d.Code, chat.CodeUnavailable)
	}
	if status, _ := classify(log, fmt.Errorf("load room 1: %w", context.Canceled)); status != 499 {
		t.Errorf("cancelled = %d; want 499", status)
	}
}

// TestClassifyRateLimitedRetryAfter: every 429 carries Retry-After and
// retry_after_ms (docs/protocol.md, Conventions). A limiter's wait under a
// millisecond, or none (a window ending as it was read), was dropped:
// retry_after_ms 0 is left out, and Retry-After with it.
func TestClassifyRateLimitedRetryAfter(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, after := range []time.Duration{0, 300 * time.Microsecond, 1500 * time.Microsecond, 2 * time.Second} {
		e := chat.Errorf(chat.ErrRateLimited, chat.CodeRateLimited, "too many")
		e.RetryAfter = after
		status, d := classify(log, e)
		want := max(1, (after+time.Millisecond-1)/time.Millisecond)
		if status != http.StatusTooManyRequests || d.RetryAfterMS != int64(want) {
			t.Errorf("rate limited for %s = %d retry_after_ms %d; want 429 retry_after_ms %d", after, status, d.RetryAfterMS, want)
		}
		rec := httptest.NewRecorder()
		(&server{log: log}).writeError(rec, e)
		if got := rec.Header().Get("Retry-After"); got == "" {
			t.Errorf("rate limited for %s: no Retry-After", after)
		}
	}
}
