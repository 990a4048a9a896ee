// Package chat owns Parley's domain: users, sign-in, rooms, messages and the
// events that carry them, the rules of who may do what (Service), and the
// small interfaces the domain consumes (stores, Broker, Presence, Mailer,
// Limiter). It uses the standard library only (and the few packages
// TestDependencies lists): never net/http, database/sql or a driver.
package chat

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// User is a person who has signed in at least once.
type User struct {
	ID        int64     `json:"id"`
	Email     string    `json:"-"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	// NameVersion counts the changes of Name (UserStore.SetUserName bumps
	// it as it stores the name): the version a rename's news carries
	// (Event.Seq of an EventUser). 0 for a name never changed, or unknown.
	NameVersion int64 `json:"name_version,omitempty"`
}

// Session is a signed-in browser or device. Only the hash of its token is
// stored.
type Session struct {
	ID        int64
	UserID    int64
	TokenHash string
	CreatedAt time.Time
	ExpiresAt time.Time
	// UsedAt is when the session last authenticated a request or had a
	// connection open, to within SessionUseStep: a session past
	// MaxSessionsPerUser ends by it.
	UsedAt time.Time
}

// LoginCode is a pending one-time code of an email address; an address
// may have several. Only its hash is stored; Attempts counts the tries
// made against the address while it was pending.
type LoginCode struct {
	Email     string
	Hash      string
	ExpiresAt time.Time
	Attempts  int
}

// Room is a public named conversation.
type Room struct {
	ID           int64     `json:"id"`
	Name         string    `json:"name"`
	CreatedAt    time.Time `json:"created_at"`
	LastSeq      int64     `json:"last_seq"`
	LastActiveAt time.Time `json:"last_active_at"`
	Members      int       `json:"members"`
	Recent       int       `json:"recent,omitempty"` // messages in the activity window (ActiveRooms only)
}

// ConvKind tells what kind of conversation a Conversation is.
type ConvKind string

const (
	ConvRoom   ConvKind = "room"   // public, named; anyone may read, members write
	ConvDirect ConvKind = "direct" // exactly two users, no name; only they read and write
	ConvGroup  ConvKind = "group"  // private, named; only members read and write (groups.go)
)

// Conversation is any conversation (room, direct, group) as one user sees
// it: with that user's read position and, for a direct conversation, the
// other user (Peer). Unread is LastSeq - ReadSeq: every entry after the read
// position, which is never the user's own, since a user's own message moves
// their read position to it.
type Conversation struct {
	ID           int64     `json:"id"`
	Kind         ConvKind  `json:"kind"`
	Name         string    `json:"name,omitempty"`
	Peer         *User     `json:"peer,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	LastSeq      int64     `json:"last_seq"`
	ReadSeq      int64     `json:"read_seq"`
	Unread       int64     `json:"unread"`
	LastMessage  *Message  `json:"last_message"`
	LastActiveAt time.Time `json:"last_active_at"`
	Members      int       `json:"members"`
	// UserSeq is where the viewer's event log stood (the UserSeq of their
	// newest event) when Store.Conversation read c: read in the same
	// statement as the membership, for Service.CheckMemberAt's mark.
	UserSeq int64 `json:"-"`
}

// Room returns c as a Room (meaningful for rooms).
func (c Conversation) Room() Room {
	return Room{ID: c.ID, Name: c.Name, CreatedAt: c.CreatedAt, LastSeq: c.LastSeq, LastActiveAt: c.LastActiveAt, Members: c.Members}
}

// ReadState is a user's read position in a conversation.
type ReadState struct {
	ConvID  int64
	ReadSeq int64
	LastSeq int64
}

// MessageKind tells what a message in a conversation's sequence records.
type MessageKind string

