package web

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
)

// session is one signed-in client of the native protocol, whatever its
// transport: a WebSocket (ws.go) or a long-poll channel (poll.go). It
// handles the frames the client sends, one at a time and answering them in
// order (a WebSocket's sends may commit while it reads on), and owns the hub
// client its events queue in. Replies go to the reply function handle is
// given: the WebSocket queues them with the events, long-poll returns them
// in the POST's response.
type session struct {
	s       *server
	user    chat.User
	client  *hub.Client
	hmu     sync.Mutex // one frame at a time
	mu      sync.Mutex
	rooms   []int64             // conversations open, few: a slice costs less than a map; guarded by mu
	opening int64               // the conversation an open under way subscribed to, not in rooms yet; guarded by mu
	lims    *sharedLimits       // the user's limits on this node, shared with their other connections (userLimits)
	held    bool                // lims is held: not given back yet; guarded by hmu
	ended   bool                // cleanup has closed the conversations open: an open under way closes its own; guarded by mu
	typed   map[int64]time.Time // last typing forwarded, per conversation; made at the first
	sweepAt int                 // size of typed at which typings past chat.TypingInterval are swept out
	users   inOrder             // the user's logged events delivered (Event.UserSeq)
	// name is the user's name after a rename told to the session (an
	// EventUser of their own), nil before: user is never written, as
	// every frame reads it.
	name atomic.Pointer[string]

	// Sends queued in the store and not answered yet, made at the first
	// send of a session that pipelines (pipelines).
	pipe *sendPipe

	// Long-poll hooks (nil for a WebSocket): a conversation was opened
	// at last seq, synced with ms, or closed.
	onOpen  func(id, lastSeq int64)
	onSync  func(id int64, ms []chat.Message)
	onClose func(id int64)
	// maxRooms bounds the conversations open at once: each is a
	// subscription in the hub and a presence, and a user may enter any
	// number of rooms (Config.MaxOpen); a long-poll cursor names them
	// all, and a cursor is bounded.
	maxRooms int
}

// pipelines reports whether the session queues its sends and reads on
// (sendPipe): a WebSocket session does, one of long-poll (the one with
// hooks) answers its frames in the POST's response, and so does not.
func (n *session) pipelines() bool { return n.onSync == nil }

func (s *server) newSession(u chat.User) *session {
	// Maps are made when first needed: most connections sit idle most of
	// the time, and there are many of them. The limits are the user's,
	// shared by their connections: given back by end, or by start if it
	// fails.
	return &session{s: s, user: u, maxRooms: s.cfg.MaxOpen, lims: s.limits.acquire(u.ID), held: true}
}

// start registers the session in the hub, counts the user online, makes it
// follow the user's groups and positions its event log: after eventsAfter
// if given (the events since are delivered first), else after the newest.
// wake may be nil, for a client to be attached later (hub.Client.Attach).
func (n *session) start(ctx context.Context, sessionID int64, wake hub.Waker, eventsAfter *int64) (err error) {
	defer func() {
		if err != nil {
			n.releaseLimits() // if stop has not
		}
	}()
	if n.client, err = n.s.hub.Register(n.user.ID, sessionID, n.s.cfg.Outbox, wake); err != nil {
		return err
	}
	if err := n.s.svc.Connect(ctx, n.me()); err != nil {
		n.s.hub.Unregister(n.client)
		return err
	}
	if err := n.followGroups(ctx); err != nil {
		n.stop()
		return err
	}
	last, err := n.s.svc.LastUserEvent(ctx, n.me())
	if err != nil {
		n.stop()
		return err
	}
	if eventsAfter == nil || *eventsAfter >= last {
		n.users.reset(last)
		return nil
	}
	n.users.reset(max(*eventsAfter, last-maxReplay))
	// Only the newest is queued: the writer fills the gap before it from
	// the store (admitUser), in order. One item per event missed could
	// pass the outbox's bound and close the client as too slow before it
	// read a thing, every time it came back.
	evs, err := n.s.svc.UserEvents(ctx, n.me(), last-1, 1)
	if err != nil {
		n.stop()
		return err
	}
	for _, ev := range evs {
		// From the store, not through the hub: ordered against the
		// presence news the user's topic delivered, as admitUser orders
		// the events before it.
		n.s.hub.OrderContact(n.user.ID, &ev)
		n.client.Push(&hub.Item{Event: ev})
	}
	return nil
}

