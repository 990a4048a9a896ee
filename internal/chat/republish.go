package chat

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"
)

// A change that the Service makes as a side effect (a join, a leave, a
// group event, and the user events that go with them) carries no client
// ID: a store that fails to answer after committing it (an unavailable or
// unexpected error: PostgreSQL committed and the connection broke) leaves
// it stored and unpublished, and a retry finds it made and publishes
// nothing. Clients would learn of it only at the conversation's next
// message, or at a reconnect. So, on such an error, the Service reads what
// the store has, a little later, and publishes it marked Event.Repeat:
// hubs drop what they delivered already (see hub.Hub), and deliver the
// rest in order.

// unknownOutcome reports whether err, from a store's change, leaves it
// unknown whether the change was made: any error but a refusal.
func unknownOutcome(err error) bool {
	if err == nil {
		return false
	}
	for _, kind := range []error{ErrInvalid, ErrNotFound, ErrForbidden, ErrConflict, ErrUnauthorized, ErrRateLimited} {
		if errors.Is(err, kind) {
			return false
		}
	}
	return true
}

const (
	// maxLater bounds the republishes waiting or running at once.
	maxLater = 256
	// laterAttempts bounds the tries of a republish whose reads fail;
	// each waits twice as long as the one before, from
	// Config.RepublishWait.
	laterAttempts = 8
	// laterTimeout bounds one try.
	laterTimeout = 10 * time.Second
)

// later holds the republishes due, by key: one per conversation tail or
// user event, so that changes failing together cost one read.
type later struct {
	mu     sync.Mutex
	closed bool
	jobs   map[string]*laterJob
	ctx    context.Context // ended by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the jobs running
}

type laterJob struct {
	timer   *time.Timer
	running bool
	again   bool // asked for again while running: it may have read too early
}

// republishLater runs do after Config.RepublishWait, and again, waiting
// twice as long each time, while it fails, up to laterAttempts tries.
// A key already due is not added twice; one running is run again after.
// Nothing is added after Close, or past maxLater keys: clients then learn
// of the change at the conversation's next message or when they reconnect.
func (s *Service) republishLater(key string, do func(ctx context.Context) error) {
	l := &s.later
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if j := l.jobs[key]; j != nil {
		if j.running {
			j.again = true
		}
		return
	}
	if len(l.jobs) >= maxLater {
		s.log.Warn("republish: too many due", "key", key)
		return
	}
	if l.jobs == nil {
		l.jobs = make(map[string]*laterJob)
		l.ctx, l.cancel = context.WithCancel(context.Background())
	}
	j := &laterJob{}
	l.jobs[key] = j
	s.scheduleLocked(key, j, do, 0)
}

// scheduleLocked starts j's timer for its try attempt. l.mu is held.
func (s *Service) scheduleLocked(key string, j *laterJob, do func(ctx context.Context) error, attempt int) {
	l := &s.later
	j.timer = time.AfterFunc(s.cfg.RepublishWait<<attempt, func() {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return
		}
		j.running, j.again = true, false
		l.wg.Add(1)
		l.mu.Unlock()
		defer l.wg.Done()

		ctx, cancel := context.WithTimeout(context.WithValue(l.ctx, laterKey{}, true), laterTimeout)
		err := do(ctx)
		cancel()

		l.mu.Lock()
		defer l.mu.Unlock()
		j.running = false
		switch {
		case l.closed:
		case j.again:
			s.scheduleLocked(key, j, do, 0)
		case err != nil && attempt+1 < laterAttempts:
			s.scheduleLocked(key, j, do, attempt+1)
		default:
			if err != nil {
				s.log.Warn("republish", "key", key, "attempts", attempt+1, "err", err)
			}
			delete(l.jobs, key)
		}
	})
}

// laterKey marks the context of a republish job: its publishes end with
// it, at Close, where those of a request outlive the request.
type laterKey struct{}

