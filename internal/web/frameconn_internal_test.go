package web

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/hub"
)

// FuzzFrameConn reads a stream of client frames built from script, delivered
// in chunks whose sizes come from chunks, the way a native connection reads
// them (frameConn under gorilla, with conn's readFrame, control and
// readMessage between waits), and checks that it sees the messages, pings
// and pongs that gorilla alone sees in the same bytes, and answers them with
// the same frames (pongs, and the close code of a refusal). Every Read of
// the frameConn must end within the frame under way, and a frame read
// whole must leave it between frames.
//
// script is read by streamBuilder: its first byte picks the read limit,
// then each operation appends a frame or a few (see streamBuilder.op).
// Each byte of chunks is the most one read of the socket delivers, or a
// pause (0) at which a wait of waitAtMost gives up.
func FuzzFrameConn(f *testing.F) {
	for _, s := range [][2][]byte{
		// A short text message, whole in one read.
		{{0, 0, 21, 0}, nil},
		// Messages around the length boundaries, a byte a read.
		{{1, 0, 3, 0, 0, 4, 0, 0, 5, 0, 0, 6, 0, 1, 13, 0, 0, 14, 0}, {1}},
		// Lengths in longer forms than they need, headers split.
		{{0, 0, 21, 1, 0, 21, 2, 1, 2, 1, 0, 5, 2, 0, 4, 1}, {3, 5, 7}},
		// A message in four fragments, the third empty, with pings and
		// pongs inside it and after it.
		{{0, 2, 4, 21, 0, 2, 0, 6, 1, 0, 5, 1, 1, 0, 2, 0, 0, 0, 3, 0, 3, 1, 12, 0, 22, 0}, {2, 1, 9}},
		// A binary message in two fragments, then a close frame.
		{{0, 2, 1, 6, 2, 0, 7, 0, 5, 0}, {13}},
		// Pauses between frames: the waits give up and begin again.
		{{0, 3, 0, 6, 4, 2, 3, 0, 21, 0, 3, 1, 2, 1, 21, 0}, {0, 2, 0, 0, 7, 0}},
		// A binary message, then a text one.
		{{0, 1, 21, 0, 0, 21, 0}, {4}},
		// Messages of 64 KiB, within the read limit, then past it.
		{{5, 0, 14, 2, 0, 15, 0}, {200, 255}},
		{{2, 0, 4, 0, 0, 5, 0}, {1}},
		// Arbitrary lengths, one in the 64-bit form.
		{{0, 8, 1, 2, 0, 8, 0x40, 0, 2}, {193}},
		// Refusals after a message and a ping: a ping and a pong too
		// long, an unmasked text frame and ping, reserved opcodes of a
		// data and a control frame, a 64-bit length with its top bit set,
		// a ping without FIN, a continuation with no message under way,
		// a reserved bit, a message begun inside a fragmented one.
		{{0, 0, 21, 0, 3, 0, 6, 6, 0}, {1}},
		{{0, 0, 21, 0, 3, 0, 6, 6, 1}, {7}},
		{{0, 0, 21, 0, 3, 0, 6, 6, 2}, nil},
		{{0, 0, 21, 0, 3, 0, 6, 6, 3}, {1}},
		{{0, 0, 21, 0, 3, 0, 6, 6, 4}, {2}},
		{{0, 0, 21, 0, 3, 0, 6, 6, 54}, {2}},
		{{0, 0, 21, 0, 3, 0, 6, 6, 5}, {5}},
		{{0, 0, 21, 0, 3, 0, 6, 6, 6}, {1}},
		{{0, 0, 21, 0, 3, 0, 6, 6, 7}, nil},
		{{0, 0, 21, 0, 3, 0, 6, 6, 8}, {3}},
		{{0, 0, 21, 0, 3, 0, 6, 6, 9}, {4}},
		// Close frames: with a code and a reason, with a code a peer must
		// not send, and of one byte, which gorilla takes for one without
		// a code.
		{{0, 0, 21, 0, 5, 9, 7}, {1}},
		{{0, 5, 5, 0}, nil},
		{{0, 7, 7, 0x88, 0x81, 1, 2, 3, 4, 5}, {1}},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, script, chunks []byte) {
		limit, stream := buildStream(script)
		sizes := chunkSizes(chunks)
		want, wantOut := readAsGorilla(t, stream, sizes, limit)
		got, gotOut := readAsServer(t, stream, sizes, limit)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("frames read, frameConn against gorilla alone (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(wantOut, gotOut); diff != "" {
			t.Errorf("frames written in answer, frameConn against gorilla alone (-want +got):\n%s", diff)
		}
	})
}

