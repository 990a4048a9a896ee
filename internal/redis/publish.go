package redis

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// publisher sends a Broker's PUBLISH commands in pipelines: a publish made
// while a pipeline is on its way to Redis waits for it, and then goes with
// every other waiting publish in the next one, which costs one round trip
// for all of them. With a round trip per publish, the acks of a node's
// sends, which wait for their publish, waited in line for the client
// pool's connections (docs/deploy.md has the figures).
//
// A goroutine sends pipelines while any publish waits, and ends when none
// does; its callers only wait, so that each can stop waiting on its own.
// Pipelines go out one at a time, so publishes reach Redis in the order
// they were made; with several under way, one overtook another.
type publisher struct {
	b *Broker

	mu      sync.Mutex
	pending []*pubReq
	sending bool // send runs

	gone chan struct{} // closed when the Broker finds its connection lost; nil until asked for

	failed atomic.Int64 // when a publish last failed, in Unix ns
}

type pubReq struct {
	channel string
	data    []byte
	done    chan error // buffered: the sender never waits for the caller
}

// maxPipeline bounds the publishes of one pipeline.
const maxPipeline = 512

// publish sends data on channel and returns once Redis has answered, or
// ctx has ended. It fails at once while Redis is known to be down, and
// stops waiting once the Broker finds its connection lost (or, if it was
// lost already, after lostPublishTimeout): a pipeline on a dead connection
// waits for go-redis's read timeout, and without this every publish queued
// behind it, and the acks of their sends, would wait as long
// (TestBrokerPublishStopsWaitingWhenLost, TestFaultRedisRestart).
func (p *publisher) publish(ctx context.Context, channel string, data []byte) error {
	if p.down() {
		return errRedisDown
	}
	// Stop waiting when the connection is found lost or, if it is lost
	// already, after as long as a pipeline then tries: a pipeline sent
	// before may be stuck on a dead connection. (A nil channel never
	// delivers.)
	var gone <-chan struct{}
	var late <-chan time.Time
	lost := p.b.lost.Load()
	if lost {
		t := time.NewTimer(lostPublishTimeout)
		defer t.Stop()
		late = t.C
	}
	r := &pubReq{channel: channel, data: data, done: make(chan error, 1)}
	p.mu.Lock()
	if !lost {
		gone = p.goneLocked()
	}
	p.pending = append(p.pending, r)
	start := !p.sending
	p.sending = true
	p.mu.Unlock()
	if start {
		go p.send()
	}
	select {
	case err := <-r.done:
		return err
	case <-gone:
		return errRedisDown
	case <-late:
		// As a pipeline that timed out would: the next publishes fail at
		// once, instead of each waiting as long behind a stuck one.
		p.failed.Store(time.Now().UnixNano())
		return errRedisDown
	case <-ctx.Done():
		return ctx.Err()
	}
}

// down reports whether the Broker's connection is lost and a publish
// failed lately: Redis is probably down.
func (p *publisher) down() bool {
	return p.b.lost.Load() && time.Since(time.Unix(0, p.failed.Load())) < lostPublishTimeout*5
}

// goneLocked returns, with p.mu held, a channel closed once the Broker's
// connection is found lost: already closed if it is.
func (p *publisher) goneLocked() <-chan struct{} {
	if p.b.lost.Load() {
		return closedChan
	}
	if p.gone == nil {
		p.gone = make(chan struct{})
	}
	return p.gone
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// connLost is told by the Broker's reader, once it has set lost, that the
// connection is lost.
func (p *publisher) connLost() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone != nil {
		close(p.gone)
		p.gone = nil
	}
}

// send sends the pending publishes, a pipeline at a time, until none are
// left.
func (p *publisher) send() {
	for {
		p.mu.Lock()
		n := min(len(p.pending), maxPipeline)
		if n == 0 {
			p.sending = false
			p.pending = nil
			p.mu.Unlock()
			return
		}
		batch := p.pending[:n:n]
		p.pending = p.pending[n:]
		p.mu.Unlock()
		p.pipeline(batch)
	}
}

// pipeline sends batch in one pipeline and answers each publish with its
// command's result.
func (p *publisher) pipeline(batch []*pubReq) {
	ctx := context.Background()
	if p.b.lost.Load() {
		// Redis is probably down: fail at once if a publish failed
		// lately, else try briefly, rather than let go-redis dial and
		// retry for seconds while sends wait for their acks. If only this
		// node's pub/sub connection broke, publishes still succeed and
		// reach the other nodes.
		if p.down() {
			for _, r := range batch {
				r.done <- errRedisDown
			}
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, lostPublishTimeout)
		defer cancel()
	}
	cmds, err := p.b.rdb.Pipelined(ctx, func(pl goredis.Pipeliner) error {
		for _, r := range batch {
			_ = pl.Process(ctx, publishCmd{goredis.NewIntCmd(ctx, "publish", r.channel, r.data)})
		}
		return nil
	})
	if err != nil {
		p.failed.Store(time.Now().UnixNano())
	}
	for i, r := range batch {
		e := err
		if i < len(cmds) {
			e = cmds[i].Err()
		}
		r.done <- e
	}
}

// publishCmd is a PUBLISH that go-redis must not send again. It retries a
// pipeline whose replies it could not read (the connection broke, or the
// read timed out, after Redis ran it), and Redis then publishes each event
// twice: the nodes drop a message's or a logged user event's copy by its
// seq, but a typing or presence event, which has none, reached the
// clients twice. A pipeline that fails is not retried as a whole, not even
// when it never reached Redis: the Broker keeps what can be recovered of
// it (publishFailed), and the rest is lost to live delivery, as it is
// whenever Redis is unreachable. The wrapper holds one pointer, so it
// costs no allocation.
type publishCmd struct{ *goredis.IntCmd }

// NoRetry reports that the command must not be sent twice.
func (publishCmd) NoRetry() bool { return true }
