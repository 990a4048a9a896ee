package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-chat/parley/internal/inflight"
	"github.com/parley-chat/parley/internal/keyed"
)

// Config holds the Service's limits and settings. Zero fields take the
// defaults of DefaultConfig.
type Config struct {
	MaxMessageLen   int           // characters per message
	CodeTTL         time.Duration // how long a login code is valid
	CodeAttempts    int           // tries per login code, each try at its address counting
	CodesPerEmail   int           // login codes sent per email per CodeWindow, and kept pending
	CodesPerIP      int           // login codes sent per client IP per CodeWindow
	CodeWindow      time.Duration
	SessionTTL      time.Duration // session lifetime, renewed on use
	SessionCheck    time.Duration // how often a node checks its connections' sessions (OpenSessions, by hub.CheckSessions); Keeps's window is made from it
	PublicURL       string        // base URL used in mail links
	HistoryLimit    int           // largest history page
	ActiveWindow    time.Duration // window for "most active rooms"
	AnonymousName   string        // sender name shown for anonymous messages
	Now             func() time.Time
	NewCode         func() (string, error) // login code generator (6 digits)
	NewToken        func() (string, error) // session token generator
	MailFromProduct string                 // product name in mail
	MaxGroupMembers int                    // the largest member cap a group may have
	// PresenceGrace is how long a user stays online after their last
	// connection ends: a connection that drops and comes back within it
	// (a reload, a flaky network) tells nobody anything.
	PresenceGrace time.Duration
	// OnlineMax is the most users an online list names, and the most
	// present in a conversation for whom each arrival and departure is an
	// event to its members. Above it they get the count instead, at most
	// once per OnlineCountEvery from each node: in a room of thousands, an
	// event per arrival to everyone present costs O(n²) to fill it.
	OnlineMax        int
	OnlineCountEvery time.Duration
	// ReceiptEvery bounds how often each node tells a conversation's
	// members that read positions moved: the first move in a while goes
	// out after ReceiptDelay, with the moves made until then, and the
	// moves after it together once ReceiptEvery has passed. In a group
	// whose members all watch, every message makes each of them move; a
	// receipt each to everyone would cost O(n²).
	ReceiptEvery time.Duration
	// ReceiptDelay is how long the first move in a while waits for the
	// moves that come with it: a message makes every member who watches
	// move at about the same time, and one event for them all is a frame
	// to each member where going out at once made it two
	// (docs/benchmarks.md, target 2).
	ReceiptDelay time.Duration
	// AnnounceMax is the most members a room may have for joining and
	// leaving it to append a message. In a larger room, a message to
	// everyone each time one of thousands comes or goes is noise, and
	// 10,000 newcomers would cost 10,000²/2 deliveries.
	AnnounceMax int
	// NewConvsPerHour is how many rooms and groups one user may make in
	// an hour: each is a row kept for good, and a room is made by naming
	// it.
	NewConvsPerHour int
	// FriendRequestsPerHour is how many friend requests one user may make
	// in an hour: each is an event kept in the other user's event log,
	// and asking and cancelling over and over would fill it, and flood
	// them with notifications, without end.
	FriendRequestsPerHour int
	// EmailLookupsPerHour is how many searches by a whole email address
	// one user may make in an hour: each tells whether the address has an
	// account, which signing in never tells, so that without a bound one
	// account could sort a list of addresses.
	EmailLookupsPerHour int
	// RoomLeavesPerHour is how many rooms one user may leave in an hour:
	// a leave, and entering again after it, each post to everyone in the
	// room (up to AnnounceMax members), which no send limit binds.
	RoomLeavesPerHour int
	// RenamesPerHour is how many times one user may change their name in
	// an hour: each rename is told to all their contacts and groups and
	// the rooms they are present in (SetName).
	RenamesPerHour int
	// AddsByStrangersPerDay is how many groups one user may be added to
	// in a day by users who are not their friends, whoever adds them:
	// anyone may make groups and add anyone who has not blocked them,
	// and without it a few accounts could fill a user's MaxUserGroups
	// places with groups they never asked for. Adds by friends are not
	// counted.
	AddsByStrangersPerDay int
	// StrangerAddsPerHour is how many users who are not their friends one
	// user may add to groups in an hour, over all their groups: one
	// account must not spray adds over many users. Adds of friends are
	// not counted. Both limits are the Limiter's, shared by every node.
	StrangerAddsPerHour int
	// MaxUserGroups is how many groups one user may be in, owned or
	// joined: every connection of a user follows all their groups, and
	// their conversation list names them all.
	MaxUserGroups int
	// MaxUserRooms is how many rooms one user may be in: entering an
	// existing room is not counted by NewConvsPerHour, and the rooms a
	// user is in are listed whole (GET /api/rooms, the conversation list).
	MaxUserRooms int
	// MaxPendingRequests is how many friend requests one user may have
	// unanswered: FriendRequestsPerHour bounds how fast they are made,
	// not how many pile up, and a user's contacts are listed whole.
	MaxPendingRequests int
	// MaxFriends is how many friends one user may have: each is told of
	// every change of the user's presence, and a user's contacts are
	// listed whole.
	MaxFriends int
	// MaxBlocks is how many users one user may block: each block is a row
	// kept until it is undone, and a user's block list is listed whole.
	MaxBlocks int
	// MaxSessionsPerUser is how many sessions one user may have. A
	// sign-in past it ends the user's least recently used sessions, as a
	// sign-out would, rather than refusing: signing in on a new device
	// must keep working. Without it, the sign-in code rate alone bounded
	// them (about 14,400 live sessions in 30 days), each a row and a
	// token that works until it expires.
	MaxSessionsPerUser int
	// RepublishWait is how long after a change of unknown outcome (its
	// store failed to answer, and may have committed it) that carries no
	// client ID to retry it by (a join, a leave, a group event) the
	// Service reads what was stored and publishes it again; a read that
	// fails is tried again after twice as long, a few times.
	RepublishWait time.Duration
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		MaxMessageLen:         4000,
		CodeTTL:               10 * time.Minute,
		CodeAttempts:          5,
		CodesPerEmail:         5,
		CodesPerIP:            30,
		CodeWindow:            15 * time.Minute,
		SessionTTL:            30 * 24 * time.Hour,
		SessionCheck:          15 * time.Second,
		PublicURL:             "http://localhost:8080",
		HistoryLimit:          100,
		ActiveWindow:          24 * time.Hour,
		AnonymousName:         "anonymous",
		Now:                   time.Now,
		NewCode:               newCode,
		NewToken:              newToken,
		MailFromProduct:       "Parley",
		MaxGroupMembers:       DefaultGroupMembers,
		PresenceGrace:         5 * time.Second,
		OnlineMax:             100,
		OnlineCountEvery:      time.Second,
		ReceiptEvery:          250 * time.Millisecond,
		ReceiptDelay:          50 * time.Millisecond,
		AnnounceMax:           1000,
		NewConvsPerHour:       100,
		FriendRequestsPerHour: 100,
		EmailLookupsPerHour:   100,
		RoomLeavesPerHour:     60,
		RenamesPerHour:        10,
		AddsByStrangersPerDay: 20,
		StrangerAddsPerHour:   200,
		MaxUserGroups:         500,
		MaxUserRooms:          500,
		MaxPendingRequests:    200,
		MaxFriends:            1000,
		MaxBlocks:             1000,
		MaxSessionsPerUser:    100,
		RepublishWait:         500 * time.Millisecond,
	}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.MaxMessageLen <= 0 {
		c.MaxMessageLen = d.MaxMessageLen
	}
	if c.CodeTTL <= 0 {
		c.CodeTTL = d.CodeTTL
	}
	if c.CodeAttempts <= 0 {
		c.CodeAttempts = d.CodeAttempts
	}
	if c.CodesPerEmail <= 0 {
		c.CodesPerEmail = d.CodesPerEmail
	}
	if c.CodesPerIP <= 0 {
		c.CodesPerIP = d.CodesPerIP
	}
	if c.CodeWindow <= 0 {
		c.CodeWindow = d.CodeWindow
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = d.SessionTTL
	}
	if c.SessionCheck <= 0 {
		c.SessionCheck = d.SessionCheck
	}
	if c.PublicURL == "" {
		c.PublicURL = d.PublicURL
	}
	if c.PresenceGrace == 0 {
		c.PresenceGrace = d.PresenceGrace
	}
	if c.OnlineMax <= 0 {
		c.OnlineMax = d.OnlineMax
	}
	if c.OnlineCountEvery <= 0 {
		c.OnlineCountEvery = d.OnlineCountEvery
	}
	if c.AnnounceMax <= 0 {
		c.AnnounceMax = d.AnnounceMax
	}
	if c.NewConvsPerHour <= 0 {
		c.NewConvsPerHour = d.NewConvsPerHour
	}
	if c.FriendRequestsPerHour <= 0 {
		c.FriendRequestsPerHour = d.FriendRequestsPerHour
	}
	if c.EmailLookupsPerHour <= 0 {
		c.EmailLookupsPerHour = d.EmailLookupsPerHour
	}
	if c.RoomLeavesPerHour <= 0 {
		c.RoomLeavesPerHour = d.RoomLeavesPerHour
	}
	if c.RenamesPerHour <= 0 {
		c.RenamesPerHour = d.RenamesPerHour
	}
	if c.AddsByStrangersPerDay <= 0 {
		c.AddsByStrangersPerDay = d.AddsByStrangersPerDay
	}
	if c.StrangerAddsPerHour <= 0 {
		c.StrangerAddsPerHour = d.StrangerAddsPerHour
	}
	if c.MaxUserGroups <= 0 {
		c.MaxUserGroups = d.MaxUserGroups
	}
	if c.MaxUserRooms <= 0 {
		c.MaxUserRooms = d.MaxUserRooms
	}
	if c.MaxPendingRequests <= 0 {
		c.MaxPendingRequests = d.MaxPendingRequests
	}
	if c.MaxFriends <= 0 {
		c.MaxFriends = d.MaxFriends
	}
	if c.MaxBlocks <= 0 {
		c.MaxBlocks = d.MaxBlocks
	}
	if c.MaxSessionsPerUser <= 0 {
		c.MaxSessionsPerUser = d.MaxSessionsPerUser
	}
	if c.RepublishWait <= 0 {
		c.RepublishWait = d.RepublishWait
	}
	if c.ReceiptEvery <= 0 {
		c.ReceiptEvery = d.ReceiptEvery
	}
	if c.ReceiptDelay <= 0 {
		c.ReceiptDelay = d.ReceiptDelay
	}
	if c.HistoryLimit <= 0 {
		c.HistoryLimit = d.HistoryLimit
	}
	if c.ActiveWindow <= 0 {
		c.ActiveWindow = d.ActiveWindow
	}
	if c.AnonymousName == "" {
		c.AnonymousName = d.AnonymousName
	}
	if c.Now == nil {
		c.Now = d.Now
	}
	if c.NewCode == nil {
		c.NewCode = d.NewCode
	}
	if c.NewToken == nil {
		c.NewToken = d.NewToken
	}
	if c.MaxGroupMembers <= 0 {
		c.MaxGroupMembers = d.MaxGroupMembers
	}
	if c.MailFromProduct == "" {
		c.MailFromProduct = d.MailFromProduct
	}
}

