package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// The server's session cookies (web.CookieName, web.SecureCookieName): it
// reads only the second over TLS or behind a proxy (--behind-proxy), only
// the first otherwise. The tool cannot tell which a target does, and sends
// both.
const (
	cookieName       = "parley_session"
	secureCookieName = "__Host-" + cookieName
)

// sessionCookie is the Cookie header that carries token to a server
// whichever of its session cookies it reads.
func sessionCookie(token string) string {
	return (&http.Cookie{Name: secureCookieName, Value: token}).String() + "; " +
		(&http.Cookie{Name: cookieName, Value: token}).String()
}

const (
	readLimit = 1 << 20 // largest frame accepted from the server
	writeWait = 10 * time.Second
)

// newDialer returns the WebSocket dialer every connection shares: small
// buffers, and write buffers only while writing, so that tens of thousands
// of idle connections fit in one process.
func newDialer() *websocket.Dialer {
	return &websocket.Dialer{
		HandshakeTimeout: 15 * time.Second,
		ReadBufferSize:   1024,
		WriteBufferSize:  1024,
		WriteBufferPool:  &sync.Pool{},
	}
}

// wsURL turns a base URL (http://host:port) and a path into a WebSocket URL.
func wsURL(base, path string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("target %q: scheme must be http or https", base)
	}
	return u.JoinPath(path).String(), nil
}

// wsSession is one WebSocket: the reader goroutine calls read, the
// client's sender (if any) calls send.
type wsSession struct {
	ws      *websocket.Conn
	wmu     sync.Mutex // one writer at a time: the sender, or a read position
	roomID  int64      // native
	pending []event    // events that arrived while connecting
	decode  func(line []byte, fn func(event))
	frame   func(clientID, body string) []byte
	start   int64
	limit   float64
}

func (s *wsSession) base() int64       { return s.start }
func (s *wsSession) sendRate() float64 { return s.limit }

func (s *wsSession) send(stop <-chan struct{}, msg func() (clientID, body string)) error {
	err := s.write(s.frame(msg()))
	if err != nil {
		select {
		case <-stop:
			// Cut short by interrupt: a write that fails has not
			// written the whole frame, and the connection writes none
			// after it, so the server cannot have the message.
			return errStopped
		default:
		}
	}
	return err
}

// interrupt sets a write deadline in the past on the connection, which
// ends the write under way or the next one to begin. The write sets its
// own deadline first: one that begins just after this one has its
// deadline anew, and the run calls interrupt again while the sender has
// not returned. A write that fails leaves the connection unable to
// write, which only a sender stopped in a write blocked pays for.
func (s *wsSession) interrupt() {
	_ = s.ws.NetConn().SetWriteDeadline(time.Unix(1, 0))
}

func (s *wsSession) markRead(seq int64) error {
	return s.write(markFrame(s.roomID, seq))
}

func (s *wsSession) write(frame []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.ws.SetWriteDeadline(time.Now().Add(writeWait))
	return s.ws.WriteMessage(websocket.TextMessage, frame)
}

// keep decodes a line that came while connecting, for read to hand on.
func (s *wsSession) keep(line []byte) {
	s.decode(line, func(ev event) { s.pending = append(s.pending, ev) })
}

func (s *wsSession) read(fn func(event)) error {
	for _, ev := range s.pending {
		fn(ev)
	}
	s.pending = nil
	for {
		if err := readFrame(s.ws, func(line []byte) error { s.decode(line, fn); return nil }); err != nil {
			return err
		}
	}
}

func (s *wsSession) close(deadline time.Time) {
	_ = s.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), deadline)
	_ = s.ws.Close()
}

var (
	newline = []byte{'\n'}
	bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

// readFrame reads one frame and calls fn for each line of it: the server
// may coalesce several JSON objects into one frame. The buffer is pooled,
// so that an idle connection holds none.
func readFrame(ws *websocket.Conn, fn func(line []byte) error) error {
	_, r, err := ws.NextReader()
	if err != nil {
		return err
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		return err
	}
	for data := buf.Bytes(); len(data) > 0; {
		var line []byte
		line, data, _ = bytes.Cut(data, newline)
		if len(line) == 0 {
			continue
		}
		if err := fn(line); err != nil {
			return err
		}
	}
	return nil
}

// dial opens a WebSocket to u, closing it if ctx ends first.
func dial(ctx context.Context, d *websocket.Dialer, u string, h http.Header) (*websocket.Conn, error) {
	ws, resp, err := d.DialContext(ctx, u, h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %w (HTTP %s)", u, err, resp.Status)
		}
		return nil, fmt.Errorf("dial %s: %w", u, err)
	}
	ws.SetReadLimit(readLimit)
	return ws, nil
}

