package chat

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Contact states, from one user's point of view. A store keeps the first
// three; StateNone and StateBlocked only appear in EventContact.
const (
	StateFriends         = "friends"          // both accepted
	StateRequestSent     = "request_sent"     // I asked; they have not answered
	StateRequestReceived = "request_received" // they asked me
	StateNone            = "none"             // no relation (any more)
	StateBlocked         = "blocked"          // I blocked them (sent to the blocker only)
)

// Contact is another user as one user sees them: a friend or a pending
// request in either direction. Since is when the state began. User never
// carries an email address.
type Contact struct {
	User  User      `json:"user"`
	State string    `json:"state"`
	Since time.Time `json:"since,omitzero"`
	// Online and LastSeen, for a friend, are filled in by
	// Service.FriendsPresence; stores leave them zero.
	Online   bool      `json:"online,omitempty"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	// PresenceStale, set by a hub on the EventContact it delivers, says
	// that Online and LastSeen are older than the presence news of the
	// user it delivered (or than the presence its clients read): a
	// client shown the contact keeps the presence it has.
	PresenceStale bool `json:"-"`
}

// UserSearch selects users by exact (normalized) email or by display-name
// prefix, ignoring case, on behalf of Viewer, who is left out together
// with every user Viewer blocked or who blocked Viewer. An empty Email or
// NamePrefix matches nothing.
type UserSearch struct {
	Email      string
	NamePrefix string
	Viewer     int64
	Limit      int
}

// FriendStore keeps friendships, friend requests and blocks. A relation
// between two users is symmetric: each sees the other as a friend, or one
// as request_sent and the other as request_received. Users returned by its
// methods carry no email.
type FriendStore interface {
	// RequestFriend, atomically: refuses with ErrForbidden if either user
	// blocked the other; makes them friends if to had asked from; records
	// a request from from to to if they have no relation. It returns from's
	// contact for to after the call and whether anything changed (a repeated
	// request, or a request between friends, changes nothing). ErrNotFound
	// if to does not exist; ErrInvalid if from == to. Making them friends
	// is refused as AcceptFriend's is, with lim.MaxFriends; a new request
	// with ErrTooManyFriends if from has lim.MaxFriends friends, or
	// ErrTooManyRequests if lim.MaxPending unanswered, counted in its
	// transaction (a zero limit is none).
	RequestFriend(ctx context.Context, from, to int64, at time.Time, lim FriendLimits) (c Contact, changed bool, err error)
	// AcceptFriend makes me and from friends if from asked me; ErrNotFound
	// otherwise. It returns me's contact for from. If maxFriends is
	// positive and either has that many friends already, it refuses with
	// ErrTooManyFriends, counted in its transaction: acceptances made at
	// once do not go past it.
	AcceptFriend(ctx context.Context, me, from int64, at time.Time, maxFriends int) (Contact, error)
	// RemoveContact ends the friendship or the request, in either
	// direction, between a and b, and returns a's state before ("" if they
	// had no relation).
	RemoveContact(ctx context.Context, a, b int64) (prev string, err error)
	// Contacts lists me's friends and pending requests, by name.
	Contacts(ctx context.Context, me int64) ([]Contact, error)
	// Block records that blocker blocks blocked and, in the same
	// transaction, ends any relation between them; it returns blocker's
	// state before ("" if none, StateBlocked if blocker had blocked
	// blocked already). Blocking twice is no error. ErrNotFound if blocked
	// does not exist; ErrInvalid if blocker == blocked. A new block is
	// refused with ErrTooManyBlocks if maxBlocks is positive and blocker
	// has blocked that many users, counted in its transaction.
	Block(ctx context.Context, blocker, blocked int64, at time.Time, maxBlocks int) (prev string, err error)
	// Unblock undoes Block and reports whether there was a block.
	Unblock(ctx context.Context, blocker, blocked int64) (bool, error)
	// Blocked lists the users me blocked, by name.
	Blocked(ctx context.Context, me int64) ([]User, error)
	// Acquaintances lists, each once and in any order, the users whose
	// lists show userID's name (Service.SetName tells them a rename):
	// userID's contacts (friends and pending requests in either
	// direction, all of them, as Contacts lists them), the other members
	// of userID's limit most recently active direct conversations (kept
	// after a friendship ends) and the limit users who blocked userID
	// last (their block lists name userID). Not the users userID blocked,
	// but through a direct conversation: they show userID nowhere else.
	Acquaintances(ctx context.Context, userID int64, limit int) ([]int64, error)
	// IsBlocked reports whether a blocked b or b blocked a.
	IsBlocked(ctx context.Context, a, b int64) (bool, error)
	AreFriends(ctx context.Context, a, b int64) (bool, error)
	// SearchUsers returns up to q.Limit users (SearchLimit when not positive):
	// the email match first, then by name.
	SearchUsers(ctx context.Context, q UserSearch) ([]User, error)
}

// FriendLimits are the limits FriendStore.RequestFriend keeps: the friends
// a user may have, and the requests a user may have unanswered. Zero is
// no limit.
type FriendLimits struct {
	MaxFriends int
	MaxPending int
}

// Check is the stores' rule for a user with friends friends and pending
// requests unanswered, counted in the transaction of a change: it returns
// ErrTooManyFriends if one more friend would go past l, else
// ErrTooManyRequests if one more request would, else nil.
func (l FriendLimits) Check(friends, pending int) error {
	switch {
	case l.MaxFriends > 0 && friends >= l.MaxFriends:
		return ErrTooManyFriends
	case l.MaxPending > 0 && pending >= l.MaxPending:
		return ErrTooManyRequests
	}
	return nil
}

// MaxSearchLen is the longest user search query, in characters.
const MaxSearchLen = MaxEmailLen

// SearchLimit is how many users a search returns at most.
const SearchLimit = 20

// refused is the one answer to a request between users of whom one blocked
// the other, whichever it was, so that the blocked user cannot tell.
func refused() error { return Errorf(ErrForbidden, CodeRefused, "this user cannot be added") }

func userNotFound() error { return Errorf(ErrNotFound, CodeNotFound, "no such user") }

func notFriends() error {
	return Errorf(ErrForbidden, CodeNotFriends, "you can only message your friends")
}

// mirror is the state the other side of a relation sees.
func mirror(state string) string {
	switch state {
	case StateRequestSent:
		return StateRequestReceived
	case StateRequestReceived:
		return StateRequestSent
	}
	return state
}

// public is u without its email address, fit to show to other users.
func public(u User) User {
	return User{ID: u.ID, Name: u.Name, CreatedAt: u.CreatedAt, NameVersion: u.NameVersion}
}

// notifyContact tells owner that their contact c changed, and returns c as
// told: with the presence of a friend, and that presence's version as the
// event's Seq, by which owner's hubs drop a friend's news older than it
// (news that crossed the befriending) and leave out of it a presence
// older than news they delivered (Contact.PresenceStale).
func (s *Service) notifyContact(ctx context.Context, owner int64, c Contact) Contact {
	c, version := s.shownContact(ctx, c)
	s.publishUser(ctx, owner, Event{Type: EventContact, Contact: &c, Seq: version})
	return c
}

// shownContact is c as its owner is shown it: the public part of the
// user, with the presence of a friend and its version (Presence.State; 0
// when unknown, or not a friend).
func (s *Service) shownContact(ctx context.Context, c Contact) (Contact, int64) {
	c.User = public(c.User)
	if c.State != StateFriends {
		return c, 0
	}
	online, version, err := s.presence.State(ctx, Everywhere, c.User.ID)
	if err != nil {
		s.log.Warn("load presence of contact", "user", c.User.ID, "err", err)
		online, version = false, 0
	}
	c.Online = online
	if !online {
		seen, err := s.store.LastSeen(ctx, []int64{c.User.ID})
		if err != nil {
			s.log.Warn("load last seen of contact", "user", c.User.ID, "err", err)
		}
		c.LastSeen = seen[c.User.ID]
	}
	return c, version
}

// notifyBoth tells me of c and c.User of the mirror image, and returns c
// as me was told; then settles both (settleContact).
func (s *Service) notifyBoth(ctx context.Context, me User, c Contact) Contact {
	c = s.notifyContact(ctx, me.ID, c)
	s.notifyContact(ctx, c.User.ID, Contact{User: me, State: mirror(c.State), Since: c.Since})
	s.settleContact(ctx, me.ID, c.User.ID, c.State)
	s.settleContact(ctx, c.User.ID, me.ID, mirror(c.State))
	return c
}

// maxSettles bounds the contact events one settleContact adds.
const maxSettles = 4

// settleContact, after owner was told state for their contact with user
// other, reads the store's relation of the two again and, if it is
// another, tells owner that one, as tellContact does. A change is told
// after its commit, outside its transaction: two changes of one relation
// at once (an acceptance and a removal or a block) may be told in the
// other order than they were made, on one node or two, and the event log
// that every device replays would end with the older, a blocked user
// shown the blocker as a friend. Each change reads after it told, so
// the last told reads the last made; one that tells again reads again,
// as a read before its telling may be older than a change told since.
func (s *Service) settleContact(ctx context.Context, owner, other int64, state string) {
	ctx = context.WithoutCancel(ctx)
	for range maxSettles {
		c, err := s.contactOf(ctx, owner, other)
		if err != nil {
			if !errors.Is(err, ErrNotFound) {
				s.log.Warn("settle contact", "user", owner, "other", other, "err", err)
			}
			return
		}
		if c.State == state {
			return
		}
		logged, err := s.loggedContact(ctx, owner, other)
		if err != nil {
			s.log.Warn("settle contact", "user", owner, "other", other, "err", err)
			return
		}
		if c.State == logged || c.State == StateNone && logged == "" {
			return
		}
		state = s.notifyContact(ctx, owner, c).State
	}
}

// retellBoth is retellContact for both a and b if err, from the store's
// change of their relation, leaves it unknown whether it was made.
func (s *Service) retellBoth(err error, a, b int64) {
	if !unknownOutcome(err) {
		return
	}
	s.retellContact(a, b)
	s.retellContact(b, a)
}

func notSelf(me User, id int64, msg string) error {
	if id == me.ID {
		return Invalid(CodeInvalidField, "user_id", "%s", msg)
	}
	if id <= 0 {
		return userNotFound()
	}
	return nil
}

// SearchUsers finds other users by exact email address or by display-name
// prefix (ignoring case). It never returns email addresses, so a partial
// address finds no one, and it leaves out users blocked either way. A
// search by an address counts against Config.EmailLookupsPerHour.
func (s *Service) SearchUsers(ctx context.Context, me User, q string) ([]User, error) {
	q = strings.Join(strings.Fields(q), " ")
	if q == "" {
		return nil, Invalid(CodeMissingField, "q", "a search query is required")
	}
	if !utf8.ValidString(q) {
		return nil, Invalid(CodeInvalidField, "q", "the search query is not valid UTF-8")
	}
	// Names are kept composed (NFC): a prefix typed with combining
	// accents is compared in that form too.
	q = norm.NFC.String(q)
	if utf8.RuneCountInString(q) > MaxSearchLen {
		return nil, Invalid(CodeTooLong, "q", "the search query is longer than %d characters", MaxSearchLen)
	}
	us := UserSearch{NamePrefix: q, Viewer: me.ID, Limit: SearchLimit}
	key := ""
	if email, err := NormalizeEmail(q); err == nil {
		key = "email-lookups:" + strconv.FormatInt(me.ID, 10)
		if err := s.allowOr(ctx, key, s.cfg.EmailLookupsPerHour, time.Hour, "q", "too many searches by email address"); err != nil {
			return nil, err
		}
		us.Email = email
	}
	users, err := s.store.SearchUsers(ctx, us)
	if err != nil {
		if key != "" {
			s.undo(ctx, key) // the store failed: nothing was told
		}
		return nil, internal("search users", err)
	}
	for i := range users {
		users[i] = public(users[i])
	}
	return users, nil
}

// RequestFriend asks user id to be me's friend, or accepts when id had
// already asked me. The answer is the same refusal whichever of the two
// blocked the other. Each call counts against Config.FriendRequestsPerHour.
func (s *Service) RequestFriend(ctx context.Context, me User, id int64) (Contact, error) {
	if err := notSelf(me, id, "you cannot add yourself"); err != nil {
		return Contact{}, err
	}
	if err := s.roomForRequest(ctx, me, id); err != nil {
		return Contact{}, err
	}
	key := "friend-request:" + strconv.FormatInt(me.ID, 10)
	if err := s.allow(ctx, key, s.cfg.FriendRequestsPerHour, time.Hour); err != nil {
		return Contact{}, err
	}
	lim := FriendLimits{MaxFriends: s.cfg.MaxFriends, MaxPending: s.cfg.MaxPendingRequests}
	c, changed, err := s.store.RequestFriend(ctx, me.ID, id, s.cfg.Now(), lim)
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrForbidden) {
		s.undo(ctx, key) // the store failed, or was full: nothing was asked
	}
	switch {
	case errors.Is(err, ErrNotFound):
		return Contact{}, userNotFound()
	case errors.Is(err, ErrForbidden):
		return Contact{}, refused()
	case errors.Is(err, ErrTooManyFriends):
		return Contact{}, friendsFull()
	case errors.Is(err, ErrTooManyRequests):
		return Contact{}, tooManyRequests(s.cfg.MaxPendingRequests)
	case err != nil:
		s.retellBoth(err, me.ID, id)
		return Contact{}, internal("request friend", err)
	}
	c.User = public(c.User)
	if !changed {
		// A repeat, maybe a retry of a request whose answer was lost: the
		// call that got the error is having the two told.
		if c.State == StateFriends {
			return Contact{}, Errorf(ErrConflict, CodeAlreadyFriends, "you are already friends")
		}
		return c, nil // a repeated request
	}
	return s.notifyBoth(ctx, me, c), nil
}

// roomForRequest returns a limit_reached conflict if a request from me to
// user id would be a new one while me has Config.MaxPendingRequests
// unanswered already, or Config.MaxFriends friends; or, if it accepts
// id's request, if either of the two has Config.MaxFriends friends. A
// repeat makes nothing. It is read before the request, not in its
// transaction: the store counts again in it (FriendLimits), so that
// requests made at once do not go past the limits.
func (s *Service) roomForRequest(ctx context.Context, me User, id int64) error {
	cs, err := s.store.Contacts(ctx, me.ID)
	if err != nil {
		return internal("list contacts", err)
	}
	pending, friends, state := countContacts(cs, id)
	switch state {
	case StateRequestReceived:
		return s.roomForFriend(ctx, me.ID, id, friends)
	case "":
	default:
		return nil // a repeat, or already friends: the store answers
	}
	if friends >= s.cfg.MaxFriends {
		return tooManyFriends("you have", friends)
	}
	if pending >= s.cfg.MaxPendingRequests {
		return tooManyRequests(pending)
	}
	return nil
}

func tooManyRequests(n int) error {
	return Errorf(ErrConflict, CodeLimitReached, "you have %d friend requests unanswered, as many as the server allows: cancel one first", n)
}

// countContacts counts the requests sent and the friends among cs, and
// returns the state of the contact with user id ("" if none).
func countContacts(cs []Contact, id int64) (pending, friends int, state string) {
	for _, c := range cs {
		if c.User.ID == id {
			state = c.State
		}
		switch c.State {
		case StateRequestSent:
			pending++
		case StateFriends:
			friends++
		}
	}
	return pending, friends, state
}

// roomForFriend returns a limit_reached conflict if me, who has friends
// friends, or user id has Config.MaxFriends friends already.
func (s *Service) roomForFriend(ctx context.Context, me, id int64, friends int) error {
	if friends >= s.cfg.MaxFriends {
		return tooManyFriends("you have", friends)
	}
	cs, err := s.store.Contacts(ctx, id)
	if err != nil {
		return internal("list contacts", err)
	}
	if _, n, _ := countContacts(cs, me); n >= s.cfg.MaxFriends {
		return tooManyFriends("this user has", n)
	}
	return nil
}

func tooManyFriends(who string, n int) error {
	return Errorf(ErrConflict, CodeLimitReached, "%s %d friends, as many as the server allows: one must be removed first", who, n)
}

// friendsFull is the limit_reached conflict of an acceptance the store
// refused (ErrTooManyFriends): a friend was made since the Service read
// the counts.
func friendsFull() error {
	return Errorf(ErrConflict, CodeLimitReached, "one of you has as many friends as the server allows: one must be removed first")
}

// AcceptFriend accepts the friend request of user id. Accepting again
// once they are friends (a retry of an acceptance whose answer was lost)
// answers as the acceptance did.
func (s *Service) AcceptFriend(ctx context.Context, me User, id int64) (Contact, error) {
	if err := notSelf(me, id, "you cannot add yourself"); err != nil {
		return Contact{}, err
	}
	cs, err := s.store.Contacts(ctx, me.ID)
	if err != nil {
		return Contact{}, internal("list contacts", err)
	}
	_, friends, state := countContacts(cs, id)
	switch state {
	case StateRequestReceived:
		if err := s.roomForFriend(ctx, me.ID, id, friends); err != nil {
			return Contact{}, err
		}
	case StateFriends:
		// Maybe a retry: the call that got the error is having the two
		// told. A repeat schedules nothing, as any user can make it.
		i := slices.IndexFunc(cs, func(c Contact) bool { return c.User.ID == id })
		c, _ := s.shownContact(ctx, cs[i])
		return c, nil
	}
	c, err := s.store.AcceptFriend(ctx, me.ID, id, s.cfg.Now(), s.cfg.MaxFriends)
	if errors.Is(err, ErrNotFound) {
		return Contact{}, Errorf(ErrNotFound, CodeNotFound, "this user has not asked to be your friend")
	}
	if errors.Is(err, ErrTooManyFriends) {
		return Contact{}, friendsFull()
	}
	if err != nil {
		s.retellBoth(err, me.ID, id)
		return Contact{}, internal("accept friend", err)
	}
	c.User = public(c.User)
	return s.notifyBoth(ctx, me, c), nil
}

// RemoveContact ends me's relation with user id, whatever it is: it
// declines their request, cancels mine, or ends a friendship. Both users
// are told (state "none").
func (s *Service) RemoveContact(ctx context.Context, me User, id int64) error {
	if err := notSelf(me, id, "you are not your own contact"); err != nil {
		return err
	}
	prev, err := s.store.RemoveContact(ctx, me.ID, id)
	if err != nil {
		s.retellBoth(err, me.ID, id)
		return internal("remove contact", err)
	}
	if prev == "" {
		return Errorf(ErrNotFound, CodeNotFound, "this user is not among your contacts")
	}
	other, err := s.store.User(ctx, id)
	if err != nil {
		return internal("load user", err)
	}
	s.notifyBoth(ctx, me, Contact{User: other, State: StateNone})
	return nil
}

// Contacts returns me's friends and pending requests, and the users me
// blocked.
func (s *Service) Contacts(ctx context.Context, me User) ([]Contact, []User, error) {
	cs, err := s.store.Contacts(ctx, me.ID)
	if err != nil {
		return nil, nil, internal("list contacts", err)
	}
	for i := range cs {
		cs[i].User = public(cs[i].User)
	}
	if err := s.FriendsPresence(ctx, cs); err != nil {
		return nil, nil, err
	}
	blocked, err := s.BlockedUsers(ctx, me)
	if err != nil {
		return nil, nil, err
	}
	return cs, blocked, nil
}

// BlockedUsers lists the users me blocked.
func (s *Service) BlockedUsers(ctx context.Context, me User) ([]User, error) {
	us, err := s.store.Blocked(ctx, me.ID)
	if err != nil {
		return nil, internal("list blocked users", err)
	}
	for i := range us {
		us[i] = public(us[i])
	}
	return us, nil
}

// Block stops user id from sending me friend requests and messages, and
// ends any relation between us. A user blocks at most Config.MaxBlocks
// users. The blocked user is not told of the block:
// if they had a relation, they see it end (state "none") exactly as if me
// had removed them, which they would see on their next sign-in anyway.
func (s *Service) Block(ctx context.Context, me User, id int64) error {
	if err := notSelf(me, id, "you cannot block yourself"); err != nil {
		return err
	}
	prev, err := s.store.Block(ctx, me.ID, id, s.cfg.Now(), s.cfg.MaxBlocks)
	if errors.Is(err, ErrNotFound) {
		return userNotFound()
	}
	if errors.Is(err, ErrTooManyBlocks) {
		return Errorf(ErrConflict, CodeLimitReached, "you have blocked %d users, as many as the server allows: unblock one first", s.cfg.MaxBlocks)
	}
	if err != nil {
		s.retellBoth(err, me.ID, id)
		return internal("block user", err)
	}
	if prev == StateBlocked {
		// A repeat, maybe a retry of a block whose answer was lost: the
		// call that got the error is having the two told, once (the
		// retell finds what it tells logged). A repeat schedules nothing,
		// as any user can make it.
		return nil
	}
	other, err := s.store.User(ctx, id)
	if err != nil {
		// The block is made: the two are told later, a retry (a repeat)
		// telling nobody.
		s.retellContact(me.ID, id)
		s.retellContact(id, me.ID)
		return internal("load user", err)
	}
	s.notifyContact(ctx, me.ID, Contact{User: other, State: StateBlocked})
	if prev != "" {
		s.notifyContact(ctx, id, Contact{User: me, State: StateNone})
		s.settleContact(ctx, id, me.ID, StateNone)
	}
	s.settleContact(ctx, me.ID, id, StateBlocked)
	return nil
}

// Unblock undoes Block. The formerly blocked user is not told.
func (s *Service) Unblock(ctx context.Context, me User, id int64) error {
	if err := notSelf(me, id, "you cannot block yourself"); err != nil {
		return err
	}
	ok, err := s.store.Unblock(ctx, me.ID, id)
	if unknownOutcome(err) {
		s.retellContact(me.ID, id)
	}
	if err != nil {
		return internal("unblock user", err)
	}
	if !ok {
		return Errorf(ErrNotFound, CodeNotFound, "you have not blocked this user")
	}
	other, err := s.store.User(ctx, id)
	if err != nil {
		return internal("load user", err)
	}
	s.notifyContact(ctx, me.ID, Contact{User: other, State: StateNone})
	s.settleContact(ctx, me.ID, id, StateNone)
	return nil
}

// CanMessage returns nil if a and b may talk directly: they are friends
// and neither blocked the other. Otherwise it returns the same not_friends
// error whatever the reason, so that a block is not revealed.
func (s *Service) CanMessage(ctx context.Context, a, b int64) error {
	if a == b {
		return Invalid(CodeInvalidField, "user_id", "you cannot message yourself")
	}
	friends, err := s.store.AreFriends(ctx, a, b)
	if err != nil {
		return internal("check friends", err)
	}
	if !friends {
		return notFriends()
	}
	blocked, err := s.store.IsBlocked(ctx, a, b)
	if err != nil {
		return internal("check block", err)
	}
	if blocked {
		return notFriends()
	}
	return nil
}
