package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// frame is one JSON object from the server: a native frame
// (docs/protocol.md, "Server → client") or a Channels-compatible one.
type frame struct {
	Raw string

	Type         string
	Ref          string
	RoomID       int64
	ClientID     string
	Message      *wireMessage // "message" holding an object (message, ack)
	Text         string       // "message" holding a string (error message, compat message)
	Messages     []wireMessage
	HasMore      bool
	Room         *wireRoom
	User         *wireUser
	Online       bool       // presence
	OnlineUsers  []wireUser // opened
	OnlineCount  int        // opened, presence in a room, online_count
	Code         string
	Field        string
	RetryAfterMS int64
	Limits       map[string]float64
	Error        *wireError // compat errors
	State        string     // contact
	Since        time.Time  // contact
	Seq          int64      // read
	Kind         string     // conversation
	Peer         *wireUser  // conversation
	Reason       string     // removed
	UserSeq      int64      // hello, logged user events
	Channel      string     // hello over long-poll
	LastSeen     time.Time  // presence
	UserID       int64      // receipt
	Reads        []wireRead // opened
	Positions    []wireRead // receipts
	Rooms        []int64    // resumed
	RenewAt      time.Time  // hello: session_renew_at
	RenewBy      time.Time  // hello: session_renew_by
	Version      int64      // user: the name's version
}

type wireRead struct {
	UserID int64 `json:"user_id"`
	Seq    int64 `json:"seq"`
}

func (f frame) String() string { return f.Raw }

func parseFrame(line []byte) (frame, error) {
	var w struct {
		Type         string             `json:"type"`
		Ref          string             `json:"ref"`
		RoomID       int64              `json:"room_id"`
		ClientID     string             `json:"client_id"`
		Message      json.RawMessage    `json:"message"`
		Messages     []wireMessage      `json:"messages"`
		HasMore      bool               `json:"has_more"`
		Room         *wireRoom          `json:"room"`
		User         *wireUser          `json:"user"`
		Online       json.RawMessage    `json:"online"`
		Code         string             `json:"code"`
		Field        string             `json:"field"`
		RetryAfterMS int64              `json:"retry_after_ms"`
		Limits       map[string]float64 `json:"limits"`
		Error        *wireError         `json:"error"`
		State        string             `json:"state"`
		Since        time.Time          `json:"since"`
		Seq          int64              `json:"seq"`
		Kind         string             `json:"kind"`
		Peer         *wireUser          `json:"peer"`
		Reason       string             `json:"reason"`
		UserSeq      int64              `json:"user_seq"`
		Channel      string             `json:"channel"`
		LastSeen     time.Time          `json:"last_seen"`
		UserID       int64              `json:"user_id"`
		Reads        []wireRead         `json:"reads"`
		Positions    []wireRead         `json:"positions"`
		Rooms        []int64            `json:"rooms"`
		OnlineCount  int                `json:"online_count"`
		RenewAt      time.Time          `json:"session_renew_at"`
		RenewBy      time.Time          `json:"session_renew_by"`
		Version      int64              `json:"version"`
	}
	if err := decodeStrict(line, &w); err != nil {
		return frame{}, fmt.Errorf("bad frame %q: %v", line, err)
	}
	f := frame{
		Raw: string(line), Type: w.Type, Ref: w.Ref, RoomID: w.RoomID, ClientID: w.ClientID,
		Messages: w.Messages, HasMore: w.HasMore, Room: w.Room, User: w.User, Code: w.Code,
		Field: w.Field, RetryAfterMS: w.RetryAfterMS, Limits: w.Limits, Error: w.Error,
		State: w.State, Since: w.Since, Seq: w.Seq, Kind: w.Kind, Peer: w.Peer, Reason: w.Reason,
		UserSeq: w.UserSeq, Channel: w.Channel, LastSeen: w.LastSeen, UserID: w.UserID, Reads: w.Reads, Rooms: w.Rooms,
		OnlineCount: w.OnlineCount, Positions: w.Positions, RenewAt: w.RenewAt, RenewBy: w.RenewBy,
		Version: w.Version,
	}
	var err error
	switch m := bytes.TrimSpace(w.Message); {
	case len(m) == 0 || string(m) == "null":
	case m[0] == '{':
		err = json.Unmarshal(m, &f.Message)
	default:
		err = json.Unmarshal(m, &f.Text)
	}
	if err != nil {
		return frame{}, fmt.Errorf("bad message in frame %q: %v", line, err)
	}
	switch o := bytes.TrimSpace(w.Online); {
	case len(o) == 0:
	case o[0] == '[':
		err = json.Unmarshal(o, &f.OnlineUsers)
	default:
		err = json.Unmarshal(o, &f.Online)
	}
	if err != nil {
		return frame{}, fmt.Errorf("bad online in frame %q: %v", line, err)
	}
	return f, nil
}

