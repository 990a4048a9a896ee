package chat

import (
	"context"
	"errors"
)

// Direct conversations, read positions and the conversation list.
//
// A direct conversation is created by the first message between two
// friends. Only its two members may read it; anyone else gets the same
// not_found as for an id that does not exist, so a direct conversation is
// never revealed to a third user. Sending needs CanMessage at every send.
//
// Each direct message is also published to both members' user topics
// (EventConversation), so that every tab and device can update its list
// and badges without having the conversation open. Rooms do not fan out to
// user topics (a room may have many members): clients refresh the room
// part of the list from GET /api/conversations.

// conversation reads conversation id as userID sees it, and remembers its
// kind for Send.
func (s *Service) conversation(ctx context.Context, id, userID int64) (Conversation, bool, error) {
	c, member, err := s.store.Conversation(ctx, id, userID)
	if err == nil {
		s.kinds.put(id, c.Kind)
	}
	return c, member, err
}

// direct returns direct conversation id as u sees it if u is one of its
// members; otherwise the error an unknown id gets.
func (s *Service) direct(ctx context.Context, u User, id int64) (Conversation, error) {
	c, member, err := s.conversation(ctx, id, u.ID)
	if errors.Is(err, ErrNotFound) {
		return Conversation{}, roomNotFound()
	}
	if err != nil {
		return Conversation{}, internal("load conversation", err)
	}
	if c.Kind != ConvDirect || !member || c.Peer == nil {
		return Conversation{}, roomNotFound()
	}
	s.present(&c)
	return c, nil
}

// readable returns nil if u may read conversation id: any room, or a
// direct conversation or group u is a member of.
func (s *Service) readable(ctx context.Context, u User, id int64) error {
	kind, member, err := s.membership(ctx, u, id)
	switch {
	case err != nil:
		return err
	case kind == ConvRoom:
		return nil
	case !member:
		return roomNotFound()
	case kind == ConvGroup:
		return nil
	}
	// A direct conversation needs its peer too.
	_, err = s.direct(ctx, u, id)
	return err
}

// present fills in what the store leaves to the Service: the unread count,
// the peer without email, the anonymous sender name.
func (s *Service) present(c *Conversation) {
	c.Unread = max(0, c.LastSeq-c.ReadSeq)
	if c.Peer != nil {
		p := public(*c.Peer)
		c.Peer = &p
	}
	if c.LastMessage != nil && c.LastMessage.SenderID == 0 {
		c.LastMessage.SenderName = s.cfg.AnonymousName
	}
}

// nameLast fills in the TargetName of the last messages of cs that are
// group events, as nameTargets does for a page of history.
func (s *Service) nameLast(ctx context.Context, cs []Conversation) {
	var ms []Message
	for _, c := range cs {
		if c.LastMessage != nil && c.LastMessage.TargetID != 0 {
			ms = append(ms, *c.LastMessage)
		}
	}
	if len(ms) == 0 {
		return
	}
	s.nameTargets(ctx, ms)
	for _, c := range cs {
		if c.LastMessage != nil && c.LastMessage.TargetID != 0 {
			c.LastMessage.TargetName, ms = ms[0].TargetName, ms[1:]
		}
	}
}

// sendDirect appends a text message from u to direct conversation c, if u
// may still message the peer, and publishes it to the conversation and to
// both members' user topics; a retry, again (see appended), which clients
// drop by seq if they have it. Whether u may is checked by the store, in
// the transaction that stores the message (NewMessage.Peer), not read
// before.
func (s *Service) sendDirect(ctx context.Context, u User, c Conversation, clientID, body string) (Message, error) {
	m, created, err := s.append(ctx, NewMessage{ConvID: c.ID, Kind: KindText, SenderID: u.ID, ClientID: clientID, Body: body, Peer: c.Peer.ID, ConvKind: ConvDirect})
	if err != nil {
		return Message{}, err
	}
	peer, me := public(*c.Peer), public(u)
	s.publish(ctx, UserTopic(u.ID), Event{Type: EventConversation, ConvID: c.ID, ConvKind: ConvDirect, Message: &m, User: &peer, Repeat: !created})
	s.publish(ctx, UserTopic(peer.ID), Event{Type: EventConversation, ConvID: c.ID, ConvKind: ConvDirect, Message: &m, User: &me, Repeat: !created})
	return m, nil
}

