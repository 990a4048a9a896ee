package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/chat/chattest"
)

// mustOpenDB opens a new database file in a temporary directory and closes
// it at the end of the test.
func mustOpenDB(tb testing.TB) *DB {
	tb.Helper()
	return mustOpen(tb, filepath.Join(tb.TempDir(), "parley.db"))
}

func mustOpen(tb testing.TB, path string) *DB {
	tb.Helper()
	db, err := Open(context.Background(), path)
	if err != nil {
		tb.Fatalf("Open(%q): %v", path, err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return db
}

func TestStore(t *testing.T) {
	chattest.TestStore(t, func(t *testing.T) chat.Store { return mustOpenDB(t) })
}

func TestStoreMemory(t *testing.T) {
	chattest.TestStore(t, func(t *testing.T) chat.Store { return mustOpen(t, Memory) })
}

func TestPragmas(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	for _, tt := range []struct {
		db     string
		pragma string
		want   string
	}{
		{"rw", "journal_mode", "wal"},
		{"rw", "synchronous", "1"},
		{"rw", "foreign_keys", "1"},
		{"rw", "busy_timeout", "10000"},
		{"rw", "wal_autocheckpoint", "0"},
		{"rw", "journal_size_limit", fmt.Sprint(walSizeLimit)},
		{"ro", "journal_mode", "wal"},
		{"ro", "query_only", "1"},
		{"ro", "busy_timeout", "10000"},
		{"ck", "synchronous", "1"},
		{"ck", "busy_timeout", "10000"},
	} {
		conn := map[string]*sql.DB{"rw": db.rw, "ro": db.ro, "ck": db.ck}[tt.db]
		var got string
		if err := conn.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
			t.Fatalf("%s: PRAGMA %s: %v", tt.db, tt.pragma, err)
		}
		if got != tt.want {
			t.Errorf("%s: PRAGMA %s = %q; want %q", tt.db, tt.pragma, got, tt.want)
		}
	}
}

// TestSynchronousFull: with SyncFull the writer and the checkpointer sync
// every commit (synchronous=2), and the database still stores and reads.
// A setting that is not one of the two is refused before anything opens.
func TestSynchronousFull(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "parley.db")
	db, err := OpenWith(ctx, path, Options{Synchronous: SyncFull})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, conn := range map[string]*sql.DB{"rw": db.rw, "ck": db.ck} {
		var got string
		if err := conn.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got != "2" {
			t.Errorf("%s: PRAGMA synchronous = %s; want 2 (FULL)", name, got)
		}
	}
	u, _, err := db.EnsureUser(ctx, "ada@example.com", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	room, _, err := db.EnsureRoom(ctx, "general", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := db.Append(ctx, chat.NewMessage{ConvID: room.ID, Kind: chat.KindText, SenderID: u.ID, ClientID: "c1", Body: "synced", At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if m.Seq != 1 {
		t.Errorf("Append: seq %d; want 1", m.Seq)
	}

	for _, s := range []string{"FULL", "Normal"} {
		if _, err := ParseSynchronous(s); err != nil {
			t.Errorf("ParseSynchronous(%q): %v", s, err)
		}
	}
	for _, s := range []string{"off", "extra", "", "1"} {
		if _, err := ParseSynchronous(s); err == nil {
			t.Errorf("ParseSynchronous(%q) = nil error; want one", s)
		}
	}
	other := filepath.Join(t.TempDir(), "other.db")
	if _, err := OpenWith(ctx, other, Options{Synchronous: "off"}); err == nil || !strings.Contains(err.Error(), "normal or full") {
		t.Errorf("OpenWith(synchronous off) = %v; want an error naming the settings", err)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Errorf("a refused setting made %s (stat: %v)", other, err)
	}
}

// TestDriver checks that every pool uses the driver the build chose.
func TestDriver(t *testing.T) {
	db := mustOpenDB(t)
	for name, pool := range map[string]*sql.DB{"rw": db.rw, "ro": db.ro, "ck": db.ck} {
		if !builtDriver(pool.Driver()) {
			t.Errorf("%s: driver is %T; want %s", name, pool.Driver(), Driver)
		}
	}
}

func TestMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	ms, err := listMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no migrations embedded")
	}

	type applied struct {
		Version   int
		AppliedAt int64
	}
	load := func(db *DB) []applied {
		t.Helper()
		rows, err := db.ro.QueryContext(t.Context(), `SELECT version, applied_at FROM schema_migrations ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var as []applied
		for rows.Next() {
			var a applied
			if err := rows.Scan(&a.Version, &a.AppliedAt); err != nil {
				t.Fatal(err)
			}
			as = append(as, a)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return as
	}

	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	first := load(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if len(first) != len(ms) {
		t.Fatalf("%d migrations recorded; want %d", len(first), len(ms))
	}
	for i, a := range first {
		if a.Version != i+1 || a.AppliedAt == 0 {
			t.Errorf("migration %d recorded as %+v", i+1, a)
		}
	}

	db, err = Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, load(db)); diff != "" {
		t.Errorf("migrations after re-open mismatch (-want +got):\n%s", diff)
	}

	// A database migrated by a newer parley is left alone.
	future := len(ms) + 1
	if _, err := db.rw.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, applied_at) VALUES (?, 1)`, future); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(t.Context(), path); err == nil || !strings.Contains(err.Error(), "newer") {
		if err == nil {
			db.Close()
		}
		t.Errorf("Open(newer schema) = %v; want an error about a newer schema", err)
	}
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		t.Fatalf("lock after failed Open: %v; want the failed Open to release its lock", err)
	}
	unlock()
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(t.Context(), path)
	if err == nil || !strings.Contains(err.Error(), "is in use by another parley process") || !strings.Contains(err.Error(), path) {
		t.Errorf("second Open = %v; want an in-use error naming %s", err, path)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, path)
}

// TestNewFilesPrivate: a new database holds users' addresses and sessions,
// so its file, and the -wal and -shm files that SQLite gives the database's
// mode, are readable by their owner only.
func TestNewFilesPrivate(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no unix modes")
	}
	path := filepath.Join(t.TempDir(), "parley.db")
	db := mustOpen(t, path)
	if _, _, err := db.EnsureUser(t.Context(), "ann@example.com", time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m&0o077 != 0 {
			t.Errorf("%s has mode %v; want no access for group or others", filepath.Base(name), m)
		}
	}
}

// TestOpenThroughSymlink: SQLite resolves a symbolic link to the
// database and keeps its -wal and -shm files beside the file linked to.
// Open's lock must be taken there too, so that the database is refused
// to a second process that names it by another path, and the
// checkpointer must read the WAL's backlog from that -shm file.
func TestOpenThroughSymlink(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "data", "parley.db")
	if err := os.Mkdir(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "parley.db")
	if err := os.Symlink(filepath.Join("data", "parley.db"), link); err != nil {
		t.Skipf("no symbolic links here: %v", err)
	}
	db := mustOpen(t, link)
	if _, _, err := db.EnsureUser(ctx, "ann@example.com", time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := db.walBacklog(); n <= 0 || n >= checkpointPages {
		t.Errorf("WAL backlog after one write = %d; want between 1 and %d, read from %s-shm", n, checkpointPages-1, path)
	}
	if other, err := Open(ctx, path); err == nil || !strings.Contains(err.Error(), "is in use by another parley process") {
		if err == nil {
			other.Close()
		}
		t.Errorf("Open(%s) while open as %s = %v; want an in-use error", path, link, err)
	}
}

func TestReopen(t *testing.T) {
	// The directory name needs escaping in an SQLite URI.
	path := filepath.Join(t.TempDir(), "a dir?#%", "parley.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	at := time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC)

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	u, _, err := db.EnsureUser(ctx, "ann@example.com", at)
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := db.EnsureRoom(ctx, "general", at)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.JoinRoom(ctx, r.ID, u.ID, at, true); err != nil {
		t.Fatal(err)
	}
	m, _, err := db.Append(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: u.ID, ClientID: "c1", Body: "hello", At: at})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	if _, err := os.Stat(path); err != nil {
		t.Errorf("database file: %v", err)
	}
	db = mustOpen(t, path)
	got, err := db.Messages(ctx, r.ID, chat.Page{After: 1})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]chat.Message{m}, got); diff != "" {
		t.Errorf("messages after re-open mismatch (-want +got):\n%s", diff)
	}
	next, created, err := db.Append(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: u.ID, Body: "again", At: at})
	if err != nil || !created || next.Seq != 3 {
		t.Errorf("Append after re-open = seq %d, %v, %v; want seq 3, created", next.Seq, created, err)
	}
	if ok, err := db.IsMember(ctx, r.ID, u.ID); err != nil || !ok {
		t.Errorf("IsMember after re-open = %v, %v; want true", ok, err)
	}
}

