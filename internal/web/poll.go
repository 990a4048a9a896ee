package web

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"iter"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
)

// Long-polling: the native protocol over plain HTTP (docs/protocol.md).
//
// A client holds a GET /api/poll open; it answers at once when frames are
// waiting, else when one arrives or after PollHold, with the frames (the
// very ones a WebSocket carries) and a cursor for the next poll. Frames a
// client sends go as POST /api/poll?cursor=…, one per request, answered
// with the reply frames.
//
// A channel is a session (session.go) kept between polls: its hub client
// queues the events that arrive meanwhile. The cursor says what the client
// has: the channel, how many responses it received, the last logged user
// event and, per open conversation, the last message. So a lost response
// is sent again, and a channel the server does not know (it restarted,
// or the channel idled out or fell behind) is rebuilt from the cursor,
// the missed messages and user events read from the store: nothing is
// lost or delivered twice. Only ephemeral frames (typing, presence) can be
// missed then; the client learns of it by a "resumed" frame.

// pollCursor is what a long-poll client carries from poll to poll.
type pollCursor struct {
	Channel string          `json:"ch"`
	N       int64           `json:"n"`           // responses the client has received
	User    int64           `json:"u"`           // user_seq of the last logged event delivered
	Convs   map[int64]int64 `json:"c,omitempty"` // open conversations: seq of the last message delivered
	// convs are the open conversations of a cursor decoded from cursorV1,
	// as encoded there, in place of Convs: every poll reads a cursor, and
	// only a channel rebuilt from it reads its conversations (restore).
	convs []byte
}

// conversations yields each open conversation of c with the seq of the
// last message delivered in it, by id.
func (c *pollCursor) conversations() iter.Seq2[int64, int64] {
	return func(yield func(id, seq int64) bool) {
		if c.convs == nil {
			ids := slices.AppendSeq(make([]int64, 0, 16), maps.Keys(c.Convs)) // on the stack, unless more
			slices.Sort(ids)
			for _, id := range ids {
				if !yield(id, c.Convs[id]) {
					return
				}
			}
			return
		}
		for b := c.convs; len(b) > 0; {
			id, n := binary.Uvarint(b)
			seq, m := binary.Uvarint(b[n:])
			b = b[n+m:]
			if !yield(int64(id), int64(seq)) {
				return
			}
		}
	}
}

// numConvs is the number of open conversations of c.
func (c *pollCursor) numConvs() int {
	if c.convs == nil {
		return len(c.Convs)
	}
	n := 0
	for range c.conversations() {
		n++
	}
	return n
}

// A cursor is base64url (unpadded) of cursorV1 and uvarints: the
// channel's length and bytes, N, User, the number of open conversations,
// then each one's id and seq, by id. Every delivery to a long-polling
// client reads one cursor and writes the next (docs/benchmarks.md, target
// 7), and reading a JSON cursor alone took 6 % of the server's CPU there.
// Cursors given before, JSON under the same base64, still parse: a client
// polling across an upgrade loses nothing.
const (
	cursorV1       = 0x01
	maxCursorLen   = 8 << 10
	maxCursorConvs = 256
	maxChannelLen  = 64
)

func (c pollCursor) encode() string {
	return string(c.appendEncoded(nil))
}

// appendEncoded appends the cursor, encoded, to dst.
func (c pollCursor) appendEncoded(dst []byte) []byte {
	b := make([]byte, 0, 128) // on the stack, unless the cursor is longer
	b = append(b, cursorV1)
	b = binary.AppendUvarint(b, uint64(len(c.Channel)))
	b = append(b, c.Channel...)
	b = binary.AppendUvarint(b, uint64(c.N))
	b = binary.AppendUvarint(b, uint64(c.User))
	b = binary.AppendUvarint(b, uint64(c.numConvs()))
	for id, seq := range c.conversations() {
		b = binary.AppendUvarint(b, uint64(id))
		b = binary.AppendUvarint(b, uint64(seq))
	}
	return base64.RawURLEncoding.AppendEncode(dst, b)
}

