package web

import (
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
		if b == nil {
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
	Type   string `json:"type"`
	User   me     `json:"user"`
	Limits limits `json:"limits"`
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

type presenceFrame struct {
	Type   string  `json:"type"`
	RoomID int64   `json:"room_id"`
	User   userRef `json:"user"`
	Online bool    `json:"online"`
}

type openedFrame struct {
	Type   string    `json:"type"`
	Ref    string    `json:"ref,omitempty"`
	Room   any       `json:"room"` // chat.Room, or conversationJSON for other kinds
	Online []userRef `json:"online"`
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
		v = presenceFrame{Type: "presence", RoomID: ev.ConvID, User: userRef{ID: ev.User.ID, Name: ev.User.Name}, Online: ev.Online}
	case chat.EventContact:
		if ev.Contact == nil {
			return nil
		}
		v = contactFrame{Type: "contact", contactJSON: contactOf(*ev.Contact)}
	case chat.EventConversation:
		if ev.Message == nil {
			return nil
		}
		f := conversationFrame{Type: "conversation", RoomID: ev.ConvID, Kind: ev.ConvKind, Message: ev.Message}
		if ev.User != nil {
			f.Peer = &userRef{ID: ev.User.ID, Name: ev.User.Name}
		}
		v = f
	case chat.EventRead:
		v = readFrame{Type: "read", RoomID: ev.ConvID, Seq: ev.Seq}
	case chat.EventRemoved:
		v = removedFrame{Type: "removed", RoomID: ev.ConvID, Reason: ev.Reason}
	default:
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

// handleWS serves the native protocol on /api/ws.
func (s *server) handleWS() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := authFrom(r.Context())
		// The upgrader writes its own response: pass on the cookie that
		// authed set when it renewed the session.
		ws, err := s.upgrader.Upgrade(w, r, http.Header{"Set-Cookie": w.Header().Values("Set-Cookie")})
		if err != nil {
			return // the upgrader has answered
		}
		n := &nativeConn{
			conn:    conn{s: s, ws: ws, format: formatNative, ctx: context.Background()},
			user:    a.User,
			rooms:   make(map[int64]bool),
			sendLim: rate.NewLimiter(rate.Limit(s.cfg.SendRate), s.cfg.SendBurst),
			reqLim:  rate.NewLimiter(rate.Limit(5*s.cfg.SendRate), 5*s.cfg.SendBurst),
			typed:   make(map[int64]time.Time),
		}
		n.conn.removed = n.dropped
		if n.client, err = s.hub.Register(a.User.ID, a.Session.ID, s.cfg.Outbox, n.wake); err != nil {
			refuse(ws)
			return
		}
		n.push(helloFrame{Type: "hello", User: meOf(a.User), Limits: limits{
			MaxMessageLen: s.svc.Config().MaxMessageLen, MaxFrameBytes: s.cfg.MaxFrameBytes,
			SendRate: s.cfg.SendRate, SendBurst: s.cfg.SendBurst,
		}})
		go n.serve(n.handle, n.cleanup) // and let net/http's goroutine and buffers go
	})
}

// refuse closes a just-upgraded socket because the hub is shutting down.
func refuse(ws *websocket.Conn) {
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseServiceRestart, "server restarting: reconnect"), time.Now().Add(time.Second))
	_ = ws.Close()
}

// nativeConn is a signed-in connection; its fields belong to the reader,
// except rooms, which dropped changes too.
type nativeConn struct {
	conn
	user    chat.User
	mu      sync.Mutex
	rooms   map[int64]bool // rooms this connection has open; guarded by mu
	sendLim *rate.Limiter
	reqLim  *rate.Limiter
	typed   map[int64]time.Time // last typing forwarded, per conversation
}

