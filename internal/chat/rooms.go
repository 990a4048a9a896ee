package chat

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"
)

func roomNotFound() error { return Errorf(ErrNotFound, CodeNotFound, "no such room") }

func notMember() error {
	return Errorf(ErrForbidden, CodeNotMember, "you are not a member of this room; enter it first")
}

// EnterRoom creates the room called name if needed and makes u a member.
// Joining appends a join message to the room's sequence, unless the room
// has Config.AnnounceMax members already. A name that differs from a
// room's only in case enters that room; one that only looks like a room's
// name (NameSkeleton) is refused with CodeNameLookAlike (lookAlikeRoom).
func (s *Service) EnterRoom(ctx context.Context, u User, name string) (Room, error) {
	name, err := NormalizeRoomName(name)
	if err != nil {
		return Room{}, err
	}
	now := s.cfg.Now()
	// Most enter a room that exists: a read finds it, and only a new
	// room takes a write transaction of its own.
	r, err := s.store.RoomByName(ctx, name)
	switch {
	case errors.Is(err, ErrNotFound):
		if err := s.roomForRoom(ctx, u); err != nil {
			return Room{}, err
		}
		if err := s.allowNewConv(ctx, u); err != nil {
			return Room{}, err
		}
		var created bool
		if r, created, err = s.store.EnsureRoom(ctx, name, now); !created {
			// No room made, or made at once by another's entry: it does
			// not count.
			s.undoNewConv(ctx, u)
		}
		if e := (*LookAlikeError)(nil); errors.As(err, &e) {
			return Room{}, lookAlikeRoom(name, e.Name)
		}
	case err == nil:
		// A member coming back (a reload, a reconnect) is answered by a
		// second read: a write transaction that changes nothing would
		// still wait its turn behind every send being committed.
		var member bool
		if member, err = s.store.IsMember(ctx, r.ID, u.ID); err == nil && member {
			return r, nil
		}
		if err == nil {
			if err := s.roomForRoom(ctx, u); err != nil {
				return Room{}, err
			}
		}
	}
	if err != nil {
		return Room{}, internal("ensure room", err)
	}
	m, joined, err := s.store.JoinRoom(ctx, r.ID, u.ID, now, r.Members < s.cfg.AnnounceMax)
	if err != nil {
		// A retry finds u a member and publishes nothing.
		s.republishTail(err, r.ID)
		s.republishJoined(err, u, r.ID)
		return Room{}, internal("join room", err)
	}
	if joined {
		var join *Message // none in a room too large to announce joins
		if m.Seq > 0 {
			join = &m
			s.publish(ctx, ConvTopic(r.ID), Event{Type: EventMessage, ConvID: r.ID, Message: join})
		}
		// Every connection of u learns of it. After a leave that u's event
		// log keeps (a removed), it is kept there too: a device that
		// replays the log then ends with the room joined. A first entry
		// is not logged, which would cost every join a second write. It
		// is kept after the commit, so only if u is still a member: a
		// leave made meanwhile, on another device, logged its removed
		// already, and a device replaying the log must end with it.
		ev := Event{Type: EventConversation, ConvID: r.ID, ConvKind: ConvRoom, Message: join}
		if s.leftLogged(ctx, u.ID, r.ID) {
			s.publishMember(ctx, u.ID, r.ID, ev, true)
		} else {
			s.publish(ctx, UserTopic(u.ID), ev)
		}
	}
	r, err = s.store.Room(ctx, r.ID)
	if err != nil {
		return Room{}, internal("load room", err)
	}
	return r, nil
}

// lookAlikeRoom is the conflict of entering a room called name, absent,
// that looks like the room called like (NameSkeleton). It is refused, not
// taken for the room it looks like: a skeleton also joins names that are
// different words ("MAIL" and "mall", "room1" and "rooml"), and who typed
// one should not find themselves in the other; the message names the room
// that is there, to enter it by its name.
func lookAlikeRoom(name, like string) error {
	if like == "" {
		return Errorf(ErrConflict, CodeNameLookAlike, "%q looks like the name of an existing room: choose another", name)
	}
	return Errorf(ErrConflict, CodeNameLookAlike, "%q looks like the existing room %q: enter that one by its name, or choose another", name, like)
}

