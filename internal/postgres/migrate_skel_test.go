package postgres

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/parley-chat/parley/internal/chat"
)

// skelRows are rooms and groups stored before look-alike names were
// refused, by id: "paypal" in Latin, then with Cyrillic р and а, then
// with the digit 1; groups of the same look.
const skelRows = `
INSERT INTO users (id, email, name, name_key, created_at) VALUES (1, 'ada@example.com', 'Ada', 'ada', now());
INSERT INTO conversations (id, kind, name, name_key, created_at, last_active_at) VALUES
	(1, 'room', 'paypal', 'paypal', now(), now()),
	(2, 'room', '` + "\u0440\u0430ypal" + `', '` + "\u0440\u0430ypal" + `', now(), now()),
	(3, 'room', 'PAYPA1', 'paypa1', now(), now()),
	(4, 'room', 'general', 'general', now(), now()),
	(5, 'group', '` + "\u0420\u0430yPal" + `', '` + "\u0440\u0430ypal" + `', now(), now()),
	(6, 'group', 'PayPal', 'paypal', now(), now());
INSERT INTO conversations (id, kind, direct_key, created_at, last_active_at) VALUES (7, 'direct', '1:1', now(), now());
`

// TestMigrateNameSkeletons: migration 7 (run from version 4) gives every room and group its
// name's skeleton; of names that already look alike, the oldest keeps it
// and the later ones a key of their own, so none is renamed, and a new
// look-alike is refused as looking like the oldest.
func TestMigrateNameSkeletons(t *testing.T) {
	url := mustSchema(t)
	conn := migrateTo(t, url, 4) // migrateTo runs no transaction, which 0005 needs
	ctx := t.Context()
	if _, err := conn.Exec(ctx, skelRows); err != nil {
		t.Fatal(err)
	}
	db := mustOpen(t, url)
	rows, err := conn.Query(ctx, `SELECT kind || ' ' || id || ' ' || name || ' ' || coalesce(name_skel, 'NULL') FROM conversations ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
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
	at := time.Unix(100, 0)
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
