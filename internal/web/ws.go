package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
)

// Close codes; docs/protocol.md explains them to clients.
const (
	CloseTooSlow      = 4000
	CloseSessionEnded = 4001
)

// Encodings an event is cached in (hub.Item.Encoded).
const (
	formatNative = 0
	formatCompat = 1
)

const (
	closeGrace  = time.Second // how long to wait for the peer's close reply
	maxCoalesce = 64 << 10    // bytes coalesced into one frame
	opTimeout   = 15 * time.Second
	maxRefLen   = 64
)

func closeFrame(r hub.CloseReason) (int, string) {
	switch r {
	case hub.ReasonSlow:
		return CloseTooSlow, "too slow: reconnect and resync"
	case hub.ReasonSessionEnded:
		return CloseSessionEnded, "session ended"
	case hub.ReasonShutdown:
		return websocket.CloseServiceRestart, "server restarting: reconnect"
	}
	return websocket.CloseNormalClosure, ""
}

// conn is one WebSocket. One goroutine at a time reads (serve); the
// server's writers flush it while its outbox holds something (flush), so
// an idle connection costs one goroutine, on the smallest stack, and the
// handler goroutine of net/http, with its buffers, is gone after the
// upgrade.
type conn struct {
	s      *server
	ws     *websocket.Conn
	client *hub.Client // set before serve; the writer gets it as an argument
	format uint8
	pingIn uint8 // the pinger's bucket; guarded by the pinger's mu
	// nb is whether the socket's writes never block (frameConn.nonBlocking),
	// so that its flushes may run on the shared writers. Set with ws (setWS),
	// it spares every wake a look at the socket.
	nb bool
	// off is where in buf the items not yet written begin, within a
	// flush: a flush stopped by a congested socket gives buf[off:] back
	// to the outbox (hub.Client.Unread). Guarded by wmu.
	off int32
	ctx context.Context

	wmu     sync.Mutex  // one flush at a time
	buf     []*hub.Item // guarded by wmu
	parting bool        // part has been started; guarded by wmu
	goodbye sync.Once
	removed func(ev chat.Event) // called, in a goroutine, when a removed frame is written
	// admit, if set, decides which logged user events (Event.UserSeq > 0)
	// to write for one: none if written already, missed ones first. It may
	// read the store, so a writer shared by all connections never calls it.
	admit func(ctx context.Context, ev chat.Event) ([]chat.Event, error)
	// sess is the session of a native connection, nil otherwise: its
	// drain returns once the frames read before have been answered, for
	// an answer readMessage gives itself; its shows tells the events the
	// connection writes.
	sess *session
}

// Wake is the hub's signal that the client needs its writer (hub.Waker).
func (c *conn) Wake(cl *hub.Client) { c.s.writers.start(writeJob{c, cl}) }

// setWS makes ws c's WebSocket.
func (c *conn) setWS(ws *websocket.Conn) {
	c.ws = ws
	c.nb = c.sock().nonBlocking()
}

// sock is the socket under c: a frameConn, unless gorilla was given
// another (never, in the server).
func (c *conn) sock() *frameConn {
	fc, _ := c.ws.NetConn().(*frameConn)
	return fc
}

// flush writes what the outbox holds, coalesced, until it is empty or the
// socket is congested; if the hub closed the client it says goodbye
// instead, once the outbox is written if the server is shutting down
// (part). shared is true on a writer that serves every connection
// (writers): there, a connection already being flushed is left to that
// flush, by a goroutine of its own, and so are items that may read the
// store (admit).
func (c *conn) flush(cl *hub.Client, shared bool) {
	if !shared {
		c.wmu.Lock()
	} else if !c.wmu.TryLock() {
		go c.flush(cl, false) // the flush under way may be ending: do not lose this wake
		return
	}
	defer c.wmu.Unlock()
	for {
		if cl.Closed() {
			if cl.Reason() != hub.ReasonShutdown {
				c.sayGoodbye(cl.Reason())
				// Nothing queued is written after the goodbye: it goes
				// now, not when the connection ends, up to WriteWait and
				// closeGrace later.
				cl.Discard()
				clear(c.buf)
				c.buf, c.off = nil, 0
			} else if !c.parting {
				c.parting = true
				go c.part(cl)
			}
			return
		}
		// The drain of a congested socket flushes again once it is done;
		// meanwhile the outbox fills, and the hub closes a client that
		// stays too slow. What the congestion stopped goes back to the
		// outbox, where it counts against the bound.
		if fc := c.sock(); fc.draining() && fc.congested(func() { c.s.writers.start(writeJob{c, cl}) }) {
			if rest := c.buf[c.off:]; len(rest) > 0 {
				cl.Unread(rest)
				clear(rest)
				c.buf, c.off = c.buf[:0], 0
			}
			return
		}
		if int(c.off) == len(c.buf) {
			items := cl.Next(c.buf[:0])
			if items == nil {
				if cap(c.buf) > 64 {
					c.buf = nil
				}
				c.buf, c.off = c.buf[:0], 0
				return
			}
			c.buf, c.off = items, 0
		}
		items := c.buf[c.off:]
		if shared && c.admit != nil && slices.ContainsFunc(items, func(it *hub.Item) bool { return it.Event.UserSeq > 0 }) {
			go c.flush(cl, false)
			return
		}
		if c.writeOut(cl) != nil {
			return
		}
	}
}

// writeOut writes the items of c.buf not written yet, as many as the
// socket takes, and moves c.off past them; on an error it closes the
// socket. c.wmu is held.
func (c *conn) writeOut(cl *hub.Client) error {
	items := c.buf[c.off:]
	k, err := c.write(cl, items)
	clear(items[:k])
	if c.off += int32(k); int(c.off) == len(c.buf) {
		c.buf, c.off = c.buf[:0], 0
	}
	if err != nil && err != websocket.ErrCloseSent {
		_ = c.ws.Close()
	}
	return err
}