// maxReplay bounds the logged events replayed to a returning client.
const maxReplay = chat.MaxReplay

// followGroups subscribes the session to its user's groups, each marked
// with the read that found the membership: a removal numbered at or
// before it, which may reach this node late, ended an earlier membership
// and does not stop this one (hub.Hub.SubscribeMember).
func (n *session) followGroups(ctx context.Context) error {
	removals := n.s.hub.Removals(n.user.ID)
	gs, err := n.s.svc.UserGroups(ctx, n.me())
	if err != nil {
		return err
	}
	for _, g := range gs {
		if err := n.s.hub.SubscribeMember(n.client, chat.ConvTopic(g.ID), g.Mark); err != nil {
			return err
		}
	}
	if n.s.hub.Removals(n.user.ID) == removals {
		return nil
	}
	// The user was removed from a group meanwhile, maybe one read above,
	// before it was followed: that removal revoked nothing. Read again,
	// and follow only what is left.
	now, err := n.s.svc.UserGroups(ctx, n.me())
	if err != nil {
		return err
	}
	for _, g := range gs {
		if !slices.ContainsFunc(now, func(o chat.MemberAt) bool { return o.ID == g.ID }) {
			n.s.hub.Unsubscribe(n.client, chat.ConvTopic(g.ID))
		}
	}
	return nil
}

// stop ends the session and leaves the hub.
func (n *session) stop() {
	n.end()
	n.s.hub.Unregister(n.client)
}

// end closes the session's conversations and counts the connection out
// (after the presence grace period).
func (n *session) end() {
	n.drain()
	n.cleanup()
	n.releaseLimits()
	n.s.svc.Disconnect(n.me())
}

// releaseLimits gives the user's limits back (userLimits.release), once:
// the connection no longer counts among those holding them. A frame
// handled after still uses them.
func (n *session) releaseLimits() {
	n.hmu.Lock()
	held := n.held
	n.held = false
	n.hmu.Unlock()
	if held {
		n.s.limits.release(n.user.ID, n.lims)
	}
}

// admitUser returns what to deliver for logged user event ev: nothing if
// it was delivered, else ev after any earlier ones that were missed. An
// error means those could not be read: nothing is delivered, and the
// connection must end for the client to resume from what it has.
func (n *session) admitUser(ctx context.Context, ev chat.Event) ([]chat.Event, error) {
	evs, err := n.users.admit(ev.UserSeq, ev, func(after int64, limit int) ([]chat.Event, error) {
		return n.s.svc.UserEvents(ctx, n.me(), after, limit)
	}, func(ev chat.Event) int64 { return ev.UserSeq })
	if err != nil || len(evs) < 2 {
		return evs, err
	}
	// A friend's contact among them comes after news of that friend
	// which the hub may have given the client: the hub orders it against
	// that news, as it orders those it delivers.
	for i := range evs[:len(evs)-1] {
		n.s.hub.OrderContact(n.user.ID, &evs[i])
	}
	// The events before the last came from the store, not through the
	// hub, which follows a group the user was added to as it delivers the
	// event: follow the user's groups again. The events go out whatever
	// becomes of it: admit has counted them delivered.
	if slices.ContainsFunc(evs[:len(evs)-1], func(e chat.Event) bool {
		return e.Type == chat.EventConversation && e.ConvKind == chat.ConvGroup
	}) {
		if err := n.followGroups(ctx); err != nil {
			n.s.log.Warn("follow groups", "user", n.user.ID, "err", err)
		}
	}
	return evs, nil
}

