package bench

// seqStatus is what seqChecker.add found out about one number.
type seqStatus int

const (
	seqIgnored seqStatus = iota // at or below the base, or absurdly far ahead
	seqInOrder                  // seen for the first time, above every number before
	seqLate                     // seen for the first time, below a number seen earlier
	seqDup                      // seen before
)

// maxSpan bounds how far past its base a seqChecker tracks numbers, and so
// its memory (maxSpan/8 bytes).
const maxSpan = 1 << 28

// seqChecker follows one receiver's view of a sequence that should arrive
// gap-free and in order: a room's seqs (native protocol) or one sender's
// message numbers (compat). It remembers every number seen after base, so
// it tells duplicates from late arrivals exactly. Not safe for concurrent
// use.
type seqChecker struct {
	base  int64    // numbers at or below base are before our time
	last  int64    // highest number seen; base if none
	seen  []uint64 // bit i: number base+1+i was seen
	count int64    // distinct numbers seen
	dups  int64
	late  int64 // numbers that arrived after a higher one
	gaps  int64 // numbers skipped over when a higher one arrived (some may arrive late)
}

func newSeqChecker(base int64) seqChecker { return seqChecker{base: base, last: base} }

// add records number n.
func (c *seqChecker) add(n int64) seqStatus {
	i := n - c.base - 1
	if i < 0 || i >= maxSpan {
		return seqIgnored
	}
	w, bit := i/64, uint64(1)<<(i%64)
	if w >= int64(len(c.seen)) {
		c.seen = append(c.seen, make([]uint64, w+1-int64(len(c.seen)))...)
	}
	if c.seen[w]&bit != 0 {
		c.dups++
		return seqDup
	}
	c.seen[w] |= bit
	c.count++
	if n < c.last {
		c.late++
		return seqLate
	}
	c.gaps += n - c.last - 1
	c.last = n
	return seqInOrder
}

// has reports whether n was seen.
func (c *seqChecker) has(n int64) bool {
	i := n - c.base - 1
	if i < 0 || i/64 >= int64(len(c.seen)) {
		return false
	}
	return c.seen[i/64]&(1<<(i%64)) != 0
}

// missing is how many numbers between base and the highest seen never
// arrived.
func (c *seqChecker) missing() int64 { return c.last - c.base - c.count }
