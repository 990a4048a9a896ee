package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/keyed"
)

// Presence counts who is present where across the nodes sharing a Redis.
//
// Each node counts its own connections per (conversation, user) in memory;
// only its 0→1 and 1→0 transitions touch Redis, each with one atomic script.
// The keys, after Prefix + "presence:", are
//
//	node:<node>        the node's heartbeat, with an expiry: a token new
//	                   each time the heartbeat found it lapsed (heartbeatScript)
//	nodes              set of node ids that may hold presences
//	held:<node>        set of "<conv>:<user>" the node holds
//	was:<node>         what held:<node> was when the heartbeat found the
//	                   node's key lapsed, for a minute (heartbeatScript)
//	reap:<token>       the dead node, the reaper's id and what a reap
//	                   ended, until the reaper has reported it (reapScript)
//	reaping            set of the tokens of those reaps
//	lease:<token>      the reaper's, while it may be retrying the reap
//	of:<conv>:<user>   set of node ids holding the user in conv
//	in:<conv>          set of users present in conv (Online, OnlineOf)
//	clock              counts the changes of the in: sets (State)
//
// Every script that adds a user to an in: set, or removes one, increments
// clock in the same step, and State reads a user's membership and clock
// at once (StateCount the in: set's size too): so of two States of one
// user, or two counts of one conversation, the one with the greater
// version is the newer, whichever node read them. A clock Redis lost (a restart)
// starts again from Redis's time in microseconds, beyond the counts of
// before, unless these made more than a million changes a second.
//
// A node is live while its heartbeat key exists. Add reports first when no
// other node holds the user there (a dead one not reaped yet holds them
// still: nobody was told they had gone); Remove reports last when none does
// (it then deletes of:<conv>:<user>, dead holders included, so the user's
// end is reported once). The heartbeat key expires after 2/3 NodeTTL and is
// refreshed every NodeTTL/6; every NodeTTL/6 each node also looks for nodes
// in "nodes" whose key has expired and reaps them with one script, which
// only one node can win: it drops the dead node's entries and returns the
// presences that thereby ended everywhere, which the winner passes to its
// Watch functions. So a crashed node's users are reported within about
// 5/6 NodeTTL after its last heartbeat.
//
// A node whose key expired while it lived (Redis unreachable, a long pause)
// may have been reaped: when its heartbeat finds the key gone (or a run of
// it whose reply was lost did) it writes its presences again, and reports to its Watch functions those it no longer
// held (reaped, or lost by Redis) and no other node holds. A failed Add or Remove leaves Redis in doubt; the heartbeat
// goroutine writes the presence of a failed Add whose connection is still
// open, reporting it to the Watch functions if no other node held it, or
// else retries the removal; it also writes again the presence of a
// connection added after a Remove that failed, which Redis may have run
// after that Add (the call is left running when guarded stops waiting),
// once no such call runs, reporting it as a failed Add's. If no live node holds the
// presence of a failed Remove once retried it calls the Watch functions,
// since no caller announced that end: also when Redis lost the presence
// meanwhile (a restart), and, if this node was reaped meanwhile, after the
// reaper did.
type Presence struct {
	rdb    *goredis.Client
	guard  *hangGuard // bounds the calls of connections (callTimeout)
	p      string     // key prefix
	id     string
	keyTTL time.Duration
	every  time.Duration
	log    *slog.Logger

	gate   sync.RWMutex // Close takes it to wait for Add and Remove in flight
	closed bool

	local keyed.Locks[pair, entry] // the pairs this node counts

	mu       sync.Mutex
	watchers []func(convID, userID int64, online bool)
	leftOver []string // "<conv>:<user>" presences an earlier run left, which ended at start

	reported map[string]bool // tokens of reaps this node reported, not confirmed yet; sweep's

	beating sync.Mutex // held by heartbeat
	gen     string     // the value of this node's key the heartbeat last read (heartbeatScript)

	life context.Context // ended by Close: ends the heartbeat's and sweep's calls too
	stop context.CancelFunc
	wg   sync.WaitGroup
}

type pair struct{ conv, user int64 }

func (k pair) String() string {
	return strconv.FormatInt(k.conv, 10) + ":" + strconv.FormatInt(k.user, 10)
}

// entry is one (conversation, user) this node counts. Its key's lock in
// Presence.local orders the Redis calls of that pair.
type entry struct {
	n       int     // local connections
	unheld  int     // local connections whose Add failed: not in Redis, still to be Removed
	pending pending // Redis state in doubt after a failed call
}

// remembers reports whether e has something to remember once no call
// holds it: Presence.local keeps it then.
func remembers(e *entry) bool {
	return e.n != 0 || e.unheld != 0 || e.pending != settled
}

type pending uint8

const (
	settled      pending = iota
	failedAdd            // an Add failed: Redis may hold the pair
	failedRemove         // a Remove failed: Redis still holds the pair
	// inDoubt: an Add or Remove succeeded after one that failed, which
	// may still run in Redis (guarded stopped waiting for it) and undo
	// it: a Remove run late ends the presence of a connection added
	// since. settle writes the pair's state again once no such call runs.
	inDoubt
)