const (
	KindText  MessageKind = "text"  // a chat message
	KindJoin  MessageKind = "join"  // the sender joined the room
	KindLeave MessageKind = "leave" // the sender left the room (or group)

	// Group events (groups.go). SenderID is who acted; TargetID, where
	// set, the member it concerns.
	KindCreated          MessageKind = "created"           // the sender created the group; Body is its name
	KindAdded            MessageKind = "added"             // the sender added TargetID
	KindRemoved          MessageKind = "removed"           // the sender removed TargetID
	KindRenamed          MessageKind = "renamed"           // Body is the new name
	KindDescribed        MessageKind = "described"         // Body is the new description
	KindAdminGranted     MessageKind = "admin_granted"     // TargetID is now an admin
	KindAdminRevoked     MessageKind = "admin_revoked"     // TargetID is a plain member again
	KindOwnerTransferred MessageKind = "owner_transferred" // TargetID is the owner; the sender an admin
	KindCapChanged       MessageKind = "cap_changed"       // Body is the new member cap, in decimal
)

// Message is one entry of a conversation's gap-free sequence.
type Message struct {
	ConvID     int64       `json:"room_id"`
	Seq        int64       `json:"seq"`
	Kind       MessageKind `json:"kind"`
	SenderID   int64       `json:"sender_id"` // 0: anonymous (Channels-compatible endpoint)
	SenderName string      `json:"sender_name"`
	ClientID   string      `json:"client_id,omitempty"`
	Body       string      `json:"body"`
	TargetID   int64       `json:"target_id,omitempty"`   // the member a group event concerns
	TargetName string      `json:"target_name,omitempty"` // TargetID's name when read (not stored)
	CreatedAt  time.Time   `json:"created_at"`
}

// NewMessage is what Append stores.
type NewMessage struct {
	ConvID   int64
	Kind     MessageKind
	SenderID int64
	ClientID string // "" means no idempotency key
	Body     string
	TargetID int64
	At       time.Time
	// MemberOnly makes Append refuse, with ErrNotMember (an ErrNotFound), a
	// sender who is not a member of the conversation when the message is
	// stored.
	MemberOnly bool
	// ConvKind, if set, makes Append refuse, with ErrNotFound, a
	// conversation of another kind.
	ConvKind ConvKind
	// Peer, if set, makes Append refuse, with ErrNotFriends, a message
	// from a sender who is not Peer's friend when it is stored, or when
	// either blocks the other: a direct message's check, in the
	// transaction that stores it.
	Peer int64
}

// Page selects messages of one conversation. With After > 0 it returns the
// oldest messages with seq > After, ascending; otherwise the newest with
// seq < Before (no bound when Before is 0), also returned ascending. It
// holds up to Limit messages, DefaultPageLimit when Limit is not positive.
type Page struct {
	After  int64
	Before int64
	Limit  int
}

// DefaultPageLimit is how many messages a Page holds when its Limit is not
// positive.
const DefaultPageLimit = 100

// DefaultActiveRooms is how many rooms RoomStore.ActiveRooms lists when its
// limit is not positive.
const DefaultActiveRooms = 20

// UserStore keeps users. Lookups of unknown users return ErrNotFound.
type UserStore interface {
	// EnsureUser returns the user with this (normalized) email, creating it
	// when absent; created tells which.
	EnsureUser(ctx context.Context, email string, at time.Time) (u User, created bool, err error)
	User(ctx context.Context, id int64) (User, error)
	Users(ctx context.Context, ids []int64) ([]User, error)
	// SetUserName stores name as user id's and, in the same write, adds
	// one to its NameVersion.
	SetUserName(ctx context.Context, id int64, name string) (User, error)
}

