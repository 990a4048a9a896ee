package sqlite

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/parley-chat/parley/internal/chat"
)

// TestMigrateLoginCodesSeveral: migration 16 makes the login_codes table
// anew, for an address to have several codes. A code pending before it
// keeps working, with its tries, and a new code joins it.
func TestMigrateLoginCodesSeveral(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "parley.db")
	rw := migratedTo(t, path, 15)
	expires := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	if _, err := rw.ExecContext(ctx, `INSERT INTO login_codes (email, hash, expires_at, attempts) VALUES
		('ada@example.com', 'old', ?, 2), ('bob@example.com', 'bob', ?, 0)`, micros(expires), micros(expires)); err != nil {
		t.Fatal(err)
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}

	db := mustOpen(t, path)
	if err := db.PutLoginCode(ctx, chat.LoginCode{Email: "ada@example.com", Hash: "new", ExpiresAt: expires.Add(time.Minute)}, 5); err != nil {
		t.Fatal(err)
	}
	cs, err := db.AttemptLoginCodes(ctx, "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(cs, func(a, b chat.LoginCode) int { return strings.Compare(a.Hash, b.Hash) })
	want := []chat.LoginCode{
		{Email: "ada@example.com", Hash: "new", ExpiresAt: expires.Add(time.Minute), Attempts: 1},
		{Email: "ada@example.com", Hash: "old", ExpiresAt: expires, Attempts: 3},
	}
	if diff := cmp.Diff(want, cs); diff != "" {
		t.Errorf("codes of ada after migration 16 (-want +got):\n%s", diff)
	}
	if ok, err := db.UseLoginCode(ctx, "bob@example.com", "bob"); err != nil || !ok {
		t.Errorf("UseLoginCode(bob's code from before migration 16) = %v, %v; want true, nil", ok, err)
	}
}
