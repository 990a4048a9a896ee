package sqlite

import (
	"path/filepath"
	"strconv"
	"testing"

	"github.com/parley-chat/parley/internal/chat/chattest"
)

// TestMigrateNameKeysNFC: migration 18 gives every user, room and group
// the key of its name in NFC, so that a room named with a capital that has
// no composed form is found by its name typed in small letters; of two
// rooms that the new keys make one, the older takes the key.
func TestMigrateNameKeysNFC(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "parley.db")
	rw := migratedTo(t, path, 17)
	for _, r := range chattest.NameKeyRows {
		q := `INSERT INTO conversations (id, kind, name, name_key, created_at, last_active_at) VALUES (?, ?, ?, ?, ?, ?)`
		args := []any{r.ID, r.Kind, r.Name, r.Key, r.ID, r.ID}
		if r.Kind == "user" {
			q = `INSERT INTO users (id, email, name, name_key, created_at) VALUES (?, ?, ?, ?, ?)`
			args = []any{r.ID, "u" + strconv.FormatInt(r.ID, 10) + "@example.com", r.Name, r.Key, r.ID}
		}
		if _, err := rw.ExecContext(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	db := mustOpen(t, path)
	chattest.MigratedNameKeys(t, db, storedNames(t, db))
}
