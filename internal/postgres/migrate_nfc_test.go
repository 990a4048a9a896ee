package postgres

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/parley-chat/parley/internal/chat/chattest"
)

// nfcRows are rooms, a group and users stored before names were taken in
// NFC, by id: conjoining Hangul jamo, U+212B ANGSTROM SIGN, a CJK
// compatibility ideograph, two decomposed spellings of one name.
const nfcRows = `
INSERT INTO users (id, email, name, name_key, created_at) VALUES
	(1, 'ha@example.com', '` + "\u1112\u1161\u11ab" + `', '` + "\u1112\u1161\u11ab" + `', now()),
	(2, 'ada@example.com', 'Ada', 'ada', now());
INSERT INTO conversations (id, kind, name, name_key, created_at, last_active_at) VALUES
	(1, 'room', '` + "\u1112\u1161\u11ab\u1100\u1173\u11af" + `', '` + "\u1112\u1161\u11ab\u1100\u1173\u11af" + `', now(), now()),
	(2, 'room', '` + "\u212b" + `', '` + "\u00e5" + `', now(), now()),
	(3, 'room', '` + "A\u030a" + `', '` + "a\u030a" + `', now(), now()),
	(4, 'room', '` + "\uf900" + `', '` + "\uf900" + `', now(), now()),
	(5, 'room', '` + "\u8c48" + `', '` + "\u8c48" + `', now(), now()),
	(6, 'room', '` + "E\u0301te\u0301" + `', '` + "e\u0301te\u0301" + `', now(), now()),
	(7, 'room', '` + "\u00e9te\u0301" + `', '` + "\u00e9te\u0301" + `', now(), now()),
	(8, 'group', '` + "Cafe\u0301" + `', '` + "cafe\u0301" + `', now(), now()),
	(9, 'room', '` + "caf\u00e9" + `', '` + "caf\u00e9" + `', now(), now());
`

// dumpNames lists every user's and conversation's id, name and key.
func dumpNames(t *testing.T, conn *pgx.Conn) []string {
	return queryStrings(t, conn, `SELECT 'user ' || id || ' ' || name || ' ' || name_key FROM users
		UNION ALL SELECT kind || ' ' || id || ' ' || name || ' ' || name_key FROM conversations ORDER BY 1`)
}

// queryStrings returns the rows of a query of one text column.
func queryStrings(t *testing.T, conn *pgx.Conn, query string) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), query)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestMigrateNamesNFC: rooms, groups and users stored with names that NFC
// changes are renamed to NFC, so the rooms are found by name again.
func TestMigrateNamesNFC(t *testing.T) {
	url, conn := nfcSchema(t)
	db := mustOpen(t, url)
	chattest.MigratedNamesNFC(t, db, dumpNames(t, conn))
}

// TestUpgradeNamesNFCOldNodeMakesRoom: a node of the older parley makes
// the room "한글", composed, while a newer node migrates a database that
// holds room 1 under the same name in conjoining jamo. The migration
// waits for it, and the room made meanwhile keeps the name it was given;
// room 1 takes a suffix, and the migration does not fail on the name
// taken under it.
func TestUpgradeNamesNFCOldNodeMakesRoom(t *testing.T) {
	url, conn := nfcSchema(t)
	ctx := t.Context()
	tx := oldNodeTx(t, url)
	// EnsureRoom as the older parley ran it.
	if _, err := tx.Exec(ctx, `INSERT INTO conversations (id, kind, name, name_key, created_at, last_active_at)
		VALUES (100, 'room', $1, $1, now(), now()) ON CONFLICT (kind, name_key) DO NOTHING`, "\ud55c\uae00"); err != nil {
		t.Fatal(err)
	}

	openBehind(t, url, conn, "", func() {
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	})
	got := strings.Join(dumpNames(t, conn), "\n")
	for _, want := range []string{"room 1 \ud55c\uae00-2 \ud55c\uae00-2", "room 100 \ud55c\uae00 \ud55c\uae00"} {
		if !strings.Contains(got, want) {
			t.Errorf("names after the migration:\n%s\nwant a line %q", got, want)
		}
	}
}

// TestUpgradeNamesNFCOldNodeRenamesUser: a node of the older parley
// renames user 1, whose name is stored in conjoining jamo, while a newer
// node migrates. The new name stays: the migration does not write back
// the NFC form of the name it read before the rename committed.
func TestUpgradeNamesNFCOldNodeRenamesUser(t *testing.T) {
	url, conn := nfcSchema(t)
	ctx := t.Context()
	tx := oldNodeTx(t, url)
	// SetUserName as the older parley ran it.
	if _, err := tx.Exec(ctx, `UPDATE users SET name = $1, name_key = $2 WHERE id = $3`, "Hanna", "hanna", 1); err != nil {
		t.Fatal(err)
	}

	openBehind(t, url, conn, "users", func() {
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	})
	got := queryStrings(t, conn, `SELECT name || ' ' || name_key FROM users WHERE id = 1`)
	if diff := cmp.Diff([]string{"Hanna hanna"}, got); diff != "" {
		t.Errorf("user 1 renamed by an older node during the migration mismatch (-want +got):\n%s", diff)
	}
}

// TestMigrateNamesNFCFailsWhole: when renaming a room fails (here a
// trigger refuses it), the migration's Go part leaves nothing behind: the
// users it renamed first keep their old names, and the version stays 4.
func TestMigrateNamesNFCFailsWhole(t *testing.T) {
	url := mustSchema(t)
	conn := migrateTo(t, url, 4)
	ctx := t.Context()
	for _, q := range []string{nfcRows,
		`CREATE FUNCTION no_rename() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no rename'; END $$`,
		`CREATE TRIGGER no_rename BEFORE UPDATE OF name ON conversations FOR EACH ROW EXECUTE FUNCTION no_rename()`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if db, err := Open(ctx, url); err == nil {
		db.Close()
		t.Fatal("Open succeeded; want migration 0005 to fail")
	} else if !strings.Contains(err.Error(), "0005_names_nfc.sql") || !strings.Contains(err.Error(), "no rename") {
		t.Errorf("Open = %v; want it to name 0005_names_nfc.sql and the trigger's refusal", err)
	}
	var version int
	var name string
	if err := conn.QueryRow(ctx, `SELECT (SELECT max(version) FROM schema_migrations), (SELECT name FROM users WHERE id = 1)`).Scan(&version, &name); err != nil {
		t.Fatal(err)
	}
	if version != 4 || name != "\u1112\u1161\u11ab" {
		t.Errorf("after the failed migration: version %d, user 1 named %+q; want 4 and the name as it was", version, name)
	}
	if _, err := conn.Exec(ctx, `DROP TRIGGER no_rename ON conversations`); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, url)
}

// nfcSchema is a schema at migration 4 holding nfcRows, and a connection
// to it.
func nfcSchema(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	url := mustSchema(t)
	conn := migrateTo(t, url, 4)
	if _, err := conn.Exec(t.Context(), nfcRows); err != nil {
		t.Fatal(err)
	}
	return url, conn
}
