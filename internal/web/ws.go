package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
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

// conn is one WebSocket. One goroutine reads (serve); a writer goroutine
// runs only while the hub client's outbox holds something (flush), so an
// idle connection costs one goroutine, and the handler goroutine of
// net/http, with its buffers, is gone after the upgrade.
type conn struct {
	s      *server
	ws     *websocket.Conn
	client *hub.Client // set before serve; the writer gets it as an argument
	format int
	ctx    context.Context

	wmu     sync.Mutex  // one writer at a time
	buf     []*hub.Item // guarded by wmu
	goodbye sync.Once
	ping    atomic.Pointer[time.Timer]
	stopped atomic.Bool
	removed func(convID int64) // called, in a goroutine, when a removed frame is written
	// admit, if set, decides which logged user events (Event.UserSeq > 0)
	// to write for one: none if written already, missed ones first.
	admit func(ctx context.Context, ev chat.Event) []chat.Event
}

// wake is the hub's signal that the client needs its writer.
func (c *conn) wake(cl *hub.Client) { go c.flush(cl) }

// flush writes what the outbox holds, coalesced, until it is empty; if the
// hub closed the client it says goodbye instead.
func (c *conn) flush(cl *hub.Client) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for {
		select {
		case <-cl.Done():
			c.sayGoodbye(cl.Reason())
			return
		default:
		}
		items := cl.Next(c.buf[:0])
		if items == nil {
			if cap(c.buf) > 64 {
				c.buf = nil
			}
			return
		}
		err := c.write(cl, items)
		clear(items)
		c.buf = items[:0]
		if err != nil {
			_ = c.ws.Close()
			return
		}
	}
}

// sayGoodbye sends the close frame for reason r and closes the socket
// once the peer has answered (the reader sees that) or closeGrace passed.
func (c *conn) sayGoodbye(r hub.CloseReason) {
	c.goodbye.Do(func() {
		code, text := closeFrame(r)
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(c.s.cfg.WriteWait))
		time.AfterFunc(closeGrace, func() { _ = c.ws.Close() })
	})
}

// schedulePing sends a ping after PingInterval, then again, until stopped.
func (c *conn) schedulePing() {
	c.ping.Store(time.AfterFunc(c.s.cfg.PingInterval, func() {
		if c.stopped.Load() {
			return
		}
		if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.s.cfg.WriteWait)); err != nil {
			_ = c.ws.Close()
			return
		}
		c.schedulePing()
	}))
}

// serve reads c until either side ends it: handle is called for each frame
// read; cleanup runs before the client leaves the hub.
func (c *conn) serve(handle func([]byte), cleanup func()) {
	c.ws.SetReadLimit(c.s.cfg.MaxFrameBytes)
	_ = c.ws.SetReadDeadline(time.Now().Add(c.s.cfg.PongWait))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(c.s.cfg.PongWait))
	})
	c.schedulePing()
	for {
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			break
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(c.s.cfg.PongWait))
		if typ != websocket.TextMessage {
			c.pushError("", 0, chat.Invalid(chat.CodeBadJSON, "", "frames must be text frames holding JSON"))
			continue
		}
		handle(data)
	}
	c.stopped.Store(true)
	if t := c.ping.Load(); t != nil {
		t.Stop()
	}
	_ = c.ws.Close()
	cleanup()
	c.s.hub.Unregister(c.client)
}

var newline = []byte{'\n'}

func (c *conn) encode(cl *hub.Client, it *hub.Item) []byte {
	if ev := it.Event; (ev.Type == chat.EventPresence || ev.Type == chat.EventTyping) && ev.User != nil && ev.User.ID == cl.UserID {
		return nil // a user's own presence or typing: of no news to them
	}
	if c.format == formatCompat {
		return it.Encoded(formatCompat, encodeCompat)
	}
	return it.Encoded(formatNative, encodeNative)
}

// write sends items: in the compat format one frame each, in the native
// format as few frames as possible of newline-separated JSON objects.
func (c *conn) write(cl *hub.Client, items []*hub.Item) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteWait))
	if c.format == formatCompat {
		for _, it := range items {
			if b := c.encode(cl, it); b != nil {
				if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
					return err
				}
			}
		}
		return nil
	}
	var w io.WriteCloser
	n := 0
	for _, it := range items {
		if it.Event.Type == chat.EventRemoved && c.removed != nil {
			go c.removed(it.Event.ConvID)
		}
		b := c.encode(cl, it)
		if it.Event.UserSeq > 0 && c.admit != nil {
			evs := c.admit(c.ctx, it.Event)
			if len(evs) == 0 {
				continue
			}
			if len(evs) > 1 { // a gap filled from the store: those first
				var all []byte
				for _, ev := range evs[:len(evs)-1] {
					if eb := encodeNative(ev); eb != nil {
						all = append(append(all, eb...), '\n')
					}
				}
				b = bytes.TrimSuffix(append(all, b...), newline)
			}
		}
		if len(b) == 0 {
			continue
		}
		var err error
		if w != nil && n+len(b) > maxCoalesce {
			if err = w.Close(); err != nil {
				return err
			}
			w, n = nil, 0
		}
		if w == nil {
			if w, err = c.ws.NextWriter(websocket.TextMessage); err != nil {
				return err
			}
		} else if _, err = w.Write(newline); err != nil {
			return err
		}
		n += len(b) + 1
		if _, err = w.Write(b); err != nil {
			return err
		}
	}
	if w == nil {
		return nil
	}
	return w.Close()
}

// push queues a reply frame for this connection only.
func (c *conn) push(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		c.s.log.Error("encode frame", "err", err)
		return
	}
	c.client.Push(&hub.Item{Raw: b})
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