// roomForRoom returns a limit_reached conflict if u is in
// Config.MaxUserRooms rooms already. It is read before the join, not in
// its transaction: entries made at once may go past the limit by as many
// as they are.
func (s *Service) roomForRoom(ctx context.Context, u User) error {
	rooms, err := s.store.UserRooms(ctx, u.ID)
	if err != nil {
		return internal("list user rooms", err)
	}
	if len(rooms) >= s.cfg.MaxUserRooms {
		return Errorf(ErrConflict, CodeLimitReached, "you are in %d rooms, as many as the server allows: leave one first", len(rooms))
	}
	return nil
}

// MaxReplay is how many of a user's newest logged events a returning
// client is given at most.
const MaxReplay = 1000

// leftLogged reports whether the part of user's event log that a client
// may be given again (MaxReplay) holds a removed of conversation id; or,
// if the log cannot be read, that it may.
func (s *Service) leftLogged(ctx context.Context, userID, id int64) bool {
	last, err := s.store.LastUserEvent(ctx, userID)
	if err != nil || last == 0 {
		return err != nil
	}
	evs, err := s.store.UserEvents(ctx, userID, max(0, last-MaxReplay), MaxReplay)
	if err != nil {
		return true
	}
	return slices.ContainsFunc(evs, func(e Event) bool { return e.Type == EventRemoved && e.ConvID == id })
}

// LeaveRoom ends u's membership of room id, with a leave message unless
// the room has more than Config.AnnounceMax members.
func (s *Service) LeaveRoom(ctx context.Context, u User, id int64) error {
	r, err := s.room(ctx, id)
	if err != nil {
		return err
	}
	if err := s.allowLeave(ctx, u); err != nil {
		return err
	}
	// The removed is logged in the leave's transaction: an open that finds
	// u a member again after it reads a log that has it (Mark).
	removed := Event{Type: EventRemoved, ConvID: id, Reason: "left"}
	m, removed, left, err := s.store.LeaveRoom(ctx, id, u.ID, s.cfg.Now(), r.Members <= s.cfg.AnnounceMax, removed)
	if err != nil || !left {
		// Nothing was left: the leave does not count.
		s.undo(ctx, leaveKey(u))
	}
	switch {
	case errors.Is(err, ErrNotFound):
		return roomNotFound()
	case err != nil:
		s.republishTail(err, id)
		s.republishRemoved(err, u.ID, id)
		return internal("leave room", err)
	case !left:
		return notMember()
	}
	if m.Seq > 0 {
		s.publish(ctx, ConvTopic(id), Event{Type: EventMessage, ConvID: id, Message: &m})
	}
	// Every connection of u, on every tab and device, stops following the
	// room and is told, as when leaving a group.
	s.publish(ctx, UserTopic(u.ID), removed)
	return nil
}

// allowLeave counts one room left by u, at most Config.RoomLeavesPerHour
// an hour. Leaving is what is counted, not entering: a user enters a room
// once until they leave it, so the leaves bound the comings and goings
// that each post to the room, while entering rooms, what every user of a
// room does once, costs no count to be kept for each of them. A leave
// that fails is taken back (undo): only the rooms left count.
func (s *Service) allowLeave(ctx context.Context, u User) error {
	return s.allow(ctx, leaveKey(u), s.cfg.RoomLeavesPerHour, time.Hour)
}

func leaveKey(u User) string { return "room-leave:" + strconv.FormatInt(u.ID, 10) }

func (s *Service) room(ctx context.Context, id int64) (Room, error) {
	r, err := s.store.Room(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Room{}, roomNotFound()
	}
	if err != nil {
		return Room{}, internal("load room", err)
	}
	s.kinds.put(id, ConvRoom)
	return r, nil
}