// inOrder keeps a numbered stream exactly-once and in order: it drops what
// was delivered and fills a gap from the store.
type inOrder struct {
	mu sync.Mutex
	n  int64 // the number of the last item delivered
}

func (o *inOrder) reset(n int64) {
	o.mu.Lock()
	o.n = n
	o.mu.Unlock()
}

func (o *inOrder) last() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}

// admit returns what to deliver for item ev numbered seq; fetch loads the
// items after a number (at most limit), num numbers an item. If fetch
// fails, admit delivers nothing and stays where it was.
func (o *inOrder) admit(seq int64, ev chat.Event, fetch func(after int64, limit int) ([]chat.Event, error), num func(chat.Event) int64) ([]chat.Event, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case seq <= o.n:
		return nil, nil
	case seq == o.n+1:
		o.n = seq
		return []chat.Event{ev}, nil
	}
	missed, err := fetch(o.n, int(min(seq-o.n, maxReplay)))
	if err != nil {
		return nil, err
	}
	var out []chat.Event
	for _, m := range missed {
		if k := num(m); k > o.n && k < seq {
			out = append(out, m)
		}
	}
	o.n = seq
	return append(out, ev), nil
}

// errorFrameOf is the error frame of err.
func (s *server) errorFrameOf(ref string, roomID int64, err error) errorFrame {
	_, d := classify(s.log, err)
	return errorFrame{Type: "error", Ref: ref, RoomID: roomID, Code: d.Code, Message: d.Message, Field: d.Field, RetryAfterMS: d.RetryAfterMS}
}

func opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

// handle performs one frame; reply receives the frames that answer it,
// in the order of the frames they answer.
func (n *session) handle(data []byte, reply func(any)) {
	n.hmu.Lock()
	defer n.hmu.Unlock()
	var f inFrame
	if err := decodeFrame(data, &f); err == errNotUTF8 {
		n.refuseFrame(reply, data, f, chat.Errorf(chat.ErrInvalid, chat.CodeBadJSON, "frame is not valid JSON: %v", err))
		return
	} else if err != nil {
		n.refuse(reply, chat.Errorf(chat.ErrInvalid, chat.CodeBadJSON, "frame is not a JSON object of the expected shape: %v", err))
		return
	}
	if f.Type != "send" {
		n.drain() // what the client sent before is done first
	}
	ref := f.Ref
	if len(ref) > maxRefLen {
		ref = "" // not to be sent back
	}
	if f.Type == "send" {
		if f.Ref == "" {
			ref = f.ClientID
		}
		limit := rate.Limit(n.s.cfg.SendRate)
		if !n.lims.send.allow(limit, n.s.cfg.SendBurst) {
			n.fail(reply, ref, f.RoomID, rateLimited(limit))
			return
		}
	} else if err := n.allowOther(); err != nil {
		n.fail(reply, ref, f.RoomID, err)
		return
	}
	if len(f.Ref) > maxRefLen {
		n.fail(reply, "", f.RoomID, chat.Invalid(chat.CodeTooLong, "ref", "ref is longer than %d bytes", maxRefLen))
		return
	}
	var err error
	switch f.Type {
	case "":
		err = chat.Invalid(chat.CodeMissingField, "type", "type is required")
	case "ping":
		reply(roomFrame{Type: "pong", Ref: ref})
	case "open":
		err = n.open(f, reply)
	case "close":
		err = n.close(f, reply)
	case "sync":
		err = n.sync(f, reply)
	case "send":
		err = n.send(f, ref, reply)
	case "read":
		err = n.read(f, reply)
	case "typing":
		err = n.typing(f)
	default:
		err = chat.Errorf(chat.ErrInvalid, chat.CodeUnknownType, "unknown frame type %q", f.Type)
	}
	if err != nil {
		n.fail(reply, ref, f.RoomID, err)
	}
}

// invalid answers a frame that is no frame of the protocol (a WebSocket
// message that is not text) with err, as handle answers one that is not
// JSON.
func (n *session) invalid(reply func(any), err error) {
	n.hmu.Lock()
	defer n.hmu.Unlock()
	n.refuse(reply, err)
}