// SendDirect sends a text message from u to user peerID in their direct
// conversation, creating the conversation on the first message. u and
// peerID must be friends, neither blocking the other. A retry with the same
// clientID returns the stored message. It returns the message and the
// conversation as u sees it after the send.
func (s *Service) SendDirect(ctx context.Context, u User, peerID int64, clientID, body string) (Message, Conversation, error) {
	if err := checkClientID(clientID); err != nil {
		return Message{}, Conversation{}, err
	}
	if err := checkBody(body, s.cfg.MaxMessageLen); err != nil {
		return Message{}, Conversation{}, err
	}
	if err := s.CanMessage(ctx, u.ID, peerID); err != nil {
		return Message{}, Conversation{}, err
	}
	c, _, err := s.store.EnsureDirect(ctx, u.ID, peerID, s.cfg.Now())
	if errors.Is(err, ErrNotFound) {
		return Message{}, Conversation{}, userNotFound()
	}
	if err != nil {
		return Message{}, Conversation{}, internal("ensure direct conversation", err)
	}
	if c.Peer == nil {
		return Message{}, Conversation{}, userNotFound()
	}
	m, err := s.sendDirect(ctx, u, c, clientID, body)
	if err != nil {
		return Message{}, Conversation{}, err
	}
	c, err = s.direct(ctx, u, c.ID)
	if err != nil {
		return Message{}, Conversation{}, err
	}
	return m, c, nil
}

// DirectWith returns u's direct conversation with user peerID; not_found if
// they have none. It stays readable after the two stop being friends.
func (s *Service) DirectWith(ctx context.Context, u User, peerID int64) (Conversation, error) {
	if err := notSelf(u, peerID, "you have no conversation with yourself"); err != nil {
		return Conversation{}, err
	}
	c, err := s.store.Direct(ctx, u.ID, peerID)
	if errors.Is(err, ErrNotFound) {
		return Conversation{}, Errorf(ErrNotFound, CodeNotFound, "you have no conversation with this user")
	}
	if err != nil {
		return Conversation{}, internal("load direct conversation", err)
	}
	s.present(&c)
	return c, nil
}

// ConversationFor returns conversation id as u sees it: any room (rooms are
// public; ReadSeq is 0 for a non-member), or a direct conversation or group
// of u.
func (s *Service) ConversationFor(ctx context.Context, u User, id int64) (Conversation, error) {
	c, member, err := s.conversation(ctx, id, u.ID)
	if errors.Is(err, ErrNotFound) {
		return Conversation{}, roomNotFound()
	}
	if err != nil {
		return Conversation{}, internal("load conversation", err)
	}
	switch c.Kind {
	case ConvRoom:
		if !member {
			// Shown to anyone; nothing in it is unread for one not in it,
			// who has no read position to count from.
			c.ReadSeq, c.Unread = c.LastSeq, 0
		}
	case ConvDirect:
		if !member || c.Peer == nil {
			return Conversation{}, roomNotFound()
		}
	case ConvGroup:
		if !member {
			return Conversation{}, roomNotFound()
		}
	default:
		return Conversation{}, roomNotFound()
	}
	s.present(&c)
	s.nameLast(ctx, []Conversation{c})
	return c, nil
}

// OpenConversation is OpenRoom for any conversation u is a member of: it
// marks u present and returns the conversation as u sees it and who is
// present, u included, as Online does.
func (s *Service) OpenConversation(ctx context.Context, u User, id int64) (Conversation, []User, int, error) {
	c, err := s.memberOf(ctx, u, id)
	if err != nil {
		return Conversation{}, nil, 0, err
	}
	online, n := s.markOpen(ctx, u, id, s.hides(ctx, u.ID, c))
	s.nameLast(ctx, []Conversation{c})
	return c, online, n, nil
}

// Conversations lists every conversation u is a member of, most recently
// active first, each with its last message and u's unread count.
func (s *Service) Conversations(ctx context.Context, u User) ([]Conversation, error) {
	cs, err := s.store.Conversations(ctx, u.ID)
	if err != nil {
		return nil, internal("list conversations", err)
	}
	for i := range cs {
		s.present(&cs[i])
	}
	s.nameLast(ctx, cs)
	return cs, nil
}

