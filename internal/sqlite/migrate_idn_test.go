package sqlite

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/parley-chat/parley/internal/chat/chattest"
)

// idnRows are users and login codes stored before internationalized
// domains were folded to Unicode, as chattest.MigratedIDNEmails
// describes them.
const idnRows = `
INSERT INTO users (id, email, name, name_key, created_at) VALUES
	(1, 'ana@xn--bcher-kva.example', 'A', 'a', 1),
	(2, 'bob@xn--bcher-kva.example', 'B', 'b', 2),
	(3, 'bob@bücher.example', 'C', 'c', 3),
	(4, 'cy@bücher.example', 'D', 'd', 4);
INSERT INTO login_codes (email, hash, expires_at, attempts) VALUES
	('ana@xn--bcher-kva.example', 'x', 9000000000000000, 0),
	('cy@bücher.example', 'y', 9000000000000000, 0);
`

// TestMigrateEmailsIDN: migration 17 folds the stored addresses again,
// now with internationalized domains in Unicode, so that a user made with
// the domain's ASCII form signs in with either form.
func TestMigrateEmailsIDN(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "parley.db")
	rw := migratedTo(t, path, 16)
	if _, err := rw.ExecContext(ctx, idnRows); err != nil {
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
	defer db.Close()
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
	chattest.MigratedIDNEmails(t, db, strings(`SELECT id || ' ' || email FROM users ORDER BY id`),
		strings(`SELECT email FROM login_codes ORDER BY email`), log.String())
}