// member returns room id if u belongs to it.
func (s *Service) member(ctx context.Context, u User, id int64) (Room, error) {
	r, ok, err := s.RoomFor(ctx, u, id)
	if err != nil {
		return Room{}, err
	}
	if !ok {
		return Room{}, notMember()
	}
	return r, nil
}

// Room returns a room for any signed-in user: rooms are public.
func (s *Service) Room(ctx context.Context, id int64) (Room, error) { return s.room(ctx, id) }

// RoomByName returns a room by its name.
func (s *Service) RoomByName(ctx context.Context, name string) (Room, error) {
	name, err := NormalizeRoomName(name)
	if err != nil {
		return Room{}, err
	}
	r, err := s.store.RoomByName(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return Room{}, roomNotFound()
	}
	if err != nil {
		return Room{}, internal("load room", err)
	}
	return r, nil
}

// Rooms lists the rooms u has joined and the most active rooms.
func (s *Service) Rooms(ctx context.Context, u User, activeLimit int) (joined, active []Room, err error) {
	joined, err = s.store.UserRooms(ctx, u.ID)
	if err != nil {
		return nil, nil, internal("list user rooms", err)
	}
	active, err = s.store.ActiveRooms(ctx, s.cfg.Now().Add(-s.cfg.ActiveWindow), activeLimit)
	if err != nil {
		return nil, nil, internal("list active rooms", err)
	}
	return joined, active, nil
}

// History returns a page of conversation id's messages. Rooms are public,
// so any signed-in user may read them.
//
// A direct conversation's or a group's history is read only by its
// members.
func (s *Service) History(ctx context.Context, u User, id int64, p Page) ([]Message, error) {
	if err := s.readable(ctx, u, id); err != nil {
		return nil, err
	}
	if p.After < 0 || p.Before < 0 {
		return nil, Invalid(CodeInvalidField, "after", "after and before must not be negative")
	}
	if p.Limit <= 0 || p.Limit > s.cfg.HistoryLimit {
		p.Limit = s.cfg.HistoryLimit
	}
	ms, err := s.store.Messages(ctx, id, p)
	if err != nil {
		return nil, internal("load messages", err)
	}
	s.anonymize(ms)
	s.nameTargets(ctx, ms)
	return ms, nil
}

// nameTargets fills in the TargetName of group events with one lookup, so
// that a member who never met the target can read "Ada added Grace". A
// failed lookup leaves the names empty: clients fall back to the ID.
// Messages named already are left as they are.
func (s *Service) nameTargets(ctx context.Context, ms []Message) {
	var ids []int64
	for _, m := range ms {
		if m.TargetID != 0 && m.TargetName == "" && !slices.Contains(ids, m.TargetID) {
			ids = append(ids, m.TargetID)
		}
	}
	if len(ids) == 0 {
		return
	}
	us, err := s.store.Users(ctx, ids)
	if err != nil {
		s.log.Warn("load target names", "err", err)
		return
	}
	for i := range ms {
		for _, u := range us {
			if u.ID == ms[i].TargetID {
				ms[i].TargetName = u.Name
			}
		}
	}
}

func (s *Service) anonymize(ms []Message) {
	for i := range ms {
		if ms[i].SenderID == 0 {
			ms[i].SenderName = s.cfg.AnonymousName
		}
	}
}

// Send stores a text message from u in conversation id (a room or group u
// is a member of, or a direct conversation of u with a friend) and
// publishes it. A retry
// with the same clientID returns the stored message and stores nothing.
func (s *Service) Send(ctx context.Context, u User, id int64, clientID, body string) (Message, error) {
	if p, ok := s.QueueSend(ctx, u, id, clientID, body); ok {
		return p.Wait()
	}
	return s.sendChecked(ctx, u, id, clientID, body)
}