// readLimits are the read limits a script's first byte picks from: the
// server's default, and a few around the length boundaries.
var readLimits = []int64{32 << 10, 1 << 20, 125, 126, 65535, 65536}

// dataLens are lengths of data frames that a length byte below
// len(dataLens) picks; a larger one is its own value less len(dataLens).
var dataLens = []int{0, 1, 2, 124, 125, 126, 127, 128, 1023, 1024, 1025, 4095, 4096, 65535, 65536, 65537}

// maxStream bounds a stream, so that one input is read in little time.
const maxStream = 256 << 10

// streamBuilder builds a stream of client frames from a script.
type streamBuilder struct {
	script []byte
	stream []byte
	frames int // frames appended, which makes each payload and mask its own
}

// next is the script's next byte, 0 once it is all read.
func (g *streamBuilder) next() byte {
	if len(g.script) == 0 {
		return 0
	}
	b := g.script[0]
	g.script = g.script[1:]
	return b
}

// buildStream is the read limit and the stream of frames that script
// describes.
func buildStream(script []byte) (int64, []byte) {
	g := &streamBuilder{script: script}
	limit := readLimits[int(g.next())%len(readLimits)]
	for len(g.script) > 0 && len(g.stream) < maxStream {
		if !g.op() {
			break
		}
	}
	return limit, g.stream
}

// op appends what the script's next operation says; false once the
// stream is closed.
func (g *streamBuilder) op() bool {
	switch g.next() % 9 {
	case 0: // a text message in one frame: length, length's form
		g.frame(true, websocket.TextMessage, g.dataLen(), int(g.next()))
	case 1: // a binary message in one frame
		g.frame(true, websocket.BinaryMessage, g.dataLen(), int(g.next()))
	case 2: // a fragmented message: flags, then per fragment its length, form and the control frames after it
		flags := g.next()
		op := websocket.TextMessage
		if flags&1 != 0 {
			op = websocket.BinaryMessage
		}
		n := 2 + int(flags>>1)%3
		for i := range n {
			g.frame(i == n-1, op, g.dataLen(), int(g.next()))
			if i < n-1 {
				for range int(g.next()) % 3 {
					g.control()
				}
			}
			op = 0 // continuation
		}
	case 3: // a ping or a pong between messages
		g.control()
	case 4: // a ping and a pong
		g.frame(true, websocket.PingMessage, g.controlLen(), 0)
		g.frame(true, websocket.PongMessage, g.controlLen(), 0)
	case 5: // a close frame: its code (none for 0), and its reason's length
		var p []byte
		if c := g.next(); c != 0 {
			p = binary.BigEndian.AppendUint16(nil, 1000+uint16(c%12))
			p = append(p, strings.Repeat("r", int(g.next())%100)...)
		}
		g.appendFrame(true, websocket.CloseMessage, p, true, 0)
		return false
	case 6: // a malformed frame
		g.malformed(g.next())
	case 7: // raw bytes: their count, then them
		for range int(g.next()) % 32 {
			g.stream = append(g.stream, g.next())
		}
	case 8: // a text message of an arbitrary length: two bytes, then the form
		n := int(g.next())<<8 | int(g.next())
		g.frame(true, websocket.TextMessage, n, int(g.next()))
	}
	return true
}

// dataLen is the length a data frame's length byte picks.
func (g *streamBuilder) dataLen() int {
	b := int(g.next())
	if b < len(dataLens) {
		return dataLens[b]
	}
	return b - len(dataLens)
}

// controlLen is the length a control frame's length byte picks: up to the
// most a control frame may carry, 125.
func (g *streamBuilder) controlLen() int {
	switch b := int(g.next()); b {
	case 0, 1:
		return [2]int{125, 124}[b]
	default:
		return (b - 2) % 126
	}
}

