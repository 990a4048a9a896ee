//go:build sqlite_cgo

package sqlite

import (
	"database/sql/driver"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// builtDriver reports whether d is the driver this build chose (TestDriver).
func builtDriver(d driver.Driver) bool {
	_, ok := d.(*sqlite3.SQLiteDriver)
	return ok
}