// succeeded is what e.pending becomes once an Add or Remove of its pair
// succeeded: settled, unless a call that failed before may yet run.
func succeeded(e *entry) pending {
	if e.pending == settled {
		return settled
	}
	return inDoubt
}

var _ chat.Presence = (*Presence)(nil)

// liveOther is shared by the scripts: whether set pk holds a live node
// other than self.
const liveOther = `
local P = ARGV[1]
local function live_other(pk, self)
  for _, id in ipairs(redis.call('SMEMBERS', pk)) do
    if id ~= self and redis.call('EXISTS', P .. 'node:' .. id) == 1 then
      return true
    end
  end
  return false
end
`

// tick is shared by the scripts that change the in: sets: it counts one
// change on the clock, which it starts from Redis's time in microseconds
// if Redis has lost it (scripts replicate their effects, as Redis does by
// default since 5, so TIME may precede a write).
const tick = `
local function tick()
  local k = P .. 'clock'
  if redis.call('EXISTS', k) == 0 then
    local t = redis.call('TIME')
    redis.call('SET', k, t[1] .. string.rep('0', 6 - #t[2]) .. t[2])
  end
  redis.call('INCR', k)
end
`

// ARGV: prefix, node, conv, user, and "1" for a rewrite. Returns 1 if no
// other node holds it, plus 2 if this node held it already: for a
// rewrite, when the heartbeat found its key lapsed (was:<node>), so that
// a run again after a lost reply (go-redis retries) gives the same. A
// dead node that holds it and has not been reaped counts: the user is
// still present through it, as nobody was told otherwise (the reap ends
// nothing while this node holds it). Run again, it gives the same first.
var addScript = goredis.NewScript(liveOther + tick + `
local self, conv, user = ARGV[2], ARGV[3], ARGV[4]
local m = conv .. ':' .. user
local pk = P .. 'of:' .. m
redis.call('SADD', P .. 'nodes', self)
redis.call('SADD', P .. 'held:' .. self, m)
local r = 0
if redis.call('SADD', pk, self) == 0 then r = 2 end
if ARGV[5] == '1' then
  r = 2 * redis.call('SISMEMBER', P .. 'was:' .. self, m)
end
if redis.call('SCARD', pk) == 1 then r = r + 1 end
if redis.call('SADD', P .. 'in:' .. conv, user) == 1 then tick() end
return r
`)

// ARGV: prefix, node, conv, user, and "1" to retry a Remove that failed.
// Returns 1 if that ended the presence. A retried Remove also ends a
// presence that Redis has lost (restarted empty, or the node was reaped)
// and no live node holds: nobody else knows it was there.
var removeScript = goredis.NewScript(liveOther + tick + `
local self, conv, user, retry = ARGV[2], ARGV[3], ARGV[4], ARGV[5] == '1'
local m = conv .. ':' .. user
local pk = P .. 'of:' .. m
redis.call('SREM', P .. 'held:' .. self, m)
if (redis.call('SREM', pk, self) == 0 and not retry) or live_other(pk, self) then
  return 0
end
redis.call('DEL', pk)
if redis.call('SREM', P .. 'in:' .. conv, user) == 1 then tick() end
return 1
`)

// ARGV: prefix, node, key TTL in ms, rewriteKeep in ms, and a token new
// to each heartbeat. Returns the key's value: the token of the heartbeat
// that last found the key lapsed or the node unlisted, which then set it
// and copied held:<node> to was:<node>, which a rewrite's adds read
// (addScript). The node holds the value it last read (Presence.gen): a
// value it has not read tells it the key lapsed, also when the reply of
// the heartbeat that found it lapsed was lost and go-redis, or the next
// heartbeat, ran it again and that run found the key back. The adds of
// the rewrite find was:<node> there and their own writes.
var heartbeatScript = goredis.NewScript(`
local P, self = ARGV[1], ARGV[2]
local nk = P .. 'node:' .. self
local old = redis.call('GET', nk)
local added = redis.call('SADD', P .. 'nodes', self)
if old and added == 0 then
  redis.call('PEXPIRE', nk, ARGV[3])
  return old
end
redis.call('SET', nk, ARGV[5], 'PX', ARGV[3])
local was = P .. 'was:' .. self
redis.call('DEL', was)
if redis.call('SUNIONSTORE', was, P .. 'held:' .. self) > 0 then
  redis.call('PEXPIRE', was, ARGV[4])
end
return ARGV[5]
`)

// rewriteKeep is how long the heartbeat keeps what the node held when it
// found its key lapsed (heartbeatScript): the rewrite's writes take
// longer only while Redis fails them, and then at worst report back a
// presence that never ended.
const rewriteKeep = time.Minute