// part ends a connection whose client the hub closed as the server shuts
// down: the answers to the frames read before, the acks of the sends in
// flight among them, are written ahead of the goodbye, so that the
// client need not send again what was stored. It waits for those answers
// at most closeGrace, which leaves the goodbye and the peer's reply as
// long before the cut (cutAtShutdown); what the outbox holds then is
// written unless the socket is congested, which holds nothing up.
func (c *conn) part(cl *hub.Client) {
	if c.sess != nil {
		c.sess.settle(closeGrace)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for !c.sock().draining() {
		if int(c.off) == len(c.buf) {
			items := cl.Next(c.buf[:0])
			if items == nil {
				break
			}
			c.buf, c.off = items, 0
		}
		if c.writeOut(cl) != nil {
			return
		}
	}
	c.sayGoodbye(hub.ReasonShutdown)
}

// sayGoodbye sends the close frame for reason r and closes the socket
// once the peer has answered (the reader sees that) or closeGrace passed.
func (c *conn) sayGoodbye(r hub.CloseReason) {
	code, text := closeFrame(r)
	c.goodbyeWith(code, text)
}

// goodbyeWith is sayGoodbye with a close frame of code and text. If a
// close frame was sent already (gorilla's answer to a frame that breaks
// the protocol, or the peer's close), that one is the goodbye; once any
// goodbye is under way, another does nothing.
func (c *conn) goodbyeWith(code int, text string) {
	c.goodbye.Do(func() {
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(c.s.cfg.WriteWait))
		// The grace begins once the frame is out: a congested socket may
		// still be writing what came before it.
		c.sock().whenWritten(func() { time.AfterFunc(closeGrace, func() { _ = c.ws.Close() }) })
	})
}

// cutAtShutdown closes the WebSockets still open shutdownGrace after the
// hub began to shut down. Each has been sent its goodbye; one whose peer
// has neither answered it nor read it (its socket congested, the goodbye
// waiting behind the frames before it for up to WriteWait) must not hold
// the shutdown up: its client reconnects and resyncs as from any cut.
func (s *server) cutAtShutdown() {
	<-s.hub.Stopping()
	time.Sleep(shutdownGrace)
	for _, c := range s.pings.all() {
		_ = c.ws.Close()
	}
}

// shutdownGrace is how long a shutting-down server waits for its
// WebSockets to close before it cuts them: time for the answers to the
// frames read before (at most closeGrace, part), the goodbye and the
// peer's answer (closeGrace) on a socket that is not congested.
const shutdownGrace = 2 * closeGrace

// pinger pings the server's WebSockets, each once per PingInterval: a
// goroutine pings one of pingBuckets buckets per tick. A timer per
// connection would cost more memory than most of its other state.
type pinger struct {
	mu      sync.Mutex
	every   time.Duration
	buckets [pingBuckets]map[*conn]struct{}
	last    int // the bucket pinged last, which newcomers join
	n       int // connections in the buckets
	running bool
}

const pingBuckets = 16

// add makes p ping c, first after PingInterval less at most one tick.
func (p *pinger) add(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := &p.buckets[p.last]
	if *b == nil {
		*b = make(map[*conn]struct{})
	}
	(*b)[c] = struct{}{}
	c.pingIn = uint8(p.last)
	p.n++
	if !p.running { // it stops while there is nobody to ping
		p.running = true
		go p.run()
	}
}

func (p *pinger) remove(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.buckets[c.pingIn][c]; ok {
		delete(p.buckets[c.pingIn], c)
		p.n--
	}
}

// all returns the connections p pings: every WebSocket being served.
func (p *pinger) all() []*conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	cs := make([]*conn, 0, p.n)
	for i := range p.buckets {
		for c := range p.buckets[i] {
			cs = append(cs, c)
		}
	}
	return cs
}

func (p *pinger) run() {
	t := time.NewTicker(max(p.every/pingBuckets, 1))
	defer t.Stop()
	var cs []*conn
	for range t.C {
		p.mu.Lock()
		if p.n == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.last = (p.last + 1) % pingBuckets
		cs = cs[:0]
		for c := range p.buckets[p.last] {
			cs = append(cs, c)
		}
		p.mu.Unlock()
		for _, c := range cs {
			go c.sendPing() // a stalled socket must not hold up the others
		}
		clear(cs)
	}
}

// sendPing pings c, and closes a socket that fails. Once the goodbye is
// sent (ErrCloseSent) the ping is not: the socket is closed when the peer
// answers or the goodbye's grace is over (sayGoodbye), and closing it now
// would cut short the goodbye, which a congested socket may still hold.
func (c *conn) sendPing() {
	err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.s.cfg.WriteWait))
	if err != nil && err != websocket.ErrCloseSent {
		_ = c.ws.Close()
	}
}

