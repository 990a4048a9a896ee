package web

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestSendPipeBound checks that the answers run in the order added, that
// add waits while maxQueuedSends are queued, and that drain waits for all.
func TestSendPipeBound(t *testing.T) {
	p := newSendPipe()
	release := make(chan struct{})
	var order []int
	var ran atomic.Int64
	// The first answer holds the goroutine, so that the next ones queue.
	p.add(func() { <-release; order = append(order, 0); ran.Add(1) })
	for i := 1; i <= maxQueuedSends; i++ {
		p.add(func() { order = append(order, i); ran.Add(1) })
	}
	added := make(chan struct{})
	go func() {
		p.add(func() { order = append(order, maxQueuedSends+1); ran.Add(1) })
		close(added)
	}()
	select {
	case <-added:
		t.Fatalf("add returned with %d answers queued; want it to wait", maxQueuedSends)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case <-added:
	case <-time.After(10 * time.Second):
		t.Fatal("add still waits after the queue moved")
	}
	p.drain()
	if ran.Load() != maxQueuedSends+2 {
		t.Fatalf("drain returned after %d answers; want %d", ran.Load(), maxQueuedSends+2)
	}
	for i, v := range order {
		if v != i {
			t.Fatalf("answers ran in order %v", order)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running || p.queue != nil {
		t.Errorf("after drain: running %v, queue %v; want the goroutine gone and the queue let go", p.running, p.queue)
	}
}