func (n *nativeConn) handle(data []byte) {
	var f inFrame
	if err := json.Unmarshal(data, &f); err != nil {
		n.pushError("", 0, chat.Errorf(chat.ErrInvalid, chat.CodeBadJSON, "frame is not a JSON object of the expected shape: %v", err))
		return
	}
	if len(f.Ref) > maxRefLen {
		n.pushError("", f.RoomID, chat.Invalid(chat.CodeTooLong, "ref", "ref is longer than %d bytes", maxRefLen))
		return
	}
	ref := f.Ref
	if f.Type == "send" {
		if ref == "" {
			ref = f.ClientID
		}
		if !n.sendLim.Allow() {
			n.pushError(ref, f.RoomID, rateLimited(n.sendLim))
			return
		}
	} else if !n.reqLim.Allow() {
		n.pushError(ref, f.RoomID, rateLimited(n.reqLim))
		return
	}
	var err error
	switch f.Type {
	case "":
		err = chat.Invalid(chat.CodeMissingField, "type", "type is required")
	case "ping":
		n.push(roomFrame{Type: "pong", Ref: ref})
	case "open":
		err = n.open(f)
	case "close":
		err = n.close(f)
	case "sync":
		err = n.sync(f)
	case "send":
		err = n.send(f)
	case "read":
		err = n.read(f)
	case "typing":
		err = n.typing(f)
	default:
		err = chat.Errorf(chat.ErrInvalid, chat.CodeUnknownType, "unknown frame type %q", f.Type)
	}
	if err != nil {
		n.pushError(ref, f.RoomID, err)
	}
}

func requireRoom(f inFrame) error {
	if f.RoomID == 0 {
		return chat.Invalid(chat.CodeMissingField, "room_id", "room_id is required")
	}
	if f.RoomID < 0 {
		return chat.Invalid(chat.CodeInvalidField, "room_id", "room_id must be positive")
	}
	return nil
}

func (n *nativeConn) open(f inFrame) error {
	if err := requireRoom(f); err != nil {
		return err
	}
	ctx, cancel := n.opContext()
	defer cancel()
	var (
		conv   chat.Conversation
		online []chat.User
		err    error
	)
	if n.isOpen(f.RoomID) {
		if conv, err = n.s.svc.ConversationFor(ctx, n.user, f.RoomID); err == nil {
			if conv.Kind == chat.ConvGroup {
				// A member removed and added again was unsubscribed by the hub.
				err = n.s.hub.Subscribe(n.client, chat.ConvTopic(f.RoomID))
			}
		}
		if err == nil {
			online, err = n.s.svc.Online(ctx, f.RoomID)
		}
	} else {
		// Subscribe before OpenConversation reads the conversation, so
		// that every message after its last_seq in "opened" arrives live;
		// check the membership first, so a non-member never receives a
		// thing.
		if err := n.s.svc.CheckMember(ctx, n.user, f.RoomID); err != nil {
			return err
		}
		if err := n.s.hub.Subscribe(n.client, chat.ConvTopic(f.RoomID)); err != nil {
			return err
		}
		conv, online, err = n.s.svc.OpenConversation(ctx, n.user, f.RoomID)
		if err != nil {
			n.s.hub.Unsubscribe(n.client, chat.ConvTopic(f.RoomID))
			return err
		}
		n.mu.Lock()
		n.rooms[f.RoomID] = true
		n.mu.Unlock()
	}
	if err != nil {
		return err
	}
	var room any = conversationOf(conv)
	if conv.Kind == chat.ConvRoom {
		room = conv.Room()
	}
	n.push(openedFrame{Type: "opened", Ref: f.Ref, Room: room, Online: userRefs(online)})
	if f.After != nil {
		return n.sync(f)
	}
	return nil
}

func (n *nativeConn) close(f inFrame) error {
	if err := requireRoom(f); err != nil {
		return err
	}
	n.mu.Lock()
	was := n.rooms[f.RoomID]
	delete(n.rooms, f.RoomID)
	n.mu.Unlock()
	if was {
		n.s.hub.Unsubscribe(n.client, chat.ConvTopic(f.RoomID))
		ctx, cancel := n.opContext()
		defer cancel()
		if err := n.s.svc.CloseRoom(ctx, n.user, f.RoomID); err != nil {
			return err
		}
	}
	n.push(roomFrame{Type: "closed", Ref: f.Ref, RoomID: f.RoomID})
	return nil
}