// closeWait bounds how long Close waits for the republishes running, once
// it has ended their context: a store or broker call that ignores it
// would otherwise hold Close for as long as it hangs.
const closeWait = 5 * time.Second

// Close stops the republishes due, ends those running, the tellers of
// renames (renames: the news not yet told is dropped) and the presence
// work that writes to the store on its own (grace timers, Presence.Watch
// callbacks, which do nothing after), and waits for them (at most
// closeWait). The Service stays usable otherwise, but renames are no
// longer told nor presences counted out on their own.
func (s *Service) Close() {
	s.life.stop()
	l := &s.later
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	for _, j := range l.jobs {
		j.timer.Stop()
	}
	l.jobs = nil
	if l.cancel != nil {
		l.cancel()
	}
	l.mu.Unlock()
	told := s.closeRenames()
	done := make(chan struct{})
	go func() { l.wg.Wait(); <-told; s.life.wg.Wait(); close(done) }()
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.log.Warn("republish: jobs still running at close", "waited", closeWait.String())
	}
}

// republishTail is, after an error of unknown outcome from a change that
// appends a message to conversation id, the republish of its newest
// message: hubs that lack it fill the gap before it from the store, and
// clients from sync.
func (s *Service) republishTail(err error, id int64) {
	if !unknownOutcome(err) {
		return
	}
	t := ConvTopic(id)
	s.republishLater(string(t), func(ctx context.Context) error {
		evs, err := s.Missed(ctx, t, -1)
		if errors.Is(err, ErrNotFound) {
			return nil // gone
		}
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if ev.Message.Kind == KindText {
				// The change was not made, or a send came after it,
				// whose publish shows hubs and clients the gap. A text
				// message published again would only show the clients
				// of the compatibility endpoint, which keep no seq, one
				// they have, or one from before they came.
				continue
			}
			ev.Repeat = true
			s.publish(ctx, t, ev)
		}
		return nil
	})
}

// republishRemoved is, after an error of unknown outcome from a change
// that ends userID's membership of conversation id and logs its
// EventRemoved, the republish of that event, if userID is no member now.
func (s *Service) republishRemoved(err error, userID, id int64) {
	if !unknownOutcome(err) {
		return
	}
	s.republishLater("removed:"+strconv.FormatInt(userID, 10)+":"+strconv.FormatInt(id, 10), func(ctx context.Context) error {
		_, member, err := s.store.Membership(ctx, id, userID)
		switch {
		case errors.Is(err, ErrNotFound):
			return nil
		case err != nil:
			return err
		case member:
			return nil // not removed, or a member again: the removal is old news
		}
		ev, err := s.loggedRemoved(ctx, userID, id)
		if err != nil || ev == nil {
			return err
		}
		ev.Repeat = true
		s.publish(ctx, UserTopic(userID), *ev)
		return nil
	})
}

// loggedRemoved returns the newest EventRemoved of conversation id among
// userID's newest maxLaterEvents logged events, nil if none is.
func (s *Service) loggedRemoved(ctx context.Context, userID, id int64) (*Event, error) {
	ev, err := s.findLogged(ctx, userID, func(ev Event) bool { return ev.Type == EventRemoved && ev.ConvID == id })
	return ev, err
}

// findLogged returns the newest of userID's newest maxLaterEvents logged
// events that is, nil if none is.
func (s *Service) findLogged(ctx context.Context, userID int64, is func(Event) bool) (*Event, error) {
	last, err := s.store.LastUserEvent(ctx, userID)
	if err != nil || last == 0 {
		return nil, err
	}
	evs, err := s.store.UserEvents(ctx, userID, max(0, last-maxLaterEvents), maxLaterEvents)
	if err != nil {
		return nil, err
	}
	for _, ev := range slices.Backward(evs) {
		if is(ev) {
			return &ev, nil
		}
	}
	return nil, nil
}

// reasonDeleted is the Reason of the EventRemoved of a group's deletion.
const reasonDeleted = "deleted"