func parseCursor(s string) (*pollCursor, error) {
	if s == "" {
		return nil, nil
	}
	bad := func() error {
		return chat.Invalid(chat.CodeInvalidField, "cursor", "cursor is not one this server gave")
	}
	if len(s) > maxCursorLen {
		return nil, bad()
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 || base64.RawURLEncoding.EncodedLen(len(b)) != len(s) {
		return nil, bad() // or line breaks, which the decoder skips: no server gives them
	}
	var c pollCursor
	if b[0] == '{' {
		err = unmarshal(b, &c) // refuses a channel that is not valid UTF-8
	} else {
		err = c.decode(b)
	}
	if err != nil || !channelName(c.Channel) || c.N < 0 || c.User < 0 || len(c.Convs) > maxCursorConvs { // decode bounds a v1 cursor's
		return nil, bad()
	}
	for id, seq := range c.Convs { // decode checks a v1 cursor's
		if id <= 0 || seq < 0 {
			return nil, bad()
		}
	}
	return &c, nil
}

var errCursor = errors.New("malformed cursor")

// channelName reports whether s can be the name of a channel this server
// gave: at most maxChannelLen characters of base64url (newChannelID), with
// the dot between a fork's family and its own name (forkID). A name of
// other characters is none, and a fork of it would carry them on: into
// the next cursors, and into the channel_ended event, JSON through the
// broker, which would name another channel where the bytes are not UTF-8
// (U+FFFD in their place).
func channelName(s string) bool {
	if s == "" || len(s) > maxChannelLen {
		return false
	}
	for i := range len(s) {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// decode reads an encoded cursor (before base64) into c.
func (c *pollCursor) decode(b []byte) error {
	if b[0] != cursorV1 {
		return errCursor
	}
	b = b[1:]
	num := func() int64 {
		v, n := binary.Uvarint(b)
		if n <= 0 || v > math.MaxInt64 {
			b = nil
			return -1
		}
		b = b[n:]
		return int64(v)
	}
	l := num()
	if l < 0 || l > maxChannelLen || l > int64(len(b)) {
		return errCursor
	}
	c.Channel, b = string(b[:l]), b[l:]
	c.N, c.User = num(), num()
	convs := num()
	if c.N < 0 || c.User < 0 || convs < 0 || convs > maxCursorConvs {
		return errCursor
	}
	start, prev := b, int64(0)
	for range convs {
		id, seq := num(), num()
		if id <= prev || seq < 0 {
			return errCursor // malformed, no conversation's (below 1), or the ids not in increasing order as encode gives them
		}
		prev = id
	}
	if len(b) > 0 {
		return errCursor // trailing bytes
	}
	c.convs = start[:len(start):len(start)]
	return nil
}

// pollChannel is one long-poll client's session between polls.
type pollChannel struct {
	s      *server
	id     string
	sess   *session
	signal chan struct{} // a frame is waiting, or the hub client closed
	taking sync.Mutex    // held by a GET while it takes frames and answers with them

	mu       sync.Mutex
	auth     authInfo          // the user and session the channel serves (channelAuth)
	n        int64             // responses given
	prev     []json.RawMessage // frames of response n, for a client that lost it
	pending  []json.RawMessage // frames to give before the queued events
	pos      map[int64]int64   // open conversations: last seq delivered
	live     map[int64]int64   // conversations not open (groups, one being opened): last seq delivered
	unsynced map[int64]bool    // open conversations whose messages missed are still to give from the store (resync)
	waiter   chan struct{}     // closed to end the GET waiting now
	idle     *time.Timer
	stopped  bool

	from string // the channel it was rebuilt from (pollChannels.rebuilt); "" for a new channel or a fork
}

type pollChannels struct {
	mu    sync.Mutex
	m     map[string]*pollChannel
	forks map[string][]*pollChannel // live forks (forkID), by the family they belong to
	ended endedChannels
	cut   endedChannels // channels this node cut (too slow, shutting down) whose clients have not rebuilt them yet: by channel, not family (stopCut)

	// rebuilt holds the live channels rebuilt from a cursor, by the name
	// of the channel the cursor named (pollChannel.from): a later request
	// with a cursor of that channel (a poll and a POST rebuilding it at
	// once, or a poll retried) is answered from the one rebuilt, as from
	// the channel it stands for.
	rebuilt map[string]*pollChannel
}

// A stale poll is answered by a fork of its channel (channelFor). The
// fork serves the same client, so the client's DELETE, which names the
// channel it polls on, must end the fork too: else it keeps the user
// online until it idles out. So a fork's name is its family's, the name of
// the channel first forked, a dot and its own: "F.x". Every node can tell
// the family from a cursor, with no record to share, and the DELETE of
// any channel of a family, the record of it (local and Config.Ended) and
// the channel_ended event name the family and end them all. A dot is not
// in the base64url alphabet of channel names.

// channelFamily is the family of channel id: the name before the dot.
func channelFamily(id string) string {
	fam, _, _ := strings.Cut(id, ".")
	return fam
}

// forkID names a new fork of channel id. A family name too long for a
// fork's name to fit in a cursor is not one this server gave: such a
// fork gets a family of its own.
func forkID(id string) string {
	fam, own := channelFamily(id), newChannelID()
	if len(fam)+1+len(own) > maxChannelLen {
		return own
	}
	return fam + "." + own
}

// addFork indexes ch by its family if it is a fork; p.mu is held.
func (p *pollChannels) addFork(ch *pollChannel) {
	if fam := channelFamily(ch.id); fam != ch.id {
		if p.forks == nil {
			p.forks = make(map[string][]*pollChannel)
		}
		p.forks[fam] = append(p.forks[fam], ch)
	}
}

// dropFork undoes addFork; p.mu is held.
func (p *pollChannels) dropFork(ch *pollChannel) {
	fam := channelFamily(ch.id)
	if fam == ch.id {
		return
	}
	l := slices.DeleteFunc(p.forks[fam], func(c *pollChannel) bool { return c == ch })
	if len(l) == 0 {
		delete(p.forks, fam)
	} else {
		p.forks[fam] = l
	}
}

// serves reports whether a live channel of family fam serves user.
func (p *pollChannels) serves(user int64, fam string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.ContainsFunc(p.family(fam), func(ch *pollChannel) bool { return ch.sess.user.ID == user })
}

// family returns the live channels of family fam; p.mu is held.
func (p *pollChannels) family(fam string) []*pollChannel {
	l := slices.Clone(p.forks[fam])
	if ch := p.m[fam]; ch != nil {
		l = append(l, ch)
	}
	return l
}

// endedChannels remembers, per user, the channel families (channelFamily)
// the client ended with DELETE lately, so that a request sent before the DELETE and arriving
// after it (a poll the closing page cancelled) does not rebuild the
// channel, and the user's presence with it, until the channel idles out.
// Such a request is answered 410 channel_ended with a cursor for a new
// channel. A channel that ended otherwise (a restart, idling out, too
// slow) is not here and is rebuilt from its cursor. These are the
// channels ended through this node, or closed here by the channel_ended
// event of a DELETE on another; Config.Ended, if set, holds those of
// every node.
//
// Bounded: maxEndedPerUser channels per user, each for endedFor; users
// whose entries all expired are swept when the map has doubled.
//
// pollChannels.cut is one too, of the channels this node cut.
type endedChannels struct {
	m       map[int64][]endedChannel
	sweepAt int
}

type endedChannel struct {
	id string
	at time.Time
}

const (
	endedFor        = time.Minute
	maxEndedPerUser = 64
)

// add records that user ended channel id at now.
func (e *endedChannels) add(user int64, id string, now time.Time) {
	if e.m == nil {
		e.m = make(map[int64][]endedChannel)
		e.sweepAt = 64
	}
	l := e.live(user, now)
	if len(l) >= maxEndedPerUser {
		l = slices.Delete(l, 0, len(l)-maxEndedPerUser+1)
	}
	e.m[user] = append(l, endedChannel{id: id, at: now})
	if len(e.m) >= e.sweepAt {
		for u := range e.m {
			e.live(u, now)
		}
		e.sweepAt = max(64, 2*len(e.m))
	}
}

// has reports whether user ended channel id less than endedFor ago.
func (e *endedChannels) has(user int64, id string, now time.Time) bool {
	return slices.ContainsFunc(e.live(user, now), func(c endedChannel) bool { return c.id == id })
}

// take reports whether has would, and forgets the entry.
func (e *endedChannels) take(user int64, id string, now time.Time) bool {
	l := e.live(user, now)
	i := slices.IndexFunc(l, func(c endedChannel) bool { return c.id == id })
	if i < 0 {
		return false
	}
	if l = slices.Delete(l, i, i+1); len(l) == 0 {
		delete(e.m, user)
	} else {
		e.m[user] = l
	}
	return true
}

// live drops user's expired entries and returns the others, oldest first.
func (e *endedChannels) live(user int64, now time.Time) []endedChannel {
	l := e.m[user]
	i := 0
	for i < len(l) && now.Sub(l[i].at) >= endedFor {
		i++
	}
	switch {
	case i == 0:
	case i == len(l):
		delete(e.m, user)
		return nil
	default:
		l = slices.Delete(l, 0, i)
		e.m[user] = l
	}
	return l
}

// codeChannelEnded is the code of a request for a channel its client ended.
const codeChannelEnded = "channel_ended"

// errChannelEnded is channelFor's error for a channel its client ended;
// the request is answered with channelEnded.
var errChannelEnded = errors.New("channel ended")

// channelEnded answers a request for channel cur, which its client ended
// (DELETE): 410 channel_ended, with a cursor that resumes the channel on
// a new one, as the server rebuilds a channel it lost.
func channelEnded(w http.ResponseWriter, cur *pollCursor) {
	next := *cur
	next.Channel = newChannelID()
	writeJSON(w, http.StatusGone, struct {
		Error  errorDetail `json:"error"`
		Cursor string      `json:"cursor"`
	}{
		errorDetail{Code: codeChannelEnded, Field: "cursor", Message: "this channel was ended (DELETE): poll with the cursor given here to resume it"},
		next.encode(),
	})
}

func newChannelID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// channelFor returns the channel for cursor cur of user a (nil: a new
// one, whose user's events after eventsAfter, if given, come after its
// hello), reusing a live one or rebuilding it from the cursor. resend holds
// the frames of a response the client did not receive, to give again.
// A POST (any) takes the live channel whatever response the client is at;
// a GET two or more responses behind it is answered by a new channel,
// rebuilt from the cursor, and leaves the live one as it is.
func (s *server) channelFor(a authInfo, cur *pollCursor, any bool, eventsAfter *int64) (ch *pollChannel, resend bool, err error) {
	// A rebuild that another request's rebuild of the same channel beat
	// to its registration goes again, and finds that one live. Each
	// round but the last has seen a rival registered; the last takes
	// what it builds.
	for range maxRebuildRounds - 1 {
		ch, resend, err = s.channelOnce(a, cur, any, eventsAfter, true)
		if err != errRebuiltMeanwhile {
			return ch, resend, err
		}
	}
	return s.channelOnce(a, cur, any, eventsAfter, false)
}

// maxRebuildRounds bounds channelFor's rounds. Each round but the first
// follows a rival's registration, so more than two are rare.
const maxRebuildRounds = 3

// errRebuiltMeanwhile is buildChannel's error when another request
// registered the channel it was rebuilding first.
var errRebuiltMeanwhile = errors.New("channel rebuilt meanwhile")

// channelOnce is a round of channelFor. yields: a rival's registration
// of the channel being rebuilt wins (errRebuiltMeanwhile).
func (s *server) channelOnce(a authInfo, cur *pollCursor, any bool, eventsAfter *int64, yields bool) (ch *pollChannel, resend bool, err error) {
	fork, stoppedHere := false, false
	if cur != nil {
		s.polls.mu.Lock()
		ch = s.polls.m[cur.Channel]
		if ch == nil {
			ch = s.polls.rebuilt[cur.Channel]
		}
		now := time.Now()
		ended := s.polls.ended.has(a.User.ID, channelFamily(cur.Channel), now)
		stoppedHere = s.polls.cut.take(a.User.ID, cur.Channel, now)
		s.polls.mu.Unlock()
		if ended {
			return nil, false, errChannelEnded
		}
		if ch != nil && ch.sess.user.ID == a.User.ID {
			ch.mu.Lock()
			n, stopped := ch.n, ch.stopped
			if a.Session.ID == ch.auth.Session.ID && (a.Session.ExpiresAt.After(ch.auth.Session.ExpiresAt) || a.Session.UsedAt.After(ch.auth.Session.UsedAt)) {
				ch.auth = a // renewed or used: channelAuth goes by the new times
			}
			ch.mu.Unlock()
			stoppedHere = stoppedHere || stopped
			switch {
			case stopped:
			case any, cur.N == n:
				return ch, false, nil
			case cur.N == n-1:
				return ch, true, nil
			case cur.N < n-1:
				// Its client had answer cur.N+1 (answer cur.N+2 went to
				// a poll with its cursor), so this is a poll it gave
				// up on, retried or delivered late. Rebuilding the
				// channel from it would count the channel's answers
				// from cur.N again, and the client, polling on with its
				// own cursor, would miss those given to stale polls.
				// It gets a channel of its own, from its cursor: a
				// fork, which ends with the channel (forkID).
				fork = true
			}
			if !fork {
				ch.stop()
			}
		}
		// Not live here: maybe ended through another node. (A live
		// channel ended elsewhere is closed by the channel_ended event.)
		if s.endedElsewhere(a.User.ID, channelFamily(cur.Channel)) {
			return nil, false, errChannelEnded
		}
		if !fork && (ch == nil || ch.sess.user.ID != a.User.ID) && s.polls.serves(a.User.ID, channelFamily(cur.Channel)) {
			// Another channel of its family is live here: the poll is
			// one its client gave up on, or one from a channel rebuilt on
			// another node. Either is a stale poll's doing.
			fork = true
		}
	}
	id := newChannelID()
	switch {
	case fork:
		id = forkID(cur.Channel)
	case cur != nil && (ch == nil || ch.sess.user.ID == a.User.ID):
		// A rebuild gets a name of its own in the family: the channel
		// its cursor names may still be live on another node, which has
		// given as many answers as the rebuilt one will count, but
		// others, and would take the cursors of this one for its own.
		id = forkID(cur.Channel)
	}
	// A fork, and the rebuild of a channel this node cut (stopCut), are
	// the network's or the server's doing, not the client opening a
	// connection: they take nothing of the open rate. The cap of
	// connections bounds the forks.
	from := ""
	if cur != nil && !fork {
		from = cur.Channel
	}
	ch, err = s.buildChannel(a, cur, id, eventsAfter, !fork && !stoppedHere, from, yields)
	return ch, false, err
}

// buildChannel makes channel id for user a, from cursor cur (nil: a new
// channel), and registers it. It is channelFor's, apart so that the
// channel its callbacks capture is a variable of its own: captured, the
// result of channelFor went to the heap on every poll, the many that
// find their channel live too.
//
// from names the channel it is rebuilt from ("" for a new channel or a
// fork). yields: if another request registered a channel rebuilt from
// that one meanwhile, this one is dropped and the error is
// errRebuiltMeanwhile.
func (s *server) buildChannel(a authInfo, cur *pollCursor, id string, eventsAfter *int64, opens bool, from string, yields bool) (*pollChannel, error) {
	release, err := s.roomForConn(a.User, opens)
	if err != nil {
		return nil, err
	}
	defer release() // the channel's hub client is registered, or it failed
	ch := &pollChannel{s: s, id: id, from: from, sess: s.newSession(a.User), auth: a, signal: make(chan struct{}, 1), pos: make(map[int64]int64)}
	ch.sess.maxRooms = maxCursorConvs
	ch.sess.onOpen = func(conv, seq int64) {
		ch.mu.Lock()
		defer ch.mu.Unlock()
		// A message delivered before the open knew it was open (a group's,
		// or one that came as it opened) is delivered: not missed.
		ch.pos[conv] = max(seq, ch.live[conv])
		delete(ch.live, conv)
	}
	ch.sess.onClose = func(conv int64) {
		ch.mu.Lock()
		delete(ch.pos, conv)
		delete(ch.live, conv)
		delete(ch.unsynced, conv)
		ch.mu.Unlock()
	}
	ch.sess.onSync = func(conv int64, ms []chat.Message) {
		ch.mu.Lock()
		defer ch.mu.Unlock()
		if p, ok := ch.pos[conv]; ok && len(ms) > 0 && ms[0].Seq <= p+1 {
			ch.pos[conv] = max(p, ms[len(ms)-1].Seq)
		}
	}
	after := eventsAfter
	if cur != nil {
		after = &cur.User
		ch.n = cur.N
	}
	ctx, cancel := opContext()
	defer cancel()
	if err := ch.sess.start(ctx, a.Session.ID, ch, after); err != nil {
		if errors.Is(err, hub.ErrClosed) {
			err = chat.Errorf(chat.ErrUnavailable, chat.CodeUnavailable, "server restarting: poll again")
		}
		return nil, err
	}
	// The hub client now follows the user's topic: a sign-out from here on
	// closes it. One that came before (after the request's session read)
	// is found in the store.
	if err := s.svc.CheckSession(ctx, a.Session); err != nil {
		ch.sess.stop()
		return nil, err
	}
	if cur == nil {
		b, _ := json.Marshal(s.helloOf(ch.sess, a.Session))
		ch.pending = append(ch.pending, b)
	} else {
		ch.restore(cur)
	}
	// Ended (DELETE) while it was being rebuilt: here, or on another
	// node, which recorded it before publishing the event that closes
	// the channel's hub client, now following the user's topic.
	if cur != nil && s.endedElsewhere(a.User.ID, channelFamily(cur.Channel)) {
		ch.sess.stop()
		return nil, errChannelEnded
	}
	s.polls.mu.Lock()
	if cur != nil && (s.polls.ended.has(a.User.ID, channelFamily(cur.Channel), time.Now()) || ch.sess.client.Reason() == hub.ReasonChannelEnded) {
		s.polls.mu.Unlock()
		ch.sess.stop()
		return nil, errChannelEnded
	}
	if old := s.polls.rebuilt[from]; yields && from != "" && old != nil && old.sess.user.ID == a.User.ID && !old.isStopped() {
		// Another request (a poll and a POST, or two polls, with a
		// cursor of it) rebuilt the channel meanwhile. Registered in its
		// place, this one would stay in the hub, a connection of the
		// user's, with no request to reach it, until it idled out.
		// channelFor goes again and finds that one, answering from it
		// as its cursor asks: at once, again, or by a fork.
		s.polls.mu.Unlock()
		ch.sess.stop()
		return nil, errRebuiltMeanwhile
	}
	if ch.isStopped() {
		// Its hub client closed as it was built, and stop found nothing
		// to take out: registered now, it would stay for good. The
		// request is answered from it, as from a channel that stops
		// under a poll.
		s.polls.mu.Unlock()
		return ch, nil
	}
	s.polls.m[ch.id] = ch
	s.polls.addFork(ch)
	if from != "" {
		if s.polls.rebuilt == nil {
			s.polls.rebuilt = make(map[string]*pollChannel)
		}
		s.polls.rebuilt[from] = ch
	}
	s.polls.mu.Unlock()
	ch.touch()
	return ch, nil
}

// isStopped reports whether ch stopped.
func (ch *pollChannel) isStopped() bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.stopped
}

// endedElsewhere reports whether Config.Ended records that user ended
// channel family id. If it cannot be read, the answer is no: the channel is
// rebuilt, as by a node without it.
func (s *server) endedElsewhere(user int64, id string) bool {
	if s.cfg.Ended == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), endedWait)
	defer cancel()
	ended, err := s.cfg.Ended.Has(ctx, user, id)
	if err != nil {
		s.log.Warn("read ended poll channels", "user", user, "err", err)
	}
	return ended
}

