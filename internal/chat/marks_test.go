package chat

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// batchStore is a Store whose MarkRead records each batch's size and holds
// the first until released; a mark with seq 0 fails its whole batch, one of
// user 0 alone, and one with seq -1 panics.
type batchStore struct {
	Store
	entered chan struct{} // closed when the first batch arrives
	release chan struct{}

	mu    sync.Mutex
	sizes []int
}

func (s *batchStore) MarkRead(ctx context.Context, marks []ReadMark) error {
	s.mu.Lock()
	s.sizes = append(s.sizes, len(marks))
	first := len(s.sizes) == 1
	s.mu.Unlock()
	if first {
		close(s.entered)
		<-s.release
	}
	for i := range marks {
		m := &marks[i]
		switch {
		case m.Seq == -1:
			panic("the store panicked")
		case m.Seq == 0:
			return errors.New("the batch failed")
		case m.UserID == 0:
			m.Err = ErrNotFound
		default:
			m.State, m.Moved = ReadState{ConvID: m.ConvID, ReadSeq: m.Seq, LastSeq: 1 << 20}, true
		}
	}
	return nil
}

// TestReadBatch: moves that arrive while a batch is stored go together in
// the next, at most maxReadBatch at a time; every caller gets its own
// outcome, and a failed batch fails each of its moves.
func TestReadBatch(t *testing.T) {
	st := &batchStore{entered: make(chan struct{}), release: make(chan struct{})}
	var b readBatch
	ctx := context.Background()
	const n = maxReadBatch + 5 // waiting behind the first: two batches more
	got := make([]ReadMark, n+1)
	var wg sync.WaitGroup
	wg.Go(func() { got[0] = b.mark(ctx, st, ReadMark{ConvID: 1, UserID: 1, Seq: 1}) })
	<-st.entered
	for i := 1; i <= n; i++ {
		m := ReadMark{ConvID: 1, UserID: int64(i + 1), Seq: int64(i + 1)}
		switch i {
		case 7:
			m.UserID = 0 // not a member
		case n:
			m.Seq = 0 // fails the last batch
		}
		wg.Go(func() { got[i] = b.mark(ctx, st, m) })
		waitQueued(t, &b, i) // so that they queue in order
	}
	close(st.release)
	wg.Wait()

	if want := []int{1, maxReadBatch, n - maxReadBatch}; !slices.Equal(st.sizes, want) {
		t.Errorf("batches of %v; want %v", st.sizes, want)
	}
	for i, m := range got {
		switch {
		case i == 7:
			if !errors.Is(m.Err, ErrNotFound) {
				t.Errorf("mark %d of a non-member: err %v; want ErrNotFound", i, m.Err)
			}
		case i > maxReadBatch: // in the failed batch
			if m.Err == nil {
				t.Errorf("mark %d in the failed batch: no error", i)
			}
		case m.Err != nil || !m.Moved || m.State.ReadSeq != int64(i+1) || m.UserID != int64(i+1):
			t.Errorf("mark %d: %+v; want user %d moved to %d", i, m, i+1, i+1)
		}
	}
	if b.busy || b.waiting != nil {
		t.Errorf("after the batches: busy %v, %d waiting; want idle", b.busy, len(b.waiting))
	}
	// Idle again: a lone move is a batch of its own at once.
	if m := b.mark(ctx, st, ReadMark{ConvID: 2, UserID: 3, Seq: 4}); m.Err != nil || m.State.ReadSeq != 4 {
		t.Errorf("lone mark: %+v", m)
	}
	if len(st.sizes) != 4 || st.sizes[3] != 1 {
		t.Errorf("batches of %v; want a fourth of 1", st.sizes)
	}
}

// waitQueued waits until n moves wait in b, for up to 10 s.
func waitQueued(t *testing.T, b *readBatch, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		queued := len(b.waiting)
		b.mu.Unlock()
		if queued == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d moves queued; want %d", queued, n)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// TestReadBatchStorePanics: a store that panics fails the moves of its
// batch, and the batches after it run: none waits for it forever.
func TestReadBatchStorePanics(t *testing.T) {
	st := &batchStore{entered: make(chan struct{}), release: make(chan struct{})}
	var b readBatch
	ctx := context.Background()
	var got ReadMark
	var wg sync.WaitGroup
	wg.Go(func() { b.mark(ctx, st, ReadMark{ConvID: 1, UserID: 1, Seq: 1}) }) // held
	<-st.entered
	wg.Go(func() {
		defer func() {
			if recover() == nil {
				t.Error("the leader of the batch that panicked did not panic")
			}
		}()
		b.mark(ctx, st, ReadMark{ConvID: 1, UserID: 2, Seq: -1})
	})
	waitQueued(t, &b, 1)
	wg.Go(func() { got = b.mark(ctx, st, ReadMark{ConvID: 1, UserID: 3, Seq: 3}) })
	waitQueued(t, &b, 2) // both in the next batch
	close(st.release)
	wg.Wait()
	if !errors.Is(got.Err, errStorePanicked) {
		t.Errorf("a move in the batch that panicked: %+v; want errStorePanicked", got)
	}
	if m := b.mark(ctx, st, ReadMark{ConvID: 1, UserID: 4, Seq: 5}); m.Err != nil || m.State.ReadSeq != 5 {
		t.Errorf("a move after the panic: %+v", m)
	}
	if want := []int{1, 2, 1}; !slices.Equal(st.sizes, want) {
		t.Errorf("batches of %v; want %v", st.sizes, want)
	}
}
