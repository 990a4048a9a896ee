//go:build !sqlite_cgo

package sqlite

import (
	"database/sql"
	"testing"

	sqlitedriver "modernc.org/sqlite"
)

// TestDriver checks that every pool uses the driver the build chose.
func TestDriver(t *testing.T) {
	db := mustOpenDB(t)
	for name, pool := range map[string]*sql.DB{"rw": db.rw, "ro": db.ro, "ck": db.ck} {
		if _, ok := pool.Driver().(*sqlitedriver.Driver); !ok {
			t.Errorf("%s: driver is %T; want modernc.org/sqlite's", name, pool.Driver())
		}
	}
}