// ARGV: prefix, node, "1" if the node is leaving (Close), else "0" (it
// must be dead), the reaper's node, reapKeep in ms, and a token new to
// each call. Returns the "<conv>:<user>" presences that ended.
//
// A reap keeps what it returned under reap:<token>, its token
// in reaping, until the reaper confirms it reported it (confirmScript):
// go-redis runs the script again when it could not read its reply (the
// connection broke, or the read timed out, after Redis ran it), and that
// run returns the same; if every try failed, the reaper's next sweep
// takes it up again (resumeScript), or once the reaper is dead and its
// lease lapsed another node's. Without it the dead node's users were
// never reported gone, and showed online to their friends and rooms until
// they reloaded.
var reapScript = goredis.NewScript(liveOther + tick + `
local dead, leaving, reaper, token = ARGV[2], ARGV[3] == '1', ARGV[4], ARGV[6]
local nk = P .. 'node:' .. dead
local rk = P .. 'reap:' .. token
local kept = redis.call('LRANGE', rk, 0, -1)
if #kept > 0 then
  if kept[2] ~= reaper then
    return {}
  end
  redis.call('SET', P .. 'lease:' .. token, reaper, 'PX', ARGV[5])
  local gone = {}
  for i = 3, #kept do gone[#gone + 1] = kept[i] end
  return gone
end
if leaving then
  redis.call('DEL', nk)
elseif redis.call('EXISTS', nk) == 1 then
  return {}
end
if redis.call('SREM', P .. 'nodes', dead) == 0 and not leaving then
  return {}
end
local held = P .. 'held:' .. dead
local gone = {}
for _, m in ipairs(redis.call('SMEMBERS', held)) do
  local pk = P .. 'of:' .. m
  if redis.call('SREM', pk, dead) == 1 and not live_other(pk, dead) then
    redis.call('DEL', pk)
    local conv, user = string.match(m, '^([^:]+):(.+)$')
    if redis.call('SREM', P .. 'in:' .. conv, user) == 1 then tick() end
    table.insert(gone, m)
  end
end
redis.call('DEL', held)
if #gone > 0 then
  redis.call('RPUSH', rk, dead, reaper)
  for _, m in ipairs(gone) do
    redis.call('RPUSH', rk, m)
  end
  redis.call('SADD', P .. 'reaping', token)
  redis.call('SET', P .. 'lease:' .. token, reaper, 'PX', ARGV[5])
end
return gone
`)

// ARGV: prefix, token, the node asking, reapKeep in ms. Returns what the
// reap of token ended if the node asking is its reaper, or may take it
// over: its reaper has no heartbeat and its lease lapsed.
var resumeScript = goredis.NewScript(`
local P, token, reaper = ARGV[1], ARGV[2], ARGV[3]
local rk = P .. 'reap:' .. token
local kept = redis.call('LRANGE', rk, 0, -1)
if #kept == 0 then
  redis.call('SREM', P .. 'reaping', token)
  return {}
end
local lk = P .. 'lease:' .. token
if kept[2] ~= reaper then
  if redis.call('EXISTS', lk) == 1 or redis.call('EXISTS', P .. 'node:' .. kept[2]) == 1 then
    return {}
  end
  redis.call('LSET', rk, 1, reaper)
end
redis.call('SET', lk, reaper, 'PX', ARGV[4])
local gone = {}
for i = 3, #kept do gone[#gone + 1] = kept[i] end
return gone
`)

// ARGV: prefix, token, reaper. Drops the reap of token, which its reaper
// has reported.
var confirmScript = goredis.NewScript(`
local P, token, reaper = ARGV[1], ARGV[2], ARGV[3]
local rk = P .. 'reap:' .. token
local r = redis.call('LINDEX', rk, 1)
if r and r ~= reaper then
  return 0
end
redis.call('DEL', rk, P .. 'lease:' .. token)
redis.call('SREM', P .. 'reaping', token)
return 1
`)

// reapKeep is how long a reaper holds the lease of its reap: longer than
// go-redis's retries of it take, so that no other node takes it over
// while they may still get its result.
const reapKeep = time.Minute

// newToken returns a token for one reap.
func newToken() string { return strconv.FormatUint(rand.Uint64(), 36) }

func newPresence(ctx context.Context, rdb *goredis.Client, guard *hangGuard, opts Options) (*Presence, error) {
	p := &Presence{
		rdb:    rdb,
		guard:  guard,
		p:      opts.Prefix + "presence:",
		id:     opts.NodeID,
		keyTTL: opts.NodeTTL * 2 / 3,
		every:  opts.NodeTTL / 6,
		log:    opts.Logger,

		reported: make(map[string]bool),
	}
	p.life, p.stop = context.WithCancel(context.Background())
	if err := p.checkNodeFree(ctx); err != nil {
		p.stop()
		return nil, err
	}
	// A previous run with this NodeID may have left presences behind.
	t := newToken()
	gone, err := p.reap(ctx, p.id, true, t)
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("presence start: %w", err)
	}
	if len(gone) > 0 {
		// Watch reports them; if this fails, the sweep confirms.
		p.reported[t] = true
		if err := p.confirm(ctx, t); err != nil {
			p.log.Warn("redis: presence start", "err", err)
		}
		p.log.Warn("redis: dropped presences left by an earlier run of this node", "node", p.id, "ended", len(gone))
	}
	p.leftOver = gone
	if _, err := p.heartbeat(ctx); err != nil {
		p.stop()
		return nil, fmt.Errorf("presence heartbeat: %w", err)
	}
	p.wg.Add(2)
	go p.beat()
	go p.sweep()
	return p, nil
}

