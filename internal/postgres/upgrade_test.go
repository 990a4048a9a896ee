package postgres

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/parley-chat/parley/internal/chat"
)

// Rolling upgrades: nodes of an older parley keep running against a
// database that a newer node has just migrated. These tests bring a schema
// to an older version with the embedded migrations, run the statements the
// older code ran (git show of the commit before each migration), and check
// the invariants the newer code relies on.

// migrateTo applies migrations 1 to n to the schema at url, as Open of a
// parley that knew only those would, and returns a connection to it,
// closed when the test ends.
func migrateTo(t *testing.T, url string, n int) *pgx.Conn {
	t.Helper()
	ctx := t.Context()
	ms, err := listMigrations()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:n] {
		src, err := migrations.ReadFile(m.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, string(src)); err != nil {
			t.Fatalf("apply %s: %v", m.name, err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())`, m.version); err != nil {
			t.Fatal(err)
		}
	}
	return conn
}

// oldUserAndRoom makes a user and a room with plain SQL, as any version did.
func oldUserAndRoom(t *testing.T, conn *pgx.Conn) (userID, roomID int64) {
	t.Helper()
	ctx := t.Context()
	if err := conn.QueryRow(ctx, `INSERT INTO users (email, created_at) VALUES ('old@example.com', now()) RETURNING id`).Scan(&userID); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `INSERT INTO conversations (kind, name, name_key, created_at, last_active_at)
		VALUES ('room', 'general', 'general', now(), now()) RETURNING id`).Scan(&roomID); err != nil {
		t.Fatal(err)
	}
	return userID, roomID
}

// oldJoinBegin starts what JoinRoom did before migration 0004 (commit
// 45572a2^): lock the room's row, insert the member. oldAppendCommit
// finishes it with the join message and commits.
func oldJoinBegin(t *testing.T, conn *pgx.Conn, roomID, userID int64) pgx.Tx {
	t.Helper()
	ctx := t.Context()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := tx.Exec(ctx, `SELECT 1 FROM conversations WHERE id = $1 AND kind = 'room' FOR NO KEY UPDATE`, roomID); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO members (conv_id, user_id, joined_at) VALUES ($1, $2, now())
		ON CONFLICT (conv_id, user_id) DO NOTHING`, roomID, userID); err != nil {
		t.Fatal(err)
	}
	return tx
}

