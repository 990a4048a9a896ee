package postgres

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/parley-chat/parley/internal/chat"
)

// onEveryConn runs sql on every connection that pool may hand out (it
// holds at most n), as a server-side setting would apply to them all.
func onEveryConn(t *testing.T, pool *pgxpool.Pool, n int, sql string) {
	t.Helper()
	if err := eachConn(t.Context(), pool, n, func(c *pgxpool.Conn) error {
		_, err := c.Exec(t.Context(), sql)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestServerCannotWrite: when the server cannot take writes for a while,
// because the database was made read-only (a primary demoted in a
// failover, or put read-only for maintenance) or it ran out of disk,
// sends, joins and new rooms fail with chat.ErrUnavailable, which
// clients retry, not with an error of no kind shown as an internal error.
func TestServerCannotWrite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, db *DB)
	}{
		{"read only", func(t *testing.T, db *DB) {
			const sql = `SET default_transaction_read_only = on`
			onEveryConn(t, db.pool.raw, db.pool.conns, sql)
			onEveryConn(t, db.appendPool, batchers, sql)
		}},
		{"disk full", func(t *testing.T, db *DB) {
			for _, q := range []string{
				`CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
					BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END $$`,
				`CREATE TRIGGER disk_full BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION disk_full()`,
				`CREATE TRIGGER disk_full BEFORE INSERT ON conversations FOR EACH ROW EXECUTE FUNCTION disk_full()`,
			} {
				if _, err := db.pool.Exec(t.Context(), q); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := mustOpenDB(t)
			ctx := t.Context()
			ann, r := annAndGeneral(t, db)
			tc.setup(t, db)
			check := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, chat.ErrUnavailable) {
					t.Errorf("%s with the server unable to write: err = %v; want chat.ErrUnavailable", what, err)
				}
			}
			_, _, err := db.Append(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: ann.ID, Body: "hi", At: time.Now()})
			check("Append", err)
			_, _, err = db.JoinRoom(ctx, r.ID, ann.ID, time.Now(), true)
			check("JoinRoom", err)
			_, _, err = db.EnsureRoom(ctx, "random", time.Now())
			check("EnsureRoom", err)
		})
	}
}
