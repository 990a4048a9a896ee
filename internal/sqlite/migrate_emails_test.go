package sqlite

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/parley-chat/parley/internal/chat/chattest"
)

// emailRows are users and login codes stored before addresses were folded
// to NFC, as chattest.MigratedEmails describes them.
const emailRows = `
INSERT INTO users (id, email, name, name_key, created_at) VALUES
	(1, '` + "cafe\u0301@example.com" + `', 'A', 'a', 1),
	(2, '` + "ze\u0301e@example.org" + `', 'B', 'b', 2),
	(3, '` + "caf\u00e9@example.com" + `', 'C', 'c', 3),
	(4, '` + "o\u0308\u0323@example.net" + `', 'D', 'd', 4),
	(5, '` + "o\u0323\u0308@example.net" + `', 'E', 'e', 5),
	(6, 'ada@example.com', 'Ada', 'ada', 6);
INSERT INTO login_codes (email, hash, expires_at, attempts) VALUES
	('` + "cafe\u0301@example.com" + `', 'x', 9000000000000000, 0),
	('ada@example.com', 'y', 9000000000000000, 0);
`

// TestMigrateEmailsNFC: migration 14 folds the stored addresses, so that
// a user made before signs in with either spelling of theirs, without
// merging or losing an account of one mailbox stored twice.
func TestMigrateEmailsNFC(t *testing.T) {
	db, users, codes, log := migrateEmails(t, 13, emailRows)
	chattest.MigratedEmails(t, db, users, codes, log)
}

// migrateEmails makes a database at migration from, stores rows, and
// opens it, which runs the migrations after from: it returns the store,
// its users ("id email", by id) and login codes' addresses as they are
// then, and what the migrations logged.
func migrateEmails(t *testing.T, from int, rows string) (db *DB, users, codes []string, logged string) {
	t.Helper()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "parley.db")
	rw := migratedTo(t, path, from)
	if _, err := rw.ExecContext(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	db, err := OpenWith(ctx, path, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	strings := func(query string) []string {
		t.Helper()
		got, err := queryAll(ctx, db.ro, query, nil, func(r scanner) (string, error) {
			var s string
			return s, r.Scan(&s)
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	return db, strings(`SELECT id || ' ' || email FROM users ORDER BY id`),
		strings(`SELECT email FROM login_codes ORDER BY email`), log.String()
}
