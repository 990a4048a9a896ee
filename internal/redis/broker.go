package redis

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/chat"
)

// Broker fans events out through Redis pub/sub, as JSON on the channel
// Prefix + topic. A node holds one pub/sub connection for all its topics:
// Subscribe sends SUBSCRIBE for a topic's first local subscriber and cancel
// UNSUBSCRIBE after its last, and one goroutine reads the connection and
// calls the subscribers in order. Publish pipelines its commands over
// the client's pool (publish.go).
//
// Redis is the fast path only. Publish fails while Redis is unreachable;
// Subscribe does not: it registers locally, and the subscription is made
// when the connection is back, which OnResume announces. go-redis dials the
// pub/sub connection again after an error and subscribes to every topic
// again; the Broker pings it when it is silent, so a dead peer is noticed
// within PingInterval + PingTimeout.
type Broker struct {
	rdb    *goredis.Client
	ps     *goredis.PubSub
	prefix string
	opts   Options
	log    *slog.Logger

	cmdMu  sync.Mutex // orders SUBSCRIBE and UNSUBSCRIBE as the counts change
	mu     sync.RWMutex
	topics map[string]*topicSubs // by channel
	closed bool

	deferred map[string]struct{} // channels whose command waits for the connection; guarded by cmdMu

	wmu     sync.Mutex
	waiters map[string]chan bool // by ping payload; true: answered
	seq     atomic.Uint64
	lost    atomic.Bool // the reader lost the connection and has not read since

	pub publisher // Publish's pipelines

	rmu     sync.Mutex
	resumes []func()

	fmu        sync.Mutex
	failed     map[string]failedPub // by channel: the newest recoverable event whose publish failed
	anyFail    atomic.Bool          // failed holds something: read by every Publish without fmu
	retrying   bool                 // retryFailed runs
	retryTimer *time.Timer          // runs retryFailed later, while failed holds something (retryLaterLocked)
	retryWait  time.Duration        // the wait of the next retryTimer; 0: retryAfter

	quit chan struct{}
	ctx  context.Context // the reader's, ended by Close: a dial for it stops
	stop context.CancelFunc
	done chan struct{}
}

type topicSubs struct {
	subs  []*sub // replaced, never modified in place
	ready bool   // Redis confirmed the subscription
}

type sub struct {
	fn        func(chat.Event)
	cancelled atomic.Bool
}

var _ chat.Broker = (*Broker)(nil)

// lostPublishTimeout bounds a Publish while the pub/sub connection is lost;
// for five times as long after a failed one, Publish fails at once.
const lostPublishTimeout = 200 * time.Millisecond

// errRedisDown is Publish's error while Redis is known to be unreachable.
var errRedisDown = errors.New("redis: unreachable (publish failed moments ago)")

