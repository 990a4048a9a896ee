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

// TestTransactionAfterServerEndedConnection: the server ended the pool's
// idle connections (an operator's pg_terminate_backend, a restart); a
// write that finds out at its BEGIN ran nothing, and runs again on a new
// connection instead of failing.
func TestTransactionAfterServerEndedConnection(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	var pids []uint32
	for _, c := range db.pool.AcquireAllIdle(ctx) {
		pids = append(pids, c.Conn().PgConn().PID())
		c.Release()
	}
	if len(pids) == 0 {
		t.Fatal("no idle connection in the pool")
	}
	// From a connection of its own: every one of the pool's is to end.
	conn, err := pgx.Connect(ctx, testServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid`, pids); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])`, pids).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if i == 200 {
			t.Fatalf("the pool's backends %v still run", pids)
		}
		time.Sleep(25 * time.Millisecond)
	}
	attempts := 0
	err = db.write(ctx, func(tx pgx.Tx) error {
		attempts++
		_, err := tx.Exec(ctx, `SELECT 1`)
		return err
	})
	if err != nil {
		t.Errorf("write after the server ended the pool's connections = %v after %d attempts; want nil", err, attempts)
	}
}
