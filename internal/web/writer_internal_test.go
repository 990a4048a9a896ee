package web

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"
)

// socketPair returns both ends of a loopback TCP connection, the server's
// as a frameConn with small buffers on both sides, so that a peer that
// does not read congests it soon.
func socketPair(t *testing.T) (*frameConn, *net.TCPConn) {
	t.Helper()
	return socketPairSized(t, 4<<10)
}

// socketPairSized is socketPair with buffers of size bytes, or the
// kernel's own if size is 0.
func socketPairSized(t *testing.T, size int) (*frameConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	sc, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sc.Close() })
	if size > 0 {
		_ = sc.SetWriteBuffer(size)
		_ = cc.SetReadBuffer(size)
	}
	fc := newFrameConn(sc)
	if !fc.nonBlocking() {
		t.Fatal("a TCP socket's frameConn blocks on writes")
	}
	_ = fc.SetWriteDeadline(time.Now().Add(time.Minute))
	return fc, cc
}

// congest writes 16 KiB chunks to fc, each of its own byte, until fc
// keeps bytes for its drain; it returns all it wrote. Write must not
// block: nobody reads.
func congest(t *testing.T, fc *frameConn) []byte {
	t.Helper()
	done := make(chan []byte, 1)
	go func() {
		var all []byte
		for i := range 64 { // 1 MiB at most, far beyond the socket's buffers
			p := bytes.Repeat([]byte{byte('a' + i%26)}, 16<<10)
			if n, err := fc.Write(p); n != len(p) || err != nil {
				t.Errorf("Write %d = %d, %v; want %d, nil", i, n, err, len(p))
				break
			}
			all = append(all, p...)
			if fc.draining() {
				break
			}
		}
		done <- all
	}()
	select {
	case all := <-done:
		if !fc.draining() {
			t.Fatalf("%d bytes written to a peer that reads nothing, and the socket is not congested", len(all))
		}
		return all
	case <-time.After(10 * time.Second):
		t.Fatal("Write blocked on a peer that reads nothing")
		return nil
	}
}

func TestFrameConnWriteDoesNotBlock(t *testing.T) {
	fc, cc := socketPair(t)
	want := congest(t, fc)

	drained := make(chan struct{})
	if !fc.congested(func() { close(drained) }) {
		t.Fatal("congested() = false while the drain has bytes")
	}
	// What is written meanwhile (a control frame, say) goes after them.
	tail := []byte("after the congestion")
	if n, err := fc.Write(tail); n != len(tail) || err != nil {
		t.Fatalf("Write while draining = %d, %v", n, err)
	}
	want = append(want, tail...)
	select {
	case <-drained:
		t.Fatal("the drain reported done before the peer read anything")
	default:
	}

	_ = cc.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(cc, got); err != nil {
		t.Fatalf("peer read: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the peer read other bytes, or in another order, than were written")
	}
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		t.Fatal("the drain did not report done after the peer read everything")
	}
	if fc.draining() {
		t.Fatal("still draining after the peer read everything")
	}
	// Writes go straight to the socket again, whatever the deadline gorilla
	// set long ago.
	_ = fc.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := fc.Write([]byte("x")); err != nil {
		t.Fatalf("Write after the drain: %v", err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(cc, b); err != nil || b[0] != 'x' {
		t.Fatalf("peer read %q, %v; want x", b, err)
	}
}

// A peer that stays behind while more arrives (pongs to its pings, say)
// is cut off once maxRest bytes wait.
func TestFrameConnTooSlow(t *testing.T) {
	fc, cc := socketPair(t)
	congest(t, fc)
	var err error
	for range maxRest/1024 + 64 { // the kernel may take a little more meanwhile
		if _, err = fc.Write(make([]byte, 1024)); err != nil {
			break
		}
	}
	if !errors.Is(err, errPeerTooSlow) {
		t.Fatalf("Write past maxRest: %v; want errPeerTooSlow", err)
	}
	if _, err := fc.Write([]byte("x")); !errors.Is(err, errPeerTooSlow) {
		t.Fatalf("Write after the cut: %v; want errPeerTooSlow", err)
	}
	_ = cc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, cc); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("peer read after the cut: %v; want the socket closed", err)
	}
}

