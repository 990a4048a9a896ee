package postgres

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/parley-chat/parley/internal/chat"
)

// TestIdleTransactionEnded: a transaction that the server ended for
// sitting idle too long (idle_in_transaction_session_timeout, set here by
// the URL, as a server or an operator may) committed nothing, so it runs
// again rather than failing with an error of no kind; when it fails so
// every time, the error says to try again later.
func TestIdleTransactionEnded(t *testing.T) {
	db := mustOpen(t, mustSchema(t)+"&idle_in_transaction_session_timeout=100ms")
	ctx := t.Context()
	attempts := 0
	err := db.write(ctx, func(tx pgx.Tx) error {
		attempts++
		var pid int
		if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			return err
		}
		if attempts > 1 {
			return nil
		}
		// Idle until the server has ended this session.
		for range 200 {
			var n int
			if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		_, err := tx.Exec(ctx, `SELECT 1`)
		return err
	})
	if err != nil || attempts != 2 {
		t.Errorf("write whose first transaction the server ended as idle = %v after %d attempts; want nil after 2", err, attempts)
	}
	if err := mapErr(ctx, &pgconn.PgError{Code: "25P03"}); !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("mapErr(idle-in-transaction timeout) = %v; want chat.ErrUnavailable", err)
	}
}

// TestRetriesExhausted: a transaction that loses a deadlock or a
// serialization conflict every time it runs was rolled back each time;
// after the last attempt the caller is told to try again later, not shown
// an internal error.
func TestRetriesExhausted(t *testing.T) {
	for _, code := range []string{"40001", "40P01"} {
		attempts := 0
		err := retrying(t.Context(), func() error {
			attempts++
			return &pgconn.PgError{Code: code}
		})
		if attempts != maxAttempts || !errors.Is(err, chat.ErrUnavailable) {
			t.Errorf("%s every time = %v after %d attempts; want chat.ErrUnavailable after %d", code, err, attempts, maxAttempts)
		}
	}
}
