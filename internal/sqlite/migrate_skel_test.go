package sqlite

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/parley-chat/parley/internal/chat"
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
	at := time.Unix(100, 0)
	got, err := queryAll(ctx, db.ro, `SELECT kind || ' ' || id || ' ' || name || ' ' || coalesce(name_skel, 'NULL') FROM conversations ORDER BY id`, nil,
		func(r scanner) (string, error) {
			var s string
			return s, r.Scan(&s)
		})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"room 1 paypal paypal",
		"room 2 \u0440\u0430ypal paypal\x1f#2",
		"room 3 PAYPA1 paypal\x1f#3",
		"room 4 general general",
		"group 5 \u0420\u0430yPal paypal",
		"group 6 PayPal paypal\x1f#6",
		"direct 7  NULL",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("conversations after the migration mismatch (-want +got):\n%s", diff)
	}
	// Every room is found by its name as before.
	for name, id := range map[string]int64{"PayPal": 1, "\u0440\u0430ypal": 2, "paypa1": 3} {
		if r, err := db.EnsureRoom(ctx, name, at); err != nil || r.ID != id {
			t.Errorf("EnsureRoom(%+q) = room %d, %v; want room %d", name, r.ID, err, id)
		}
	}
	var e *chat.LookAlikeError
	if _, err := db.EnsureRoom(ctx, "p\u0430yp\u0430l", at); !errors.As(err, &e) || e.Name != "paypal" {
		t.Errorf("EnsureRoom(new look-alike) = %v; want a LookAlikeError naming paypal", err)
	}
	if _, _, err := db.CreateGroup(ctx, chat.NewGroup{Name: "P\u0430yp\u0430l", MaxMembers: 3, OwnerID: 1, At: at}); !errors.As(err, &e) || e.Name != "\u0420\u0430yPal" {
		t.Errorf("CreateGroup(new look-alike) = %v; want a LookAlikeError naming group 5", err)
	}
	if _, _, err := db.CreateGroup(ctx, chat.NewGroup{Name: "PAYPAL", MaxMembers: 3, OwnerID: 1, At: at}); !errors.Is(err, chat.ErrNameTaken) {
		t.Errorf("CreateGroup(PAYPAL) = %v; want ErrNameTaken (group 6)", err)
	}
	// A later look-alike keeps its name, but is renamed only to a name
	// that looks like no other group's, as any group is.
	if _, _, err := db.RenameGroup(ctx, 6, "PAYPAL", 1, at); !errors.As(err, &e) || e.Name != "\u0420\u0430yPal" {
		t.Errorf("RenameGroup(6, PAYPAL) = %v; want a LookAlikeError naming group 5", err)
	}
	if _, changed, err := db.RenameGroup(ctx, 6, "Pay Pal fans", 1, at); err != nil || !changed {
		t.Errorf("RenameGroup(6, Pay Pal fans) = %v, %v; want renamed", changed, err)
	}
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
	if _, err := db.EnsureRoom(ctx, "paypal", at); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.CreateGroup(ctx, chat.NewGroup{Name: "Team", MaxMembers: 3, OwnerID: 1, At: at}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.rw.ExecContext(ctx, oldBinaryRows); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpen(t, path)
	got, err := queryAll(ctx, db.ro, `SELECT kind || ' ' || id || ' ' || name || ' ' || coalesce(name_skel, 'NULL') FROM conversations ORDER BY id`, nil,
		func(r scanner) (string, error) {
			var s string
			return s, r.Scan(&s)
		})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"room 1 paypal paypal",
		"group 2 Team tearn",
		"room 10 \u0440\u0430ypal paypal\x1f#10",
		"room 11 hello hello",
		"room 12 HELL0 hello\x1f#12",
		"group 13 \u0422\u0435\u0430m tearn\x1f#13",
		"group 14 Crew crew",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("conversations after reopening mismatch (-want +got):\n%s", diff)
	}
	var e *chat.LookAlikeError
	for name, other := range map[string]string{"he11o": "hello", "p\u0430yp\u0430l": "paypal"} {
		if _, err := db.EnsureRoom(ctx, name, at); !errors.As(err, &e) || e.Name != other {
			t.Errorf("EnsureRoom(%+q) = %v; want a LookAlikeError naming %q", name, err, other)
		}
	}
	if _, _, err := db.CreateGroup(ctx, chat.NewGroup{Name: "\u0421rew", MaxMembers: 3, OwnerID: 1, At: at}); !errors.As(err, &e) || e.Name != "Crew" {
		t.Errorf("CreateGroup(Cyrillic Сrew) = %v; want a LookAlikeError naming Crew", err)
	}
}