// A drain that fails (the peer is gone) fails later writes and still
// runs what waited for it.
func TestFrameConnDrainFails(t *testing.T) {
	fc, cc := socketPair(t)
	congest(t, fc)
	drained := make(chan struct{})
	fc.whenWritten(func() { close(drained) })
	_ = cc.SetLinger(0)
	_ = cc.Close() // a reset: the drain's write fails
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		t.Fatal("what waited for the drain did not run after the socket failed")
	}
	if _, err := fc.Write([]byte("x")); err == nil {
		t.Fatal("Write after the socket failed succeeded")
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}

// WriterIdle is writerIdle, for the tests of package web_test.
const WriterIdle = writerIdle

// Every connection holds a frameConn and a conn, so a byte more in
// either can cost a whole allocation size class, times the connections:
// target 5 of docs/benchmarks.md (19,000 connections in 12 KB each) has
// little room. These are the classes they fit in now (64-bit).
func TestConnSizes(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are for 64-bit platforms")
	}
	for _, c := range []struct {
		name      string
		size, max uintptr
	}{
		{"frameConn", unsafe.Sizeof(frameConn{}), 112},
		{"conn", unsafe.Sizeof(conn{}), 128},
	} {
		if c.size > c.max {
			t.Errorf("%s is %d bytes; want at most %d, the size class it had (see target 5 in docs/benchmarks.md)", c.name, c.size, c.max)
		}
	}
}

// The writers' queue is first come, first served, and under a load that
// never lets it empty it does not grow beyond a few times its backlog.
func TestWritersQueue(t *testing.T) {
	w := newWriters()
	conns := make([]conn, 100_000)
	next, want := 0, 0
	push := func(n int) {
		w.mu.Lock()
		for range n {
			w.jobs = append(w.jobs, writeJob{c: &conns[next]})
			next++
		}
		w.mu.Unlock()
	}
	push(1000) // a backlog the load never works off
	var batch []writeJob
	for next+writerBatch <= len(conns) {
		push(writerBatch)
		var ok bool
		if batch, ok = w.take(batch[:0]); !ok || len(batch) != writerBatch {
			t.Fatalf("take gave %d jobs, %v; want %d", len(batch), ok, writerBatch)
		}
		for _, j := range batch {
			if j.c != &conns[want] {
				t.Fatalf("job %d taken out of order", want)
			}
			want++
		}
		if n := len(w.jobs) - w.head; n != 1000 {
			t.Fatalf("%d jobs queued; want the backlog, 1000", n)
		}
		if len(w.jobs) > 4000 {
			t.Fatalf("the queue's slice holds %d jobs for a backlog of 1000", len(w.jobs))
		}
	}
}

// The queue keeps its slice from one fan-out to the next, which would
// otherwise grow one anew: at ten messages a second to a room of 10,000,
// half of what the server allocated (target 4 of
// docs/benchmarks-journal.md).
func TestWritersQueueKept(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are counted without -race (.ci/run)")
	}
	w := newWriters()
	conns := make([]conn, 10_000)
	var batch []writeJob
	fanOut := func() {
		w.mu.Lock()
		for i := range conns {
			w.jobs = append(w.jobs, writeJob{c: &conns[i]})
		}
		w.mu.Unlock()
		for n := 0; ; n += len(batch) {
			var ok bool
			if batch, ok = w.take(batch[:0]); !ok {
				if n != len(conns) {
					t.Fatalf("took %d jobs of %d", n, len(conns))
				}
				return
			}
		}
	}
	fanOut()
	if allocs := testing.AllocsPerRun(5, fanOut); allocs != 0 {
		t.Fatalf("a fan-out after the first allocates %v times; want none", allocs)
	}
}

