package web

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// The frame that congested a socket is kept whole, and maxRest more
// bytes past it; once the peer has read that frame, only maxRest bytes
// may wait, not maxRest and the frame's length. A peer that reads a page
// of history, then sends pings and reads nothing more, is cut off as one
// that read nothing at all would be.
func TestFrameConnRestBoundAfterFrame(t *testing.T) {
	fc, cc := socketPairSized(t, 64<<10)
	// The socket is full, so that the frame congests it: filled here from
	// under the frameConn.
	sc := fc.Conn.(*net.TCPConn)
	_ = sc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	filled, err := sc.Write(make([]byte, 64<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("filling the socket: %d bytes, %v; want it full", filled, err)
	}
	_ = sc.SetWriteDeadline(time.Time{})
	const bigLen = 2 << 20
	big := make([]byte, 10+bigLen)
	big[0], big[1] = 0x82, 127
	binary.BigEndian.PutUint64(big[2:], bigLen)
	if n, err := fc.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write of a %d-byte frame = %d, %v", len(big), n, err)
	}
	if !fc.draining() {
		t.Fatal("a 2 MiB frame written to a peer that reads nothing, and the socket is not congested")
	}
	d := fc.d.Load()
	// The drain has taken the frame's rest: the pongs wait behind it.
	waitDrain(t, d, func() bool { return d.inflight > 0 })
	pong := make([]byte, 2+125)
	pong[0], pong[1] = 0x8a, 125
	const early = 4096 // pongs kept behind the frame: 508 KiB, more than the socket takes
	for i := range early {
		if _, err := fc.Write(pong); err != nil {
			t.Fatalf("pong %d behind the frame: %v; want it kept", i, err)
		}
	}
	// The peer reads the frame, and nothing more.
	_ = cc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(cc, make([]byte, filled+len(big))); err != nil {
		t.Fatalf("peer read the frame: %v", err)
	}
	// The drain has written the frame once it takes the pongs.
	waitDrain(t, d, func() bool { return d.inflight == early*len(pong) })
	kept := 0
	err = nil
	for kept < 5<<18 && err == nil { // 1.25 MiB: less than the frame and maxRest
		if _, err = fc.Write(pong); err == nil {
			kept += len(pong)
		}
	}
	if !errors.Is(err, errPeerTooSlow) {
		t.Fatalf("after the frame was read, %d bytes more of pongs kept beside %d waiting (err %v); want the peer cut off past maxRest (%d)",
			kept, early*len(pong), err, maxRest)
	}
}

// waitDrain waits, at most 10s, until cond holds with d locked.
func waitDrain(t *testing.T, d *drainState, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d.mu.Lock()
		ok := cond()
		d.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the drain did not get there within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