// QueueSend is Send for a client that sends again before it has the
// answer: it queues the message in the store and returns without waiting
// for its commit; Wait returns what Send would have. The messages one
// goroutine queues are stored in the order queued. ok is false where the
// message cannot be queued (its conversation is not known yet, and must be
// looked up first): the caller then waits for what it queued before, so
// that its messages keep their order, and calls Send.
func (s *Service) QueueSend(ctx context.Context, u User, id int64, clientID, body string) (p PendingSend, ok bool) {
	p = PendingSend{s: s, ctx: ctx, u: u}
	if p.err = checkClientID(clientID); p.err != nil {
		return p, true
	}
	if p.err = checkBody(body, s.cfg.MaxMessageLen); p.err != nil {
		return p, true
	}
	// This is the hot path. A conversation's kind never changes, so once
	// known it is taken from memory, and the store checks, in the
	// transaction that stores the message, that the conversation is still
	// of that kind and the sender a member: no read before the write.
	kind, ok := s.kinds.get(id)
	if !ok || kind == ConvDirect {
		return PendingSend{}, false
	}
	p.nm = NewMessage{ConvID: id, Kind: KindText, SenderID: u.ID, ClientID: clientID, Body: body, MemberOnly: true, ConvKind: kind, At: s.cfg.Now()}
	p.queued = s.store.QueueAppend(ctx, p.nm)
	return p, true
}

// PendingSend is a message that QueueSend queued.
type PendingSend struct {
	s      *Service
	ctx    context.Context
	u      User
	nm     NewMessage // as queued: its ConvKind is the one remembered
	queued PendingAppend
	err    error // refused before it was queued
}

// Wait waits for the message's commit, publishes the message, and returns
// it as Send does.
func (p PendingSend) Wait() (Message, error) {
	if p.err != nil {
		return Message{}, p.err
	}
	s := p.s
	m, _, err := s.appended(p.ctx, p.queued)
	switch {
	case err == nil:
		return m, nil
	case errors.Is(err, ErrNotMember) && p.nm.ConvKind == ConvRoom:
		return Message{}, notMember()
	case errors.Is(err, ErrNotMember):
		return Message{}, roomNotFound()
	case !errors.Is(err, ErrNotFound):
		return Message{}, internal("append message", err)
	}
	// Gone (a deleted group), or of another kind than remembered: look
	// again, for the right error.
	s.kinds.forget(p.nm.ConvID)
	return s.sendChecked(p.ctx, p.u, p.nm.ConvID, p.nm.ClientID, p.nm.Body)
}

// sendChecked is Send for a message already checked, in a conversation
// whose kind is not known yet: it looks the conversation up first.
func (s *Service) sendChecked(ctx context.Context, u User, id int64, clientID, body string) (Message, error) {
	if kind, ok := s.kinds.get(id); ok && kind == ConvDirect {
		// A direct conversation needs its peer, which the lookup below
		// would read again.
		if c, err := s.direct(ctx, u, id); err == nil {
			return s.sendDirect(ctx, u, c, clientID, body)
		}
		// Not u's, or gone: look again, for the right error.
		s.kinds.forget(id)
	}
	kind, err := s.memberKind(ctx, u, id)
	switch {
	case err != nil:
		return Message{}, err
	case kind == ConvRoom, kind == ConvGroup:
		// The store checks again as it writes: a member gone since the
		// check above is refused (MemberOnly), and so is an id given
		// meanwhile to a conversation of another kind (ConvKind: no store
		// gives a deleted conversation's id again, since SQLite's migration
		// 9, but the check costs nothing in the transaction), which could be
		// a direct conversation whose peer's block no check here would see.
		m, _, err := s.append(ctx, NewMessage{ConvID: id, Kind: KindText, SenderID: u.ID, ClientID: clientID, Body: body, MemberOnly: true, ConvKind: kind})
		return m, err
	}
	c, err := s.direct(ctx, u, id)
	if err != nil {
		return Message{}, err
	}
	return s.sendDirect(ctx, u, c, clientID, body)
}