// TestOpenDoubleSlash: a path that starts with two slashes ("$HOME/parley.db"
// with HOME=/, as containers often have) names the same file as with one,
// and opens it: the URI made of it must not read the first component as
// a URI authority.
func TestOpenDoubleSlash(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "parley.db")
	db, err := Open(ctx, "/"+path)
	if err != nil {
		t.Fatalf("Open(%q): %v", "/"+path, err)
	}
	u, _, err := db.EnsureUser(ctx, "ann@example.com", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := mustOpen(t, path).User(ctx, u.ID); err != nil || got.Email != u.Email {
		t.Errorf("User(%d) through %s = %+v, %v; want %s, stored through %s", u.ID, path, got, err, u.Email, "/"+path)
	}
}

func TestPing(t *testing.T) {
	if err := mustOpenDB(t).Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// TestCloseTwice: a second Close returns what the first did, as the
// PostgreSQL store's does, and does not panic; the file can be opened
// again.
func TestCloseTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close = %v; want nil, as the first", err)
	}
	db, err = Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open after Close twice: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// migratedTo makes a database at path of schema version n, the first n
// migrations applied, and returns its write connection.
func migratedTo(t *testing.T, path string, n int) *sql.DB {
	t.Helper()
	rw, err := openDB("file:"+path, writeConn(SyncNormal))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := listMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if err := (&DB{path: path, rw: rw}).migrateWith(t.Context(), ms[:n]); err != nil {
		t.Fatalf("migrate to version %d: %v", n, err)
	}
	return rw
}

