package web

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/parley-chat/parley/internal/hub"
)

// Writing to WebSockets.
//
// A connection's socket never blocks a writer: frameConn.Write writes what
// the kernel takes at once and keeps the rest, which a goroutine of the
// connection's own then writes, blocking, under the write deadline
// (drain). While that goroutine works the connection is congested: its
// flush stops taking from the outbox, which fills, until the hub closes it
// as slow.
//
// Since no write blocks, the flushes of all connections run on a few
// goroutines (writers), one per processor, taking connections in the order
// they were woken. A fan-out to a room is written in the order the hub
// queued it, and a flush costs no goroutine switch of its own: against a
// goroutine per flush, target 4 of docs/benchmarks.md (a room of 10,000)
// took 28-43 % less time to its last recipient, at 16 % less server CPU
// per delivery (docs/bench/extra/writers-ab.txt).

// writers runs the flushes of a server's connections: a queue of woken
// connections, first come, first served, by at most GOMAXPROCS goroutines.
// A goroutine takes up to writerBatch connections at a time; one idle for
// writerIdle ends, so an idle server holds none.
type writers struct {
	mu      sync.Mutex
	jobs    []writeJob // queued: jobs[head:]
	head    int
	max     int           // goroutines at most
	running int           // goroutines
	idle    int           // of which waiting for a signal
	signal  chan struct{} // one per idle goroutine told to take jobs
}

type writeJob struct {
	c  *conn
	cl *hub.Client
}

const (
	writerIdle  = time.Second
	writerBatch = 64
)

func newWriters() *writers {
	n := max(runtime.GOMAXPROCS(0), 1)
	return &writers{max: n, signal: make(chan struct{}, n)}
}

// start has j's connection flushed by a writer; it never blocks.
func (w *writers) start(j writeJob) {
	if !j.c.nb { // its writes may block: not on a shared writer
		go j.c.flush(j.cl, false)
		return
	}
	w.mu.Lock()
	w.jobs = append(w.jobs, j)
	switch {
	case w.idle > 0:
		w.idle--
		w.signal <- struct{}{} // never blocks: one slot per idle goroutine
	case w.running < w.max:
		w.running++
		go w.run()
	}
	w.mu.Unlock()
}

// take moves up to writerBatch queued jobs to batch; it reports false,
// counting the goroutine idle, if there are none.
func (w *writers) take(batch []writeJob) ([]writeJob, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := min(len(w.jobs)-w.head, writerBatch)
	if n == 0 {
		// The slice is kept for the next fan-out, which would otherwise
		// grow a new one a doubling at a time: at 10 messages a second to
		// a room of 10,000 that was half of what the server allocated,
		// and a garbage collection every few seconds (target 4 of
		// docs/benchmarks-journal.md). A connection is queued when its
		// client is woken, which happens only when it is idle, so the
		// slice holds about two words per connection at most; it goes when
		// the last writer ends, a second after the queue last emptied.
		w.jobs, w.head = w.jobs[:0], 0
		w.idle++
		return batch, false
	}
	batch = append(batch, w.jobs[w.head:w.head+n]...)
	clear(w.jobs[w.head : w.head+n])
	w.head += n
	// A queue that never empties, under steady load, must not grow for
	// ever: once half of it is taken, move the rest to its front.
	if w.head >= 4*writerBatch && 2*w.head >= len(w.jobs) {
		k := copy(w.jobs, w.jobs[w.head:])
		clear(w.jobs[k:])
		w.jobs, w.head = w.jobs[:k], 0
	}
	return batch, true
}

func (w *writers) run() {
	t := time.NewTimer(writerIdle)
	t.Stop()
	batch := make([]writeJob, 0, writerBatch)
	for {
		var ok bool
		if batch, ok = w.take(batch[:0]); ok {
			for _, j := range batch {
				j.c.flush(j.cl, true)
			}
			clear(batch)
			continue
		}
		t.Reset(writerIdle)
		select {
		case <-w.signal:
			t.Stop()
		case <-t.C:
			w.mu.Lock()
			if w.idle > 0 { // nobody told this goroutine to go on
				w.idle--
				if w.running--; w.running == 0 && w.head == len(w.jobs) {
					w.jobs, w.head = nil, 0
				}
				w.mu.Unlock()
				return
			}
			w.mu.Unlock()
			<-w.signal // start counted it out of the idle ones: its signal is sent
		}
	}
}