// control appends a ping or a pong: kind, then length.
func (g *streamBuilder) control() {
	op := websocket.PingMessage
	if g.next()&1 != 0 {
		op = websocket.PongMessage
	}
	g.frame(true, op, g.controlLen(), 0)
}

// frame appends a masked frame of a payload of n bytes, its length in
// the shortest form or, if form%3 is 1 or 2, the 16- or 64-bit form.
func (g *streamBuilder) frame(fin bool, op, n, form int) {
	g.appendFrame(fin, op, g.payload(n), true, form%3)
}

// payload is n bytes of a pattern that differs from frame to frame.
func (g *streamBuilder) payload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*31 + g.frames*17)
	}
	return p
}

// malformed appends a frame that a server must refuse, of the kind that
// kind picks.
func (g *streamBuilder) malformed(kind byte) {
	switch kind % 10 {
	case 0: // a ping longer than a control frame may be
		g.appendFrame(true, websocket.PingMessage, g.payload(126), true, 0)
	case 1: // a pong longer than a control frame may be, in the 64-bit form
		g.appendFrame(true, websocket.PongMessage, g.payload(200), true, 2)
	case 2: // an unmasked text frame
		g.appendFrame(true, websocket.TextMessage, g.payload(10), false, 0)
	case 3: // an unmasked ping
		g.appendFrame(true, websocket.PingMessage, g.payload(4), false, 0)
	case 4: // a reserved opcode, of data frames or control frames
		g.appendFrame(true, []int{3, 4, 5, 6, 7, 11, 12, 13, 14, 15}[int(kind/10)%10], g.payload(5), true, 0)
	case 5: // a 64-bit length with its top bit set
		h := []byte{finBit | websocket.TextMessage, maskBit | 127}
		h = binary.BigEndian.AppendUint64(h, 1<<63|uint64(kind))
		g.stream = append(append(append(g.stream, h...), 1, 2, 3, 4), g.payload(16)...)
	case 6: // a ping without FIN
		g.appendFrame(false, websocket.PingMessage, g.payload(3), true, 0)
	case 7: // a continuation frame with no message under way
		g.appendFrame(true, 0, g.payload(3), true, 0)
	case 8: // a reserved bit set (no extension was agreed)
		g.appendFrame(true, websocket.TextMessage, g.payload(3), true, 0)
		g.stream[len(g.stream)-3-4-2] |= 0x40
	case 9: // a message begun inside a fragmented one
		g.appendFrame(false, websocket.TextMessage, g.payload(3), true, 0)
		g.appendFrame(true, websocket.TextMessage, g.payload(3), true, 0)
	}
}

// appendFrame appends a frame of payload p: masked, as clients must, with
// its length in the shortest form (form 0), or in the 16-bit form (1,
// where it fits) or the 64-bit one (2).
func (g *streamBuilder) appendFrame(fin bool, op int, p []byte, masked bool, form int) {
	g.frames++
	b := byte(op)
	if fin {
		b |= finBit
	}
	var m byte
	if masked {
		m = maskBit
	}
	s := append(g.stream, b)
	switch n := len(p); {
	case form == 0 && n < 126:
		s = append(s, m|byte(n))
	case form != 2 && n <= math.MaxUint16:
		s = binary.BigEndian.AppendUint16(append(s, m|126), uint16(n))
	default:
		s = binary.BigEndian.AppendUint64(append(s, m|127), uint64(n))
	}
	if masked {
		key := [4]byte{byte(g.frames), 0x5a, byte(g.frames * 7), 0xc3}
		s = append(s, key[:]...)
		for i, c := range p {
			s = append(s, c^key[i%4])
		}
	} else {
		s = append(s, p...)
	}
	g.stream = s
}

// chunkSizes is what each read of the socket delivers at most, from the
// fuzzer's chunks: 0 is a pause, 1 to 192 bytes as they are, larger bytes
// in steps of 256 bytes.
func chunkSizes(chunks []byte) []int {
	sizes := make([]int, 0, len(chunks)+1)
	some := false
	for _, c := range chunks {
		n := int(c)
		if n > 192 {
			n = (n - 192) * 256
		}
		sizes = append(sizes, n)
		some = some || n > 0
	}
	if !some {
		sizes = append(sizes, 4096)
	}
	return sizes
}

