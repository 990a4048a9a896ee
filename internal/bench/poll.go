package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Long-polling (docs/protocol.md, "Long-polling"): each client holds a
// GET /api/poll?cursor=C open and polls again with the cursor of each
// answer; its frames go as POST /api/poll?cursor=C, one a request. Signed
// in with the session cookie, as over the WebSocket. The server's
// cross-origin check refuses browser requests from other sites only: a
// request with neither Origin nor Sec-Fetch-Site passes, so POST and
// DELETE need no extra header.

const (
	pollTimeout   = 6 * time.Minute  // a GET; the server holds one at most --poll-hold (25 s by default, 5 min at most)
	postTimeout   = 30 * time.Second // a POST or DELETE
	pollBodyLimit = 16 << 20         // largest answer accepted
	maxPosts      = 4                // POSTs under way per sender; more in-flight sends wait for one
	maxMarkPosts  = 64               // read positions' POSTs under way over all clients; more wait for one
)

// pollDialer dials every long-poll connection: the clients' own (pollConn)
// and those of the shared pool.
var pollDialer = &net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}

// pollTransport shares one http.Client, so one pool of keep-alive
// connections, among every client for what is not a poll: entering the
// room, POSTs and the DELETE at the end. Each client polls on a
// connection of its own (pollConn).
type pollTransport struct {
	http  *http.Client
	marks chan struct{} // one per read position's POST under way
}

