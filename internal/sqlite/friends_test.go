package sqlite

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// TestNameKeyBackfill checks that migration 0002 folds the case of names
// stored before it with Go's rules, not SQLite's ASCII-only lower().
func TestNameKeyBackfill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	old, err := openDB("file:"+path, connSettings{})
	if err != nil {
		t.Fatal(err)
	}
	src, err := migrations.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		string(src),
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`,
		`INSERT INTO schema_migrations VALUES (1, 1)`,
		`INSERT INTO users (email, name, created_at) VALUES ('e@example.com', 'ÉMILE', 1), ('v@example.com', 'Viewer', 1)`,
	} {
		if _, err := old.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%.40s: %v", q, err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	db := mustOpen(t, path)
	us, err := db.SearchUsers(t.Context(), chat.UserSearch{NamePrefix: "émi", Viewer: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(us) != 1 || us[0].Name != "ÉMILE" || us[0].CreatedAt != time.UnixMicro(1).UTC() {
		t.Errorf("SearchUsers(émi) after migration = %+v; want ÉMILE", us)
	}
}