// TestMigrateConversationIDs: migration 9 makes the conversations table
// anew, with AUTOINCREMENT. A database of version 8 keeps every
// conversation with its id and columns, and the members and messages that
// refer to them; afterwards deleting a conversation still deletes them,
// the member counts still follow, and the id of a deleted newest
// conversation is not given again.
func TestMigrateConversationIDs(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "parley.db")
	rw := migratedTo(t, path, 8)
	for _, q := range []string{
		`INSERT INTO users (id, email, name, name_key, created_at) VALUES (1, 'ada@example.com', 'Ada', 'ada', 1), (2, 'bob@example.com', 'Bob', 'bob', 1)`,
		`INSERT INTO conversations (id, kind, name, name_key, created_at, last_seq, last_active_at) VALUES (1, 'room', 'General', 'general', 1, 2, 5)`,
		`INSERT INTO conversations (id, kind, name, name_key, description, max_members, created_at, last_seq, last_active_at) VALUES (2, 'group', 'Crew', 'crew', 'the crew', 10, 2, 1, 6)`,
		`INSERT INTO members (conv_id, user_id, joined_at, read_seq, role) VALUES (1, 1, 1, 2, 'member'), (1, 2, 1, 0, 'member'), (2, 1, 2, 1, 'owner')`,
		`INSERT INTO messages (conv_id, seq, kind, sender_id, client_id, body, created_at) VALUES (1, 1, 'text', 1, 'a1', 'hi', 3), (1, 2, 'text', 2, 'b1', 'hello', 5), (2, 1, 'text', 1, 'a2', 'crew only', 6)`,
	} {
		if _, err := rw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	const convCols = `id, kind, name, coalesce(name_key, ''), created_at, last_seq, last_active_at, coalesce(direct_key, ''), description, max_members, member_count`
	dump := func(q querier) []string {
		t.Helper()
		var out []string
		for _, table := range []string{
			`SELECT ` + convCols + ` FROM conversations ORDER BY id`,
			`SELECT conv_id, user_id, joined_at, read_seq, role, '', '', '', '', '', '' FROM members ORDER BY conv_id, user_id`,
			`SELECT conv_id, seq, kind, sender_id, client_id, body, created_at, '', '', '', '' FROM messages ORDER BY conv_id, seq`,
		} {
			rows, err := queryAll(ctx, q, table, nil, func(r scanner) (string, error) {
				v := make([]any, 11)
				for i := range v {
					v[i] = new(any)
				}
				err := r.Scan(v...)
				for i, p := range v {
					v[i] = *p.(*any)
				}
				return fmt.Sprint(v...), err
			})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rows...)
		}
		return out
	}
	before := dump(rw)
	if len(before) != 2+3+3 {
		t.Fatalf("version 8 holds %d rows; want 8: %q", len(before), before)
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}

	db := mustOpen(t, path)
	if diff := cmp.Diff(before, dump(db.ro)); diff != "" {
		t.Errorf("rows after migration 9 (-before +after):\n%s", diff)
	}
	if _, err := db.DeleteGroup(ctx, 2, 1, time.Now(), chat.Event{Type: chat.EventRemoved, ConvID: 2, Reason: "deleted"}); err != nil {
		t.Fatal(err)
	}
	var members, messages int
	if err := db.ro.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM members WHERE conv_id = 2), (SELECT count(*) FROM messages WHERE conv_id = 2)`).Scan(&members, &messages); err != nil {
		t.Fatal(err)
	}
	if members != 0 || messages != 0 {
		t.Errorf("after the group was deleted: %d members, %d messages of it left; want none", members, messages)
	}
	r, _, err := db.EnsureRoom(ctx, "annex", time.Unix(10, 0))
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != 3 {
		t.Errorf("new room's id = %d; want 3, past the deleted group's 2", r.ID)
	}
	if _, _, err := db.JoinRoom(ctx, r.ID, 1, time.Unix(11, 0), false); err != nil {
		t.Fatal(err)
	}
	if r, err := db.Room(ctx, r.ID); err != nil || r.Members != 1 {
		t.Errorf("room after a join = %+v, %v; want 1 member, counted by the trigger made again", r, err)
	}
}
