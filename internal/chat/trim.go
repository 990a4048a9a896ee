package chat

import "context"

// A returning client is given at most its user's newest MaxReplay logged
// events, and a live connection fills a gap with at most as many: the
// older ones are never read again, and a log that kept them would grow
// for as long as its user is changed. TrimUserEvents removes them.
const (
	trimBatch   = 1000 // events removed per transaction
	trimBatches = 100  // transactions per call at most
)

// TrimUserEvents removes from st the logged events that no client can be
// given again (all but each user's newest MaxReplay), trimBatch at a
// time, each batch a write of its own, and at most trimBatches of them:
// a backlog (a first run, a long pause) is worked off over several
// calls, none holding the store for long. It returns how many it removed.
func TrimUserEvents(ctx context.Context, st ActivityStore) (int, error) {
	total := 0
	for range trimBatches {
		n, err := st.TrimUserEvents(ctx, MaxReplay, trimBatch)
		total += n
		if err != nil {
			return total, err
		}
		if n < trimBatch {
			break
		}
	}
	return total, nil
}
