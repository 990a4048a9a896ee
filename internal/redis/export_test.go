package redis

import (
	"context"

	goredis "github.com/redis/go-redis/v9"
)

// Crash stops p's heartbeat and sweeper without removing anything from
// Redis, as if the process had died; later calls fail with ErrClosed.
func (p *Presence) Crash() {
	p.gate.Lock()
	if p.closed {
		p.gate.Unlock()
		return
	}
	p.closed = true
	p.gate.Unlock()
	p.stop()
	p.wg.Wait()
}

// PendingPublishes returns how many publishes wait for the next pipeline.
func (b *Broker) PendingPublishes() int {
	b.pub.mu.Lock()
	defer b.pub.mu.Unlock()
	return len(b.pub.pending)
}

// PresenceKey is a presence: a conversation and a user.
type PresenceKey = pair

// Settle runs one heartbeat's settling (beat): a rewrite of every local
// presence if rewrite is set, else of those of redo; it returns those it
// did not write.
func (p *Presence) Settle(ctx context.Context, rewrite bool, redo map[PresenceKey]bool) map[PresenceKey]bool {
	return p.settle(ctx, rewrite, redo)
}

// Heartbeat runs one heartbeat (beat) and reports whether the node's key
// had lapsed: then Settle must rewrite.
func (p *Presence) Heartbeat(ctx context.Context) (bool, error) {
	return p.heartbeat(ctx)
}

// NewLimiterAt returns a Limiter on the Redis at addr, alone: no Presence
// or Broker, for a test to speak to a fake server. The function returned
// closes it.
func NewLimiterAt(addr string) (*Limiter, func() error) {
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	g := newHangGuard(rdb)
	return newLimiter(rdb, g, Options{Prefix: "test:"}), func() error {
		g.close()
		return rdb.Close()
	}
}

// Sweep runs one sweep (sweep): it takes up reaps left unreported,
// confirms those reported, and reaps dead nodes. The sweep goroutine must
// not run meanwhile: give the node a NodeTTL of a minute or more (its
// first sweep comes NodeTTL/12 after start at the earliest).
func (p *Presence) Sweep(ctx context.Context) error {
	return p.reapDead(ctx)
}