// refuse answers a frame that is no frame with err. It counts as one of
// the other frames: its answer costs as much. n.hmu is held.
func (n *session) refuse(reply func(any), err error) {
	if lerr := n.allowOther(); lerr != nil {
		err = lerr
	}
	n.fail(reply, "", 0, err)
}

// refuseFrame is refuse for frame f, decoded from data, which is refused
// whole (nothing of it is done) but whose ref and room_id can be told: its
// error frame carries them, as that of a frame refused later would. A ref
// that is itself the string that is not valid UTF-8 is not the client's
// to be sent back (decoded, its faults are U+FFFD, as a valid U+FFFD is:
// rawRefsValid tells them apart), nor is one too long. n.hmu is held.
func (n *session) refuseFrame(reply func(any), data []byte, f inFrame, err error) {
	ref, isRef := f.Ref, true
	if f.Type == "send" && ref == "" {
		ref, isRef = f.ClientID, false
	}
	if len(ref) > maxRefLen || strings.ContainsRune(ref, utf8.RuneError) && !rawRefValid(data, isRef) {
		ref = ""
	}
	if lerr := n.allowOther(); lerr != nil {
		err = lerr
	}
	n.fail(reply, ref, f.RoomID, err)
}

// allowOther takes one frame other than a send from the user's limit of
// them (server.otherFrames).
func (n *session) allowOther() error {
	limit, burst := n.s.otherFrames()
	if !n.lims.other.allow(limit, burst) {
		return rateLimited(limit)
	}
	return nil
}

// fail replies with err's error frame, after the answers to the sends
// queued before.
func (n *session) fail(reply func(any), ref string, roomID int64, err error) {
	n.drain()
	reply(n.s.errorFrameOf(ref, roomID, err))
}

// drain waits until the sends queued before are answered.
func (n *session) drain() {
	if n.pipe != nil {
		n.pipe.drain()
	}
}

// settle waits, at most d, until the frame being handled and the sends
// queued before are answered.
func (n *session) settle(d time.Duration) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.hmu.Lock()
		p := n.pipe
		n.hmu.Unlock()
		if p != nil {
			p.drain()
		}
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
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