// AuthStore keeps login codes and sessions.
type AuthStore interface {
	// PutLoginCode adds c as a pending code of c.Email, with no attempts
	// counted, and keeps of the address's pending codes the keep that
	// expire last (of two expiring at once, the one put last).
	PutLoginCode(ctx context.Context, c LoginCode, keep int) error
	// RestoreLoginCode puts c back as PutLoginCode does, unless a code of
	// c.Email with its hash is pending, and reports whether it did: false
	// too when c is not among the keep kept.
	RestoreLoginCode(ctx context.Context, c LoginCode, keep int) (bool, error)
	// AttemptLoginCodes atomically counts one try against every pending
	// code of email and returns them, Attempts including this try;
	// ErrNotFound when there is none.
	AttemptLoginCodes(ctx context.Context, email string) ([]LoginCode, error)
	// DeleteLoginCode removes the pending code of email whose hash is
	// hash, and reports whether it did: of concurrent callers, one wins.
	// The address's other codes stay.
	DeleteLoginCode(ctx context.Context, email, hash string) (bool, error)
	// DropLoginCode removes the pending code of email whose hash is hash,
	// and reports whether it was pending with no try counted against it.
	// The address's other codes stay.
	DropLoginCode(ctx context.Context, email, hash string) (untried bool, err error)
	// UseLoginCode removes every pending code of email if one has hash
	// hash, and reports whether it did: of concurrent callers for one
	// address, one wins.
	UseLoginCode(ctx context.Context, email, hash string) (bool, error)
	// CreateSession stores s and returns it with its ID; a zero UsedAt is
	// stored as CreatedAt.
	CreateSession(ctx context.Context, s Session) (Session, error)
	// Session returns the session with this token hash and its user;
	// ErrNotFound if there is none.
	Session(ctx context.Context, tokenHash string) (Session, User, error)
	// UseSession sets the UsedAt and the ExpiresAt of session id;
	// ErrNotFound if there is none.
	UseSession(ctx context.Context, id int64, used, expires time.Time) error
	DeleteSession(ctx context.Context, id int64) error
	// TrimSessions removes the sessions of userID made before session
	// keep (of lower ID) but the n of them used last (by UsedAt, then
	// ID), and returns the IDs it removed, in any order. The sessions
	// made after keep are left to their own sign-in's trim: two sign-ins
	// at once must not end each other.
	TrimSessions(ctx context.Context, userID, keep int64, n int) ([]int64, error)
	// LiveSessions returns those of ids that are sessions expiring after
	// now, in any order, without their TokenHash.
	LiveSessions(ctx context.Context, ids []int64, now time.Time) ([]Session, error)
	// UseSessions sets the UsedAt of those of ids that are sessions used
	// before used to used, in one write; the others, and ids that are no
	// sessions, it leaves as they are.
	UseSessions(ctx context.Context, ids []int64, used time.Time) error
	// DeleteExpired removes up to limit (> 0) of the sessions and login
	// codes that expire at or before now, in all, and returns how many it
	// removed: a caller that wants them all calls again while it removes
	// limit.
	DeleteExpired(ctx context.Context, now time.Time, limit int) (int, error)
}

// RoomStore keeps rooms and their members.
type RoomStore interface {
	// EnsureRoom returns the room with this name, or whose name differs
	// from it only in case, creating it when absent; created reports
	// whether this call made it (not another made at the same time). A
	// *LookAlikeError (ErrNameLookAlike) if the name is absent but another
	// room's has its NameSkeleton: no room is made.
	EnsureRoom(ctx context.Context, name string, at time.Time) (r Room, created bool, err error)
	Room(ctx context.Context, id int64) (Room, error)
	RoomByName(ctx context.Context, name string) (Room, error)
	// JoinRoom makes userID a member and, if announce, in the same
	// transaction appends a KindJoin message; joined is false (and m zero)
	// if already a member. Without announce, m is zero and the member has
	// read the room up to its last message, as the join would have made it.
	JoinRoom(ctx context.Context, roomID, userID int64, at time.Time, announce bool) (m Message, joined bool, err error)
	// LeaveRoom is JoinRoom's inverse, appending KindLeave if announce.
	// In the same transaction it keeps removed in userID's event log, as
	// AppendUserEvent does, and returns it numbered (logged); if userID was
	// not a member, nothing is logged and logged is zero.
	LeaveRoom(ctx context.Context, roomID, userID int64, at time.Time, announce bool, removed Event) (m Message, logged Event, left bool, err error)
	IsMember(ctx context.Context, roomID, userID int64) (bool, error)
	// UserRooms lists the rooms userID belongs to, most recently active first.
	UserRooms(ctx context.Context, userID int64) ([]Room, error)
	// ActiveRooms lists up to limit rooms (DefaultActiveRooms when not
	// positive) by messages since since, most first.
	ActiveRooms(ctx context.Context, since time.Time, limit int) ([]Room, error)
}