// SendAnonymous stores a text message with no sender in room id, as the
// Django Channels-compatible endpoint does.
func (s *Service) SendAnonymous(ctx context.Context, id int64, body string) (Message, error) {
	if err := checkBody(body, s.cfg.MaxMessageLen); err != nil {
		return Message{}, err
	}
	if _, err := s.room(ctx, id); err != nil {
		return Message{}, err
	}
	m, _, err := s.append(ctx, NewMessage{ConvID: id, Kind: KindText, Body: body})
	return m, err
}

// EnterRoomAnonymous returns the room called name, creating it if needed,
// without making anyone a member. An anonymous client, known by its
// address client, makes at most Config.NewConvsPerHour rooms an hour, as
// a user does.
func (s *Service) EnterRoomAnonymous(ctx context.Context, name, client string) (Room, error) {
	name, err := NormalizeRoomName(name)
	if err != nil {
		return Room{}, err
	}
	r, err := s.store.RoomByName(ctx, name)
	if err == nil {
		return r, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return Room{}, internal("load room", err)
	}
	key := "new-conv-anon:" + client
	if err := s.allow(ctx, key, s.cfg.NewConvsPerHour, time.Hour); err != nil {
		return Room{}, err
	}
	r, created, err := s.store.EnsureRoom(ctx, name, s.cfg.Now())
	if !created {
		s.undo(ctx, key) // no room made here: it does not count
	}
	if err != nil {
		if e := (*LookAlikeError)(nil); errors.As(err, &e) {
			return Room{}, lookAlikeRoom(name, e.Name)
		}
		return Room{}, internal("ensure room", err)
	}
	return r, nil
}

// append is appendRaw with the store's refusals as the client sees them.
func (s *Service) append(ctx context.Context, nm NewMessage) (Message, bool, error) {
	m, created, err := s.appendRaw(ctx, nm)
	if errors.Is(err, ErrNotFriends) {
		return Message{}, false, notFriends()
	}
	if errors.Is(err, ErrNotMember) { // an ErrNotFound: first
		return Message{}, false, notMemberOf(nm.ConvKind)
	}
	if errors.Is(err, ErrNotFound) {
		return Message{}, false, roomNotFound()
	}
	if err != nil {
		return Message{}, false, internal("append message", err)
	}
	return m, created, nil
}

// appendRaw is append with the store's errors as they are.
func (s *Service) appendRaw(ctx context.Context, nm NewMessage) (Message, bool, error) {
	nm.At = s.cfg.Now()
	return s.appended(ctx, s.store.QueueAppend(ctx, nm))
}

// appended waits for an append that the store queued, and then names an
// anonymous sender and publishes the message. A message the store had
// already (a send retried with its client ID) is published again, marked
// Event.Repeat: the store may have committed the first try and failed to
// answer, and then nothing published it. Hubs drop it where it was
// delivered.
func (s *Service) appended(ctx context.Context, p PendingAppend) (Message, bool, error) {
	m, created, err := p.Wait()
	if err != nil {
		return Message{}, false, err
	}
	if m.SenderID == 0 {
		m.SenderName = s.cfg.AnonymousName
	}
	s.publish(ctx, ConvTopic(m.ConvID), Event{Type: EventMessage, ConvID: m.ConvID, Message: &m, Repeat: !created})
	return m, created, nil
}

// OpenRoom marks u present in room id (u must be a member) and returns the
// room and who is present now, u included, as Online does.
func (s *Service) OpenRoom(ctx context.Context, u User, id int64) (Room, []User, int, error) {
	r, err := s.member(ctx, u, id)
	if err != nil {
		return Room{}, nil, 0, err
	}
	online, n := s.markOpen(ctx, u, id, false)
	return r, online, n, nil
}