// chunkConn is a socket that delivers data in chunks of the sizes given,
// in turn, as it would have arrived in separate segments; it keeps what is
// written to it. At a pause (a size of 0), a read whose deadline is less
// than a second away times out, as a wait of waitAtMost for a frame from
// an idle client does; others go on to the next chunk.
type chunkConn struct {
	data     []byte
	pos      int
	sizes    []int
	next     int // the next chunk's index in sizes
	left     int // what the current chunk still holds
	deadline time.Time
	out      bytes.Buffer
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if c.pos == len(c.data) {
		return 0, io.EOF
	}
	for c.left == 0 {
		n := c.sizes[c.next%len(c.sizes)]
		c.next++
		if n == 0 && !c.deadline.IsZero() && time.Until(c.deadline) < time.Second {
			return 0, os.ErrDeadlineExceeded
		}
		c.left = n
	}
	n := copy(p, c.data[c.pos:c.pos+min(c.left, len(c.data)-c.pos)])
	c.pos += n
	c.left -= n
	return n, nil
}

func (c *chunkConn) Write(p []byte) (int, error)        { return c.out.Write(p) }
func (c *chunkConn) Close() error                       { return nil }
func (c *chunkConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *chunkConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *chunkConn) SetDeadline(t time.Time) error      { return c.SetReadDeadline(t) }
func (c *chunkConn) SetReadDeadline(t time.Time) error  { c.deadline = t; return nil }
func (c *chunkConn) SetWriteDeadline(t time.Time) error { return nil }

// upgradeOver is a server's WebSocket over nc, upgraded by the server's
// upgrader (its read buffer among what it sets).
func upgradeOver(t *testing.T, nc net.Conn) *websocket.Conn {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/api/ws", nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	up := newUpgrader(func(*http.Request) bool { return true })
	ws, err := up.Upgrade(fakeHijacker{httptest.NewRecorder(), nc}, r, nil)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	return ws
}

// fakeHijacker hands its socket to an upgrade.
type fakeHijacker struct {
	*httptest.ResponseRecorder
	nc net.Conn
}

func (h fakeHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.nc, bufio.NewReadWriter(bufio.NewReader(h.nc), bufio.NewWriter(h.nc)), nil
}

// seen is a message, ping or pong as a reader saw it.
type seen struct {
	Kind string
	Data string
}