// handshake reads frames until done reports true for a line, with ctx's
// deadline. The lines after that one in its frame go to rest: the server
// coalesces what it queued after the answer awaited (a message of the
// room just opened, say) into the answer's frame, and the reader would
// otherwise never see them.
func handshake(ctx context.Context, ws *websocket.Conn, done func(line []byte) (bool, error), rest func(line []byte)) error {
	stop := context.AfterFunc(ctx, func() { _ = ws.NetConn().Close() })
	defer stop()
	finished := false
	for {
		err := readFrame(ws, func(line []byte) error {
			if finished {
				rest(line)
				return nil
			}
			ok, err := done(line)
			finished = ok
			return err
		})
		if err == nil && finished {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
	}
}

// Native protocol: /api/ws with a session cookie.

type nativeTransport struct {
	dialer *websocket.Dialer
	http   *http.Client
}

// nativeFrame holds the fields of server frames the bench reads.
type nativeFrame struct {
	Type     string       `json:"type"`
	Ref      string       `json:"ref"`
	ClientID string       `json:"client_id"`
	Code     string       `json:"code"`
	Message  frameMessage `json:"message"`
	Room     struct {
		ID      int64 `json:"id"`
		LastSeq int64 `json:"last_seq"`
	} `json:"room"`
	Limits struct {
		SendRate float64 `json:"send_rate"`
	} `json:"limits"`
}

// frameMessage is a frame's "message": an object in events and acks, a
// string in errors.
type frameMessage struct {
	Seq  int64  `json:"seq"`
	Kind string `json:"kind"`
	Body string `json:"body"`
	Text string `json:"-"` // of an error
}

func (m *frameMessage) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &m.Text)
	}
	type plain frameMessage
	return json.Unmarshal(b, (*plain)(m))
}

// Frames as the server writes them, recognized without reflection: at
// hundreds of thousands of deliveries a second encoding/json would make the
// bench slower than the server it measures. Anything else, or any surprise,
// takes the general path.
var (
	messagePrefix  = []byte(`{"type":"message",`)
	ackPrefix      = []byte(`{"type":"ack",`)
	presencePrefix = []byte(`{"type":"presence",`)
	readPrefix     = []byte(`{"type":"read",`)
	receiptPrefix  = []byte(`{"type":"receipt`) // and "receipts"
	messageKey     = []byte(`"message":{`)
	clientIDKey    = []byte(`"client_id":"`)
	seqKey         = []byte(`"seq":`)
	kindKey        = []byte(`"kind":"`)
	bodyKey        = []byte(`"body":"`)
)

// field finds key in b and returns the bytes after it up to end; ok is
// false if key is missing or the value holds a backslash. A key cannot
// occur inside a JSON string: its quotes would be escaped.
func field(b, key []byte, end byte) (v []byte, ok bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return nil, false
	}
	b = b[i+len(key):]
	j := bytes.IndexByte(b, end)
	if j < 0 || bytes.IndexByte(b[:j], '\\') >= 0 {
		return nil, false
	}
	return b[:j], true
}

// fastNative decodes message, presence, read and receipt events and acks;
// ok is false for any other frame.
func fastNative(line []byte) (ev event, ok bool) {
	if bytes.HasPrefix(line, presencePrefix) || bytes.HasPrefix(line, readPrefix) {
		return event{typ: evOther}, true // counted only
	}
	if bytes.HasPrefix(line, receiptPrefix) {
		return event{typ: evReceipt}, true // counted only
	}
	ack := bytes.HasPrefix(line, ackPrefix)
	// Two objects, the frame and its message, so each key of the
	// message's object occurs once after messageKey.
	if !ack && !bytes.HasPrefix(line, messagePrefix) || bytes.Count(line, []byte{'{'}) != 2 {
		return event{}, false
	}
	i := bytes.Index(line, messageKey)
	if i < 0 {
		return event{}, false
	}
	m := line[i+len(messageKey):]
	seq, ok := field(m, seqKey, ',')
	if !ok {
		return event{}, false
	}
	n, err := strconv.ParseInt(string(seq), 10, 64)
	if err != nil {
		return event{}, false
	}
	if ack {
		// The frame's own client_id comes before its message.
		ref, ok := field(line[:i], clientIDKey, '"')
		if !ok {
			return event{}, false
		}
		return event{typ: evAck, seq: n, ref: string(ref)}, true
	}
	kind, ok1 := field(m, kindKey, '"')
	body, ok2 := field(m, bodyKey, '"')
	if !ok1 || !ok2 {
		return event{}, false
	}
	return event{typ: evMessage, seq: n, isText: string(kind) == "text", body: string(body)}, true
}