// republishDeleted is, after an error of unknown outcome from the
// deletion of group id, whose members were read just before, the
// republish of the EventRemoved that the deletion kept in each member's
// log, if the group is gone: the members went with it, and a retry finds
// no group.
func (s *Service) republishDeleted(err error, id int64, members []GroupMember) {
	if !unknownOutcome(err) {
		return
	}
	s.republishLater("deleted:"+strconv.FormatInt(id, 10), func(ctx context.Context) error {
		_, err := s.store.Group(ctx, id)
		switch {
		case err == nil:
			return nil // not deleted
		case !errors.Is(err, ErrNotFound):
			return err
		}
		s.kinds.forget(id)
		for _, m := range members {
			ev, err := s.loggedRemoved(ctx, m.User.ID, id)
			if err != nil {
				return err // tried again: hubs drop those delivered
			}
			if ev != nil && ev.Reason == reasonDeleted {
				ev.Repeat = true
				s.publish(ctx, UserTopic(m.User.ID), *ev)
			}
		}
		return nil
	})
}

// freshWindow is how long after its creation a group that nothing
// happened in since answers a creation by its owner of a group with its
// name and settings, as a retry of the creation that made it.
const freshWindow = 5 * time.Minute

// maxFreshReads bounds the groups freshGroup reads.
const maxFreshReads = 32

// freshGroup returns the group, and its created message, that a creation
// of ng whose answer was lost made: the group of ng.OwnerID's named
// ng.Name, if it has ng's settings, no member but its owner, no message
// but the created one, and was made at most freshWindow ago. The owner
// may have made other groups, or been added to some, since: it looks
// through their groups newest first (ids only grow), up to the first one
// made before freshWindow, and at most maxFreshReads of them. Only a
// creation refused name_taken, or one of unknown outcome, looks.
func (s *Service) freshGroup(ctx context.Context, ng NewGroup) (Group, Message, bool, error) {
	gs, err := s.store.UserGroups(ctx, ng.OwnerID)
	if err != nil {
		return Group{}, Message{}, false, err
	}
	reads := 0
	for _, ga := range slices.Backward(gs) {
		if reads++; reads > maxFreshReads {
			break
		}
		g, err := s.store.Group(ctx, ga.ID)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since
		}
		if err != nil {
			return Group{}, Message{}, false, err
		}
		if s.cfg.Now().Sub(g.CreatedAt) > freshWindow {
			break // and so were those before it
		}
		if g.Name != ng.Name {
			continue
		}
		if g.Description != ng.Description || g.MaxMembers != ng.MaxMembers ||
			g.OwnerID != ng.OwnerID || g.Members != 1 || g.LastSeq != 1 {
			return Group{}, Message{}, false, nil
		}
		ms, err := s.store.Messages(ctx, g.ID, Page{Limit: 1})
		if err != nil || len(ms) != 1 || ms[0].Kind != KindCreated {
			return Group{}, Message{}, false, err
		}
		return g, ms[0], true, nil
	}
	return Group{}, Message{}, false, nil
}

// republishCreated is, after an error of unknown outcome from the
// creation of ng, tellCreated of the group, if the creation made it.
func (s *Service) republishCreated(err error, ng NewGroup) {
	if !unknownOutcome(err) {
		return
	}
	s.republishLater("created:"+strconv.FormatInt(ng.OwnerID, 10)+":"+ng.Name, func(ctx context.Context) error {
		g, m, ok, err := s.freshGroup(ctx, ng)
		if err != nil || !ok {
			return err
		}
		return s.tellCreated(ctx, g.ID, m)
	})
}

// tellCreated publishes again the created message m of group id, and the
// EventConversation that the creation kept in its owner's log
// (repeatJoined): what CreateGroup publishes after the store made the
// group. An error is that of the log's read: nothing was told the owner,
// and a republish tries again (hubs drop what they delivered).
func (s *Service) tellCreated(ctx context.Context, id int64, m Message) error {
	one := []Message{m}
	s.nameTargets(ctx, one)
	s.publish(ctx, ConvTopic(id), Event{Type: EventMessage, ConvID: id, Message: &one[0], Repeat: true})
	return s.repeatJoined(ctx, m.SenderID, id)
}