// recordControl makes ws record the pings and pongs it reads in *log, and
// answer pings as conn.serve does.
func recordControl(ws *websocket.Conn, log *[]seen) {
	ws.SetPingHandler(func(data string) error {
		*log = append(*log, seen{"ping", data})
		return ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	ws.SetPongHandler(func(data string) error {
		*log = append(*log, seen{"pong", data})
		return nil
	})
}

// readAsGorilla reads stream with gorilla alone, over a plain socket: what
// it sees, and the frames it writes in answer.
func readAsGorilla(t *testing.T, stream []byte, sizes []int, limit int64) ([]seen, []seen) {
	src := &chunkConn{data: stream, sizes: sizes}
	ws := upgradeOver(t, src)
	src.out.Reset()
	ws.SetReadLimit(limit)
	var log []seen
	recordControl(ws, &log)
	for {
		typ, r, err := ws.NextReader()
		if err != nil {
			break
		}
		b, err := io.ReadAll(r)
		if err != nil {
			break
		}
		if typ == websocket.TextMessage {
			log = append(log, seen{"text", string(b)})
		} else {
			log = append(log, seen{"binary", ""}) // the server reads it, and refuses it
		}
	}
	return log, writtenFrames(t, src.out.Bytes())
}

// readAsServer reads stream as a native connection does (conn.await):
// through a frameConn, its frames awaited between reads, a ping or pong
// between messages read by control, and the rest by readMessage. It
// fails t if a Read of the frameConn returns bytes past the end of the
// frame under way, or a frame read whole leaves it amid one.
func readAsServer(t *testing.T, stream []byte, sizes []int, limit int64) ([]seen, []seen) {
	src := &chunkConn{data: stream, sizes: sizes}
	fc := newFrameConn(src)
	bc := &boundedConn{frameConn: fc, src: src, ends: frameEnds(stream), t: t}
	ws := upgradeOver(t, bc)
	src.out.Reset()
	cl, err := hub.New(nil, slog.New(slog.DiscardHandler)).Register(0, 0, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{MaxFrameBytes: limit, PongWait: time.Minute, WriteWait: time.Second}
	c := &conn{s: &server{cfg: cfg, log: slog.New(slog.DiscardHandler)}, format: formatNative, client: cl}
	c.setWS(ws)
	// What serve sets before the first wait.
	ws.SetReadLimit(cfg.MaxFrameBytes)
	_ = ws.SetReadDeadline(time.Now().Add(cfg.PongWait))
	var log []seen
	recordControl(ws, &log)
	handle := func(b []byte, text bool) {
		if !text {
			log = append(log, seen{"binary", ""})
			return
		}
		log = append(log, seen{"text", string(b)})
	}

	err = fc.wait()
	for err == nil && c.readFrame(fc, handle) == nil {
		if at := src.pos - len(fc.pend); fc.hn != 0 || !slices.Contains(bc.ends, at) {
			t.Fatalf("a frame read whole left the frameConn at byte %d of the stream, %d bytes into a frame header; want between frames", at, fc.hn)
		}
		if len(fc.pend) == 0 && fc.rbuf != nil {
			t.Fatal("the frameConn holds a read buffer with nothing in it between frames")
		}
		var idle bool
		if idle, err = fc.waitAtMost(readerIdle); idle {
			err = fc.wait() // await, on a fresh goroutine
		}
	}
	return log, writtenFrames(t, src.out.Bytes())
}

// boundedConn is the frameConn under test as gorilla reads it: each Read
// must end within the frame under way.
type boundedConn struct {
	*frameConn
	src  *chunkConn
	ends []int
	t    *testing.T
}

func (b *boundedConn) Read(p []byte) (int, error) {
	at := b.src.pos - len(b.pend)
	n, err := b.frameConn.Read(p)
	if i, _ := slices.BinarySearch(b.ends, at+1); i < len(b.ends) && at+n > b.ends[i] {
		b.t.Fatalf("Read at byte %d of the stream returned %d bytes, past the end of the frame under way at byte %d", at, n, b.ends[i])
	}
	return n, err
}

// frameEnds is where each frame of stream ends, as RFC 6455 frames it; a
// frame that the stream cuts short has none.
func frameEnds(s []byte) []int {
	var ends []int
	for at := 0; len(s)-at >= 2; {
		h, n := 2, uint64(s[at+1]&^maskBit)
		switch n {
		case 126:
			h += 2
		case 127:
			h += 8
		}
		if s[at+1]&maskBit != 0 {
			h += 4
		}
		if len(s)-at < h {
			break
		}
		switch n {
		case 126:
			n = uint64(binary.BigEndian.Uint16(s[at+2:]))
		case 127:
			n = binary.BigEndian.Uint64(s[at+2:])
		}
		if n > uint64(len(s)-at-h) {
			break
		}
		at += h + int(n)
		ends = append(ends, at)
	}
	return ends
}

// writtenFrames is what a server wrote, frame by frame: a close frame by
// its code alone, for gorilla and conn.control give their own reasons.
func writtenFrames(t *testing.T, b []byte) []seen {
	t.Helper()
	var out []seen
	for len(b) > 0 {
		if len(b) < 2 || b[1]&maskBit != 0 || b[1] >= 126 || len(b) < 2+int(b[1]) {
			t.Fatalf("the server wrote %x; want frames of control messages", b)
		}
		op, p := b[0]&0x0f, b[2:2+int(b[1])]
		b = b[2+len(p):]
		switch op {
		case websocket.CloseMessage:
			code := websocket.CloseNoStatusReceived
			if len(p) >= 2 {
				code = int(binary.BigEndian.Uint16(p))
			}
			out = append(out, seen{"close", fmt.Sprint(code)})
		case websocket.PongMessage:
			out = append(out, seen{"pong", string(p)})
		default:
			t.Fatalf("the server wrote a frame of opcode %d", op)
		}
	}
	return out
}