func (n *session) open(f inFrame, reply func(any)) error {
	if err := requireRoom(f); err != nil {
		return err
	}
	if f.After != nil && *f.After < 0 {
		// Checked before the open, which the sync after it would not undo.
		return chat.Invalid(chat.CodeInvalidField, "after", "after must not be negative")
	}
	ctx, cancel := opContext()
	defer cancel()
	var (
		conv   chat.Conversation
		online []chat.User
		count  int
		mark   chat.Mark // where the membership check found the user a member
		err    error
	)
	if n.isOpen(f.RoomID) {
		// The membership is checked again, with the mark, in one read, as
		// for a first open: a room left elsewhere whose removed has not
		// reached this node yet is still open here, and ConversationFor
		// shows a room to anyone. A mark taken without the check would
		// cover that removed, which would then spare this subscription.
		if mark, err = n.s.svc.CheckMemberAt(ctx, n.me(), f.RoomID); err == nil {
			conv, err = n.s.svc.ConversationFor(ctx, n.me(), f.RoomID)
		}
		if err == nil {
			// A member removed and added again was unsubscribed by the
			// hub; one subscribed still now has the newer mark.
			err = n.s.hub.SubscribeMember(n.client, chat.ConvTopic(f.RoomID), mark)
		}
		if err == nil {
			// Who is present is only shown: while it cannot be read, the
			// open goes on as the first did.
			online, count = n.s.svc.OnlineOrAlone(ctx, n.me(), f.RoomID)
		}
	} else {
		// Subscribe before OpenConversation reads the conversation, so
		// that every message after its last_seq in "opened" arrives live;
		// check the membership first, so a non-member never receives a
		// thing.
		if n.maxRooms > 0 && n.openCount() >= n.maxRooms {
			e := chat.Errorf(chat.ErrRateLimited, chat.CodeRateLimited, "%d conversations are open on this connection: close some first", n.maxRooms)
			e.RetryAfter = 10 * time.Second
			return e
		}
		if mark, err = n.s.svc.CheckMemberAt(ctx, n.me(), f.RoomID); err != nil {
			return err
		}
		// A group is followed already, and stays so if the open fails.
		followed := n.s.hub.Follows(n.client, chat.ConvTopic(f.RoomID))
		n.setOpening(f.RoomID) // its presence from now on is shown
		defer n.setOpening(0)
		// A removal numbered up to mark, reaching this node late, ended
		// an earlier membership: the hub keeps this subscription.
		if err := n.s.hub.SubscribeMember(n.client, chat.ConvTopic(f.RoomID), mark); err != nil {
			return err
		}
		conv, online, count, err = n.s.svc.OpenConversation(ctx, n.me(), f.RoomID)
		if err != nil {
			if !followed {
				n.s.hub.Unsubscribe(n.client, chat.ConvTopic(f.RoomID))
			}
			return err
		}
		n.s.hub.Seen(chat.ConvTopic(f.RoomID), conv.LastSeq)
		n.mu.Lock()
		ended := n.ended
		if !ended && !slices.Contains(n.rooms, f.RoomID) {
			n.rooms = append(n.rooms, f.RoomID)
		}
		n.mu.Unlock()
		if ended {
			// The session ended as it opened this one (a long-poll
			// channel's, under a POST's frame): cleanup has closed the
			// others, and nothing else would close this one.
			if err := n.s.svc.CloseRoom(ctx, n.me(), f.RoomID); err != nil {
				n.s.log.Warn("close room", "room", f.RoomID, "err", err)
			}
			return chat.Errorf(chat.ErrUnavailable, chat.CodeUnavailable, "the connection ended: connect again")
		}
	}
	if err != nil {
		return err
	}
	opened := openedFrame{Type: "opened", Ref: f.Ref, Room: conversationOf(conv), Online: userRefs(online), OnlineCount: count, UserSeq: mark.UserSeq}
	if conv.Kind == chat.ConvRoom {
		opened.Room = conv.Room()
	} else {
		if opened.Reads, err = n.s.svc.ReadPositions(ctx, n.me(), f.RoomID); err != nil {
			return err
		}
	}
	if n.onOpen != nil {
		after := conv.LastSeq
		if f.After != nil {
			after = min(*f.After, conv.LastSeq)
		}
		n.onOpen(f.RoomID, after)
	}
	reply(opened)
	if f.After != nil && !f.noSync {
		return n.sync(f, reply)
	}
	return nil
}

func (n *session) close(f inFrame, reply func(any)) error {
	if err := requireRoom(f); err != nil {
		return err
	}
	if n.isOpen(f.RoomID) {
		ctx, cancel := opContext()
		defer cancel()
		// Groups stay followed: a lookup that fails tells not whether this
		// is one, and so changes nothing (but one the user is no longer a
		// member of, or that is gone, is closed).
		c, err := n.s.svc.ConversationFor(ctx, n.me(), f.RoomID)
		if err != nil && !errors.Is(err, chat.ErrNotFound) {
			return err
		}
		n.mu.Lock()
		was := n.forget(f.RoomID) // unless dropped meanwhile
		n.mu.Unlock()
		if was {
			if err != nil || c.Kind != chat.ConvGroup {
				n.s.hub.Unsubscribe(n.client, chat.ConvTopic(f.RoomID))
			}
			if n.onClose != nil {
				n.onClose(f.RoomID)
			}
			if err := n.s.svc.CloseRoom(ctx, n.me(), f.RoomID); err != nil {
				return err
			}
		}
	}
	reply(roomFrame{Type: "closed", Ref: f.Ref, RoomID: f.RoomID})
	return nil
}

