package web

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"

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
