package chat

import (
	"context"
	"sync"
	"time"
)

// readBatch gathers the read-position moves of concurrent callers into one
// Store.MarkRead, one transaction. The web app moves a viewer's position
// about once a second while messages arrive, so a room of 10,000 viewers
// makes about 10,000 moves a second; in a transaction each, on SQLite's one
// writer, they left no time for the messages themselves
// (docs/benchmarks.md, target 4).
//
// It has no goroutine of its own. A caller who finds no batch under way
// leads one, of everything waiting then; once it has stored them, it hands
// the lead to the first caller still waiting, if any, and answers the
// others. So a lone move waits for nothing, moves that arrive while a batch
// is stored go together in the next, and no caller leads more than one.
type readBatch struct {
	mu      sync.Mutex
	busy    bool // a batch is under way; then waiting holds the next one's
	waiting []*markReq
}

// markReq is one caller's move, waiting in a readBatch.
type markReq struct {
	ReadMark
	wake chan struct{} // receives once: answered, or made the leader
	lead bool          // set before wake: lead the next batch
}

const (
	maxReadBatch = 512              // moves in one transaction at most
	readTimeout  = 10 * time.Second // one batch's store call
)

// mark moves a read position with others in one store call and returns
// m with its outcome.
func (b *readBatch) mark(ctx context.Context, store Store, m ReadMark) ReadMark {
	r := &markReq{ReadMark: m}
	b.mu.Lock()
	b.waiting = append(b.waiting, r)
	if b.busy {
		r.wake = make(chan struct{}, 1)
		b.mu.Unlock()
		<-r.wake // bounded by readTimeout, or by the leader's ctx
		if !r.lead {
			return r.ReadMark
		}
	} else {
		b.busy = true
		b.mu.Unlock()
	}
	b.lead(ctx, store)
	return r.ReadMark
}

// lead stores the next batch, of which the caller's move is the first,
// then passes the lead on and answers the rest of the batch.
func (b *readBatch) lead(ctx context.Context, store Store) {
	b.mu.Lock()
	n := min(len(b.waiting), maxReadBatch)
	batch := b.waiting[:n:n]
	b.waiting = b.waiting[n:]
	if len(b.waiting) == 0 {
		b.waiting = nil
	}
	b.mu.Unlock()

	marks := make([]ReadMark, n)
	for i, r := range batch {
		marks[i] = ReadMark{ConvID: r.ConvID, UserID: r.UserID, Seq: r.Seq}
	}
	var err error
	if n == 1 {
		err = store.MarkRead(ctx, marks) // the leader's alone
	} else {
		// The batch is the others' too: the leader's leaving must not
		// cut it.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readTimeout)
		err = store.MarkRead(sctx, marks)
		cancel()
	}
	for i, r := range batch {
		r.ReadMark = marks[i]
		if err != nil {
			r.Err = err
		}
	}

	b.mu.Lock()
	if len(b.waiting) > 0 {
		next := b.waiting[0]
		next.lead = true
		next.wake <- struct{}{}
	} else {
		b.busy = false
	}
	b.mu.Unlock()
	for _, r := range batch[1:] {
		r.wake <- struct{}{}
	}
}