// serve reads c until either side ends it: handle is called for each
// message read, one at a time and in order, with whether it is a text
// message (the only kind either protocol has: another is a frame that is
// not valid, and handle answers it as such); cleanup runs before the
// client leaves the hub.
//
// A goroutine parked inside gorilla's read needs a 4 KB stack, and the
// runtime never shrinks a parked stack back to 2 KB; handling a frame
// grows it further. So if the socket is a frameConn (native connections),
// an idle connection waits in frameConn.wait, on a stack that stays at
// 2 KB. Frames are read and handled by the goroutine that waited for
// them; once the connection is idle, it hands the wait to a new goroutine
// and ends, taking its grown stack with it (await).
func (c *conn) serve(handle func(data []byte, text bool), cleanup func()) {
	c.ws.SetReadLimit(c.s.cfg.MaxFrameBytes)
	_ = c.ws.SetReadDeadline(time.Now().Add(c.s.cfg.PongWait))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(c.s.cfg.PongWait))
	})
	// A ping of the client's own is a frame from it too: it keeps the
	// connection, as a pong does, and is answered as gorilla's default
	// handler answers it.
	c.ws.SetPingHandler(func(data string) error {
		_ = c.ws.SetReadDeadline(time.Now().Add(c.s.cfg.PongWait))
		err := c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(c.s.cfg.WriteWait))
		if ne, ok := err.(net.Error); err == websocket.ErrCloseSent || ok && ne.Timeout() {
			return nil
		}
		return err
	})
	c.s.pings.add(c)
	if fc, ok := c.ws.NetConn().(*frameConn); ok {
		go c.await(fc, handle, cleanup) // on a fresh stack: this one has grown
		return
	}
	var err error
	for err == nil {
		err = c.readMessage(handle)
	}
	c.finish(err, cleanup)
}

// await waits for frames and reads them. While frames keep coming, the
// next is awaited on the stack that handled the last: a fresh goroutine
// per frame grows its stack again for each, which cost target 1 of
// docs/benchmarks.md about a fifth of its deliveries/s. A connection idle
// for readerIdle hands the wait to a fresh goroutine.
func (c *conn) await(fc *frameConn, handle func([]byte, bool), cleanup func()) {
	err := fc.wait()
	for err == nil {
		if err = c.readFrame(fc, handle); err != nil {
			break
		}
		var idle bool
		if idle, err = fc.waitAtMost(readerIdle); idle {
			go c.await(fc, handle, cleanup)
			return
		}
	}
	c.finish(err, cleanup)
}

// readerIdle is how long a connection's reader waits for the next frame
// before it hands the wait to a goroutine on the smallest stack.
const readerIdle = 250 * time.Millisecond

// readFrame reads the frame that fc.wait announced: a ping or pong, or the
// message it begins, which it handles. An error ends the connection.
func (c *conn) readFrame(fc *frameConn, handle func([]byte, bool)) error {
	if b := fc.pend[0]; b == finBit|opPing || b == finBit|opPong {
		return c.control(fc)
	}
	return c.readMessage(handle)
}

// control reads a ping or pong frame between messages and passes it to
// gorilla's handler. Gorilla reads control frames only on its way to the
// next message, so it would wait for that message in its own, deep read.
// Malformed frames get gorilla's answer: a protocol error.
func (c *conn) control(fc *frameConn) error {
	var b [2 + 4 + maxControlPayload]byte
	if _, err := io.ReadFull(fc, b[:2]); err != nil {
		return err
	}
	n := int(b[1] &^ maskBit)
	if b[1]&maskBit == 0 || n > maxControlPayload {
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseProtocolError, "bad control frame"), time.Now().Add(c.s.cfg.WriteWait))
		return errBadControl
	}
	mask, payload := b[2:6], b[6:6+n]
	if _, err := io.ReadFull(fc, b[2:6+n]); err != nil {
		return err
	}
	for i := range payload {
		payload[i] ^= mask[i%4]
	}
	h := c.ws.PongHandler()
	if b[0] == finBit|opPing {
		h = c.ws.PingHandler()
	}
	return h(string(payload))
}

// errBadControl is a control frame that control does not take: unmasked,
// or longer than RFC 6455 allows.
var errBadControl = errors.New("websocket: bad control frame")

// readMessage reads and handles one message; an error ends the
// connection. handle must not keep the bytes it is given: they are read
// into a pooled buffer, which the next message reuses.
func (c *conn) readMessage(handle func([]byte, bool)) error {
	typ, r, err := c.ws.NextReader()
	if err != nil {
		return err
	}
	buf := frameBufs.Get().(*bytes.Buffer)
	buf.Reset()
	_, err = buf.ReadFrom(r)
	if err == nil {
		_ = c.ws.SetReadDeadline(time.Now().Add(c.s.cfg.PongWait))
		switch {
		case c.client != nil && c.client.Closed():
			// The hub ended the connection (its session ended, it was too
			// slow, the server is stopping): its close frame is sent or on
			// its way, and nothing more is acted on. Reading goes on, to
			// see the peer's answer.
		default:
			handle(buf.Bytes(), typ == websocket.TextMessage)
		}
	}
	if buf.Cap() <= maxPooledFrame {
		frameBufs.Put(buf)
	}
	return err
}

// frameBufs holds the buffers that readMessage reads messages into. Every
// message is decoded before the next is read, and no handler keeps its
// bytes, so a buffer serves message after message, where gorilla's
// ReadMessage allocates 512 bytes and more for each.
var frameBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledFrame is the largest buffer readMessage keeps for the next
// message.
const maxPooledFrame = 64 << 10

// finish ends a connection whose reading ended with err.
func (c *conn) finish(err error, cleanup func()) {
	c.hangUp(err)
	c.s.pings.remove(c)
	cleanup()
	c.s.hub.Unregister(c.client)
}

// hangUp closes c's socket, its reading ended with err. A socket that
// failed, or that the server closed, is closed at once. Otherwise a close
// frame is out or on its way (the answer to the peer's, or the server's
// own: a frame over the limit, one that breaks the protocol) and it may
// wait behind what a congested socket holds: the socket is closed once it
// is written and the peer has answered, or its goodbye's grace passed
// (linger), as the hub's goodbyes are. Either takes WriteWait at most,
// and closeGrace.
func (c *conn) hangUp(err error) {
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure:
		// The peer's close, answered by gorilla's close handler (or the
		// answer to a goodbye): once the answer is written, the server
		// closes first (RFC 6455, 7.1.1).
		c.sock().whenWritten(func() { _ = c.ws.Close() })
	case socketEnded(err):
		_ = c.ws.Close()
		return
	case errors.Is(err, websocket.ErrReadLimit):
		c.goodbyeWith(websocket.CloseMessageTooBig, "frame too large")
	default:
		c.goodbyeWith(websocket.CloseProtocolError, "protocol error")
	}
	// Gorilla wrote its close frame under its own deadline, a second:
	// like the hub's goodbyes it has WriteWait behind a congested socket.
	c.sock().holdWrites(time.Now().Add(c.s.cfg.WriteWait))
	c.linger()
}

