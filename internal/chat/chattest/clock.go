package chattest

import (
	"sync"
	"time"
)

// Clock is a chat.Config.Now that moves only when told to (Advance), and
// by Tick at every reading when Tick is set, as a real clock moves between
// the reads of one request. Set Tick before the clock is read.
type Clock struct {
	Tick time.Duration

	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock that reads now.
func NewClock(now time.Time) *Clock { return &Clock{now: now} }

// Now returns the clock's time, after moving it by Tick.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.Tick)
	return c.now
}

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