// wsClient is a WebSocket test client. A goroutine reads frames, splits
// them on "\n" and queues the JSON objects; the take methods wait, bounded,
// for a queued frame that matches, leaving the others queued in order.
type wsClient struct {
	name string
	conn *websocket.Conn
	refs atomic.Int64

	mu      sync.Mutex
	queue   []frame
	err     error         // why reading stopped; nil while it goes on
	changed chan struct{} // closed and replaced when queue or err change
	reading bool
	done    chan struct{}  // closed when the reader has stopped
	poll    *pollTransport // long-poll instead of conn (poll_test.go)
	hello   frame          // of a new long-poll channel, which connectPoll takes
}

type dialOptions struct {
	header http.Header // extra request headers, such as Origin
	rcvbuf int         // when positive, the socket's receive buffer
}

// dial opens a WebSocket to path with c's cookies (none when c is nil).
func (ts *testServer) dial(tb testing.TB, c *client, path string, o dialOptions) (*websocket.Conn, *http.Response, error) {
	tb.Helper()
	d := websocket.Dialer{HandshakeTimeout: waitTimeout}
	if c != nil {
		d.Jar = c.Jar
	}
	if ts.TLS != nil {
		d.TLSClientConfig = ts.Client().Transport.(*http.Transport).TLSClientConfig
	}
	if o.rcvbuf > 0 {
		d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(o.rcvbuf)
			}
			return conn, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return d.DialContext(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+path, o.header)
}

// adaAndGrace signs Ada and Grace in, has both enter "general" and
// connects each with the room open.
func (ts *testServer) adaAndGrace(tb testing.TB) (ada, grace *client, room wireRoom, wa, wg *wsClient) {
	tb.Helper()
	ada = ts.signIn(tb, "ada@example.com", "Ada")
	grace = ts.signIn(tb, "grace@example.com", "Grace")
	room = ts.enterRoom(tb, ada, "general")
	ts.enterRoom(tb, grace, "general")
	wa = ts.connect(tb, ada)
	wa.open(tb, room.ID, nil)
	wg = ts.connect(tb, grace)
	wg.open(tb, room.ID, nil)
	return ada, grace, room, wa, wg
}

// connect opens /api/ws as c, starts reading and checks the hello frame.
func (ts *testServer) connect(tb testing.TB, c *client) *wsClient {
	tb.Helper()
	w := ts.connectWith(tb, c, dialOptions{})
	w.startReading()
	h := w.expect(tb, "hello")
	if h.User == nil || h.User.ID != c.ID || h.User.Name != c.Name || h.User.Email != c.Email {
		tb.Fatalf("%s: hello = %s; want user %d %q <%s>", w.name, h, c.ID, c.Name, c.Email)
	}
	return w
}

// connectWith opens /api/ws as c without reading from it yet.
func (ts *testServer) connectWith(tb testing.TB, c *client, o dialOptions) *wsClient {
	tb.Helper()
	conn, resp, err := ts.dial(tb, c, "/api/ws", o)
	if err != nil {
		tb.Fatalf("dial /api/ws as %s: %v (%s)", c.Name, err, statusOf(resp))
	}
	return newWSClient(tb, c.Name, conn)
}

// connectCompat opens the Django Channels endpoint of room and starts
// reading.
func (ts *testServer) connectCompat(tb testing.TB, room string) *wsClient {
	tb.Helper()
	conn, resp, err := ts.dial(tb, nil, "/ws/chat/"+room+"/", dialOptions{})
	if err != nil {
		tb.Fatalf("dial /ws/chat/%s/: %v (%s)", room, err, statusOf(resp))
	}
	w := newWSClient(tb, "compat", conn)
	w.startReading()
	return w
}

func statusOf(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	return resp.Status
}

func newWSClient(tb testing.TB, name string, conn *websocket.Conn) *wsClient {
	w := &wsClient{name: name, conn: conn, changed: make(chan struct{}), done: make(chan struct{})}
	tb.Cleanup(func() {
		w.conn.Close()
		w.mu.Lock()
		reading := w.reading
		w.mu.Unlock()
		if reading {
			<-w.done
		}
	})
	return w
}

