package chat

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// readBatch gathers the read-position moves of concurrent callers into one
// Store.MarkRead, one transaction. The web app moved a viewer's position
// about once a second while messages arrive (now every 5 s in a room), so
// a room of 10,000 viewers made about 10,000 moves a second; in a
// transaction each, on SQLite's one writer, they left no time for the
// messages themselves (docs/benchmarks.md, target 4). A group's members
// still move once a second, and together.
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
	// Whatever becomes of the store's call, a panic included (net/http
	// recovers a handler's), the batch is answered and the lead passed
	// on: no later move may wait for a batch that never ends.
	err := errStorePanicked
	defer func() {
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
	}()
	if n == 1 {
		err = store.MarkRead(ctx, marks) // the leader's alone
	} else {
		// The batch is the others' too: the leader's leaving must not
		// cut it.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readTimeout)
		defer cancel()
		err = store.MarkRead(sctx, marks)
	}
}

var errStorePanicked = errors.New("the store panicked moving read positions")

// receipts holds, for each conversation whose receipts are due, the moves
// made since the last went out (user ID → seq), to go out together when
// Config.ReceiptDelay or Config.ReceiptEvery has passed. A conversation is
// here exactly while a flush of it is due. For a direct conversation with
// moves waiting, pairs holds its two members: the moves go out only if the
// two may still message each other then (hides), as when they were made.
type receipts struct {
	mu    sync.Mutex
	convs map[int64]map[int64]int64
	pairs map[int64][2]int64
}

// receipt tells the members of conversation id that userID's read position
// is now seq: once Config.ReceiptDelay has passed, with the moves made
// until then, if none went out in the last Config.ReceiptEvery, else with
// every other move until the end of it, in one event. peer is the other
// member of a direct conversation, 0 for a group.
func (s *Service) receipt(id, userID, peer, seq int64) {
	r := &s.receipts
	r.mu.Lock()
	defer r.mu.Unlock()
	if peer != 0 {
		if r.pairs == nil {
			r.pairs = make(map[int64][2]int64)
		}
		r.pairs[id] = [2]int64{userID, peer}
	}
	if waiting, due := r.convs[id]; due {
		waiting[userID] = max(waiting[userID], seq)
		return
	}
	if r.convs == nil {
		r.convs = make(map[int64]map[int64]int64)
	}
	r.convs[id] = map[int64]int64{userID: seq}
	time.AfterFunc(s.cfg.ReceiptDelay, func() { s.flushReceipts(id) })
}

// flushReceipts publishes the moves waiting in conversation id, if any
// (in a direct conversation, if its two may still message each other),
// and keeps gathering for another Config.ReceiptEvery; with none, the
// conversation's next move waits only Config.ReceiptDelay.
func (s *Service) flushReceipts(id int64) {
	r := &s.receipts
	r.mu.Lock()
	waiting := r.convs[id]
	if len(waiting) == 0 {
		delete(r.convs, id)
		r.mu.Unlock()
		return
	}
	r.convs[id] = make(map[int64]int64)
	pair, direct := r.pairs[id]
	delete(r.pairs, id)
	r.mu.Unlock()
	time.AfterFunc(s.cfg.ReceiptEvery, func() { s.flushReceipts(id) })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A move waits up to ReceiptEvery, and one of the two may have blocked
	// the other, or unfriended them, meanwhile, on any node: then neither
	// gets the other's position, a move made before it included.
	if direct && s.CanMessage(ctx, pair[0], pair[1]) != nil {
		return
	}
	ev := Event{Type: EventReceipts, ConvID: id, Positions: make([]ReadPosition, 0, len(waiting))}
	for u, seq := range waiting {
		ev.Positions = append(ev.Positions, ReadPosition{UserID: u, Seq: seq})
	}
	slices.SortFunc(ev.Positions, func(a, b ReadPosition) int { return cmp.Compare(a.UserID, b.UserID) })
	if len(ev.Positions) == 1 {
		p := ev.Positions[0]
		ev = Event{Type: EventReceipt, ConvID: id, UserID: p.UserID, Seq: p.Seq}
	}
	s.publish(ctx, ConvTopic(id), ev)
}