// markOpen counts one more connection of u with conversation id open and
// returns who has it open, as Online does. If u was not there before, the
// others are told, with the version of u's presence and the count at it
// (convState): the count Online read may be of another moment.
// With hide (hidesPresence), the others are not told, and u sees only
// themselves. If Online fails (a shared Presence unreachable), the open
// goes on with u alone in the list, and the others, if told, without a
// count: who is present is only shown, and the conversation must stay
// readable meanwhile.
func (s *Service) markOpen(ctx context.Context, u User, id int64, hide bool) ([]User, int) {
	first, addErr := s.presence.Add(ctx, id, u.ID)
	if addErr != nil {
		s.log.Warn("add presence", "conv", id, "user", u.ID, "err", addErr)
	}
	online, n, err := s.Online(ctx, u, id)
	if err != nil {
		s.log.Warn("list presence", "conv", id, "user", u.ID, "err", err)
		online, n = []User{public(u)}, 1
		if first && !hide {
			if _, v, ok := s.convState(ctx, id, u.ID, true); ok {
				s.announce(ctx, id, u, true, 0, v)
			}
		}
		return online, n
	}
	switch {
	case hide:
		online = alone(u, online)
		n = len(online)
	case !first:
	default:
		if n, v, ok := s.convState(ctx, id, u.ID, true); ok {
			s.announce(ctx, id, u, true, n, v)
		}
	}
	return online, n
}

// CloseRoom undoes one OpenRoom.
func (s *Service) CloseRoom(ctx context.Context, u User, id int64) error {
	last, err := s.presence.Remove(ctx, id, u.ID)
	if err != nil { // the Presence retries by itself (see addPresence)
		s.log.Warn("remove presence", "conv", id, "user", u.ID, "err", err)
	}
	if last {
		s.convPresence(ctx, id, u, false)
	}
	return nil
}

// OnlineFor is Online for u, who must be allowed to read conversation id:
// anyone a room, only its members a group or direct conversation.
func (s *Service) OnlineFor(ctx context.Context, u User, id int64) ([]User, int, error) {
	if err := s.readable(ctx, u, id); err != nil {
		return nil, 0, err
	}
	online, n, err := s.Online(ctx, u, id)
	if err == nil && s.hidesPresence(ctx, u.ID, id) {
		online = alone(u, online)
		n = len(online)
	}
	return online, n, err
}

// hidesPresence reports whether conversation id is a direct conversation
// whose two members may no longer message each other: see hides.
func (s *Service) hidesPresence(ctx context.Context, userID, id int64) bool {
	if kind, ok := s.kinds.get(id); ok && kind != ConvDirect {
		return false
	}
	c, _, err := s.conversation(ctx, id, userID)
	if err != nil {
		return !errors.Is(err, ErrNotFound)
	}
	return s.hides(ctx, userID, c)
}

// hides reports whether c, as userID sees it, is a direct conversation
// whose two members may no longer message each other (no longer friends,
// or one blocked the other): neither then learns when the other has it
// open, as neither learns when the other is online anywhere. A check that
// fails hides.
func (s *Service) hides(ctx context.Context, userID int64, c Conversation) bool {
	if c.Kind != ConvDirect {
		return false
	}
	return c.Peer == nil || s.CanMessage(ctx, userID, c.Peer.ID) != nil
}

// alone is the list of those present, online, with u only, if u is among
// them.
func alone(u User, online []User) []User {
	for _, o := range online {
		if o.ID == u.ID {
			return []User{o}
		}
	}
	return []User{}
}

// OnlineOrAlone is Online for u, who has conversation id open already
// (an open repeated), as the open showed it: if who is present cannot be
// read (a shared Presence unreachable), u alone, as markOpen has it.
// In a direct conversation whose two may no longer message each other, u
// sees only u, as markOpen and OnlineFor show it (hidesPresence).
func (s *Service) OnlineOrAlone(ctx context.Context, u User, id int64) ([]User, int) {
	online, n, err := s.Online(ctx, u, id)
	if err != nil {
		s.log.Warn("list presence", "conv", id, "user", u.ID, "err", err)
		return []User{public(u)}, 1
	}
	if s.hidesPresence(ctx, u.ID, id) {
		online = alone(u, online)
		n = len(online)
	}
	return online, n
}

