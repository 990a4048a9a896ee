package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/chat/chattest"
)

// TestGroupCommitMixedBatch sends many concurrent appends, some with
// repeated client IDs, some to a missing room and some that PostgreSQL
// cannot store, so that batches hold all kinds at once: each request gets
// its own answer.
func TestGroupCommitMixedBatch(t *testing.T) {
	chattest.MixedBatch(t, mustOpenDB(t), func(u chat.User, r chat.Room) []chattest.RefusedAppend {
		return []chattest.RefusedAppend{
			{What: "a NUL", Message: chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: u.ID, Body: "\x00"}, Err: chat.ErrInvalid},
			{What: "a non-member", Message: chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: u.ID + 1, Body: "x", MemberOnly: true}, Err: chat.ErrNotFound},
		}
	})
}

// TestAppendAfterClose: a send that reaches the store once it is closed
// is refused as unavailable.
func TestAppendAfterClose(t *testing.T) {
	db, err := Open(context.Background(), mustSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// The server is shutting down: unavailable (503), for the client to
	// send again, not an internal error.
	_, _, err = db.Append(context.Background(), chat.NewMessage{ConvID: 1, Kind: chat.KindText, Body: "x"})
	if !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("Append after Close = %v; want chat.ErrUnavailable", err)
	}
}

// TestRepeatAfterRefusal: in one batch, a member-only message refused (its
// sender is not a member), then the same client ID without that condition,
// and another sender's message. Each gets its own answer: the second is
// stored, not taken for a repeat of the first, which stored nothing.
func TestRepeatAfterRefusal(t *testing.T) {
	db := mustOpenDB(t)
	ctx := context.Background()
	ann, _, err := db.EnsureUser(ctx, "ann@example.com", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	bob, _, err := db.EnsureUser(ctx, "bob@example.com", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := db.EnsureRoom(ctx, "general", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Hold the room's row so that the batch in progress waits, and the
	// three requests below are queued meanwhile and taken together.
	tx := holdRow(t, db, r.ID)
	blocker := db.QueueAppend(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: bob.ID, Body: "first", At: time.Now()})
	time.Sleep(200 * time.Millisecond) // the batcher takes the blocker and waits for the lock
	refused := db.QueueAppend(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: ann.ID, ClientID: "c1",
		Body: "hi", At: time.Now(), MemberOnly: true, ConvKind: chat.ConvRoom})
	again := db.QueueAppend(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: ann.ID, ClientID: "c1",
		Body: "hi", At: time.Now()})
	other := db.QueueAppend(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: bob.ID, ClientID: "b1",
		Body: "unrelated", At: time.Now()})
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := blocker.Wait(); err != nil {
		t.Fatalf("blocker: %v", err)
	}
	_, _, err1 := refused.Wait()
	m2, _, err2 := again.Wait()
	m3, _, err3 := other.Wait()
	t.Logf("refused: %v\nagain: %+v, %v\nother: %+v, %v", err1, m2, err2, m3, err3)
	if !errors.Is(err1, chat.ErrNotMember) {
		t.Errorf("member-only append of a non-member = %v; want ErrNotMember", err1)
	}
	if err2 != nil {
		t.Errorf("the same client ID without MemberOnly = %v; want it stored (it fails none of its own checks)", err2)
	}
	if err3 != nil {
		t.Errorf("another sender's message in the same batch = %v; want it stored", err3)
	}
	ms, err := db.Messages(ctx, r.ID, chat.Page{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Body == "unrelated" && err3 != nil {
			t.Errorf("message %q stored at seq %d, yet its Append failed: %v", m.Body, m.Seq, err3)
		}
	}
}

// TestGroupCommitAfterServerEndedConnection: the server ended the group
// commit's connections while they sat idle (an operator's
// pg_terminate_backend, a restart): the next sends find out only when they
// read the server's farewell in place of their first statement's answer,
// which shows that nothing of them ran. They run again on new connections
// instead of failing.
func TestGroupCommitAfterServerEndedConnection(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	ann, general := annAndGeneral(t, db)
	other, _, err := db.EnsureRoom(ctx, "other", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rooms := []chat.Room{general, other} // one per committing goroutine
	for _, r := range rooms {
		if _, _, err := db.Append(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: ann.ID, Body: "before", At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	var pids []uint32
	for _, c := range db.appendPool.AcquireAllIdle(ctx) {
		pids = append(pids, c.Conn().PgConn().PID())
		c.Release()
	}
	if len(pids) != batchers {
		t.Fatalf("%d idle group commit connections; want %d", len(pids), batchers)
	}
	if _, err := db.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid`, pids); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		var n int
		if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])`, pids).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if i == 200 {
			t.Fatalf("the group commit's backends %v still run", pids)
		}
		time.Sleep(25 * time.Millisecond)
	}
	for _, r := range rooms {
		m, created, err := db.Append(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: ann.ID, ClientID: "c1", Body: "after", At: time.Now()})
		if err != nil || !created || m.Seq != 2 {
			t.Errorf("Append to room %d after the server ended the connection = seq %d, created %v, %v; want seq 2 stored", r.ID, m.Seq, created, err)
		}
		ms, err := db.Messages(ctx, r.ID, chat.Page{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 2 || ms[1].Body != "after" {
			t.Errorf("room %d holds %d messages (%+v); want before and after", r.ID, len(ms), ms)
		}
	}
}
