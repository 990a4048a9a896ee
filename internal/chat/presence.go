package chat

import (
	"context"
	"sync"
	"time"
)

// Presence to friends.
//
// A user is online while they have at least one connection (WebSocket or
// long-poll channel) on any node; several tabs and devices count once
// (Presence.Add/Remove in Everywhere). The transitions go to the user's
// friends, on their user topics, as EventPresence without a ConvID; going
// offline carries the last-seen time, which is also stored.
//
// Transitions are coalesced: a connection's end is counted out only after
// Config.PresenceGrace, so a user whose connection drops and returns within
// it (a reload, a network blip, a flapping link) never goes offline, and a
// flapping connection can cause at most one pair of transitions per grace
// period. Presence in a conversation (who has it open) is the room-level
// presence of rooms.go.

// away holds the pending ends of connections, per user: the connections
// of a user that end within a grace period of each other are counted out
// together, a grace period after the last, with one timer and one write
// of when the user was last seen. The cap on a user's connections bounds
// those open at once, not how many end: a timer and a write each would
// let a client that opens and ends connections in a loop make the server
// hold as many timers, and write to the store as fast as it loops.
type away struct {
	mu    sync.Mutex
	users map[int64]*ended
	// running counts the users their timers are counting out now;
	// idle, made as it leaves 0, is closed as it returns to 0.
	running int
	idle    chan struct{}
	// live counts the connections of each user counted in (Connect)
	// and not ended (Disconnect), for FlushPresence to count out those
	// still open as the node shuts down.
	live map[int64]int
	// flushed is set by FlushPresence: the node is shutting down, and
	// connections that end after are not counted out (see Disconnect).
	flushed bool
}

// ended is the connections of a user that ended and are not counted out
// yet.
type ended struct {
	u     User
	n     int // connections
	timer *time.Timer
	done  bool // counted out, or being: guarded by away.mu
}

// Connect counts one more connection of u; if u was offline everywhere,
// u's friends learn that u is online. One that FlushPresence overtook is
// counted out at once.
func (s *Service) Connect(ctx context.Context, u User) error {
	first := s.addPresence(ctx, Everywhere, u.ID)
	if !s.away.connected(u.ID) {
		s.disconnectNow(ctx, u, 1)
		return nil
	}
	if first {
		s.tellPresence(ctx, u, true, time.Time{})
	}
	return nil
}

// connected counts one more open connection of userID, unless
// FlushPresence has run, and reports whether it did.
func (a *away) connected(userID int64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.flushed {
		return false
	}
	if a.live == nil {
		a.live = make(map[int64]int)
	}
	a.live[userID]++
	return true
}

// tellPresence tells u's friends that u went online, or offline (last
// seen at seen), unless the Presence, read again now, says otherwise. A
// connection made as u's last one is counted out (or ended as the first
// is counted) makes two transitions at about the same time, each with its
// news on its way: the one published last stays with the friends, and
// could be the older one, u's laptop connected and shown offline. So the
// news is what the read finds, with the read's version (Presence.State):
// the last transition's read finds the state it made, with the highest
// version, and the friends' hubs drop news older than what they have
// delivered, whichever node published it and in whatever order the
// publishes arrive. News that the read contradicts is left to the
// transition that came after it. On this node a user's news still goes
// out one at a time, each after its read, so that clients of older hubs
// keep getting it in order from one node. If the Presence cannot be read,
// the news goes out as it is, without a version.
func (s *Service) tellPresence(ctx context.Context, u User, online bool, seen time.Time) {
	s.told.Lock(u.ID)
	defer s.told.Unlock(u.ID, nil)
	var version int64
	now, v, err := s.presence.State(ctx, Everywhere, u.ID)
	if err == nil {
		if now != online {
			return
		}
		version = v
	}
	ev := Event{Type: EventPresence, User: &User{ID: u.ID, Name: u.Name}, Online: online, Seq: version}
	if !online {
		ev.LastSeen = seen
	}
	s.tellFriends(ctx, u.ID, ev)
}

