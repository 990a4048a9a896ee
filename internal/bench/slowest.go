package bench

import "sync/atomic"

// slowest keeps, for each message of one sender (by its number n ≥ 1), the
// latency of its slowest delivery so far: at the end of a run, the time the
// message took to reach its last recipient. Receivers of every connection
// record into it at once, so it is lock-free: chunks of slots made on first
// use, a slot raised with compare-and-swap.
type slowest struct {
	chunks [slowChunks]atomic.Pointer[[slowChunk]atomic.Int64]
}

const (
	slowChunk  = 1 << 12
	slowChunks = 1 << 8 // messages past slowChunk*slowChunks of one sender are not kept
)

// record notes a delivery of message n after us microseconds. A slot holds
// us+1, so that 0 means "never delivered". A delivery less than 1/32 (3 %)
// slower than the slot leaves it as it is: the result is as precise as the
// histogram's buckets, and the thousands of recipients of one message, each
// a little later than the one before, write its slot a few times instead of
// each once, from both cores.
func (s *slowest) record(n, us int64) {
	i := n - 1
	if i < 0 || i >= slowChunk*slowChunks {
		return
	}
	p := &s.chunks[i/slowChunk]
	c := p.Load()
	if c == nil {
		p.CompareAndSwap(nil, new([slowChunk]atomic.Int64))
		c = p.Load()
	}
	slot := &c[i%slowChunk]
	for v := us + 1; ; {
		old := slot.Load()
		if v <= old+old>>5 || slot.CompareAndSwap(old, v) {
			return
		}
	}
}

// addTo adds to h the slowest delivery of each message delivered at least
// once.
func (s *slowest) addTo(h *histogram) {
	for i := range s.chunks {
		c := s.chunks[i].Load()
		if c == nil {
			continue
		}
		for j := range c {
			if v := c[j].Load(); v > 0 {
				h.recordMicros(v - 1)
			}
		}
	}
}
