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
// The caller that finds no pipeline under way sends one itself, so that a
// lone publish costs what it did before; if more are waiting once its own
// is answered, a goroutine takes over until none are. Pipelines go out one
// at a time, so publishes reach Redis in the order they were made; with
// several under way, one overtook another.
type publisher struct {
	b *Broker

	mu      sync.Mutex
	pending []*pubReq
	sending bool // a pipeline is under way, or about to be

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
// ctx has ended.
func (p *publisher) publish(ctx context.Context, channel string, data []byte) error {
	r := &pubReq{channel: channel, data: data, done: make(chan error, 1)}
	p.mu.Lock()
	p.pending = append(p.pending, r)
	lead := !p.sending
	p.sending = true
	p.mu.Unlock()
	if lead {
		p.send(true)
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send sends the pending publishes, a pipeline at a time, until none are
// left; with once, it sends one pipeline and leaves whatever came meanwhile
// to a goroutine.
func (p *publisher) send(once bool) {
	for sent := 0; ; sent++ {
		p.mu.Lock()
		n := min(len(p.pending), maxPipeline)
		if n == 0 {
			p.sending = false
			p.pending = nil
			p.mu.Unlock()
			return
		}
		if once && sent == 1 {
			p.mu.Unlock()
			go p.send(false)
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
		if time.Since(time.Unix(0, p.failed.Load())) < lostPublishTimeout*5 {
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
			pl.Publish(ctx, r.channel, r.data)
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