// addPresence counts one more connection of userID in convID and reports
// whether it is the first. Presence is not worth refusing a connection
// for: when it cannot be counted (a shared Presence unreachable) the user
// is served anyway, shown offline until the Presence can count it (a
// shared one then reports it through Watch).
func (s *Service) addPresence(ctx context.Context, convID, userID int64) bool {
	first, err := s.presence.Add(ctx, convID, userID)
	if err != nil {
		s.log.Warn("add presence", "conv", convID, "user", userID, "err", err)
	}
	return first
}

// Disconnect counts one connection of u out, after the grace period:
// with u's others that ended, once none has for the grace period. After
// FlushPresence it does nothing: a timer started then would fire as the
// store closes, or never, the process gone; the flush was the node's
// last word on its users' presence.
func (s *Service) Disconnect(u User) {
	s.away.mu.Lock()
	defer s.away.mu.Unlock()
	if s.away.flushed {
		return
	}
	if n := s.away.live[u.ID]; n > 1 {
		s.away.live[u.ID] = n - 1
	} else {
		delete(s.away.live, u.ID)
	}
	if e := s.away.users[u.ID]; e != nil && e.timer.Stop() {
		e.n++
		e.timer.Reset(s.cfg.PresenceGrace)
		return
	}
	// None pending, or its timer has fired: that one counts out its own.
	e := &ended{u: u, n: 1}
	e.timer = time.AfterFunc(s.cfg.PresenceGrace, func() {
		if !s.life.begin() {
			return // the store is closing
		}
		defer s.life.end()
		if n := s.away.take(e); n > 0 {
			defer s.away.finished()
			ctx, cancel := context.WithTimeout(s.life.ctx, 10*time.Second)
			defer cancel()
			s.disconnectNow(ctx, u, n)
		}
	})
	if s.away.users == nil {
		s.away.users = make(map[int64]*ended)
	}
	s.away.users[u.ID] = e
}

// take marks e counted out by its timer and returns its connections;
// none if it was already. The timer calls finished once it has counted
// them out.
func (a *away) take(e *ended) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e.done {
		return 0
	}
	e.done = true
	if a.users[e.u.ID] == e {
		delete(a.users, e.u.ID)
	}
	if a.running == 0 {
		a.idle = make(chan struct{})
	}
	a.running++
	return e.n
}

// finished ends what take began.
func (a *away) finished() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.running--
	if a.running == 0 {
		close(a.idle)
		a.idle = nil
	}
}

// disconnectNow counts out n connections of u. The last-seen time is
// stored first, whether or not they were u's last connections: once the
// Presence no longer counts u, a reader on any node that finds u offline
// must find when u was last seen.
func (s *Service) disconnectNow(ctx context.Context, u User, n int) {
	now := s.seenNow(ctx, u.ID)
	last := false
	for range n {
		l, err := s.presence.Remove(ctx, Everywhere, u.ID)
		if err != nil {
			s.log.Warn("remove presence", "user", u.ID, "err", err)
			return
		}
		last = last || l
	}
	if last {
		s.tellOffline(ctx, u.ID, now)
	}
}

// wentOffline records when userID, no longer present anywhere, was last
// seen, and tells their friends.
func (s *Service) wentOffline(ctx context.Context, userID int64) {
	s.tellOffline(ctx, userID, s.seenNow(ctx, userID))
}

// seenNow records that userID is seen now, and returns now.
func (s *Service) seenNow(ctx context.Context, userID int64) time.Time {
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	if err := s.store.SetLastSeen(ctx, userID, now); err != nil {
		s.log.Warn("set last seen", "user", userID, "err", err)
	}
	return now
}

// tellOffline tells userID's friends that userID went offline, last seen
// at seen.
func (s *Service) tellOffline(ctx context.Context, userID int64, seen time.Time) {
	u, err := s.store.User(ctx, userID)
	if err != nil {
		s.log.Warn("load user gone offline", "user", userID, "err", err)
		return
	}
	s.tellPresence(ctx, u, false, seen)
}

