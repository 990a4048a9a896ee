// Package keyed holds a lock per key, with a value each: work on one key
// waits only for work on the same key. It uses the standard library only,
// and knows nothing of what the keys stand for.
package keyed

import "sync"

// Locks holds a lock and a value per key, from the first Lock of the key
// until no one holds or waits for its lock and its value need not be kept
// (Unlock). Holding a key's lock guards its value.
//
// The zero Locks is ready to use. Locks must not be copied after first
// use.
type Locks[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]*entry[V]
}

type entry[V any] struct {
	mu   sync.Mutex
	refs int // holder and waiters; guarded by Locks.mu
	v    V
}

// Lock waits for k's lock and returns k's value, the zero V if k had
// none, to use until Unlock.
func (l *Locks[K, V]) Lock(k K) *V {
	l.mu.Lock()
	e := l.m[k]
	if e == nil {
		if l.m == nil {
			l.m = make(map[K]*entry[V])
		}
		e = new(entry[V])
		l.m[k] = e
	}
	e.refs++
	l.mu.Unlock()
	e.mu.Lock()
	return &e.v
}

// Unlock gives back k's lock, which the caller holds. If no one else
// holds or waits for it, k's value is dropped unless keep, if not nil,
// reports it is to be kept; keep runs with no one holding k's lock, so
// the value is as its last holder left it; it must not call l's methods.
func (l *Locks[K, V]) Unlock(k K, keep func(*V) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.m[k]
	if e == nil || e.refs == 0 {
		panic("keyed: Unlock of a key not locked")
	}
	e.mu.Unlock()
	if e.refs--; e.refs == 0 && (keep == nil || !keep(&e.v)) {
		delete(l.m, k)
	}
}

// Keys returns the keys held now: those locked or waited for, and those
// whose values were kept.
func (l *Locks[K, V]) Keys() []K {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([]K, 0, len(l.m))
	for k := range l.m {
		keys = append(keys, k)
	}
	return keys
}

// Has reports whether k is held now (see Keys).
func (l *Locks[K, V]) Has(k K) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.m[k]
	return ok
}