// endedWait bounds a read or write of Config.Ended.
const endedWait = 3 * time.Second

// restore reopens the conversations of cur, queueing what the client
// missed in each, after a resumed frame naming those restored. The opens
// are the server's, not the client's: they do not count against the
// client's request limit (session.handle), which the cursor's up to 256
// conversations would exhaust. The syncs stop past maxRestoreBytes: the
// conversations after are open, and their syncs come in later answers
// (take), each before the conversation's later messages (admit).
func (ch *pollChannel) restore(cur *pollCursor) {
	var frames []json.RawMessage
	size := 0
	rooms := []int64{}
	for id, seq := range cur.conversations() {
		full := size >= maxRestoreBytes
		// The opened reply comes after the conversation's sync: the
		// client has the conversation open already, and takes from it who
		// is present now, by their names now (the presence and user
		// frames of the gap are not replayed); after the sync, its
		// last_seq asks the client for no sync of its own.
		var opened json.RawMessage
		more := false
		err := ch.sess.open(inFrame{Type: "open", RoomID: id, After: &seq, noSync: full}, func(v any) {
			b := mustJSON(v)
			size += len(b)
			switch f := v.(type) {
			case openedFrame:
				opened = b
				return
			case syncFrame:
				more = f.HasMore
			}
			frames = append(frames, b)
		})
		if opened != nil {
			frames = append(frames, opened)
		}
		if err == nil && (full || more) || err != nil && ch.sess.isOpen(id) {
			// Open, but what was missed is not read yet, or not all of
			// it: the answer is full, it could not be read (the sync, or
			// a group's read positions), or it is longer than a page. It
			// is read at a later take, from the last message given.
			if err != nil {
				ch.s.log.Warn("restore a long-poll conversation", "user", ch.sess.user.ID, "conv", id, "err", err)
			}
			ch.mu.Lock()
			if _, ok := ch.pos[id]; !ok { // as onOpen
				ch.pos[id] = max(seq, ch.live[id])
				delete(ch.live, id)
			}
			ch.markUnsyncedLocked(id)
			ch.mu.Unlock()
			rooms = append(rooms, id)
			continue
		}
		if err != nil {
			frames = append(frames, mustJSON(ch.s.errorFrameOf("", id, err)))
			continue
		}
		rooms = append(rooms, id)
	}
	// The user's own name as the store has it now: a rename made while
	// the channel was lost was told to no channel and is kept nowhere,
	// and the web app answers resumed with the first hello again, whose
	// name is older. Read here, not taken from the request's session: a
	// poll let in by a live channel's session, without a read (a fork,
	// or one that replaces a channel rebuilt on another node), has that
	// channel's user as it was built. The channel follows the user's
	// topic already, so a rename stored after this read is told after
	// the frame. Before the live frames (take), so a later rename's
	// comes after it.
	me := ch.sess.me()
	ctx, cancel := opContext()
	var version int64 // of the name read; 0, unknown, if not read
	if u, err := ch.s.svc.User(ctx, me.ID); err != nil {
		ch.s.log.Warn("read the user of a rebuilt long-poll channel", "user", me.ID, "err", err)
	} else {
		version = u.NameVersion
		if u.Name != me.Name {
			me.Name = u.Name
			ch.sess.name.Store(&u.Name) // its typing goes under the name now, too
		}
	}
	cancel()
	named := mustJSON(userFrame{Type: "user", User: userRef{ID: me.ID, Name: me.Name}, Version: version})
	ch.mu.Lock()
	ch.pending = append(append(ch.pending, mustJSON(resumedFrame{Type: "resumed", Rooms: rooms}), named), frames...)
	ch.mu.Unlock()
}

