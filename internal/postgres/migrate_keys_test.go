package postgres

import (
	"strconv"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat/chattest"
)

// TestMigrateNameKeysNFC: migration 11 gives every user, room and group
// the key of its name in NFC, so that a room named with a capital that has
// no composed form is found by its name typed in small letters; of two
// rooms that the new keys make one, the older takes the key.
func TestMigrateNameKeysNFC(t *testing.T) {
	url := mustSchema(t)
	conn := migrateTo(t, url, 4) // migrateTo runs no transaction, which 0005 needs
	ctx := t.Context()
	for _, r := range chattest.NameKeyRows {
		at := time.Unix(r.ID, 0)
		q := `INSERT INTO conversations (id, kind, name, name_key, created_at, last_active_at) VALUES ($1, $2, $3, $4, $5, $5)`
		args := []any{r.ID, r.Kind, r.Name, r.Key, at}
		if r.Kind == "user" {
			q = `INSERT INTO users (id, email, name, name_key, created_at) VALUES ($1, $2, $3, $4, $5)`
			args = []any{r.ID, "u" + strconv.FormatInt(r.ID, 10) + "@example.com", r.Name, r.Key, at}
		}
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	db := mustOpen(t, url)
	chattest.MigratedNameKeys(t, db, queryStrings(t, conn, `SELECT 'user ' || id || ' ' || name || ' ' || name_key FROM users
		UNION ALL SELECT kind || ' ' || id || ' ' || name || ' ' || name_key FROM conversations ORDER BY 1`))
}