func (n *session) sync(f inFrame, reply func(any)) error {
	if err := requireRoom(f); err != nil {
		return err
	}
	if f.After == nil {
		return chat.Invalid(chat.CodeMissingField, "after", "after is required")
	}
	ctx, cancel := opContext()
	defer cancel()
	limit := n.s.svc.Config().HistoryLimit
	ms, err := n.s.svc.Sync(ctx, n.me(), f.RoomID, *f.After, limit)
	if err != nil {
		return err
	}
	more, err := n.s.hasMore(ctx, n.me(), f.RoomID, ms, limit, true)
	if err != nil {
		return err
	}
	if n.onSync != nil {
		n.onSync(f.RoomID, ms)
	}
	reply(syncFrame{Type: "sync", Ref: f.Ref, RoomID: f.RoomID, Messages: nonNil(ms), HasMore: more})
	return nil
}

// send stores a message. Where the session is pipelined and the message
// can be queued, it returns once the message is queued, and the ack (or
// error) follows from the pipe, after those of the sends before.
func (n *session) send(f inFrame, ref string, reply func(any)) error {
	if err := requireRoom(f); err != nil {
		return err
	}
	if err := requireSendFields(f.ClientID, f.Body); err != nil {
		return err
	}
	delete(n.typed, f.RoomID) // the message ends the typing; new typing is news again
	ctx, cancel := opContext()
	p, queued := n.s.svc.QueueSend(ctx, n.me(), f.RoomID, f.ClientID, *f.Body)
	if queued && n.pipelines() {
		if n.pipe == nil {
			n.pipe = newSendPipe()
		}
		n.pipe.add(func() {
			defer cancel()
			m, err := p.Wait()
			if err := ack(f, reply, m, err); err != nil {
				reply(n.s.errorFrameOf(ref, f.RoomID, err))
			}
		})
		return nil
	}
	defer cancel()
	var (
		m   chat.Message
		err error
	)
	if queued {
		m, err = p.Wait()
	} else {
		n.drain() // the conversation is looked up first: the earlier sends go before
		m, err = n.s.svc.Send(ctx, n.me(), f.RoomID, f.ClientID, *f.Body)
	}
	return ack(f, reply, m, err)
}

// ack replies to send frame f with the ack of m, the message its send
// stored, unless the send failed: then it returns err, to reply with.
func ack(f inFrame, reply func(any), m chat.Message, err error) error {
	if err != nil {
		return err
	}
	reply(ackFrame{Type: "ack", Ref: f.Ref, RoomID: f.RoomID, ClientID: f.ClientID, Message: &m})
	return nil
}

// read moves the user's read position in a conversation; every connection
// of the user then gets a read frame, and this one a reply with the
// position after the call.
func (n *session) read(f inFrame, reply func(any)) error {
	if err := requireRoom(f); err != nil {
		return err
	}
	if f.Seq == nil {
		return chat.Invalid(chat.CodeMissingField, "seq", "seq is required")
	}
	ctx, cancel := opContext()
	defer cancel()
	st, err := n.s.svc.MarkRead(ctx, n.me(), f.RoomID, *f.Seq)
	if err != nil {
		return err
	}
	reply(readFrame{Type: "read", Ref: f.Ref, RoomID: f.RoomID, Seq: st.ReadSeq})
	return nil
}

// typing forwards a typing indicator, at most one per conversation every
// chat.TypingInterval per session; more often is dropped silently.
func (n *session) typing(f inFrame) error {
	if err := requireRoom(f); err != nil {
		return err
	}
	now := time.Now()
	if last, ok := n.typed[f.RoomID]; ok && now.Sub(last) < chat.TypingInterval {
		return nil
	}
	ctx, cancel := opContext()
	defer cancel()
	if err := n.s.svc.Typing(ctx, n.me(), f.RoomID); err != nil {
		return err
	}
	// Only the typings past the interval are forgotten: one still in it
	// would be forwarded again. Those in it are as many as the frame
	// limit lets through in an interval.
	if n.typed == nil {
		n.typed, n.sweepAt = make(map[int64]time.Time), 64
	} else if len(n.typed) >= n.sweepAt {
		maps.DeleteFunc(n.typed, func(_ int64, t time.Time) bool { return now.Sub(t) >= chat.TypingInterval })
		n.sweepAt = max(64, 2*len(n.typed))
	}
	n.typed[f.RoomID] = now
	return nil
}

