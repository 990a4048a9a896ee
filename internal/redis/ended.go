package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Ended records the long-poll channels clients ended, for every node: a
// user's are a sorted set at Prefix + "ended:" + user ID, of channel names
// scored by the time (the Redis server's, in ms) until which each counts
// as ended. A set holds at most the max given to Add, the newest, and
// expires with its newest entry.
//
// Its calls are made for requests (a DELETE, a poll rebuilding a channel):
// while Redis hangs they give up as presence calls and rate limits do
// (hangGuard).
type Ended struct {
	rdb    *goredis.Client
	guard  *hangGuard
	prefix string
}

// KEYS: the set. ARGV: channel, ttl in ms, max.
var endAddScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl, max = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
redis.call('ZADD', KEYS[1], string.format('%.0f', now + ttl), ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if n > max then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - max - 1)
end
redis.call('PEXPIRE', KEYS[1], ttl)
return n
`)

// KEYS: the set. ARGV: channel. Returns 1 if it counts as ended now.
var endHasScript = goredis.NewScript(`
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(s) > now then return 1 end
return 0
`)

func newEnded(rdb *goredis.Client, guard *hangGuard, opts Options) *Ended {
	return &Ended{rdb: rdb, guard: guard, prefix: opts.Prefix + "ended:"}
}

func (e *Ended) key(userID int64) string { return e.prefix + strconv.FormatInt(userID, 10) }

// Add records that userID ended channel, for ttl; of the user's channels
// only the newest max are kept. It returns a chat.ErrUnavailable error if
// Redis cannot be reached or does not answer in time.
func (e *Ended) Add(ctx context.Context, userID int64, channel string, ttl time.Duration, max int) error {
	ms := ttl.Milliseconds()
	if ms <= 0 || max <= 0 {
		return nil
	}
	_, err := guarded(ctx, e.guard, func(ctx context.Context) (any, error) {
		return endAddScript.Run(ctx, e.rdb, []string{e.key(userID)}, channel, ms, max).Result()
	})
	if err != nil {
		return fmt.Errorf("record ended channel: %w", err)
	}
	return nil
}

// Has reports whether userID ended channel within the ttl given to Add.
// It returns a chat.ErrUnavailable error if Redis cannot be reached or
// does not answer in time.
func (e *Ended) Has(ctx context.Context, userID int64, channel string) (bool, error) {
	n, err := guarded(ctx, e.guard, func(ctx context.Context) (int, error) {
		return endHasScript.Run(ctx, e.rdb, []string{e.key(userID)}, channel).Int()
	})
	if err != nil {
		return false, fmt.Errorf("read ended channels: %w", err)
	}
	return n == 1, nil
}