// ErrNodeIDInUse is returned by New when a live node beats under the
// NodeID asked for.
var ErrNodeIDInUse = errors.New("redis: another live node uses this node id")

// checkNodeFree fails with ErrNodeIDInUse if a live node has this NodeID.
// Starting would drop that node's presences as an earlier run's, and the
// two would end each other's. A run that stopped cleanly deleted its
// heartbeat key; if the key is there, its node either died less than
// keyTTL ago or lives, and a live one renews the key every p.every: so
// its time to live is watched for half as long again, and a renewal (it
// only falls otherwise) shows a live node.
func (p *Presence) checkNodeFree(ctx context.Context) error {
	key := p.p + "node:" + p.id
	last, err := p.rdb.PTTL(ctx, key).Result()
	if err != nil {
		return fmt.Errorf("presence start: %w", err)
	}
	if last < 0 {
		return nil // no heartbeat: no node, or one that stopped cleanly
	}
	p.log.Info("redis: a heartbeat of this node id is there; waiting to see whether it is a live node's", "node", p.id, "wait", p.every*3/2)
	deadline := time.Now().Add(p.every * 3 / 2)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("presence start: %w", ctx.Err())
		case <-time.After(p.every / 10):
		}
		ttl, err := p.rdb.PTTL(ctx, key).Result()
		if err != nil {
			return fmt.Errorf("presence start: %w", err)
		}
		if ttl < 0 {
			return nil // it expired, or its node stopped
		}
		if ttl > last+p.every/20 {
			return fmt.Errorf("%w: %q (its heartbeat was renewed); give each node its own --node-id", ErrNodeIDInUse, p.id)
		}
		last = ttl
	}
	return nil
}

// Add counts one connection of userID in convID on this node; first is
// true if no other node has the user there, a dead one not reaped yet
// included (see addScript), and also when go-redis ran the call again
// after losing its reply and another node had joined meanwhile, or
// maybe before: then both may answer first.
func (p *Presence) Add(ctx context.Context, convID, userID int64) (bool, error) {
	p.gate.RLock()
	defer p.gate.RUnlock()
	if p.closed {
		return false, ErrClosed
	}
	k := pair{convID, userID}
	e := p.local.Lock(k)
	defer p.local.Unlock(k, remembers)
	e.n++
	if e.n > 1 {
		return false, nil
	}
	inDoubt := e.pending != settled // an earlier call may have written the pair
	first, err := guarded(ctx, p.guard, func(ctx context.Context) (bool, error) {
		first, held, err := p.add(ctx, k, false)
		if held && !inDoubt {
			// This node held the pair it had not written: this is a run
			// again of the call, whose reply go-redis lost. The first
			// run may have been first, and another node's Add between
			// the two found it there and answered not first: this run,
			// finding that node there, cannot tell whether it joined
			// before the first run or after. Answer first: told twice
			// that a user is online, a friend sees what they saw; never
			// told, they see the user offline while connected.
			first = true
		}
		return first, err
	})
	if err != nil {
		// The caller serves the connection anyway, and Removes it when it
		// ends: that Remove must not count out another connection.
		e.n--
		e.unheld++
		e.pending = failedAdd
		return false, fmt.Errorf("add presence %s: %w", k, err)
	}
	e.pending = succeeded(e)
	return first, nil
}

// Remove uncounts one connection; last is true if no live node has the
// user in convID any more. A Remove without a matching Add does nothing.
// Connections whose Add failed are counted out first: while the user has
// another connection here, the presence stays.
func (p *Presence) Remove(ctx context.Context, convID, userID int64) (bool, error) {
	p.gate.RLock()
	defer p.gate.RUnlock()
	if p.closed {
		return false, ErrClosed
	}
	k := pair{convID, userID}
	e := p.local.Lock(k)
	defer p.local.Unlock(k, remembers)
	if e.unheld > 0 {
		e.unheld--
		return false, nil
	}
	if e.n == 0 {
		return false, nil
	}
	e.n--
	if e.n > 0 {
		return false, nil
	}
	last, err := guarded(ctx, p.guard, func(ctx context.Context) (bool, error) {
		return p.remove(ctx, k, "0")
	})
	if err != nil {
		e.pending = failedRemove
		return false, fmt.Errorf("remove presence %s: %w", k, err)
	}
	e.pending = succeeded(e)
	return last, nil
}

// add runs addScript for k: first if no other node holds it, held if
// this node held it already, or for a rewrite when the heartbeat found
// its key lapsed.
func (p *Presence) add(ctx context.Context, k pair, rewrite bool) (first, held bool, err error) {
	r := "0"
	if rewrite {
		r = "1"
	}
	n, err := addScript.Run(ctx, p.rdb, nil, p.p, p.id, k.conv, k.user, r).Int()
	return n&1 != 0, n&2 != 0, err
}