// Service enforces Parley's rules: who may read and write where, what input
// is valid, and that every stored change is published.
type Service struct {
	cfg      Config
	store    Store
	broker   Broker
	presence Presence
	limiter  Limiter
	mailer   Mailer
	log      *slog.Logger
	away     away // connections ended, not yet counted out (presence.go)
	life     life // presence work Close ends (presence.go)
	// told orders the presence news of each user on this node, one at
	// a time (tellPresence); one user's news never waits for another's.
	told     keyed.Locks[int64, struct{}]
	counts   counts
	kinds    kinds
	reads    readBatch
	receipts receipts
	typers   typers // typing events forwarded per conversation (rooms.go)
	later    later  // changes of unknown outcome to publish again (republish.go)
	renames  renames
}

// Deps are the parts a Service consumes.
type Deps struct {
	Store    Store
	Broker   Broker
	Presence Presence
	Limiter  Limiter
	Mailer   Mailer
	Logger   *slog.Logger
}

// NewService returns a Service over d with configuration cfg.
func NewService(cfg Config, d Deps) *Service {
	cfg.fill()
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, store: d.Store, broker: d.Broker, presence: d.Presence, limiter: d.Limiter, mailer: d.Mailer, log: log}
	s.counts.due = make(map[int64]bool)
	s.life.ctx, s.life.cancel = context.WithCancel(context.Background())
	if s.presence != nil {
		s.presence.Watch(s.presenceChanged)
	}
	return s
}

