package postgres

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/chat/chattest"
)

// idnRows are users and login codes stored before internationalized
// domains were folded to Unicode, as chattest.MigratedIDNEmails
// describes them.
const idnRows = `
INSERT INTO users (id, email, name, name_key, created_at) VALUES
	(1, 'ana@xn--bcher-kva.example', 'A', 'a', now()),
	(2, 'bob@xn--bcher-kva.example', 'B', 'b', now()),
	(3, 'bob@bücher.example', 'C', 'c', now()),
	(4, 'cy@bücher.example', 'D', 'd', now());
SELECT setval(pg_get_serial_sequence('users', 'id'), 4);
INSERT INTO login_codes (email, hash, expires_at, attempts) VALUES
	('ana@xn--bcher-kva.example', 'x', now() + interval '1 day', 0),
	('cy@bücher.example', 'y', now() + interval '1 day', 0);
`

// TestMigrateEmailsIDN: migration 10 folds the stored addresses again,
// now with internationalized domains in Unicode, so that a user made with
// the domain's ASCII form signs in with either form.
func TestMigrateEmailsIDN(t *testing.T) {
	url := mustSchema(t)
	ctx := t.Context()
	// A database of version 9: migrated to the latest, then told it was
	// not (migrateTo cannot go past 4, applying no transaction).
	db, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `DELETE FROM schema_migrations WHERE version >= 10`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, idnRows); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	db, err = OpenWith(ctx, url, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	chattest.MigratedIDNEmails(t, db, queryStrings(t, conn, `SELECT id || ' ' || email FROM users ORDER BY id`),
		queryStrings(t, conn, `SELECT email FROM login_codes ORDER BY email`), log.String())
}
