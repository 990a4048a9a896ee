package sqlite

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// TestClientIDIndexUpgrade opens a database whose messages_client_id index
// is keyed as before migration 7 (conversation, sender, client ID) and holds
// a message: the migration rebuilds it client ID first, a retry of that
// message still finds it, and the retry's lookup uses the index.
func TestClientIDIndexUpgrade(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "parley.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	u, _, err := db.EnsureUser(ctx, "ann@example.invalid", now)
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := db.EnsureRoom(ctx, "upgraded", now)
	if err != nil {
		t.Fatal(err)
	}
	send := chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: u.ID, ClientID: "c-before", Body: "hello", At: now}
	first, _, err := db.Append(ctx, send)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DROP INDEX messages_client_id;
			CREATE UNIQUE INDEX messages_client_id ON messages (conv_id, sender_id, client_id) WHERE client_id <> '';
			ALTER TABLE sessions DROP COLUMN used_at; -- migration 11's
			ALTER TABLE users DROP COLUMN name_version; -- migration 19's
			DELETE FROM schema_migrations WHERE version >= 7`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = mustOpen(t, path)
	var cols []string
	var plan []string
	if err := db.read(ctx, func(tx *sql.Tx) error {
		var err error
		if cols, err = column(tx, 2, `SELECT seqno, cid, name FROM pragma_index_info('messages_client_id') ORDER BY seqno`); err != nil {
			return err
		}
		plan, err = column(tx, 3, `EXPLAIN QUERY PLAN `+qLookup, r.ID, u.ID, "c-before")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cols, ","); got != "client_id,conv_id,sender_id" {
		t.Errorf("messages_client_id columns = %s; want client_id,conv_id,sender_id", got)
	}
	if got := strings.Join(plan, "; "); !strings.Contains(got, "INDEX messages_client_id") {
		t.Errorf("plan of a retry's lookup = %q; want it to use messages_client_id", got)
	}
	send.Body = "hello again"
	again, created, err := db.Append(ctx, send)
	if err != nil || created || again.Seq != first.Seq || again.Body != "hello" {
		t.Errorf("Append(retry) = seq %d %q, %v, %v; want seq %d \"hello\", not created", again.Seq, again.Body, created, err, first.Seq)
	}
}

// column runs q and returns, as strings, column i (from 0) of each row.
func column(tx *sql.Tx, i int, q string, args ...any) ([]string, error) {
	rows, err := tx.Query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	n, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(n))
		var s sql.NullString
		for j := range vals {
			vals[j] = new(any)
		}
		vals[i] = &s
		if err := rows.Scan(vals...); err != nil {
			return nil, err
		}
		out = append(out, s.String)
	}
	return out, rows.Err()
}