// kinds remembers the kind of the conversations that this node has read
// (a member opening one, a send looking one up), so that a send to a room
// or a group needs no read before its write, the first message after an
// open included, and one to a direct conversation one read, for its peer.
// Conversations never change kind, and no store gives a deleted one's id
// again (SQLite since its migration 9); the store's check of
// NewMessage.ConvKind, and for a direct conversation the read of it, would
// catch a stale kind all the same. It holds at most maxKinds entries, and
// starts over when full.
type kinds struct {
	m sync.Map // int64 → ConvKind
	n atomic.Int64
}

const maxKinds = 1 << 16

func (k *kinds) get(id int64) (ConvKind, bool) {
	v, ok := k.m.Load(id)
	if !ok {
		return "", false
	}
	return v.(ConvKind), true
}

func (k *kinds) put(id int64, kind ConvKind) {
	if v, ok := k.m.Load(id); ok && v.(ConvKind) == kind {
		return // known: no write to the map on every open
	}
	if _, had := k.m.Swap(id, kind); had {
		return
	}
	if k.n.Add(1) > maxKinds {
		k.m.Clear()
		k.n.Store(0)
	}
}

func (k *kinds) forget(id int64) {
	if _, had := k.m.LoadAndDelete(id); had {
		k.n.Add(-1)
	}
}

