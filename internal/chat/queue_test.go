package chat_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

var errQueueClosed = errors.New("queue closed")

// commitAll answers every request of q with its message as seq, in the
// order read, until q's requests end; it returns how many it answered.
func commitAll(q *chat.CommitQueue) <-chan int {
	done := make(chan int, 1)
	go func() {
		n := 0
		for req := range q.Requests() {
			n++
			req.Answer(chat.AppendResult{Msg: chat.Message{ConvID: req.M.ConvID, Seq: int64(n), Body: req.M.Body}, Created: true})
		}
		done <- n
	}()
	return done
}

// TestCommitQueueClose queues from many goroutines while the queue
// closes: every append is either committed or refused with the queue's
// error, none waits for ever, and what was queued is all committed.
func TestCommitQueueClose(t *testing.T) {
	q := chat.NewCommitQueue(4, errQueueClosed)
	committed := commitAll(q)
	var stored, refused atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			<-start
			for range 200 {
				_, created, err := q.Queue(context.Background(), chat.NewMessage{ConvID: 1}).Wait()
				switch {
				case err == nil && created:
					stored.Add(1)
				case errors.Is(err, errQueueClosed):
					refused.Add(1)
				default:
					t.Errorf("Wait = _, %v, %v; want stored or refused as closed", created, err)
				}
			}
		})
	}
	close(start)
	time.Sleep(time.Millisecond)
	q.Close()
	q.Close() // a second Close is harmless
	waitDone(t, &wg)
	select {
	case n := <-committed:
		if int64(n) != stored.Load() {
			t.Errorf("committer answered %d; %d were stored", n, stored.Load())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the committer's requests did not end after Close")
	}
	if stored.Load()+refused.Load() != 8*200 {
		t.Errorf("%d stored + %d refused; want %d in all", stored.Load(), refused.Load(), 8*200)
	}
	if _, _, err := q.Queue(context.Background(), chat.NewMessage{ConvID: 1}).Wait(); !errors.Is(err, errQueueClosed) {
		t.Errorf("Queue after Close: %v; want %v", err, errQueueClosed)
	}
}

// TestCommitQueueOrder checks that the requests come in the order queued
// and that a full buffer makes Queue wait, until its context ends.
func TestCommitQueueOrder(t *testing.T) {
	q := chat.NewCommitQueue(3, errQueueClosed)
	var ps []chat.PendingAppend
	for _, b := range []string{"a", "b", "c"} {
		ps = append(ps, q.Queue(context.Background(), chat.NewMessage{ConvID: 1, Body: b}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, _, err := q.Queue(ctx, chat.NewMessage{ConvID: 1, Body: "d"}).Wait(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Queue on a full buffer: %v; want %v", err, context.DeadlineExceeded)
	}
	committed := commitAll(q)
	for i, p := range ps {
		m, _, err := p.Wait()
		if err != nil || m.Seq != int64(i+1) || m.Body != string(rune('a'+i)) {
			t.Errorf("request %d: seq %d, body %q, %v; want seq %d, body %q", i, m.Seq, m.Body, err, i+1, string(rune('a'+i)))
		}
	}
	q.Close()
	if n := <-committed; n != 3 {
		t.Errorf("committed %d; want 3", n)
	}
}

func waitDone(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("appends still wait 10 s after Close")
	}
}

// TestCommitQueueAllocs: a queued append costs one allocation, its
// request, which holds its outcome too. A channel for the outcome was one
// more per send, and asking a context with a deadline for its Done
// channel while the buffer has room another (docs/benchmarks-journal.md,
// target 6).
func TestCommitQueueAllocs(t *testing.T) {
	q := chat.NewCommitQueue(4, errQueueClosed)
	defer q.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var failed error
	allocs := testing.AllocsPerRun(100, func() {
		ctx, cancel := context.WithCancel(ctx) // a fresh one: Done is made on its first call
		p := q.Queue(ctx, chat.NewMessage{ConvID: 7, Body: "hi"})
		req := <-q.Requests()
		req.Answer(chat.AppendResult{Msg: chat.Message{ConvID: 7, Seq: 1}, Created: true})
		if m, created, err := p.Wait(); (m.Seq != 1 || !created || err != nil) && failed == nil {
			failed = fmt.Errorf("Wait = %v, %v, %v; want seq 1, created", m, created, err)
		}
		cancel()
	})
	if failed != nil {
		t.Fatal(failed)
	}
	ctxAllocs := testing.AllocsPerRun(100, func() {
		ctx, cancel := context.WithCancel(ctx)
		_ = ctx
		cancel()
	})
	if allocs-ctxAllocs > 1 {
		t.Fatalf("queueing and answering an append allocates %v times besides its context; want 1", allocs-ctxAllocs)
	}
}