func oldAppendCommit(t *testing.T, tx pgx.Tx, roomID, userID int64, kind string) {
	t.Helper()
	ctx := t.Context()
	var seq int64
	if err := tx.QueryRow(ctx, `UPDATE conversations SET last_seq = last_seq + 1, last_active_at = now()
		WHERE id = $1 RETURNING last_seq`, roomID).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO messages (conv_id, seq, kind, sender_id, created_at) VALUES ($1, $2, $3, $4, now())`,
		roomID, seq, kind, userID); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// oldNodeTx begins a transaction on a connection of its own to url, as a
// node of the older parley runs one; the test's end rolls it back if it is
// still open, and closes the connection.
func oldNodeTx(t *testing.T, url string) pgx.Tx {
	t.Helper()
	old, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { old.Close(context.Background()) })
	tx, err := old.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

// openBehind opens url on a goroutine, as a newer node starts while an
// older node's transaction is open, waits for up to 10 s until a session
// other than conn's waits for a lock whose query contains waiting (any
// query if ""), then calls commit, which ends the older node's
// transaction, and returns the DB once Open has returned (closed when the
// test ends).
func openBehind(t *testing.T, url string, conn *pgx.Conn, waiting string, commit func()) *DB {
	t.Helper()
	opened := make(chan *DB, 1)
	openErr := make(chan error, 1)
	go func() {
		db, err := Open(context.Background(), url)
		if err != nil {
			openErr <- err
			return
		}
		opened <- db
	}()
	deadline := time.Now().Add(10 * time.Second)
	for n := 0; n == 0; {
		if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid() AND query LIKE '%' || $1 || '%'`, waiting).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 && time.Now().After(deadline) {
			t.Fatal("no session waits for a lock after 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	commit()
	select {
	case db := <-opened:
		t.Cleanup(func() { db.Close() })
		return db
	case err := <-openErr:
		t.Fatalf("Open: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Open did not return in 30 s")
	}
	return nil
}

// TestUpgradeMemberCountConcurrentJoin: a node of the parley before
// migration 0004 joins a user to a room while a newer node applies 0004.
// The room's member_count must still equal its members.
func TestUpgradeMemberCountConcurrentJoin(t *testing.T) {
	url := mustSchema(t)
	conn := migrateTo(t, url, 3)
	userID, roomID := oldUserAndRoom(t, conn)

	old, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close(context.Background())
	tx := oldJoinBegin(t, old, roomID, userID)

	db := openBehind(t, url, conn, "member_count", func() { oldAppendCommit(t, tx, roomID, userID, "join") })
	var stored, counted int
	if err := conn.QueryRow(t.Context(), `SELECT member_count, (SELECT count(*) FROM members WHERE conv_id = $1)
		FROM conversations WHERE id = $1`, roomID).Scan(&stored, &counted); err != nil {
		t.Fatal(err)
	}
	if stored != counted {
		t.Errorf("after a join during migration 0004: member_count %d, members %d", stored, counted)
	}
	r, err := db.Room(t.Context(), roomID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Members != 1 {
		t.Errorf("Room(%d).Members = %d; want 1", roomID, r.Members)
	}
}

// TestMigrationFailsWhole: a migration that fails after some of its
// statements ran (here 0004's CREATE FUNCTION, on a function of that name
// already there) leaves the schema as it was: its ALTER TABLE is undone,
// nothing is recorded, and Open says which migration failed. Fixed, the
// next Open applies it.
func TestMigrationFailsWhole(t *testing.T) {
	url := mustSchema(t)
	conn := migrateTo(t, url, 3)
	ctx := t.Context()
	if _, err := conn.Exec(ctx, `CREATE FUNCTION members_count() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$`); err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctx, url)
	if err == nil {
		db.Close()
		t.Fatal("Open succeeded; want migration 0004 to fail")
	}
	if !strings.Contains(err.Error(), "0004_member_count.sql") {
		t.Errorf("Open = %v; want it to name 0004_member_count.sql", err)
	}
	var version, cols int
	if err := conn.QueryRow(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = 'conversations' AND column_name = 'member_count'`).Scan(&cols); err != nil {
		t.Fatal(err)
	}
	if version != 3 || cols != 0 {
		t.Errorf("after the failed migration: version %d, member_count columns %d; want 3 and 0", version, cols)
	}
	if _, err := conn.Exec(ctx, `DROP FUNCTION members_count()`); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, url)
}

// oldAppendSQL is appendSQL as of migration 0002 (git show a2cd334^:internal/postgres/messages.go),
// which ran after lockConvs in the transaction of each send, join and leave.
const oldAppendSQL = `WITH input AS (
	SELECT t.*, CASE WHEN t.client_id = '' THEN 1
		ELSE row_number() OVER (PARTITION BY t.conv_id, t.sender_id, t.client_id ORDER BY t.idx) END AS nth
	FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::timestamptz[], $8::boolean[])
		WITH ORDINALITY AS t (conv_id, sender_id, client_id, kind, body, target_id, at, member_only, idx)
), checked AS (
	SELECT i.*, c.last_seq, u.name AS sender_name,
		s.seq AS s_seq, s.kind AS s_kind, s.body AS s_body, s.target_id AS s_target_id, s.created_at AS s_created_at,
		CASE
		WHEN c.id IS NULL THEN 'missing'
		WHEN i.member_only AND mb.user_id IS NULL THEN 'not_member'
		WHEN s.seq IS NOT NULL THEN 'stored'
		WHEN i.nth > 1 THEN 'repeated'
		ELSE 'new' END AS status
	FROM input i
	LEFT JOIN LATERAL (SELECT x.id, x.last_seq FROM conversations x WHERE x.id = i.conv_id LIMIT 1) c ON true
	LEFT JOIN LATERAL (SELECT x.user_id FROM members x
		WHERE i.member_only AND x.conv_id = i.conv_id AND x.user_id = i.sender_id LIMIT 1) mb ON true
	LEFT JOIN LATERAL (SELECT x.seq, x.kind, x.body, x.target_id, x.created_at FROM messages x
		WHERE i.client_id <> '' AND x.conv_id = i.conv_id AND x.sender_id = i.sender_id AND x.client_id = i.client_id
			AND x.client_id <> '' LIMIT 1) s ON true
	LEFT JOIN LATERAL (SELECT x.name FROM users x WHERE x.id = i.sender_id LIMIT 1) u ON true
), numbered AS (
	SELECT ch.*, ch.last_seq + row_number() OVER (PARTITION BY ch.conv_id ORDER BY ch.idx) AS seq
	FROM checked ch WHERE ch.status = 'new'
), inserted AS (
	INSERT INTO messages (conv_id, seq, kind, sender_id, client_id, body, target_id, created_at)
	SELECT conv_id, seq, kind, sender_id, client_id, body, target_id, at FROM numbered
), bumped AS (
	UPDATE conversations c SET last_seq = v.last_seq, last_active_at = greatest(c.last_active_at, v.at)
	FROM (SELECT conv_id, max(seq) AS last_seq, max(at) AS at FROM numbered GROUP BY conv_id) v
	WHERE c.id = v.conv_id
), read AS (
	UPDATE members mb SET read_seq = greatest(mb.read_seq, v.seq)
	FROM (SELECT conv_id, sender_id, max(seq) AS seq FROM numbered WHERE sender_id <> 0 GROUP BY conv_id, sender_id) v
	WHERE mb.conv_id = v.conv_id AND mb.user_id = v.sender_id
)
SELECT idx, status, seq, coalesce(sender_name, ''), 0, '', '', 0, NULL::timestamptz FROM numbered
UNION ALL
SELECT idx, status, 0, coalesce(sender_name, ''), coalesce(s_seq, 0), coalesce(s_kind, ''), coalesce(s_body, ''),
	coalesce(s_target_id, 0), s_created_at
FROM checked WHERE status <> 'new'`

// oldAppend stores one message as the parley of migration 0002 did, in tx,
// and returns its status and seq.
func oldAppend(t *testing.T, tx pgx.Tx, convID, senderID int64, kind, clientID, body string, memberOnly bool) (string, int64) {
	t.Helper()
	ctx := t.Context()
	if _, err := tx.Exec(ctx, `SELECT id FROM conversations WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`, []int64{convID}); err != nil {
		t.Fatal(err)
	}
	var (
		idx, seq, sSeq, sTarget    int64
		status, name, sKind, sBody string
		sAt                        *time.Time
	)
	err := tx.QueryRow(ctx, oldAppendSQL, []int64{convID}, []int64{senderID}, []string{clientID}, []string{kind},
		[]string{body}, []int64{0}, []time.Time{time.Now().Truncate(time.Microsecond)}, []bool{memberOnly}).
		Scan(&idx, &status, &seq, &name, &sSeq, &sKind, &sBody, &sTarget, &sAt)
	if err != nil {
		t.Fatalf("old append: %v", err)
	}
	if status == "stored" {
		seq = sSeq
	}
	return status, seq
}

// oldNode runs what the parley of migration 0002 ran for a send, a join
// and a leave (JoinRoom and LeaveRoom of a2cd334^: lock the room, change
// members, append the event), each in a transaction of its own.
type oldNode struct {
	t    *testing.T
	conn *pgx.Conn
}

func (o oldNode) tx(fn func(tx pgx.Tx)) {
	o.t.Helper()
	tx, err := o.conn.Begin(o.t.Context())
	if err != nil {
		o.t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	fn(tx)
	if err := tx.Commit(o.t.Context()); err != nil {
		o.t.Fatal(err)
	}
}

func (o oldNode) send(roomID, userID int64, clientID, body string) (seq int64) {
	o.t.Helper()
	o.tx(func(tx pgx.Tx) {
		var status string
		status, seq = oldAppend(o.t, tx, roomID, userID, "text", clientID, body, true)
		if status != "new" && status != "stored" {
			o.t.Fatalf("old send: status %s", status)
		}
	})
	return seq
}

func (o oldNode) join(roomID, userID int64) {
	o.t.Helper()
	o.tx(func(tx pgx.Tx) {
		if _, err := tx.Exec(o.t.Context(), `SELECT 1 FROM conversations WHERE id = $1 AND kind = 'room' FOR NO KEY UPDATE`, roomID); err != nil {
			o.t.Fatal(err)
		}
		if _, err := tx.Exec(o.t.Context(), `INSERT INTO members (conv_id, user_id, joined_at) VALUES ($1, $2, now())
			ON CONFLICT (conv_id, user_id) DO NOTHING`, roomID, userID); err != nil {
			o.t.Fatal(err)
		}
		if status, _ := oldAppend(o.t, tx, roomID, userID, "join", "", "", false); status != "new" {
			o.t.Fatalf("old join: status %s", status)
		}
	})
}

func (o oldNode) leave(roomID, userID int64) {
	o.t.Helper()
	o.tx(func(tx pgx.Tx) {
		if _, err := tx.Exec(o.t.Context(), `SELECT 1 FROM conversations WHERE id = $1 AND kind = 'room' FOR NO KEY UPDATE`, roomID); err != nil {
			o.t.Fatal(err)
		}
		if _, err := tx.Exec(o.t.Context(), `DELETE FROM members WHERE conv_id = $1 AND user_id = $2`, roomID, userID); err != nil {
			o.t.Fatal(err)
		}
		if status, _ := oldAppend(o.t, tx, roomID, userID, "leave", "", "", false); status != "new" {
			o.t.Fatalf("old leave: status %s", status)
		}
	})
}

// TestUpgradeOldNodeKeepsWorking: a node of the parley of migration 0002
// keeps sending, joining and leaving after a newer node migrated the
// database to the latest version (a rolling upgrade): its statements
// still run, seqs stay gap-free across both nodes, a retried client ID is
// still stored once, and member_count, which only the newer parley
// reads, follows the old node's joins and leaves.
func TestUpgradeOldNodeKeepsWorking(t *testing.T) {
	url := mustSchema(t)
	conn := migrateTo(t, url, 2)
	ctx := t.Context()
	ann, roomID := oldUserAndRoom(t, conn)
	var bob int64
	if err := conn.QueryRow(ctx, `INSERT INTO users (email, created_at) VALUES ('bob@example.com', now()) RETURNING id`).Scan(&bob); err != nil {
		t.Fatal(err)
	}
	old := oldNode{t, conn}
	old.join(roomID, ann)
	old.send(roomID, ann, "a1", "before")

	db := mustOpen(t, url) // the new node migrates

	old.join(roomID, bob)
	if seq := old.send(roomID, ann, "a2", "after"); seq != 4 {
		t.Errorf("old send after the upgrade: seq %d; want 4", seq)
	}
	if seq := old.send(roomID, ann, "a1", "before"); seq != 2 {
		t.Errorf("old retried send after the upgrade: seq %d; want 2, the first one's", seq)
	}
	r, err := db.Room(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Members != 2 {
		t.Errorf("new node: room has %d members after the old node's joins; want 2", r.Members)
	}
	m, _, err := db.Append(ctx, chat.NewMessage{ConvID: roomID, Kind: chat.KindText, SenderID: bob, ClientID: "b1", Body: "new", At: time.Now(), MemberOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if m.Seq != 5 {
		t.Errorf("new node's send: seq %d; want 5", m.Seq)
	}
	old.leave(roomID, ann)
	if r, err = db.Room(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	if r.Members != 1 || r.LastSeq != 6 {
		t.Errorf("new node after the old node's leave: %d members, last seq %d; want 1 and 6", r.Members, r.LastSeq)
	}
	var seqs []int64
	rows, err := conn.Query(ctx, `SELECT seq FROM messages WHERE conv_id = $1 ORDER BY seq`, roomID)
	if err != nil {
		t.Fatal(err)
	}
	if seqs, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
		t.Fatal(err)
	}
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("seqs %v; want 1 to %d without gaps", seqs, len(seqs))
		}
	}
}

// TestUpgradeSessionUsedAt: migration 0006 gives the sessions a last use.
// A session from before is taken as used when it was made, and one that a
// node of the older parley makes after it, naming no used_at, as used
// when stored; the new node reads and trims both.
func TestUpgradeSessionUsedAt(t *testing.T) {
	url := mustSchema(t)
	conn := migrateTo(t, url, 4) // 0005 runs Go too: Open applies it
	ctx := t.Context()
	ann, _ := oldUserAndRoom(t, conn)
	created := time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Microsecond)
	// What CreateSession did before migration 0006.
	oldCreate := func(hash string) {
		t.Helper()
		if _, err := conn.Exec(ctx, `INSERT INTO sessions (user_id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
			ann, hash, created, created.Add(time.Hour)); err != nil {
			t.Fatalf("an older node's CreateSession: %v", err)
		}
	}
	oldCreate("before")
	db := mustOpen(t, url) // the new node migrates
	oldCreate("after")
	before, _, err := db.Session(ctx, "before")
	if err != nil || !before.UsedAt.Equal(created) {
		t.Errorf("a session made before migration 0006: UsedAt = %v, %v; want its CreatedAt %v", before.UsedAt, err, created)
	}
	after, _, err := db.Session(ctx, "after")
	if err != nil || !after.UsedAt.After(created) {
		t.Errorf("a session an older node made after migration 0006: UsedAt = %v, %v; want when stored", after.UsedAt, err)
	}
	in, err := db.CreateSession(ctx, chat.Session{UserID: ann, TokenHash: "new", CreatedAt: created, ExpiresAt: created.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	ended, err := db.TrimSessions(ctx, ann, in.ID, 1)
	if err != nil || !slices.Equal(ended, []int64{before.ID}) {
		t.Errorf("TrimSessions(keep the new one and 1 more) = %v, %v; want [%d], the least recently used", ended, err, before.ID)
	}
}

// TestUpgradeLoginCodesSeveral: migration 0009 lets an address have
// several login codes. A code pending before it keeps working, with its
// tries. A node of the older parley at worst refuses a code: its
// PutLoginCode fails (no unique key on email alone), and its try counts
// against every code of the address and reads one of them, to compare
// with the code typed.
func TestUpgradeLoginCodesSeveral(t *testing.T) {
	url := mustSchema(t)
	conn := migrateTo(t, url, 4) // 0005 runs Go too: Open applies it
	ctx := t.Context()
	expires := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	if _, err := conn.Exec(ctx, `INSERT INTO login_codes (email, hash, expires_at, attempts) VALUES ('ada@example.com', 'old', $1, 2)`, expires); err != nil {
		t.Fatal(err)
	}
	db := mustOpen(t, url) // the new node migrates
	if err := db.PutLoginCode(ctx, chat.LoginCode{Email: "ada@example.com", Hash: "new", ExpiresAt: expires.Add(time.Minute)}, 5); err != nil {
		t.Fatal(err)
	}
	// What an older node's PutLoginCode and AttemptLoginCode ran.
	if _, err := conn.Exec(ctx, `INSERT INTO login_codes (email, hash, expires_at, attempts) VALUES ($1, $2, $3, 0)
		ON CONFLICT (email) DO UPDATE SET hash = excluded.hash, expires_at = excluded.expires_at, attempts = 0`,
		"ada@example.com", "older", expires); err == nil {
		t.Error("an older node's PutLoginCode after migration 0009 = nil; want an error (its code refused, no code replaced)")
	}
	var hash string
	var attempts int
	if err := conn.QueryRow(ctx, `UPDATE login_codes SET attempts = attempts + 1 WHERE email = $1
		RETURNING hash, attempts`, "ada@example.com").Scan(&hash, &attempts); err != nil {
		t.Fatalf("an older node's AttemptLoginCode after migration 0009: %v", err)
	}
	if !(hash == "old" && attempts == 3 || hash == "new" && attempts == 1) {
		t.Errorf("an older node's AttemptLoginCode = %s, %d tries; want old, 3 or new, 1", hash, attempts)
	}
	cs, err := db.AttemptLoginCodes(ctx, "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(cs, func(a, b chat.LoginCode) int { return strings.Compare(a.Hash, b.Hash) })
	want := []chat.LoginCode{
		{Email: "ada@example.com", Hash: "new", ExpiresAt: expires.Add(time.Minute), Attempts: 2},
		{Email: "ada@example.com", Hash: "old", ExpiresAt: expires, Attempts: 4},
	}
	if !slices.Equal(cs, want) {
		t.Errorf("AttemptLoginCodes after migration 0009 = %+v; want %+v", cs, want)
	}
}