// Config returns the effective configuration.
func (s *Service) Config() Config { return s.cfg }

// Renews reports whether Authenticate extends session s now, to a full
// SessionTTL: less than half of SessionTTL remains, and s was made to live
// longer than that half. A session issued for less ("parley admin
// sessions --ttl 1h") ends when it was set to.
func (c Config) Renews(s Session) bool {
	from, _, ok := c.RenewWindow(s)
	return ok && c.Now().After(from)
}

// SessionUseStep is how stale a session's UsedAt may grow while it is in
// use: Authenticate records a use once the last one recorded is this old,
// so that a session in use costs a write an hour, not one per request.
const SessionUseStep = time.Hour

// Touches reports whether Authenticate records a use of session s now
// (Session.UsedAt): the last one recorded is SessionUseStep old or more.
func (c Config) Touches(s Session) bool { return c.touchesAt(s, c.Now()) }

// touchesAt is Touches at now.
func (c Config) touchesAt(s Session, now time.Time) bool { return now.Sub(s.UsedAt) >= SessionUseStep }

// Keeps reports whether a node's check of the sessions of its open
// connections (Service.OpenSessions) renews session s now, as
// Authenticate would: it Renews s, and less than SessionUseStep of it
// remains, or a quarter of SessionTTL if that is less, but never less
// than twice SessionCheck: the check after the one that found the
// session not yet due may come late (the check before it took its time,
// up to SessionCheck, and the ticker dropped a tick), and must still find
// the session alive and due. Not earlier: a request renews the session
// and the browser's cookie with it, which a WebSocket cannot set; a
// session renewed in its second half by the check alone would no longer
// be renewed by requests, and its cookie would end when the session
// would have. So the first part of the second half, up to RenewWindow's
// end, is left to the client's requests, also for a session shorter than
// two hours: at least its first quarter, which bounds twice SessionCheck
// for the shortest sessions (a minute: the check keeps the last 22.5 s,
// not 30). In its last part the session would otherwise end under its
// open connections.
func (c Config) Keeps(s Session) bool { return c.keepsAt(s, c.Now()) }

// keepsAt is Keeps at now.
func (c Config) keepsAt(s Session, now time.Time) bool {
	_, until, ok := c.RenewWindow(s)
	return ok && now.After(until)
}

// keepWithin is how much of a session remains when Keeps starts to hold.
func (c Config) keepWithin() time.Duration {
	return min(max(min(SessionUseStep, c.SessionTTL/4), 2*c.SessionCheck), c.SessionTTL*3/8)
}

