package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// TestGroupCommitMixedBatch sends many concurrent appends, some with
// repeated client IDs, some to a missing room and some that PostgreSQL
// cannot store, so that batches hold all kinds at once: each request gets
// its own answer.
func TestGroupCommitMixedBatch(t *testing.T) {
	db := mustOpenDB(t)
	ctx := context.Background()
	u, r := annAndGeneral(t, db)
	const senders, each = 40, 25
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created = map[string]int64{} // client ID → seq
		dups    int
	)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				cid := fmt.Sprintf("c%d", (s*each+i)/2) // every ID is sent twice
				m, ok, err := db.Append(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: u.ID, ClientID: cid, Body: "x", At: time.Now()})
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				if _, _, err := db.Append(ctx, chat.NewMessage{ConvID: 999999, Kind: chat.KindText, SenderID: u.ID, Body: "x", At: time.Now()}); !errors.Is(err, chat.ErrNotFound) {
					t.Errorf("Append to a missing room = %v; want ErrNotFound", err)
				}
				if _, _, err := db.Append(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: u.ID, Body: "\x00", At: time.Now()}); !errors.Is(err, chat.ErrInvalid) {
					t.Errorf("Append of a NUL = %v; want ErrInvalid", err)
				}
				if _, _, err := db.Append(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: u.ID + 1, Body: "x", At: time.Now(), MemberOnly: true}); !errors.Is(err, chat.ErrNotFound) {
					t.Errorf("Append of a non-member = %v; want ErrNotFound", err)
				}
				mu.Lock()
				if ok {
					if _, seen := created[cid]; seen {
						t.Errorf("client ID %s stored twice", cid)
					}
					created[cid] = m.Seq
				} else {
					dups++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(created) != senders*each/2 || dups != senders*each/2 {
		t.Fatalf("stored %d, duplicates %d; want %d each", len(created), dups, senders*each/2)
	}
	ms, err := db.Messages(ctx, r.ID, chat.Page{After: 0, Before: 100000, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if m.Seq != int64(i+1) {
			t.Fatalf("message %d has seq %d; want a gap-free sequence", i, m.Seq)
		}
		if created[m.ClientID] != m.Seq {
			t.Errorf("seq %d holds %s; Append returned seq %d for it", m.Seq, m.ClientID, created[m.ClientID])
		}
	}
	if len(ms) != len(created) {
		t.Errorf("room holds %d messages; want %d", len(ms), len(created))
	}
	room, err := db.Room(ctx, r.ID)
	if err != nil || room.LastSeq != int64(len(created)) {
		t.Errorf("room last_seq = %d, %v; want %d", room.LastSeq, err, len(created))
	}
}

func TestAppendAfterClose(t *testing.T) {
	db, err := Open(context.Background(), mustSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Append(context.Background(), chat.NewMessage{ConvID: 1, Kind: chat.KindText, Body: "x"}); err == nil {
		t.Error("Append after Close = nil error")
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