// repeatJoined publishes again, marked Repeat, the EventConversation of
// group id that a creation or an addition kept in userID's log in its
// transaction, if it is the newest of the log's membership events of the
// group (among its newest maxLaterEvents). A removal logged after it was
// published by the call that made it, and ends what it began: clients
// that lack it fill it from the log. An error is the log's read's.
func (s *Service) repeatJoined(ctx context.Context, userID, id int64) error {
	ev, err := s.findLogged(ctx, userID, func(ev Event) bool {
		return ev.ConvID == id && (ev.Type == EventConversation || ev.Type == EventRemoved)
	})
	if err != nil || ev == nil || ev.Type != EventConversation {
		return err
	}
	ev.Repeat = true
	s.publish(ctx, UserTopic(userID), *ev)
	return nil
}

// maxLaterEvents is how many of a user's newest logged events a
// republish looks through for the one it republishes.
const maxLaterEvents = 16

// republishJoined is, after an error of unknown outcome from u's entry
// into room id, the EventConversation of the entry, to u's topic, if u is
// a member: EnterRoom, retried, finds u a member and tells nobody.
func (s *Service) republishJoined(err error, u User, id int64) {
	if !unknownOutcome(err) {
		return
	}
	s.republishLater("joined:"+strconv.FormatInt(u.ID, 10)+":"+strconv.FormatInt(id, 10), func(ctx context.Context) error {
		join, member, err := s.memberSince(ctx, u.ID, id, func(m Message) bool {
			return (m.Kind == KindJoin || m.Kind == KindLeave) && m.SenderID == u.ID
		})
		if err != nil || !member {
			return err
		}
		if join != nil && join.Kind != KindJoin {
			join = nil // a room too large to announce joins: this one has none
		}
		ev := Event{Type: EventConversation, ConvID: id, ConvKind: ConvRoom, Message: join}
		s.publishMember(ctx, u.ID, id, ev, s.leftLogged(ctx, u.ID, id))
		return nil
	})
}

// republishAdded is, after an error of unknown outcome from the addition
// of userID to group id, the republish of the EventConversation that the
// addition kept in userID's log (repeatJoined): a retry finds userID a
// member and is refused.
func (s *Service) republishAdded(err error, userID, id int64) {
	if !unknownOutcome(err) {
		return
	}
	s.republishLater("added:"+strconv.FormatInt(userID, 10)+":"+strconv.FormatInt(id, 10), func(ctx context.Context) error {
		return s.repeatJoined(ctx, userID, id)
	})
}

// publishMember publishes ev, which tells userID of their membership of
// conversation id, to userID's topic, kept first in their event log if
// logged (AppendMemberEvent), unless userID is no member once it is kept.
// The membership was read before, and may have ended since: the removal's
// event, logged before ev would be, is then the last of the log about id,
// and ev is neither kept nor published, as it would announce, in the log
// that devices replay too, a membership that has ended. A removal logged
// after ev comes after it, in the log and to the hubs, which order a
// user's logged events by their numbers: ev kept is published as it is.
// (A group's addition is logged in its transaction, and republishAdded
// needs none of this.) An ev not kept is published only if userID is a
// member as a read after finds.
func (s *Service) publishMember(ctx context.Context, userID, id int64, ev Event, logged bool) {
	if logged {
		kept, member, err := s.store.AppendMemberEvent(context.WithoutCancel(ctx), userID, id, ev, s.cfg.Now())
		switch {
		case err != nil:
			s.log.Warn("keep user event", "user", userID, "type", string(ev.Type), "err", err)
		case !member:
			return // ended since: its removed, logged, is the news
		default:
			s.publish(ctx, UserTopic(userID), kept)
			return
		}
	}
	// A failed read publishes: the hub revokes what a removal ends.
	if _, member, err := s.store.Membership(ctx, id, userID); errors.Is(err, ErrNotFound) || (err == nil && !member) {
		return
	}
	s.publish(ctx, UserTopic(userID), ev)
}