// RenewWindow returns the time from which a request renews session s
// (Renews: the start of its second half) and the time from which the
// node's check of open connections renews it instead (Keeps), which does
// not refresh the browser's cookie. A client that keeps a connection open
// makes a request between the two to have its cookie renewed with the
// session. ok is false for a session that is never renewed: one made to
// live no longer than half of SessionTTL.
func (c Config) RenewWindow(s Session) (from, until time.Time, ok bool) {
	if s.ExpiresAt.Sub(s.CreatedAt) <= c.SessionTTL/2 {
		return time.Time{}, time.Time{}, false
	}
	return s.ExpiresAt.Add(-c.SessionTTL / 2), s.ExpiresAt.Add(-c.keepWithin()), true
}

// internal wraps an unexpected error from a dependency.
func internal(op string, err error) error {
	if AsError(err) != nil {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}

// publish sends ev to t; a failure is logged, never returned: the event is
// already stored and clients recover from the store. The publish of a
// change outlives the request that made it: a client that goes away once
// it is stored must not keep it from the others. A republish job's
// (republishLater) ends with the job's context, which Close ends. No
// other bound is added: a Broker bounds its own publishes (internal/redis
// by go-redis's read and write timeouts), and a timer per message would
// cost every send.
func (s *Service) publish(ctx context.Context, t Topic, ev Event) {
	if ctx.Value(laterKey{}) == nil {
		ctx = context.WithoutCancel(ctx)
	}
	if err := s.broker.Publish(ctx, t, ev); err != nil {
		s.log.Warn("publish failed", "topic", string(t), "type", string(ev.Type), "err", err)
	}
}

// publishUser keeps ev in userID's event log (ActivityStore) and publishes
// it, numbered, to userID's topic. A failure to keep it is logged: the
// live event still goes out, and the state it reports is stored anyway.
// The EventRemoved of a membership's end is not kept here but by the
// store's change itself, in its transaction (see Mark), and published
// as the store numbered it.
func (s *Service) publishUser(ctx context.Context, userID int64, ev Event) {
	logged, err := s.store.AppendUserEvent(context.WithoutCancel(ctx), userID, ev, s.cfg.Now())
	if err != nil {
		s.log.Warn("keep user event", "user", userID, "type", string(ev.Type), "err", err)
	} else {
		ev = logged
	}
	s.publish(ctx, UserTopic(userID), ev)
}

// UserEvents returns up to limit of u's logged events after after, and
// LastUserEvent the number of the newest.
func (s *Service) UserEvents(ctx context.Context, u User, after int64, limit int) ([]Event, error) {
	evs, err := s.store.UserEvents(ctx, u.ID, after, limit)
	if err != nil {
		return nil, internal("load user events", err)
	}
	return evs, nil
}

// LastUserEvent returns the number of u's newest logged event.
func (s *Service) LastUserEvent(ctx context.Context, u User) (int64, error) {
	n, err := s.store.LastUserEvent(ctx, u.ID)
	if err != nil {
		return 0, internal("load last user event", err)
	}
	return n, nil
}

// User returns a user by id.
func (s *Service) User(ctx context.Context, id int64) (User, error) {
	u, err := s.store.User(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return User{}, Errorf(ErrNotFound, CodeNotFound, "no such user")
	}
	return u, err
}

// SetName changes u's display name, at most Config.RenamesPerHour times
// an hour (neither the same name again, which changes nothing, nor a new
// account's first name is counted), and, for a rename, tells whoever shows it (an EventUser): u's own
// connections, contacts, the peers of u's direct conversations (up to
// Config.MaxFriends of them, the most recently active) and the users who
// blocked u (as many), on their user topics; the members of u's
// groups and, in each room where u is present (has it open), those who
// have it open, on the conversation topics. A room where u is not present
// shows u nowhere but in messages, which keep the name they were sent
// with. The events are not stored: every list is read from the store,
// where the name is, and a client that missed them reads its lists again
// when it reconnects.
//
// SetName returns once the name is stored; the news goes out after, in
// the background (see renames), and a rename's news still due when a
// newer one of the same user comes is told as the newer: the last name
// told is the last stored.
func (s *Service) SetName(ctx context.Context, u User, name string) (User, error) {
	name, err := NormalizeUserName(name)
	if err != nil {
		return User{}, err
	}
	if name == u.Name {
		// Not counted, so not written either: the store would bump the
		// name's version as often as a client asked. u was read with
		// its session, for this request.
		return u, nil
	}
	key := "rename:" + strconv.FormatInt(u.ID, 10)
	counted := u.Name != "" // a new account's first name is not a rename
	if counted {
		if err := s.allowOr(ctx, key, s.cfg.RenamesPerHour, time.Hour, "name",
			"you have changed your name as many times as the server allows in an hour"); err != nil {
			return User{}, err
		}
	}
	nu, err := s.store.SetUserName(ctx, u.ID, name)
	if err != nil {
		if counted {
			s.undo(ctx, key)
		}
		return User{}, internal("set user name", err)
	}
	if nu.Name != u.Name && u.Name != "" { // a new account's first name shows nowhere yet
		s.renames.due(s, public(nu))
	}
	return nu, nil
}

// renames is the rename news this node has to tell: per user, the newest
// rename not yet being told, and whether a teller runs for the user. One
// teller per user tells its renames one after another, each as the store
// has the name when it starts, so that news of an older name never goes
// out after a newer one's; a rename that comes while one is told waits
// for it, and replaces one waiting already. At most renameTellers tell at
// once on a node. Close ends them (FlushRenames lets those due finish
// first, within its context).
type renames struct {
	mu      sync.Mutex
	closed  bool
	pending map[int64]User // the newest rename of each user not yet being told
	running map[int64]bool // users with a teller
	tellers inflight.Count // the tellers, for FlushRenames and Close
	ctx     context.Context
	cancel  context.CancelFunc
	turns   chan struct{} // renameTellers tokens
}

// renameTellers bounds the renames told at once on a node: each reads
// lists from the store and publishes to up to thousands of topics.
const renameTellers = 4

// due has u's rename told in the background.
func (r *renames) due(s *Service, u User) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		s.log.Warn("rename not told: the service is closing", "user", u.ID)
		return
	}
	if r.pending == nil {
		r.pending = make(map[int64]User)
		r.running = make(map[int64]bool)
		r.ctx, r.cancel = context.WithCancel(context.Background())
		r.turns = make(chan struct{}, renameTellers)
	}
	r.pending[u.ID] = u
	if r.running[u.ID] {
		return // its teller takes it once done with the one before
	}
	r.running[u.ID] = true
	r.tellers.Start()
	go s.tellRenames(u.ID)
}