// MessageStore keeps each conversation's sequence of messages.
type MessageStore interface {
	// Append stores m with seq = the conversation's last seq + 1, in one
	// transaction. If m.ClientID is set and (ConvID, SenderID, ClientID)
	// was stored before, it returns that message and created = false.
	// In the same transaction it moves the sender's read position in the
	// conversation (if the sender is a member) forward to the new seq, so
	// that one's own messages never count as unread.
	// ErrNotFound if the conversation does not exist.
	Append(ctx context.Context, m NewMessage) (msg Message, created bool, err error)
	// QueueAppend is Append that returns once the store has queued m,
	// before its commit; Wait then returns what Append would have.
	// Messages queued one after the other by one goroutine are stored in
	// that order. Append is QueueAppend followed by Wait.
	QueueAppend(ctx context.Context, m NewMessage) PendingAppend
	Messages(ctx context.Context, convID int64, p Page) ([]Message, error)
}

// ConversationStore keeps direct conversations and read positions, and
// lists each user's conversations of every kind.
type ConversationStore interface {
	// EnsureDirect returns the direct conversation of users a and b, as a
	// sees it, creating it with exactly a and b as members when absent;
	// created tells which. Of concurrent callers for one pair, one creates
	// and all get the same conversation. ErrNotFound if a user does not
	// exist; ErrInvalid if a == b.
	EnsureDirect(ctx context.Context, a, b int64, at time.Time) (c Conversation, created bool, err error)
	// Direct returns the direct conversation of a and b as a sees it;
	// ErrNotFound if there is none.
	Direct(ctx context.Context, a, b int64) (Conversation, error)
	// Conversation returns conversation id of any kind as userID sees it
	// and whether userID is a member; for a non-member ReadSeq is 0 and
	// Peer nil. ErrNotFound if it does not exist. UserSeq is userID's
	// LastUserEvent, read in the same statement (one snapshot).
	Conversation(ctx context.Context, id, userID int64) (c Conversation, member bool, err error)
	// Membership returns the kind of conversation id and whether userID
	// is a member, and nothing else: the check of every send. ErrNotFound
	// if it does not exist.
	Membership(ctx context.Context, id, userID int64) (kind ConvKind, member bool, err error)
	// Conversations lists the conversations userID is a member of, most
	// recently active first (then highest id first).
	Conversations(ctx context.Context, userID int64) ([]Conversation, error)
	// UserGroups lists the groups userID is a member of, by ascending id:
	// what a connection follows. Each comes with the mark of the read
	// (Service.CheckMemberAt): userID's log position and the group's last
	// seq, read in one statement with the memberships.
	UserGroups(ctx context.Context, userID int64) ([]MemberAt, error)
	// MarkRead moves read positions, in one transaction: for each mark,
	// UserID's in ConvID forward to Seq, clamped to the conversation's
	// last seq, never back, in the order given. It sets each mark's State
	// and Moved (whether it changed), or its Err to ErrNotFound if UserID
	// is not a member of ConvID; the others still move. An error of the
	// whole batch moves none and is returned.
	MarkRead(ctx context.Context, marks []ReadMark) error
}

// ReadMark is one move of a read position in a Store.MarkRead batch: the
// request, then its outcome.
type ReadMark struct {
	ConvID, UserID, Seq int64

	State ReadState
	Moved bool
	Err   error
}

// ReadPosition is one member's read position in a conversation.
type ReadPosition struct {
	UserID int64 `json:"user_id"`
	Seq    int64 `json:"seq"`
}