// memberSince reports whether userID is a member of conversation id, and
// if so returns the newest of its last Config.HistoryLimit messages that
// is, if any: the one that made the membership, or one that ended an
// earlier one.
func (s *Service) memberSince(ctx context.Context, userID, id int64, is func(Message) bool) (*Message, bool, error) {
	_, member, err := s.store.Membership(ctx, id, userID)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, false, nil
	case err != nil || !member:
		return nil, false, err
	}
	ms, err := s.store.Messages(ctx, id, Page{Limit: s.cfg.HistoryLimit})
	if err != nil {
		return nil, false, err
	}
	for i := len(ms) - 1; i >= 0; i-- {
		if is(ms[i]) {
			one := ms[i : i+1]
			s.nameTargets(ctx, one)
			return &one[0], true, nil
		}
	}
	return nil, true, nil
}

// retellContact is, after an error of unknown outcome from a change of
// the relation between users owner and other (a friend request, an
// acceptance, a removal, a block or unblock), tellContact later. The
// store makes such a change before the Service logs and publishes its
// EventContact, so an answer lost after the commit loses the event too,
// and a retry finds nothing to change. Only the call that got the error
// schedules it: not a repeat, which any user can make at no cost.
func (s *Service) retellContact(owner, other int64) {
	s.republishLater("contact:"+strconv.FormatInt(owner, 10)+":"+strconv.FormatInt(other, 10), func(ctx context.Context) error {
		return s.tellContact(ctx, owner, other)
	})
}

// tellContact tells owner, keeping it in their log, their contact with
// user other as the store has it, unless the newest EventContact about
// other among owner's newest logged events has that state already. A
// state of none is told only to an owner whose log shows another: not
// to one who never heard of a relation, nor, the blocked user of a block,
// one who had none.
func (s *Service) tellContact(ctx context.Context, owner, other int64) error {
	logged, err := s.loggedContact(ctx, owner, other)
	if err != nil {
		return err
	}
	c, err := s.contactOf(ctx, owner, other)
	if errors.Is(err, ErrNotFound) {
		return nil // gone
	}
	if err != nil {
		return err
	}
	if c.State == logged || c.State == StateNone && logged == "" {
		return nil
	}
	s.notifyContact(ctx, owner, c)
	return nil
}

// loggedContact returns the state of the newest EventContact about user
// other among owner's newest maxLaterEvents logged events, "" if none is.
func (s *Service) loggedContact(ctx context.Context, owner, other int64) (string, error) {
	ev, err := s.findLogged(ctx, owner, func(ev Event) bool {
		return ev.Type == EventContact && ev.Contact != nil && ev.Contact.User.ID == other
	})
	if err != nil || ev == nil {
		return "", err
	}
	return ev.Contact.State, nil
}

// contactOf returns owner's contact with user other as the store has it:
// their relation, or StateBlocked if owner blocked other, or StateNone.
func (s *Service) contactOf(ctx context.Context, owner, other int64) (Contact, error) {
	cs, err := s.store.Contacts(ctx, owner)
	if err != nil {
		return Contact{}, err
	}
	for _, c := range cs {
		if c.User.ID == other {
			return c, nil
		}
	}
	u, err := s.store.User(ctx, other)
	if err != nil {
		return Contact{}, err
	}
	c := Contact{User: u, State: StateNone}
	blocked, err := s.store.IsBlocked(ctx, owner, other)
	if err != nil || !blocked {
		return c, err
	}
	us, err := s.store.Blocked(ctx, owner) // which of the two blocked
	if err != nil {
		return Contact{}, err
	}
	if slices.ContainsFunc(us, func(u User) bool { return u.ID == other }) {
		c.State = StateBlocked
	}
	return c, nil
}