// tellRenames tells userID's renames due, one at a time, until none is.
func (s *Service) tellRenames(userID int64) {
	r := &s.renames
	defer r.tellers.Done()
	for {
		r.mu.Lock()
		u, ok := r.pending[userID]
		if !ok || r.closed {
			delete(r.running, userID)
			r.mu.Unlock()
			return
		}
		delete(r.pending, userID)
		ctx := r.ctx
		r.mu.Unlock()
		select {
		case r.turns <- struct{}{}:
		case <-ctx.Done():
			continue // closed: the loop ends
		}
		s.tellRename(ctx, u)
		<-r.turns
	}
}

// FlushRenames waits until the renames due are told, or ctx is done: for
// a node shutting down, which has stopped taking requests. A rename
// answered meanwhile (a request the shutdown gave up on) is waited for
// too.
func (s *Service) FlushRenames(ctx context.Context) {
	if n := s.renames.tellers.Wait(ctx); n > 0 {
		s.log.Warn("renames still being told at shutdown", "users", n)
	}
}

// closeRenames ends the tellers and reports when they have returned.
func (s *Service) closeRenames() <-chan struct{} {
	r := &s.renames
	r.mu.Lock()
	r.closed = true
	r.pending = nil
	if r.cancel != nil {
		r.cancel()
	}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.tellers.Wait(context.Background()); close(done) }() // none starts once closed
	return done
}

// renameTellWait bounds the reads and publishes that tell a rename.
const renameTellWait = 10 * time.Second