// socketEnded reports whether err, which ended a connection's reading,
// tells that its socket failed or was closed, or the peer went silent:
// nothing more can be said to it.
func socketEnded(err error) bool {
	var (
		ne net.Error
		ce *websocket.CloseError
	)
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, errPeerTooSlow) ||
		errors.As(err, &ce) && ce.Code == websocket.CloseAbnormalClosure
}

// linger reads and drops what the peer still sends, until its close frame
// has come, the socket is closed (the goodbye's grace passed), or its end
// at the latest, and closes the socket: reading on spares the peer a
// reset, which would lose what it has not read yet, the close frame among
// it. Unlike serve, it needs no frame to be valid: only where frames
// begin (frameConn).
func (c *conn) linger() {
	defer c.ws.Close()
	fc := c.sock()
	if fc == nil {
		return
	}
	if fc.SetReadDeadline(time.Now().Add(c.s.cfg.WriteWait+closeGrace)) != nil {
		return
	}
	var b [512]byte
	for closing := false; ; {
		start := fc.hn == 0
		if _, err := fc.Read(b[:]); err != nil {
			return
		}
		if start && fc.head[0]&0xf == websocket.CloseMessage {
			closing = true
		}
		if closing && fc.hn == 0 { // the peer's close frame, whole
			return
		}
	}
}

// Frame header bits (RFC 6455, section 5.2).
const (
	finBit            = 0x80
	maskBit           = 0x80
	opPing            = 0x9
	opPong            = 0xa
	maxControlPayload = 125
)

// frameConn is the socket under a native WebSocket as gorilla reads it
// (hijacker puts it there). Read never returns bytes past the end of the
// frame under way, so once gorilla has read a message its buffer is empty,
// and the connection can wait for the next frame outside gorilla, in wait.
// Reads (Read, wait) happen one at a time.
//
// Within a frame, Read takes from the socket whatever has arrived, up to a
// pooled buffer's size: a client that sends several frames back to back
// has them read by one system call. What lies past the frame stays in
// pend, and the buffer goes back to the pool once pend is empty, so an
// idle connection holds none.
type frameConn struct {
	net.Conn
	raw      syscall.RawConn    // Conn's, if it is a socket: writes that never block (writer.go)
	rbuf     *[readBufSize]byte // from readBufs while pend is in it; nil otherwise
	deadline int64              // the read deadline as last set (SetReadDeadline), in Unix ns; 0 for none
	pend     []byte             // bytes read and not returned yet, from the start of a frame or within one
	head     [14]byte           // the header of the frame under way, as far as read; between frames, wait reads into its end
	hn       uint8              // bytes of head read; 0 between frames
	wmid     bool               // the last Write began a frame it did not end (writer.go); in head's padding
	left     int64              // bytes of the frame's payload not read, once head is complete

	// The write half (writer.go).
	wdl atomic.Int64               // the write deadline gorilla set last, in Unix ns; 0 for none
	d   atomic.Pointer[drainState] // while congested, and for good once the socket failed
}

// SetReadDeadline records t (gorilla sets it: the pong wait), so that
// waitAtMost can put it back.
func (f *frameConn) SetReadDeadline(t time.Time) error {
	f.deadline = unixNano(t)
	return f.Conn.SetReadDeadline(t)
}

// readBufSize is the size of the buffers Read reads into.
const readBufSize = 1024

var readBufs = sync.Pool{New: func() any { return new([readBufSize]byte) }}

// waitAtMost is wait, but gives up after d with idle set if no frame began
// by then and the socket's own deadline is later.
func (f *frameConn) waitAtMost(d time.Duration) (idle bool, err error) {
	if len(f.pend) > 0 {
		return false, nil // the next frame was read with the last
	}
	until := time.Now().Add(d)
	if f.deadline != 0 && f.deadline < until.UnixNano() {
		return false, f.wait()
	}
	if err := f.Conn.SetReadDeadline(until); err != nil {
		return false, err
	}
	err = f.wait()
	if rerr := f.Conn.SetReadDeadline(fromUnixNano(f.deadline)); err == nil {
		err = rerr
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true, nil
	}
	return false, err
}

// wait blocks until the next frame begins to arrive, or the socket fails
// (its read deadline passed); Read returns its first bytes. Call it only
// between frames. Its call chain is short, so the goroutine parked in it
// keeps the smallest stack.
func (f *frameConn) wait() error {
	if len(f.pend) > 0 {
		return nil // the next frame was read with the last
	}
	for {
		// At most the frame's 2 first bytes, into the end of head, which
		// holds nothing between frames: Read has returned them before
		// advance writes beyond head[1].
		b := f.head[len(f.head)-2:]
		n, err := f.Conn.Read(b)
		if n > 0 {
			f.pend = b[:n]
			return nil // a failure shows again on the next Read
		}
		if err != nil {
			return err
		}
	}
}

func (f *frameConn) Read(p []byte) (int, error) {
	if room := f.room(); int64(len(p)) > room {
		p = p[:room]
	}
	if len(f.pend) == 0 {
		if err := f.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, f.pend)
	f.pend = f.pend[n:]
	if len(f.pend) == 0 && f.rbuf != nil {
		readBufs.Put(f.rbuf)
		f.rbuf = nil
	}
	f.advance(p[:n])
	return n, nil
}