// Online returns how many users have conversation id open and, by name, at
// most Config.OnlineMax of them: all of them up to that size. In a larger
// one the list holds u if u is present: whoever looks sees themselves.
func (s *Service) Online(ctx context.Context, u User, id int64) ([]User, int, error) {
	ids, n, err := s.presence.Online(ctx, id, s.cfg.OnlineMax)
	if err != nil {
		return nil, 0, internal("list presence", err)
	}
	if n > len(ids) && !slices.Contains(ids, u.ID) {
		in, err := s.presence.OnlineOf(ctx, id, []int64{u.ID})
		if err != nil {
			return nil, 0, internal("list presence", err)
		}
		switch {
		case len(in) == 0:
		case len(ids) < s.cfg.OnlineMax:
			ids = append(ids, u.ID)
		default:
			ids[len(ids)-1] = u.ID
		}
	}
	us, err := s.store.Users(ctx, ids)
	if err != nil {
		return nil, 0, internal("load users", err)
	}
	slices.SortFunc(us, func(a, b User) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return int(a.ID - b.ID)
	})
	return us, n, nil
}

// RoomFor returns room id and whether u is a member of it.
func (s *Service) RoomFor(ctx context.Context, u User, id int64) (Room, bool, error) {
	r, err := s.room(ctx, id)
	if err != nil {
		return Room{}, false, err
	}
	ok, err := s.store.IsMember(ctx, id, u.ID)
	if err != nil {
		return Room{}, false, internal("check member", err)
	}
	return r, ok, nil
}

// Sync returns up to limit messages of room id with seq > after, oldest
// first: what a client that has seen everything up to after has missed.
func (s *Service) Sync(ctx context.Context, u User, id, after int64, limit int) ([]Message, error) {
	if after < 0 {
		return nil, Invalid(CodeInvalidField, "after", "after must not be negative")
	}
	if limit <= 0 || limit > s.cfg.HistoryLimit {
		limit = s.cfg.HistoryLimit
	}
	return s.History(ctx, u, id, pageAfter(after, limit))
}

// pageAfter selects the oldest limit messages with seq > after, where after
// is not negative. A Page with After 0 is the newest messages, but
// sequences start at 1 without gaps, so "after 0" is "before limit+1".
func pageAfter(after int64, limit int) Page {
	if after == 0 {
		return Page{Before: int64(limit) + 1, Limit: limit}
	}
	return Page{After: after, Limit: limit}
}

// CheckMember returns nil if u is a member of conversation id (a room, a
// direct conversation or a group), and the error an open would get
// otherwise.
func (s *Service) CheckMember(ctx context.Context, u User, id int64) error {
	kind, err := s.memberKind(ctx, u, id)
	if err != nil || kind != ConvDirect {
		return err
	}
	// A direct conversation needs its peer too.
	_, err = s.direct(ctx, u, id)
	return err
}

// A Mark is where a membership check found a user a member of a
// conversation (CheckMemberAt): UserSeq is where the user's event log
// stood before the check, Seq the conversation's last seq when the
// membership was read. A removal of the user from the conversation
// numbered at or before the mark ended an earlier membership: an
// EventRemoved with 0 < UserSeq <= mark.UserSeq, or the group's removed
// or leave message (the Event with Revoke) with seq <= mark.Seq. It is
// old news to whoever subscribed on the check (hub.Hub.SubscribeMember).
type Mark struct {
	UserSeq int64
	Seq     int64
}

// A MemberAt is a conversation that a user was found a member of, with
// the mark of the read that found it.
type MemberAt struct {
	ID   int64
	Mark Mark
}

// CheckMemberAt is CheckMember that also returns the check's mark. An
// EventRemoved of u from conversation id is logged in the transaction that
// ends the membership (LeaveRoom, RemoveGroupMember, DeleteGroup), and one
// statement reads the membership, the conversation's last seq and the
// user's log position (Conversation.UserSeq): a removal numbered up to the
// mark ended an earlier membership than the one the check found, and one
// numbered after it this one or a later one. The removal's message is
// stored with the membership's end too: one numbered up to the mark's
// Seq ended an earlier one.
func (s *Service) CheckMemberAt(ctx context.Context, u User, id int64) (Mark, error) {
	c, err := s.memberConversation(ctx, u, id)
	if err != nil {
		return Mark{}, err
	}
	return Mark{UserSeq: c.UserSeq, Seq: c.LastSeq}, nil
}