// tellRename publishes the EventUser of u's new name (see SetName), as the
// store has it now if it can be read: a rename stored after u's may have
// come to this node first. What it cannot read or publish is logged once:
// the name is stored, and shown at the next reload.
func (s *Service) tellRename(ctx context.Context, u User) {
	ctx, cancel := context.WithTimeout(ctx, renameTellWait)
	defer cancel()
	if now, err := s.store.User(ctx, u.ID); err == nil {
		u = public(now)
	}
	// Its version orders it against the news of another node's rename,
	// which the broker may deliver before or after it.
	ev := Event{Type: EventUser, User: &User{ID: u.ID, Name: u.Name}, Seq: u.NameVersion}
	var (
		tried, failed int
		first         error
	)
	publish := func(t Topic, ev Event) {
		tried++
		if err := s.broker.Publish(ctx, t, ev); err != nil {
			if failed++; first == nil {
				first = err
			}
		}
	}
	defer func() {
		if failed > 0 {
			s.log.Warn("rename not told everywhere", "user", u.ID, "failed", failed, "of", tried, "err", first)
		}
	}()
	publish(UserTopic(u.ID), ev)
	// Not only contacts: an ex-friend's direct chat, and the block list
	// of one who blocked u, name u too. Direct chats pile up as
	// friendships come and go: as many as a user may have friends, the
	// most recently active, whose peers' lists show them first.
	ids, err := s.store.Acquaintances(ctx, u.ID, s.cfg.MaxFriends)
	if err != nil {
		s.log.Warn("list acquaintances for rename", "user", u.ID, "err", err)
	}
	for _, id := range ids {
		publish(UserTopic(id), ev)
	}
	// The groups and rooms as a connection follows them: the list of
	// conversations would read each one's unread count and last message.
	tell := func(id int64) {
		cev := ev
		cev.ConvID = id
		publish(ConvTopic(id), cev)
	}
	groups, err := s.store.UserGroups(ctx, u.ID)
	if err != nil {
		s.log.Warn("list groups for rename", "user", u.ID, "err", err)
	}
	for _, g := range groups { // every member's connections follow the group
		tell(g.ID)
	}
	rooms, err := s.store.UserRooms(ctx, u.ID)
	if err != nil {
		s.log.Warn("list rooms for rename", "user", u.ID, "err", err)
	}
	if len(rooms) == 0 {
		return
	}
	// Only those with it open follow a room: the rooms where u is
	// present, in one read.
	convs := make([]int64, len(rooms))
	for i, r := range rooms {
		convs[i] = r.ID
	}
	in, err := s.presence.PresentIn(ctx, u.ID, convs)
	if err != nil {
		s.log.Warn("read presence for rename", "user", u.ID, "rooms", len(convs), "err", err)
		return
	}
	for _, id := range in {
		tell(id)
	}
}

// Missed returns the events of topic t after position after, for a node
// whose Broker may have dropped them (see hub.Resync): a conversation's
// messages with seq > after, or a user's logged events with UserSeq >
// after; with after < 0, the newest one only. It serves the node itself,
// not a user: callers deliver the events only to subscribers already
// allowed to see t.
func (s *Service) Missed(ctx context.Context, t Topic, after int64) ([]Event, error) {
	kind, idText, ok := strings.Cut(string(t), ":")
	id, err := strconv.ParseInt(idText, 10, 64)
	if !ok || err != nil {
		return nil, fmt.Errorf("missed: bad topic %q", t)
	}
	switch kind {
	case "conv":
		p := pageAfter(max(after, 0), s.cfg.HistoryLimit)
		if after < 0 {
			p = Page{Limit: 1}
		}
		ms, err := s.store.Messages(ctx, id, p)
		if err != nil {
			return nil, internal("load messages", err)
		}
		s.anonymize(ms)
		s.nameTargets(ctx, ms)
		evs := make([]Event, len(ms))
		var kind ConvKind // read when a leave needs it: a group's revokes, a room's not
		for i := range ms {
			evs[i] = Event{Type: EventMessage, ConvID: id, Message: &ms[i]}
			switch ms[i].Kind {
			case KindRemoved:
				evs[i].Revoke = ms[i].TargetID
			case KindLeave:
				if kind == "" {
					if kind, _, err = s.store.Membership(ctx, id, 0); err != nil {
						return nil, internal("load conversation kind", err)
					}
				}
				if kind == ConvGroup { // as RemoveGroupMember publishes it
					evs[i].Revoke = ms[i].SenderID
				}
			}
		}
		return evs, nil
	case "user":
		if after < 0 {
			last, err := s.store.LastUserEvent(ctx, id)
			if err != nil || last == 0 {
				return nil, err
			}
			after = last - 1
		}
		return s.store.UserEvents(ctx, id, after, s.cfg.HistoryLimit)
	}
	return nil, fmt.Errorf("missed: bad topic %q", t)
}
