package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/chat/chattest"
	"github.com/parley-chat/parley/internal/testenv"
)

// testServer returns the URL of the PostgreSQL server to test against
// (see testenv.Postgres: it skips or fails the test when none answers).
func testServer(tb testing.TB) string { return testenv.Postgres(tb) }

// withSearchPath returns rawURL with search_path set to schema.
func withSearchPath(tb testing.TB, rawURL, schema string) string {
	return testenv.WithSearchPath(tb, rawURL, schema)
}

// mustSchema creates an empty schema, dropped at the end of the test, and
// returns the URL of the test server with search_path set to it.
func mustSchema(tb testing.TB) string { return testenv.PostgresSchema(tb) }

// mustOpen opens the database at url and closes it at the end of the test.
func mustOpen(tb testing.TB, url string) *DB {
	tb.Helper()
	db, err := Open(context.Background(), url)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return db
}

// mustOpenDB opens a database in a new schema of its own.
func mustOpenDB(tb testing.TB) *DB {
	tb.Helper()
	return mustOpen(tb, mustSchema(tb))
}

// TestAppendConnectionsReady: Open leaves one connection per committing
// goroutine open in the group commit's pool, each with the commit's
// statements prepared and already planned, and getting them ready stored
// nothing.
func TestAppendConnectionsReady(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	if n := db.appendPool.Stat().TotalConns(); n != batchers {
		t.Fatalf("group commit connections after Open = %d; want %d", n, batchers)
	}
	conns := make([]*pgxpool.Conn, 0, batchers)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range batchers {
		c, err := db.appendPool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var prepared, planned int
		err = c.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE generic_plans > 0) FROM pg_prepared_statements WHERE statement = ANY($1)`,
			appendStatements).Scan(&prepared, &planned)
		if err != nil {
			t.Fatal(err)
		}
		if prepared != len(appendStatements) || planned != len(appendStatements) {
			t.Errorf("connection %d: %d of the group commit's %d statements prepared, %d planned; want all",
				len(conns), prepared, len(appendStatements), planned)
		}
	}
	var msgs, convs int
	if err := db.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM conversations)`).Scan(&msgs, &convs); err != nil {
		t.Fatal(err)
	}
	if msgs != 0 || convs != 0 {
		t.Errorf("after Open: %d messages, %d conversations; want none", msgs, convs)
	}
}

func TestStore(t *testing.T) {
	chattest.TestStore(t, func(t *testing.T) chat.Store { return mustOpenDB(t) })
}

type applied struct {
	Version   int
	AppliedAt time.Time
}

