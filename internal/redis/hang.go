package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// While Redis does not answer (its host gone: connections accepted or
// half-open, nothing comes back), each call made for a client, a presence
// call of a connection (Add, Remove, Online, OnlineOf) or a rate-limit
// check (Limiter.Allow, Undo), or a read or write of the ended long-poll
// channels (Ended), waits at most callTimeout; once one timed out,
// the next ones fail at once for downFor, or until a PING sent meanwhile
// (probe) or the presence heartbeat finds Redis answering again. Who is
// present is only shown, and a rate-limited action is refused as
// "unavailable" anyway while Redis is away: neither may make a connect,
// an open or a request wait for Redis again and again. The heartbeat
// writes the presences that failed meanwhile (Presence.settle). (A Redis
// that refuses connections makes calls fail quickly anyway.)
const (
	callTimeout = 2 * time.Second
	downFor     = 5 * time.Second
)

// errDown is the error of a call while Redis is taken for unreachable.
var errDown = fmt.Errorf("%w: redis: unreachable (a call failed moments ago)", unavailable)

// hangGuard bounds the calls made for requests while Redis hangs (see
// callTimeout). One is shared by a Client's Presence, Limiter and Ended:
// what one of them found holds for the others.
type hangGuard struct {
	rdb       *goredis.Client
	downUntil atomic.Int64 // unix nanoseconds until which Redis is taken for unreachable
	probing   atomic.Bool  // probe runs
	late      atomic.Int64 // calls guarded stopped waiting for that still run
	quit      chan struct{}
}

func newHangGuard(rdb *goredis.Client) *hangGuard {
	return &hangGuard{rdb: rdb, quit: make(chan struct{})}
}

// guarded runs fn, one call to Redis, under g: it fails at once, with
// errDown, while Redis is taken for unreachable, and stops waiting for fn
// after callTimeout. fn gets a context ending then too, but go-redis does
// not always heed it (a new connection's handshake waits for its
// DialTimeout), so fn runs on a goroutine of its own, which, if it is left
// waiting, ends with go-redis's own timeouts, its result unused: like any
// call that timed out, it may have been carried out, also after calls
// made since (g.late counts those calls until they end).
func guarded[T any](ctx context.Context, g *hangGuard, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	if g.down() {
		return zero, errDown
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	type result struct {
		v   T
		err error
	}
	c := make(chan result, 1)
	go func() {
		v, err := fn(cctx)
		c <- result{v, err}
	}()
	select {
	case r := <-c:
		if r.err != nil {
			return zero, g.failed(ctx, r.err)
		}
		return r.v, nil
	case <-cctx.Done():
		g.late.Add(1)
		go func() {
			<-c
			g.late.Add(-1)
		}()
		return zero, g.failed(ctx, cctx.Err())
	}
}

// lateCalls reports whether a call that guarded stopped waiting for
// still runs: Redis may yet carry it out.
func (g *hangGuard) lateCalls() bool { return g.late.Load() > 0 }

// down reports whether Redis is taken for unreachable.
func (g *hangGuard) down() bool { return time.Now().UnixNano() < g.downUntil.Load() }

// answered records that Redis answered.
func (g *hangGuard) answered() { g.downUntil.Store(0) }

// failed takes Redis for unreachable if err, the error of a call under
// ctx, is a timeout of its own, and returns err as mapErr does.
func (g *hangGuard) failed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		g.downUntil.Store(time.Now().Add(downFor).UnixNano())
		if g.probing.CompareAndSwap(false, true) {
			go g.probe()
		}
		return fmt.Errorf("%w: %w", unavailable, err)
	}
	return mapErr(ctx, err)
}

// probe pings Redis, while it is taken for unreachable, until it answers.
func (g *hangGuard) probe() {
	defer g.probing.Store(false)
	for g.down() {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		err := g.rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			g.answered()
			return
		}
		select {
		case <-g.quit:
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// close stops the probe.
func (g *hangGuard) close() { close(g.quit) }