func decodeNative(line []byte, fn func(event)) {
	if ev, ok := fastNative(line); ok {
		fn(ev)
		return
	}
	var f nativeFrame
	if err := json.Unmarshal(line, &f); err != nil {
		fn(event{typ: evBad, text: err.Error()})
		return
	}
	switch f.Type {
	case "message":
		fn(event{typ: evMessage, seq: f.Message.Seq, isText: f.Message.Kind == "text", body: f.Message.Body})
	case "ack":
		fn(event{typ: evAck, seq: f.Message.Seq, ref: f.ClientID})
	case "error":
		fn(event{typ: evError, ref: f.Ref, code: f.Code, text: f.Message.Text})
	default:
		fn(event{typ: evOther})
	}
}

func nativeSend(roomID int64) func(clientID, body string) []byte {
	return func(clientID, body string) []byte {
		b := make([]byte, 0, 96+len(clientID)+len(body))
		b = append(b, `{"type":"send","room_id":`...)
		b = strconv.AppendInt(b, roomID, 10)
		b = append(b, `,"client_id":`...)
		b = strconv.AppendQuote(b, clientID)
		b = append(b, `,"body":`...)
		b = strconv.AppendQuote(b, body)
		return append(b, '}')
	}
}

func (t *nativeTransport) connect(ctx context.Context, c *client) (session, error) {
	if c.token == "" {
		return nil, errors.New("no session token")
	}
	roomID, err := t.enter(ctx, c)
	if err != nil {
		return nil, err
	}
	u, err := wsURL(c.target, "/api/ws")
	if err != nil {
		return nil, err
	}
	ws, err := dial(ctx, t.dialer, u, http.Header{"Cookie": {sessionCookie(c.token)}})
	if err != nil {
		return nil, err
	}
	s := &wsSession{ws: ws, roomID: roomID, decode: decodeNative, frame: nativeSend(roomID)}
	open, err := json.Marshal(map[string]any{"type": "open", "room_id": roomID, "ref": "bench-open"})
	if err != nil {
		ws.Close()
		return nil, err
	}
	helloSeen := false
	err = handshake(ctx, ws, func(line []byte) (bool, error) {
		var f nativeFrame
		if err := json.Unmarshal(line, &f); err != nil {
			return false, fmt.Errorf("bad frame %.80q: %w", line, err)
		}
		switch {
		case f.Type == "hello" && !helloSeen:
			helloSeen = true
			s.limit = f.Limits.SendRate
			_ = ws.SetWriteDeadline(time.Now().Add(writeWait))
			return false, ws.WriteMessage(websocket.TextMessage, open)
		case f.Type == "opened" && f.Ref == "bench-open":
			s.start = f.Room.LastSeq
			return true, nil
		case f.Type == "error" && f.Ref == "bench-open":
			return false, fmt.Errorf("open room %d: %s: %s", roomID, f.Code, f.Message.Text)
		case f.Type == "message":
			// Subscribed just before "opened" was queued.
			s.keep(line)
		}
		return false, nil
	}, s.keep)
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("open room: %w", err)
	}
	return s, nil
}

// enter makes c's user a member of c's room (POST /api/rooms) and returns
// the room's ID.
func (t *nativeTransport) enter(ctx context.Context, c *client) (int64, error) {
	return enterRoom(ctx, t.http, c)
}

// enterRoom makes c's user a member of c's room (POST /api/rooms) and
// returns the room's ID. A group of the run has its members already: its
// ID is returned as it is.
func enterRoom(ctx context.Context, hc *http.Client, c *client) (int64, error) {
	if id := c.room.groupID; id != 0 {
		return id, nil
	}
	var r struct {
		Room struct {
			ID int64 `json:"id"`
		} `json:"room"`
	}
	if err := apiCall(ctx, hc, http.MethodPost, c.target+"/api/rooms", c.token, map[string]string{"name": c.room.name}, &r, http.StatusOK); err != nil {
		return 0, fmt.Errorf("enter room: %w", err)
	}
	if r.Room.ID <= 0 {
		return 0, errors.New("enter room: the answer has no room ID")
	}
	return r.Room.ID, nil
}