// startReading starts the reader goroutine.
func (w *wsClient) startReading() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.reading {
		return
	}
	w.reading = true
	go w.read()
}

func (w *wsClient) read() {
	defer close(w.done)
	for {
		_, data, err := w.conn.ReadMessage()
		var fs []frame
		if err == nil {
			for _, line := range bytes.Split(data, []byte("\n")) {
				f, perr := parseFrame(line)
				if perr != nil {
					err = perr
					break
				}
				fs = append(fs, f)
			}
		}
		w.queueFrames(fs, err)
		if err != nil {
			return
		}
	}
}

// queueFrames adds fs to what w has read and, when err is not nil, records
// it as why reading stopped; it wakes whoever waits for either.
func (w *wsClient) queueFrames(fs []frame, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.queue = append(w.queue, fs...)
	if err != nil {
		w.err = err
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// readNow is take for a client that does not run the reader goroutine:
// it reads frames in this goroutine until one of type typ is queued.
func (w *wsClient) readNow(tb testing.TB, typ string) frame {
	tb.Helper()
	_ = w.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	defer w.conn.SetReadDeadline(time.Time{})
	for {
		w.mu.Lock()
		for i, f := range w.queue {
			if f.Type == typ {
				w.queue = append(w.queue[:i:i], w.queue[i+1:]...)
				w.mu.Unlock()
				return f
			}
		}
		w.mu.Unlock()
		_, data, err := w.conn.ReadMessage()
		if err != nil {
			tb.Fatalf("%s: reading a %s frame: %v", w.name, typ, err)
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			f, err := parseFrame(line)
			if err != nil {
				tb.Fatalf("%s: %v", w.name, err)
			}
			w.mu.Lock()
			w.queue = append(w.queue, f)
			w.mu.Unlock()
		}
	}
}

// send writes v as one JSON text frame.
func (w *wsClient) send(tb testing.TB, v any) {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	if w.poll != nil {
		w.poll.post(tb, w, b)
		return
	}
	w.sendRaw(tb, websocket.TextMessage, b)
}

func (w *wsClient) sendRaw(tb testing.TB, typ int, b []byte) {
	tb.Helper()
	_ = w.conn.SetWriteDeadline(time.Now().Add(waitTimeout))
	if err := w.conn.WriteMessage(typ, b); err != nil {
		tb.Fatalf("%s: write %.80q: %v", w.name, b, err)
	}
}

// take returns the first queued frame that match accepts, waiting for one
// until waitTimeout; it fails the test if none comes or the connection
// ends first.
func (w *wsClient) take(tb testing.TB, what string, match func(frame) bool) frame {
	tb.Helper()
	return w.find(tb, what, match, true)
}

// find is take, which leaves the frame in the queue unless remove.
func (w *wsClient) find(tb testing.TB, what string, match func(frame) bool, remove bool) frame {
	tb.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		w.mu.Lock()
		for i, f := range w.queue {
			if match(f) {
				if remove {
					w.queue = append(w.queue[:i:i], w.queue[i+1:]...)
				}
				w.mu.Unlock()
				return f
			}
		}
		err, changed, pending := w.err, w.changed, w.pendingLocked()
		w.mu.Unlock()
		if err != nil {
			tb.Fatalf("%s: connection ended (%v) while waiting for %s; pending frames:%s", w.name, err, what, pending)
		}
		select {
		case <-changed:
		case <-timer.C:
			tb.Fatalf("%s: no %s within %s; pending frames:%s", w.name, what, waitTimeout, pending)
		}
	}
}

func (w *wsClient) pendingLocked() string {
	var b strings.Builder
	for _, f := range w.queue {
		b.WriteString("\n\t")
		b.WriteString(f.Raw)
	}
	if b.Len() == 0 {
		return " none"
	}
	return b.String()
}

// next returns the next frame, whatever it is.
func (w *wsClient) next(tb testing.TB) frame {
	tb.Helper()
	return w.take(tb, "frame", func(frame) bool { return true })
}

// expect returns the first queued frame of type typ.
func (w *wsClient) expect(tb testing.TB, typ string) frame {
	tb.Helper()
	return w.take(tb, typ+" frame", func(f frame) bool { return f.Type == typ })
}

// expectMessage returns the message event of roomID with seq.
func (w *wsClient) expectMessage(tb testing.TB, roomID, seq int64) wireMessage {
	tb.Helper()
	f := w.take(tb, fmt.Sprintf("message %d in room %d", seq, roomID), func(f frame) bool {
		return f.Type == "message" && f.RoomID == roomID && f.Message != nil && f.Message.Seq == seq
	})
	if f.Message.RoomID != roomID {
		tb.Errorf("%s: message frame %s: message.room_id != room_id", w.name, f)
	}
	return *f.Message
}

// expectPresence returns the presence event of user in roomID.
func (w *wsClient) expectPresence(tb testing.TB, roomID int64, u *client, online bool) {
	tb.Helper()
	f := w.take(tb, fmt.Sprintf("presence of %s (online %v) in room %d", u.Name, online, roomID), func(f frame) bool {
		return f.Type == "presence" && f.RoomID == roomID && f.User != nil && f.User.ID == u.ID && f.Online == online
	})
	if f.User.Name != u.Name {
		tb.Errorf("%s: presence frame %s: want user name %q", w.name, f, u.Name)
	}
}

// expectError returns the error frame with ref.
func (w *wsClient) expectError(tb testing.TB, ref string) frame {
	tb.Helper()
	return w.take(tb, fmt.Sprintf("error frame with ref %q", ref), func(f frame) bool { return f.Type == "error" && f.Ref == ref })
}

// newRef returns a ref unique on this connection.
func (w *wsClient) newRef() string { return w.name + "-" + strconv.FormatInt(w.refs.Add(1), 10) }

// open opens roomID (with after, when not nil) and returns the opened frame.
func (w *wsClient) open(tb testing.TB, roomID int64, after *int64) frame {
	tb.Helper()
	ref := w.newRef()
	req := map[string]any{"type": "open", "room_id": roomID, "ref": ref}
	if after != nil {
		req["after"] = *after
	}
	w.send(tb, req)
	f := w.take(tb, fmt.Sprintf("opened or error with ref %q", ref), func(f frame) bool {
		return (f.Type == "opened" || f.Type == "error") && f.Ref == ref
	})
	if f.Type != "opened" || f.Room == nil || f.Room.ID != roomID {
		tb.Fatalf("%s: open room %d: got %s", w.name, roomID, f)
	}
	return f
}

// sendMessage sends body with clientID and returns its ack's message.
func (w *wsClient) sendMessage(tb testing.TB, roomID int64, clientID, body string) wireMessage {
	tb.Helper()
	w.send(tb, map[string]any{"type": "send", "room_id": roomID, "client_id": clientID, "body": body})
	f := w.take(tb, fmt.Sprintf("ack of %q", clientID), func(f frame) bool {
		return (f.Type == "ack" && f.ClientID == clientID) || (f.Type == "error" && f.Ref == clientID)
	})
	if f.Type != "ack" || f.Message == nil || f.RoomID != roomID || f.Message.ClientID != clientID {
		tb.Fatalf("%s: send %q: got %s; want its ack", w.name, clientID, f)
	}
	return *f.Message
}

// barrier sends a ping and waits for its pong: every frame the server
// queued for this connection before it answered is then queued here.
func (w *wsClient) barrier(tb testing.TB) {
	tb.Helper()
	ref := w.newRef()
	w.send(tb, map[string]any{"type": "ping", "ref": ref})
	w.take(tb, fmt.Sprintf("pong %q", ref), func(f frame) bool { return f.Type == "pong" && f.Ref == ref })
}

// drain removes and returns the queued frames.
func (w *wsClient) drain() []frame {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queue
	w.queue = nil
	return q
}

// expectClose waits for the connection to end and checks its close code;
// it returns the frames received and not taken before the close.
func (w *wsClient) expectClose(tb testing.TB, code int) []frame {
	tb.Helper()
	err := w.waitEnd(tb, fmt.Sprintf("close code %d", code))
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != code {
		tb.Fatalf("%s: connection ended with %v; want close code %d", w.name, err, code)
	}
	return w.drain()
}

// waitEnd waits for the connection to end and returns why it did.
func (w *wsClient) waitEnd(tb testing.TB, want string) error {
	tb.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		w.mu.Lock()
		err, changed := w.err, w.changed
		w.mu.Unlock()
		if err != nil {
			return err
		}
		select {
		case <-changed:
		case <-timer.C:
			w.mu.Lock()
			pending := w.pendingLocked()
			w.mu.Unlock()
			tb.Fatalf("%s: not closed within %s; want %s; pending frames:%s", w.name, waitTimeout, want, pending)
		}
	}
}