func newBroker(rdb *goredis.Client, opts Options) *Broker {
	b := &Broker{
		rdb:     rdb,
		ps:      rdb.Subscribe(context.Background()),
		prefix:  opts.Prefix,
		opts:    opts,
		log:     opts.Logger,
		topics:  make(map[string]*topicSubs),
		waiters: make(map[string]chan bool),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	b.ctx, b.stop = context.WithCancel(context.Background())
	b.pub.b = b
	go b.run()
	return b
}

// Publish sends ev to every node subscribed to t. It fails when Redis is
// unreachable; the event is then lost to live delivery (the store keeps
// the message), except that the newest message or logged user event of
// each topic whose publish failed is published again once Redis is back
// (publishFailed), for subscribers to fill the gap before it from the
// store. Publishes made while others are on their way to Redis go
// together in the next pipeline (publish.go).
func (b *Broker) Publish(ctx context.Context, t chat.Topic, ev chat.Event) error {
	b.mu.RLock()
	closed := b.closed
	b.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	ch := b.prefix + string(t)
	if err := b.pub.publish(ctx, ch, data); err != nil {
		b.publishFailed(ch, ev, data)
		return err
	}
	if b.anyFail.Load() {
		b.retryFailed()
	}
	return nil
}

// maxFailed bounds the channels whose failed publish the Broker keeps.
const maxFailed = 4096

// failedPub is the newest recoverable event of a channel whose publish
// failed: its seq or UserSeq, and its encoding.
type failedPub struct {
	pos  int64
	data []byte
}

// publishFailed keeps ev (encoded as data) to publish again once Redis is
// back, if subscribers can recover the events before it from the store: a
// message (the hub fills the gap up to its seq) or a logged user event
// (UserSeq). The other nodes' connections to Redis may never have broken:
// without this they would not learn of the message until the next one in
// its conversation, and their clients would miss it while the
// conversation stays quiet. Only the newest such event per channel is
// kept.
func (b *Broker) publishFailed(ch string, ev chat.Event, data []byte) {
	var pos int64
	switch {
	case ev.Type == chat.EventMessage && ev.Message != nil:
		pos = ev.Message.Seq
	case ev.UserSeq > 0:
		pos = ev.UserSeq
	default:
		return
	}
	b.keepFailed(ch, failedPub{pos, data})
}

func (b *Broker) keepFailed(ch string, f failedPub) {
	b.fmu.Lock()
	defer b.fmu.Unlock()
	old, ok := b.failed[ch]
	switch {
	case ok && old.pos >= f.pos:
		return
	case !ok && len(b.failed) >= maxFailed:
		b.log.Warn("redis: too many failed publishes to retry; dropped", "channel", ch)
		return
	}
	if b.failed == nil {
		b.failed = make(map[string]failedPub)
	}
	b.failed[ch] = f
	b.anyFail.Store(true)
	b.retryLaterLocked()
}

// retryAfter is the wait before the Broker publishes again, by itself,
// what failed; it doubles while that fails, up to retryAfterMax. Redis may
// take publishes again while the pub/sub connection never broke (only
// this node's other connections did, or a publish timed out): no resume
// then retries, and a node that publishes nothing more would keep a
// failed message from the other nodes for as long.
const (
	retryAfter    = time.Second
	retryAfterMax = 30 * time.Second
)

// retryLaterLocked starts the timer that calls retryFailed, unless it
// runs or the Broker is closed (Close stops it). While the pub/sub
// connection is lost the timer does nothing: resume retries. b.fmu is
// held.
func (b *Broker) retryLaterLocked() {
	b.mu.RLock()
	closed := b.closed
	b.mu.RUnlock()
	if b.retryTimer != nil || closed {
		return
	}
	wait := b.retryWait
	if wait == 0 {
		wait = retryAfter
	}
	b.retryWait = min(2*wait, retryAfterMax)
	b.retryTimer = time.AfterFunc(wait, func() {
		b.fmu.Lock()
		b.retryTimer = nil
		b.fmu.Unlock()
		if !b.lost.Load() {
			b.retryFailed()
		}
	})
}

// retryFailed publishes again, on its own goroutine, the events kept by
// publishFailed: after the connection resumed, a publish succeeded, or
// some time passed (retryAfter). What fails again is kept again.
func (b *Broker) retryFailed() {
	b.fmu.Lock()
	if b.retrying || len(b.failed) == 0 {
		b.fmu.Unlock()
		return
	}
	b.retrying = true
	failed := b.failed
	b.failed = nil
	b.anyFail.Store(false)
	b.fmu.Unlock()
	go func() {
		again := false
		defer func() {
			b.fmu.Lock()
			defer b.fmu.Unlock()
			b.retrying = false
			if !again {
				b.retryWait = 0
			}
			if len(b.failed) > 0 {
				b.retryLaterLocked() // a timer that fired meanwhile found this running
			}
		}()
		for ch, f := range failed {
			b.mu.RLock()
			closed := b.closed
			b.mu.RUnlock()
			if closed {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), b.opts.SubscribeTimeout)
			err := b.pub.publish(ctx, ch, f.data)
			cancel()
			if err != nil {
				again = true
				b.keepFailed(ch, f)
			}
		}
	}()
}

// Subscribe calls fn, from the Broker's reader goroutine, for each event
// published to t (on any node) until cancel is called. Events of one topic
// arrive in publish order. When Redis is reachable, Subscribe returns once
// Redis has confirmed the subscription (or after SubscribeTimeout), so an
// event published after it returns is delivered. It fails only after
// Close.
func (b *Broker) Subscribe(t chat.Topic, fn func(chat.Event)) (func(), error) {
	ch := b.prefix + string(t)
	s := &sub{fn: fn}
	b.cmdMu.Lock()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.cmdMu.Unlock()
		return nil, ErrClosed
	}
	ts := b.topics[ch]
	first := ts == nil
	if first {
		ts = &topicSubs{}
		b.topics[ch] = ts
	}
	ts.subs = append(slices.Clip(ts.subs), s)
	ready := ts.ready
	b.mu.Unlock()
	if first && !b.deferLocked(ch) {
		ctx, cancel := context.WithTimeout(context.Background(), b.opts.SubscribeTimeout)
		// On error go-redis still records the channel and subscribes to it
		// when it reconnects.
		if err := b.ps.Subscribe(ctx, ch); err != nil {
			b.log.Warn("redis: subscribe (will retry on reconnect)", "channel", ch, "err", err)
		}
		cancel()
	}
	b.cmdMu.Unlock()
	if !ready && b.barrier() {
		b.mu.Lock()
		if cur := b.topics[ch]; cur == ts {
			ts.ready = true
		}
		b.mu.Unlock()
	}
	var once sync.Once
	return func() { once.Do(func() { b.unsubscribe(ch, s) }) }, nil
}

