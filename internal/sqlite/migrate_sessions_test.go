package sqlite

import (
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/parley-chat/parley/internal/chat"
)

// TestMigrateSessionIDs: migration 15 makes the sessions table anew, with
// AUTOINCREMENT. A database of version 14 keeps every session with its ID
// and columns, signs in with them still, and deleting a user still
// deletes theirs; the ID of a deleted newest session is not given again.
func TestMigrateSessionIDs(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "parley.db")
	rw := migratedTo(t, path, 14)
	for _, q := range []string{
		`INSERT INTO users (id, email, name, name_key, created_at) VALUES (1, 'ada@example.com', 'Ada', 'ada', 1), (2, 'bob@example.com', 'Bob', 'bob', 1)`,
		`INSERT INTO sessions (id, user_id, token_hash, created_at, expires_at, used_at) VALUES
			(3, 1, 'h3', 10, 9000000000000000, 11), (7, 2, 'h7', 20, 9000000000000000, 21), (9, 1, 'h9', 30, 9000000000000000, 31)`,
	} {
		if _, err := rw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}

	db := mustOpen(t, path)
	var got []string
	for _, h := range []string{"h3", "h7", "h9"} {
		s, u, err := db.Session(ctx, h)
		if err != nil {
			t.Fatalf("Session(%s): %v", h, err)
		}
		got = append(got, s.TokenHash+" "+u.Email+" "+s.CreatedAt.Format(time.RFC3339Nano)+" "+s.UsedAt.Format(time.RFC3339Nano))
		if want := map[string]int64{"h3": 3, "h7": 7, "h9": 9}[h]; s.ID != want {
			t.Errorf("Session(%s).ID = %d; want %d", h, s.ID, want)
		}
	}
	us := func(n int64) string { return time.UnixMicro(n).UTC().Format(time.RFC3339Nano) }
	want := []string{
		"h3 ada@example.com " + us(10) + " " + us(11),
		"h7 bob@example.com " + us(20) + " " + us(21),
		"h9 ada@example.com " + us(30) + " " + us(31),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sessions after migration 15 (-want +got):\n%s", diff)
	}
	if err := db.DeleteSession(ctx, 9); err != nil {
		t.Fatal(err)
	}
	s, err := db.CreateSession(ctx, chat.Session{UserID: 2, TokenHash: "new", CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if s.ID <= 9 {
		t.Errorf("a session made after the newest, 9, was deleted has ID %d; want one never given", s.ID)
	}
	if err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = 1`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Session(ctx, "h3"); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("Session(h3) of a deleted user = %v; want ErrNotFound", err)
	}
}