// fill reads into pend what the socket has, at least a byte, up to a
// pooled buffer's size.
func (f *frameConn) fill() error {
	if f.rbuf == nil {
		f.rbuf = readBufs.Get().(*[readBufSize]byte)
	}
	for {
		n, err := f.Conn.Read(f.rbuf[:])
		if n > 0 {
			f.pend = f.rbuf[:n]
			return nil // a failure shows again on the next Read
		}
		if err != nil {
			readBufs.Put(f.rbuf)
			f.rbuf = nil
			return err
		}
	}
}

// headNeed is the number of bytes of the frame's header not yet read.
func (f *frameConn) headNeed() int {
	if f.hn < 2 {
		return 2 - int(f.hn)
	}
	n := 2
	switch f.head[1] &^ maskBit {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if f.head[1]&maskBit != 0 {
		n += 4
	}
	return n - int(f.hn)
}

// room is the number of bytes left in the frame under way, as far as its
// header tells yet.
func (f *frameConn) room() int64 {
	need := f.headNeed()
	if need == 0 {
		return f.left
	}
	if l := f.head[1] &^ maskBit; f.hn >= 2 && l < 126 {
		return int64(need) + int64(l) // the payload's length is known: read it along
	}
	return int64(need)
}

// advance accounts for b, the next bytes of the frame under way.
func (f *frameConn) advance(b []byte) {
	for len(b) > 0 {
		if need := f.headNeed(); need > 0 {
			k := copy(f.head[f.hn:int(f.hn)+need], b)
			f.hn += uint8(k)
			b = b[k:]
			if f.hn >= 2 && f.headNeed() == 0 {
				f.left = payloadLen(f.head[:f.hn])
				if f.left == 0 {
					f.hn = 0
				}
			}
			continue
		}
		k := min(int64(len(b)), f.left)
		f.left -= k
		b = b[k:]
		if f.left == 0 {
			f.hn = 0
		}
	}
}

// payloadLen is the payload length that header h gives.
func payloadLen(h []byte) int64 {
	switch l := h[1] &^ maskBit; l {
	case 126:
		return int64(binary.BigEndian.Uint16(h[2:]))
	case 127:
		return int64(min(binary.BigEndian.Uint64(h[2:]), math.MaxInt64)) // gorilla refuses more
	default:
		return int64(l)
	}
}

// hijacker gives gorilla's Upgrade the hijacked socket as a frameConn.
type hijacker struct {
	http.ResponseWriter
}

func (h hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	return newFrameConn(c), brw, nil
}

// newFrameConn returns a frameConn over c. The socket's RawConn is kept:
// asking for it allocates, and a write must not (target 4 of
// docs/benchmarks.md).
func newFrameConn(c net.Conn) *frameConn {
	f := &frameConn{Conn: c}
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			f.raw = raw
		}
	}
	return f
}

var newline = []byte{'\n'}

func (c *conn) encode(it *hub.Item) []byte {
	// A message, nearly every item, is shown to all: no call, no copy of
	// the event, on the fan-out's path.
	if ev := &it.Event; ev.Type != chat.EventMessage && c.sess != nil && !c.sess.shows(ev) {
		return nil
	}
	return it.Encoded(c.codec())
}

// codec is c's format and its encoder, for hub.Item's caches.
func (c *conn) codec() (int, func(chat.Event) []byte) {
	if c.format == formatCompat {
		return formatCompat, encodeCompat
	}
	return formatNative, encodeNative
}

// prepared returns it, as encode gives it, framed once for every client
// that writes it alone in a frame: gorilla writes a prepared message as
// it is, where WriteMessage copies the item into a pooled buffer and
// allocates to give the buffer back, once per client (that was most of
// what the server allocated at target 4 of docs/benchmarks.md, and what
// made the collector run while it fanned out). Nil for an item fanned out
// to fewer than minPrepared clients, or one client's own, which are
// written the usual way.
func (c *conn) prepared(it *hub.Item) *websocket.PreparedMessage {
	if it.Fanout < minPrepared {
		return nil
	}
	format, enc := c.codec()
	pm, _ := it.Prepared(format, enc, prepareText).(*websocket.PreparedMessage)
	return pm
}

// minPrepared is the fewest clients an item must go to for a prepared
// frame to pay: gorilla prepares one on a scratch connection of its own,
// about 5 KB allocated (a 4 KB buffer among them), where writing without
// one allocates 24 bytes per client. Below it, a store-bound load of many
// small rooms (target 6) would make more garbage, not less.
const minPrepared = 256

// prepareText frames b as a text message (hub.Item.Prepared).
func prepareText(b []byte) any {
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, b)
	if err != nil { // it cannot fail for a server's uncompressed text
		return nil
	}
	return pm
}

