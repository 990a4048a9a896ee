package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// TestMemberCount checks that the member count a room carries, kept by
// triggers rather than counted, follows joins, leaves and the deletion of
// a member's account (a cascade).
func TestMemberCount(t *testing.T) {
	ctx := context.Background()
	db := mustOpenDB(t)
	now := time.Now()
	r, _, err := db.EnsureRoom(ctx, "counted", now)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for i := range 3 {
		u, _, err := db.EnsureUser(ctx, fmt.Sprintf("m%d@example.invalid", i), now)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	want := func(step string, n int) {
		t.Helper()
		got, err := db.Room(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		var counted int
		if err := db.read(ctx, func(tx *sql.Tx) error {
			return tx.QueryRowContext(ctx, `SELECT count(*) FROM members WHERE conv_id = ?`, r.ID).Scan(&counted)
		}); err != nil {
			t.Fatal(err)
		}
		if got.Members != n || counted != n {
			t.Errorf("after %s: Room(%d).Members = %d, rows in members = %d; want %d", step, r.ID, got.Members, counted, n)
		}
	}
	want("creating", 0)
	for _, id := range ids {
		if _, _, err := db.JoinRoom(ctx, r.ID, id, now, true); err != nil {
			t.Fatal(err)
		}
	}
	want("three joins", 3)
	if _, joined, err := db.JoinRoom(ctx, r.ID, ids[0], now, true); err != nil || joined {
		t.Fatalf("JoinRoom of a member = %v, %v; want false, nil", joined, err)
	}
	want("joining twice", 3)
	if _, _, _, err := db.LeaveRoom(ctx, r.ID, ids[1], now, true, chat.Event{Type: chat.EventRemoved, ConvID: r.ID, Reason: "left"}); err != nil {
		t.Fatal(err)
	}
	want("a leave", 2)
	if err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, ids[2])
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want("deleting a member's account", 1)
}