// maxRestoreBytes bounds the syncs of one answer of a rebuilt channel:
// a cursor names up to 256 open conversations, and each one's sync holds
// up to 100 messages (docs/protocol.md, Limits). An answer holds syncs
// until they pass it, so it may hold one sync more.
const maxRestoreBytes = 1 << 20

type resumedFrame struct {
	Type  string  `json:"type"`
	Rooms []int64 `json:"rooms"` // conversations still open on the channel
}

func mustJSON(v any) json.RawMessage {
	b, err := encodeFrame(v)
	if err != nil {
		panic(err) // frames are plain structs
	}
	return b
}

// ChannelName names the channel for the hub (hub.ChannelWaker): its
// family, so that a channel_ended event, which names one, closes the
// clients of the channel and of its forks.
func (ch *pollChannel) ChannelName() string { return channelFamily(ch.id) }

// Wake is the hub's signal: something is queued, or the client closed:
// then the channel ends, and the next poll rebuilds it from its cursor.
func (ch *pollChannel) Wake(cl *hub.Client) {
	if cl.Closed() {
		go func() {
			if cl.Reason() == hub.ReasonChannelEnded {
				// Its client ended it through another node: a late
				// poll here is refused, as if the DELETE came here.
				ch.s.polls.mu.Lock()
				ch.s.polls.ended.add(ch.sess.user.ID, channelFamily(ch.id), time.Now())
				ch.s.polls.mu.Unlock()
			}
			ch.stopCut(cl.Reason())
		}()
	}
	select {
	case ch.signal <- struct{}{}:
	default:
	}
}

