//go:build sqlite_cgo

package sqlite

import (
	"context"
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
	return sql.OpenDB(connector{d, name}), nil
}

// connector opens connections to one DSN with one driver value, so that
// each pool has its own connect hook without a driver registered per
// setting.
type connector struct {
	d   *sqlite3.SQLiteDriver
	dsn string
}

func (c connector) Connect(context.Context) (driver.Conn, error) { return c.d.Open(c.dsn) }
func (c connector) Driver() driver.Driver                        { return c.d }

// isUniqueViolation reports whether err is a broken UNIQUE or PRIMARY KEY
// constraint.
func isUniqueViolation(err error) bool {
	var e sqlite3.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.ExtendedCode == sqlite3.ErrConstraintUnique || e.ExtendedCode == sqlite3.ErrConstraintPrimaryKey
}