// ActivityStore keeps what the messenger shows besides messages: when each
// user was last seen, members' read positions (for read receipts), and a
// per-user log of the events addressed to a user that no conversation
// stores (friend requests and their answers, being added to or removed
// from a group), so that a user who was away receives them in order.
type ActivityStore interface {
	// SetLastSeen records that userID was last connected at at, unless a
	// later time is recorded: a write of another node's, made late or
	// with its clock behind, moves nothing back.
	SetLastSeen(ctx context.Context, userID int64, at time.Time) error
	// LastSeen returns the last-seen times of those of ids that have one.
	LastSeen(ctx context.Context, ids []int64) (map[int64]time.Time, error)
	// ReadPositions lists the read positions of convID's members, by user
	// id; empty if the conversation has none or does not exist.
	ReadPositions(ctx context.Context, convID int64) ([]ReadPosition, error)
	// AppendUserEvent stores ev as userID's next event, numbered one more
	// than the previous (from 1, gap-free), and returns it with UserSeq
	// set. ErrNotFound if the user does not exist. The end of a
	// membership logs its EventRemoved in the transaction that ends it
	// instead (LeaveRoom, RemoveGroupMember, DeleteGroup).
	AppendUserEvent(ctx context.Context, userID int64, ev Event, at time.Time) (Event, error)
	// AppendMemberEvent is AppendUserEvent if userID is a member of
	// conversation convID, in a transaction that serializes with the
	// changes of its membership: the end of that membership, which logs
	// its EventRemoved in its own transaction, comes before ev, and finds
	// nothing logged (member false), or after it.
	AppendMemberEvent(ctx context.Context, userID, convID int64, ev Event, at time.Time) (logged Event, member bool, err error)
	// UserEvents returns up to limit of userID's events with UserSeq >
	// after, ascending.
	UserEvents(ctx context.Context, userID, after int64, limit int) ([]Event, error)
	// LastUserEvent returns the UserSeq of userID's newest event, 0 if none.
	LastUserEvent(ctx context.Context, userID int64) (int64, error)
	// TrimUserEvents removes up to limit of the events that are not among
	// their user's newest keep (UserSeq at most the user's newest less
	// keep), and returns how many it removed.
	// LastUserEvent and the numbering of later events do not change.
	TrimUserEvents(ctx context.Context, keep, limit int) (int, error)
}

// UserEvent is an event kept in one user's log, numbered there (UserSeq).
type UserEvent struct {
	UserID int64
	Event  Event
}

// Store is everything the Service keeps durably.
type Store interface {
	UserStore
	AuthStore
	RoomStore
	MessageStore
	FriendStore
	ConversationStore
	GroupStore
	ActivityStore
}

// Topic names a stream of events in the Broker.
type Topic string

// ConvTopic is the topic of one conversation's events.
func ConvTopic(id int64) Topic { return Topic("conv:" + strconv.FormatInt(id, 10)) }

// UserTopic is the topic of events addressed to one user.
func UserTopic(id int64) Topic { return Topic(userTopicPrefix + strconv.FormatInt(id, 10)) }

const userTopicPrefix = "user:"

// IsUser reports whether t is a user's topic (UserTopic).
func (t Topic) IsUser() bool { return strings.HasPrefix(string(t), userTopicPrefix) }

// EventType tells what an Event carries.
type EventType string

const (
	EventMessage  EventType = "message"  // Message was appended to ConvID
	EventPresence EventType = "presence" // User came online (Online) or went offline in ConvID
	// EventOnlineCount: OnlineCount users have ConvID open. It takes the
	// place of EventPresence in a conversation where more than
	// Config.OnlineMax are present.
	EventOnlineCount  EventType = "online_count"
	EventSessionEnded EventType = "session_ended" // SessionID of UserID signed out
	// EventChannelEnded, on a user topic: UserID's client ended its
	// long-poll channel Channel (a DELETE, on any node). Hubs close the
	// connection serving it.
	EventChannelEnded EventType = "channel_ended"
	EventContact      EventType = "contact" // Contact changed, seen by the owner of the user topic
	// EventConversation, on a user topic: Message was appended to ConvID
	// (of kind ConvKind; User is the other member of a direct one). Sent
	// for every direct message, and for a group only when the owner of
	// the topic created it or was added, and for a room when the owner
	// entered it (Message is the join message, nil in a room too large to
	// announce joins); clients refresh rooms and group activity from REST.
	EventConversation EventType = "conversation"
	EventRead         EventType = "read" // on a user topic: the owner's read position in ConvID is now Seq
	// EventRemoved, on a user topic: the owner no longer belongs to group
	// ConvID (Reason: removed, left or deleted), or left room ConvID
	// (Reason: left). Hubs unsubscribe the owner's connections from the
	// conversation.
	EventRemoved EventType = "removed"
	// EventTyping: User is typing in ConvID. Never stored; clients show it
	// for TypingTTL after the last one.
	EventTyping EventType = "typing"
	// EventReceipt, on a conversation topic: UserID's read position in
	// ConvID is now Seq.
	EventReceipt EventType = "receipt"
	// EventUser: User's name changed (Service.SetName). On a user topic
	// it reaches the user's own connections and those of whoever lists
	// them (FriendStore.Acquaintances); on a conversation topic (ConvID),
	// the members of a group of theirs and those with a room open where
	// the user is present. Never stored: the name is in the store, which
	// every list shows. Seq is the version of the name.
	EventUser EventType = "user"
	// EventReceipts, on a conversation topic: the read positions of
	// several members of ConvID moved (Positions), within
	// Config.ReceiptDelay or Config.ReceiptEvery.
	EventReceipts EventType = "receipts"
)