// apiCall makes one request of the REST API with the session token: in
// is sent as JSON unless nil; an answer other than status want is a
// *statusError; the JSON answer is decoded into out unless nil.
//
// A 429 changed nothing, and the server limits some of the calls the
// run's set-up makes by the hundred (each user's group changes,
// docs/protocol.md): apiCall waits as its Retry-After says (a second if
// it says nothing) and makes the call again, up to apiTries times and
// apiRetryWait of waiting in all. Past either bound, or if the server asks
// for a longer wait than is left, the call fails with the 429 and why it
// was not made again.
func apiCall(ctx context.Context, hc *http.Client, method, url, token string, in, out any, want int) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = b
	}
	var waited time.Duration
	for try := 1; ; try++ {
		resp, data, err := apiRequest(ctx, hc, method, url, token, body)
		if err != nil {
			return err
		}
		if resp.StatusCode == want {
			if out != nil {
				if err := json.Unmarshal(data, out); err != nil {
					return fmt.Errorf("unexpected answer %.200q: %w", data, err)
				}
			}
			return nil
		}
		se := httpError(resp, data)
		if resp.StatusCode != http.StatusTooManyRequests {
			return se
		}
		wait := retryAfter(resp.Header.Get("Retry-After"), time.Now())
		switch {
		case try >= apiTries:
			return fmt.Errorf("%w (refused %d times, after %s of waiting)", se, try, waited.Round(time.Millisecond))
		case waited+wait > apiRetryWait:
			return fmt.Errorf("%w (the server asks to wait %s, and the tool waits %s at most for one call; %s so far)", se, wait, apiRetryWait, waited.Round(time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (while waiting to try again: %w)", se, context.Cause(ctx))
		case <-t.C:
		}
		waited += wait
	}
}

// The bounds of apiCall's tries after a 429.
const (
	apiTries     = 10
	apiRetryWait = time.Minute
)

// apiRequest makes one request of apiCall and reads its answer.
func apiRequest(ctx context.Context, hc *http.Client, method, url, token string, body []byte) (*http.Response, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Cookie", sessionCookie(token))
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, nil, err
	}
	return resp, data, nil
}

// retryAfter is the wait a Retry-After header asks for at now: a number
// of seconds or an HTTP date; a second if it is empty or neither.
func retryAfter(h string, now time.Time) time.Duration {
	if n, err := strconv.ParseInt(h, 10, 64); err == nil && n >= 0 {
		return time.Duration(min(n, int64(365*24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(0, t.Sub(now))
	}
	return time.Second
}

// statusError is an HTTP answer other than the one expected.
type statusError struct {
	status  int
	code    string // the API's error code, if the body had one
	message string
}

func (e *statusError) Error() string {
	if e.code != "" {
		return fmt.Sprintf("HTTP %d %s: %s", e.status, e.code, e.message)
	}
	return fmt.Sprintf("HTTP %d %s", e.status, http.StatusText(e.status))
}

// httpError describes an unexpected answer of the API from its status and
// error body ({"error": {"code": …, "message": …}}).
func httpError(resp *http.Response, data []byte) *statusError {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(data, &e)
	return &statusError{status: resp.StatusCode, code: e.Error.Code, message: e.Error.Message}
}

// Django Channels compatibility: /ws/chat/ROOM/, anonymous, {"message": "..."}.

type compatTransport struct {
	dialer *websocket.Dialer
}

type compatFrame struct {
	Message *string `json:"message"`
	Error   *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

var compatPrefix = []byte(`{"message":"`)

func decodeCompat(line []byte, fn func(event)) {
	if body, ok := bytes.CutPrefix(line, compatPrefix); ok {
		if body, ok := bytes.CutSuffix(body, []byte(`"}`)); ok && bytes.IndexAny(body, `\"`) < 0 {
			fn(event{typ: evMessage, isText: true, body: string(body)})
			return
		}
	}
	var f compatFrame
	if err := json.Unmarshal(line, &f); err != nil {
		fn(event{typ: evBad, text: err.Error()})
		return
	}
	switch {
	case f.Error != nil:
		fn(event{typ: evError, code: f.Error.Code, text: f.Error.Message})
	case f.Message != nil:
		fn(event{typ: evMessage, isText: true, body: *f.Message})
	}
}

func compatSend(_, body string) []byte {
	b := make([]byte, 0, 16+len(body))
	b = append(b, `{"message":`...)
	b = strconv.AppendQuote(b, body)
	return append(b, '}')
}

func (t *compatTransport) connect(ctx context.Context, c *client) (session, error) {
	u, err := wsURL(c.target, "/ws/chat/"+c.room.name+"/")
	if err != nil {
		return nil, err
	}
	ws, err := dial(ctx, t.dialer, u, nil)
	if err != nil {
		return nil, err
	}
	s := &wsSession{ws: ws, decode: decodeCompat, frame: compatSend}
	// The server subscribes the connection to the room after the upgrade,
	// so the dial returning does not mean messages will arrive. An empty
	// object draws an error reply, queued only once the connection is
	// subscribed: a barrier that costs nothing (it is not a send).
	_ = ws.SetWriteDeadline(time.Now().Add(writeWait))
	if err := ws.WriteMessage(websocket.TextMessage, []byte("{}")); err != nil {
		ws.Close()
		return nil, err
	}
	err = handshake(ctx, ws, func(line []byte) (bool, error) {
		var f compatFrame
		if err := json.Unmarshal(line, &f); err != nil {
			return false, fmt.Errorf("bad frame %.80q: %w", line, err)
		}
		if f.Error != nil {
			return true, nil
		}
		s.keep(line)
		return false, nil
	}, s.keep)
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("join room: %w", err)
	}
	return s, nil
}
