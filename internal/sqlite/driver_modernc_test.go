//go:build !sqlite_cgo

package sqlite

import (
	"database/sql/driver"

	sqlitedriver "modernc.org/sqlite"
)

// builtDriver reports whether d is the driver this build chose (TestDriver).
func builtDriver(d driver.Driver) bool {
	_, ok := d.(*sqlitedriver.Driver)
	return ok
}