// write sends items: in the compat format one frame each, in the native
// format as few frames as possible of newline-separated JSON objects.
// Between two frames, a congested socket stops it: it returns how many
// items it has written.
func (c *conn) write(cl *hub.Client, items []*hub.Item) (int, error) {
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteWait))
	fc := c.sock()
	if c.format == formatCompat {
		for i, it := range items {
			if i > 0 && fc.draining() {
				return i, nil
			}
			if b := c.encode(it); b != nil {
				if err := c.endFrame(nil, b, it); err != nil {
					return i, err
				}
			}
		}
		return len(items), nil
	}
	var (
		w       io.WriteCloser // the frame under way, once it holds two items
		first   []byte         // its item while it holds one
		firstIt *hub.Item      // the item of first, if first is its encoding
		n       int            // its length
	)
	for i, it := range items {
		b := c.encode(it)
		plain := it // b is its encoding as every client has it
		if it.Event.UserSeq > 0 && c.admit != nil {
			plain = nil
			evs, err := c.admit(c.ctx, it.Event)
			if err != nil {
				// The events missed could not be read: the client resumes
				// from the last it has, on a new connection.
				c.s.log.Warn("read missed events", "user", cl.UserID, "err", err)
				cl.Close(hub.ReasonSlow)
				return i + 1, c.endFrame(w, first, firstIt)
			}
			switch {
			case len(evs) == 0:
				b = nil
			case len(evs) > 1: // a gap filled from the store: those first
				var all []byte
				for _, ev := range evs[:len(evs)-1] {
					if eb := encodeNative(ev); eb != nil {
						all = append(append(all, eb...), '\n')
					}
					if ev.Type == chat.EventRemoved && c.removed != nil {
						go c.removed(ev)
					}
				}
				b = bytes.TrimSuffix(append(all, b...), newline)
			}
		}
		var err error
		if len(b) > 0 && (w != nil || first != nil) && n+len(b) > maxCoalesce {
			if err = c.endFrame(w, first, firstIt); err != nil {
				return i, err
			}
			w, first, firstIt, n = nil, nil, nil, 0
			// Stop, unless it was admitted: admit must not see it again.
			if fc.draining() && (it.Event.UserSeq == 0 || c.admit == nil) {
				return i, nil
			}
		}
		if it.Event.Type == chat.EventRemoved && c.removed != nil {
			go c.removed(it.Event)
		}
		if len(b) == 0 {
			continue
		}
		switch {
		case w == nil && first == nil:
			first, firstIt = b, plain
		case w == nil:
			if w, err = c.ws.NextWriter(websocket.TextMessage); err != nil {
				return i, err
			}
			if _, err = w.Write(first); err != nil {
				return i, err
			}
			first, firstIt = nil, nil
			fallthrough
		default:
			if _, err = w.Write(newline); err != nil {
				return i, err
			}
			if _, err = w.Write(b); err != nil {
				return i, err
			}
		}
		n += len(b) + 1
	}
	return len(items), c.endFrame(w, first, firstIt)
}

// endFrame ends the frame that write has under way: w if it opened one,
// else the single item first, which WriteMessage writes without a message
// writer (NextWriter allocates one per frame), or, if it is the encoding
// of item it, as it was prepared for every client.
func (c *conn) endFrame(w io.WriteCloser, first []byte, it *hub.Item) error {
	switch {
	case w != nil:
		return w.Close()
	case first == nil:
		return nil
	case it != nil:
		if pm := c.prepared(it); pm != nil {
			return c.ws.WritePreparedMessage(pm)
		}
	}
	return c.ws.WriteMessage(websocket.TextMessage, first)
}

// push queues a reply frame for this connection only.
func (c *conn) push(v any) {
	if it := c.own(v); it != nil {
		c.client.Push(it)
	}
}

// own is the item of a frame for this connection only, nil if v does not
// encode.
func (c *conn) own(v any) *hub.Item {
	b, err := encodeFrame(v)
	if err != nil {
		c.s.log.Error("encode frame", "err", err)
		return nil
	}
	return &hub.Item{Raw: b}
}

