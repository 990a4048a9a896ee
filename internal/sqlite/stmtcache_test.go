package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
)

// openCached opens a pool of one connection on a fresh file.
func openCached(t *testing.T) *sql.DB {
	t.Helper()
	db, err := openDB("file:"+filepath.Join(t.TempDir(), "c.db"), connSettings{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	return db
}

// cacheOf returns what db's only connection keeps prepared.
func cacheOf(t *testing.T, db *sql.DB) map[string]*cachedStmt {
	t.Helper()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var m map[string]*cachedStmt
	if err := conn.Raw(func(dc any) error {
		c, ok := dc.(*stmtCacheConn)
		if !ok {
			return fmt.Errorf("driver connection %T does not keep statements", dc)
		}
		m = c.stmts
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestStmtCache: a connection prepares a statement the first time it runs
// it and runs the same prepared statement after, in and out of a
// transaction; a statement run again while its rows are open is prepared
// for that call; a script runs whole; a statement that does not parse
// fails and is not kept; and the connection keeps at most maxCachedStmts.
func TestStmtCache(t *testing.T) {
	ctx := context.Background()
	db := openCached(t)
	const create = `CREATE TABLE t (x INTEGER)`
	if _, err := db.ExecContext(ctx, create); err != nil {
		t.Fatal(err)
	}
	const insert, count = `INSERT INTO t (x) VALUES (?)`, `SELECT count(*) FROM t WHERE x >= ?`
	for i := range 3 {
		if _, err := db.ExecContext(ctx, insert, i); err != nil {
			t.Fatal(err)
		}
	}
	first := cacheOf(t, db)[insert]
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, insert, 3); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	m := cacheOf(t, db)
	if first == nil || m[insert] != first || first.busy {
		t.Errorf("insert kept as %+v, then %+v; want one statement, kept and free", first, m[insert])
	}

	// The same query inside the loop over its own rows, on the one
	// connection of the transaction.
	var got []int
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	outer, err := tx.QueryContext(ctx, count, 0)
	if err != nil {
		t.Fatal(err)
	}
	for outer.Next() {
		var n int
		if err := outer.Scan(&n); err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
		if err := tx.QueryRowContext(ctx, count, 2).Scan(&n); err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
	}
	if err := outer.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[4 2]" {
		t.Errorf("counts = %v; want [4 2]", got)
	}
	if cs := cacheOf(t, db)[count]; cs == nil || cs.busy {
		t.Errorf("count kept as %+v; want kept and free", cs)
	}

	// A script runs every statement in it, and is not kept.
	if _, err := db.ExecContext(ctx, `CREATE TABLE a (x INTEGER); CREATE TABLE b (y INTEGER);`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO b (y) VALUES (1)`); err != nil {
		t.Errorf("the script's second statement did not run: %v", err)
	}

	if _, err := db.ExecContext(ctx, `INSERT INTO nowhere VALUES (1)`); err == nil {
		t.Error("a statement on a missing table ran")
	}
	if _, ok := cacheOf(t, db)[`INSERT INTO nowhere VALUES (1)`]; ok {
		t.Error("a statement that failed to prepare was kept")
	}

	for i := range maxCachedStmts + 10 {
		if _, err := db.ExecContext(ctx, fmt.Sprintf(`SELECT %d`, i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(cacheOf(t, db)); n != maxCachedStmts {
		t.Errorf("connection keeps %d statements; want at most %d", n, maxCachedStmts)
	}
}