// TypingTTL is how long a typing indicator shows without a new one; a
// client sends "typing" at most every TypingInterval while typing.
const (
	TypingTTL      = 5 * time.Second
	TypingInterval = 2 * time.Second
)

// Event is what flows through the Broker to every node's hub.
type Event struct {
	Type      EventType `json:"type"`
	ConvID    int64     `json:"conv_id,omitempty"`
	Message   *Message  `json:"message,omitempty"`
	User      *User     `json:"user,omitempty"`
	Online    bool      `json:"online,omitempty"`
	UserID    int64     `json:"user_id,omitempty"`
	SessionID int64     `json:"session_id,omitempty"`
	Channel   string    `json:"channel,omitempty"` // EventChannelEnded
	Contact   *Contact  `json:"contact,omitempty"`
	ConvKind  ConvKind  `json:"conv_kind,omitempty"`
	// Seq is an EventRead's or EventReceipt's position; on an
	// EventPresence, the version of the presence it tells
	// (Presence.State, everywhere or in ConvID), by which hubs deliver a
	// user's news in order: 0 if unknown, from a Presence that could not
	// be read or from an older node. On an EventContact of a friend, the
	// version of the friend's presence it shows, in the same way. In
	// ConvID it is also the version of OnlineCount (Presence.StateCount),
	// and on an EventOnlineCount the version of its count: hubs deliver
	// no count older than one they delivered. On an EventUser, the
	// version of the name it tells (User.NameVersion): hubs deliver no
	// rename of a user older than one of theirs they delivered; 0 if
	// unknown (an older node).
	Seq int64 `json:"seq,omitempty"`
	// Revoke, on a conversation topic, is the user whose access to ConvID
	// ends with this event: hubs deliver the event to them, then nothing
	// more of ConvID, but to a connection that opened ConvID on a later
	// membership (a Mark whose Seq is at least the event's message's).
	Revoke int64  `json:"revoke,omitempty"`
	Reason string `json:"reason,omitempty"` // EventRemoved
	// UserSeq, on a user topic, numbers an event kept in the owner's log
	// (ActivityStore.AppendUserEvent); 0 for events not kept there.
	UserSeq  int64     `json:"user_seq,omitempty"`
	LastSeen time.Time `json:"last_seen,omitzero"` // EventPresence going offline everywhere
	// OnlineCount is how many users have ConvID open after an
	// EventPresence in it (0 if unknown), or in an EventOnlineCount.
	OnlineCount int `json:"online_count,omitempty"`
	// Positions are an EventReceipts' read positions, by user ID.
	Positions []ReadPosition `json:"positions,omitempty"`
	// Repeat marks a Message published again, for a send retried with
	// its client ID that the store had already, or by the Service after
	// a change of unknown outcome (Config.RepublishWait); or, on a user
	// topic, a logged event (UserSeq) published again after such a
	// change. Its first publish may have been made or not: the store may
	// have committed it and failed to answer. Hubs deliver it where
	// nothing has delivered it yet and no later message (or, on a user
	// topic, no later logged event) has gone before it, never twice.
	Repeat bool `json:"repeat,omitempty"`
}

