package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/parley-chat/parley/internal/chat"
)

// TestAppendLocksReadPositionsInOrder: a batch of one sender's messages to
// eight rooms moves the sender's read position in each. It takes those
// rows in the order of (conversation, user), as MarkRead's batches do, so
// that the two never wait for each other's rows in a cycle (a deadlock,
// which PostgreSQL breaks after a second). With the last room's row held
// elsewhere, the batch, waiting for it, holds the rows of all the rooms
// before it.
func TestAppendLocksReadPositionsInOrder(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	now := time.Now()
	u, _, err := db.EnsureUser(ctx, "ann@example.com", now)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	rooms := make([]int64, n)
	for i := range rooms {
		r, _, err := db.EnsureRoom(ctx, fmt.Sprintf("room%d", i), now)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.JoinRoom(ctx, r.ID, u.ID, now, false); err != nil {
			t.Fatal(err)
		}
		rooms[i] = r.ID
	}
	// The batch lists the rooms from last to first: the order of its
	// items is not the order of its locks.
	items := make([]*appendItem, n)
	for i := range items {
		items[i] = &appendItem{m: chat.NewMessage{ConvID: rooms[n-1-i], Kind: chat.KindText, SenderID: u.ID, Body: "hi", At: now}}
	}
	// EnsureRoom numbers the rooms in order.
	const position = `conv_id = $1 AND user_id = $2`
	err = holdsBefore(t, db, "members", position, rooms, func(room int64) []any { return []any{room, u.ID} },
		func() error { return db.appendBatch(ctx, items) })
	if err != nil {
		t.Fatalf("the batch: %v", err)
	}
	for i, it := range items {
		if it.err != nil || !it.created {
			t.Errorf("item %d: created %v, err %v", i, it.created, it.err)
		}
	}
	for _, id := range rooms {
		var read, lastSeq int64
		err := db.pool.raw.QueryRow(ctx, `SELECT mb.read_seq, c.last_seq FROM members mb JOIN conversations c ON c.id = mb.conv_id
			WHERE mb.conv_id = $1 AND mb.user_id = $2`, id, u.ID).Scan(&read, &lastSeq)
		if err != nil {
			t.Fatal(err)
		}
		if read != lastSeq {
			t.Errorf("room %d: the sender's read position is %d; want %d, the message sent", id, read, lastSeq)
		}
	}
}

