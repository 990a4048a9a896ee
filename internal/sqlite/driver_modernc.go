//go:build !sqlite_cgo

package sqlite

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"

	sqlitedriver "modernc.org/sqlite"
	sqlitelib "modernc.org/sqlite/lib"
)

// Driver names the SQLite driver this binary was built with.
const Driver = "modernc.org/sqlite (pure Go)"

// openDB opens a pool on name, a file: URI or Memory, whose connections
// are set up as s says: modernc.org/sqlite runs each _pragma of the DSN on
// every new connection, in order.
func openDB(name string, s connSettings) (*sql.DB, error) {
	q := make([]string, 0, len(s.pragmas)+1)
	for _, p := range s.pragmas {
		q = append(q, "_pragma="+p)
	}
	if s.immediate {
		q = append(q, "_txlock=immediate")
	}
	if len(q) > 0 {
		name += "?" + strings.Join(q, "&")
	}
	d := moderncDriver()
	return sql.OpenDB(stmtCacheConnector{connect: func() (driver.Conn, error) { return d.Open(name) }, drv: d}), nil
}

// moderncDriver returns the driver modernc.org/sqlite registers as
// "sqlite" (sql.Open connects nothing).
func moderncDriver() driver.Driver {
	db, err := sql.Open("sqlite", "")
	if err != nil {
		panic(err) // registered by the import: cannot fail
	}
	defer db.Close()
	return db.Driver()
}

// isUniqueViolation reports whether err is a broken UNIQUE or PRIMARY KEY
// constraint.
func isUniqueViolation(err error) bool {
	var e *sqlitedriver.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code() == sqlitelib.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlitelib.SQLITE_CONSTRAINT_PRIMARYKEY
}

// isBusy reports whether err is SQLITE_BUSY, of any extended kind: a lock
// another connection held past the busy timeout.
func isBusy(err error) bool {
	var e *sqlitedriver.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlitelib.SQLITE_BUSY
}
