// Package inflight counts work under way, such as SMTP sessions or
// background jobs, so that a node shutting down can wait for it within a
// context. It uses the standard library only, and knows nothing of what
// the work is.
package inflight

import (
	"context"
	"sync"
)

// Count is how many pieces of work are under way. Unlike a
// sync.WaitGroup's, its Wait may run while work starts, from none under
// way too, and waits for that work as well; and it ends with a context,
// saying how much was left.
//
// The zero Count is ready to use. A Count must not be copied after first
// use.
type Count struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n falls to 0; nil while it is 0
}

// Start counts one more piece of work under way; Done counts it off once
// it has ended.
func (c *Count) Start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		c.idle = make(chan struct{})
	}
	c.n++
}

// Done counts off a piece of work Start counted. It panics if none is
// under way.
func (c *Count) Done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		panic("inflight: Done without Start")
	}
	c.n--
	if c.n == 0 {
		close(c.idle)
		c.idle = nil
	}
}

// Wait waits until no work is under way, work that starts meanwhile
// included, or until ctx ends. It returns how many pieces of work were
// still under way then: 0 if none was.
func (c *Count) Wait(ctx context.Context) int {
	for {
		c.mu.Lock()
		idle := c.idle
		c.mu.Unlock()
		if idle == nil {
			return 0
		}
		select {
		case <-idle: // work may have started since: look again
		case <-ctx.Done():
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.n
		}
	}
}
