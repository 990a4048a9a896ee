package sqlite

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"

	"github.com/parley-chat/parley/internal/chat"
)

// Group commit. SQLite has one writer, and a commit costs far more than
// the statements before it, so concurrent Appends are queued to one
// goroutine that stores as many as are waiting (up to maxBatch) in one
// transaction. Each caller is answered only after that transaction has
// committed, so an acknowledged message is always stored.

const maxBatch = 512

// startBatcher starts the goroutine that commits Appends.
func (db *DB) startBatcher() {
	db.appends = chat.NewCommitQueue(queuedAppends, chat.ErrStoreClosed)
	db.batcherDone = make(chan struct{})
	go db.batcher(db.appends.Requests())
}

// queuedAppends bounds the Appends queued while a commit runs.
const queuedAppends = 4 * maxBatch

// stopBatcher makes Append refuse new work and waits until what was
// queued before has been committed.
func (db *DB) stopBatcher() {
	if db.appends == nil {
		return
	}
	db.appends.Close()
	<-db.batcherDone
}

func (db *DB) batcher(appends <-chan *chat.AppendRequest) {
	defer close(db.batcherDone)
	batch := make([]*chat.AppendRequest, 0, maxBatch)
	for {
		req, ok := <-appends
		if !ok {
			return
		}
		batch = append(batch[:0], req)
		// Take in every request that is ready. Yielding lets the callers
		// answered by the last commit run first: those that append again
		// at once join this batch instead of waiting through one more
		// commit, and a bigger batch rewrites fewer pages per message. The
		// batch is closed once a yield brings nothing new.
	collect:
		for yielded := false; len(batch) < maxBatch; {
			select {
			case req, ok := <-appends:
				if !ok {
					break collect
				}
				batch = append(batch, req)
				yielded = false
				continue
			default:
			}
			if yielded {
				break
			}
			runtime.Gosched()
			yielded = true
		}
		db.commitBatch(batch)
		clear(batch)
	}
}

// commitBatch stores batch in one transaction and answers every request.
// A request whose conversation does not exist, whose sender is not a
// member or not the peer's friend when that is asked, fails alone; any
// other error fails the whole batch, and nothing of it is stored.
func (db *DB) commitBatch(batch []*chat.AppendRequest) {
	results := make([]chat.AppendResult, len(batch))
	err := db.writeRaw(context.Background(), func(r runner) error {
		a := newAppender(r)
		if err := loadConvs(context.Background(), r, a, batch); err != nil {
			return err
		}
		for i, req := range batch {
			if err := req.Ctx.Err(); err != nil {
				results[i].Err = err
				continue
			}
			msg, created, err := a.append(context.Background(), req.M)
			if errors.Is(err, chat.ErrNotFound) || errors.Is(err, chat.ErrNotFriends) {
				results[i].Err = err
				continue
			}
			if err != nil {
				return err
			}
			results[i] = chat.AppendResult{Msg: msg, Created: created}
		}
		return a.flush(context.Background())
	})
	for i, req := range batch {
		if err != nil {
			results[i] = chat.AppendResult{Err: err}
		}
		req.Answer(results[i])
	}
}

// qLastAll reads the last seq of a batch's conversations, listed in a JSON
// array, in one statement instead of one per conversation: through
// database/sql and modernc.org/sqlite, running a statement costs more than
// the little work each of those lookups does.
const qLastAll = `SELECT id, kind, last_seq FROM conversations WHERE id IN (SELECT value FROM json_each(?))`

// batchQueries are the statements run through writeRaw: those of
// commitBatch's transactions, and MarkRead's.
var batchQueries = []string{qBegin, qCommit, qRollback, qLastAll, qLookup, qLast, qInsert, qName, qBump, qRead, qMember, qFriends,
	qReadState, qSetRead}

// prepareBatch prepares batchQueries on the write connection when the
// database opens: a mistake in them fails Open, and the first message pays
// no parsing.
func (db *DB) prepareBatch(ctx context.Context) error {
	conn, err := db.rw.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c := db.raw.on(dc)
		for _, q := range batchQueries {
			cs, err := c.stmt(ctx, q)
			if err != nil {
				return fmt.Errorf("prepare %q: %w", q, err)
			}
			cs.release()
		}
		return nil
	})
}

// writeRaw runs fn in a write transaction, as write does, but on the write
// connection's driver connection (rawconn.go). If fn fails, nothing of it
// is stored.
//
// The connection is kept whatever fails (for Memory it is the database). A
// failed COMMIT may have ended the transaction already, so a ROLLBACK that
// fails is only reported; if the transaction was in fact left open, the
// next BEGIN fails on it, and writeRaw rolls it back and begins again.
// An error of a lock held elsewhere is chat.ErrUnavailable (mapErr).
func (db *DB) writeRaw(ctx context.Context, fn func(r runner) error) error {
	return mapErr(db.writeRawTx(ctx, fn))
}

func (db *DB) writeRawTx(ctx context.Context, fn func(r runner) error) error {
	conn, err := db.rw.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// A ROLLBACK runs whatever becomes of ctx: a transaction left open
	// would fail the next one on this connection, database/sql's too.
	undo := context.WithoutCancel(ctx)
	err = conn.Raw(func(dc any) error {
		c := db.raw.on(dc)
		if _, err := c.exec(ctx, qBegin); err != nil {
			if _, rerr := c.exec(undo, qRollback); rerr != nil {
				return err // no transaction was open: BEGIN failed on its own
			}
			if _, err := c.exec(ctx, qBegin); err != nil {
				return err
			}
		}
		err := fn(c)
		if err == nil {
			if _, err = c.exec(ctx, qCommit); err == nil {
				return nil
			}
		}
		if _, rerr := c.exec(undo, qRollback); rerr != nil {
			return errors.Join(err, fmt.Errorf("roll back: %w", rerr))
		}
		return err
	})
	if err != nil {
		return err
	}
	db.wrote()
	return nil
}

// loadConvs reads the last seq of the conversations that batch appends to,
// so that a's lookups find them. A missing conversation is left for a to
// report.
func loadConvs(ctx context.Context, r runner, a *appender, batch []*chat.AppendRequest) error {
	listed := make(map[int64]bool, len(batch))
	ids := []byte{'['}
	for _, req := range batch {
		id := req.M.ConvID
		if listed[id] || a.convs[id] != nil || req.Ctx.Err() != nil {
			continue
		}
		if len(listed) > 0 {
			ids = append(ids, ',')
		}
		ids = strconv.AppendInt(ids, id, 10)
		listed[id] = true
	}
	if len(listed) < 2 {
		return nil // a's own lookup costs less
	}
	return r.query(ctx, qLastAll, []any{string(append(ids, ']'))}, func(row scanner) error {
		var id int64
		c := &convSeq{}
		if err := row.Scan(&id, &c.kind, &c.last); err != nil {
			return err
		}
		a.convs[id] = c
		return nil
	})
}