// stopCut stops the channel, whose hub client closed for reason r. One
// this node cut (too slow, shutting down) is noted in polls.cut, so that
// its client's rebuild, which the server caused, takes nothing of the
// user's open rate (channelFor).
func (ch *pollChannel) stopCut(r hub.CloseReason) {
	if r == hub.ReasonSlow || r == hub.ReasonShutdown {
		p := &ch.s.polls
		p.mu.Lock()
		p.cut.add(ch.sess.user.ID, ch.id, time.Now())
		p.mu.Unlock()
	}
	ch.stop()
}

// touch restarts the idle countdown, unless the channel stopped: a
// request under way as it stopped touches it as it ends.
func (ch *pollChannel) touch() {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.stopped {
		return
	}
	if ch.idle == nil {
		ch.idle = time.AfterFunc(ch.s.cfg.PollIdle, ch.idleOut)
		return
	}
	ch.idle.Reset(ch.s.cfg.PollIdle)
}

// idleOut stops the channel, unless a GET is held on it: a poll under way
// is not idle (PollHold may be longer than PollIdle), and it touches the
// channel when it answers.
func (ch *pollChannel) idleOut() {
	ch.mu.Lock()
	held := ch.waiter != nil
	ch.mu.Unlock()
	if !held {
		ch.stop()
	}
}

// stop ends the channel: it leaves the hub and the user's presence.
func (ch *pollChannel) stop() {
	ch.mu.Lock()
	if ch.stopped {
		ch.mu.Unlock()
		return
	}
	ch.stopped = true
	if ch.idle != nil {
		ch.idle.Stop()
	}
	if ch.waiter != nil {
		close(ch.waiter)
		ch.waiter = nil
	}
	ch.mu.Unlock()
	ch.s.polls.mu.Lock()
	if ch.s.polls.m[ch.id] == ch {
		delete(ch.s.polls.m, ch.id)
	}
	ch.s.polls.dropFork(ch)
	if ch.from != "" && ch.s.polls.rebuilt[ch.from] == ch {
		delete(ch.s.polls.rebuilt, ch.from)
	}
	ch.s.polls.mu.Unlock()
	ch.sess.stop()
}

// lazyOp is the context of an operation (opContext), made when first
// needed: a poll's take reads the store only for events missed (admit),
// and making a context with its timer for every poll was 2 % of the
// server's CPU per long-poll delivery (BenchmarkPollDelivery).
type lazyOp struct {
	ctx  context.Context
	stop context.CancelFunc
}

// get returns the operation's context, made at the first call.
func (o *lazyOp) get() context.Context {
	if o.ctx == nil {
		o.ctx, o.stop = opContext()
	}
	return o.ctx
}

// cancel releases the context, if one was made.
func (o *lazyOp) cancel() {
	if o.stop != nil {
		o.stop()
	}
}

// take returns the frames waiting: pending ones, then the queued events,
// each delivered once and in order. op gives the context of the store
// reads it needs.
func (ch *pollChannel) take(op *lazyOp) []json.RawMessage {
	ch.mu.Lock()
	frames := ch.pending
	ch.pending = nil
	var unsynced []int64
	if len(ch.unsynced) > 0 {
		unsynced = slices.Sorted(maps.Keys(ch.unsynced))
	}
	ch.mu.Unlock()
	if unsynced != nil {
		size := 0
		for _, f := range frames {
			size += len(f)
		}
		for _, id := range unsynced {
			if size >= maxRestoreBytes {
				break // the others at the next take, as restore
			}
			n := len(frames)
			frames = ch.resync(id, frames)
			for _, f := range frames[n:] {
				size += len(f)
			}
		}
	}
	// Until Next finds nothing: only then is the client idle, and only an
	// idle client is woken (signal) when events come. Stopping earlier,
	// with every item filtered out by admit, would leave the GET asleep
	// until its hold runs out.
	var removed []chat.Event // handled once taken (session.removedBy)
	var one [1]chat.Event    // admit's answer when it is the event alone
	var some [8]*hub.Item    // what Next takes, when it is no more
	for {
		items := ch.sess.client.Next(some[:0])
		if items == nil {
			break
		}
		for _, it := range items {
			if it.Raw != nil {
				frames = append(frames, it.Raw)
				continue
			}
			evs, own := ch.admit(op, it.Event, one[:0])
			for i, ev := range evs {
				if ev.Type == chat.EventRemoved {
					removed = append(removed, ev)
				}
				var b []byte
				if own && i == len(evs)-1 { // the item's own event: encoded once for all its recipients
					b = it.Encoded(formatNative, encodeNative)
				} else { // one missed, filled in from the store
					b = encodeNative(ev)
				}
				if b != nil {
					frames = append(frames, b)
				}
			}
		}
	}
	for _, ev := range removed {
		ch.sess.removedBy(ev)
	}
	return frames
}

