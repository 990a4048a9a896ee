package sqlite

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

func BenchmarkAppend(b *testing.B) {
	db := mustOpenDB(b)
	ctx := b.Context()
	u, _, err := db.EnsureUser(ctx, "ann@example.com", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	r, err := db.EnsureRoom(ctx, "general", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		_, _, err := db.Append(ctx, chat.NewMessage{
			ConvID: r.ID, Kind: chat.KindText, SenderID: u.ID, ClientID: strconv.Itoa(i), Body: "hello, world", At: time.Now(),
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendParallel(b *testing.B) {
	const rooms = 100
	db := mustOpenDB(b)
	ctx := b.Context()
	u, _, err := db.EnsureUser(ctx, "ann@example.com", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]int64, rooms)
	for i := range ids {
		r, err := db.EnsureRoom(ctx, "room-"+strconv.Itoa(i), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = r.ID
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(100) // 100 per core: 200 concurrent senders on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			_, _, err := db.Append(ctx, chat.NewMessage{
				ConvID: ids[i%rooms], Kind: chat.KindText, SenderID: u.ID, ClientID: strconv.FormatInt(i, 10), Body: "hello, world", At: time.Now(),
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAppendAfterPause is the store's part of light load (target 3):
// one message at a time, each after a pause, so that no batching helps,
// caches have gone cold and the checkpointer has done whatever it does
// after a write. Its metric, µs/append, is the mean time of one Append;
// ns/op counts the pauses too.
func BenchmarkAppendAfterPause(b *testing.B) {
	const (
		appends = 25
		pause   = 2 * checkpointEvery // time for whatever the checkpointer does after a write
	)
	db := mustOpenDB(b)
	ctx := b.Context()
	u, _, err := db.EnsureUser(ctx, "ann@example.com", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	r, err := db.EnsureRoom(ctx, "general", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	var spent time.Duration
	n := 0
	for b.Loop() {
		for range appends {
			time.Sleep(pause)
			n++
			t0 := time.Now()
			_, _, err := db.Append(ctx, chat.NewMessage{
				ConvID: r.ID, Kind: chat.KindText, SenderID: u.ID, ClientID: strconv.Itoa(n), Body: "hello, world", At: time.Now(),
			})
			spent += time.Since(t0)
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(spent.Microseconds())/float64(n), "µs/append")
}
