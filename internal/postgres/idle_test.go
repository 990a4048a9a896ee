package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
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
// an internal error. So is the caller of one that found every connection
// ended, once more than the pool holds.
func TestRetriesExhausted(t *testing.T) {
	for _, code := range []string{"40001", "40P01"} {
		attempts := 0
		err := retrying(t.Context(), 10, func() error {
			attempts++
			return &pgconn.PgError{Code: code}
		})
		if attempts != maxAttempts || !errors.Is(err, chat.ErrUnavailable) {
			t.Errorf("%s every time = %v after %d attempts; want chat.ErrUnavailable after %d", code, err, attempts, maxAttempts)
		}
	}
	const conns = 3
	attempts := 0
	err := retrying(t.Context(), conns, func() error {
		attempts++
		return &notRunError{&pgconn.PgError{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "57P01"}}
	})
	if want := conns + maxAttempts; attempts != want || !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("an ended connection every time = %v after %d attempts; want chat.ErrUnavailable after %d", err, attempts, want)
	}
}

// TestTransactionAfterServerEndedConnection: the server ended the pool's
// idle connections (an operator's pg_terminate_backend, a restart); a
// write that finds out at its BEGIN ran nothing, and runs again on a new
// connection instead of failing, however many of the pool's connections
// were ended.
func TestTransactionAfterServerEndedConnection(t *testing.T) {
	afterEndedConns(t, []endedConnsOp{
		{"write", func(ctx context.Context, db *DB, f endedConnsFixture) error {
			return db.write(ctx, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `SELECT 1`)
				return err
			})
		}},
	})
}

// TestStatementAfterServerEndedConnection: the server ended the pool's idle
// connections less than a second after their last use, so the pool hands
// them out without a ping. A statement outside a transaction that finds
// out by reading the server's farewell in place of its first answer ran
// nothing, and runs again on another connection instead of failing: a
// read whose error pgx reports at Prepare, at the first Next or at Scan,
// and a write through Exec or QueryRow.
func TestStatementAfterServerEndedConnection(t *testing.T) {
	afterEndedConns(t, []endedConnsOp{
		{"Messages", func(ctx context.Context, db *DB, f endedConnsFixture) error {
			ms, err := db.Messages(ctx, f.general.ID, chat.Page{Limit: 10})
			if err == nil && len(ms) != 1 {
				err = fmt.Errorf("%d messages; want 1", len(ms))
			}
			return err
		}},
		{"UserEvents", func(ctx context.Context, db *DB, f endedConnsFixture) error {
			_, err := db.UserEvents(ctx, f.ann.ID, 0, 10)
			return err
		}},
		{"Session", func(ctx context.Context, db *DB, f endedConnsFixture) error {
			_, _, err := db.Session(ctx, f.token)
			return err
		}},
		{"User", func(ctx context.Context, db *DB, f endedConnsFixture) error {
			_, err := db.User(ctx, f.ann.ID)
			return err
		}},
		{"SetLastSeen", func(ctx context.Context, db *DB, f endedConnsFixture) error {
			return db.SetLastSeen(ctx, f.ann.ID, time.Now())
		}},
		{"SetUserName", func(ctx context.Context, db *DB, f endedConnsFixture) error {
			_, err := db.SetUserName(ctx, f.ann.ID, "ann")
			return err
		}},
	})
}

type endedConnsFixture struct {
	ann     chat.User
	general chat.Room // with one message of ann's
	token   string    // the token hash of a session of ann's
}

type endedConnsOp struct {
	name string
	run  func(ctx context.Context, db *DB, f endedConnsFixture) error
}