// FlushPresence counts out at once every connection whose grace period is
// still running, and those still open (sessions the hub's close did not
// end in time), and waits for the timers counting out others now: for a
// node shutting down, whose users would otherwise stay online in the
// shared Presence, without a last-seen time in the in-process one, and
// whose store and broker close next. It returns when ctx ends, whatever
// is left. Connections that end after it are not counted out again
// (Disconnect).
func (s *Service) FlushPresence(ctx context.Context) {
	s.away.mu.Lock()
	s.away.flushed = true
	byUser := make(map[int64]*ended, len(s.away.users)+len(s.away.live))
	var due []*ended
	for id, e := range s.away.users {
		// A timer that fired and has not taken e yet finds it done.
		e.timer.Stop()
		if !e.done {
			e.done = true
			byUser[id] = e
			due = append(due, e)
		}
		delete(s.away.users, id)
	}
	for id, n := range s.away.live {
		if e := byUser[id]; e != nil {
			e.n += n
			continue
		}
		due = append(due, &ended{u: User{ID: id}, n: n})
	}
	s.away.live = nil
	idle := s.away.idle
	s.away.mu.Unlock()
	for _, e := range due {
		if ctx.Err() != nil {
			return
		}
		s.disconnectNow(ctx, e.u, e.n)
	}
	if idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
		}
	}
}

// presenceChanged is the Presence.Watch callback: a dead node's user is
// no longer present in convID anywhere, or (online) is again, the node
// having turned out alive. After Close it does nothing: the store closes
// next (a shared Presence's Close reports this node's presences as it
// removes them, and the Client waits for it only so long).
func (s *Service) presenceChanged(convID, userID int64, online bool) {
	if !s.life.begin() {
		return
	}
	defer s.life.end()
	ctx, cancel := context.WithTimeout(s.life.ctx, 10*time.Second)
	defer cancel()
	if convID == Everywhere && !online {
		s.wentOffline(ctx, userID)
		return
	}
	u, err := s.store.User(ctx, userID)
	if err != nil {
		return
	}
	if convID == Everywhere {
		s.tellPresence(ctx, u, true, time.Time{})
		return
	}
	s.convPresence(ctx, convID, u, online)
}

// life ends, at Close, the presence work that writes to the store on a
// goroutine of its own (grace timers, Watch callbacks), and tells Close
// when that under way has returned: the store closes after Close.
type life struct {
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// begin reports whether work may start, and counts it if so: end must
// follow.
func (l *life) begin() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.wg.Add(1)
	return true
}

func (l *life) end() { l.wg.Done() }

// stop ends the work under way (Close then waits for wg) and refuses
// more.
func (l *life) stop() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cancel()
}

// counts holds the conversations with an EventOnlineCount due.
type counts struct {
	mu  sync.Mutex
	due map[int64]bool
}

// convPresence tells conversation id's subscribers that u has opened it
// (online) or no longer has it open anywhere. Up to Config.OnlineMax
// present, that is an EventPresence with the count after it. Above, it is
// an EventOnlineCount, sent once OnlineCountEvery has passed, with the
// count then, for every change in between: filling a room of n would
// otherwise send n²/2 events.
func (s *Service) convPresence(ctx context.Context, id int64, u User, online bool) {
	if s.hidesPresence(ctx, u.ID, id) {
		return
	}
	n, version, ok := s.convState(ctx, id, u.ID, online)
	if !ok {
		return
	}
	s.announce(ctx, id, u, online, n, version)
}