// The write half of frameConn. Every connection has one, so it adds two
// words to frameConn (wdl, d); what only a congested socket needs is in
// drainState.

// maxRest bounds what a congested socket keeps for its drain past the rest
// of the frame that congested it (a flush stops at the end of a frame):
// control frames written meanwhile (pings, pongs, close). A peer that
// sends pings and reads nothing passes it, and so would one far behind on
// a gap filled from the store; either is cut off. The frame's rest does
// not count: a page of history can pass 1 MiB (100 messages of 4,000
// characters of three bytes each), and a pong behind it must not cut off
// a client that reads it slowly.
const maxRest = 1 << 20

var errPeerTooSlow = errors.New("websocket: the peer reads too slowly")

// drainState is a congested socket's: the bytes its drain goroutine is
// to write, and what waits for them.
type drainState struct {
	mu       sync.Mutex
	rest     []byte   // bytes to write next
	inflight int      // bytes being written
	limit    int      // inflight+len(rest) at most: what is left of the frame that congested the socket, and maxRest more
	frame    int      // bytes of that frame in inflight and rest, ahead of any other
	tail     int64    // bytes of the frame that congested the socket that Write has not been given yet
	drained  []func() // to run once everything is written, or the socket failed
	done     bool     // everything written: Write goes to the socket again
	err      error    // the socket failed: every Write fails, for good
}

// nonBlocking reports whether f's writes never block: its socket lets a
// write(2) go without the runtime's poller waiting for room.
func (f *frameConn) nonBlocking() bool { return f != nil && f.raw != nil }

// draining reports whether f has bytes waiting for its drain (or has
// failed).
func (f *frameConn) draining() bool { return f != nil && f.d.Load() != nil }

// SetWriteDeadline records t for a drain; a non-blocking write needs none
// (gorilla sets it before every frame).
func (f *frameConn) SetWriteDeadline(t time.Time) error {
	if !f.nonBlocking() {
		return f.Conn.SetWriteDeadline(t)
	}
	f.wdl.Store(unixNano(t))
	return nil
}

// unixNano is t in Unix ns, 0 for the zero time; fromUnixNano undoes it.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// writeOp is one write(2) through a socket's RawConn, which calls op.fn
// with the descriptor; pooled, so that a Write allocates no closure.
type writeOp struct {
	p   []byte
	n   int
	err error
	fn  func(fd uintptr) bool // op.write
}

var writeOps = sync.Pool{New: func() any {
	op := new(writeOp)
	op.fn = op.write
	return op
}}

// write writes what the socket takes at once: on a full socket, nothing.
// Returning true stops the runtime's poller from waiting for room.
//
// The write goes through syscall.Write, which lets the scheduler hand the
// processor over, even though the socket never blocks. As a raw system
// call it spared the runtime's monitor its work, but the writers then
// kept their processors through whole fan-outs, and the reads, commits
// and acknowledgements waited: target 1's median latency rose by a third
// (docs/bench/extra/raw-write-ab.txt).
func (op *writeOp) write(fd uintptr) bool {
	for {
		n, err := syscall.Write(int(fd), op.p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			op.n, op.err = 0, nil
		case err != nil:
			op.n, op.err = 0, fmt.Errorf("write: %w", err)
		default:
			op.n, op.err = n, nil
		}
		return true
	}
}

// Write writes p, or keeps what the socket does not take at once for a
// drain; it does not block. Gorilla calls it under its write lock, once
// per frame, or twice for a frame longer than its buffer: the frame's
// header with the buffer, then the rest of the payload (Conn.WriteMessage,
// messageWriter.Write).
func (f *frameConn) Write(p []byte) (int, error) {
	if f.raw == nil {
		return f.Conn.Write(p)
	}
	// tail is what lies past p of the frame p begins: the next Write
	// brings it.
	var tail int64
	if !f.wmid {
		tail = max(frameLen(p)-int64(len(p)), 0)
	}
	f.wmid = tail > 0
	if d := f.d.Load(); d != nil {
		if n, err, kept := d.keep(p, f); kept {
			return n, err
		}
	}
	op := writeOps.Get().(*writeOp)
	op.p = p
	err := f.raw.Write(op.fn)
	n, werr := op.n, op.err
	// Cleared for the op's next use: RawConn.Write fails without calling
	// op.fn on a closed socket, and must not report an earlier write's n.
	op.p, op.n, op.err = nil, 0, nil
	writeOps.Put(op)
	if err == nil {
		err = werr
	}
	if err != nil {
		f.fail(err)
		return n, err
	}
	if n < len(p) {
		d := &drainState{rest: append([]byte(nil), p[n:]...), limit: len(p) - n + maxRest, frame: len(p) - n, tail: tail}
		f.d.Store(d)
		go f.drain(d)
	}
	return len(p), nil
}

