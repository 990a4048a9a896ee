package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/chat"
)

// Limiter is a sliding-window rate limiter shared by every node: the
// times of the allowed events of a key are a sorted set at
// Prefix + "limit:" + key, checked and updated by one script. Time is the
// Redis server's clock (TIME), so nodes whose clocks disagree still share
// one window. A key's set expires one window after its last event. Each
// Undo call leaves a mark at Prefix + "limit-undo:" for undoKeep, so that
// it takes back one event however often go-redis sends it.
//
// While Redis hangs, a call gives up after 2 s, and the next ones at once
// until Redis answers again, as the calls of Presence do (callTimeout).
// A call that fails returns a chat.ErrUnavailable error: what is limited
// is then refused, not let through unlimited.
type Limiter struct {
	rdb    *goredis.Client
	guard  *hangGuard
	prefix string
	undo   string // prefix of the marks of Undo calls (undoScript)
	tag    string // makes members and Undo marks unique across Limiters
	seq    atomic.Uint64
}

var _ chat.Limiter = (*Limiter)(nil)

// KEYS: the set. ARGV: n, window in µs, a unique member. Returns
// {1, 0} if allowed, else {0, µs until the oldest event leaves the window}.
// Times are integers in µs, formatted with %.0f because Lua's default
// number format would round them. A run that finds its member there is
// a run again of one that allowed it (go-redis sends a command again when
// its reply was lost) and allows it again: counting it once, the second
// run would otherwise refuse, at the limit, the event the first counted.
var allowScript = goredis.NewScript(`
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  return {1, 0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n, win = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - win))
if redis.call('ZCARD', KEYS[1]) >= n then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local retry = win
  if oldest[2] then retry = tonumber(oldest[2]) + win - now end
  return {0, retry}
end
redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(win / 1000))
return {1, 0}
`)

// KEYS: the set, a mark unique to the Undo call. ARGV: undoKeep in ms.
// Takes back the newest event unless the mark is there: go-redis sends
// a command again when its reply was lost, and a bare ZPOPMAX run twice
// took back two events for one Undo. Returns 1 if this run took one
// back (or found none to).
var undoScript = goredis.NewScript(`
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then
  return 0
end
redis.call('ZPOPMAX', KEYS[1])
return 1
`)

// undoKeep is how long the mark of an Undo call stays: longer than
// go-redis's retries of it take.
const undoKeep = time.Minute

func newLimiter(rdb *goredis.Client, guard *hangGuard, opts Options) *Limiter {
	b := make([]byte, 6)
	rand.Read(b) // never fails (crypto/rand)
	return &Limiter{rdb: rdb, guard: guard, prefix: opts.Prefix + "limit:", undo: opts.Prefix + "limit-undo:",
		tag: hex.EncodeToString(b)}
}

// Allow counts one event for key if fewer than n happened in the last
// window; otherwise it reports, as retryAfter, when the oldest of them
// leaves the window. It returns a chat.ErrUnavailable error if Redis
// cannot be reached or does not answer in time.
func (l *Limiter) Allow(ctx context.Context, key string, n int, window time.Duration) (bool, time.Duration, error) {
	win := max(window.Microseconds(), 1)
	member := l.tag + ":" + strconv.FormatUint(l.seq.Add(1), 10)
	r, err := guarded(ctx, l.guard, func(ctx context.Context) ([]int64, error) {
		return allowScript.Run(ctx, l.rdb, []string{l.prefix + key}, n, win, member).Int64Slice()
	})
	if err != nil {
		return false, 0, fmt.Errorf("rate limit %q: %w", key, err)
	}
	if r[0] == 1 {
		return true, 0, nil
	}
	return false, max(time.Duration(r[1])*time.Microsecond, time.Microsecond), nil
}

// Undo takes back the newest event counted for key, once however often
// go-redis sends it (undoScript). It returns a chat.ErrUnavailable error
// if Redis cannot be reached or does not answer in time.
func (l *Limiter) Undo(ctx context.Context, key string) error {
	mark := l.undo + l.tag + ":" + strconv.FormatUint(l.seq.Add(1), 10)
	_, err := guarded(ctx, l.guard, func(ctx context.Context) (int, error) {
		return undoScript.Run(ctx, l.rdb, []string{l.prefix + key, mark}, undoKeep.Milliseconds()).Int()
	})
	if err != nil {
		return fmt.Errorf("undo rate limit %q: %w", key, err)
	}
	return nil
}

// unavailable is the error kind of a Redis that cannot be reached.
var unavailable = &chat.Error{Kind: chat.ErrUnavailable, Code: chat.CodeUnavailable,
	Message: "a service the server needs is unavailable; try again later"}

// mapErr marks err as chat.ErrUnavailable when Redis could not be reached
// or answer, or answered that it cannot serve for now (notReady), and ctx
// was not what ended the wait.
func mapErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	if chat.Unreachable(err) || errors.Is(err, goredis.ErrPoolTimeout) || notReady(err) {
		return fmt.Errorf("%w: %w", unavailable, err)
	}
	return err
}

// notReadyCodes start the error replies of a Redis that cannot serve for
// now, whatever the command: loading its data set after a restart, busy
// with a script, a replica cut from its master, or one that became
// read-only (a failover), a cluster slot moving, at its connection limit.
// go-redis retries most of them a few times; what is left after that is
// the server's state, not the request's fault, and passes.
var notReadyCodes = []string{"LOADING ", "BUSY ", "MASTERDOWN ", "READONLY ", "TRYAGAIN ",
	"CLUSTERDOWN ", "NOREPLICAS ", "ERR max number of clients reached"}

// notReady reports whether err is an error reply of a Redis that cannot
// serve for now (notReadyCodes).
func notReady(err error) bool {
	var re goredis.Error
	if !errors.As(err, &re) {
		return false
	}
	s := re.Error()
	for _, c := range notReadyCodes {
		if strings.HasPrefix(s, c) {
			return true
		}
	}
	return false
}
