//go:build sqlite_cgo

package sqlite

import (
	"database/sql"
	"testing"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// TestDriver checks that every pool uses the driver the build chose.
func TestDriver(t *testing.T) {
	db := mustOpenDB(t)
	for name, pool := range map[string]*sql.DB{"rw": db.rw, "ro": db.ro, "ck": db.ck} {
		if _, ok := pool.Driver().(*sqlite3.SQLiteDriver); !ok {
			t.Errorf("%s: driver is %T; want github.com/mattn/go-sqlite3's", name, pool.Driver())
		}
	}
}