// reap runs reapScript on node, this one leaving or a dead one, as reap
// token: the "<conv>:<user>" presences it ended.
func (p *Presence) reap(ctx context.Context, node string, leaving bool, token string) ([]string, error) {
	l := "0"
	if leaving {
		l = "1"
	}
	return reapScript.Run(ctx, p.rdb, nil, p.p, node, l, p.id, reapKeep.Milliseconds(), token).StringSlice()
}

// remove runs removeScript for k, once (runOnce): run again after it
// ended the presence, it would find it gone and answer "not last", and
// nobody would tell the end. A call that fails leaves the removal to the
// heartbeat's retry, which ends a presence Redis no longer has and
// reports it to Watch.
func (p *Presence) remove(ctx context.Context, k pair, retry string) (bool, error) {
	n, err := runOnce(ctx, p.rdb, removeScript, p.p, p.id, k.conv, k.user, retry).Int()
	return n == 1, err
}

// runOnce runs s as Script.Run does, except that go-redis never sends it
// again once it may have reached Redis: it retries a command whose reply
// it could not read (the connection broke, or the read timed out, after
// Redis ran it), which a script that is not idempotent must not be.
func runOnce(ctx context.Context, rdb *goredis.Client, s *goredis.Script, args ...any) *goredis.Cmd {
	cmd := goredis.NewCmd(ctx, append([]any{"evalsha", s.Hash(), 0}, args...)...)
	_ = rdb.Process(ctx, onceCmd{cmd})
	if !goredis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		return cmd
	}
	// Not run: Redis lacks the script (it restarted). Loading it may
	// be retried.
	if err := s.Load(ctx, rdb).Err(); err != nil {
		return cmd
	}
	cmd = goredis.NewCmd(ctx, append([]any{"evalsha", s.Hash(), 0}, args...)...)
	_ = rdb.Process(ctx, onceCmd{cmd})
	return cmd
}

// onceCmd is a command go-redis must not send twice.
type onceCmd struct{ *goredis.Cmd }

// NoRetry reports that the command must not be sent again.
func (onceCmd) NoRetry() bool { return true }

