package sqlite

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/chat/chattest"
)

// nfcRows are rooms, a group and users stored before names were taken in
// NFC, by id: conjoining Hangul jamo, U+212B ANGSTROM SIGN, a CJK
// compatibility ideograph, two decomposed spellings of one name.
const nfcRows = `
INSERT INTO users (id, email, name, name_key, created_at) VALUES
	(1, 'ha@example.com', '` + "\u1112\u1161\u11ab" + `', '` + "\u1112\u1161\u11ab" + `', 1),
	(2, 'ada@example.com', 'Ada', 'ada', 1);
INSERT INTO conversations (id, kind, name, name_key, created_at, last_active_at) VALUES
	(1, 'room', '` + "\u1112\u1161\u11ab\u1100\u1173\u11af" + `', '` + "\u1112\u1161\u11ab\u1100\u1173\u11af" + `', 1, 1),
	(2, 'room', '` + "\u212b" + `', '` + "\u00e5" + `', 2, 2),
	(3, 'room', '` + "A\u030a" + `', '` + "a\u030a" + `', 3, 3),
	(4, 'room', '` + "\uf900" + `', '` + "\uf900" + `', 4, 4),
	(5, 'room', '` + "\u8c48" + `', '` + "\u8c48" + `', 5, 5),
	(6, 'room', '` + "E\u0301te\u0301" + `', '` + "e\u0301te\u0301" + `', 6, 6),
	(7, 'room', '` + "\u00e9te\u0301" + `', '` + "\u00e9te\u0301" + `', 7, 7),
	(8, 'group', '` + "Cafe\u0301" + `', '` + "cafe\u0301" + `', 8, 8),
	(9, 'room', '` + "caf\u00e9" + `', '` + "caf\u00e9" + `', 9, 9);
`

// TestMigrateNamesNFC: rooms, groups and users stored with names that NFC
// changes are renamed to NFC, so the rooms are found by name again.
func TestMigrateNamesNFC(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "parley.db")
	rw := migratedTo(t, path, 9)
	if _, err := rw.ExecContext(ctx, nfcRows); err != nil {
		t.Fatal(err)
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	db := mustOpen(t, path)
	chattest.MigratedNamesNFC(t, db, storedNames(t, db))
}

// storedNames returns the users and conversations of db, one
// "user id name name_key" or "kind id name name_key" a row, sorted.
func storedNames(t *testing.T, db *DB) []string {
	t.Helper()
	got, err := queryAll(t.Context(), db.ro, `SELECT 'user ' || id || ' ' || name || ' ' || name_key FROM users
		UNION ALL SELECT kind || ' ' || id || ' ' || name || ' ' || name_key FROM conversations ORDER BY 1`, nil,
		func(r scanner) (string, error) {
			var s string
			return s, r.Scan(&s)
		})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestMigrateNamesNFCFailsWhole: when renaming a room fails (here a
// trigger refuses it), the migration's Go part leaves nothing behind: the
// users it renamed first keep their old names, and the version stays 9.
func TestMigrateNamesNFCFailsWhole(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "parley.db")
	rw := migratedTo(t, path, 9)
	for _, q := range []string{nfcRows, `CREATE TRIGGER no_rename BEFORE UPDATE OF name ON conversations
		BEGIN SELECT RAISE(ABORT, 'no rename'); END`} {
		if _, err := rw.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(ctx, path); err == nil {
		db.Close()
		t.Fatal("Open succeeded; want migration 0010 to fail")
	} else if !strings.Contains(err.Error(), "0010_names_nfc.sql") || !strings.Contains(err.Error(), "no rename") {
		t.Errorf("Open = %v; want it to name 0010_names_nfc.sql and the trigger's refusal", err)
	}
	rw, err := openDB("file:"+path, writeConn(SyncNormal))
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	var version int
	var name string
	if err := rw.QueryRowContext(ctx, `SELECT (SELECT max(version) FROM schema_migrations), (SELECT name FROM users WHERE id = 1)`).Scan(&version, &name); err != nil {
		t.Fatal(err)
	}
	if version != 9 || name != "\u1112\u1161\u11ab" {
		t.Errorf("after the failed migration: version %d, user 1 named %+q; want 9 and the name as it was", version, name)
	}
}