// A frame larger than maxRest that congests the socket is kept whole, and
// a small frame written behind it (a pong) is kept too, not taken for a
// peer too slow: the peer reads both, in order. The socket keeps the
// kernel's own buffers: a frame of 16 MiB is more than they take at once.
func TestFrameConnLargeFrame(t *testing.T) {
	fc, cc := socketPairSized(t, 0)
	big := bytes.Repeat([]byte("界"), (16<<20)/3)
	if n, err := fc.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write of %d bytes = %d, %v", len(big), n, err)
	}
	if !fc.draining() {
		t.Fatalf("%d bytes written to a peer that reads nothing, and the socket is not congested", len(big))
	}
	pong := []byte{0x8a, 0}
	if _, err := fc.Write(pong); err != nil {
		t.Fatalf("a pong behind a frame larger than maxRest: %v; want it kept", err)
	}
	_ = cc.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(big)+len(pong))
	if _, err := io.ReadFull(cc, got); err != nil {
		t.Fatalf("peer read: %v", err)
	}
	if !bytes.Equal(got, append(big, pong...)) {
		t.Fatal("the peer read other bytes, or in another order, than were written")
	}
}

// Gorilla writes a message longer than its write buffer in two Writes:
// the frame's header with the buffer, then the rest of the payload
// (Conn.WriteMessage, as endFrame calls it for a page of history). If the
// first congests the socket, the second is still the rest of the frame
// that congested it, which maxRest does not count: a page of more than
// 1 MiB reaches a client that reads it slowly, with a pong behind it. The
// socket's buffers have a size set: the kernel grows those it sizes
// itself as they fill, so that a socket found full could take the head
// of the frame a moment later, and the frame not congest it.
func TestFrameConnLargeMessage(t *testing.T) {
	fc, cc := socketPairSized(t, 256<<10)
	ws := upgradeOver(t, fc)
	br := bufio.NewReader(cc)
	_ = cc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for { // the upgrade's response
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("peer read the upgrade's response: %v", err)
		}
		if line == "\r\n" {
			break
		}
	}
	// The socket is full, so that the frame's head congests it: filled
	// here from under the frameConn, as a write it took whole can leave
	// it.
	sc := fc.Conn.(*net.TCPConn)
	_ = sc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	filled, err := sc.Write(make([]byte, 64<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("filling the socket: %d bytes, %v; want it full", filled, err)
	}
	_ = sc.SetWriteDeadline(time.Time{})

	page := bytes.Repeat([]byte("界"), (1<<20)/3+100_000)
	_ = ws.SetWriteDeadline(time.Now().Add(time.Minute))
	if err := ws.WriteMessage(websocket.TextMessage, page); err != nil {
		t.Fatalf("WriteMessage of %d bytes to a full socket: %v; want it kept for the drain", len(page), err)
	}
	if !fc.draining() {
		t.Fatal("a message written to a full socket, and it is not congested")
	}
	if err := ws.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("a pong behind the message: %v", err)
	}

	if _, err := io.CopyN(io.Discard, br, int64(filled)); err != nil {
		t.Fatalf("peer read the filling: %v", err)
	}
	head := make([]byte, 10)
	if _, err := io.ReadFull(br, head); err != nil {
		t.Fatalf("peer read the frame's header: %v", err)
	}
	if head[0] != 0x81 || head[1] != 127 || binary.BigEndian.Uint64(head[2:]) != uint64(len(page)) {
		t.Fatalf("frame header %x; want a text frame of %d bytes", head, len(page))
	}
	got := make([]byte, len(page)+2)
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatalf("peer read the frame and the pong: %v", err)
	}
	if !bytes.Equal(got, append(page, 0x8a, 0)) {
		t.Fatal("the peer read another payload than was written, or no pong after it")
	}
}

// A Write to a socket closed under it writes nothing and says so: the
// count is not one left over from an earlier write.
func TestFrameConnWriteAfterClose(t *testing.T) {
	fc, _ := socketPair(t)
	if n, err := fc.Write([]byte("hello")); n != 5 || err != nil {
		t.Fatalf("Write = %d, %v; want 5, nil", n, err)
	}
	_ = fc.Conn.Close()
	for range 3 { // and after the failure too
		if n, err := fc.Write([]byte("x")); n != 0 || err == nil {
			t.Fatalf("Write to a closed socket = %d, %v; want 0 and an error", n, err)
		}
	}
}
