package postgres

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/chat/chattest"
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
	chattest.MigratedSkeletons(t, db, dumpSkeletons(t, conn))
}

// oldBinaryRows are rooms and groups that a node of a parley from before
// name_skel makes beside upgraded ones, leaving name_skel NULL: a room
// that looks like the keyed room "paypal" (Cyrillic р and а), a room like
// no other, then one that looks like it; a group that looks like the keyed
// group "Team" (Cyrillic Т, е, а; the skeleton of m is rn), and a group
// like no other.
const oldBinaryRows = `
INSERT INTO conversations (id, kind, name, name_key, created_at, last_active_at) VALUES
	(10, 'room', '` + "\u0440\u0430ypal" + `', '` + "\u0440\u0430ypal" + `', now(), now()),
	(11, 'room', 'hello', 'hello', now(), now()),
	(12, 'room', 'HELL0', 'hell0', now(), now()),
	(13, 'group', '` + "\u0422\u0435\u0430m" + `', '` + "\u0442\u0435\u0430m" + `', now(), now()),
	(14, 'group', 'Crew', 'crew', now(), now());
`

// withOldBinaryRows opens the store at url, makes room 1 "paypal" and
// group 2 "Team" through it, and adds oldBinaryRows through conn, as a
// node of the older parley would.
func withOldBinaryRows(t *testing.T, url string, conn *pgx.Conn) *DB {
	t.Helper()
	ctx := t.Context()
	db := mustOpen(t, url)
	at := time.Unix(100, 0)
	if _, err := conn.Exec(ctx, `INSERT INTO users (id, email, name, name_key, created_at) VALUES (1, 'ada@example.com', 'Ada', 'ada', now())`); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.EnsureRoom(ctx, "paypal", at); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := db.CreateGroup(ctx, chat.NewGroup{Name: "Team", MaxMembers: 3, OwnerID: 1, At: at}, chat.Event{Type: chat.EventConversation, ConvKind: chat.ConvGroup}); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, oldBinaryRows); err != nil {
		t.Fatal(err)
	}
	return db
}

// dumpSkeletons lists the conversations' kind, id, name and name_skel.
func dumpSkeletons(t *testing.T, conn *pgx.Conn) []string {
	return queryStrings(t, conn, `SELECT kind || ' ' || id || ' ' || name || ' ' || coalesce(name_skel, 'NULL') FROM conversations ORDER BY id`)
}

func mustConnect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestOpenFillsNameSkeletons: rooms and groups that a node of an older
// parley made after the migration, without a skeleton, get one when a
// node next opens the store, by the migration's rule: the first of
// look-alikes keeps the skeleton, and one whose skeleton is another's,
// keyed already or before it, gets a key of its own; nobody is renamed,
// and every node then refuses a new look-alike.
func TestOpenFillsNameSkeletons(t *testing.T) {
	url := mustSchema(t)
	conn := mustConnect(t, url)
	running := withOldBinaryRows(t, url, conn)
	mustOpen(t, url) // the next node to start
	chattest.FilledSkeletons(t, running, dumpSkeletons(t, conn))
}

// TestOpenFillsNameSkeletonsAtOnce: nodes that start at once all open
// the store, and the skeletons they fill are those one would.
func TestOpenFillsNameSkeletonsAtOnce(t *testing.T) {
	url := mustSchema(t)
	conn := mustConnect(t, url)
	withOldBinaryRows(t, url, conn)
	const nodes = 4
	errs := make(chan error, nodes)
	for range nodes {
		go func() {
			db, err := Open(t.Context(), url)
			if err == nil {
				err = db.Close()
			}
			errs <- err
		}()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Errorf("Open: %v", err)
		}
	}
	if diff := cmp.Diff(chattest.FilledKeys, dumpSkeletons(t, conn)); diff != "" {
		t.Errorf("conversations after the nodes opened mismatch (-want +got):\n%s", diff)
	}
}

// TestOpenFillsNameSkeletonsRace: a room that an upgraded node makes
// while another node fills the skeletons, with the skeleton the filling
// would give an older room ("he11o" beside "hello", which has none), keeps
// it; the older room gets a key of its own, and the node opens.
func TestOpenFillsNameSkeletonsRace(t *testing.T) {
	url := mustSchema(t)
	conn := mustConnect(t, url)
	ctx := t.Context()
	mustOpen(t, url)
	if _, err := conn.Exec(ctx, `INSERT INTO conversations (id, kind, name, name_key, created_at, last_active_at)
		VALUES (10, 'room', 'hello', 'hello', now(), now())`); err != nil {
		t.Fatal(err)
	}
	// The upgraded node's insert, not yet committed.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `INSERT INTO conversations (id, kind, name, name_key, name_skel, created_at, last_active_at)
		VALUES (11, 'room', 'he11o', 'he11o', $1, now(), now())`, chat.NameSkeleton("he11o")); err != nil {
		t.Fatal(err)
	}
	app := "parley_fill_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	opened := make(chan error, 1)
	go func() {
		db, err := Open(ctx, url+"&application_name="+app)
		if err == nil {
			err = db.Close()
		}
		opened <- err
	}()
	// Wait until the filling waits for the insert, then commit it.
	watch := mustConnect(t, url)
	for waiting := false; !waiting; {
		select {
		case err := <-opened:
			t.Fatalf("Open returned %v before the insert it should wait for was committed", err)
		case <-time.After(10 * time.Millisecond):
		}
		if err := watch.QueryRow(ctx, `SELECT count(*) > 0 FROM pg_stat_activity
			WHERE application_name = $1 AND wait_event_type = 'Lock'`, app).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-opened; err != nil {
		t.Fatalf("Open: %v", err)
	}
	want := []string{
		"room 10 hello hello\x1f#10",
		"room 11 he11o hello",
	}
	if diff := cmp.Diff(want, dumpSkeletons(t, conn)); diff != "" {
		t.Errorf("conversations mismatch (-want +got):\n%s", diff)
	}
}