// MarkRead moves u's read position in conversation id forward to seq
// (clamped to the last seq; never back) and, if it moved, tells every
// connection of u (EventRead). It returns u's read state after the call.
// u must be a member: not_member for a room, not_found for a direct
// conversation of others.
func (s *Service) MarkRead(ctx context.Context, u User, id, seq int64) (ReadState, error) {
	if seq < 0 {
		return ReadState{}, Invalid(CodeInvalidField, "seq", "seq must not be negative")
	}
	// The web app marks a conversation read as each message arrives in
	// it, so in a room or a group the store's write alone checks the
	// membership: no read before it where the node knows the kind.
	kind, known := s.kinds.get(id)
	var c Conversation
	if !known || kind == ConvDirect {
		var err error
		if c, err = s.memberOf(ctx, u, id); err != nil {
			return ReadState{}, err
		}
		kind = c.Kind
	}
	m := s.reads.mark(ctx, s.store, ReadMark{ConvID: id, UserID: u.ID, Seq: seq})
	st, moved, err := m.State, m.Moved, m.Err
	switch {
	case errors.Is(err, ErrNotFound) && kind != ConvRoom:
		// Not a group's member, or removed since memberOf found u one:
		// as memberOf answers a non-member.
		return ReadState{}, roomNotFound()
	case errors.Is(err, ErrNotFound):
		return ReadState{}, notMember() // not a room's member, or left in between
	case err != nil:
		return ReadState{}, internal("mark read", err)
	}
	if moved {
		s.publish(ctx, UserTopic(u.ID), Event{Type: EventRead, ConvID: id, Seq: st.ReadSeq})
		// Receipts: direct and group conversations only, and not to a
		// peer u may no longer message (hides).
		switch {
		case kind == ConvGroup:
			s.receipt(id, u.ID, 0, st.ReadSeq)
		case kind == ConvDirect && !s.hides(ctx, u.ID, c):
			s.receipt(id, u.ID, c.Peer.ID, st.ReadSeq)
		}
	}
	return st, nil
}

// memberOf returns conversation id as u sees it if u is a member, with
// one store call; otherwise the error CheckMember gives.
func (s *Service) memberOf(ctx context.Context, u User, id int64) (Conversation, error) {
	c, err := s.memberConversation(ctx, u, id)
	if err != nil {
		return Conversation{}, err
	}
	s.present(&c)
	return c, nil
}

// memberConversation is memberOf without the peer's presence: one
// statement reads the conversation and u's membership together.
func (s *Service) memberConversation(ctx context.Context, u User, id int64) (Conversation, error) {
	c, member, err := s.conversation(ctx, id, u.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		return Conversation{}, roomNotFound()
	case err != nil:
		return Conversation{}, internal("load conversation", err)
	case !member:
		return Conversation{}, notMemberOf(c.Kind)
	case c.Kind == ConvDirect && c.Peer == nil:
		return Conversation{}, roomNotFound()
	}
	return c, nil
}

// ReadPositions returns the read positions of the other members of direct
// conversation or group id, for read receipts; u must be a member. For a
// room it returns none: rooms have no receipts; nor for a direct
// conversation whose peer u may no longer message (hides).
func (s *Service) ReadPositions(ctx context.Context, u User, id int64) ([]ReadPosition, error) {
	c, err := s.memberOf(ctx, u, id)
	if err != nil {
		return nil, err
	}
	out := []ReadPosition{}
	if c.Kind == ConvRoom || s.hides(ctx, u.ID, c) {
		return out, nil
	}
	ps, err := s.store.ReadPositions(ctx, id)
	if err != nil {
		return nil, internal("load read positions", err)
	}
	for _, p := range ps {
		if p.UserID != u.ID {
			out = append(out, p)
		}
	}
	return out, nil
}

// UserGroups lists the groups u belongs to, each with the mark of the
// read that found it (CheckMemberAt): every connection of u receives
// their events, opened or not, to keep the conversation list live, and
// a removal numbered at or before the mark, which may reach a node late,
// ended an earlier membership (hub.Hub.SubscribeMember).
func (s *Service) UserGroups(ctx context.Context, u User) ([]MemberAt, error) {
	gs, err := s.store.UserGroups(ctx, u.ID)
	if err != nil {
		return nil, internal("list groups", err)
	}
	return gs, nil
}