func (n *nativeConn) sync(f inFrame) error {
	if err := requireRoom(f); err != nil {
		return err
	}
	if f.After == nil {
		return chat.Invalid(chat.CodeMissingField, "after", "after is required")
	}
	ctx, cancel := n.opContext()
	defer cancel()
	limit := n.s.svc.Config().HistoryLimit
	ms, err := n.s.svc.Sync(ctx, n.user, f.RoomID, *f.After, limit)
	if err != nil {
		return err
	}
	more, err := n.s.hasMore(ctx, n.user, f.RoomID, ms, limit, true)
	if err != nil {
		return err
	}
	n.push(syncFrame{Type: "sync", Ref: f.Ref, RoomID: f.RoomID, Messages: nonNil(ms), HasMore: more})
	return nil
}

func (n *nativeConn) send(f inFrame) error {
	if err := requireRoom(f); err != nil {
		return err
	}
	if err := requireSendFields(f.ClientID, f.Body); err != nil {
		return err
	}
	ctx, cancel := n.opContext()
	defer cancel()
	m, err := n.s.svc.Send(ctx, n.user, f.RoomID, f.ClientID, *f.Body)
	if err != nil {
		return err
	}
	delete(n.typed, f.RoomID) // the message ends the typing; new typing is news again
	n.push(ackFrame{Type: "ack", Ref: f.Ref, RoomID: f.RoomID, ClientID: f.ClientID, Message: &m})
	return nil
}

// read moves the user's read position in a conversation; every connection
// of the user then gets a read frame, and this one a reply with the
// position after the call.
func (n *nativeConn) read(f inFrame) error {
	if err := requireRoom(f); err != nil {
		return err
	}
	if f.Seq == nil {
		return chat.Invalid(chat.CodeMissingField, "seq", "seq is required")
	}
	ctx, cancel := n.opContext()
	defer cancel()
	st, err := n.s.svc.MarkRead(ctx, n.user, f.RoomID, *f.Seq)
	if err != nil {
		return err
	}
	n.push(readFrame{Type: "read", Ref: f.Ref, RoomID: f.RoomID, Seq: st.ReadSeq})
	return nil
}

func (n *nativeConn) isOpen(id int64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.rooms[id]
}

// dropped forgets group id, which the user no longer belongs to (the hub
// has stopped its delivery already), and ends the user's presence there.
func (n *nativeConn) dropped(id int64) {
	n.mu.Lock()
	was := n.rooms[id]
	delete(n.rooms, id)
	n.mu.Unlock()
	if !was {
		return
	}
	ctx, cancel := n.opContext()
	defer cancel()
	if err := n.s.svc.CloseRoom(ctx, n.user, id); err != nil {
		n.s.log.Warn("close removed conversation", "room", id, "err", err)
	}
}

// cleanup closes the rooms this connection had open.
func (n *nativeConn) cleanup() {
	ctx, cancel := n.opContext()
	defer cancel()
	n.mu.Lock()
	rooms := make([]int64, 0, len(n.rooms))
	for id := range n.rooms {
		rooms = append(rooms, id)
	}
	clear(n.rooms)
	n.mu.Unlock()
	for _, id := range rooms {
		if err := n.s.svc.CloseRoom(ctx, n.user, id); err != nil && !errors.Is(err, context.Canceled) {
			n.s.log.Warn("close room", "room", id, "err", err)
		}
	}
}

type typingFrame struct {
	Type   string  `json:"type"`
	RoomID int64   `json:"room_id"`
	User   userRef `json:"user"`
}

// typing forwards a typing indicator, at most one per conversation every
// chat.TypingInterval per connection; more often is dropped silently.
func (n *nativeConn) typing(f inFrame) error {
	if err := requireRoom(f); err != nil {
		return err
	}
	now := time.Now()
	if last, ok := n.typed[f.RoomID]; ok && now.Sub(last) < chat.TypingInterval {
		return nil
	}
	ctx, cancel := n.opContext()
	defer cancel()
	if err := n.s.svc.Typing(ctx, n.user, f.RoomID); err != nil {
		return err
	}
	if len(n.typed) > 64 {
		clear(n.typed)
	}
	n.typed[f.RoomID] = now
	return nil
}
