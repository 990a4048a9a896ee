package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestMigrationFailsWhole: a migration that fails after some of its
// statements ran (here 0006's CREATE TRIGGER, on a trigger of that name
// already there, after its ALTER TABLE and UPDATE) leaves the database as
// it was, with nothing recorded, and Open names the migration; once the
// cause is gone, the next Open applies it.
func TestMigrationFailsWhole(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "parley.db")
	rw := migratedTo(t, path, 5)
	if _, err := rw.ExecContext(ctx, `CREATE TRIGGER members_count_insert AFTER INSERT ON members BEGIN SELECT 1; END`); err != nil {
		t.Fatal(err)
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(ctx, path); err == nil {
		db.Close()
		t.Fatal("Open succeeded; want migration 0006 to fail")
	} else if !strings.Contains(err.Error(), "0006_member_count.sql") {
		t.Errorf("Open = %v; want it to name 0006_member_count.sql", err)
	}
	rw, err := openDB("file:"+path, writeConn(SyncNormal))
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	var version, cols int
	if err := rw.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if err := rw.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('conversations') WHERE name = 'member_count'`).Scan(&cols); err != nil {
		t.Fatal(err)
	}
	if version != 5 || cols != 0 {
		t.Errorf("after the failed migration: version %d, member_count columns %d; want 5 and 0", version, cols)
	}
	if _, err := rw.ExecContext(ctx, `DROP TRIGGER members_count_insert`); err != nil {
		t.Fatal(err)
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, path)
}
