package postgres

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/parley-chat/parley/internal/chat/chattest"
)

// emailRows are users and login codes stored before addresses were folded
// to NFC, as chattest.MigratedEmails describes them.
const emailRows = `
INSERT INTO users (id, email, name, name_key, created_at) VALUES
	(1, '` + "cafe\u0301@example.com" + `', 'A', 'a', now()),
	(2, '` + "ze\u0301e@example.org" + `', 'B', 'b', now()),
	(3, '` + "caf\u00e9@example.com" + `', 'C', 'c', now()),
	(4, '` + "o\u0308\u0323@example.net" + `', 'D', 'd', now()),
	(5, '` + "o\u0323\u0308@example.net" + `', 'E', 'e', now()),
	(6, 'ada@example.com', 'Ada', 'ada', now());
SELECT setval(pg_get_serial_sequence('users', 'id'), 6);
INSERT INTO login_codes (email, hash, expires_at, attempts) VALUES
	('` + "cafe\u0301@example.com" + `', 'x', now() + interval '1 day', 0),
	('ada@example.com', 'y', now() + interval '1 day', 0);
`

// TestMigrateEmailsNFC: migration 8 (run from version 4) folds the stored addresses, so that
// a user made before signs in with either spelling of theirs, without
// merging or losing an account of one mailbox stored twice.
func TestMigrateEmailsNFC(t *testing.T) {
	url := mustSchema(t)
	conn := migrateTo(t, url, 4) // migrateTo runs no transaction, which 0005 needs
	ctx := t.Context()
	if _, err := conn.Exec(ctx, emailRows); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	db, err := OpenWith(ctx, url, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	chattest.MigratedEmails(t, db, queryStrings(t, conn, `SELECT id || ' ' || email FROM users ORDER BY id`),
		queryStrings(t, conn, `SELECT email FROM login_codes ORDER BY email`), log.String())
}

// TestUpgradeEmailsNFCOldNodeMakesUser: a node of the older parley signs
// up "zée@example.org", composed, while a newer node migrates a database
// that holds user 2 under the same address decomposed. The migration waits
// for it, and the user made meanwhile keeps the address; user 2 keeps
// its own, and the migration does not fail on the address taken under it.
func TestUpgradeEmailsNFCOldNodeMakesUser(t *testing.T) {
	url := mustSchema(t)
	conn := migrateTo(t, url, 4) // migrateTo runs no transaction, which 0005 needs
	ctx := t.Context()
	if _, err := conn.Exec(ctx, emailRows); err != nil {
		t.Fatal(err)
	}
	tx := oldNodeTx(t, url)
	// EnsureUser as the older parley ran it.
	if _, err := tx.Exec(ctx, `INSERT INTO users (id, email, created_at) VALUES (100, $1, now())
		ON CONFLICT (email) DO NOTHING`, "z\u00e9e@example.org"); err != nil {
		t.Fatal(err)
	}

	openBehind(t, url, conn, "", func() {
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	})
	got := queryStrings(t, conn, `SELECT id || ' ' || email FROM users WHERE id IN (2, 100) ORDER BY id`)
	want := []string{"2 ze\u0301e@example.org", "100 z\u00e9e@example.org"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("users after the migration mismatch (-want +got):\n%s", diff)
	}
}
