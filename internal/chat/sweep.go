package chat

import (
	"context"
	"time"
)

// The sweeps of the store (DeleteExpired, TrimUserEvents) remove rows in
// batches, each a write of its own, and at most sweepBatches of them per
// call: a backlog (a first run, a long pause) is worked off over several
// calls, none holding the store's writes up for long.
const (
	sweepBatch   = 1000 // rows removed per write
	sweepBatches = 100  // writes per call at most
)

// SweepBatchTimeout bounds each batch of a sweep, whatever its caller's
// context: a batch stuck on a connection that does not answer gives it
// back then, rather than once TCP gives up (hours).
const SweepBatchTimeout = 15 * time.Second

// inBatches calls remove with sweepBatch until it removes fewer, or
// sweepBatches times, each call with a context of its own bounded by
// SweepBatchTimeout, and returns how many it removed in all.
func inBatches(ctx context.Context, remove func(ctx context.Context, limit int) (int, error)) (int, error) {
	total := 0
	for range sweepBatches {
		bctx, cancel := context.WithTimeout(ctx, SweepBatchTimeout)
		n, err := remove(bctx, sweepBatch)
		cancel()
		total += n
		if err != nil || n < sweepBatch {
			return total, err
		}
	}
	return total, nil
}

// DeleteExpired removes from st the sessions and login codes expired at
// now, in batches (sweepBatch, sweepBatches). It returns how many it
// removed.
func DeleteExpired(ctx context.Context, st AuthStore, now time.Time) (int, error) {
	return inBatches(ctx, func(ctx context.Context, limit int) (int, error) { return st.DeleteExpired(ctx, now, limit) })
}

// A returning client is given at most its user's newest MaxReplay logged
// events, and a live connection fills a gap with at most as many: the
// older ones are never read again, and a log that kept them would grow
// for as long as its user is changed.

// TrimUserEvents removes from st the logged events that no client can be
// given again, all but each user's newest MaxReplay, in batches
// (sweepBatch, sweepBatches). It returns how many it removed.
func TrimUserEvents(ctx context.Context, st ActivityStore) (int, error) {
	return inBatches(ctx, func(ctx context.Context, limit int) (int, error) { return st.TrimUserEvents(ctx, MaxReplay, limit) })
}