// Online returns how many users are present in convID on any node and at
// most max of them. Like OnlineOf, it returns a chat.ErrUnavailable error
// if Redis cannot be reached.
func (p *Presence) Online(ctx context.Context, convID int64, max int) ([]int64, int, error) {
	key := p.p + "in:" + strconv.FormatInt(convID, 10)
	type online struct {
		card int64
		some []string
	}
	r, err := guarded(ctx, p.guard, func(ctx context.Context) (online, error) {
		if max <= 0 {
			n, err := p.rdb.SCard(ctx, key).Result()
			return online{card: n}, err
		}
		// One round trip, one snapshot: SRANDMEMBER with a positive count
		// returns distinct members, the whole set if it is smaller.
		var card *goredis.IntCmd
		var some *goredis.StringSliceCmd
		_, err := p.rdb.TxPipelined(ctx, func(pipe goredis.Pipeliner) error {
			card = pipe.SCard(ctx, key)
			some = pipe.SRandMemberN(ctx, key, int64(max))
			return nil
		})
		if err != nil {
			return online{}, err
		}
		return online{card.Val(), some.Val()}, nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("online %d: %w", convID, err)
	}
	if max <= 0 {
		return nil, int(r.card), nil
	}
	ms := r.some
	ids := make([]int64, 0, len(ms))
	for _, m := range ms {
		id, err := strconv.ParseInt(m, 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("online %d: bad member %q", convID, m)
		}
		ids = append(ids, id)
	}
	return ids, int(r.card), nil
}

// OnlineOf returns those of userIDs present in convID, in their order, in
// one round trip.
func (p *Presence) OnlineOf(ctx context.Context, convID int64, userIDs []int64) ([]int64, error) {
	if len(userIDs) == 0 {
		return nil, nil
	}
	ms := make([]any, len(userIDs))
	for i, id := range userIDs {
		ms[i] = id
	}
	in, err := guarded(ctx, p.guard, func(ctx context.Context) ([]bool, error) {
		return p.rdb.SMIsMember(ctx, p.p+"in:"+strconv.FormatInt(convID, 10), ms...).Result()
	})
	if err != nil {
		return nil, fmt.Errorf("online of %d: %w", convID, err)
	}
	var ids []int64
	for i, ok := range in {
		if ok {
			ids = append(ids, userIDs[i])
		}
	}
	return ids, nil
}

// PresentIn returns those of convIDs where userID is present, in their
// order, in one round trip.
func (p *Presence) PresentIn(ctx context.Context, userID int64, convIDs []int64) ([]int64, error) {
	if len(convIDs) == 0 {
		return nil, nil
	}
	in, err := guarded(ctx, p.guard, func(ctx context.Context) ([]bool, error) {
		cmds := make([]*goredis.BoolCmd, len(convIDs))
		_, err := p.rdb.Pipelined(ctx, func(pl goredis.Pipeliner) error {
			for i, id := range convIDs {
				cmds[i] = pl.SIsMember(ctx, p.p+"in:"+strconv.FormatInt(id, 10), userID)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		in := make([]bool, len(cmds))
		for i, c := range cmds {
			in[i] = c.Val()
		}
		return in, nil
	})
	if err != nil {
		return nil, fmt.Errorf("presence of %d: %w", userID, err)
	}
	var ids []int64
	for i, ok := range in {
		if ok {
			ids = append(ids, convIDs[i])
		}
	}
	return ids, nil
}

// State returns whether userID is present in convID on any node, and the
// clock of the changes of who is present, read together in one round
// trip; version 0 if Redis has lost the clock and changed nothing since.
func (p *Presence) State(ctx context.Context, convID, userID int64) (bool, int64, error) {
	in, _, v, err := p.state(ctx, convID, userID, false)
	return in, v, err
}

// StateCount is State with how many users are present in convID, read in
// the same round trip (one MULTI): the count is the one at the clock's
// value.
func (p *Presence) StateCount(ctx context.Context, convID, userID int64) (bool, int, int64, error) {
	return p.state(ctx, convID, userID, true)
}

// state is State, and with count StateCount.
func (p *Presence) state(ctx context.Context, convID, userID int64, count bool) (bool, int, int64, error) {
	type state struct {
		in bool
		n  int64
		v  int64
	}
	key := p.p + "in:" + strconv.FormatInt(convID, 10)
	r, err := guarded(ctx, p.guard, func(ctx context.Context) (state, error) {
		var in *goredis.BoolCmd
		var card *goredis.IntCmd
		var clock *goredis.StringCmd
		_, err := p.rdb.TxPipelined(ctx, func(pipe goredis.Pipeliner) error {
			in = pipe.SIsMember(ctx, key, userID)
			if count {
				card = pipe.SCard(ctx, key)
			}
			clock = pipe.Get(ctx, p.p+"clock")
			return nil
		})
		if err != nil && !errors.Is(err, goredis.Nil) {
			return state{}, err
		}
		v, err := clock.Int64()
		if errors.Is(err, goredis.Nil) {
			v, err = 0, nil
		}
		r := state{in: in.Val(), v: v}
		if card != nil {
			r.n = card.Val()
		}
		return r, err
	})
	if err != nil {
		return false, 0, 0, fmt.Errorf("state of %d in %d: %w", userID, convID, err)
	}
	return r.in, int(r.n), r.v, nil
}

// Version returns the clock of the changes of who is present, as State
// reads it; 0 if Redis has lost it and changed nothing since.
func (p *Presence) Version(ctx context.Context) (int64, error) {
	v, err := guarded(ctx, p.guard, func(ctx context.Context) (int64, error) {
		v, err := p.rdb.Get(ctx, p.p+"clock").Int64()
		if errors.Is(err, goredis.Nil) {
			return 0, nil
		}
		return v, err
	})
	if err != nil {
		return 0, fmt.Errorf("presence version: %w", err)
	}
	return v, nil
}

// Watch registers fn to be called, on the node that reaps a dead node, for
// each presence that thereby ended everywhere; on this node for the
// presences Close or a retried Remove ends (see Presence); and, online, on
// a node that was reaped while alive for each presence it wrote again that
// no other node held, and for each presence whose Add failed, or that a
// Remove run late had ended, that it wrote once Redis was back and no
// other node held. fn runs on a background goroutine, one presence at
// a time. Before Watch returns, fn is called for each presence that an
// earlier run with this NodeID left and that thereby ended: that run
// died, and no other node will report its users gone.
func (p *Presence) Watch(fn func(convID, userID int64, online bool)) {
	p.mu.Lock()
	p.watchers = append(p.watchers, fn)
	left := p.leftOver
	p.mu.Unlock()
	eachPresence(left, p.log, func(conv, user int64) { fn(conv, user, false) })
}

func (p *Presence) changed(convID, userID int64, online bool) {
	p.mu.Lock()
	fns := slices.Clone(p.watchers)
	p.mu.Unlock()
	for _, fn := range fns {
		fn(convID, userID, online)
	}
}

// endedAll passes the "<conv>:<user>" members a reap returned to ended.
func (p *Presence) endedAll(gone []string) {
	eachPresence(gone, p.log, func(conv, user int64) { p.changed(conv, user, false) })
}

// eachPresence calls fn for each "<conv>:<user>" member of ms.
func eachPresence(ms []string, log *slog.Logger, fn func(conv, user int64)) {
	for _, m := range ms {
		c, u, _ := strings.Cut(m, ":")
		conv, err1 := strconv.ParseInt(c, 10, 64)
		user, err2 := strconv.ParseInt(u, 10, 64)
		if err1 != nil || err2 != nil {
			log.Warn("redis: bad presence member", "member", m)
			continue
		}
		fn(conv, user)
	}
}

// heartbeat refreshes this node's key and reports whether it had expired
// since the last heartbeat that got its reply.
func (p *Presence) heartbeat(ctx context.Context) (expired bool, err error) {
	p.beating.Lock()
	defer p.beating.Unlock()
	gen, err := heartbeatScript.Run(ctx, p.rdb, nil, p.p, p.id, p.keyTTL.Milliseconds(), rewriteKeep.Milliseconds(), newToken()).Text()
	if err != nil {
		return false, err
	}
	expired, p.gen = gen != p.gen, gen
	return expired, nil
}

// beat refreshes the heartbeat every NodeTTL/6, rewrites this node's
// presences if it may have been reaped, and retries failed calls.
func (p *Presence) beat() {
	defer p.wg.Done()
	t := time.NewTicker(p.every)
	defer t.Stop()
	var redo map[pair]bool // presences a rewrite has yet to write
	for {
		select {
		case <-p.life.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(p.life, p.keyTTL)
		expired, err := p.heartbeat(ctx)
		if err != nil {
			if p.life.Err() == nil { // else Close stopped it
				p.log.Warn("redis: presence heartbeat", "err", err)
			}
		} else {
			p.guard.answered()
			redo = p.settle(ctx, expired, redo)
		}
		cancel()
	}
}

// settle writes every local presence again if rewrite is set, and those
// of redo, which an earlier rewrite did not reach or failed to write; it
// retries the calls that failed, and returns the presences it did not
// write again as it should have.
func (p *Presence) settle(ctx context.Context, rewrite bool, redo map[pair]bool) (left map[pair]bool) {
	if rewrite {
		p.log.Warn("redis: presence heartbeat had expired; writing presences again", "node", p.id)
	}
	keys := p.local.Keys()
	for k := range redo {
		if !p.local.Has(k) {
			delete(redo, k) // gone from this node since
		}
	}
	if rewrite {
		redo = make(map[pair]bool, len(keys))
		for _, k := range keys {
			redo[k] = true
		}
	}
	defer func() {
		if len(redo) > 0 {
			left = redo // not reached
		}
	}()
	var ended, back []pair
	defer func() {
		for _, k := range ended {
			p.changed(k.conv, k.user, false)
		}
		for _, k := range back {
			p.changed(k.conv, k.user, true)
		}
	}()
	for _, k := range keys {
		if ctx.Err() != nil {
			return
		}
		p.gate.RLock()
		if p.closed {
			p.gate.RUnlock()
			return
		}
		e := p.local.Lock(k)
		if e.n > 0 && e.unheld > 0 {
			// An Add since wrote the presence that theirs failed to.
			e.n, e.unheld = e.n+e.unheld, 0
		}
		if e.n == 0 && e.unheld == 0 {
			delete(redo, k) // no connection left to write
		}
		switch {
		case e.pending != settled && p.guard.lateCalls():
			// A call that guarded stopped waiting for still runs, maybe
			// this pair's: what is written now it may undo. Later.
		case e.n == 0 && e.unheld > 0:
			// Connections whose Add failed, still open: write what their
			// Add would have, or they are shown absent while they last.
			first, _, err := p.add(ctx, k, false)
			if err != nil {
				p.log.Warn("redis: retry presence add", "presence", k.String(), "err", err)
				break
			}
			e.n, e.unheld, e.pending = e.unheld, 0, settled
			delete(redo, k)
			if first {
				back = append(back, k)
			}
		case e.n > 0 && redo[k]:
			// Back if this node no longer held the user (it was reaped
			// meanwhile, or Redis lost its presences) and no other node
			// does: the user was reported gone, or is shown so. If it
			// still held them (its key lapsed, and no node reaped it),
			// nothing ended, nobody was told so, and a report would tell
			// the user's friends and rooms again that they came online.
			first, held, err := p.add(ctx, k, true)
			if err != nil {
				p.log.Warn("redis: rewrite presence", "presence", k.String(), "err", err)
				break // left in redo
			}
			delete(redo, k)
			if first && !held {
				back = append(back, k)
			}
		case e.n > 0 && e.pending == inDoubt:
			// A Remove that failed may have run after the Add since, and
			// ended the presence of its connection: write it again, back
			// if that Remove had ended it and no other node holds it.
			first, held, err := p.add(ctx, k, false)
			if err != nil {
				p.log.Warn("redis: rewrite presence in doubt", "presence", k.String(), "err", err)
				break
			}
			e.pending = settled
			if first && !held {
				back = append(back, k)
			}
		case e.n == 0 && e.pending != settled:
			retry := "0"
			if e.pending == failedRemove {
				retry = "1"
			}
			last, err := p.remove(ctx, k, retry)
			if err != nil {
				p.log.Warn("redis: retry presence removal", "presence", k.String(), "err", err)
				break
			}
			if last && e.pending == failedRemove {
				ended = append(ended, k)
			}
			e.pending = settled
		}
		p.local.Unlock(k, remembers)
		p.gate.RUnlock()
	}
	return
}

// sweep reaps dead nodes every NodeTTL/6.
func (p *Presence) sweep() {
	defer p.wg.Done()
	for {
		// Jitter spreads the sweeps of nodes started together.
		d := p.every/2 + rand.N(p.every)
		select {
		case <-p.life.Done():
			return
		case <-time.After(d):
		}
		ctx, cancel := context.WithTimeout(p.life, p.keyTTL)
		if err := p.reapDead(ctx); err != nil && p.life.Err() == nil {
			p.log.Warn("redis: presence sweep", "err", err)
		}
		cancel()
	}
}

func (p *Presence) reapDead(ctx context.Context) error {
	var nodes, reaping *goredis.StringSliceCmd
	if _, err := p.rdb.Pipelined(ctx, func(pipe goredis.Pipeliner) error {
		nodes = pipe.SMembers(ctx, p.p+"nodes")
		reaping = pipe.SMembers(ctx, p.p+"reaping")
		return nil
	}); err != nil {
		return err
	}
	tokens := reaping.Val()
	for t := range p.reported {
		if !slices.Contains(tokens, t) {
			delete(p.reported, t) // confirmed, though the reply was lost
		}
	}
	// Reaps left unreported: every try failed, or the reaper died.
	for _, t := range tokens {
		if !p.reported[t] {
			gone, err := resumeScript.Run(ctx, p.rdb, nil, p.p, t, p.id, reapKeep.Milliseconds()).StringSlice()
			if err != nil {
				return fmt.Errorf("resume reap %s: %w", t, err)
			}
			if len(gone) == 0 {
				continue // another node's, or gone
			}
			p.log.Info("redis: reported the presences a reap ended", "reap", t, "ended", len(gone))
			p.endedAll(gone)
			p.reported[t] = true
		}
		if err := p.confirmReported(ctx, t); err != nil {
			return err
		}
	}
	ids := slices.DeleteFunc(nodes.Val(), func(id string) bool { return id == p.id })
	if len(ids) == 0 {
		return nil
	}
	pipe := p.rdb.Pipeline()
	exists := make([]*goredis.IntCmd, len(ids))
	for i, id := range ids {
		exists[i] = pipe.Exists(ctx, p.p+"node:"+id)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	for i, id := range ids {
		if exists[i].Val() == 1 {
			continue
		}
		t := newToken()
		gone, err := p.reap(ctx, id, false, t)
		if err != nil {
			// If it ran, the next sweep finds it in reaping.
			return fmt.Errorf("reap node %s: %w", id, err)
		}
		if len(gone) == 0 {
			continue
		}
		p.log.Info("redis: reaped dead node", "node", id, "ended", len(gone))
		p.endedAll(gone)
		p.reported[t] = true
		if err := p.confirmReported(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// confirmReported is confirm for the sweep, under ctx's values but a
// callTimeout of its own, ended by Close: the Watch functions it follows
// may have used up the sweep's time (a large reap, each presence told to
// friends and rooms), and a reap left unconfirmed is reported again by
// whichever node takes it over if this one dies.
func (p *Presence) confirmReported(ctx context.Context, t string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	defer context.AfterFunc(p.life, cancel)()
	return p.confirm(ctx, t)
}

// confirm drops the reap of token t, which this node reported.
func (p *Presence) confirm(ctx context.Context, t string) error {
	if err := confirmScript.Run(ctx, p.rdb, nil, p.p, t, p.id).Err(); err != nil {
		return fmt.Errorf("confirm reap %s: %w", t, err)
	}
	delete(p.reported, t)
	return nil
}

// Close stops the heartbeat and removes this node's presences from Redis
// at once. Presences still held (no Remove was called) end as if the node
// had died: the Watch functions are called for those that thereby ended
// everywhere, before Close returns, so close Presence before the Broker
// they may publish on (Client.Close does).
//
// Close waits for Redis at most CloseTimeout, and not at all while a call
// has just found it hanging (callTimeout); the presences it failed to
// remove end when another node reaps this one, within about NodeTTL
// (or, if the reap ran but its reply never came, reapKeep later).
func (p *Presence) Close() error {
	p.gate.Lock()
	if p.closed {
		p.gate.Unlock()
		return nil
	}
	p.closed = true
	p.gate.Unlock()
	p.stop()
	p.wg.Wait()
	if p.guard.down() {
		return fmt.Errorf("presence close: %w", errDown)
	}
	ctx, cancel := context.WithTimeout(context.Background(), CloseTimeout)
	defer cancel()
	// Reaps the sweep reported but could not confirm (Close cancelled its
	// calls, or Redis failed them): left, another node would take them
	// over once their lease lapsed, and report them again.
	var errs []error
	for t := range p.reported {
		if err := p.confirm(ctx, t); err != nil {
			errs = append(errs, err)
		}
	}
	t := newToken()
	gone, err := p.reap(ctx, p.id, true, t)
	if err != nil {
		// If it ran, a restart with this NodeID, or another node once
		// the lease lapsed, reports what it ended (resumeScript).
		return fmt.Errorf("presence close: %w", errors.Join(append(errs, err)...))
	}
	p.endedAll(gone)
	if len(gone) > 0 {
		errs = append(errs, p.confirm(ctx, t))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("presence close: %w", err)
	}
	return nil
}
