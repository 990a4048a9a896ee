package postgres

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// Group commit. A transaction costs far more than the rows it stores (a
// round trip, a WAL flush), and concurrent Appends to one conversation
// would queue on its row lock anyway, so concurrent Appends are handed to
// a few goroutines per DB, each of which stores as many as are waiting (up
// to maxBatch) in one transaction of two statements (appendAll). Each
// caller is answered only after that transaction has committed, so an
// acknowledged message is always stored. One request failing for reasons
// of its own (no such conversation, not a member, text PostgreSQL cannot
// store) fails alone: appendAll sorts those out in SQL, without an error
// that would abort the transaction.
//
// Each goroutine serves its share of the conversations (by id), so the
// transactions of one node never wait for each other's row locks and run
// on the server in parallel; with several nodes, transactions that share
// conversations queue on their rows, which appendAll locks in id order.

const maxBatch = 1024

// batchers is the number of group-commit goroutines of a DB.
const batchers = 2

// batchTimeout bounds one group commit, since it runs on behalf of callers
// whose contexts it does not wait for.
const batchTimeout = 30 * time.Second

// errClosed is returned by Append after Close.
var errClosed = errors.New("postgres database closed")

type appendReq struct {
	ctx context.Context
	m   chat.NewMessage
	res chan appendRes
}

type appendRes struct {
	msg     chat.Message
	created bool
	err     error
}

// startBatcher starts the goroutines that commit Appends.
func (db *DB) startBatcher() {
	db.appends = make([]chan *appendReq, batchers)
	db.closing = make(chan struct{})
	db.batcherDone = make(chan struct{})
	var wg sync.WaitGroup
	for i := range db.appends {
		db.appends[i] = make(chan *appendReq)
		wg.Go(func() { db.batcher(db.appends[i]) })
	}
	go func() {
		wg.Wait()
		close(db.batcherDone)
	}()
}

// stopBatcher makes Append refuse new work and waits for the batch in
// progress to commit.
func (db *DB) stopBatcher() {
	if db.closing == nil {
		return
	}
	select {
	case <-db.closing:
	default:
		close(db.closing)
	}
	<-db.batcherDone
}

// enqueue hands m to the batcher and waits for its commit.
func (db *DB) enqueue(ctx context.Context, m chat.NewMessage) (chat.Message, bool, error) {
	req := &appendReq{ctx: ctx, m: m, res: make(chan appendRes, 1)}
	select {
	case <-db.closing:
		return chat.Message{}, false, errClosed
	default:
	}
	select {
	case db.appends[uint64(m.ConvID)%uint64(len(db.appends))] <- req:
	case <-ctx.Done():
		return chat.Message{}, false, ctx.Err()
	case <-db.closing:
		return chat.Message{}, false, errClosed
	}
	// Once queued, wait for the outcome even if ctx ends: the batcher
	// skips requests whose context has ended before it starts them, and
	// otherwise the caller learns whether its message was stored.
	r := <-req.res
	return r.msg, r.created, r.err
}

func (db *DB) batcher(appends <-chan *appendReq) {
	batch := make([]*appendReq, 0, maxBatch)
	for {
		select {
		case req := <-appends:
			batch = append(batch[:0], req)
		case <-db.closing:
			return
		}
		// Take what is waiting, then what the senders answered last time
		// queue once they run: batches grow, and a lone sender waits for
		// no more than a yield.
		batch = drain(appends, batch)
		runtime.Gosched()
		batch = drain(appends, batch)
		db.commitBatch(batch)
		clear(batch)
	}
}

// drain appends to batch the requests waiting in appends, up to maxBatch.
func drain(appends <-chan *appendReq, batch []*appendReq) []*appendReq {
	for len(batch) < maxBatch {
		select {
		case req := <-appends:
			batch = append(batch, req)
		default:
			return batch
		}
	}
	return batch
}

// commitBatch stores batch in one transaction and answers every request.
// A request whose conversation does not exist, whose sender is not a
// member when it must be, or whose text cannot be stored fails alone; any
// other error fails the whole batch, and nothing of it is stored.
func (db *DB) commitBatch(batch []*appendReq) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	items := make([]*appendItem, 0, len(batch))
	results := make([]appendRes, len(batch))
	for i, req := range batch {
		if err := req.ctx.Err(); err != nil {
			results[i].err = err
			continue
		}
		items = append(items, &appendItem{m: req.m})
	}
	err := db.appendBatch(ctx, items)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w: group commit took over %v: %w", unavailable, batchTimeout, err)
	}
	j := 0
	for i, req := range batch {
		if results[i].err == nil {
			it := items[j]
			j++
			switch {
			case err != nil:
				results[i] = appendRes{err: err}
			case it.err != nil:
				results[i] = appendRes{err: it.err}
			default:
				results[i] = appendRes{msg: it.msg, created: it.created}
			}
		}
		req.res <- results[i]
	}
}

// appendBatch runs appendAll in a transaction of its own: its two
// statements, sent together without BEGIN, form one implicit transaction
// that commits when both have run, so that a batch costs one round trip.
// It runs again after a deadlock or a serialization failure.
func (db *DB) appendBatch(ctx context.Context, items []*appendItem) error {
	for attempt := 1; ; attempt++ {
		err := appendAll(ctx, db.appendPool, items)
		if err == nil {
			return nil
		}
		if attempt < maxAttempts && retryable(err) && ctx.Err() == nil {
			continue
		}
		return mapErr(ctx, err)
	}
}