func loadMigrations(t *testing.T, db *DB) []applied {
	t.Helper()
	rows, err := db.pool.Query(t.Context(), `SELECT version, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	as, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (applied, error) {
		var a applied
		err := r.Scan(&a.Version, &a.AppliedAt)
		a.AppliedAt = a.AppliedAt.UTC()
		return a, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return as
}

func TestMigrations(t *testing.T) {
	url := mustSchema(t)
	ms, err := listMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no migrations embedded")
	}

	db, err := Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	first := loadMigrations(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if len(first) != len(ms) {
		t.Fatalf("%d migrations recorded; want %d", len(first), len(ms))
	}
	for i, a := range first {
		if a.Version != i+1 || a.AppliedAt.IsZero() {
			t.Errorf("migration %d recorded as %+v", i+1, a)
		}
	}

	// A second Open of the same schema applies nothing.
	db, err = Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, loadMigrations(t, db)); diff != "" {
		t.Errorf("migrations after re-open mismatch (-want +got):\n%s", diff)
	}

	// A database migrated by a newer parley is left alone.
	future := len(ms) + 1
	if _, err := db.pool.Exec(t.Context(), `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())`, future); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(t.Context(), url); err == nil || !strings.Contains(err.Error(), "newer") {
		if err == nil {
			db.Close()
		}
		t.Errorf("Open(newer schema) = %v; want an error about a newer schema", err)
	}
}

// TestOpenConcurrent starts several nodes at once on an empty schema: the
// advisory lock lets one migrate, and the others find nothing to do.
func TestOpenConcurrent(t *testing.T) {
	url := mustSchema(t)
	const nodes = 6
	dbs := make([]*DB, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() { dbs[i], errs[i] = Open(t.Context(), url) })
	}
	wg.Wait()
	for i, db := range dbs {
		if errs[i] != nil {
			t.Errorf("Open %d: %v", i, errs[i])
			continue
		}
		t.Cleanup(func() { db.Close() })
	}
	if t.Failed() {
		return
	}
	ms, _ := listMigrations()
	if got := loadMigrations(t, dbs[0]); len(got) != len(ms) {
		t.Errorf("%d migrations recorded; want %d", len(got), len(ms))
	}
}

// TestTwoNodes sends concurrently through two pools on one schema, as two
// parley processes would: seqs stay gap-free, and a client ID sent through
// both at once is stored once.
func TestTwoNodes(t *testing.T) {
	url := mustSchema(t)
	a, b := mustOpen(t, url), mustOpen(t, url)
	nodes := []*DB{a, b}
	ctx := t.Context()
	u, _, err := a.EnsureUser(ctx, "ann@example.com", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rooms := make([]chat.Room, 3)
	for i := range rooms {
		if rooms[i], _, err = b.EnsureRoom(ctx, fmt.Sprint("room-", i), time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.JoinRoom(ctx, rooms[i].ID, u.ID, time.Now(), true); err != nil {
			t.Fatal(err)
		}
	}

	const senders, each = 16, 30
	var (
		mu      sync.Mutex
		created = map[string]chat.Message{} // room/client ID → the message stored
		dups    = map[string][]chat.Message{}
		wg      sync.WaitGroup
	)
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				// Every client ID is sent by two senders at once, one
				// through each node.
				cid := fmt.Sprintf("c%d-%d", s/2, i)
				r := rooms[(s/2+i)%len(rooms)]
				m, ok, err := nodes[s%2].Append(ctx, chat.NewMessage{
					ConvID: r.ID, Kind: chat.KindText, SenderID: u.ID, ClientID: cid, Body: cid, At: time.Now(), MemberOnly: true,
				})
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				key := fmt.Sprint(r.ID, "/", cid)
				mu.Lock()
				if ok {
					if _, seen := created[key]; seen {
						t.Errorf("client ID %s stored twice", key)
					}
					created[key] = m
				} else {
					dups[key] = append(dups[key], m)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if want := senders * each / 2; len(created) != want {
		t.Errorf("%d messages created; want %d", len(created), want)
	}
	for key, ms := range dups {
		for _, m := range ms {
			if diff := cmp.Diff(created[key], m); diff != "" {
				t.Errorf("duplicate of %s mismatch (-stored +returned):\n%s", key, diff)
			}
		}
	}
	total := 0
	for _, r := range rooms {
		ms, err := b.Messages(ctx, r.ID, chat.Page{After: 1, Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range ms {
			if m.Seq != int64(i+2) { // seq 1 is the join
				t.Fatalf("room %d: message %d has seq %d; want a gap-free sequence", r.ID, i, m.Seq)
			}
			if created[fmt.Sprint(r.ID, "/", m.ClientID)].Seq != m.Seq {
				t.Errorf("room %d: seq %d holds %s, which Append did not return with it", r.ID, m.Seq, m.ClientID)
			}
		}
		got, err := a.Room(ctx, r.ID)
		if err != nil || got.LastSeq != int64(len(ms)+1) {
			t.Errorf("room %d: last seq %d, %v; want %d", r.ID, got.LastSeq, err, len(ms)+1)
		}
		c, _, err := a.Conversation(ctx, r.ID, u.ID)
		if err != nil || c.ReadSeq != c.LastSeq {
			t.Errorf("room %d: read seq %d of last %d, %v; want the sender's read position at the end", r.ID, c.ReadSeq, c.LastSeq, err)
		}
		total += len(ms)
	}
	if total != len(created) {
		t.Errorf("rooms hold %d messages; want %d", total, len(created))
	}
}

// TestTwoNodesGroupCap adds members to one group through two pools at
// once: the cap holds.
func TestTwoNodesGroupCap(t *testing.T) {
	url := mustSchema(t)
	nodes := []*DB{mustOpen(t, url), mustOpen(t, url)}
	ctx := t.Context()
	owner, _, err := nodes[0].EnsureUser(ctx, "owner@example.com", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	const limit, joiners = 5, 20
	g, _, _, err := nodes[0].CreateGroup(ctx, chat.NewGroup{Name: "g", MaxMembers: limit, OwnerID: owner.ID, At: time.Now()}, chat.Event{Type: chat.EventConversation, ConvKind: chat.ConvGroup})
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for i := range joiners {
		u, _, err := nodes[1].EnsureUser(ctx, fmt.Sprintf("u%d@example.com", i), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	added, full := 0, 0
	for i, id := range ids {
		wg.Go(func() {
			_, _, err := nodes[i%2].AddGroupMember(ctx, g.ID, id, owner.ID, time.Now(), chat.Event{Type: chat.EventConversation, ConvID: g.ID, ConvKind: chat.ConvGroup})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				added++
			case errors.Is(err, chat.ErrGroupFull):
				full++
			default:
				t.Errorf("AddGroupMember: %v", err)
			}
		})
	}
	wg.Wait()
	if added != limit-1 || full != joiners-(limit-1) {
		t.Errorf("added %d, refused as full %d; want %d and %d", added, full, limit-1, joiners-(limit-1))
	}
	got, err := nodes[1].Group(ctx, g.ID)
	if err != nil || got.Members != limit || got.LastSeq != limit {
		t.Errorf("group has %d members, last seq %d, %v; want %d and %d", got.Members, got.LastSeq, err, limit, limit)
	}
}

// TestUnavailable checks that when the server cannot be reached, sends and
// reads fail with chat.ErrUnavailable, a *chat.Error telling the user to
// retry, and that Open says so too.
func TestUnavailable(t *testing.T) {
	u, err := url.Parse(mustSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	p := testenv.StartProxy(t, u.Host)
	u.Host = p.Addr()
	db := mustOpen(t, u.String())
	ctx := t.Context()
	ann, r := annAndGeneral(t, db)
	p.Cut()

	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, chat.ErrUnavailable) {
			t.Errorf("%s with the server gone: err = %v; want chat.ErrUnavailable", what, err)
		}
		if e := chat.AsError(err); e == nil || e.Code != chat.CodeUnavailable {
			t.Errorf("%s with the server gone: chat.AsError(%v) = %+v; want code %s", what, err, e, chat.CodeUnavailable)
		}
	}
	_, _, err = db.Append(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: ann.ID, ClientID: "c1", Body: "hi", At: time.Now()})
	check("Append", err)
	_, err = db.Messages(ctx, r.ID, chat.Page{})
	check("Messages", err)
	_, _, err = db.JoinRoom(ctx, r.ID, ann.ID, time.Now(), true)
	check("JoinRoom", err)
	check("Ping", db.Ping(ctx))

	_, err = Open(ctx, u.String())
	check("Open", err)
}

func TestAppendInvalidText(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	u, r := annAndGeneral(t, db)
	for _, body := range []string{"a\x00b", "\xff"} {
		if _, _, err := db.Append(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: u.ID, Body: body, At: time.Now()}); !errors.Is(err, chat.ErrInvalid) {
			t.Errorf("Append(%q) = %v; want ErrInvalid", body, err)
		}
	}
	if m, _, err := db.Append(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: u.ID, Body: "ok", At: time.Now()}); err != nil || m.Seq != 1 {
		t.Errorf("Append after refused ones = seq %d, %v; want seq 1", m.Seq, err)
	}
}

func TestPing(t *testing.T) {
	if err := mustOpenDB(t).Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// TestDeleteGroupMessages checks that a deleted group's messages go with
// it, now that no foreign key cascades to them.
func TestDeleteGroupMessages(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	u, _, err := db.EnsureUser(ctx, "ann@example.com", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	g, _, _, err := db.CreateGroup(ctx, chat.NewGroup{Name: "g", MaxMembers: 10, OwnerID: u.ID, At: time.Now()}, chat.Event{Type: chat.EventConversation, ConvKind: chat.ConvGroup})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Append(ctx, chat.NewMessage{ConvID: g.ID, Kind: chat.KindText, SenderID: u.ID, ClientID: "c", Body: "hi", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DeleteGroup(ctx, g.ID, u.ID, time.Now(), chat.Event{Type: chat.EventRemoved, ConvID: g.ID, Reason: "deleted"}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE conv_id = $1`, g.ID).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d messages of the deleted group remain (%v); want 0", n, err)
	}
	if _, _, err := db.Append(ctx, chat.NewMessage{ConvID: g.ID, Kind: chat.KindText, SenderID: u.ID, Body: "late", At: time.Now()}); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("Append to the deleted group = %v; want ErrNotFound", err)
	}
}

