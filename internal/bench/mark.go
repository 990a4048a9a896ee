package bench

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"time"
)

// ReadEvery is how often at most a client of the load tool moves its read
// position, as the web app does (READ_EVERY and READ_EVERY_ROOM in
// ui/dist/app.js): once a second in a group, whose members get each move
// as a receipt; every 5 s in a room, which has no receipts and may have
// thousands of members watching it. In a room, a move that could go at
// once waits a random part of that instead, as the app's does: the
// viewers, all woken by the same message, would otherwise move together.
func ReadEvery(groups bool) time.Duration {
	if groups {
		return time.Second
	}
	return 5 * time.Second
}

// markRef is the ref of a client's read frames: an error with it is a
// refused read, not a refused send.
const markRef = "bench-read"

// marker moves a client's read position as the web app does while it shows
// the conversation (queueRead in ui/dist/app.js): at the first message at
// once (in a room, after a random part of ReadEvery), then at most once
// every ReadEvery, with the highest seq seen.
type marker struct {
	mu    sync.Mutex
	seq   int64       // the highest seq seen
	sent  int64       // the highest seq sent
	at    time.Time   // when the last one went
	armed *time.Timer // set while a timer will send what waits
}

// queueMark notes that c has shown seq, and sends c's read position now or
// arms a timer for when ReadEvery has passed since the last one. Called by
// c's reader.
func (r *runState) queueMark(c *client, seq int64) {
	m := &c.mark
	m.mu.Lock()
	m.seq = max(m.seq, seq)
	// r.closing is read under m.mu: either stop, which closeAll calls
	// once it is set, stops the timer armed here, or it is seen here.
	if m.armed != nil || r.closing.Load() || m.seq <= m.sent {
		m.mu.Unlock()
		return
	}
	every := ReadEvery(r.cfg.Groups)
	wait := time.Until(m.at.Add(every))
	if wait <= 0 && !r.cfg.Groups {
		wait = rand.N(every)
	}
	if wait > 0 {
		m.armed = time.AfterFunc(wait, func() {
			m.mu.Lock()
			m.armed = nil
			seq, ok := m.take()
			m.mu.Unlock()
			r.sendMark(c, seq, ok)
		})
		m.mu.Unlock()
		return
	}
	seq, ok := m.take()
	m.mu.Unlock()
	r.sendMark(c, seq, ok)
}

// stop stops m's timer, if armed: a timer of a room's client may be 5 s
// away, and must not fire after the run. Called once the run is closing,
// when queueMark arms no more.
func (m *marker) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.armed != nil {
		m.armed.Stop()
		m.armed = nil
	}
}

// take returns the seq waiting to be sent, if any, as sent now. m.mu is
// held.
func (m *marker) take() (int64, bool) {
	if m.seq <= m.sent {
		return 0, false
	}
	m.at = time.Now()
	m.sent = m.seq
	return m.seq, true
}

// sendMark sends read position seq of c if ok, unless the run is closing
// its sessions. Called without c.mark.mu, which the session's own locks
// must not nest in: the long-poll reader calls queueMark under its lock.
func (r *runState) sendMark(c *client, seq int64, ok bool) {
	if !ok || r.closing.Load() {
		return
	}
	r.marks.Add(1)
	if err := c.sess.markRead(seq); err != nil {
		r.markErr("write_error")
	}
}

// markErr counts a read position the server refused or the client could
// not send.
func (r *runState) markErr(code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.markCodes == nil {
		r.markCodes = make(map[string]int64)
	}
	r.markCodes[code]++
}

// markFrame is the frame that moves the read position in room to seq.
func markFrame(roomID, seq int64) []byte {
	b := make([]byte, 0, 80)
	b = append(b, `{"type":"read","room_id":`...)
	b = strconv.AppendInt(b, roomID, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"ref":"`+markRef+`"}`...)
	return b
}
