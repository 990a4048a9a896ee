package web

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
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
// queued it, and a flush costs no goroutine switch of its own: on loopback
// in docs/benchmarks.md, target 4's time to the last recipient fell by
// 40-45 % against a goroutine per connection that wrote.

// writers runs the flushes of a server's connections.
type writers struct {
	queue   chan writeJob
	max     int32        // goroutines at most: GOMAXPROCS
	running atomic.Int32 // goroutines serving queue
}

type writeJob struct {
	c  *conn
	cl *hub.Client
}

// writerQueue bounds the connections waiting for a writer. Each waits at
// most once (the hub wakes a connection only when its outbox stops being
// empty), so it is reached only by more connections than one process
// holds; past it, a flush gets a goroutine of its own.
const writerQueue = 1 << 16

// writerIdle is how long a writer waits for work before it ends, so that
// an idle server holds none.
const writerIdle = time.Second

func newWriters() writers {
	return writers{queue: make(chan writeJob, writerQueue), max: int32(max(runtime.GOMAXPROCS(0), 1))}
}

// start has j's connection flushed by a writer; it never blocks.
func (w *writers) start(j writeJob) {
	if !j.c.sock().nonBlocking() { // its writes may block: not on a shared writer
		go j.c.flush(j.cl, false)
		return
	}
	select {
	case w.queue <- j:
	default:
		go j.c.flush(j.cl, false)
		return
	}
	if w.running.Load() < w.max && w.claim() {
		go w.run()
	}
}

// claim counts one more writer unless there are enough.
func (w *writers) claim() bool {
	for {
		n := w.running.Load()
		if n >= w.max {
			return false
		}
		if w.running.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (w *writers) run() {
	t := time.NewTimer(writerIdle)
	t.Stop()
	for {
		select {
		case j := <-w.queue:
			j.c.flush(j.cl, true)
			continue
		default:
		}
		t.Reset(writerIdle)
		select {
		case j := <-w.queue:
			t.Stop()
			j.c.flush(j.cl, true)
		case <-t.C:
			w.running.Add(-1)
			// A job queued while this writer still counted: stay for it.
			if len(w.queue) == 0 || !w.claim() {
				return
			}
		}
	}
}

// The write half of frameConn.

// maxRest bounds what a congested socket keeps for its drain: the rest of
// the frame under way (a flush stops at the end of a frame), and control
// frames written meanwhile (pings, pongs, close). A peer that sends pings
// and reads nothing passes it, and so would one far behind on a gap filled
// from the store; either is cut off.
const maxRest = 1 << 20

var errPeerTooSlow = errors.New("websocket: the peer reads too slowly")

// initWrite prepares non-blocking writes, if the socket allows them.
func (f *frameConn) initWrite() {
	sc, ok := f.Conn.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	f.raw = raw
	f.writeFn = f.writeOnce
}

// nonBlocking reports whether f's writes never block.
func (f *frameConn) nonBlocking() bool { return f != nil && f.raw != nil }

// draining reports whether f has bytes waiting for its drain.
func (f *frameConn) draining() bool { return f.nonBlocking() && f.isDraining.Load() }

// SetWriteDeadline records t for the drain; a non-blocking write needs
// none (gorilla sets it before every frame).
func (f *frameConn) SetWriteDeadline(t time.Time) error {
	if f.raw == nil {
		return f.Conn.SetWriteDeadline(t)
	}
	f.wmu.Lock()
	f.wdl = t
	f.wmu.Unlock()
	return nil
}

// Write writes p, or keeps what the socket does not take at once for the
// drain; it does not block. Gorilla calls it one frame at a time.
func (f *frameConn) Write(p []byte) (int, error) {
	if f.raw == nil {
		return f.Conn.Write(p)
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if f.werr != nil {
		return 0, f.werr
	}
	if f.isDraining.Load() {
		if f.inflight+len(f.rest)+len(p) > maxRest {
			f.werr = errPeerTooSlow
			_ = f.Conn.Close()
			return 0, f.werr
		}
		f.rest = append(f.rest, p...)
		return len(p), nil
	}
	f.wp = p
	err := f.raw.Write(f.writeFn)
	n, werr := f.wn, f.wres
	f.wp = nil
	if err == nil {
		err = werr
	}
	if err != nil {
		f.werr = err
		return n, err
	}
	if n < len(p) {
		f.rest = append(f.rest[:0], p[n:]...)
		f.isDraining.Store(true)
		go f.drain()
	}
	return len(p), nil
}

// writeOnce is the one write(2) of Write, through the socket's RawConn so
// that the runtime's poller does not wait when the socket is full.
func (f *frameConn) writeOnce(fd uintptr) bool {
	for {
		n, err := syscall.Write(int(fd), f.wp)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			f.wn, f.wres = 0, nil
		case err != nil:
			f.wn, f.wres = 0, fmt.Errorf("write: %w", err)
		default:
			f.wn, f.wres = n, nil
		}
		return true
	}
}

// congested reports whether f has bytes waiting for its drain; if so, fn
// runs once they are written (or the socket failed).
func (f *frameConn) congested(fn func()) bool {
	if !f.nonBlocking() {
		return false
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if !f.isDraining.Load() {
		return false
	}
	f.drained = append(f.drained, fn)
	return true
}

// whenWritten runs fn once what f was given so far is written, or the
// socket failed: at once unless f is congested.
func (f *frameConn) whenWritten(fn func()) {
	if !f.congested(fn) {
		fn()
	}
}

// drain writes what Write kept, blocking, under the last write deadline
// gorilla set; a failure fails every later Write and closes the socket.
func (f *frameConn) drain() {
	var buf []byte
	for {
		f.wmu.Lock()
		if len(f.rest) == 0 || f.werr != nil {
			// The deadline must not outlive the drain: a non-blocking write
			// past it would fail, and it must not clear the next drain's.
			_ = f.Conn.SetWriteDeadline(time.Time{})
			f.isDraining.Store(false)
			f.rest, f.inflight = nil, 0
			fns := f.drained
			f.drained = nil
			f.wmu.Unlock()
			for _, fn := range fns {
				fn()
			}
			return
		}
		buf, f.rest = f.rest, buf[:0]
		f.inflight = len(buf)
		dl := f.wdl
		f.wmu.Unlock()
		err := f.Conn.SetWriteDeadline(dl)
		if err == nil {
			_, err = f.Conn.Write(buf)
		}
		if err != nil {
			f.wmu.Lock()
			f.werr = err
			f.wmu.Unlock()
			_ = f.Conn.Close()
		}
	}
}

// frameWriteState is the write half's state, embedded in frameConn.
type frameWriteState struct {
	raw     syscall.RawConn // nil if writes block (no RawConn)
	writeFn func(fd uintptr) bool

	wp   []byte // writeOnce's argument
	wn   int    // and its results
	wres error

	wmu        sync.Mutex
	wdl        time.Time   // the write deadline gorilla set last
	isDraining atomic.Bool // a drain goroutine runs; written under wmu
	rest       []byte      // bytes for it to write next
	inflight   int         // bytes it is writing now
	drained    []func()    // to run once it has written everything
	werr       error       // the socket failed: every Write fails
}