// TestTwoNodesMixed appends through one pool while another joins, leaves
// and marks read in the same rooms: every room's sequence stays gap-free,
// and nothing deadlocks.
func TestTwoNodesMixed(t *testing.T) {
	dsn := mustSchema(t)
	a, b := mustOpen(t, dsn), mustOpen(t, dsn)
	ctx := t.Context()
	ann, _, err := a.EnsureUser(ctx, "ann@example.com", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	bob, _, err := b.EnsureUser(ctx, "bob@example.com", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rooms := make([]chat.Room, 4)
	for i := range rooms {
		if rooms[i], _, err = a.EnsureRoom(ctx, fmt.Sprint("room-", i), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for s := range 8 {
		wg.Go(func() {
			for i := range 40 {
				r := rooms[(s+i)%len(rooms)]
				if _, _, err := a.Append(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: ann.ID, Body: "x", At: time.Now()}); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		})
	}
	for s := range 4 {
		wg.Go(func() {
			for i := range 20 {
				r := rooms[(s+i)%len(rooms)]
				var err error
				switch i % 3 {
				case 0:
					_, _, err = b.JoinRoom(ctx, r.ID, bob.ID, time.Now(), true)
				case 1:
					_, _, err = chattest.MarkRead(ctx, b, r.ID, bob.ID, 1<<40)
					if errors.Is(err, chat.ErrNotFound) {
						err = nil // not a member at the moment
					}
				case 2:
					_, _, _, err = b.LeaveRoom(ctx, r.ID, bob.ID, time.Now(), true, chat.Event{Type: chat.EventRemoved, ConvID: r.ID, Reason: "left"})
				}
				if err != nil {
					t.Errorf("room %d, step %d: %v", r.ID, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, r := range rooms {
		got, err := b.Room(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		ms, err := a.Messages(ctx, r.ID, chat.Page{After: -1, Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(ms)) != got.LastSeq {
			t.Errorf("room %d holds %d messages; last seq %d", r.ID, len(ms), got.LastSeq)
		}
		for i, m := range ms {
			if m.Seq != int64(i+1) {
				t.Fatalf("room %d: message %d has seq %d; want a gap-free sequence", r.ID, i, m.Seq)
			}
		}
	}
}

// TestAsyncCommitIsLocal: asyncCommit, sent in a batch, turns
// synchronous_commit off for that batch's implicit transaction only, as
// MarkRead sends it.
func TestAsyncCommitIsLocal(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	c, err := db.pool.raw.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	const show = `SELECT current_setting('synchronous_commit')`
	var before, in, after string
	if err := c.QueryRow(ctx, show).Scan(&before); err != nil {
		t.Fatal(err)
	}
	b := &pgx.Batch{}
	b.Queue(asyncCommit)
	b.Queue(show)
	br := c.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		t.Fatal(err)
	}
	if err := br.QueryRow().Scan(&in); err != nil {
		t.Fatal(err)
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(ctx, show).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if in != "off" || after != before {
		t.Errorf("synchronous_commit: %q before, %q in the batch, %q after; want off in it, as before after", before, in, after)
	}
}

// annAndGeneral makes the user ann@example.com and the room general in db.
func annAndGeneral(t *testing.T, db *DB) (chat.User, chat.Room) {
	t.Helper()
	ctx := t.Context()
	ann, _, err := db.EnsureUser(ctx, "ann@example.com", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := db.EnsureRoom(ctx, "general", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ann, r
}

// holdRow locks conversation id's row in a transaction of its own, as a
// send to it does, until the test ends or the caller rolls it back.
func holdRow(t *testing.T, db *DB, id int64) pgx.Tx {
	t.Helper()
	ctx := t.Context()
	tx, err := db.pool.raw.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := tx.Exec(ctx, `SELECT id FROM conversations WHERE id = $1 FOR UPDATE`, id); err != nil {
		t.Fatal(err)
	}
	return tx
}
