// Package inmem provides the single-node Broker, Presence and Limiter: plain
// maps in this process. It must not touch the network or the disk.
package inmem

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// Broker delivers events to the subscribers in this process, synchronously
// and in publish order per topic.
//
// The subscriber lists are copied on write, and Publish calls the
// subscribers of the list it read without holding a lock: a subscriber may
// cancel its subscription, subscribe, or publish from its callback, and a
// slow one delays only its publisher, never a Subscribe or the publishers
// of other topics.
type Broker struct {
	mu     sync.RWMutex
	subs   map[chat.Topic][]*sub
	all    []*allSub
	closed bool
}

type allSub struct {
	fn        func(chat.Topic, chat.Event)
	cancelled atomic.Bool
}

type sub struct {
	fn        func(chat.Event)
	cancelled atomic.Bool
}

var _ chat.Broker = (*Broker)(nil)

// NewBroker returns an empty Broker.
func NewBroker() *Broker { return &Broker{subs: make(map[chat.Topic][]*sub)} }

// ErrClosed is returned after Close.
var ErrClosed = errors.New("inmem: broker closed")

// Publish calls every subscriber of t with ev. A subscription cancelled
// meanwhile receives nothing more.
func (b *Broker) Publish(_ context.Context, t chat.Topic, ev chat.Event) error {
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return ErrClosed
	}
	subs, all := b.subs[t], b.all
	b.mu.RUnlock()
	for _, s := range subs {
		if !s.cancelled.Load() {
			s.fn(ev)
		}
	}
	for _, s := range all {
		if !s.cancelled.Load() {
			s.fn(t, ev)
		}
	}
	return nil
}

// SubscribeAll registers fn for the events of every topic. It spares a
// subscriber with many topics (hub.Hub: one per signed-in user) a
// subscription for each.
func (b *Broker) SubscribeAll(fn func(chat.Topic, chat.Event)) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	s := &allSub{fn: fn}
	b.all = append(slices.Clip(b.all), s)
	var once sync.Once
	return func() {
		once.Do(func() {
			s.cancelled.Store(true)
			b.mu.Lock()
			defer b.mu.Unlock()
			b.all = slices.DeleteFunc(slices.Clone(b.all), func(x *allSub) bool { return x == s })
		})
	}, nil
}

// Subscribe registers fn for t.
func (b *Broker) Subscribe(t chat.Topic, fn func(chat.Event)) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	s := &sub{fn: fn}
	b.subs[t] = append(slices.Clip(b.subs[t]), s)
	var once sync.Once
	return func() {
		once.Do(func() {
			s.cancelled.Store(true)
			b.mu.Lock()
			defer b.mu.Unlock()
			if b.closed {
				return
			}
			rest := slices.DeleteFunc(slices.Clone(b.subs[t]), func(x *sub) bool { return x == s })
			if len(rest) == 0 {
				delete(b.subs, t)
			} else {
				b.subs[t] = rest
			}
		})
	}, nil
}

// Close drops every subscription.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for _, ss := range b.subs {
		for _, s := range ss {
			s.cancelled.Store(true)
		}
	}
	for _, s := range b.all {
		s.cancelled.Store(true)
	}
	b.subs = nil
	b.all = nil
	return nil
}

// Presence counts connections per (conversation, user) in this process.
type Presence struct {
	mu    sync.Mutex
	count map[int64]map[int64]int
	clock int64 // counts the changes of who is present (State)
}

var _ chat.Presence = (*Presence)(nil)

// NewPresence returns an empty Presence.
func NewPresence() *Presence { return &Presence{count: make(map[int64]map[int64]int), clock: 1} }

// Add counts one connection of userID in convID.
func (p *Presence) Add(_ context.Context, convID, userID int64) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.count[convID]
	if m == nil {
		m = make(map[int64]int)
		p.count[convID] = m
	}
	m[userID]++
	if m[userID] > 1 {
		return false, nil
	}
	p.clock++
	return true, nil
}

// Remove uncounts one connection of userID in convID.
func (p *Presence) Remove(_ context.Context, convID, userID int64) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.count[convID]
	if m[userID] == 0 {
		return false, nil
	}
	m[userID]--
	if m[userID] > 0 {
		return false, nil
	}
	delete(m, userID)
	if len(m) == 0 {
		delete(p.count, convID)
	}
	p.clock++
	return true, nil
}

// Online returns how many users are present in convID and at most max of
// them.
func (p *Presence) Online(_ context.Context, convID int64, max int) ([]int64, int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	in := p.count[convID]
	if max <= 0 {
		return nil, len(in), nil
	}
	ids := make([]int64, 0, min(max, len(in)))
	for id := range in {
		if len(ids) == max {
			break
		}
		ids = append(ids, id)
	}
	return ids, len(in), nil
}

// OnlineOf returns those of userIDs present in convID.
func (p *Presence) OnlineOf(_ context.Context, convID int64, userIDs []int64) ([]int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []int64
	for _, id := range userIDs {
		if p.count[convID][id] > 0 {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// PresentIn returns those of convIDs where userID is present.
func (p *Presence) PresentIn(_ context.Context, userID int64, convIDs []int64) ([]int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []int64
	for _, id := range convIDs {
		if p.count[id][userID] > 0 {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// State returns whether userID is present in convID, and the number of
// changes of who is present so far as its version.
func (p *Presence) State(_ context.Context, convID, userID int64) (bool, int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count[convID][userID] > 0, p.clock, nil
}

// StateCount is State with how many users are present in convID.
func (p *Presence) StateCount(_ context.Context, convID, userID int64) (bool, int, int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	in := p.count[convID]
	return in[userID] > 0, len(in), p.clock, nil
}

// Version returns the number of changes of who is present so far, as
// State gives it.
func (p *Presence) Version(context.Context) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.clock, nil
}

// Watch does nothing: presences of one process end with it.
func (p *Presence) Watch(func(convID, userID int64, online bool)) {}

// Limiter is a sliding-window rate limiter over this process's memory.
// It forgets keys whose window has passed.
type Limiter struct {
	mu    sync.Mutex
	now   func() time.Time
	hits  map[string]*window
	sweep time.Time
}

type window struct {
	ts  []time.Time
	len time.Duration
}

var _ chat.Limiter = (*Limiter)(nil)

// NewLimiter returns a Limiter reading the clock from now (time.Now if nil).
func NewLimiter(now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{now: now, hits: make(map[string]*window)}
}

// Allow counts one event for key if fewer than n happened in the last
// window.
func (l *Limiter) Allow(_ context.Context, key string, n int, per time.Duration) (bool, time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.sweep) > time.Minute {
		l.sweep = now
		for k, w := range l.hits {
			if len(w.ts) == 0 || now.Sub(w.ts[len(w.ts)-1]) >= w.len {
				delete(l.hits, k)
			}
		}
	}
	w := l.hits[key]
	if w == nil {
		w = &window{}
		l.hits[key] = w
	}
	w.len = per
	i := 0
	for i < len(w.ts) && now.Sub(w.ts[i]) >= per {
		i++
	}
	w.ts = w.ts[i:]
	if len(w.ts) >= n {
		return false, w.ts[0].Add(per).Sub(now), nil
	}
	w.ts = append(w.ts, now)
	return true, 0, nil
}

// Undo takes back the newest event counted for key.
func (l *Limiter) Undo(_ context.Context, key string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := l.hits[key]; w != nil && len(w.ts) > 0 {
		w.ts = w.ts[:len(w.ts)-1]
	}
	return nil
}