// resync appends to frames a sync of open conversation id: a page of the
// messages after the last delivered, which restore could not read, or
// which admit found missed, past its first page. The queued events then
// follow. While the store has more (has_more), the conversation stays
// unsynced: the next take gives the next page, with no request of the
// client's. If the read fails, the next take tries again; if the user may
// no longer read the conversation, there is nothing to give.
func (ch *pollChannel) resync(id int64, frames []json.RawMessage) []json.RawMessage {
	ch.mu.Lock()
	after, open := ch.pos[id]
	ch.mu.Unlock()
	more := false
	if open {
		var out []json.RawMessage
		err := ch.sess.sync(inFrame{Type: "sync", RoomID: id, After: &after}, func(v any) {
			if f, ok := v.(syncFrame); ok {
				more = f.HasMore
			}
			out = append(out, mustJSON(v))
		})
		if err != nil && !unreadable(err) {
			return frames
		}
		frames = append(frames, out...)
	}
	if !more {
		ch.mu.Lock()
		delete(ch.unsynced, id)
		ch.mu.Unlock()
	}
	return frames
}

// admit returns the events to deliver for ev: none if the session does
// not show it (session.shows) or it was delivered already; missed ones
// before it. The bool reports whether ev is among them, the last: not
// when a gap before it is longer than a page, whose first page comes
// alone. ev alone, the common case, comes in buf, of length
// zero: a poll's take makes it on its stack, where a slice made here
// would be one more allocation per delivery.
func (ch *pollChannel) admit(op *lazyOp, ev chat.Event, buf []chat.Event) ([]chat.Event, bool) {
	if !ch.sess.shows(&ev) {
		return nil, false
	}
	if ev.UserSeq > 0 {
		evs, err := ch.sess.admitUser(op.get(), ev)
		if err != nil {
			// The channel ends; the next poll rebuilds it from its cursor,
			// which is still before the events missed.
			ch.sess.s.log.Warn("read missed events", "user", ch.sess.user.ID, "err", err)
			ch.sess.client.Close(hub.ReasonSlow)
			return nil, false
		}
		return evs, true
	}
	if ev.Type != chat.EventMessage || ev.Message == nil {
		return append(buf, ev), true
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	p, open := ch.pos[ev.ConvID]
	seq := ev.Message.Seq
	if open && ch.unsynced[ev.ConvID] {
		// Its sync, still to come (resync), holds it: a message is
		// published once stored.
		return nil, false
	}
	switch {
	case !open: // a group not open (the list only), or one being opened
		if seq > ch.live[ev.ConvID] {
			if ch.live == nil {
				ch.live = make(map[int64]int64)
			}
			ch.live[ev.ConvID] = seq
		}
		return append(buf, ev), true
	case seq <= p:
		return nil, false
	case seq == p+1:
		ch.pos[ev.ConvID] = seq
		return append(buf, ev), true
	}
	// A gap the hub could not fill: the channel fills it from the store,
	// a page at a time, its cursor never past a message not given
	// (docs/protocol.md, "Long-polling").
	page := ch.s.svc.Config().HistoryLimit
	ms, err := ch.s.svc.Sync(op.get(), ch.sess.me(), ev.ConvID, p, int(min(seq-p-1, int64(page))))
	if err != nil && !unreadable(err) {
		// The store failed: the cursor stays before the gap, which a
		// later take reads (resync), this message with it: a message is
		// published once stored.
		ch.s.log.Warn("read missed messages", "user", ch.sess.user.ID, "conv", ev.ConvID, "err", err)
		ch.markUnsyncedLocked(ev.ConvID)
		return nil, false
	}
	// Unreadable, the user may no longer read the conversation (left it
	// meanwhile; its removed is on its way): there is none of the gap to
	// give, and the message goes as the hub gave it.
	var out []chat.Event
	for i := range ms {
		if ms[i].Seq > p && ms[i].Seq < seq {
			out = append(out, chat.Event{Type: chat.EventMessage, ConvID: ev.ConvID, Message: &ms[i]})
		}
	}
	if err == nil && seq-p-1 > int64(page) {
		// Longer than a page: this one now, the rest, this message
		// among them, in the next answers (resync).
		if len(out) > 0 {
			ch.pos[ev.ConvID] = out[len(out)-1].Message.Seq
		}
		ch.markUnsyncedLocked(ev.ConvID)
		return out, false
	}
	ch.pos[ev.ConvID] = seq
	return append(out, ev), true
}

// unreadable reports whether err, of a read of a conversation's messages,
// says the user may not read them (no longer a member, or it is gone),
// rather than that the store failed.
func unreadable(err error) bool {
	return errors.Is(err, chat.ErrNotFound) || errors.Is(err, chat.ErrForbidden)
}

// markUnsyncedLocked has take give open conversation id's messages after
// the last delivered from the store (resync), and admit hold back its
// live ones meanwhile. ch.mu is held.
func (ch *pollChannel) markUnsyncedLocked(id int64) {
	if ch.unsynced == nil {
		ch.unsynced = make(map[int64]bool)
	}
	ch.unsynced[id] = true
}

// appendCursorLocked appends the encoded cursor of the channel's state to b.
func (ch *pollChannel) appendCursorLocked(b []byte) []byte {
	return pollCursor{Channel: ch.id, N: ch.n, User: ch.sess.users.last(), Convs: ch.pos}.appendEncoded(b)
}

// pollBuffers holds writePoll's buffers between answers.
var pollBuffers = sync.Pool{New: func() any { return new([]byte) }}

// writePoll answers a GET /api/poll: {"cursor": …, "frames": […]}, as
// writeJSON would write it, but put together here: encoding/json would scan
// every frame again to check and compact it (and escape its <, > and &),
// and a long-polling client costs one answer per delivery. The frames are
// compact JSON already (encodeNative, mustJSON), and the cursor is
// base64url.
func writePoll(w http.ResponseWriter, cursor string, frames []json.RawMessage) {
	bp, b := startPoll()
	finishPoll(w, bp, append(b, cursor...), frames)
}

// startPoll returns a buffer of pollBuffers and the start of an answer in
// it, to be followed by the cursor: a channel's cursor is encoded into it
// (appendCursorLocked), not into a string of its own.
func startPoll() (*[]byte, []byte) {
	bp := pollBuffers.Get().(*[]byte)
	return bp, append((*bp)[:0], `{"cursor":"`...)
}

// finishPoll ends the answer in b (startPoll's start, then the cursor)
// with frames, writes it, and gives its buffer back to pollBuffers in bp.
func finishPoll(w http.ResponseWriter, bp *[]byte, b []byte, frames []json.RawMessage) {
	b = append(b, `","frames":[`...)
	for i, f := range frames {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, f...)
	}
	b = append(b, "]}\n"...)
	setJSONHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b) // copied or sent before Write returns
	if cap(b) <= maxPooledPoll {
		*bp = b
		pollBuffers.Put(bp)
	}
}