// convState reads the Presence again for news that userID has
// conversation id open (online) or no longer anywhere, and returns the
// version to tell it with (Presence.State), as tellPresence does for
// friends: a user's last connection with the conversation open closed on
// one node as another node opens it makes two changes at about the same
// time, each with its news on its way, and the older, published last,
// would undo the newer at the other members' clients, with a count that
// agrees. Each hub drops a user's news in the conversation older than
// what it delivered. n is how many have the conversation open, read in
// the same step (Presence.StateCount): the count at that version, which
// hubs deliver only if no newer count was (news of two users crosses
// too, and a count read apart from the version could go back). ok is
// false if the read contradicts the news: the change after it tells. If
// the Presence cannot be read, the news goes out without a version or a
// count (0).
func (s *Service) convState(ctx context.Context, id, userID int64, online bool) (n int, version int64, ok bool) {
	now, n, v, err := s.presence.StateCount(ctx, id, userID)
	if err != nil {
		s.log.Warn("read presence", "conv", id, "user", userID, "err", err)
		return 0, 0, true
	}
	return n, v, now == online
}

// announce is convPresence with the count after the change, n, and the
// version of the news (convState) known.
func (s *Service) announce(ctx context.Context, id int64, u User, online bool, n int, version int64) {
	if n > s.cfg.OnlineMax {
		s.countLater(id)
		return
	}
	pu := public(u)
	s.publish(ctx, ConvTopic(id), Event{Type: EventPresence, ConvID: id, User: &pu, Online: online, OnlineCount: n, Seq: version})
}

// countLater publishes conversation id's EventOnlineCount after
// OnlineCountEvery, unless one is due already, with the count's version
// (Presence.StateCount) for hubs to drop it if they delivered a newer
// count, as convState's.
func (s *Service) countLater(id int64) {
	s.counts.mu.Lock()
	defer s.counts.mu.Unlock()
	if s.counts.due[id] {
		return
	}
	s.counts.due[id] = true
	time.AfterFunc(s.cfg.OnlineCountEvery, func() {
		s.counts.mu.Lock()
		delete(s.counts.due, id)
		s.counts.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, n, v, err := s.presence.StateCount(ctx, id, 0)
		if err != nil {
			s.log.Warn("count presence", "conv", id, "err", err)
			return
		}
		s.publish(ctx, ConvTopic(id), Event{Type: EventOnlineCount, ConvID: id, OnlineCount: n, Seq: v})
	})
}

// tellFriends publishes ev to the user topic of each friend of userID.
func (s *Service) tellFriends(ctx context.Context, userID int64, ev Event) {
	cs, err := s.store.Contacts(ctx, userID)
	if err != nil {
		s.log.Warn("list friends for presence", "user", userID, "err", err)
		return
	}
	for _, c := range cs {
		if c.State == StateFriends {
			s.publish(ctx, UserTopic(c.User.ID), ev)
		}
	}
}

// PresenceVersion returns the version of presence news now (Presence.Version):
// news told before with a lower version is older than what a read after
// finds.
func (s *Service) PresenceVersion(ctx context.Context) (int64, error) {
	return s.presence.Version(ctx)
}

// FriendsPresence fills in Online and LastSeen of the friends among cs.
// If the Presence cannot be read (a shared one unreachable), the friends
// are shown offline, last seen when the store says: the contacts stay
// listed.
func (s *Service) FriendsPresence(ctx context.Context, cs []Contact) error {
	var ids []int64
	for _, c := range cs {
		if c.State == StateFriends {
			ids = append(ids, c.User.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	online, err := s.presence.OnlineOf(ctx, Everywhere, ids)
	if err != nil {
		s.log.Warn("load presence of friends", "err", err)
	}
	seen, err := s.store.LastSeen(ctx, ids)
	if err != nil {
		return internal("load last seen", err)
	}
	on := make(map[int64]bool, len(online))
	for _, id := range online {
		on[id] = true
	}
	for i := range cs {
		if cs[i].State != StateFriends {
			continue
		}
		cs[i].Online = on[cs[i].User.ID]
		if !cs[i].Online {
			cs[i].LastSeen = seen[cs[i].User.ID]
		}
	}
	return nil
}