func (n *session) openCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.rooms)
}

func (n *session) isOpen(id int64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Contains(n.rooms, id)
}

func (n *session) setOpening(id int64) {
	n.mu.Lock()
	n.opening = id
	n.mu.Unlock()
}

// me is the session's user, with the name of their latest rename told to
// the session: their typing, presence and direct messages name them by it.
func (n *session) me() chat.User {
	u := n.user
	if p := n.name.Load(); p != nil {
		u.Name, u.NameVersion = *p, 0 // the version of n.user's name, not this one's
	}
	return u
}

// shows reports whether ev is for this session to show. A conversation's
// typing, presence and online count are, only where the session has it
// open (or is opening it): a group's events reach every connection of its
// members, open or not, for the list; these are of no use to the list.
// The user's own typing, presence and read receipt are news to nobody of
// theirs (their read frame tells of their own read position).
func (n *session) shows(ev *chat.Event) bool {
	switch ev.Type {
	case chat.EventReceipt:
		return ev.UserID != n.user.ID
	case chat.EventTyping, chat.EventPresence:
		if ev.User != nil && ev.User.ID == n.user.ID {
			return false
		}
	case chat.EventOnlineCount:
	case chat.EventUser:
		if ev.User != nil && ev.User.ID == n.user.ID {
			name := ev.User.Name
			n.name.Store(&name)
		}
		return true
	default:
		return true
	}
	if ev.ConvID == chat.Everywhere { // a friend's presence anywhere
		return true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.opening == ev.ConvID || slices.Contains(n.rooms, ev.ConvID)
}

// forget removes conversation id from those open and reports whether it
// was open. n.mu is held.
func (n *session) forget(id int64) bool {
	i := slices.Index(n.rooms, id)
	if i < 0 {
		return false
	}
	n.rooms = slices.Delete(n.rooms, i, i+1)
	return true
}

// dropped forgets group id, which the user no longer belongs to (the hub
// has stopped its delivery already), and ends the user's presence there.
func (n *session) dropped(id int64) {
	n.mu.Lock()
	was := n.forget(id)
	n.mu.Unlock()
	if n.onClose != nil {
		n.onClose(id)
	}
	if !was {
		return
	}
	ctx, cancel := opContext()
	defer cancel()
	if err := n.s.svc.CloseRoom(ctx, n.me(), id); err != nil {
		n.s.log.Warn("close removed conversation", "room", id, "err", err)
	}
}

// removedBy handles ev, a removed written to the client: the
// conversation is dropped, unless the hub kept this connection's
// subscription, made on a membership newer than the one ev ended
// (hub.Hub.Spares): ev is old news, and the conversation stays open.
func (n *session) removedBy(ev chat.Event) {
	if n.s.hub.Spares(n.client, chat.ConvTopic(ev.ConvID), ev.UserSeq) {
		return
	}
	n.dropped(ev.ConvID)
}

// cleanup closes the conversations this session had open.
func (n *session) cleanup() {
	ctx, cancel := opContext()
	defer cancel()
	n.mu.Lock()
	rooms := n.rooms
	n.rooms = nil
	n.ended = true
	n.mu.Unlock()
	for _, id := range rooms {
		if err := n.s.svc.CloseRoom(ctx, n.me(), id); err != nil && !errors.Is(err, context.Canceled) {
			n.s.log.Warn("close room", "room", id, "err", err)
		}
	}
}

// eventsAfter parses the optional events_after query parameter: the
// user_seq of the last logged event the client has.
func eventsAfter(r *http.Request) (*int64, error) {
	v := r.URL.Query().Get("events_after")
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return nil, chat.Invalid(chat.CodeInvalidField, "events_after", "events_after must be a non-negative integer")
	}
	return &n, nil
}
