package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/parley-chat/parley/internal/chat"
)

// Group commit. SQLite has one writer, and a commit costs far more than
// the statements before it, so concurrent Appends are queued to one
// goroutine that stores as many as are waiting (up to maxBatch) in one
// transaction. Each caller is answered only after that transaction has
// committed, so an acknowledged message is always stored.

const maxBatch = 512

// errClosed is returned by Append after Close.
var errClosed = errors.New("sqlite database closed")

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

// startBatcher starts the goroutine that commits Appends.
func (db *DB) startBatcher() {
	db.appends = make(chan *appendReq)
	db.closing = make(chan struct{})
	db.batcherDone = make(chan struct{})
	go db.batcher()
}

// stopBatcher makes Append refuse new work and waits for the batch in
// progress to commit.
func (db *DB) stopBatcher() {
	if db.closing == nil {
		return
	}
	close(db.closing)
	<-db.batcherDone
}

// enqueue hands m to the batcher and waits for its commit.
func (db *DB) enqueue(ctx context.Context, m chat.NewMessage) (chat.Message, bool, error) {
	req := &appendReq{ctx: ctx, m: m, res: make(chan appendRes, 1)}
	select {
	case db.appends <- req:
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

func (db *DB) batcher() {
	defer close(db.batcherDone)
	batch := make([]*appendReq, 0, maxBatch)
	for {
		select {
		case req := <-db.appends:
			batch = append(batch[:0], req)
		case <-db.closing:
			return
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case req := <-db.appends:
				batch = append(batch, req)
			default:
				break drain
			}
		}
		db.commitBatch(batch)
		clear(batch)
	}
}

// commitBatch stores batch in one transaction and answers every request.
// A request whose conversation does not exist fails alone; any other error
// fails the whole batch, and nothing of it is stored.
func (db *DB) commitBatch(batch []*appendReq) {
	results := make([]appendRes, len(batch))
	err := db.write(context.Background(), func(tx *sql.Tx) error {
		// The statements are parsed once, then kept prepared on the write
		// connection: a batch of one message costs no parsing.
		a, err := newAppender(func(q string) (*sql.Stmt, error) { return db.rwStmts.in(context.Background(), tx, q) })
		if err != nil {
			return err
		}
		for i, req := range batch {
			if err := req.ctx.Err(); err != nil {
				results[i].err = err
				continue
			}
			msg, created, err := a.append(context.Background(), req.m)
			if errors.Is(err, chat.ErrNotFound) {
				results[i].err = err
				continue
			}
			if err != nil {
				return err
			}
			results[i] = appendRes{msg: msg, created: created}
		}
		return a.flush(context.Background())
	})
	for i, req := range batch {
		if err != nil {
			results[i] = appendRes{err: err}
		}
		req.res <- results[i]
	}
}
