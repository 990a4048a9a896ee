//go:build sqlite_cgo

package sqlite

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// Driver names the SQLite driver this binary was built with.
const Driver = "github.com/mattn/go-sqlite3 (cgo)"

// openDB opens a pool on name, a file: URI or Memory, whose connections
// are set up as s says. go-sqlite3 takes only some pragmas in its DSN, so
// a connect hook runs them all, in order, on every new connection.
func openDB(name string, s connSettings) (*sql.DB, error) {
	pragmas := s.pragmas
	d := &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		for _, p := range pragmas {
			if _, err := c.Exec("PRAGMA "+p, nil); err != nil {
				return fmt.Errorf("PRAGMA %s: %w", p, err)
			}
		}
		return nil
	}}
	if s.immediate {
		name += "?_txlock=immediate"
	}
	// One driver value per pool: each pool has its own connect hook
	// without a driver registered per setting.
	return sql.OpenDB(stmtCacheConnector{connect: func() (driver.Conn, error) { return d.Open(name) }, drv: d}), nil
}

// isUniqueViolation reports whether err is a broken UNIQUE or PRIMARY KEY
// constraint.
func isUniqueViolation(err error) bool {
	var e sqlite3.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.ExtendedCode == sqlite3.ErrConstraintUnique || e.ExtendedCode == sqlite3.ErrConstraintPrimaryKey
}

// isBusy reports whether err is SQLITE_BUSY, of any extended kind: a lock
// another connection held past the busy timeout.
func isBusy(err error) bool {
	var e sqlite3.Error
	return errors.As(err, &e) && e.Code == sqlite3.ErrBusy
}