// memberKind returns the kind of conversation id if u is a member of it,
// and otherwise the error an open gets.
func (s *Service) memberKind(ctx context.Context, u User, id int64) (ConvKind, error) {
	kind, member, err := s.membership(ctx, u, id)
	switch {
	case err != nil:
		return "", err
	case !member:
		return "", notMemberOf(kind)
	}
	return kind, nil
}

// membership returns the kind of conversation id and whether u is a
// member of it, from one statement, two index lookups; for an unknown id,
// the error an open gets.
func (s *Service) membership(ctx context.Context, u User, id int64) (ConvKind, bool, error) {
	kind, member, err := s.store.Membership(ctx, id, u.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		return "", false, roomNotFound()
	case err != nil:
		return "", false, internal("load membership", err)
	}
	s.kinds.put(id, kind)
	return kind, member, nil
}

// notMemberOf is the error a non-member of a conversation of this kind
// gets: told so for a room, which anyone may enter; for a group or a
// direct conversation, the error an unknown id gets, which tells nothing.
func notMemberOf(kind ConvKind) error {
	if kind == ConvRoom {
		return notMember()
	}
	return roomNotFound()
}

// Typing tells the other members who have conversation id open that u is
// typing. It is ephemeral: nothing is stored.
func (s *Service) Typing(ctx context.Context, u User, id int64) error {
	kind, err := s.memberKind(ctx, u, id)
	if err != nil {
		return err
	}
	if kind == ConvDirect {
		// As a send: only to a friend, neither blocking the other.
		c, err := s.direct(ctx, u, id)
		if err != nil {
			return err
		}
		if err := s.CanMessage(ctx, u.ID, c.Peer.ID); err != nil {
			return err
		}
	}
	if !s.typers.allow(id, s.cfg.Now()) {
		return nil // dropped, as a connection's own limit drops typing
	}
	tu := User{ID: u.ID, Name: u.Name}
	s.publish(ctx, ConvTopic(id), Event{Type: EventTyping, ConvID: id, User: &tu})
	return nil
}

const (
	typingWindow = 2 * time.Second // a connection forwards one typing per conversation in it
	typingMax    = 10              // typing events a node forwards per conversation in a window
)

// typers bounds the typing events a node forwards in each conversation to
// typingMax every typingWindow. Each connection forwards one per
// conversation every typingWindow, but in a room of thousands where
// hundreds type, each viewer would still get hundreds of frames in every
// window, to show names nobody can read: the cost of a room of n grows
// with n² as presence's would (OnlineMax).
type typers struct {
	mu      sync.Mutex
	convs   map[int64]typingCount
	sweepAt int // size of convs at which windows over are swept out
}

// typingCount is a conversation's typing events forwarded since start.
type typingCount struct {
	start time.Time
	n     int
}

// allow reports whether conversation id's typing event at now may go
// out, and counts it if so.
func (t *typers) allow(id int64, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.convs[id]
	if ok && !now.Before(c.start) && now.Sub(c.start) < typingWindow {
		if c.n >= typingMax {
			return false
		}
		c.n++
		t.convs[id] = c
		return true
	}
	if t.convs == nil {
		t.convs, t.sweepAt = make(map[int64]typingCount), 1024
	}
	if !ok && len(t.convs) >= t.sweepAt {
		for k, c := range t.convs {
			if now.Before(c.start) || now.Sub(c.start) >= typingWindow {
				delete(t.convs, k)
			}
		}
		t.sweepAt = max(1024, 2*len(t.convs))
	}
	t.convs[id] = typingCount{start: now, n: 1}
	return true
}
