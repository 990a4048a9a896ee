package postgres

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

func TestDebugAppendAll(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	u, _, _ := db.EnsureUser(ctx, "ann@example.com", time.Now())
	ids := make([]int64, 100)
	for i := range ids {
		r, _ := db.EnsureRoom(ctx, "room-"+strconv.Itoa(i), time.Now())
		ids[i] = r.ID
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LOAD 'auto_explain'"); err != nil {
		t.Fatal(err)
	}
	conn.Exec(ctx, "SET auto_explain.log_min_duration = 8")
	conn.Exec(ctx, "SET auto_explain.log_analyze = on")
	conn.Exec(ctx, "SET auto_explain.log_nested_statements = on")
	n := 0
	for k := range 30 {
		items := make([]*appendItem, 128)
		for i := range items {
			n++
			items[i] = &appendItem{m: chat.NewMessage{ConvID: ids[n%100], Kind: chat.KindText, SenderID: u.ID, ClientID: strconv.Itoa(n), Body: "hello", At: time.Now()}}
		}
		t0 := time.Now()
		if err := appendAll(ctx, conn, items); err != nil {
			t.Fatal(err)
		}
		fmt.Println(k, time.Since(t0))
	}
}