// Broker fans events out to every node. It is the fast path only: an event
// may be lost (the store is the truth), but the events of one topic that a
// subscriber receives arrive in publish order.
type Broker interface {
	// Publish sends ev to t's subscribers on every node. It returns once
	// ctx is done, if not before, and bounds its own wait for a broker
	// that does not answer (Service.publish adds no deadline, and does
	// not pass a request's cancellation on).
	Publish(ctx context.Context, t Topic, ev Event) error
	// Subscribe calls fn for each event published to t until cancel is
	// called. fn must not block.
	Subscribe(t Topic, fn func(Event)) (cancel func(), err error)
	Close() error
}

// Everywhere is the pseudo-conversation of Presence that counts a user's
// connections of any kind: present there means online at all.
const Everywhere int64 = 0

// Presence counts who has a conversation open (or, in Everywhere, who is
// connected at all), across nodes. Several connections of one user, on one
// node or several, count once.
type Presence interface {
	// Add records one more open connection of userID in convID; first
	// reports whether the user was not present before.
	Add(ctx context.Context, convID, userID int64) (first bool, err error)
	// Remove undoes one Add; last reports whether none remain.
	Remove(ctx context.Context, convID, userID int64) (last bool, err error)
	// Online returns how many users are present in convID and at most max
	// of them (any of them; none if max <= 0).
	Online(ctx context.Context, convID int64, max int) (ids []int64, total int, err error)
	// OnlineOf returns those of userIDs present in convID.
	OnlineOf(ctx context.Context, convID int64, userIDs []int64) ([]int64, error)
	// PresentIn returns those of convIDs where userID is present, in one
	// read: a rename's news goes to the rooms where its user is, up to
	// Config.MaxUserRooms of them.
	PresentIn(ctx context.Context, userID int64, convIDs []int64) ([]int64, error)
	// State returns whether userID is present in convID, and the
	// version of that answer: a number that grows, on all nodes, with
	// every change of who is present (a clock of the Presence, read in
	// the same step). Of two answers about one user, the one with the
	// greater version is the newer; equal versions give equal answers.
	// A version of 0 is unknown (a Presence that lost its clock and has
	// changed nothing since).
	State(ctx context.Context, convID, userID int64) (online bool, version int64, err error)
	// StateCount is State with how many users are present in convID,
	// read in the same step: the count is the one at that version, so of
	// two counts of convID the one with the greater version is the newer.
	// With userID 0 it reads only the count and its version.
	StateCount(ctx context.Context, convID, userID int64) (online bool, total int, version int64, err error)
	// Version returns the clock of State now: every State read after it
	// returns gives a version at least as great, and news told with a
	// lower one was read before. 0 is unknown, as for State.
	Version(ctx context.Context) (int64, error)
	// Watch registers fn to be called for each presence that changed
	// without Add or Remove saying so: online false when it ended because
	// the node holding it died (the user was present in convID, and no
	// longer is anywhere); online true when that node turned out alive
	// and wrote its presences again, or wrote one whose Add had failed,
	// and the user is present once more.
	// An implementation confined to one process never calls it.
	Watch(fn func(convID, userID int64, online bool))
}

// Limiter is a rate limiter keyed by strings.
type Limiter interface {
	// Allow counts one event for key and reports whether at most n events
	// happened in the last window; if not, retryAfter says when to retry.
	Allow(ctx context.Context, key string, n int, window time.Duration) (ok bool, retryAfter time.Duration, err error)
	// Undo takes back the newest event counted for key, if any: for an
	// action allowed and then refused or failed, which must not count.
	Undo(ctx context.Context, key string) error
}

// Mail is one message to send.
type Mail struct {
	To      string
	Subject string
	Text    string
	HTML    string
	// Unsent, if not nil, is called, once, when a mail whose Send
	// returned before its outcome was known (its context ended while
	// the relay had it) turns out not to have gone out: its session
	// failed, or was cut, before the relay accepted it. It runs on
	// another goroutine, after Send returned.
	Unsent func()
}

// Mailer sends mail. Send returns an error wrapping ErrInvalid if the
// relay refused the recipient's address for good (no such mailbox), and
// one wrapping ErrMailerBusy if it did not try for lack of a free
// session; any other failure may pass. A Send that returns before the
// mail's outcome is known (its context ended) returns an error wrapping
// ErrMailPending, and calls Mail.Unsent if the mail then fails.
type Mailer interface {
	Send(ctx context.Context, m Mail) error
}
