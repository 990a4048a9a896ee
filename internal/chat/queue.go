package chat

import (
	"context"
	"fmt"
	"sync"
)

// Queued appends. The stores commit Appends in groups: each Append is
// handed to a goroutine that stores whatever is waiting in one
// transaction. QueueAppend hands a message over and returns without
// waiting for the commit, so that a client who sends again before the
// answer (a WebSocket client with several sends in flight) adds its next
// messages to the same commits instead of waiting through one each.

// PendingAppend is an Append that a store has queued.
type PendingAppend interface {
	// Wait blocks until the message's transaction has committed or
	// failed, and returns what Append would have.
	Wait() (msg Message, created bool, err error)
}

// AppendResult is the outcome of one queued Append.
type AppendResult struct {
	Msg     Message
	Created bool
	Err     error
}

// AppendRequest is one message queued for a store's group commit. The
// committing goroutine reads Ctx and M and calls Answer exactly once.
//
// The outcome is kept in the request itself, and done tells Wait it is
// there: every send makes a request, and a channel would cost another
// allocation, with room for the outcome, per send.
type AppendRequest struct {
	Ctx  context.Context
	M    NewMessage
	res  AppendResult   // set by Answer
	done sync.WaitGroup // 1 until Answer
}

// Answer delivers r's outcome to its Wait.
func (r *AppendRequest) Answer(res AppendResult) {
	r.res = res
	r.done.Done()
}

// Wait returns r's outcome; store errors name the conversation.
func (r *AppendRequest) Wait() (Message, bool, error) {
	r.done.Wait()
	res := r.res
	if res.Err != nil {
		return Message{}, false, appendErr(r.M, res.Err)
	}
	return res.Msg, res.Created, nil
}

// appendErr is err as Wait returns it for m.
func appendErr(m NewMessage, err error) error {
	return fmt.Errorf("append message to %d: %w", m.ConvID, err)
}

// appendFailed is a PendingAppend that failed before it was queued.
type appendFailed struct {
	m   NewMessage
	err error
}

func (f appendFailed) Wait() (Message, bool, error) {
	return Message{}, false, appendErr(f.m, f.err)
}

// CommitQueue hands queued Appends to a store's committing goroutine,
// which takes them in the order they were queued: the messages one
// goroutine queues are stored in that order. Its buffer lets senders queue
// while a commit runs, so that the next batch is ready when it ends; a
// full buffer makes them wait.
type CommitQueue struct {
	mu        sync.RWMutex // read-held while queueing; Close holds it to close ch
	closed    bool
	ch        chan *AppendRequest
	errClosed error
}

// NewCommitQueue returns a queue that holds up to buffer requests, and
// whose appends fail with errClosed once it is closed.
func NewCommitQueue(buffer int, errClosed error) *CommitQueue {
	return &CommitQueue{ch: make(chan *AppendRequest, buffer), errClosed: errClosed}
}

// Queue queues m, waiting while the buffer is full, unless ctx ends first.
// Once queued, a request is answered even if ctx ends: the committer skips
// requests whose context has ended before it starts them, and otherwise
// the caller learns whether its message was stored.
func (q *CommitQueue) Queue(ctx context.Context, m NewMessage) PendingAppend {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return appendFailed{m, q.errClosed}
	}
	req := &AppendRequest{Ctx: ctx, M: m}
	req.done.Add(1)
	select {
	case q.ch <- req:
		return req
	default:
	}
	// The buffer is full. Only now ask for ctx's Done: a context with a
	// deadline makes its channel on the first call.
	select {
	case q.ch <- req:
		return req
	case <-ctx.Done():
		return appendFailed{m, ctx.Err()}
	}
}

// Requests is what the committing goroutine reads. Once the queue is
// closed, it yields what was queued before and is then closed.
func (q *CommitQueue) Requests() <-chan *AppendRequest { return q.ch }

// Close makes Queue refuse new appends; those queued before are still
// delivered by Requests, which the committer must read to its end.
func (q *CommitQueue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
}
