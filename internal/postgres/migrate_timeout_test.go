package postgres

import (
	"context"
	"testing"
	"time"
)

// TestOpenBehindMigrationWithTimeouts: a node starts while another holds
// the migration lock, as when several nodes start at once and one of them
// is migrating, with a statement_timeout or lock_timeout in its URL meant
// for the statements of requests. It waits for the lock as long as the
// other migrates and then opens, rather than give up after the timeout:
// a migration of a large database takes longer than any such timeout, and
// every other node would fail to start meanwhile.
func TestOpenBehindMigrationWithTimeouts(t *testing.T) {
	dsn := mustSchema(t)
	mustOpen(t, dsn) // migrated: the node below only waits for the lock
	for _, setting := range []string{"statement_timeout", "lock_timeout"} {
		t.Run(setting, func(t *testing.T) {
			ctx := t.Context()
			tx := oldNodeTx(t, dsn) // the node that migrates
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('parley migrate ' || coalesce(current_schema(), ''), 0))`); err != nil {
				t.Fatal(err)
			}
			conn := mustConnect(t, dsn)
			type result struct {
				db  *DB
				err error
			}
			opened := make(chan result, 1)
			go func() {
				db, err := Open(context.Background(), dsn+"&"+setting+"=100ms")
				opened <- result{db, err}
			}()
			// Hold the lock until the node has waited for it well past its
			// timeout, or has given up.
			deadline := time.Now().Add(10 * time.Second)
			for waited := false; !waited; {
				select {
				case r := <-opened:
					t.Fatalf("Open while another node migrates, with %s=100ms = %v; want it to wait for the migration", setting, r.err)
				default:
				}
				if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
					WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid() AND query LIKE '%pg_advisory_xact_lock%'
					AND clock_timestamp() - query_start > interval '500 ms')`).Scan(&waited); err != nil {
					t.Fatal(err)
				}
				if !waited && time.Now().After(deadline) {
					t.Fatal("no node waits for the migration lock after 10 s")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case r := <-opened:
				if r.err != nil {
					t.Fatalf("Open after the other node migrated: %v", r.err)
				}
				r.db.Close()
			case <-time.After(30 * time.Second):
				t.Fatal("Open did not return in 30 s after the migration lock was released")
			}
		})
	}
}
