// Package redis provides the Broker, Presence and Limiter that let several
// Parley nodes share one Redis: events fan out through Redis pub/sub,
// presence is counted in Redis sets kept alive by a heartbeat per node, and
// rate limits are sliding windows in sorted sets. Ended shares the
// long-poll channels clients ended, so that no node rebuilds one. It speaks chat types only
// and must not import another adapter, the hub or web.
//
// Every script computes some of its key names from a prefix instead of
// receiving them all as KEYS, and the client is go-redis's single-node
// one, which follows no MOVED redirection: it needs a single Redis, not
// Redis Cluster (docs/deploy.md).
package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/redact"
)

// ErrClosed is returned by the Broker and Presence after Close.
var ErrClosed = errors.New("redis: closed")

// Options tune a Client. The zero value is the production default.
type Options struct {
	// Prefix starts every key and pub/sub channel name (default
	// "parley:"), so that several deployments, or tests, share a Redis.
	Prefix string
	// NodeID names this node in presence keys (default: random). Two live
	// nodes must not share one. A node started with the NodeID of an
	// earlier run drops what that run left in Redis, and reports the
	// presences that thereby ended to each function given to Watch.
	NodeID string
	// NodeTTL bounds how long a crashed node's users stay present: within
	// about NodeTTL of its last heartbeat another node reports them to
	// its Watch functions (default 30 s, at least 300 ms). See Presence.
	NodeTTL time.Duration
	// PingInterval is how long the pub/sub connection may stay silent
	// before it is pinged (default 5 s); PingTimeout how long the answer
	// may take before the connection is dropped and dialled again
	// (default 5 s).
	PingInterval time.Duration
	PingTimeout  time.Duration
	// SubscribeTimeout bounds how long Subscribe waits for Redis to
	// confirm a new subscription (default 5 s).
	SubscribeTimeout time.Duration
	// Logger receives warnings (default: discarded).
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Prefix == "" {
		o.Prefix = "parley:"
	}
	if o.NodeID == "" {
		b := make([]byte, 8)
		if _, err := rand.Read(b); err != nil {
			return o, err
		}
		o.NodeID = hex.EncodeToString(b)
	}
	if o.NodeTTL <= 0 {
		o.NodeTTL = 30 * time.Second
	}
	o.NodeTTL = max(o.NodeTTL, 300*time.Millisecond)
	if o.PingInterval <= 0 {
		o.PingInterval = 5 * time.Second
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = 5 * time.Second
	}
	if o.SubscribeTimeout <= 0 {
		o.SubscribeTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Client holds one connection pool to Redis and the Broker, Presence and
// Limiter built on it. The Broker adds one pub/sub connection.
type Client struct {
	rdb      *goredis.Client
	guard    *hangGuard
	broker   *Broker
	presence *Presence
	limiter  *Limiter
	ended    *Ended

	closeOnce sync.Once
	closeErr  error
}

// New connects to the Redis at url ("redis://[user:pass@]host:port/db",
// or "rediss://" for TLS; go-redis query options such as pool_size apply)
// and starts this node's Broker and Presence. It fails if Redis does not
// answer.
func New(ctx context.Context, url string, opts Options) (*Client, error) {
	// The URL is checked first: go-redis's errors quote it, password
	// and all.
	if _, err := redact.Parse(url); err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	o, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, err
	}
	rdb := goredis.NewClient(o)
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis ping: %w", err)
	}
	guard := newHangGuard(rdb)
	p, err := newPresence(ctx, rdb, guard, opts)
	if err != nil {
		rdb.Close()
		return nil, err
	}
	return &Client{
		rdb:      rdb,
		guard:    guard,
		broker:   newBroker(rdb, opts),
		presence: p,
		limiter:  newLimiter(rdb, guard, opts),
		ended:    newEnded(rdb, guard, opts),
	}, nil
}

// Broker returns the node's Broker.
func (c *Client) Broker() *Broker { return c.broker }

// Presence returns the node's Presence.
func (c *Client) Presence() *Presence { return c.presence }

// Limiter returns the Limiter.
func (c *Client) Limiter() *Limiter { return c.limiter }

// Ended returns the record of ended long-poll channels.
func (c *Client) Ended() *Ended { return c.ended }

// Redis returns the underlying client, for health checks.
func (c *Client) Redis() *goredis.Client { return c.rdb }

// CloseTimeout bounds Client.Close while Redis does not answer.
const CloseTimeout = 3 * time.Second

// Close closes the Presence (see Presence.Close), the Broker and the
// connections. It returns within CloseTimeout: past it, it stops waiting
// for Redis and closes the connections, which ends the calls still
// waiting for an answer. Later calls return the same result.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		done := make(chan error, 1)
		go func() { done <- errors.Join(c.presence.Close(), c.broker.Close()) }()
		t := time.NewTimer(CloseTimeout)
		defer t.Stop()
		var err error
		select {
		case err = <-done:
		case <-t.C:
			err = fmt.Errorf("redis: close: Redis did not answer within %v", CloseTimeout)
		}
		c.closeErr = errors.Join(err, c.rdb.Close())
		c.guard.close()
	})
	return c.closeErr
}
