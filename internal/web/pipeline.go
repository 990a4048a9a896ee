package web

import "sync"

// sendPipe answers, in order, the sends that a WebSocket connection has
// queued in the store (chat.Service.QueueSend) while its reader went on
// to the next frame. A client with several sends in flight so has them
// committed together, and the reader never waits for a commit unless
// maxQueuedSends are unanswered. A goroutine answers them while any are
// queued, and ends when none are left.
type sendPipe struct {
	mu      sync.Mutex
	cond    sync.Cond // on mu: signalled when one is answered or the goroutine ends
	queue   []func()  // the answers to give, oldest first
	running bool      // the answering goroutine runs
}

func newSendPipe() *sendPipe {
	p := &sendPipe{}
	p.cond.L = &p.mu
	return p
}

// maxQueuedSends bounds the sends of one connection that wait for their
// commit: the reader stops reading while that many do.
const maxQueuedSends = 32

// add queues answer, to run after every answer added before it, waiting
// first while maxQueuedSends are queued.
func (p *sendPipe) add(answer func()) {
	p.mu.Lock()
	for len(p.queue) >= maxQueuedSends {
		p.cond.Wait()
	}
	p.queue = append(p.queue, answer)
	start := !p.running
	p.running = true
	p.mu.Unlock()
	if start {
		go p.run()
	}
}

// run gives the queued answers until none is left.
func (p *sendPipe) run() {
	for {
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.running = false
			p.queue = nil // let an idle connection's slice go
			p.cond.Broadcast()
			p.mu.Unlock()
			return
		}
		answer := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.cond.Broadcast()
		p.mu.Unlock()
		answer()
	}
}

// drain waits until every queued answer has been given.
func (p *sendPipe) drain() {
	p.mu.Lock()
	for p.running {
		p.cond.Wait()
	}
	p.mu.Unlock()
}
