package postgres

import (
	"context"
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
// of its own (no such conversation, not a member, not the peer's friend,
// text PostgreSQL cannot store) fails alone: appendAll sorts those out in
// SQL, without an error that would abort the transaction.
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

// startBatcher starts the goroutines that commit Appends.
func (db *DB) startBatcher() {
	db.appends = make([]*chat.CommitQueue, batchers)
	db.batcherDone = make(chan struct{})
	var wg sync.WaitGroup
	for i := range db.appends {
		db.appends[i] = chat.NewCommitQueue(queuedAppends, chat.ErrStoreClosed)
		wg.Go(func() { db.batcher(db.appends[i].Requests()) })
	}
	go func() {
		wg.Wait()
		close(db.batcherDone)
	}()
}

// queuedAppends bounds the Appends queued to one goroutine while it
// commits.
const queuedAppends = 2 * maxBatch

// stopBatcher makes Append refuse new work and waits until what was
// queued before has been committed.
func (db *DB) stopBatcher() {
	if db.appends == nil {
		return
	}
	for _, q := range db.appends {
		q.Close()
	}
	<-db.batcherDone
}

func (db *DB) batcher(appends <-chan *chat.AppendRequest) {
	batch := make([]*chat.AppendRequest, 0, maxBatch)
	for {
		req, ok := <-appends
		if !ok {
			return
		}
		batch = append(batch[:0], req)
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
func drain(appends <-chan *chat.AppendRequest, batch []*chat.AppendRequest) []*chat.AppendRequest {
	for len(batch) < maxBatch {
		select {
		case req, ok := <-appends:
			if !ok {
				return batch // closed: the batcher's next read ends it
			}
			batch = append(batch, req)
		default:
			return batch
		}
	}
	return batch
}

// commitBatch stores batch in one transaction and answers every request.
// A request whose conversation does not exist, whose sender is not a
// member or not the peer's friend when that is asked, or whose text cannot
// be stored fails alone; any other error fails the whole batch, and
// nothing of it is stored.
func (db *DB) commitBatch(batch []*chat.AppendRequest) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	items := make([]*appendItem, 0, len(batch))
	results := make([]chat.AppendResult, len(batch))
	for i, req := range batch {
		if err := req.Ctx.Err(); err != nil {
			results[i].Err = err
			continue
		}
		items = append(items, &appendItem{m: req.M})
	}
	err := db.appendBatch(ctx, items)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w: group commit took over %v: %w", unavailable, batchTimeout, err)
	}
	j := 0
	for i, req := range batch {
		if results[i].Err == nil {
			it := items[j]
			j++
			switch {
			case err != nil:
				results[i] = chat.AppendResult{Err: err}
			case it.err != nil:
				results[i] = chat.AppendResult{Err: it.err}
			default:
				results[i] = chat.AppendResult{Msg: it.msg, Created: it.created}
			}
		}
		req.Answer(results[i])
	}
}

// appendBatch runs appendAll in a transaction of its own: its two
// statements, sent together without BEGIN, form one implicit transaction
// that commits when both have run, so that a batch costs one round trip.
// It runs again after a deadlock or a serialization failure.
func (db *DB) appendBatch(ctx context.Context, items []*appendItem) error {
	return retrying(ctx, batchers, func() error { return appendAll(ctx, db.appendPool, items) })
}