func (c *conn) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, opTimeout)
}

func rateLimited(lim *rate.Limiter) error {
	e := chat.Errorf(chat.ErrRateLimited, chat.CodeRateLimited, "too many requests; slow down")
	e.RetryAfter = time.Duration(float64(time.Second) / float64(lim.Limit()))
	return e
}

// Frames of the native protocol (docs/protocol.md).

type userRef struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

func userRefs(us []chat.User) []userRef {
	out := make([]userRef, len(us))
	for i, u := range us {
		out[i] = userRef{ID: u.ID, Name: u.Name}
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
}

type helloFrame struct {
	Type    string `json:"type"`
	User    me     `json:"user"`
	Limits  limits `json:"limits"`
	UserSeq int64  `json:"user_seq"` // the newest logged event: pass it as events_after on reconnect
	Channel string `json:"channel,omitempty"`
}

type limits struct {
	MaxMessageLen int     `json:"max_message_len"`
	MaxFrameBytes int64   `json:"max_frame_bytes"`
	SendRate      float64 `json:"send_rate"`
	SendBurst     int     `json:"send_burst"`
}

type messageFrame struct {
	Type    string        `json:"type"`
	RoomID  int64         `json:"room_id"`
	Message *chat.Message `json:"message"`
}

// presenceFrame is a user's presence in a conversation (RoomID set) or,
// without RoomID, a friend's presence anywhere.
type presenceFrame struct {
	Type     string    `json:"type"`
	RoomID   int64     `json:"room_id,omitempty"`
	User     userRef   `json:"user"`
	Online   bool      `json:"online"`
	LastSeen time.Time `json:"last_seen,omitzero"`
}

// receiptFrame: another member's read position in a conversation moved.
type receiptFrame struct {
	Type   string `json:"type"`
	RoomID int64  `json:"room_id"`
	UserID int64  `json:"user_id"`
	Seq    int64  `json:"seq"`
}

type openedFrame struct {
	Type   string              `json:"type"`
	Ref    string              `json:"ref,omitempty"`
	Room   any                 `json:"room"` // chat.Room, or conversationJSON for other kinds
	Online []userRef           `json:"online"`
	Reads  []chat.ReadPosition `json:"reads,omitempty"` // direct and group: the other members' read positions
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
		v = messageFrame{Type: "message", RoomID: ev.ConvID, Message: ev.Message}
	case chat.EventTyping:
		if ev.User == nil {
			return nil
		}
		v = typingFrame{Type: "typing", RoomID: ev.ConvID, User: userRef{ID: ev.User.ID, Name: ev.User.Name}}
	case chat.EventPresence:
		if ev.User == nil {
			return nil
		}
		v = presenceFrame{Type: "presence", RoomID: ev.ConvID, User: userRef{ID: ev.User.ID, Name: ev.User.Name}, Online: ev.Online, LastSeen: ev.LastSeen}
	case chat.EventReceipt:
		v = receiptFrame{Type: "receipt", RoomID: ev.ConvID, UserID: ev.UserID, Seq: ev.Seq}
	case chat.EventContact:
		if ev.Contact == nil {
			return nil
		}
		v = contactFrame{Type: "contact", contactJSON: contactOf(*ev.Contact), UserSeq: ev.UserSeq}
	case chat.EventConversation:
		if ev.Message == nil {
			return nil
		}
		f := conversationFrame{Type: "conversation", RoomID: ev.ConvID, Kind: ev.ConvKind, Message: ev.Message, UserSeq: ev.UserSeq}
		if ev.User != nil {
			f.Peer = &userRef{ID: ev.User.ID, Name: ev.User.Name}
		}
		v = f
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
		if err != nil {
			s.writeError(w, err)
			return
		}
		// The upgrader writes its own response: pass on the cookie that
		// authed set when it renewed the session.
		ws, err := s.upgrader.Upgrade(w, r, http.Header{"Set-Cookie": w.Header().Values("Set-Cookie")})
		if err != nil {
			return // the upgrader has answered
		}
		n := &nativeConn{conn: conn{s: s, ws: ws, format: formatNative, ctx: context.Background()}, session: s.newSession(a.User)}
		n.conn.removed = n.session.dropped
		n.conn.admit = n.session.admitUser
		ctx, cancel := opContext()
		defer cancel()
		if err := n.session.start(ctx, a.Session.ID, n.wake, after); err != nil {
			if !errors.Is(err, hub.ErrClosed) {
				s.log.Warn("start connection", "user", a.User.ID, "err", err)
			}
			refuse(ws)
			return
		}
		n.conn.client = n.session.client
		n.push(s.helloOf(n.session))
		go n.serve(func(data []byte) { n.session.handle(data, n.push) }, n.session.end) // and let net/http's goroutine and buffers go
	})
}

// helloFrame greets a signed-in client.
func (s *server) helloOf(n *session) helloFrame {
	return helloFrame{Type: "hello", User: meOf(n.user), UserSeq: n.users.last(), Limits: limits{
		MaxMessageLen: s.svc.Config().MaxMessageLen, MaxFrameBytes: s.cfg.MaxFrameBytes,
		SendRate: s.cfg.SendRate, SendBurst: s.cfg.SendBurst,
	}}
}

// refuse closes a just-upgraded socket because the hub is shutting down.
func refuse(ws *websocket.Conn) {
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseServiceRestart, "server restarting: reconnect"), time.Now().Add(time.Second))
	_ = ws.Close()
}

// nativeConn is a signed-in WebSocket: a session over a conn.
type nativeConn struct {
	conn
	session *session
}