func (b *Broker) unsubscribe(ch string, s *sub) {
	s.cancelled.Store(true)
	b.cmdMu.Lock()
	defer b.cmdMu.Unlock()
	b.mu.Lock()
	ts := b.topics[ch]
	if ts == nil || b.closed {
		b.mu.Unlock()
		return
	}
	ts.subs = slices.DeleteFunc(slices.Clone(ts.subs), func(x *sub) bool { return x == s })
	last := len(ts.subs) == 0
	if last {
		delete(b.topics, ch)
	}
	b.mu.Unlock()
	if last && !b.deferLocked(ch) {
		ctx, cancel := context.WithTimeout(context.Background(), b.opts.SubscribeTimeout)
		defer cancel()
		if err := b.ps.Unsubscribe(ctx, ch); err != nil {
			b.log.Warn("redis: unsubscribe", "channel", ch, "err", err)
		}
	}
}

// deferLocked, with cmdMu held, puts off the SUBSCRIBE or UNSUBSCRIBE of
// ch while the connection is lost, and reports whether it did. go-redis
// would dial for it, and wait for SubscribeTimeout if Redis does not
// answer: the hub, which subscribes and cancels on every connect, open
// and disconnect, makes those calls one after another on one goroutine.
// The reader sends what was put off once the connection is back
// (sendDeferred).
func (b *Broker) deferLocked(ch string) bool {
	if !b.lost.Load() {
		return false
	}
	if b.deferred == nil {
		b.deferred = make(map[string]struct{})
	}
	b.deferred[ch] = struct{}{}
	return true
}

// sendDeferred subscribes to each channel put off while the connection
// was lost that has subscribers now, and unsubscribes from the others. It
// reports whether it subscribed to any.
func (b *Broker) sendDeferred() bool {
	b.cmdMu.Lock()
	defer b.cmdMu.Unlock()
	var sub, unsub []string
	b.mu.RLock()
	for ch := range b.deferred {
		if b.topics[ch] != nil {
			sub = append(sub, ch)
		} else {
			unsub = append(unsub, ch)
		}
	}
	b.mu.RUnlock()
	clear(b.deferred)
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.SubscribeTimeout)
	defer cancel()
	if len(unsub) > 0 {
		if err := b.ps.Unsubscribe(ctx, unsub...); err != nil {
			b.log.Warn("redis: unsubscribe", "channels", len(unsub), "err", err)
		}
	}
	if len(sub) > 0 {
		// On error go-redis still records them, as in Subscribe.
		if err := b.ps.Subscribe(ctx, sub...); err != nil {
			b.log.Warn("redis: subscribe (will retry on reconnect)", "channels", len(sub), "err", err)
		}
	}
	return len(sub) > 0
}

// barrier waits until Redis has handled every command sent before it on
// the pub/sub connection, by sending PING with a unique payload and waiting
// for its answer. It reports whether the answer came; it gives up at once
// when the connection is known lost (OnResume will follow) and after
// SubscribeTimeout.
func (b *Broker) barrier() bool {
	if b.lost.Load() {
		return false
	}
	token := "parley-barrier-" + strconv.FormatUint(b.seq.Add(1), 10)
	w := make(chan bool, 1)
	b.wmu.Lock()
	b.waiters[token] = w
	b.wmu.Unlock()
	defer func() {
		b.wmu.Lock()
		delete(b.waiters, token)
		b.wmu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.SubscribeTimeout)
	defer cancel()
	if err := b.ps.Ping(ctx, token); err != nil {
		return false
	}
	select {
	case ok := <-w:
		return ok
	case <-ctx.Done():
		b.log.Warn("redis: subscription not confirmed in time", "timeout", b.opts.SubscribeTimeout)
		return false
	case <-b.quit:
		return false
	}
}

// OnResume registers fn to be called after the pub/sub connection was lost
// and is back, once Redis again holds every subscription of this node.
// Events published in between were not delivered: fn should resync the
// local subscribers from the store. fn runs on its own goroutine.
func (b *Broker) OnResume(fn func()) {
	b.rmu.Lock()
	defer b.rmu.Unlock()
	b.resumes = append(b.resumes, fn)
}