// frameLen is the length, header and payload, of the frame that p
// begins; 0 if p does not hold its header.
func frameLen(p []byte) int64 {
	if len(p) < 2 {
		return 0
	}
	h := 2
	switch p[1] &^ maskBit {
	case 126:
		h = 4
	case 127:
		h = 10
	}
	if p[1]&maskBit != 0 {
		h += 4
	}
	if len(p) < h {
		return 0
	}
	return int64(h) + min(payloadLen(p), math.MaxInt64/2)
}

// fail makes every later Write fail with err.
func (f *frameConn) fail(err error) { f.d.Store(&drainState{err: err}) }

// keep adds p to what d has to write; kept is false if d is done, and p
// is for the socket.
func (d *drainState) keep(p []byte, f *frameConn) (n int, err error, kept bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.err != nil:
		return 0, d.err, true
	case d.done:
		return 0, nil, false
	}
	if k := min(int64(len(p)), d.tail); k > 0 { // the rest of the frame that congested the socket
		d.tail -= k
		d.limit += int(k)
		d.frame += int(k)
	}
	if d.inflight+len(d.rest)+len(p) > d.limit {
		d.err = errPeerTooSlow
		_ = f.Conn.Close()
		return 0, d.err, true
	}
	d.rest = append(d.rest, p...)
	return len(p), nil, true
}

// congested reports whether f has bytes waiting for its drain; if so, fn
// runs once they are written (or the socket failed).
func (f *frameConn) congested(fn func()) bool {
	if f == nil {
		return false
	}
	d := f.d.Load()
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done || d.err != nil {
		return false
	}
	d.drained = append(d.drained, fn)
	return true
}

// holdWrites makes t the deadline of what f has to write, once gorilla
// writes no more (a close frame is out): a drain under way has until t.
func (f *frameConn) holdWrites(t time.Time) {
	if !f.nonBlocking() {
		return
	}
	f.wdl.Store(unixNano(t))
	if f.draining() {
		_ = f.Conn.SetWriteDeadline(t)
	}
}

// whenWritten runs fn once what f was given so far is written, or the
// socket failed: at once unless f is congested.
func (f *frameConn) whenWritten(fn func()) {
	if !f.congested(fn) {
		fn()
	}
}

// drain writes what Write kept in d, blocking, under the last write
// deadline gorilla set; a failure fails every later Write and closes the
// socket.
func (f *frameConn) drain(d *drainState) {
	var buf []byte
	for {
		d.mu.Lock()
		if len(d.rest) == 0 || d.err != nil {
			// The deadline must not outlive the drain: a non-blocking write
			// past it would fail.
			_ = f.Conn.SetWriteDeadline(time.Time{})
			if d.err == nil {
				d.done = true
				f.d.CompareAndSwap(d, nil)
			}
			fns := d.drained
			d.drained, d.rest = nil, nil
			d.mu.Unlock()
			for _, fn := range fns {
				fn()
			}
			return
		}
		if d.frame > 0 && d.frame < len(d.rest) {
			// The frame's bytes alone, so that the bound drops to
			// maxRest once they are written.
			buf = append(buf[:0], d.rest[:d.frame]...)
			d.rest = d.rest[:copy(d.rest, d.rest[d.frame:])]
		} else {
			buf, d.rest = d.rest, buf[:0]
		}
		d.inflight = len(buf)
		d.mu.Unlock()
		dl := f.wdl.Load()
		err := f.Conn.SetWriteDeadline(fromUnixNano(dl))
		if now := f.wdl.Load(); err == nil && now != dl { // moved meanwhile (holdWrites)
			err = f.Conn.SetWriteDeadline(fromUnixNano(now))
		}
		if err == nil {
			_, err = f.Conn.Write(buf)
		}
		if err == nil {
			d.mu.Lock()
			k := min(len(buf), d.frame)
			d.frame -= k
			d.limit -= k
			d.inflight = 0
			d.mu.Unlock()
		}
		if err != nil {
			d.mu.Lock()
			if d.err == nil { // keep the first cause: a cut makes this write fail too
				d.err = err
			}
			d.mu.Unlock()
			_ = f.Conn.Close()
		}
	}
}
