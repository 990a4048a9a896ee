package sqlite

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/chat/chattest"
)

// skelRows are rooms and groups stored before look-alike names were
// refused, by id: "paypal" in Latin, then with Cyrillic р and а, then
// with the digit 1; groups of the same look.
const skelRows = `
INSERT INTO users (id, email, name, name_key, created_at) VALUES (1, 'ada@example.com', 'Ada', 'ada', 1);
INSERT INTO conversations (id, kind, name, name_key, created_at, last_active_at) VALUES
	(1, 'room', 'paypal', 'paypal', 1, 1),
	(2, 'room', '` + "\u0440\u0430ypal" + `', '` + "\u0440\u0430ypal" + `', 2, 2),
	(3, 'room', 'PAYPA1', 'paypa1', 3, 3),
	(4, 'room', 'general', 'general', 4, 4),
	(5, 'group', '` + "\u0420\u0430yPal" + `', '` + "\u0440\u0430ypal" + `', 5, 5),
	(6, 'group', 'PayPal', 'paypal', 6, 6);
INSERT INTO conversations (id, kind, direct_key, created_at, last_active_at) VALUES (7, 'direct', '1:1', 7, 7);
`

// TestMigrateNameSkeletons: migration 12 gives every room and group its
// name's skeleton; of names that already look alike, the oldest keeps it
// and the later ones a key of their own, so none is renamed, and a new
// look-alike is refused as looking like the oldest.
func TestMigrateNameSkeletons(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "parley.db")
	rw := migratedTo(t, path, 11)
	if _, err := rw.ExecContext(ctx, skelRows); err != nil {
		t.Fatal(err)
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	db := mustOpen(t, path)
	chattest.MigratedSkeletons(t, db, dumpSkeletons(t, db))
}

// oldBinaryRows are rooms and groups that a parley from before name_skel
// writes to a migrated database, leaving name_skel NULL: a room that looks
// like the keyed room "paypal" (Cyrillic р and а), a room like no other,
// then one that looks like it; a group that looks like the keyed group
// "Team" (Cyrillic Т, е, а; the skeleton of m is rn), and a group like
// no other.
const oldBinaryRows = `
INSERT INTO conversations (id, kind, name, name_key, created_at, last_active_at) VALUES
	(10, 'room', '` + "\u0440\u0430ypal" + `', '` + "\u0440\u0430ypal" + `', 10, 10),
	(11, 'room', 'hello', 'hello', 11, 11),
	(12, 'room', 'HELL0', 'hell0', 12, 12),
	(13, 'group', '` + "\u0422\u0435\u0430m" + `', '` + "\u0442\u0435\u0430m" + `', 13, 13),
	(14, 'group', 'Crew', 'crew', 14, 14);
`

// TestOpenFillsNameSkeletons: rooms and groups that an older parley made
// in a migrated database, without a skeleton, get one when the store next
// opens, by the migration's rule: the first of look-alikes keeps the
// skeleton, and one whose skeleton is another's, keyed already or before
// it, gets a key of its own; nobody is renamed, and a new look-alike is
// refused.
func TestOpenFillsNameSkeletons(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "parley.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(100, 0)
	if _, err := db.rw.ExecContext(ctx, `INSERT INTO users (id, email, name, name_key, created_at) VALUES (1, 'ada@example.com', 'Ada', 'ada', 1)`); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.EnsureRoom(ctx, "paypal", at); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := db.CreateGroup(ctx, chat.NewGroup{Name: "Team", MaxMembers: 3, OwnerID: 1, At: at}, chat.Event{Type: chat.EventConversation, ConvKind: chat.ConvGroup}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.rw.ExecContext(ctx, oldBinaryRows); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpen(t, path)
	chattest.FilledSkeletons(t, db, dumpSkeletons(t, db))
}

// dumpSkeletons lists the conversations' kind, id, name and name_skel.
func dumpSkeletons(t *testing.T, db *DB) []string {
	t.Helper()
	got, err := queryAll(t.Context(), db.ro, `SELECT kind || ' ' || id || ' ' || name || ' ' || coalesce(name_skel, 'NULL') FROM conversations ORDER BY id`, nil,
		func(r scanner) (string, error) {
			var s string
			return s, r.Scan(&s)
		})
	if err != nil {
		t.Fatal(err)
	}
	return got
}
