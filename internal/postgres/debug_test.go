package postgres

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

func TestDebugBatch(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	u, _, _ := db.EnsureUser(ctx, "ann@example.com", time.Now())
	ids := make([]int64, 100)
	for i := range ids {
		r, _ := db.EnsureRoom(ctx, "room-"+strconv.Itoa(i), time.Now())
		ids[i] = r.ID
	}
	var n atomic.Int64
	done := make(chan struct{})
	start := time.Now()
	for range 200 {
		go func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				i := n.Add(1)
				db.Append(ctx, chat.NewMessage{ConvID: ids[i%100], Kind: chat.KindText, SenderID: u.ID, ClientID: strconv.FormatInt(i, 10), Body: "hello", At: time.Now()})
			}
		}()
	}
	time.Sleep(3 * time.Second)
	close(done)
	t.Logf("%d msgs in %v: %.0f/s", n.Load(), time.Since(start), float64(n.Load())/time.Since(start).Seconds())
}