// TestTrimSessionsLocksInOrder: a sign-in trims the user's sessions made
// before it, taking their rows in id order, as UseSessions and
// DeleteExpired do, not in the order of their last use: with the session
// made last and used last held elsewhere, the trim, waiting for it, holds
// all the others.
func TestTrimSessionsLocksInOrder(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	now := time.Now()
	u, _, err := db.EnsureUser(ctx, "ann@example.com", now)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for i := range 7 {
		s, err := db.CreateSession(ctx, chat.Session{UserID: u.ID, TokenHash: fmt.Sprintf("hash%d", i), CreatedAt: now,
			ExpiresAt: now.Add(time.Hour), UsedAt: now.Add(time.Duration(i) * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID)
	}
	keep, old := ids[6], ids[:6]
	var ended []int64
	err = holdsBefore(t, db, "sessions", "id = $1", old, func(id int64) []any { return []any{id} }, func() (err error) {
		ended, err = db.TrimSessions(ctx, u.ID, keep, 0)
		return err
	})
	if err != nil {
		t.Fatalf("TrimSessions: %v", err)
	}
	slices.Sort(ended)
	if !slices.Equal(ended, old) {
		t.Errorf("TrimSessions ended %v; want %v", ended, old)
	}
}

// TestTransferGroupLocksInOrder: a group's owner hands it to a member
// whose user id is lower. The two rows of their roles are changed in user
// order, as MarkRead's batches take read positions: with the owner's row
// held elsewhere, the transfer, waiting for it, holds the new owner's.
func TestTransferGroupLocksInOrder(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	now := time.Now()
	bob, _, err := db.EnsureUser(ctx, "bob@example.com", now)
	if err != nil {
		t.Fatal(err)
	}
	ann, _, err := db.EnsureUser(ctx, "ann@example.com", now)
	if err != nil {
		t.Fatal(err)
	}
	g, _, _, err := db.CreateGroup(ctx, chat.NewGroup{Name: "g", MaxMembers: 10, OwnerID: ann.ID, At: now},
		chat.Event{Type: chat.EventConversation, ConvKind: chat.ConvGroup})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.AddGroupMember(ctx, g.ID, bob.ID, ann.ID, now, chat.Event{Type: chat.EventConversation, ConvID: g.ID, ConvKind: chat.ConvGroup}); err != nil {
		t.Fatal(err)
	}
	const role = `user_id = $1 AND conv_id = $2`
	err = holdsBefore(t, db, "members", role, []int64{bob.ID, ann.ID}, func(u int64) []any { return []any{u, g.ID} }, func() error {
		_, err := db.TransferGroup(ctx, g.ID, ann.ID, bob.ID, now)
		return err
	})
	if err != nil {
		t.Fatalf("TransferGroup: %v", err)
	}
	for _, m := range []struct {
		user int64
		want chat.Role
	}{{ann.ID, chat.RoleAdmin}, {bob.ID, chat.RoleOwner}} {
		var got string
		if err := db.pool.raw.QueryRow(ctx, `SELECT role FROM members WHERE conv_id = $1 AND user_id = $2`, g.ID, m.user).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != string(m.want) {
			t.Errorf("user %d's role is %q; want %q", m.user, got, m.want)
		}
	}
}

// holdsBefore runs op while the row of the last of keys is held elsewhere
// and, once op waits for it, checks that op holds the rows of all the
// keys before it: that op takes them in the order of keys. cond, with
// args of a key, selects the row of that key in table. It returns what op
// returned.
func holdsBefore[K any](t *testing.T, db *DB, table, cond string, keys []K, args func(K) []any, op func() error) error {
	t.Helper()
	last := keys[len(keys)-1]
	return whileWaiting(t, db, table, cond, args(last), op, func() {
		if free := notHeldBy(t, db, table, cond, keys[:len(keys)-1], args); len(free) > 0 {
			t.Errorf("waiting for the row of %v in %s, it holds none of %v (of %v): it takes them out of order", last, table, free, keys)
		}
	})
}

// whileWaiting holds the row of table that cond (with args) selects, in a
// transaction of its own, and runs op; once op waits for a lock, holding
// one on table, it calls during, then lets the row go and returns what op
// returned.
func whileWaiting(t *testing.T, db *DB, table, cond string, args []any, op func() error, during func()) error {
	t.Helper()
	ctx := t.Context()
	hold, err := db.pool.raw.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = hold.Rollback(context.Background()) }()
	if _, err := hold.Exec(ctx, `SELECT FROM `+table+` WHERE `+cond+` FOR UPDATE`, args...); err != nil {
		t.Fatal(err)
	}
	return untilWaiting(t, db, table, op, func() {
		during()
		if err := hold.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// untilWaiting runs op and, once op waits for a lock, holding one on
// table, calls release, which lets go what op waits for; it returns what
// op returned.
func untilWaiting(t *testing.T, db *DB, table string, op func() error, release func()) error {
	t.Helper()
	ctx := t.Context()
	done := make(chan error, 1)
	go func() { done <- op() }()
	deadline := time.Now().Add(10 * time.Second)
	for waiting := false; !waiting; {
		if time.Now().After(deadline) {
			t.Fatalf("it never waited for the row of %s held", table)
		}
		select {
		case err := <-done:
			t.Fatalf("it ended (%v) while the row of %s it needs was held", err, table)
		case <-time.After(20 * time.Millisecond):
		}
		// A backend waiting for a lock and holding one on this schema's
		// table (other tests' schemas have tables of their own).
		err := db.pool.raw.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks l WHERE NOT l.granted
			AND EXISTS (SELECT 1 FROM pg_locks m WHERE m.pid = l.pid AND m.relation = $1::regclass))`, table).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
	}
	release()
	return <-done
}

// notHeld returns those of keys whose row of table (cond, with the key
// and then more) no other transaction holds.
func notHeld(t *testing.T, db *DB, table, cond string, keys []int64, more ...any) []int64 {
	t.Helper()
	return notHeldBy(t, db, table, cond, keys, func(k int64) []any { return append([]any{k}, more...) })
}

// notHeldBy is notHeld for keys of any kind, args giving the arguments of
// cond for each.
func notHeldBy[K any](t *testing.T, db *DB, table, cond string, keys []K, args func(K) []any) []K {
	t.Helper()
	var free []K
	for _, k := range keys {
		held, err := rowHeld(t.Context(), db, `SELECT FROM `+table+` WHERE `+cond+` FOR UPDATE NOWAIT`, args(k))
		if err != nil {
			t.Fatal(err)
		}
		if !held {
			free = append(free, k)
		}
	}
	return free
}

// rowHeld runs query, which locks a row with NOWAIT, in a transaction it
// rolls back, and reports whether another transaction holds the row.
func rowHeld(ctx context.Context, db *DB, query string, args []any) (bool, error) {
	tx, err := db.pool.raw.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(ctx, query, args...)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "55P03" { // lock_not_available
		return true, nil
	}
	return false, err
}

// deletableGroup makes a group owned by the last of three users, made in
// the order of their ids, whom it adds from the last to the first, so
// that the rows of their memberships lie in the table against user
// order. It returns the group's id and the users' ids, ascending.
func deletableGroup(t *testing.T, db *DB) (int64, []int64) {
	t.Helper()
	ctx := t.Context()
	now := time.Now()
	var users []int64
	for _, email := range []string{"ann@example.com", "bob@example.com", "cat@example.com"} {
		u, _, err := db.EnsureUser(ctx, email, now)
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, u.ID)
	}
	owner := users[2]
	g, _, _, err := db.CreateGroup(ctx, chat.NewGroup{Name: "g", MaxMembers: 10, OwnerID: owner, At: now},
		chat.Event{Type: chat.EventConversation, ConvKind: chat.ConvGroup})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []int64{users[1], users[0]} {
		if _, _, err := db.AddGroupMember(ctx, g.ID, u, owner, now, chat.Event{Type: chat.EventConversation, ConvID: g.ID, ConvKind: chat.ConvGroup}); err != nil {
			t.Fatal(err)
		}
	}
	return g.ID, users
}

// checkDeleted checks that group id is gone, with its members, and that
// each of users was told so once.
func checkDeleted(t *testing.T, db *DB, id int64, users []int64, logged []chat.UserEvent) {
	t.Helper()
	var members, convs int
	if err := db.pool.raw.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM members WHERE conv_id = $1),
		(SELECT count(*) FROM conversations WHERE id = $1)`, id).Scan(&members, &convs); err != nil {
		t.Fatal(err)
	}
	if members != 0 || convs != 0 {
		t.Errorf("after DeleteGroup: %d rows of members and %d of the conversation; want none", members, convs)
	}
	var got []int64
	for _, ue := range logged {
		got = append(got, ue.UserID)
	}
	if !slices.Equal(got, users) {
		t.Errorf("DeleteGroup logged the removal for users %v; want %v", got, users)
	}
}

// TestDeleteGroupLocksMembersFirst: a group's deletion takes the rows of
// its memberships before the rows of its members' users, as every other
// change of a membership does (AddGroupMember, RemoveGroupMember,
// LeaveRoom: the conversation, the membership, then the user's event
// log). Taking the users first, it could wait for a membership that a
// batch of MarkRead's holds, while that batch waits for the membership of
// another conversation whose leave waits for one of those users: a cycle
// of three. With the last user's row held elsewhere, the deletion,
// waiting for it, holds every membership of the group.
func TestDeleteGroupLocksMembersFirst(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	id, users := deletableGroup(t, db)
	last := users[len(users)-1]
	var logged []chat.UserEvent
	err := whileWaiting(t, db, "users", "id = $1", []any{last}, func() (err error) {
		logged, err = db.DeleteGroup(ctx, id, last, time.Now(), chat.Event{Type: chat.EventRemoved, ConvID: id, Reason: "deleted"})
		return err
	}, func() {
		if free := notHeld(t, db, "members", "user_id = $1 AND conv_id = $2", users, id); len(free) > 0 {
			t.Errorf("waiting for user %d's row, the deletion holds no membership of users %v (of %v): it takes users before memberships", last, free, users)
		}
	})
	if err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	checkDeleted(t, db, id, users, logged)
}

// TestDeleteGroupLocksMembersInOrder: a group's deletion takes the rows of
// its memberships in user order, as MarkRead's batches take read
// positions, not in the order in which they lie in the table (which the
// cascade from the conversation's row follows): with the last user's
// membership held elsewhere, the deletion, waiting for it, holds the
// others.
func TestDeleteGroupLocksMembersInOrder(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	id, users := deletableGroup(t, db)
	last := users[len(users)-1]
	const role = `user_id = $1 AND conv_id = $2`
	var logged []chat.UserEvent
	err := holdsBefore(t, db, "members", role, users, func(u int64) []any { return []any{u, id} }, func() (err error) {
		logged, err = db.DeleteGroup(ctx, id, last, time.Now(), chat.Event{Type: chat.EventRemoved, ConvID: id, Reason: "deleted"})
		return err
	})
	if err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	checkDeleted(t, db, id, users, logged)
}

// TestDeleteExpiredLocksCodesInOrder: the sweep of expired login codes
// takes their rows in the order of (address, hash), as AttemptLoginCodes
// and UseLoginCode take an address's codes, not in the order of their
// expiry or of the table: a try with codes that have just expired, locking
// them by hash, and the sweep could otherwise wait for each other's rows
// in a cycle. With the address's last code by hash held elsewhere, the
// sweep, waiting for it, holds the others.
func TestDeleteExpiredLocksCodesInOrder(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	now := time.Now()
	const email = "ann@example.com"
	hashes := []string{"h1", "h2", "h3", "h4", "h5"}
	// The last by hash is put first and expires first.
	for i := range hashes {
		h := hashes[len(hashes)-1-i]
		if err := db.PutLoginCode(ctx, chat.LoginCode{Email: email, Hash: h, ExpiresAt: now.Add(time.Duration(i-10) * time.Minute)}, len(hashes)); err != nil {
			t.Fatal(err)
		}
	}
	const code = `email = $1 AND hash = $2`
	var n int
	err := holdsBefore(t, db, "login_codes", code, hashes, func(h string) []any { return []any{email, h} }, func() (err error) {
		n, err = db.DeleteExpired(ctx, now, 100)
		return err
	})
	if err != nil {
		t.Fatalf("DeleteExpired: %v", err)
	}
	if n != len(hashes) {
		t.Errorf("DeleteExpired removed %d; want %d", n, len(hashes))
	}
}

// TestPutLoginCodeLocksCodesInOrder: a new code that leaves an address
// with more codes than it keeps removes the oldest in hash order, as
// AttemptLoginCodes and UseLoginCode take an address's codes: with the
// last of them by hash held elsewhere, PutLoginCode, waiting for it,
// holds the others it removes.
func TestPutLoginCodeLocksCodesInOrder(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	now := time.Now()
	const email = "ann@example.com"
	hashes := []string{"h1", "h2", "h3", "h4", "h5"}
	// The last by hash is put first and expires first. More than are
	// kept pile up when codes are asked for at once, each keeping its
	// own.
	for i := range hashes {
		h := hashes[len(hashes)-1-i]
		if err := db.PutLoginCode(ctx, chat.LoginCode{Email: email, Hash: h, ExpiresAt: now.Add(time.Duration(i+1) * time.Minute)}, len(hashes)); err != nil {
			t.Fatal(err)
		}
	}
	const code = `email = $1 AND hash = $2`
	err := holdsBefore(t, db, "login_codes", code, hashes, func(h string) []any { return []any{email, h} }, func() error {
		return db.PutLoginCode(ctx, chat.LoginCode{Email: email, Hash: "h9", ExpiresAt: now.Add(time.Hour)}, 1)
	})
	if err != nil {
		t.Fatalf("PutLoginCode: %v", err)
	}
	var left []string
	rows, err := db.pool.raw.Query(ctx, `SELECT hash FROM login_codes WHERE email = $1 ORDER BY hash`, email)
	if err == nil {
		left, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(left, []string{"h9"}) {
		t.Errorf("codes left: %v; want [h9]", left)
	}
}

// TestFillNameSkeletonsLocksInOrder: filling the skeletons that a node of
// an older parley left out takes the rows of the rooms and groups in id
// order, whatever their kind, as the group commit takes conversations
// (lockConvs), since it runs while other nodes send: with the room made
// last held elsewhere, the filling, waiting for it, holds the group made
// before it.
func TestFillNameSkeletonsLocksInOrder(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	now := time.Now()
	u, _, err := db.EnsureUser(ctx, "ann@example.com", now)
	if err != nil {
		t.Fatal(err)
	}
	g, _, _, err := db.CreateGroup(ctx, chat.NewGroup{Name: "team", MaxMembers: 10, OwnerID: u.ID, At: now},
		chat.Event{Type: chat.EventConversation, ConvKind: chat.ConvGroup})
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := db.EnsureRoom(ctx, "lobby", now)
	if err != nil {
		t.Fatal(err)
	}
	// As a node from before skeletons leaves them.
	if _, err := db.pool.raw.Exec(ctx, `UPDATE conversations SET name_skel = NULL WHERE id = ANY($1)`, []int64{g.ID, r.ID}); err != nil {
		t.Fatal(err)
	}
	err = holdsBefore(t, db, "conversations", "id = $1", []int64{g.ID, r.ID}, func(id int64) []any { return []any{id} },
		func() error { return db.fillNameSkeletons(ctx) })
	if err != nil {
		t.Fatalf("fillNameSkeletons: %v", err)
	}
	var missing int
	if err := db.pool.raw.QueryRow(ctx, `SELECT count(*) FROM conversations WHERE name_skel IS NULL AND kind <> 'direct'`).Scan(&missing); err != nil {
		t.Fatal(err)
	}
	if missing != 0 {
		t.Errorf("%d rooms and groups left without a skeleton", missing)
	}
}

// TestTrimUserEventsLocksInOrder: the trim of the users' event logs takes
// the rows it removes in the order of (user, seq), so that two nodes
// trimming at once, each with the events it picked, never wait for each
// other's rows in a cycle: with the last of them held elsewhere, the
// trim, waiting for it, holds the others.
func TestTrimUserEventsLocksInOrder(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	now := time.Now()
	var users []int64
	for _, email := range []string{"ann@example.com", "bob@example.com"} {
		u, _, err := db.EnsureUser(ctx, email, now)
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, u.ID)
	}
	// Bob's events lie in the table before Ann's.
	for _, u := range []int64{users[1], users[0]} {
		for range 3 {
			if _, err := db.AppendUserEvent(ctx, u, chat.Event{Type: chat.EventConversation}, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	type event struct{ user, seq int64 }
	// With one kept, each loses its first two.
	var trimmed []event
	for _, u := range users {
		trimmed = append(trimmed, event{u, 1}, event{u, 2})
	}
	const row = `user_id = $1 AND seq = $2`
	var n int
	err := holdsBefore(t, db, "user_events", row, trimmed, func(e event) []any { return []any{e.user, e.seq} }, func() (err error) {
		n, err = db.TrimUserEvents(ctx, 1, 100)
		return err
	})
	if err != nil {
		t.Fatalf("TrimUserEvents: %v", err)
	}
	if n != len(trimmed) {
		t.Errorf("TrimUserEvents removed %d; want %d", n, len(trimmed))
	}
}

// TestDeleteExpiredSparesRenewed: the sweep picks a session that has
// expired while a request renews it (UseSession), and waits for the
// renewal's row. Once the renewal commits, the session no longer expires:
// the sweep, which checks again the rows it waited for, leaves it.
func TestDeleteExpiredSparesRenewed(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	now := time.Now()
	u, _, err := db.EnsureUser(ctx, "ann@example.com", now)
	if err != nil {
		t.Fatal(err)
	}
	s, err := db.CreateSession(ctx, chat.Session{UserID: u.ID, TokenHash: "hash", CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	renew, err := db.pool.raw.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = renew.Rollback(context.Background()) }()
	if _, err := renew.Exec(ctx, `UPDATE sessions SET used_at = $1, expires_at = $2 WHERE id = $3`, ts(now), ts(now.Add(time.Hour)), s.ID); err != nil {
		t.Fatal(err)
	}
	var n int
	err = untilWaiting(t, db, "sessions", func() (err error) {
		n, err = db.DeleteExpired(ctx, now, 100)
		return err
	}, func() {
		if err := renew.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	})
	if err != nil {
		t.Fatalf("DeleteExpired: %v", err)
	}
	var left int
	if err := db.pool.raw.QueryRow(ctx, `SELECT count(*) FROM sessions WHERE id = $1`, s.ID).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 1 || n != 0 {
		t.Errorf("the sweep removed %d rows and left %d of the session renewed while it waited; want 0 removed, the session left", n, left)
	}
}
