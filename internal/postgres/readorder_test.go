package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

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
	last := rooms[n-1] // EnsureRoom numbers them in order
	hold, err := db.pool.raw.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = hold.Rollback(context.Background()) }()
	if _, err := hold.Exec(ctx, `SELECT FROM members WHERE conv_id = $1 AND user_id = $2 FOR NO KEY UPDATE`, last, u.ID); err != nil {
		t.Fatal(err)
	}

	// The batch lists the rooms from last to first: the order of its
	// items is not the order of its locks.
	items := make([]*appendItem, n)
	for i := range items {
		items[i] = &appendItem{m: chat.NewMessage{ConvID: rooms[n-1-i], Kind: chat.KindText, SenderID: u.ID, Body: "hi", At: now}}
	}
	done := make(chan error, 1)
	go func() { done <- db.appendBatch(ctx, items) }()

	// Wait, a bounded time, for the batch to wait for the held row.
	deadline := time.Now().Add(10 * time.Second)
	for waiting := false; !waiting; {
		if time.Now().After(deadline) {
			t.Fatal("the batch never waited for the held read position")
		}
		select {
		case err := <-done:
			t.Fatalf("the batch ended (%v) while the last room's read position was held", err)
		case <-time.After(20 * time.Millisecond):
		}
		// A backend waiting for a lock that holds one on this schema's
		// members table (other tests' schemas have tables of their own).
		err := db.pool.raw.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks l WHERE NOT l.granted
			AND EXISTS (SELECT 1 FROM pg_locks m WHERE m.pid = l.pid AND m.relation = 'members'::regclass))`).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
	}
	var free []int64
	for _, id := range rooms[:n-1] {
		if held, err := rowHeld(ctx, db, id, u.ID); err != nil {
			t.Fatal(err)
		} else if !held {
			free = append(free, id)
		}
	}
	if len(free) > 0 {
		t.Errorf("waiting for room %d's read position, the batch holds none of rooms %v (of %v): it takes them out of order", last, free, rooms)
	}
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the batch: %v", err)
	}
	for i, it := range items {
		if it.err != nil || !it.created {
			t.Errorf("item %d: created %v, err %v", i, it.created, it.err)
		}
	}
	for _, id := range rooms {
		var read int64
		if err := db.pool.raw.QueryRow(ctx, `SELECT read_seq FROM members WHERE conv_id = $1 AND user_id = $2`, id, u.ID).Scan(&read); err != nil {
			t.Fatal(err)
		}
		var last int64
		if err := db.pool.raw.QueryRow(ctx, `SELECT last_seq FROM conversations WHERE id = $1`, id).Scan(&last); err != nil {
			t.Fatal(err)
		}
		if read != last {
			t.Errorf("room %d: the sender's read position is %d; want %d, the message sent", id, read, last)
		}
	}
}

// rowHeld reports whether another transaction holds the row of user's
// read position in conversation conv.
func rowHeld(ctx context.Context, db *DB, conv, user int64) (bool, error) {
	tx, err := db.pool.raw.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(ctx, `SELECT FROM members WHERE conv_id = $1 AND user_id = $2 FOR NO KEY UPDATE NOWAIT`, conv, user)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "55P03" { // lock_not_available
		return true, nil
	}
	return false, err
}