// run is the reader: the only goroutine that receives from the pub/sub
// connection.
func (b *Broker) run() {
	defer close(b.done)
	ctx := b.ctx
	confirmed := make(map[string]bool) // channels Redis confirmed on this connection
	pinged := false
	resumeAt := "" // the payload of the PING whose answer ends a reconnect
	backoff := 50 * time.Millisecond
	for {
		var msg any
		var err error
		if pinged {
			// A timeout here, unlike in ReceiveTimeout, makes go-redis drop
			// the connection and dial again.
			rctx, cancel := context.WithTimeout(ctx, b.opts.PingTimeout)
			msg, err = b.ps.Receive(rctx)
			cancel()
		} else {
			msg, err = b.ps.ReceiveTimeout(ctx, b.opts.PingInterval)
		}
		select {
		case <-b.quit:
			return
		default:
		}
		if err != nil {
			if errors.Is(err, goredis.ErrClosed) {
				return
			}
			var ne net.Error
			if !pinged && errors.As(err, &ne) && ne.Timeout() {
				pinged = true // silent for PingInterval: is it alive?
				if err := b.ps.Ping(ctx); err != nil {
					b.log.Warn("redis: pub/sub ping", "err", err)
				}
				continue
			}
			pinged = false
			if !b.lost.Swap(true) {
				b.pub.connLost()
				b.log.Warn("redis: pub/sub connection lost", "err", err)
				clear(confirmed)
				b.releaseWaiters()
			}
			select {
			case <-b.quit:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			// Dials (and subscribes again) if needed, and makes Redis
			// answer once it has the subscriptions.
			_ = b.ps.Ping(ctx)
			continue
		}
		pinged = false
		backoff = 50 * time.Millisecond
		if b.lost.Swap(false) {
			// Subscriptions put off meanwhile go now; resyncing waits
			// until Redis holds them, which the answer to a PING sent
			// after them shows.
			resumeAt = ""
			if b.sendDeferred() {
				resumeAt = "parley-resume-" + strconv.FormatUint(b.seq.Add(1), 10)
				if err := b.ps.Ping(ctx, resumeAt); err != nil {
					resumeAt = ""
				}
			}
			if resumeAt == "" {
				b.resume()
			}
		}
		switch m := msg.(type) {
		case *goredis.Message:
			b.dispatch(m)
		case *goredis.Pong:
			if resumeAt != "" && m.Payload == resumeAt {
				resumeAt = ""
				b.resume()
				continue
			}
			b.wmu.Lock()
			if w, ok := b.waiters[m.Payload]; ok {
				w <- true
				delete(b.waiters, m.Payload)
			}
			b.wmu.Unlock()
		case *goredis.Subscription:
			switch m.Kind {
			case "subscribe":
				// A second confirmation means go-redis dialled again and
				// subscribed anew, without the reader seeing an error.
				if confirmed[m.Channel] {
					b.resume()
				}
				confirmed[m.Channel] = true
			case "unsubscribe":
				delete(confirmed, m.Channel)
			}
		}
	}
}

// releaseWaiters ends every barrier: the connection they were waiting on
// is gone.
func (b *Broker) releaseWaiters() {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	for token, w := range b.waiters {
		w <- false
		delete(b.waiters, token)
	}
}

func (b *Broker) resume() {
	b.log.Info("redis: pub/sub connection resumed")
	b.retryFailed()
	b.rmu.Lock()
	fns := slices.Clone(b.resumes)
	b.rmu.Unlock()
	for _, fn := range fns {
		go fn()
	}
}

func (b *Broker) dispatch(m *goredis.Message) {
	b.mu.RLock()
	var subs []*sub
	if ts := b.topics[m.Channel]; ts != nil {
		subs = ts.subs
	}
	b.mu.RUnlock()
	if len(subs) == 0 {
		return
	}
	var ev chat.Event
	if err := json.Unmarshal([]byte(m.Payload), &ev); err != nil {
		b.log.Warn("redis: undecodable event", "channel", m.Channel, "err", err)
		return
	}
	for _, s := range subs {
		if !s.cancelled.Load() {
			s.fn(ev)
		}
	}
}

// Close stops delivery and closes the pub/sub connection. It does not
// close the shared client (Client.Close does).
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.topics = nil
	b.mu.Unlock()
	b.fmu.Lock()
	if b.retryTimer != nil {
		b.retryTimer.Stop()
	}
	b.fmu.Unlock()
	close(b.quit)
	b.stop()
	err := b.ps.Close()
	<-b.done
	return err
}