func newPollTransport(cfg Config) *pollTransport {
	// A sender has up to maxPosts POSTs under way; while connecting, up to
	// maxConnecting clients enter their rooms and open them.
	idle := cfg.Rooms*cfg.SendersPerRoom*maxPosts + maxConnecting
	if cfg.MarkRead {
		idle += maxMarkPosts
	}
	return &pollTransport{marks: make(chan struct{}, maxMarkPosts), http: &http.Client{
		Transport: &http.Transport{
			DialContext:         pollDialer.DialContext,
			TLSHandshakeTimeout: 15 * time.Second,
			MaxIdleConns:        idle,
			MaxIdleConnsPerHost: idle,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (*pollTransport) seqs() bool        { return true }
func (t *pollTransport) doneConnecting() { t.http.CloseIdleConnections() }

// pollSession is one long-poll channel. The reader goroutine polls; the
// sender posts, each POST in a goroutine of its own, and hands the events
// of the answers to the reader's function under mu, so that they are
// handled one at a time as the WebSocket's are.
type pollSession struct {
	t      *pollTransport
	target string
	token  string
	roomID int64
	start  int64
	limit  float64
	frame  func(clientID, body string) []byte

	pc     *pollConn       // the GETs', used by one goroutine at a time: connect, then read
	ctx    context.Context // ends with the session
	cancel context.CancelFunc
	posts  chan struct{} // one per POST under way
	wg     sync.WaitGroup

	mu      sync.Mutex // serializes calls of fn; guards what follows
	cursor  string
	fn      func(event)
	last    int64   // the highest seq of a message handed to fn; start before any
	pending []event // answers that arrived before read began
	closed  bool

	// Read positions are posted from fn, under mu: their own lock.
	markMu     sync.Mutex
	markClosed bool
}

func (s *pollSession) base() int64       { return s.start }
func (s *pollSession) sendRate() float64 { return s.limit }

func (t *pollTransport) connect(ctx context.Context, c *client) (session, error) {
	if c.token == "" {
		return nil, errors.New("no session token")
	}
	roomID, err := enterRoom(ctx, t.http, c)
	if err != nil {
		return nil, err
	}
	pc, err := newPollConn(c.target, c.token)
	if err != nil {
		return nil, err
	}
	s := &pollSession{t: t, target: c.target, token: c.token, roomID: roomID, frame: nativeSend(roomID), posts: make(chan struct{}, maxPosts), pc: pc}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.open(ctx); err != nil {
		s.cancel()
		pc.close()
		if s.cursor != "" {
			s.end(ctx)
		}
		return nil, err
	}
	return s, nil
}

// open starts the channel (a poll without cursor, answered with hello) and
// opens the room.
func (s *pollSession) open(ctx context.Context) error {
	frames, err := s.poll(ctx)
	if err != nil {
		return fmt.Errorf("first poll: %w", err)
	}
	helloSeen := false
	for _, line := range frames {
		var f nativeFrame
		if err := json.Unmarshal(line, &f); err != nil {
			return fmt.Errorf("first poll: bad frame %.80q: %w", line, err)
		}
		if f.Type == "hello" {
			helloSeen = true
			s.limit = f.Limits.SendRate
		}
	}
	if !helloSeen {
		return fmt.Errorf("first poll: no hello in %d frames", len(frames))
	}
	open, err := json.Marshal(map[string]any{"type": "open", "room_id": s.roomID, "ref": "bench-open"})
	if err != nil {
		return err
	}
	replies, err := s.post(ctx, open, "")
	if err != nil {
		return fmt.Errorf("open room %d: %w", s.roomID, err)
	}
	for _, line := range replies {
		var f nativeFrame
		if err := json.Unmarshal(line, &f); err != nil {
			return fmt.Errorf("open room %d: bad frame %.80q: %w", s.roomID, line, err)
		}
		switch {
		case f.Type == "opened" && f.Ref == "bench-open":
			s.start = f.Room.LastSeq
			return nil
		case f.Type == "error":
			return fmt.Errorf("open room %d: %s: %s", s.roomID, f.Code, f.Message.Text)
		}
	}
	return fmt.Errorf("open room %d: no opened frame in %d frames", s.roomID, len(replies))
}

// request makes a POST or DELETE to /api/poll with the current cursor and
// returns the answer's body; a status other than 200 or 204 is a
// *statusError.
func (s *pollSession) request(ctx context.Context, method string, body []byte, idempotencyKey string) ([]byte, error) {
	s.mu.Lock()
	u := s.target + "/api/poll"
	if s.cursor != "" {
		u += "?cursor=" + url.QueryEscape(s.cursor)
	}
	s.mu.Unlock()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Cookie", sessionCookie(s.token))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idempotencyKey != "" {
		// A send is idempotent by its client_id; this header lets the
		// HTTP client retry it on a keep-alive connection the server had
		// closed.
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	resp, err := s.t.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, pollBodyLimit+1))
	if err != nil {
		return nil, err
	}
	if len(data) > pollBodyLimit {
		return nil, fmt.Errorf("%s /api/poll: answer larger than %d bytes", method, pollBodyLimit)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return nil, httpError(resp, data)
	}
	return data, nil
}

// poll makes one GET and returns its frames; the cursor moves on.
func (s *pollSession) poll(ctx context.Context) ([]jsontext.Value, error) {
	s.mu.Lock()
	query := ""
	if s.cursor != "" {
		query = "cursor=" + url.QueryEscape(s.cursor)
	}
	s.mu.Unlock()
	resp, data, err := s.pc.get(ctx, "/api/poll", query, pollTimeout)
	if err != nil {
		return nil, fmt.Errorf("poll: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("poll: %w", httpError(resp, data))
	}
	var a pollAnswer
	if err := a.decode(data); err != nil || a.Cursor == "" {
		return nil, fmt.Errorf("poll: unexpected answer %.200q", data)
	}
	s.mu.Lock()
	s.cursor = a.Cursor
	s.mu.Unlock()
	return a.Frames, nil
}

// post sends one frame and returns the reply frames.
func (s *pollSession) post(ctx context.Context, frame []byte, idempotencyKey string) ([]jsontext.Value, error) {
	ctx, cancel := context.WithTimeout(ctx, postTimeout)
	defer cancel()
	data, err := s.request(ctx, http.MethodPost, frame, idempotencyKey)
	if err != nil {
		return nil, err
	}
	var a pollAnswer
	if err := a.decode(data); err != nil {
		return nil, fmt.Errorf("unexpected answer %.200q", data)
	}
	return a.Frames, nil
}

// pollAnswer is the body of an answer to a poll (GET) or a frame (POST,
// without a cursor).
type pollAnswer struct {
	Cursor string           `json:"cursor"`
	Frames []jsontext.Value `json:"frames"`
}

// decode decodes an answer with json/v2 (github.com/go-json-experiment/json,
// which the server uses too). Every delivery to a long-polling client is
// an answer, and encoding/json, which scans it once to check it and again
// to decode it, took a tenth of the load tool's CPU in a run of target 7
// (docs/bench/extra/target7-oxide.txt). json/v2 is stricter too: an answer
// with invalid UTF-8 or a key twice is an error.
func (a *pollAnswer) decode(data []byte) error { return jsonv2.Unmarshal(data, a) }

// end asks the server to end the channel (DELETE /api/poll).
func (s *pollSession) end(ctx context.Context) {
	_, _ = s.request(ctx, http.MethodDelete, nil, "")
}

var (
	syncPrefix    = []byte(`{"type":"sync",`)
	resumedPrefix = []byte(`{"type":"resumed",`)
)

// syncFrame is a "sync" frame: a page of the messages after a seq.
type syncFrame struct {
	Type     string         `json:"type"`
	Code     string         `json:"code"`    // of an error instead
	Message  frameMessage   `json:"message"` // of an error instead
	Messages []frameMessage `json:"messages"`
	HasMore  bool           `json:"has_more"`
}

// decodePoll decodes a frame of a poll answer. Besides the WebSocket's,
// a channel the server rebuilt starts with "resumed" and a "sync" of the
// messages the client missed, which are deliveries too. If that sync is
// one page of more (has_more), decodePoll returns the seq of its last
// message and more: the rest is the client's to fetch.
func decodePoll(line []byte, fn func(event)) (after int64, more bool) {
	switch {
	case bytes.HasPrefix(line, resumedPrefix):
		fn(event{typ: evResumed})
	case bytes.HasPrefix(line, syncPrefix):
		var f syncFrame
		if err := json.Unmarshal(line, &f); err != nil {
			fn(event{typ: evBad, text: err.Error()})
			return 0, false
		}
		for _, m := range f.Messages {
			fn(event{typ: evMessage, seq: m.Seq, isText: m.Kind == "text", body: m.Body})
		}
		if f.HasMore && len(f.Messages) > 0 {
			return f.Messages[len(f.Messages)-1].Seq, true
		}
	default:
		decodeNative(line, fn)
	}
	return 0, false
}

// syncRest fetches the room's messages after seq after, a page at a time
// while the server has more, as a client does after a sync with has_more
// (docs/protocol.md), and hands them to fn as synced: the same messages
// may also come live, which a client ignores.
func (s *pollSession) syncRest(after int64, fn func(event)) error {
	for {
		frame := fmt.Appendf(nil, `{"type":"sync","room_id":%d,"after":%d,"ref":"bench-sync"}`, s.roomID, after)
		replies, err := s.post(s.ctx, frame, "bench-sync") // the same sync again is harmless
		if err != nil {
			return fmt.Errorf("sync after %d: %w", after, err)
		}
		var page *syncFrame
		for _, line := range replies {
			var f syncFrame
			if err := json.Unmarshal(line, &f); err != nil {
				return fmt.Errorf("sync after %d: bad frame %.80q: %w", after, line, err)
			}
			switch f.Type {
			case "sync":
				page = &f
			case "error":
				return fmt.Errorf("sync after %d: %s: %s", after, f.Code, f.Message.Text)
			}
		}
		if page == nil {
			return fmt.Errorf("sync after %d: no sync frame in %d frames", after, len(replies))
		}
		s.mu.Lock()
		for _, m := range page.Messages {
			fn(event{typ: evMessage, seq: m.Seq, isText: m.Kind == "text", body: m.Body, synced: true})
		}
		s.mu.Unlock()
		n := len(page.Messages)
		if !page.HasMore || n == 0 || page.Messages[n-1].Seq <= after {
			return nil
		}
		after = page.Messages[n-1].Seq
	}
}

func (s *pollSession) read(fn func(event)) error {
	defer s.pc.close()
	s.mu.Lock()
	s.last = s.start
	fn = s.tracking(fn)
	s.fn = fn
	for _, ev := range s.pending {
		fn(ev)
	}
	s.pending = nil
	s.mu.Unlock()
	for {
		frames, err := s.poll(s.ctx)
		if err != nil {
			return err
		}
		for len(frames) > 0 {
			// Up to a sync that has more: the rest of it comes before
			// the frames after it.
			var (
				after        int64
				more, reopen bool
			)
			s.mu.Lock()
			for len(frames) > 0 && !more && !reopen {
				reopen = bytes.HasPrefix(frames[0], resumedPrefix) && !s.restored(frames[0])
				after, more = decodePoll(frames[0], fn)
				frames = frames[1:]
			}
			s.mu.Unlock()
			if reopen {
				if after, more, err = s.reopen(fn); err != nil {
					return err
				}
			}
			if more {
				if err := s.syncRest(after, fn); err != nil {
					return err
				}
			}
		}
	}
}

// tracking returns fn noting, as it passes them on, the seqs of the
// messages in s.last; it is called under s.mu, as fn is.
func (s *pollSession) tracking(fn func(event)) func(event) {
	return func(ev event) {
		if ev.typ == evMessage {
			s.last = max(s.last, ev.seq)
		}
		fn(ev)
	}
}

// restored reports whether the "resumed" frame line names the session's
// room among the conversations the server restored; a frame it cannot
// read is taken to.
func (s *pollSession) restored(line []byte) bool {
	var f struct {
		Rooms []int64 `json:"rooms"`
	}
	if err := json.Unmarshal(line, &f); err != nil {
		return true // counted as a bad frame
	}
	return slices.Contains(f.Rooms, s.roomID)
}

// reopen opens the room again, with the messages after the last one the
// client got, after the server rebuilt the channel without it: a client
// does (docs/protocol.md, "Long-polling": "re-open any other"), and would
// lose nothing. The messages come as the client's own sync: they may
// also come live. If the sync is one page of more, reopen returns the seq
// of its last message and more, as decodePoll does.
func (s *pollSession) reopen(fn func(event)) (after int64, more bool, err error) {
	s.mu.Lock()
	last := s.last
	s.mu.Unlock()
	frame := fmt.Appendf(nil, `{"type":"open","room_id":%d,"after":%d,"ref":"bench-reopen"}`, s.roomID, last)
	replies, err := s.post(s.ctx, frame, "bench-reopen") // opening again is harmless
	if err != nil {
		return 0, false, fmt.Errorf("open room %d again: %w", s.roomID, err)
	}
	opened := false
	for _, line := range replies {
		var f syncFrame
		if err := json.Unmarshal(line, &f); err != nil {
			return 0, false, fmt.Errorf("open room %d again: bad frame %.80q: %w", s.roomID, line, err)
		}
		switch f.Type {
		case "opened":
			opened = true
		case "error":
			return 0, false, fmt.Errorf("open room %d again: %s: %s", s.roomID, f.Code, f.Message.Text)
		case "sync":
			s.mu.Lock()
			for _, m := range f.Messages {
				fn(event{typ: evMessage, seq: m.Seq, isText: m.Kind == "text", body: m.Body, synced: true})
			}
			s.mu.Unlock()
			if n := len(f.Messages); f.HasMore && n > 0 {
				after, more = f.Messages[n-1].Seq, true
			}
		}
	}
	if !opened {
		return 0, false, fmt.Errorf("open room %d again: no opened frame in %d frames", s.roomID, len(replies))
	}
	return after, more, nil
}

// deliver hands events of a POST's answer to the reader's function.
func (s *pollSession) deliver(evs []event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fn == nil {
		s.pending = append(s.pending, evs...)
		return
	}
	for _, ev := range evs {
		s.fn(ev)
	}
}

// send posts the message msg makes in a goroutine of its own, once fewer
// than maxPosts are under way: msg is called (and the send stamped) only
// then, as the WebSocket's sender stamps a send that can go at once. The
// answer (ack or error) reaches the reader's function.
func (s *pollSession) send(stop <-chan struct{}, msg func() (clientID, body string)) error {
	select {
	case s.posts <- struct{}{}:
	case <-stop:
		return errStopped
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.posts
		return net.ErrClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	clientID, body := msg()
	frame := s.frame(clientID, body)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.posts }()
		s.deliver(s.sendFrame(frame, clientID))
	}()
	return nil
}

// interrupt does nothing: send waits only for a POST slot, heeding stop,
// and the POST goes on in a goroutine of its own.
func (*pollSession) interrupt() {}

// sendFrame posts a send frame and returns what became of it: an ack or an
// error event, exactly one of them, or none if the session ended before
// the server answered. Such a send is unanswered, as a WebSocket's is at
// the end of a run: the tool gave up on it, the server did not refuse it.
func (s *pollSession) sendFrame(frame []byte, clientID string) []event {
	replies, err := s.post(s.ctx, frame, clientID)
	if err != nil {
		if s.ctx.Err() != nil {
			return nil
		}
		return []event{postError(clientID, err)}
	}
	var evs []event
	answered := false
	for _, line := range replies {
		decodeNative(line, func(ev event) {
			answered = answered || ev.typ == evAck || ev.typ == evError
			evs = append(evs, ev)
		})
	}
	if !answered {
		evs = append(evs, event{typ: evError, ref: clientID, code: "no_reply", text: fmt.Sprintf("%d reply frames, none an ack or error", len(replies))})
	}
	return evs
}

// postError is the error event of a POST that got no frames back.
func postError(ref string, err error) event {
	code := "transport_error"
	if se, ok := errors.AsType[*statusError](err); ok {
		code = se.code
		if code == "" {
			code = "http_" + strconv.Itoa(se.status)
		}
	}
	return event{typ: evError, ref: ref, code: code, text: err.Error()}
}

// markRead posts the read frame in a goroutine of its own, once fewer than
// maxMarkPosts are under way over all clients, as a browser's fetch does
// not wait; a refusal reaches the reader's function.
func (s *pollSession) markRead(seq int64) error {
	s.markMu.Lock()
	if s.markClosed {
		s.markMu.Unlock()
		return net.ErrClosed
	}
	s.wg.Add(1)
	s.markMu.Unlock()
	go func() {
		defer s.wg.Done()
		select {
		case s.t.marks <- struct{}{}:
		case <-s.ctx.Done():
			return
		}
		defer func() { <-s.t.marks }()
		// Moving a read position again changes nothing: the HTTP client
		// may retry it.
		replies, err := s.post(s.ctx, markFrame(s.roomID, seq), markRef)
		if s.ctx.Err() != nil {
			return // the session is closing
		}
		if err != nil {
			s.deliver([]event{postError(markRef, err)})
			return
		}
		var evs []event
		for _, line := range replies {
			decodeNative(line, func(ev event) { evs = append(evs, ev) })
		}
		s.deliver(evs)
	}()
	return nil
}

// close stops polling, waits for the POSTs under way, then ends the
// channel on the server if it can before deadline.
func (s *pollSession) close(deadline time.Time) {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.markMu.Lock()
	s.markClosed = true
	s.markMu.Unlock()
	s.cancel()
	s.wg.Wait()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	s.end(ctx)
}