type errorFrame struct {
	Type         string `json:"type"`
	Ref          string `json:"ref,omitempty"`
	RoomID       int64  `json:"room_id,omitempty"`
	Code         string `json:"code"`
	Message      string `json:"message"`
	Field        string `json:"field,omitempty"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
}

func (c *conn) pushError(ref string, roomID int64, err error) {
	_, d := classify(c.s.log, err)
	if c.format == formatCompat {
		c.push(errorBody{Error: d})
		return
	}
	c.push(errorFrame{Type: "error", Ref: ref, RoomID: roomID, Code: d.Code, Message: d.Message, Field: d.Field, RetryAfterMS: d.RetryAfterMS})
}

// errNotText answers a WebSocket message that is not a text message.
var errNotText = chat.Invalid(chat.CodeBadJSON, "", "frames must be text frames holding JSON")

func (c *conn) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, opTimeout)
}

// rateLimited is the rate_limited error of a request over limit per
// second: retry after one interval of it.
func rateLimited(limit rate.Limit) error {
	e := chat.Errorf(chat.ErrRateLimited, chat.CodeRateLimited, "too many requests; slow down")
	e.RetryAfter = interval(limit)
	return e
}

// Frames of the native protocol (docs/protocol.md).

// userRef is a user as others see them. NameVersion is the version of
// Name (chat.User.NameVersion) where a list read them together, so that
// a client can tell a rename told late (a user frame's "version") from a
// newer one; 0, left out, where unknown (frames of the user's news).
type userRef struct {
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	NameVersion int64  `json:"name_version,omitempty"`
}

// refOf is u as a userRef, with the version of its name.
func refOf(u chat.User) userRef {
	return userRef{ID: u.ID, Name: u.Name, NameVersion: u.NameVersion}
}

func userRefs(us []chat.User) []userRef {
	out := make([]userRef, len(us))
	for i, u := range us {
		out[i] = refOf(u)
	}
	return out
}

type inFrame struct {
	Type     string  `json:"type"`
	Ref      string  `json:"ref"`
	RoomID   int64   `json:"room_id"`
	After    *int64  `json:"after"`
	ClientID string  `json:"client_id"`
	Body     *string `json:"body"`
	Seq      *int64  `json:"seq"`
	// noSync, for an open with After, leaves out the sync that would
	// follow "opened": a rebuilt long-poll channel reads it later
	// (pollChannel.restore).
	noSync bool
}

type helloFrame struct {
	Type    string `json:"type"`
	User    me     `json:"user"`
	Limits  limits `json:"limits"`
	UserSeq int64  `json:"user_seq"` // the newest logged event: pass it as events_after on reconnect
	Channel string `json:"channel,omitempty"`
	sessionRenewal
}

// sessionRenewal tells a client when a request renews its session, and
// the cookie with it (chat.Config.RenewWindow): a connection left open
// cannot refresh the cookie itself. Both are zero, and left out, for a
// session that is never renewed.
type sessionRenewal struct {
	RenewAt time.Time `json:"session_renew_at,omitzero"`
	RenewBy time.Time `json:"session_renew_by,omitzero"`
}

// renewalOf is the sessionRenewal of sess, in whole seconds within the
// window: the store keeps times to the microsecond or less, and a request
// a moment early would not renew.
func (s *server) renewalOf(sess chat.Session) sessionRenewal {
	from, until, ok := s.svc.Config().RenewWindow(sess)
	if !ok {
		return sessionRenewal{}
	}
	at := from.Truncate(time.Second)
	if at.Before(from) {
		at = at.Add(time.Second)
	}
	return sessionRenewal{RenewAt: at.UTC(), RenewBy: until.Truncate(time.Second).UTC()}
}

type limits struct {
	MaxMessageLen int     `json:"max_message_len"`
	MaxFrameBytes int64   `json:"max_frame_bytes"`
	SendRate      float64 `json:"send_rate"`
	SendBurst     int     `json:"send_burst"`
	// The largest member cap a group may have, and the cap of one made
	// without one.
	MaxGroupMembers     int `json:"max_group_members"`
	DefaultGroupMembers int `json:"default_group_members"`
}

type messageFrame struct {
	Type    string        `json:"type"`
	RoomID  int64         `json:"room_id"`
	Message *chat.Message `json:"message"`
}

// presenceFrame is a user's presence in a conversation (RoomID set) or,
// without RoomID, a friend's presence anywhere.
type presenceFrame struct {
	Type        string    `json:"type"`
	RoomID      int64     `json:"room_id,omitempty"`
	User        userRef   `json:"user"`
	Online      bool      `json:"online"`
	LastSeen    time.Time `json:"last_seen,omitzero"`
	OnlineCount int       `json:"online_count,omitempty"` // with room_id: how many have the room open now
}

// onlineCountFrame: how many have a room open, where too many do for a
// presence frame each.
type onlineCountFrame struct {
	Type        string `json:"type"`
	RoomID      int64  `json:"room_id"`
	OnlineCount int    `json:"online_count"`
}

// receiptFrame: another member's read position in a conversation moved.
type receiptFrame struct {
	Type   string `json:"type"`
	RoomID int64  `json:"room_id"`
	UserID int64  `json:"user_id"`
	Seq    int64  `json:"seq"`
}

// receiptsFrame: the read positions of several members moved.
type receiptsFrame struct {
	Type      string              `json:"type"`
	RoomID    int64               `json:"room_id"`
	Positions []chat.ReadPosition `json:"positions"`
}

type openedFrame struct {
	Type   string    `json:"type"`
	Ref    string    `json:"ref,omitempty"`
	Room   any       `json:"room"`   // chat.Room, or conversationJSON for other kinds
	Online []userRef `json:"online"` // at most chat.Config.OnlineMax of those present
	// UserSeq is the open's mark (chat.Service.CheckMemberAt): a removed
	// of the room with a user_seq up to it is old news to this connection.
	UserSeq int64 `json:"user_seq,omitempty"`
	// OnlineCount is how many have the room open, more than len(Online)
	// in a room with more than chat.Config.OnlineMax present.
	OnlineCount int                 `json:"online_count"`
	Reads       []chat.ReadPosition `json:"reads,omitzero"` // direct and group (never nil): the other members' read positions
}

type roomFrame struct {
	Type   string `json:"type"`
	Ref    string `json:"ref,omitempty"`
	RoomID int64  `json:"room_id,omitempty"`
}

type syncFrame struct {
	Type     string         `json:"type"`
	Ref      string         `json:"ref,omitempty"`
	RoomID   int64          `json:"room_id"`
	Messages []chat.Message `json:"messages"`
	HasMore  bool           `json:"has_more"`
}

type ackFrame struct {
	Type     string        `json:"type"`
	Ref      string        `json:"ref,omitempty"`
	RoomID   int64         `json:"room_id"`
	ClientID string        `json:"client_id"`
	Message  *chat.Message `json:"message"`
}

func encodeNative(ev chat.Event) []byte {
	var v any
	switch ev.Type {
	case chat.EventMessage:
		return messageFrame{Type: "message", RoomID: ev.ConvID, Message: ev.Message}.appendJSON(nil)
	case chat.EventTyping:
		if ev.User == nil {
			return nil
		}
		v = typingFrame{Type: "typing", RoomID: ev.ConvID, User: userRef{ID: ev.User.ID, Name: ev.User.Name}}
	case chat.EventPresence:
		if ev.User == nil {
			return nil
		}
		v = presenceFrame{Type: "presence", RoomID: ev.ConvID, User: userRef{ID: ev.User.ID, Name: ev.User.Name}, Online: ev.Online, LastSeen: ev.LastSeen, OnlineCount: ev.OnlineCount}
	case chat.EventOnlineCount:
		v = onlineCountFrame{Type: "online_count", RoomID: ev.ConvID, OnlineCount: ev.OnlineCount}
	case chat.EventReceipt:
		v = receiptFrame{Type: "receipt", RoomID: ev.ConvID, UserID: ev.UserID, Seq: ev.Seq}
	case chat.EventReceipts:
		v = receiptsFrame{Type: "receipts", RoomID: ev.ConvID, Positions: ev.Positions}
	case chat.EventContact:
		if ev.Contact == nil {
			return nil
		}
		v = contactFrame{Type: "contact", contactJSON: contactOf(*ev.Contact), UserSeq: ev.UserSeq}
	case chat.EventConversation:
		if ev.Message == nil && ev.ConvKind != chat.ConvRoom { // a room entered without a join message has none
			return nil
		}
		f := conversationFrame{Type: "conversation", RoomID: ev.ConvID, Kind: ev.ConvKind, Message: ev.Message, UserSeq: ev.UserSeq}
		if ev.User != nil {
			f.Peer = &userRef{ID: ev.User.ID, Name: ev.User.Name}
		}
		v = f
	case chat.EventUser:
		if ev.User == nil {
			return nil
		}
		v = userFrame{Type: "user", RoomID: ev.ConvID, User: userRef{ID: ev.User.ID, Name: ev.User.Name}, Version: ev.Seq}
	case chat.EventRead:
		v = readFrame{Type: "read", RoomID: ev.ConvID, Seq: ev.Seq}
	case chat.EventRemoved:
		v = removedFrame{Type: "removed", RoomID: ev.ConvID, Reason: ev.Reason, UserSeq: ev.UserSeq}
	default:
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

// userFrame: a user's name changed (chat.EventUser), to the name's
// version (chat.User.NameVersion; 0 unknown, left out).
type userFrame struct {
	Type    string  `json:"type"`
	RoomID  int64   `json:"room_id,omitempty"`
	User    userRef `json:"user"`
	Version int64   `json:"version,omitempty"`
}

type typingFrame struct {
	Type   string  `json:"type"`
	RoomID int64   `json:"room_id"`
	User   userRef `json:"user"`
}

// handleWS serves the native protocol on /api/ws. The optional query
// parameter events_after (the user_seq of the last logged event the client
// has) replays the user's events since, in order, before the live ones.
func (s *server) handleWS() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := authFrom(r.Context())
		after, err := eventsAfter(r)
		release := func() {}
		// A request the upgrade will refuse (no upgrade, a handshake
		// gorilla does not take, another site's Origin) opens nothing: the
		// upgrader answers it, and it takes nothing of the user's limits
		// of connections.
		if err == nil && upgradable(r) && s.checkOrigin(r) {
			release, err = s.roomForConn(a.User, true)
		}
		if err != nil {
			s.writeError(w, err)
			return
		}
		release = sync.OnceFunc(release)
		defer release() // the hub client is registered, or it failed
		// The upgrader writes its own response: pass on the cookie that
		// authed set when it renewed the session.
		ws, err := s.upgrader.Upgrade(hijacker{w}, r, http.Header{"Set-Cookie": w.Header().Values("Set-Cookie")})
		if err != nil {
			return // the upgrader has answered
		}
		// A signed-in WebSocket: a session over a conn.
		n := &conn{s: s, format: formatNative, ctx: context.Background(), sess: s.newSession(a.User)}
		n.setWS(ws)
		n.removed = n.sess.removedBy
		n.admit = n.sess.admitUser
		ctx, cancel := opContext()
		defer cancel()
		// Nothing is written until hello is queued ahead of what reached
		// the client meanwhile: hello is the first frame.
		if err := n.sess.start(ctx, a.Session.ID, nil, after); err != nil {
			if !errors.Is(err, hub.ErrClosed) {
				s.log.Warn("start connection", "user", a.User.ID, "err", err)
			}
			refuse(ws, hub.ReasonShutdown)
			return
		}
		// The hub client now follows the user's topic: a sign-out from here
		// on closes it; one that came before (after authed's session read)
		// is found in the store.
		if err := s.svc.CheckSession(ctx, a.Session); err != nil {
			n.sess.stop()
			if !errors.Is(err, chat.ErrUnauthorized) {
				s.log.Warn("check session", "user", a.User.ID, "err", err)
				refuse(ws, hub.ReasonShutdown)
				return
			}
			refuse(ws, hub.ReasonSessionEnded)
			return
		}
		n.client = n.sess.client
		// The hub counts the connection now. Its place is given back
		// before hello: a client that connects again once it has its
		// hello must not find this connection counted twice.
		release()
		n.client.Attach(n, n.own(s.helloOf(n.sess, a.Session)))
		go n.serve(func(data []byte, text bool) { // and let net/http's goroutine and buffers go
			if !text {
				n.sess.invalid(n.push, errNotText)
				return
			}
			n.sess.handle(data, n.push)
		}, n.sess.end)
	})
}

// handleOpenCheck answers whether an open of a connection (a WebSocket
// on /api/ws, or a new long-poll channel) by the user would be let in
// now, taking none: 204, or the 429 rate_limited, with retry_after_ms,
// that the open would get (openRefused). The web app asks it when a
// WebSocket failed before its hello: a refused upgrade looks the same as
// one a proxy blocked, and only the latter should make it long-poll.
func (s *server) handleOpenCheck() http.Handler {
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		u := authFrom(r.Context()).User
		if err := s.allowOpenCheck(u); err != nil {
			return err
		}
		if err := s.openRefused(u); err != nil {
			return err
		}
		w.Header()["Cache-Control"] = hdrNoStore
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// helloOf greets a signed-in client of session sess.
func (s *server) helloOf(n *session, sess chat.Session) helloFrame {
	return helloFrame{Type: "hello", User: meOf(n.me()), UserSeq: n.users.last(), Limits: limits{
		MaxMessageLen: s.svc.Config().MaxMessageLen, MaxFrameBytes: s.cfg.MaxFrameBytes,
		SendRate: s.cfg.SendRate, SendBurst: s.cfg.SendBurst,
		MaxGroupMembers:     s.svc.Config().MaxGroupMembers,
		DefaultGroupMembers: s.svc.Config().DefaultGroupCap(),
	}, sessionRenewal: s.renewalOf(sess)}
}

// refuse closes a just-upgraded socket with the close frame of r: the hub
// shutting down (reconnect), or the session ended (sign in again).
func refuse(ws *websocket.Conn, r hub.CloseReason) {
	code, text := closeFrame(r)
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
	_ = ws.Close()
}
