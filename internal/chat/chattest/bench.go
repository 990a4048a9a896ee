package chattest

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// The stores' benchmarks, which each store's tests run on a store of its
// own (docs/benchmarks.md, targets 3 and 6).

// benchRooms makes a user and n rooms in s.
func benchRooms(b *testing.B, s chat.Store, n int) (userID int64, roomIDs []int64) {
	b.Helper()
	ctx := b.Context()
	u, _, err := s.EnsureUser(ctx, "ann@example.com", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	roomIDs = make([]int64, n)
	for i := range roomIDs {
		r, _, err := s.EnsureRoom(ctx, "room-"+strconv.Itoa(i), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		roomIDs[i] = r.ID
	}
	return u.ID, roomIDs
}

// benchAppend appends message n of user to room.
func benchAppend(b *testing.B, s chat.Store, user, room, n int64) error {
	_, _, err := s.Append(b.Context(), chat.NewMessage{
		ConvID: room, Kind: chat.KindText, SenderID: user, ClientID: strconv.FormatInt(n, 10), Body: "hello, world", At: time.Now(),
	})
	return err
}

// BenchmarkAppend appends one message at a time, back to back: a
// transaction each.
func BenchmarkAppend(b *testing.B, s chat.Store) {
	user, rooms := benchRooms(b, s, 1)
	b.ReportAllocs()
	n := int64(0)
	for b.Loop() {
		n++
		if err := benchAppend(b, s, user, rooms[0], n); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkAppendParallel is target 6: 200 concurrent senders over 100
// rooms.
func BenchmarkAppendParallel(b *testing.B, s chat.Store) {
	user, rooms := benchRooms(b, s, 100)
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(100) // 100 per core: 200 concurrent senders on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if err := benchAppend(b, s, user, rooms[i%int64(len(rooms))], i); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkAppendAfterPause is the store's part of light load (target 3):
// one message at a time, each after a pause, so that no batching helps,
// caches have gone cold and the store has done whatever it does after a
// write (SQLite: checkpoint). Its metric, µs/append, is the mean time of one
// Append; ns/op counts the pauses too.
func BenchmarkAppendAfterPause(b *testing.B, s chat.Store, pause time.Duration) {
	const appends = 25
	user, rooms := benchRooms(b, s, 1)
	var spent time.Duration
	n := int64(0)
	for b.Loop() {
		for range appends {
			time.Sleep(pause)
			n++
			t0 := time.Now()
			err := benchAppend(b, s, user, rooms[0], n)
			spent += time.Since(t0)
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(spent.Microseconds())/float64(n), "µs/append")
}

// BenchmarkJoinRoomParallel makes b.N distinct users join one room, 200 at
// a time on 2 cores, each join announced with a message as in a room under
// --announce-max: a crowd entering one room, whose joins serialize on it.
// The users are made before the timer starts.
func BenchmarkJoinRoomParallel(b *testing.B, s chat.Store) {
	_, rooms := benchRooms(b, s, 1)
	users := make([]int64, b.N)
	for i := range users {
		u, _, err := s.EnsureUser(b.Context(), "joiner"+strconv.Itoa(i)+"@example.com", time.Now())
		if err != nil {
			b.Fatal(err)
		}
		users[i] = u.ID
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(100)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			u := users[n.Add(1)-1]
			if _, joined, err := s.JoinRoom(b.Context(), rooms[0], u, time.Now(), true); err != nil || !joined {
				b.Errorf("join user %d: joined %v, %v", u, joined, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "joins/s")
}

// BenchmarkHistoryPage reads the newest page of 50 messages of one of 100
// rooms whose 10,000 messages came in turn, each read right after a commit,
// as in a live server, where reads follow writes (SQLite: a commit drops
// the read connections' page caches). Its metric, µs/page, is the mean time
// of one read; ns/op counts the commit too.
func BenchmarkHistoryPage(b *testing.B, s chat.Store) {
	const rooms, perRoom, senders, page = 100, 100, 8, 50
	user, roomIDs := benchRooms(b, s, rooms)
	var n atomic.Int64
	errs := make(chan error, senders)
	for range senders {
		go func() {
			for {
				i := n.Add(1)
				if i > rooms*perRoom {
					errs <- nil
					return
				}
				if err := benchAppend(b, s, user, roomIDs[i%rooms], i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range senders {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	var spent time.Duration
	reads := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		i := n.Add(1)
		if err := benchAppend(b, s, user, roomIDs[i*37%rooms], i); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		ms, err := s.Messages(b.Context(), roomIDs[i*53%rooms], chat.Page{Limit: page})
		spent += time.Since(t0)
		reads++
		if err != nil {
			b.Fatal(err)
		}
		if len(ms) != page {
			b.Fatalf("a page of %d messages; want %d", len(ms), page)
		}
	}
	b.ReportMetric(float64(spent.Microseconds())/float64(reads), "µs/page")
}