// maxPooledPoll is the largest buffer writePoll keeps for the next answer.
const maxPooledPoll = 64 << 10

// pollHandler serves a long-poll request of user a; cur is the request's
// cursor, nil if it has none; renewed tells that authenticating the
// request renewed the session, whose fresh cookie w carries.
type pollHandler func(w http.ResponseWriter, r *http.Request, a authInfo, cur *pollCursor, renewed bool)

// pollAuthed authenticates a long-poll request and reads its cursor, which
// it hands to h with the user: through the request's context, those cost a
// copy of the request and two contexts per poll. Every delivery to a
// long-polling client costs a request, and reading the session for each
// was the largest cost of long-polling (docs/benchmarks.md, target 7). So
// a request for a live channel that carries the very session token the
// channel was made with is that channel's user without a read: the
// channel is the long-poll form of an open WebSocket, which is checked
// once, at its upgrade. The session's end reaches it the same way: the
// hub closes the channel's client, on the session_ended event of the
// user's topic or, if this node missed that, at its next check of its
// clients' sessions (chat.Config.SessionCheck), and from then on the channel's
// requests are authenticated in full. So are those due for the session's
// renewal, or for a record of its use (an hour after the last), which
// Authenticate does (and the node's check, chat.Service.OpenSessions,
// records the use of an open channel's session too: the request then
// reads the session and writes nothing).
func (s *server) pollAuthed(h pollHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur, err := parseCursor(queryValue(r.URL.RawQuery, "cursor"))
		if a, ok := s.channelAuth(r, cur); ok { // cur is nil if err is set
			h(w, r, a, cur, false) // channelAuth leaves a renewal to authenticate
			return
		}
		// The session read has the time of an operation (opTimeout),
		// as every request's; the request goes on without it: a GET is
		// held longer.
		ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
		a, renewed, aerr := s.authenticate(ctx, w, r)
		cancel()
		switch {
		case aerr != nil:
			s.fail(w, aerr)
		case err != nil:
			s.writeError(w, err)
		default:
			h(w, r, a, cur, renewed)
		}
	})
}

// queryValue is url.ParseQuery(query).Get(key) without a map of every
// key: a long-polling client sends its cursor with every poll.
func queryValue(query, key string) string {
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		if strings.Contains(pair, ";") {
			continue // url.ParseQuery refuses it
		}
		k, v, _ := strings.Cut(pair, "=")
		if k, err := url.QueryUnescape(k); err != nil || k != key {
			continue
		}
		if v, err := url.QueryUnescape(v); err == nil {
			return v
		}
	}
	return ""
}

// channelAuth returns the user and session of the live channel of cursor
// cur if r carries that session's token and the session has neither
// expired nor come due for renewal or a record of its use.
func (s *server) channelAuth(r *http.Request, cur *pollCursor) (authInfo, bool) {
	token := s.sessionToken(r)
	if token == "" || len(token) > 256 || cur == nil {
		return authInfo{}, false
	}
	s.polls.mu.Lock()
	ch := s.polls.m[cur.Channel]
	s.polls.mu.Unlock()
	if ch == nil {
		return authInfo{}, false
	}
	ch.mu.Lock()
	a, stopped := ch.auth, ch.stopped
	ch.mu.Unlock()
	select {
	case <-ch.sess.client.Done():
		return authInfo{}, false
	default:
	}
	cfg := s.svc.Config()
	if stopped || !chat.TokenMatches(token, a.Session.TokenHash) ||
		!cfg.Now().Before(a.Session.ExpiresAt) || cfg.Renews(a.Session) || cfg.Touches(a.Session) {
		return authInfo{}, false
	}
	return a, true
}

// handlePoll serves GET /api/poll.
func (s *server) handlePoll() pollHandler {
	return func(w http.ResponseWriter, r *http.Request, a authInfo, cur *pollCursor, renewed bool) {
		if s.fromAnotherSite(r) {
			writeJSON(w, http.StatusForbidden, errorBody{Error: errorDetail{Code: chat.CodeForbidden, Message: "cross-origin request refused"}})
			return
		}
		var after *int64
		if cur == nil {
			// A new channel: the client may have had the user's events up
			// to events_after on an earlier connection (a WebSocket).
			var err error
			if after, err = eventsAfter(r); err != nil {
				s.writeError(w, err)
				return
			}
		}
		ch, resend, err := s.channelFor(a, cur, false, after)
		if errors.Is(err, errChannelEnded) {
			channelEnded(w, cur)
			return
		}
		if err != nil {
			s.writeError(w, err)
			return
		}
		waiter := make(chan struct{})
		for try := 0; ; try++ {
			if resend {
				bp, b := startPoll()
				ch.mu.Lock()
				b = ch.appendCursorLocked(b)
				frames := ch.prev
				ch.mu.Unlock()
				finishPoll(w, bp, b, frames)
				return
			}
			ch.mu.Lock()
			if cur != nil && cur.N != ch.n && !ch.stopped && try < 3 {
				// A GET before this one answered since channelFor:
				// channelFor gives that answer again.
				ch.mu.Unlock()
				if ch, resend, err = s.channelFor(a, cur, false, nil); err != nil {
					s.writeError(w, err)
					return
				}
				continue
			}
			if ch.waiter != nil {
				close(ch.waiter) // a newer poll replaces the one waiting
			}
			ch.waiter = waiter
			ch.mu.Unlock()
			break
		}
		defer func() { // however it ends: the idle countdown starts again
			ch.mu.Lock()
			if ch.waiter == waiter {
				ch.waiter = nil
			}
			ch.mu.Unlock()
			ch.touch()
		}()
		// answer answers with frames, unless a newer GET replaced this
		// one: the client gave up on it, and the newer one is to give
		// them. Frames are taken and answered under ch.take, so that a
		// newer GET takes only once this one has given back what it took.
		answer := func(frames []json.RawMessage) {
			ch.mu.Lock()
			if ch.waiter != waiter && !ch.stopped {
				ch.pending = append(frames, ch.pending...)
				ch.mu.Unlock()
				select {
				case ch.signal <- struct{}{}: // the newer GET may be waiting
				default:
				}
				c := queryValue(r.URL.RawQuery, "cursor") // nothing given: the same cursor
				if cur == nil {
					c = ""
				}
				writePoll(w, c, nil)
				return
			}
			ch.n++
			ch.prev = frames
			bp, b := startPoll()
			b = ch.appendCursorLocked(b)
			ch.mu.Unlock()
			finishPoll(w, bp, b, frames)
		}
		var hold *time.Timer // taken once the poll has to wait
		defer func() {
			if hold != nil {
				putHoldTimer(hold)
			}
		}()
		for {
			// Not the request's context: what is taken is answered,
			// and given again to a client that cancelled the request.
			var op lazyOp
			ch.taking.Lock()
			frames := ch.take(&op)
			if len(frames) > 0 {
				answer(frames)
			}
			ch.taking.Unlock()
			op.cancel()
			if len(frames) > 0 {
				return
			}
			if renewed {
				// The session was renewed: its fresh cookie goes out now,
				// with nothing if need be. Held, it would be lost with a
				// poll its client gives up on (a page hidden or closed),
				// and no later request would renew the cookie again.
				break
			}
			if hold == nil {
				hold = getHoldTimer(s.cfg.PollHold)
			}
			select {
			case <-ch.sess.client.Done():
				if ch.sess.client.Reason() == hub.ReasonSessionEnded {
					ch.stop()
					s.writeError(w, chat.Errorf(chat.ErrUnauthorized, chat.CodeUnauthorized, "session ended; sign in again"))
					return
				}
				ch.stopCut(ch.sess.client.Reason()) // too slow or shutting down: the next poll rebuilds it
			case <-ch.signal:
				continue
			case <-hold.C:
			case <-waiter:
			case <-r.Context().Done():
				return
			}
			break
		}
		// Whatever ended the wait, what is pending (frames a replaced GET
		// gave back, which the cursor counts as delivered) goes out now.
		var op lazyOp
		defer op.cancel()
		ch.taking.Lock()
		answer(ch.take(&op))
		ch.taking.Unlock()
	}
}