// afterEndedConns runs each of ops twice right after the server ended the
// idle connections of the pool, and fails the test if one fails.
func afterEndedConns(t *testing.T, ops []endedConnsOp) {
	t.Helper()
	for _, tc := range []struct {
		name  string
		query string // added to the URL
		idle  int    // idle connections in the pool when the server ends them
	}{
		// A statement's first run here may find it not yet prepared on
		// the ended connection (pgx fails at Prepare), the second finds
		// it prepared (pgx fails at the first Next, or at Scan).
		{"one connection", "&pool_max_conns=1", 1},
		// More ended connections in a row than a transaction's attempts.
		{"many connections", "", maxAttempts + 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := mustOpen(t, mustSchema(t)+tc.query)
			ctx := t.Context()
			ann, general := annAndGeneral(t, db)
			if _, _, err := db.Append(ctx, chat.NewMessage{ConvID: general.ID, Kind: chat.KindText, SenderID: ann.ID, Body: "hi", At: time.Now()}); err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			if _, err := db.CreateSession(ctx, chat.Session{UserID: ann.ID, TokenHash: "h1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			f := endedConnsFixture{ann: ann, general: general, token: "h1"}
			for _, op := range ops {
				for run := 1; run <= 2; run++ {
					idleConns(t, db, tc.idle)
					endIdleConns(t, db)
					if err := op.run(ctx, db, f); err != nil {
						t.Errorf("%s (run %d) after the server ended %d idle connections: %v; want success", op.name, run, tc.idle, err)
					}
				}
			}
		})
	}
}

// TestPingAfterServerEndedConnection: Ping, the health check, finds the
// server answering although it had ended the pool's idle connections.
func TestPingAfterServerEndedConnection(t *testing.T) {
	afterEndedConns(t, []endedConnsOp{
		{"Ping", func(ctx context.Context, db *DB, f endedConnsFixture) error { return db.Ping(ctx) }},
	})
}

// TestBatchAfterServerEndedConnection: like a statement
// (TestStatementAfterServerEndedConnection) or a transaction, a batch
// outside a transaction on a connection that the server ended while it
// sat idle ran nothing, and runs again on another connection.
func TestBatchAfterServerEndedConnection(t *testing.T) {
	afterEndedConns(t, []endedConnsOp{
		{"JoinRoom", func(ctx context.Context, db *DB, f endedConnsFixture) error {
			_, _, err := db.JoinRoom(ctx, f.general.ID, f.ann.ID, time.Now(), true)
			return err
		}},
		{"MarkRead", func(ctx context.Context, db *DB, f endedConnsFixture) error {
			marks := []chat.ReadMark{{ConvID: f.general.ID, UserID: f.ann.ID, Seq: 1}}
			if err := db.MarkRead(ctx, marks); err != nil {
				return err
			}
			return marks[0].Err
		}},
	})
}

// idleConns makes the pool of db hold at least n idle connections.
func idleConns(t *testing.T, db *DB, n int) {
	t.Helper()
	conns := make([]*pgxpool.Conn, 0, n)
	for range n {
		c, err := db.pool.raw.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}
}

// endIdleConns has the server end every idle connection of db's pool, as
// an operator's pg_terminate_backend or a restart does, and waits until
// their backends are gone. The pool does not know yet.
func endIdleConns(t *testing.T, db *DB) {
	t.Helper()
	ctx := t.Context()
	var pids []uint32
	for _, c := range db.pool.raw.AcquireAllIdle(ctx) {
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
			return
		}
		if i == 200 {
			t.Fatalf("the pool's backends %v still run", pids)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestMapErrOnce: an error mapped on its way out of a write is mapped
// again by the caller that wraps it (Open's migration): it was told twice
// that the database is unavailable, "…; try again later: the database is
// unavailable; try again later: ERROR: …".
func TestMapErrOnce(t *testing.T) {
	ctx := context.Background()
	for _, code := range []string{"57014", "22021"} {
		once := mapErr(ctx, &pgconn.PgError{Code: code, Message: "cause"})
		twice := mapErr(ctx, fmt.Errorf("migrate: %w", once))
		if want := "migrate: " + once.Error(); twice.Error() != want {
			t.Errorf("mapErr of an error mapped already = %q; want %q", twice, want)
		}
	}
}