// holdTimers holds the stopped timers of polls that waited: every
// delivery to a long-polling client ends a poll, and most of them wait
// (docs/benchmarks.md, target 7). Since Go 1.23 a timer stopped or reset
// sends nothing of its earlier period, so a timer taken from here fires
// only at the end of its new one.
var holdTimers sync.Pool

// getHoldTimer returns a timer that fires after d.
func getHoldTimer(d time.Duration) *time.Timer {
	if t, ok := holdTimers.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

// putHoldTimer stops t and keeps it for getHoldTimer.
func putHoldTimer(t *time.Timer) {
	t.Stop()
	holdTimers.Put(t)
}

// handlePollEnd serves DELETE /api/poll: the client leaves (a page
// closing), so its channel ends now rather than when it idles out.
func (s *server) handlePollEnd() pollHandler {
	return func(w http.ResponseWriter, r *http.Request, a authInfo, cur *pollCursor, _ bool) {
		if cur == nil {
			s.writeError(w, chat.Invalid(chat.CodeMissingField, "cursor", "cursor is required"))
			return
		}
		if err := s.allowPollEnd(a.User); err != nil {
			s.writeError(w, err)
			return
		}
		// Remembered whether or not the channel is live here: a poll sent
		// before this request, or one rebuilding it now, must not bring
		// it back. The channel's forks end with it: the whole family.
		fam := channelFamily(cur.Channel)
		s.polls.mu.Lock()
		chs := s.polls.family(fam)
		s.polls.ended.add(a.User.ID, fam, time.Now())
		s.polls.mu.Unlock()
		for _, ch := range chs {
			if ch.sess.user.ID == a.User.ID {
				ch.stop()
			}
		}
		// Other nodes: recorded for a poll reaching one of them, before
		// the answer; told, for the one that may hold the channel (a
		// client that changed nodes). Either may fail: the channel has
		// ended here all the same.
		ctx, cancel := context.WithTimeout(context.Background(), endedWait)
		defer cancel()
		if s.cfg.Ended != nil {
			if err := s.cfg.Ended.Add(ctx, a.User.ID, fam, endedFor, maxEndedPerUser); err != nil {
				s.log.Warn("record ended poll channel", "user", a.User.ID, "err", err)
			}
		}
		s.svc.EndChannel(ctx, a.User, fam)
		w.WriteHeader(http.StatusNoContent)
	}
}

type pollPostResponse struct {
	Frames []any `json:"frames"`
}

// handlePollSend serves POST /api/poll: one frame of the native protocol,
// answered with its reply frames.
func (s *server) handlePollSend() pollHandler {
	return func(w http.ResponseWriter, r *http.Request, a authInfo, cur *pollCursor, _ bool) {
		if cur == nil {
			s.writeError(w, chat.Invalid(chat.CodeMissingField, "cursor", "cursor is required: poll first"))
			return
		}
		if err := requireJSON(r); err != nil {
			s.fail(w, err)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxFrameBytes))
		if err != nil {
			var mbe *http.MaxBytesError
			if !errors.As(err, &mbe) {
				err = chat.Errorf(chat.ErrInvalid, chat.CodeBadJSON, "reading the frame: %v", err)
			}
			s.writeError(w, err) // a body over the limit: 413 too_large
			return
		}
		ch, _, err := s.channelFor(a, cur, true, nil)
		if errors.Is(err, errChannelEnded) {
			channelEnded(w, cur)
			return
		}
		if err != nil {
			s.writeError(w, err)
			return
		}
		out := pollPostResponse{Frames: []any{}} // a list, also for a frame with no reply (typing)
		ch.sess.handle(body, func(v any) { out.Frames = append(out.Frames, v) })
		ch.touch()
		writeJSON(w, http.StatusOK, out)
	}
}

// fromAnotherSite reports whether r, a long-poll GET, came from a page of
// another origin than the server's and those listed: the browser says it
// is cross-site or same-site, and its Origin is not listed; or, a browser
// that sends no Sec-Fetch-Site (Safari before 16.4), its Origin is one an
// upgrade would be refused (checkOrigin). Such a GET is refused as a write
// would be (http.CrossOriginProtection passes every GET): it makes a
// channel, which shows the user online and takes one of their connections,
// and a sibling subdomain's page sends the SameSite=Lax cookie with it.
func (s *server) fromAnotherSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return false
	case "":
		return !s.checkOrigin(r)
	}
	o := r.Header.Get("Origin")
	return o == "" || !s.origins[normalizeOrigin(o)]
}
