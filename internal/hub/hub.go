// Package hub delivers live events to the connections of this process: it
// subscribes to the Broker for the topics its clients want, and pushes each
// event into every interested client's bounded outbox. A client that lets
// its outbox fill up is closed as too slow (it will reconnect and resync
// from the store); it never blocks the fan-out. The hub knows no SQL, HTTP
// or JSON.
package hub

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/parley-chat/parley/internal/chat"
)

// CloseReason tells why the hub closed a client.
type CloseReason int32

const (
	ReasonNone         CloseReason = iota
	ReasonSlow                     // the outbox was full
	ReasonSessionEnded             // the client's session signed out
	ReasonShutdown                 // the hub is closing
	ReasonChannelEnded             // its client ended the long-poll channel it serves (EventChannelEnded)
)

func (r CloseReason) String() string {
	switch r {
	case ReasonSlow:
		return "slow"
	case ReasonSessionEnded:
		return "session ended"
	case ReasonShutdown:
		return "shutdown"
	case ReasonChannelEnded:
		return "channel ended"
	}
	return "none"
}

// Formats index the encodings an Item caches.
const maxFormats = 2

// Item is one frame queued for clients: an event shared by all its
// recipients, or raw bytes for one client. Items are immutable once queued.
type Item struct {
	Event  chat.Event
	Raw    []byte // when set, the frame to write as is
	Fanout int    // how many clients the hub's fan-out pushed it to; 0 if pushed to one directly

	enc [maxFormats]struct {
		once sync.Once
		b    []byte
		prep sync.Once
		v    any
	}
}

// Encoded returns the item encoded in format (0 ≤ format < 2), calling
// enc at most once per format for all the clients that share the item.
// A nil result means the item is not shown in that format.
func (it *Item) Encoded(format int, enc func(chat.Event) []byte) []byte {
	if it.Raw != nil {
		return it.Raw
	}
	e := &it.enc[format]
	e.once.Do(func() { e.b = enc(it.Event) })
	return e.b
}

// Prepared returns what prep makes of the item's encoding in format,
// made at most once per format for all the clients that share the item:
// nil for an item with Raw set (one client's own) or not shown in that
// format. The web package keeps there the frame it writes to every
// client as it is.
func (it *Item) Prepared(format int, enc func(chat.Event) []byte, prep func([]byte) any) any {
	if it.Raw != nil {
		return nil
	}
	e := &it.enc[format]
	e.prep.Do(func() {
		if b := it.Encoded(format, enc); b != nil {
			e.v = prep(b)
		}
	})
	return e.v
}

// Client is one live connection's presence in the hub. Its outbox is a
// queue of at most limit items that holds no memory while empty; the
// connection's writer runs only while there is something to write: Push
// calls wake when the queue was idle, and the writer takes items with Next
// until Next returns nil.
type Client struct {
	UserID    int64
	SessionID int64

	limit    int
	wake     Waker // guarded by mu (Attach sets it late); an interface, not a func: a method value would be one more object to load on every Push
	mu       sync.Mutex
	queue    []*Item
	writing  bool  // a writer has been woken and has not yet seen an empty queue
	ownBytes int32 // of the queued items' Raw frames

	done   chan struct{}
	once   sync.Once
	reason atomic.Int32
	topics []chat.Topic // guarded by hub.mu; a slice, as a client has few
}

// follows reports whether c is subscribed to t. hub.mu is held.
func (c *Client) follows(t chat.Topic) bool { return slices.Contains(c.topics, t) }

// Done is closed when the hub closes the client.
func (c *Client) Done() <-chan struct{} { return c.done }

// Closed reports whether the hub closed the client, as a receive from
// Done would, without reading the channel: a delivery then touches the
// client alone, not its channel as well.
func (c *Client) Closed() bool { return c.reason.Load() != int32(ReasonNone) }

// Reason tells why Done was closed.
func (c *Client) Reason() CloseReason { return CloseReason(c.reason.Load()) }

// Close closes the client for reason r; only the first call counts. It
// wakes the writer so that it can tell the peer.
func (c *Client) Close(r CloseReason) {
	c.once.Do(func() {
		c.reason.Store(int32(r))
		close(c.done)
		c.mu.Lock()
		wake := c.wake
		c.mu.Unlock()
		if wake != nil {
			wake.Wake(c)
		}
	})
}

// Attach gives a client registered without a Waker its writer, with first
// (if not nil) queued ahead of whatever was queued since: nothing was
// written before it. A connection's greeting is its first frame that way,
// though events reach the client while the connection is set up.
func (c *Client) Attach(wake Waker, first *Item) {
	c.mu.Lock()
	if first != nil {
		c.queue = slices.Insert(c.queue, 0, first)
	}
	c.wake = wake
	c.writing = true
	c.mu.Unlock()
	wake.Wake(c)
}

// maxOwnBytes bounds the bytes of a client's own frames (Item.Raw: the
// answers to its requests, a page of history among them) waiting in its
// outbox, past the first. The outbox's bound counts frames: a client that
// asked for pages and read none would otherwise have the server hold that
// many pages. Frames shared with other clients are held once for all.
const maxOwnBytes = 4 << 20

// Push queues it without blocking; a full outbox (in frames, or in bytes
// of the client's own frames) closes the client as slow and Push reports
// false. A closed client takes nothing more, but one closed for
// ReasonShutdown still takes its own frames (Raw): the answers to what its
// connection read before, which its writer writes before the goodbye.
func (c *Client) Push(it *Item) bool {
	if c.Closed() && (it.Raw == nil || c.Reason() != ReasonShutdown) {
		return false
	}
	c.mu.Lock()
	// The bytes bound is of own frames only: an event shared with other
	// clients is not refused because the first own frame was large.
	if len(c.queue) >= c.limit || it.Raw != nil && c.ownBytes > 0 && int(c.ownBytes)+len(it.Raw) > maxOwnBytes {
		c.mu.Unlock()
		c.Close(ReasonSlow)
		return false
	}
	c.queue = append(c.queue, it)
	c.ownBytes += int32(len(it.Raw))
	start := !c.writing
	c.writing = true
	wake := c.wake
	c.mu.Unlock()
	if start && wake != nil {
		wake.Wake(c)
	}
	return true
}

// Next appends the queued items to buf and returns it. When nothing is
// queued it returns nil, and the writer must stop: the next Push wakes one.
func (c *Client) Next(buf []*Item) []*Item {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		c.writing = false
		return nil
	}
	buf = append(buf, c.queue...)
	c.ownBytes = 0
	if cap(c.queue) > 64 {
		c.queue = nil // after a burst, let an idle connection hold nothing
	} else {
		clear(c.queue)
		c.queue = c.queue[:0]
	}
	return buf
}

// Unread puts back at the head of the outbox items that Next returned and
// the writer did not write (its socket congested), for the next Next:
// they count against the outbox's bounds again, which Push keeps, so a
// writer stopped by a congested socket does not hold frames beside a full
// outbox. If they and the items queued since pass the bounds, c is closed
// as slow and Unread reports false. The writer is still c's: Push wakes
// none until Next finds the outbox empty.
func (c *Client) Unread(items []*Item) bool {
	if len(items) == 0 {
		return true
	}
	if c.Closed() {
		return false
	}
	c.mu.Lock()
	c.queue = slices.Concat(items, c.queue) // items are the writer's, which reuses them
	raws := 0
	for _, it := range c.queue {
		if it.Raw != nil {
			raws++
		}
	}
	for _, it := range items {
		c.ownBytes += int32(len(it.Raw))
	}
	// As Push counts: at most limit items, and the own frames past the
	// first within maxOwnBytes.
	slow := len(c.queue) > c.limit || raws > 1 && int(c.ownBytes) > maxOwnBytes
	c.mu.Unlock()
	if slow {
		c.Close(ReasonSlow)
		return false
	}
	return true
}

// Discard drops what the outbox holds, once c is closed for a reason
// other than ReasonShutdown (else it does nothing): for a writer that
// writes none of it, a WebSocket's, which only says goodbye, so that an
// evicted client's frames go at once rather than when its connection
// ends. A long-poll channel, whose last answer takes what was queued
// before the close, keeps them.
func (c *Client) Discard() {
	if r := c.Reason(); r == ReasonNone || r == ReasonShutdown {
		return
	}
	c.mu.Lock()
	c.queue, c.ownBytes = nil, 0
	c.mu.Unlock()
}

// Queued reports how many items wait in the outbox.
func (c *Client) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// clientSet is a topic's clients in the order of their addresses. A
// fan-out walks them in that order, and so walks the memory of their
// connections, allocated one after another as they came, the same way
// (and, on loopback, the kernel's sockets and the peers' readers, which
// came in the same order): in a room of 10,000, against a map's random
// order, it took 0.3-0.8 µs of about 8 off the server's CPU per delivery,
// and about as much off the load tool's
// (docs/bench/extra/fanout-order-ab.txt). Go's heap objects do not move,
// so the order holds. Membership is a binary search; adding and removing
// move the tail, which for clients arriving one after another is short.
type clientSet []*Client

func addrOf(c *Client) uintptr { return uintptr(unsafe.Pointer(c)) }

func byAddr(a, b *Client) int { return cmp.Compare(addrOf(a), addrOf(b)) }

func (s clientSet) find(c *Client) (int, bool) { return slices.BinarySearchFunc(s, c, byAddr) }

func (s clientSet) has(c *Client) bool {
	_, ok := s.find(c)
	return ok
}

// add adds c if it is not there yet.
func (s *clientSet) add(c *Client) {
	if i, ok := s.find(c); !ok {
		*s = slices.Insert(*s, i, c)
	}
}

// remove removes the clients of cs (in any order) that are in s.
func (s *clientSet) remove(cs ...*Client) {
	if len(cs) == 1 {
		if i, ok := s.find(cs[0]); ok {
			*s = slices.Delete(*s, i, i+1)
		}
	} else if len(cs) > 1 {
		gone := slices.SortedFunc(slices.Values(cs), byAddr)
		*s = slices.DeleteFunc(*s, func(c *Client) bool { return clientSet(gone).has(c) })
	}
	if cap(*s) > 64 && len(*s) < cap(*s)/4 {
		*s = slices.Clone(*s) // a room emptied: hold no more than it needs
	}
}

type topic struct {
	name    chat.Topic
	mu      sync.RWMutex
	clients clientSet
	// marks holds, for the clients subscribed with SubscribeMember (a
	// conversation opened), where the membership check found their user
	// a member, and for those a follow subscribed, where their user was
	// added; guarded by mu, nil while empty. A removal numbered at or
	// before its mark ended an earlier membership, and does not stop the
	// client.
	marks map[*Client]chat.Mark
	// held holds back, for the clients a follow subscribed after the topic
	// had delivered messages that came after their user's addition, what
	// the topic delivers to them until the follow has given them those
	// messages from the store (catchUp). The map is guarded by mu, the
	// holds' items by dmu; nil while empty.
	held map[*Client]*hold
	// floors holds, for the clients a follow subscribed or found
	// subscribed, the seq of their user's newest addition followed: a
	// message up to it, which the topic delivers late (its position was
	// behind the addition's, or the message was published late, before
	// the one it started with), is not theirs, and does not reach them.
	// floor is the highest of them, 0 while there are none: a message
	// after it is every client's on one comparison. Both guarded by mu;
	// floors nil while empty.
	floors map[*Client]int64
	floor  int64

	// The broker subscription, made and cancelled by the hub's broker
	// goroutine (work), never with mu held: over Redis it waits for an
	// answer, for seconds while Redis hangs unnoticed.
	cancel     func()        // set and read by work only
	subscribed chan struct{} // closed once the broker subscription was tried, and since read
	subErr     error         // its error, read after subscribed is closed
	gone       atomic.Bool   // the hub dropped the topic: it has no client left
	late       atomic.Bool   // a Subscribe stopped waiting for subscribed
	queued     bool          // its subscription waits in the hub's queue, not started; guarded by the hub's qmu
	dropped    bool          // cancelled while queued: work skips it; guarded by the hub's qmu
	// Three fields of the delivery below, beside the two above: bools
	// in a row take a word, and one each, among words, three. A user's
	// topic is made for each connected user.
	logged   bool // a user topic; set once, as it is made
	filling  bool // fillGap is running; guarded by dmu
	sinceDue bool // since is to be read (below); guarded by dmu
	parked   bool // a user topic's EventRemoved waits, or waited, on a conversation's topic (waits below); guarded by dmu

	// Delivery of messages in seq order. Publishers of one conversation
	// (goroutines answered by one group commit, or several nodes) may
	// publish out of seq order; the topic holds an early message back until
	// the ones before it arrive, or until reorderWait has passed (its
	// publisher may have died after committing: clients then fill the gap
	// from the store).
	//
	// A user topic (logged) delivers the events of its user's log
	// (Event.UserSeq) in UserSeq order the same way, as it acts on them
	// (a removal stops a conversation, an addition follows one): two
	// nodes may publish them out of order. pending then holds the early
	// ones by UserSeq, up to reorderWait; the gap is not filled from the
	// user's log, which keeps events never published (flushPending).
	dmu     sync.Mutex
	next    int64                // seq expected next; 0 before the first message
	first   int64                // seq of the first message delivered
	user    int64                // newest Event.UserSeq delivered (user topics)
	ufirst  int64                // the first Event.UserSeq delivered in order (user topics)
	skipped map[int64]struct{}   // UserSeqs a user topic gave up waiting for (skipGap), at most maxRepeats; nil while empty
	lost    *[2]int64            // the span (first, last) of the UserSeqs a user topic gave up waiting for and could not note in skipped; of all such give-ups, if several; nil if none (a pointer, as early below)
	reads   map[int64]int64      // highest EventRead seq delivered, per conversation (user topics)
	pending map[int64]chat.Event // early messages by seq; on a user topic, early logged events by UserSeq
	timer   *time.Timer          // flushes pending after reorderWait
	timerN  uint64               // counts the timers started and stopped: a flush that fired before a stop, or for an earlier timer, is stale
	// repeats holds the seqs of the messages the topic delivered as
	// repeats (chat.Event.Repeat) before it delivered any other: their
	// first publish, or another repeat, may come after, and must not be
	// delivered again. At most maxRepeats; nil while empty. A follow
	// (catchFrom), whose clients did not get them, empties it.
	repeats map[int64]struct{}

	// presence holds the newest version (chat.Presence.State) of each
	// user's presence news delivered: on a user topic, of each friend's
	// (without a ConvID); on a conversation's, of each user's in it, and
	// under countKey of the newest count of who has it open
	// (chat.Event.OnlineCount) delivered, which it keeps. Under
	// nameKey(user), the newest version of a user's name
	// (chat.User.NameVersion) of the renames delivered, on either kind.
	// At most maxPresence, nil while empty.
	presence map[int64]int64
	// since is the version of presence news (chat.Presence.Version) read
	// once the topic was subscribed, before any of its clients read who
	// is present (a user's contacts, a conversation's online list): news
	// with a lower version was told before it, and is older than what
	// they read. The versions above are only of news delivered, and a
	// topic just made has none: news on its way as it was made (published
	// before, delivered after) would undo the lists. While since is read
	// (sinceDue), the presence news delivered waits in early, at most
	// maxPresence of it; a Subscribe that stopped waiting for the read
	// (late) leaves since 0, as does a read that failed.
	since int64
	early *[]chat.Event // a pointer: a slice's 3 words would take the topic into the next size class

	// removals counts, per conversation, the EventRemoved this user topic
	// delivered, guarded by dmu, and removed all of them, read without it
	// (Removals: a removal's revoke may wait for a fan-out of its
	// conversation). A follow made before one that ended its addition's
	// membership must not subscribe after it. At most about maxRemovals
	// conversations (pruneRemovals); under key 0, no conversation's ID,
	// the highest UserSeq of the removals it no longer notes.
	removals map[int64]removal
	removed  atomic.Uint64

	// waits holds, on a conversation's topic, by the seq of a message
	// that removed a user (chat.Event.Revoke) and that the topic holds
	// back (pending), the user's EventRemoved that the user's topic
	// delivered meanwhile: its revoke and its frame wait for that
	// message, which the user's connections get first (awaitRemoval);
	// or that the topic delivered, but a follow that held the user's
	// connections has yet to give them (waiting, hold.cut).
	// Guarded by dmu; nil while empty.
	waits map[int64][]waiting
}

// waiting is an EventRemoved of the user of topic of whose revoke and
// frame wait for the message that removed the user (topic.waits). One
// with no topic (of nil) marks instead that the message was delivered,
// but the follow that held the user's connections (ev.UserID's), which
// the message revoked, has yet to give it to them (hold.cut): the
// removals of the user at its seq wait for that follow's release.
type waiting struct {
	of *topic
	ev chat.Event
}

// removal is what a user topic knows of the user's removals from one
// conversation: how many it delivered, the highest UserSeq among them,
// and how many of them had none (not logged: they may have ended any
// membership); and how many follows of the conversation are under way,
// which compare n and unlogged, and so keep the entry (follow).
type removal struct {
	n        uint64
	seq      int64
	unlogged uint32
	follows  uint32
}

// maxRemovals bounds the conversations a user topic notes removals from
// (topic.removals): past it, the topic forgets the older half
// (pruneRemovals).
const maxRemovals = 256

// pruneRemovals forgets the removals of the older half of the
// conversations tp notes, by the UserSeq of the newest, but those that a
// follow under way compares, and notes under key 0 the highest UserSeq
// forgotten: an addition logged before it that comes late (follow) is
// taken as stale, as it may be older than a removal forgotten. Additions
// come late only out of order (before the topic's first logged event,
// or one it gave up waiting for): one in order is logged after every
// removal delivered. tp.dmu is held.
func pruneRemovals(tp *topic) {
	seqs := make([]int64, 0, len(tp.removals))
	for id, r := range tp.removals {
		if id != 0 && r.follows == 0 {
			seqs = append(seqs, r.seq)
		}
	}
	if len(seqs) < 2 {
		return
	}
	slices.Sort(seqs)
	cut := seqs[len(seqs)/2-1] // at least half goes, equal UserSeqs and all
	horizon := tp.removals[0].seq
	maps.DeleteFunc(tp.removals, func(id int64, r removal) bool {
		if id == 0 || r.follows > 0 || r.seq > cut {
			return false
		}
		horizon = max(horizon, r.seq)
		return true
	})
	tp.removals[0] = removal{seq: horizon}
}

// hold is what a topic delivered to a client while a follow caught the
// client up from the store. A follow's catchUp and release act on the
// holds it made only: a client revoked meanwhile, and held again by a
// later follow (its user added again), is that follow's to release.
type hold struct {
	c     *Client
	from  int64   // the topic's next seq as the client was subscribed: the store gives it those before
	items []*Item // guarded by the topic's dmu
	// cut is the seq of the message that revoked c while it was held
	// (revoke), 0 if none: c is out of the topic, which holds nothing
	// more for it, and the follow still gives it what came before, the
	// hold's items up to that message included. Guarded by the topic's
	// mu.
	cut int64
}

// holding reports whether hd, a follow's hold, is still the follow's to
// catch up and release: tp holds it, or a message revoked its client
// while held (hold.cut) and the client has not been subscribed again
// since. tp.mu is held.
func (tp *topic) holding(hd *hold) bool {
	return tp.held[hd.c] == hd || hd.cut > 0 && !tp.clients.has(hd.c)
}

// removeLocked removes the clients of cs that tp has, their marks and
// holds. tp.mu is held.
func (tp *topic) removeLocked(cs ...*Client) {
	tp.clients.remove(cs...)
	if tp.held != nil {
		for _, c := range cs {
			delete(tp.held, c)
		}
		if len(tp.held) == 0 {
			tp.held = nil
		}
	}
	if tp.marks != nil {
		for _, c := range cs {
			delete(tp.marks, c)
		}
		if len(tp.marks) == 0 {
			tp.marks = nil
		}
	}
	if tp.floors != nil {
		for _, c := range cs {
			delete(tp.floors, c)
		}
		if len(tp.floors) == 0 {
			tp.floors, tp.floor = nil, 0
		}
	}
}

// reorderWait bounds how long an early message waits for the ones before it.
const reorderWait = 100 * time.Millisecond

// Hub is the set of this process's clients and their topics.
type Hub struct {
	broker chat.Broker
	log    *slog.Logger

	// cancelAll, if set, ends the one subscription through which the
	// broker delivers every topic to deliverAny: then topics need none of
	// their own.
	cancelAll func()

	mu      sync.Mutex
	tmu     sync.RWMutex // guards topics too: held (under mu) to change it, alone to read it in deliver
	topics  map[chat.Topic]*topic
	clients map[*Client]struct{}
	closed  bool
	empty   chan struct{} // closed when closed and no client is left

	fetch   Fetch                                // the store, for gaps and resyncs; nil: none (tests)
	version func(context.Context) (int64, error) // the Presence's version (UsePresence); nil: none (tests)

	// Broker subscriptions and cancels to make, in the order the hub
	// asked for them; one goroutine at a time (work) makes them. A
	// subscription cancelled before work started it leaves the queue with
	// its cancel (enqueue), so the queue holds at most a cancel and a
	// subscription per topic, and dropped ones (void) up to about as many.
	qmu     sync.Mutex
	ops     []brokerOp
	void    int // subscriptions in ops that were dropped
	working bool
	slow    atomic.Bool // a broker call kept a caller waiting subscribeWait: callers wait no more until one is quick

	stop   chan struct{} // closed by Close: ends CheckSessions' goroutine
	checks sync.Once     // CheckSessions starts one goroutine
}

// UseStore makes the hub fill from fetch the messages that do not arrive
// through the broker in time, and lets Resync work. Call it before the
// hub is used.
func (h *Hub) UseStore(fetch Fetch) { h.fetch = fetch }

// UsePresence makes each topic read the version of presence news
// (chat.Presence.Version) before any Subscribe of it returns, and drop
// news older than it (topic.since): over a broker of topics one by one,
// once the topic is subscribed; over a broker of this process
// (deliverAny), as the topic is made, under the hub's lock. One read per
// topic made, none per event. Call it before the hub is used.
func (h *Hub) UsePresence(version func(context.Context) (int64, error)) { h.version = version }

// New returns a Hub fed by b.
func New(b chat.Broker, log *slog.Logger) *Hub {
	h := &Hub{broker: b, log: log, topics: make(map[chat.Topic]*topic), clients: make(map[*Client]struct{}), empty: make(chan struct{}), stop: make(chan struct{})}
	if a, ok := b.(allBroker); ok {
		if cancel, err := a.SubscribeAll(h.deliverAny); err == nil {
			h.cancelAll = cancel
		}
	}
	return h
}

// allBroker is a Broker that also delivers the events of every topic to
// one subscriber, in publish order per topic (inmem.Broker). The hub then
// subscribes once instead of once per topic: for the topic of each
// signed-in user, a broker subscription costs as much memory as the hub's
// own bookkeeping.
type allBroker interface {
	SubscribeAll(fn func(chat.Topic, chat.Event)) (cancel func(), err error)
}

// deliverAny delivers ev, published on t, if this hub has topic t.
func (h *Hub) deliverAny(t chat.Topic, ev chat.Event) {
	if tp := h.topicOf(t); tp != nil {
		h.deliver(tp, ev)
	}
}

// A Waker starts a client's writer (Register).
type Waker interface{ Wake(*Client) }

// A ChannelWaker is the Waker of a client that serves a long-poll channel:
// an EventChannelEnded naming the channel closes the client. The name is
// the Waker's, not a field of every Client: a WebSocket has none.
type ChannelWaker interface {
	Waker
	ChannelName() string
}

// servesChannel reports whether c's Waker serves long-poll channel name.
func (c *Client) servesChannel(name string) bool {
	c.mu.Lock()
	w, ok := c.wake.(ChannelWaker)
	c.mu.Unlock()
	return ok && name != "" && w.ChannelName() == name
}

// WakeFunc is a function as a Waker.
type WakeFunc func(*Client)

// Wake calls f.
func (f WakeFunc) Wake(c *Client) { f(c) }

// ErrClosed is returned by Register after Close.
var ErrClosed = errors.New("hub closed")

// Register adds a client with an outbox of at most outbox items and
// subscribes it to its user's topic. wake (nil in tests that poll Next, or
// until Attach) is called when the client needs its writer: items were queued while it was
// idle, or the client was closed. It may run with hub locks held, so it
// must only start the writer, never block or call the hub.
func (h *Hub) Register(userID, sessionID int64, outbox int, wake Waker) (*Client, error) {
	c := &Client{UserID: userID, SessionID: sessionID, limit: outbox, wake: wake, done: make(chan struct{})}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	h.clients[c] = struct{}{}
	h.mu.Unlock()
	if userID != 0 {
		if err := h.Subscribe(c, chat.UserTopic(userID)); err != nil {
			h.Unregister(c)
			return nil, err
		}
	}
	return c, nil
}

// Unregister removes c from the hub and all its topics. Like Unsubscribe,
// it waits a little for the broker subscriptions it ends.
func (h *Hub) Unregister(c *Client) {
	h.mu.Lock()
	var done chan struct{}
	for len(c.topics) > 0 {
		if d := h.unsubscribeLocked(c, c.topics[len(c.topics)-1]); d != nil {
			done = d // the last one queued: the others are made before it
		}
	}
	delete(h.clients, c)
	if h.closed && len(h.clients) == 0 {
		select {
		case <-h.empty:
		default:
			close(h.empty)
		}
	}
	h.mu.Unlock()
	if done != nil {
		h.await(done)
	}
}

// Subscribe makes c receive the events of t. It returns once the broker
// subscription of t is made, so that an event published after it returns
// reaches c; but it waits for that at most subscribeWait, and not at all
// while the broker is slow to answer (Redis hanging unnoticed): t then
// delivers, once subscribed, what it missed from the store, as Resync
// does. It fails if the broker refuses t (closed).
func (h *Hub) Subscribe(c *Client, t chat.Topic) error {
	_, _, _, err := h.subscribe(c, t, chat.Mark{}, 0)
	return err
}

// SubscribeMember is Subscribe for the topic of a conversation that c's
// user was found a member of at mark (chat.Service.CheckMemberAt). A
// removal of the user from it numbered at or before mark (an EventRemoved
// with 0 < UserSeq ≤ mark.UserSeq, or the conversation's message with
// Revoke and a seq ≤ mark.Seq) ended an earlier membership: delivered
// late, as over Redis it may be, it leaves c subscribed. While c stays
// subscribed, the newest mark counts.
func (h *Hub) SubscribeMember(c *Client, t chat.Topic, mark chat.Mark) error {
	_, _, _, err := h.subscribe(c, t, mark, 0)
	return err
}

// A catch is what a follow has left to do for a client it subscribed, so
// that the client receives the conversation's messages after its user's
// addition in order (topic.catchFrom).
type catch int

const (
	catchNone catch = iota // nothing: the topic delivers them, or the client was subscribed already
	catchFill              // the topic starts after the addition: fill it from the store (fillGap)
	catchHeld              // the client is held: catchUp gives it what the topic delivered before
)

// subscribe subscribes c to t, marked with mark if it is not zero. For a
// follow of its user's addition at seq base > 0, it also returns the
// topic and what catchFrom left to do, with c's hold for catchHeld.
func (h *Hub) subscribe(c *Client, t chat.Topic, mark chat.Mark, base int64) (*topic, catch, *hold, error) {
	h.mu.Lock()
	if _, ok := h.clients[c]; !ok {
		h.mu.Unlock()
		return nil, catchNone, nil, ErrClosed
	}
	// A client that follows t may have been taken out of it by revoke,
	// and the topic may even have gone since, with its last other client,
	// before revoke's bookkeeping ran: add it again all the same.
	follows := c.follows(t)
	tp := h.topics[t]
	if tp == nil {
		tp = &topic{name: t, logged: t.IsUser()}
		if h.cancelAll == nil {
			tp.subscribed = make(chan struct{})
			tp.sinceDue = h.version != nil
			h.enqueue(brokerOp{tp: tp, sub: true})
		} else if h.version != nil {
			// Subscribed as it is added (deliverAny), to a broker of this
			// process, beside a presence of this process too: the read is
			// a mutex's, made before the topic is in the map, so that the
			// callers of Subscribe, who read their lists once it returns,
			// find since set, and news told after it reaches the topic.
			// Kept in nothing but since: a channel for the callers to wait
			// on cost every topic 96 bytes.
			tp.since, _ = h.presenceVersion(tp)
		}
		h.tmu.Lock()
		h.topics[t] = tp
		h.tmu.Unlock()
	}
	catching := base > 0 && h.fetch != nil
	what := catchNone
	var hd *hold
	if catching {
		tp.dmu.Lock() // no delivery between the look at next and the add
	}
	tp.mu.Lock()
	if catching {
		what, hd = tp.catchFrom(c, base)
	}
	if base > 0 {
		// A client subscribed already, by a follow of an earlier addition
		// or an open of an earlier membership, that no removal has
		// stopped yet (it may come late), was no member between that
		// removal and this addition: what came before, if delivered late,
		// is not pushed to it either. It fills from the store what it
		// misses of its earlier membership.
		if tp.floors == nil {
			tp.floors = make(map[*Client]int64)
		}
		tp.floors[c] = max(tp.floors[c], base)
		tp.floor = max(tp.floor, base)
	}
	tp.clients.add(c)
	if mark != (chat.Mark{}) {
		if tp.marks == nil {
			tp.marks = make(map[*Client]chat.Mark)
		}
		old := tp.marks[c]
		tp.marks[c] = chat.Mark{UserSeq: max(old.UserSeq, mark.UserSeq), Seq: max(old.Seq, mark.Seq)}
	}
	tp.mu.Unlock()
	if catching {
		tp.dmu.Unlock()
	}
	if !follows {
		c.topics = append(c.topics, t)
	}
	h.mu.Unlock()
	if tp.subscribed == nil {
		return tp, what, hd, nil // subscribed as it was added (deliverAny)
	}
	if !h.await(tp.subscribed) {
		tp.late.Store(true)
		select {
		case <-tp.subscribed: // work may have missed late: the caller has read nothing yet
		default:
			return tp, what, hd, nil // work sees late, and resyncs tp
		}
	}
	if tp.subErr != nil {
		if !follows {
			h.Unsubscribe(c, t)
		}
		return tp, what, hd, fmt.Errorf("subscribe %s: %w", t, tp.subErr)
	}
	return tp, what, hd, nil
}

// catchFrom readies tp to give c, which a follow of its user's addition
// at seq base is about to subscribe, the messages after base in order,
// and says what the follow must then do. If tp has delivered nothing yet,
// it starts after base and is filled from the store, for all its
// clients; if it has delivered messages after base, c is held back from
// what it delivers until catchUp has given c those from the store. A
// client subscribed already is left as it is: it receives the topic from
// its subscription on, and anything older from the store, through its
// open or sync, would come after that. It returns c's hold for
// catchHeld. tp.dmu and tp.mu are held.
func (tp *topic) catchFrom(c *Client, base int64) (catch, *hold) {
	if tp.clients.has(c) {
		return catchNone, nil
	}
	var what catch
	var hd *hold
	switch {
	case tp.next == 0 && !tp.filling:
		tp.startAfter(base)
		tp.filling = true
		what = catchFill
	case tp.next > base+1:
		if tp.held == nil {
			tp.held = make(map[*Client]*hold)
		}
		hd = &hold{c: c, from: tp.next}
		tp.held[c] = hd
		what = catchHeld
	default:
		return catchNone, nil
	}
	// c did not get the repeats the topic delivered before: let their
	// messages through again. A group's other clients drop by seq what
	// they have; only a room has clients that cannot (compat).
	tp.repeats = nil
	return what, hd
}

// subscribeWait bounds how long Subscribe, Unsubscribe and Unregister wait
// for the broker; lateResyncTimeout how long a topic subscribed after its
// Subscribe stopped waiting reads what it missed from the store.
const (
	subscribeWait     = time.Second
	lateResyncTimeout = 30 * time.Second
)

// A brokerOp is a broker subscription to make (sub) or cancel, for topic
// tp; done, for a cancel, is closed once it is made.
type brokerOp struct {
	tp   *topic
	sub  bool
	done chan struct{}
}

// enqueue has op made after the ones before it, on the hub's broker
// goroutine, and reports whether it queued it. A cancel whose topic's
// subscription waits in the queue, not started, is not queued: that
// subscription is dropped instead, and neither reaches the broker. A
// client that opens and closes a conversation, or a connection that comes
// and goes, while the broker hangs then leaves nothing behind; without
// it, each toggle queued two calls (and kept its topic) until the broker
// answered. Any lock may be held.
func (h *Hub) enqueue(op brokerOp) bool {
	h.qmu.Lock()
	if !op.sub && op.tp.queued {
		op.tp.queued, op.tp.dropped = false, true
		h.void++
		if h.void > 64 && h.void > len(h.ops)/2 {
			h.ops = slices.DeleteFunc(h.ops, func(o brokerOp) bool { return o.sub && o.tp.dropped })
			h.void = 0
		}
		h.qmu.Unlock()
		close(op.tp.subscribed) // nothing to wait for: the topic has gone
		return false
	}
	op.tp.queued = op.sub
	h.ops = append(h.ops, op)
	start := !h.working
	h.working = true
	h.qmu.Unlock()
	if start {
		go h.work()
	}
	return true
}

// work makes the queued broker calls, in order, until none is left. It
// alone calls the broker's Subscribe and cancel functions, with no hub
// lock held: so the hub never waits for the broker with its lock held,
// and the subscribe and cancel of one topic reach the broker in the order
// the hub made them.
func (h *Hub) work() {
	for {
		h.qmu.Lock()
		if len(h.ops) == 0 {
			h.ops = nil
			h.working = false
			h.qmu.Unlock()
			return
		}
		op := h.ops[0]
		h.ops[0] = brokerOp{}
		h.ops = h.ops[1:]
		if op.sub && op.tp.dropped {
			h.void--
			h.qmu.Unlock()
			continue
		}
		op.tp.queued = false
		h.qmu.Unlock()
		if op.sub {
			h.subscribeBroker(op.tp)
		} else if op.tp.cancel != nil {
			op.tp.cancel()
			op.tp.cancel = nil
		}
		if op.done != nil {
			close(op.done)
		}
	}
}

// subscribeBroker subscribes tp to the broker, unless it has gone since.
// If a Subscribe stopped waiting for it, tp then delivers from the store
// what was published before: its clients may have read the store before
// the broker subscription was made.
func (h *Hub) subscribeBroker(tp *topic) {
	if tp.gone.Load() {
		close(tp.subscribed)
		return
	}
	start := time.Now()
	tp.cancel, tp.subErr = h.broker.Subscribe(tp.name, func(ev chat.Event) { h.deliver(tp, ev) })
	if time.Since(start) < subscribeWait {
		h.slow.Store(false) // the broker answers in time again
	}
	if tp.sinceDue {
		// The read of since goes on in a goroutine of its own: over
		// Redis it is a round trip, and here one at a time it would hold
		// back every topic's subscription behind it, as many topics are
		// made at once when a node's clients connect again.
		go h.subscribed(tp)
		return
	}
	h.subscribed(tp)
}

// subscribed ends subscribeBroker's work for tp, subscribed to the broker
// or not: it reads since if due (readSince), lets the callers of
// Subscribe go on, and resyncs tp from the store if one stopped waiting.
func (h *Hub) subscribed(tp *topic) {
	if tp.sinceDue {
		h.readSince(tp, tp.subErr == nil)
	}
	close(tp.subscribed)
	if tp.subErr != nil {
		h.log.Warn("subscribe", "topic", string(tp.name), "err", tp.subErr)
		return
	}
	if tp.late.Load() && h.fetch != nil && !tp.gone.Load() {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), lateResyncTimeout)
			defer cancel()
			h.resyncTopic(ctx, tp, h.fetch)
		}()
	}
}

// readSince reads tp.since, if read, once tp is subscribed and before
// Subscribe lets its callers go on to read who is present, and then
// delivers the presence news that waited for it (topic.early). A caller
// that stopped waiting (late) may have read already: since stays 0.
func (h *Hub) readSince(tp *topic, read bool) {
	var v int64
	ok := false
	if read {
		v, ok = h.presenceVersion(tp)
	}
	tp.dmu.Lock()
	defer tp.dmu.Unlock()
	if ok && !tp.late.Load() {
		tp.since = v
	}
	var early []chat.Event
	if tp.early != nil {
		early = *tp.early
	}
	tp.early, tp.sinceDue = nil, false
	for _, ev := range early {
		h.fanOutUser(tp, ev)
	}
}

// presenceVersion reads the version of presence news for tp's since
// (Hub.UsePresence), within subscribeWait; false if it could not.
func (h *Hub) presenceVersion(tp *topic) (int64, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), subscribeWait)
	defer cancel()
	v, err := h.version(ctx)
	if err != nil {
		h.log.Warn("read presence version", "topic", string(tp.name), "err", err)
		return 0, false
	}
	return v, true
}

// await waits for done, at most subscribeWait, and not at all while the
// broker is slow; it reports whether done was closed.
func (h *Hub) await(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
	}
	if h.slow.Load() {
		return false
	}
	t := time.NewTimer(subscribeWait)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		h.slow.Store(true)
		return false
	}
}

// Follows reports whether c is subscribed to t.
func (h *Hub) Follows(c *Client, t chat.Topic) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return c.follows(t)
}

// Unsubscribe stops c receiving the events of t. If that ends the broker
// subscription of t, it waits for it as Subscribe does.
func (h *Hub) Unsubscribe(c *Client, t chat.Topic) {
	h.mu.Lock()
	done := h.unsubscribeLocked(c, t)
	h.mu.Unlock()
	if done != nil {
		h.await(done)
	}
}

// unsubscribeLocked removes c from t. If t is left without a client, it
// drops it, queues the cancel of its broker subscription and returns a
// channel closed once that is made; nil if the subscription was still
// queued, and is dropped with it. h.mu is held.
func (h *Hub) unsubscribeLocked(c *Client, t chat.Topic) chan struct{} {
	i := slices.Index(c.topics, t)
	if i < 0 {
		return nil
	}
	c.topics = slices.Delete(c.topics, i, i+1)
	tp := h.topics[t]
	if tp == nil {
		return nil
	}
	tp.mu.Lock()
	tp.removeLocked(c)
	n := len(tp.clients)
	tp.mu.Unlock()
	var done chan struct{}
	if n == 0 {
		tp.gone.Store(true)
		if tp.subscribed != nil {
			done = make(chan struct{})
			if !h.enqueue(brokerOp{tp: tp, done: done}) {
				done = nil // its subscription was never made
			}
		}
		h.tmu.Lock()
		delete(h.topics, t)
		h.tmu.Unlock()
		tp.dmu.Lock()
		tp.stopTimer()
		tp.pending = nil
		if tp.waits != nil {
			h.endWaits(tp, math.MaxInt64, false)
		}
		tp.dmu.Unlock()
	}
	return done
}

// deliver fans ev out to the clients of tp, messages in seq order. It
// never blocks on a client. A topic gone has no client, and never will:
// what still reaches it (its broker subscription is cancelled after it
// went) is dropped, not held for the reorder wait and filled from the
// store for nobody.
func (h *Hub) deliver(tp *topic, ev chat.Event) {
	if tp.gone.Load() {
		return
	}
	if ev.Type == chat.EventSessionEnded {
		tp.mu.RLock()
		defer tp.mu.RUnlock()
		for _, c := range tp.clients {
			if c.SessionID == ev.SessionID {
				c.Close(ReasonSessionEnded)
			}
		}
		return
	}
	if ev.Type == chat.EventChannelEnded {
		tp.mu.RLock()
		defer tp.mu.RUnlock()
		for _, c := range tp.clients {
			if c.servesChannel(ev.Channel) {
				c.Close(ReasonChannelEnded)
			}
		}
		return
	}
	if ev.UserSeq > 0 {
		h.deliverLogged(tp, ev)
		return
	}
	tp.dmu.Lock()
	defer tp.dmu.Unlock()
	if ev.Type != chat.EventMessage || ev.Message == nil {
		h.fanOutUser(tp, ev)
		return
	}
	seq := ev.Message.Seq
	switch {
	case ev.Repeat && tp.next == 0:
		// A send retried: what came after it may have been published
		// before this topic was there, and this topic must not wait
		// for it from here. It is noted, so that it is delivered once:
		// its first publish may still come (a publish on its way, or
		// one a broker makes again), or it may be repeated again.
		if _, ok := tp.repeats[seq]; ok || len(tp.repeats) >= maxRepeats {
			break // delivered; or too many to note: clients fill the gap, if any, from the store
		}
		h.fanOut(tp, ev)
		if tp.repeats == nil {
			tp.repeats = make(map[int64]struct{})
		}
		tp.repeats[seq] = struct{}{}
	case ev.Repeat && seq < tp.next:
		// Delivered here, or skipped as a gap that clients filled; or
		// older than what this topic started with, which its clients
		// have from the store or came after.
	case tp.next == 0 || seq == tp.next:
		if tp.next == 0 {
			tp.first = seq
		}
		h.fanOut(tp, ev)
		tp.next = seq + 1
		h.drainPending(tp)
	case seq < tp.next:
		// From first on, everything was delivered in order, by the broker
		// or from the store; before first, a publish overtaken by the one
		// this topic started with is late, not repeated: clients drop
		// what they have.
		if h.fetch == nil || seq < tp.first {
			h.fanOut(tp, ev)
		}
	default:
		if tp.pending == nil {
			tp.pending = make(map[int64]chat.Event)
		}
		tp.pending[seq] = ev
		if tp.timer == nil {
			h.startTimer(tp)
		}
	}
}

// deliverLogged delivers ev, an event of the log of tp's user (UserSeq >
// 0), and acts on it, in UserSeq order: one that comes early waits, up
// to reorderWait, for those before it, as a conversation's messages do;
// one that this topic delivered already is dropped. A topic delivers
// from the first logged event it receives on; one older than that, or
// one that it gave up waiting for (skipGap), is delivered as it comes:
// the hub's acts on it compare UserSeqs (covers, follow), and clients
// drop by UserSeq what they have. A removal is delivered, and revokes,
// however late: one the topic gave up on but could not note (lost) is
// delivered too, unless the topic delivered it, or a later removal from
// the same conversation, already (lost may span events delivered between
// two give-ups, and a broker may deliver one again).
func (h *Hub) deliverLogged(tp *topic, ev chat.Event) {
	tp.dmu.Lock()
	defer tp.dmu.Unlock()
	u := ev.UserSeq
	_, skipped := tp.skipped[u]
	switch {
	case ev.Repeat && u <= tp.user && !skipped:
		// A logged event published again (chat.Event.Repeat): this topic
		// delivered it, or a later one, already. One it gave up waiting
		// for is delivered below, once: its first publish may have been
		// lost (a change of unknown outcome, republished).
	case tp.user == 0 || u == tp.user+1:
		if tp.user == 0 {
			tp.ufirst = u
		}
		h.fanOutUser(tp, ev)
		h.drainLogged(tp)
	case u < tp.ufirst:
		h.fanOutUser(tp, ev)
	case u <= tp.user:
		if skipped {
			delete(tp.skipped, u)
			if len(tp.skipped) == 0 {
				tp.skipped = nil
			}
			h.fanOutUser(tp, ev)
		} else if tp.lost != nil && tp.lost[0] <= u && u <= tp.lost[1] && ev.Type == chat.EventRemoved && u > tp.removals[ev.ConvID].seq {
			// Not one delivered, nor older than one: that one's revoke
			// left only clients of a later membership, which a repeat
			// would stop (those subscribed with no mark).
			h.fanOutUser(tp, ev)
		}
	default:
		if tp.pending == nil {
			tp.pending = make(map[int64]chat.Event)
		}
		tp.pending[u] = ev
		if tp.timer == nil {
			h.startTimer(tp)
		}
	}
}

// drainLogged delivers the early logged events that are now next in
// line. tp.dmu is held.
func (h *Hub) drainLogged(tp *topic) {
	for len(tp.pending) > 0 {
		ev, ok := tp.pending[tp.user+1]
		if !ok {
			return
		}
		delete(tp.pending, tp.user+1)
		h.fanOutUser(tp, ev)
	}
	tp.stopTimer()
}

// fanOutUser acts on ev, an event other than a conversation's message,
// then pushes it to the clients of tp. On a user topic (every client
// here is the user's): a removal from a conversation stops the clients'
// delivery of it, an addition to a group makes them follow it, and a read
// position only goes forward. On either kind a user's presence news older
// than news of them delivered is dropped, as is a rename older than one
// of the user delivered, and on a conversation's topic the count of who
// has it open never goes back. tp.dmu is held.
func (h *Hub) fanOutUser(tp *topic, ev chat.Event) {
	if tp.parked && ev.UserSeq > 0 {
		h.unpark(tp)
	}
	switch {
	case ev.Type == chat.EventRemoved:
		// A client whose open found a newer membership than the one this
		// ended (a removal that reached this node late) is spared.
		if tp.removals == nil {
			tp.removals = make(map[int64]removal)
		}
		r, ok := tp.removals[ev.ConvID]
		if !ok && len(tp.removals) >= maxRemovals && !tp.parked {
			// Not while removals wait (parked): unpark finds them by
			// the conversations noted.
			pruneRemovals(tp)
		}
		r.n++
		if ev.UserSeq > 0 {
			r.seq = max(r.seq, ev.UserSeq)
		} else {
			r.unlogged++
		}
		tp.removals[ev.ConvID] = r
		tp.removed.Add(1)
		delete(tp.reads, ev.ConvID) // added again, the user starts from a read position anew
		ctp := h.topicOf(chat.ConvTopic(ev.ConvID))
		if h.awaitRemoval(ctp, tp, ev) {
			tp.user = max(tp.user, ev.UserSeq)
			return
		}
		h.revoke(ctp, 0, tp, chat.Mark{UserSeq: ev.UserSeq})
	case ev.Type == chat.EventConversation && ev.ConvKind == chat.ConvGroup:
		// The user created or joined a group. Every connection follows
		// all its user's groups.
		at := chat.Mark{UserSeq: ev.UserSeq}
		if ev.Message != nil {
			at.Seq = ev.Message.Seq
		}
		h.follow(tp, ev.ConvID, at)
	case ev.Type == chat.EventRead:
		// Moves of one position, published by concurrent callers,
		// may arrive out of order: a read position only goes forward.
		if ev.Seq < tp.reads[ev.ConvID] {
			return
		}
		if tp.reads == nil {
			tp.reads = make(map[int64]int64)
		}
		tp.reads[ev.ConvID] = ev.Seq
	case ev.Type == chat.EventPresence && (ev.ConvID == chat.Everywhere) == tp.logged && ev.Seq > 0 && ev.User != nil:
		// Nodes that publish a user's news, of a friend on a user topic
		// or of a member in a conversation on its topic, at about the
		// same time may publish the older last: it would undo the newer.
		// News older than since is older than what the clients read.
		if holdEarly(tp, ev) {
			return
		}
		if ev.Seq < max(tp.since, tp.presence[ev.User.ID]) {
			return
		}
		notePresence(tp, ev.User.ID, ev.Seq)
		if !tp.logged && ev.OnlineCount > 0 {
			// The count is of the same version: two users' news may
			// cross too, and the older count would go back. The news
			// is the newest of its user, and goes without it.
			if ev.Seq < tp.presence[countKey] {
				ev.OnlineCount = 0
			} else {
				notePresence(tp, countKey, ev.Seq)
			}
		}
	case ev.Type == chat.EventOnlineCount && !tp.logged && ev.Seq > 0:
		// A large room's count, with its version: one older than a count
		// delivered, or than what the clients read, is dropped.
		if holdEarly(tp, ev) {
			return
		}
		if ev.Seq < max(tp.since, tp.presence[countKey]) {
			return
		}
		notePresence(tp, countKey, ev.Seq)
	case tp.logged && versionedContact(ev):
		orderContact(tp, &ev)
	case ev.Type == chat.EventUser && ev.Seq > 0 && ev.User != nil:
		// Two nodes that tell two renames of one user at about the same
		// moment may publish the older last: it would undo the newer.
		if ev.Seq < tp.presence[nameKey(ev.User.ID)] {
			return
		}
		notePresence(tp, nameKey(ev.User.ID), ev.Seq)
	}
	tp.user = max(tp.user, ev.UserSeq)
	h.fanOut(tp, ev)
}

// drainPending delivers the held messages that are now next in line.
func (h *Hub) drainPending(tp *topic) {
	for len(tp.pending) > 0 {
		ev, ok := tp.pending[tp.next]
		if !ok {
			return
		}
		delete(tp.pending, tp.next)
		h.fanOut(tp, ev)
		tp.next++
	}
	if len(tp.pending) == 0 {
		tp.stopTimer()
	}
}

// startTimer starts tp's reorder timer. tp.dmu is held.
func (h *Hub) startTimer(tp *topic) {
	tp.timerN++
	n := tp.timerN
	tp.timer = time.AfterFunc(reorderWait, func() { h.flushPending(tp, n) })
}

// stopTimer stops tp's reorder timer, if it runs. One that fired already
// may be waiting for tp.dmu: its flush, then stale, does nothing, or it
// would cut short the wait of a gap opened since. tp.dmu is held.
func (tp *topic) stopTimer() {
	if tp.timer != nil {
		tp.timer.Stop()
		tp.timer = nil
		tp.timerN++
	}
}

// flushPending stops waiting for a missing message, when timer n fires:
// it fetches the messages from the missing one on from the store and
// delivers them in order; without a store, or if that fails, it delivers
// what is held and leaves the gap to clients (docs/protocol.md, "Staying
// in sync").
func (h *Hub) flushPending(tp *topic, n uint64) {
	tp.dmu.Lock()
	if n != tp.timerN { // stale: stopped, or replaced
		tp.dmu.Unlock()
		return
	}
	tp.timer = nil
	if tp.gone.Load() { // started by a fill under way as the topic went
		tp.pending = nil
		if tp.waits != nil {
			h.endWaits(tp, math.MaxInt64, false)
		}
		tp.dmu.Unlock()
		return
	}
	if tp.filling { // wait for it
		if len(tp.pending) > 0 {
			h.startTimer(tp)
		}
		tp.dmu.Unlock()
		return
	}
	if len(tp.pending) == 0 || h.fetch == nil || tp.logged {
		// A user's log may hold events that were never published (in logs
		// written before chat.Service's publishMember kept only events
		// of a membership still there), and clients fill its gaps from it
		// themselves: a user topic does not read it.
		h.skipGap(tp)
		tp.dmu.Unlock()
		return
	}
	tp.filling = true
	after := tp.next - 1
	tp.dmu.Unlock()
	go h.fillGap(tp, after, false)
}

// fillGap delivers tp's messages after seq after from the store, a page
// at a time (Fetch may answer the first page only): up to the messages tp
// holds back (pending), or, if open (a follow's fill, which knows of no
// message after the gap), until the store has no more. It stops early at
// a page that takes tp no further, or on an error. Each page is read with
// no lock held; deliver puts its messages in order with those the broker
// delivers meanwhile, which are not held back for the fill if next.
func (h *Hub) fillGap(tp *topic, after int64, open bool) {
	start := after
	for {
		ctx, cancel := context.WithTimeout(context.Background(), fillTimeout)
		evs, err := h.fetch(ctx, tp.name, after)
		cancel()
		if err != nil {
			h.log.Warn("fill gap from the store", "topic", string(tp.name), "after", after, "err", err)
		}
		for _, ev := range evs {
			h.deliver(tp, ev)
		}
		tp.dmu.Lock()
		if len(tp.pending) > 0 {
			open = false // the gap ends at a message the broker delivered
		}
		if err != nil || tp.gone.Load() || tp.next-1 <= after || len(tp.pending) == 0 && !open {
			break // with tp.dmu held
		}
		after = tp.next - 1
		tp.dmu.Unlock()
	}
	defer tp.dmu.Unlock()
	tp.filling = false
	if tp.next == start+1 { // not filled: give up on it
		h.skipGap(tp)
	} else if len(tp.pending) > 0 && tp.timer == nil {
		h.startTimer(tp)
	}
}

// fillTimeout bounds one store query of fillGap.
const fillTimeout = 5 * time.Second

// skipGap delivers what tp holds, in seq order, past the gap before it.
// tp.dmu is held.
func (h *Hub) skipGap(tp *topic) {
	if len(tp.pending) == 0 {
		return
	}
	seqs := make([]int64, 0, len(tp.pending))
	for seq := range tp.pending {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	if tp.logged {
		for u := tp.user + 1; u < seqs[0]; u++ {
			if len(tp.skipped) >= maxRepeats {
				if tp.lost == nil {
					tp.lost = &[2]int64{u, 0}
				}
				tp.lost[1] = seqs[0] - 1
				break
			}
			if tp.skipped == nil {
				tp.skipped = make(map[int64]struct{})
			}
			tp.skipped[u] = struct{}{}
		}
		tp.user = seqs[0] - 1
		h.drainLogged(tp)
	} else {
		tp.next = seqs[0]
		h.drainPending(tp)
	}
	if len(tp.pending) > 0 && tp.timer == nil { // another gap further on: wait for it in turn
		h.startTimer(tp)
	}
}

// versionedContact reports whether ev is a friend's contact shown with
// their presence and its version (chat.Service's notifyContact).
func versionedContact(ev chat.Event) bool {
	return ev.Type == chat.EventContact && ev.Seq > 0 && ev.Contact != nil && ev.Contact.State == chat.StateFriends
}

// orderContact orders *ev, a versionedContact, against the presence news
// of its friend that tp, a user topic, delivered: news of them older than
// it crossed the befriending and is dropped after it (fanOutUser), and a
// presence older than news delivered, or than what the clients read
// (since), is left out of the contact (chat.Contact.PresenceStale, on a
// copy). tp.dmu is held.
func orderContact(tp *topic, ev *chat.Event) {
	if id := ev.Contact.User.ID; ev.Seq < max(tp.since, tp.presence[id]) {
		c := *ev.Contact
		c.PresenceStale = true
		ev.Contact = &c
	} else {
		notePresence(tp, id, ev.Seq)
	}
}

// OrderContact orders *ev, an event of user userID's log that a client of
// theirs is given from the store instead of through the hub (a gap it
// filled), as userID's topic orders the events it delivers: a friend's
// contact shown with a presence older than news of them the topic
// delivered is marked chat.Contact.PresenceStale, and a newer one makes
// the topic drop older news. Any other event, or a user without a topic
// here, is left as it is. It is for the filling of gaps only: one lock,
// no read.
func (h *Hub) OrderContact(userID int64, ev *chat.Event) {
	if !versionedContact(*ev) {
		return
	}
	h.tmu.RLock()
	tp := h.topics[chat.UserTopic(userID)]
	h.tmu.RUnlock()
	if tp == nil || !tp.logged {
		return
	}
	tp.dmu.Lock()
	defer tp.dmu.Unlock()
	orderContact(tp, ev)
}

// holdEarly holds ev, presence news or a count with a version, in
// tp.early while tp.since is being read (sinceDue), up to maxPresence of
// them, and reports whether it did. tp.dmu is held.
func holdEarly(tp *topic, ev chat.Event) bool {
	if !tp.sinceDue || tp.early != nil && len(*tp.early) >= maxPresence {
		return false
	}
	if tp.early == nil {
		tp.early = new([]chat.Event)
	}
	*tp.early = append(*tp.early, ev)
	return true
}

// countKey is the key in a conversation topic's presence (topic.presence)
// of the version of the count (chat.Event.OnlineCount) it delivered: no
// user's ID.
const countKey = -1

// nameKey is the key in a topic's presence (topic.presence) of the
// version of userID's name delivered: below countKey, as user IDs are
// positive.
func nameKey(userID int64) int64 { return countKey - userID }

// notePresence notes version as the newest of userID's presence that tp
// delivered (topic.presence), or of a name under nameKey. tp.dmu is held.
func notePresence(tp *topic, userID, version int64) {
	if tp.presence == nil {
		tp.presence = make(map[int64]int64)
	} else if _, ok := tp.presence[userID]; !ok && len(tp.presence) >= maxPresence {
		forgetOldPresence(tp.presence)
	}
	tp.presence[userID] = version
}

// maxRepeats bounds the repeats a topic notes (topic.repeats).
const maxRepeats = 16

// maxPresence bounds the users whose presence versions a topic notes
// (topic.presence): past it, the topic forgets the older half
// (forgetOldPresence) and takes the next news of each of those as it
// comes. A user has fewer friends (chat.Config.MaxFriends) unless
// friendships churn; a conversation's news comes one by one only up to
// chat.Config.OnlineMax present, but many may come and go.
const maxPresence = 4096

// forgetOldPresence drops from m, a topic.presence at maxPresence, the
// users whose news has the lower half of the versions: versions grow
// with time, so those are the users whose news is oldest. Names'
// versions, counts of renames, are low beside presence's, and go first;
// a rename then comes as it is told, as before any was delivered. Stale news
// crosses newer news only for a short while; forgetting the newest
// instead, as forgetting all would, lets stale news of a change just
// delivered undo it. It runs once per maxPresence/2 users added.
func forgetOldPresence(m map[int64]int64) {
	vs := make([]int64, 0, len(m))
	for _, v := range m {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	cut := vs[len(vs)/2-1] // at least half goes, equal versions and all
	maps.DeleteFunc(m, func(k int64, v int64) bool { return v <= cut && k != countKey })
}

// fanOut pushes ev to the clients of tp, unless it is a message that tp
// delivered as a repeat before (topic.repeats); a message is not pushed
// to a client a follow subscribed after it (topic.floors). tp.dmu is held.
func (h *Hub) fanOut(tp *topic, ev chat.Event) {
	if tp.repeats != nil && ev.Type == chat.EventMessage && ev.Message != nil {
		if _, ok := tp.repeats[ev.Message.Seq]; ok {
			delete(tp.repeats, ev.Message.Seq)
			if len(tp.repeats) == 0 {
				tp.repeats = nil
			}
			if ev.Revoke != 0 && tp.waits != nil {
				// Its repeat revoked; a removal that waits for this
				// publish (held back, as the repeat was not) goes now.
				h.endWaits(tp, ev.Message.Seq, true)
			}
			return
		}
	}
	tp.mu.RLock()
	it := &Item{Event: ev, Fanout: len(tp.clients)}
	held := tp.held != nil
	var below int64 // a message older than some clients' addition (topic.floors)
	if tp.floor > 0 && ev.Type == chat.EventMessage && ev.Message != nil && ev.Message.Seq <= tp.floor {
		below = ev.Message.Seq
	}
	odd := held || below > 0
	for _, c := range tp.clients {
		if odd && (below > 0 && tp.floors[c] >= below || held && tp.holdFor(c, it)) {
			continue
		}
		if !c.Push(it) {
			h.log.Debug("client evicted", "user", c.UserID, "reason", c.Reason().String())
		}
	}
	tp.mu.RUnlock()
	if ev.Revoke != 0 {
		// A removal that reached this node after the user, a member
		// again, opened the conversation here spares that client.
		var at chat.Mark
		if ev.Message != nil {
			at.Seq = ev.Message.Seq
		}
		h.revoke(tp, ev.Revoke, nil, at)
		if tp.waits != nil {
			h.endWaits(tp, at.Seq, true)
		}
	}
}

// awaitRemoval reports whether ev, an EventRemoved of the user of topic
// of from the conversation of topic ctp, waits for ctp to deliver the
// message that removed the user: ctp holds one back (pending), waiting
// for an earlier message. The broker delivers the message before the
// event (it was published first), but ctp may hold it back: another
// node's message before it was published late. Acting on ev at once
// would stop the user's connections before they got the message, or
// those before it, and give them the removed frame first. of.dmu is held.
func (h *Hub) awaitRemoval(ctp, of *topic, ev chat.Event) bool {
	if ctp == nil {
		return false
	}
	of.mu.RLock()
	var user int64
	if len(of.clients) > 0 {
		user = of.clients[0].UserID
	}
	of.mu.RUnlock()
	if user == 0 {
		return false // no connection to stop or tell
	}
	ctp.dmu.Lock()
	defer ctp.dmu.Unlock()
	if ctp.gone.Load() {
		return false
	}
	var at int64
	for seq, m := range ctp.pending {
		if m.Type == chat.EventMessage && m.Revoke == user && (at == 0 || seq < at) {
			at = seq
		}
	}
	if at == 0 {
		// Delivered, but a follow has yet to give it to the user's
		// connections (waiting).
		for seq, ws := range ctp.waits {
			if slices.ContainsFunc(ws, func(w waiting) bool { return w.of == nil && w.ev.UserID == user }) && (at == 0 || seq < at) {
				at = seq
			}
		}
	}
	if at == 0 {
		return false
	}
	if ctp.waits == nil {
		ctp.waits = make(map[int64][]waiting)
	}
	ctp.waits[at] = append(ctp.waits[at], waiting{of: of, ev: ev})
	of.parked = true
	return true
}

// unpark acts at once, in UserSeq order, on the EventRemoved of the user
// of tp that still wait on conversations' topics (awaitRemoval), before
// tp goes on to a later event of the user's log: the user's connections
// get their events in UserSeq order, and a session that got a later one
// first would fill the removal in from the store, ahead of the messages
// the revoke still waits for, which would then follow it. Those messages
// do not reach the user's connections, as when no removal waited. tp.dmu
// is held.
func (h *Hub) unpark(tp *topic) {
	tp.parked = false
	type parked struct {
		ctp *topic
		ev  chat.Event
	}
	var ps []parked
	for id := range tp.removals {
		ctp := h.topicOf(chat.ConvTopic(id))
		if id == 0 || ctp == nil {
			continue
		}
		ctp.dmu.Lock()
		for seq, ws := range ctp.waits {
			n := len(ws)
			ws = slices.DeleteFunc(ws, func(w waiting) bool {
				if w.of == tp {
					ps = append(ps, parked{ctp, w.ev})
					return true
				}
				return false
			})
			switch {
			case len(ws) == 0:
				delete(ctp.waits, seq)
			case len(ws) < n:
				ctp.waits[seq] = ws
			}
		}
		if len(ctp.waits) == 0 {
			ctp.waits = nil
		}
		ctp.dmu.Unlock()
	}
	slices.SortFunc(ps, func(a, b parked) int { return cmp.Compare(a.ev.UserSeq, b.ev.UserSeq) })
	for _, p := range ps {
		h.revoke(p.ctp, 0, tp, chat.Mark{UserSeq: p.ev.UserSeq})
		h.pushAll(tp, p.ev)
	}
}

// pushAll pushes ev to the clients of tp.
func (h *Hub) pushAll(tp *topic, ev chat.Event) {
	tp.mu.RLock()
	defer tp.mu.RUnlock()
	it := &Item{Event: ev, Fanout: len(tp.clients)}
	for _, c := range tp.clients {
		if !c.Push(it) {
			h.log.Debug("client evicted", "user", c.UserID, "reason", c.Reason().String())
		}
	}
}

// endWaits acts on the EventRemoved that wait in tp.waits for a message
// up to seq upTo, which tp has delivered (or, if not revoke, will never
// deliver: it went), as the user's topic would have: it revokes, then
// pushes the event to the user's clients. Those that wait for a follow's
// release (waiting) go on waiting for it, unless tp went. tp.dmu is held.
func (h *Hub) endWaits(tp *topic, upTo int64, revoke bool) {
	seqs := make([]int64, 0, len(tp.waits))
	for seq, ws := range tp.waits {
		if seq <= upTo && (!revoke || !slices.ContainsFunc(ws, func(w waiting) bool { return w.of == nil })) {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	for _, seq := range seqs {
		h.endWaitsAt(tp, seq, revoke)
	}
}

// endWaitsAt acts, as endWaits does, on the EventRemoved that wait in
// tp.waits at seq. tp.dmu is held.
func (h *Hub) endWaitsAt(tp *topic, seq int64, revoke bool) {
	for _, w := range tp.waits[seq] {
		if w.of == nil {
			continue
		}
		if revoke {
			h.revoke(tp, 0, w.of, chat.Mark{UserSeq: w.ev.UserSeq})
		}
		h.pushAll(w.of, w.ev)
	}
	delete(tp.waits, seq)
	if len(tp.waits) == 0 {
		tp.waits = nil
	}
}

// holdFor keeps it for c, and reports true, if c is held (catchUp). A
// hold that would outgrow c's outbox closes c as slow, as pushing it
// later would. tp.mu (to read) and tp.dmu are held.
func (tp *topic) holdFor(c *Client, it *Item) bool {
	hd := tp.held[c]
	if hd == nil {
		return false
	}
	switch {
	case c.Closed():
	case len(hd.items) >= c.limit:
		hd.items = nil
		c.Close(ReasonSlow)
	default:
		hd.items = append(hd.items, it)
	}
	return true
}

// SessionCheck returns those of ids, the sessions of a hub's clients,
// that have ended: signed out or expired. It may count the others as in
// use (chat.Service.OpenSessions): the hub asks only for the sessions
// of its clients that are open.
type SessionCheck func(ctx context.Context, ids []int64) ([]int64, error)

// CheckSessions makes the hub ask check, every interval, which of its
// clients' sessions have ended, and close their clients as a
// session_ended event would. That event is a broker's, which may lose it
// (a publish fails while Redis is unreachable): this bounds how long a
// signed-out session's connections stay open on a node that missed it.
// Only the first call counts; the checks end with Close.
func (h *Hub) CheckSessions(every time.Duration, check SessionCheck) {
	h.checks.Do(func() {
		go func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-h.stop:
					return
				case <-t.C:
					h.checkSessions(every, check)
				}
			}
		}()
	})
}

// checkSessions closes the clients whose session check reports ended:
// one call for every session of the hub's clients.
func (h *Hub) checkSessions(timeout time.Duration, check SessionCheck) {
	type userSession struct{ session, user int64 }
	h.mu.Lock()
	all := make([]userSession, 0, len(h.clients))
	for c := range h.clients {
		if c.SessionID != 0 && !c.Closed() {
			all = append(all, userSession{c.SessionID, c.UserID})
		}
	}
	h.mu.Unlock()
	if len(all) == 0 {
		return
	}
	slices.SortFunc(all, func(a, b userSession) int { return cmp.Compare(a.session, b.session) })
	all = slices.CompactFunc(all, func(a, b userSession) bool { return a.session == b.session })
	ids := make([]int64, len(all))
	for i, us := range all {
		ids[i] = us.session
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ended, err := check(ctx, ids)
	if err != nil {
		h.log.Warn("check sessions", "sessions", len(ids), "err", err)
		return
	}
	for _, id := range ended {
		if i, ok := slices.BinarySearch(ids, id); ok {
			u := all[i].user
			h.deliverAny(chat.UserTopic(u), chat.Event{Type: chat.EventSessionEnded, UserID: u, SessionID: id})
		}
	}
}

// Removals returns how many removals from conversations (EventRemoved)
// the topic of user userID has delivered to its clients so far. A client
// that subscribes to the groups it read compares it before the read and
// after the subscriptions: a removal in between found nothing to revoke.
func (h *Hub) Removals(userID int64) uint64 {
	tp := h.topicOf(chat.UserTopic(userID))
	if tp == nil {
		return 0
	}
	return tp.removed.Load()
}

// Spares reports whether c receives topic t in spite of a removal of its
// user from t's conversation logged at userSeq: c subscribed with
// SubscribeMember, or was followed on its user's addition (EventConversation),
// on a membership newer than the one that removal ended.
// A connection that the removal did not stop keeps the conversation open.
func (h *Hub) Spares(c *Client, t chat.Topic, userSeq int64) bool {
	tp := h.topicOf(t)
	if tp == nil || userSeq <= 0 {
		return false
	}
	tp.mu.RLock()
	defer tp.mu.RUnlock()
	return tp.clients.has(c) && tp.marks[c].UserSeq >= userSeq
}

// UserClients returns how many clients of user userID the hub holds.
func (h *Hub) UserClients(userID int64) int {
	tp := h.topicOf(chat.UserTopic(userID))
	if tp == nil {
		return 0
	}
	tp.mu.RLock()
	defer tp.mu.RUnlock()
	return len(tp.clients)
}

// topicOf returns topic t if this hub has it, else nil. It takes tmu
// only, not mu, so deliver may call it inside a broker callback.
func (h *Hub) topicOf(t chat.Topic) *topic {
	h.tmu.RLock()
	defer h.tmu.RUnlock()
	return h.topics[t]
}

// revoke stops tp (a conversation topic; nil is no-op) delivering to the
// clients of user userID, or, with of set, to the clients of topic of,
// but not to those whose mark (SubscribeMember) is at least at, the
// removal's number: its UserSeq, or its message's Seq, if not 0. It
// removes them from tp at once, so that nothing more reaches them, and
// leaves the bookkeeping (Unsubscribe, which may cancel a broker
// subscription and so must not run inside a broker callback) to a
// goroutine.
func (h *Hub) revoke(tp *topic, userID int64, of *topic, at chat.Mark) {
	if tp == nil {
		return
	}
	var gone []*Client
	if of != nil {
		of.mu.RLock()
		gone = append(gone, of.clients...)
		of.mu.RUnlock()
	}
	tp.mu.Lock()
	if of == nil {
		for _, c := range tp.clients {
			if c.UserID == userID {
				gone = append(gone, c)
			}
		}
	}
	if tp.marks != nil {
		gone = slices.DeleteFunc(gone, func(c *Client) bool { return covers(tp.marks[c], at) })
	}
	if of == nil && at.Seq > 0 && tp.held != nil {
		// The message that revokes them is the last of the
		// conversation to reach them, as it is for a client not held:
		// the follow that holds them gives them what came before, and
		// the user's removal waits for it (awaitRemoval). Only fanOut
		// revokes by a message: tp.dmu is held.
		cut := false
		for _, c := range gone {
			if hd := tp.held[c]; hd != nil {
				hd.cut, cut = at.Seq, true
			}
		}
		if cut {
			if tp.waits == nil {
				tp.waits = make(map[int64][]waiting)
			}
			tp.waits[at.Seq] = append(tp.waits[at.Seq], waiting{ev: chat.Event{UserID: userID}})
		}
	}
	tp.removeLocked(gone...)
	tp.mu.Unlock()
	h.revokeUnsubscribe(tp, gone)
}

// revokeUnsubscribe unsubscribes from conversation topic tp, in a
// goroutine, the clients gone that revoke or release took out of it,
// unless one was subscribed again since. The topic may have gone
// meanwhile, with its last other client, and come again: a client not
// in the topic there now follows it no more either.
func (h *Hub) revokeUnsubscribe(tp *topic, gone []*Client) {
	if len(gone) == 0 {
		return
	}
	go func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		now := h.topics[tp.name]
		for _, c := range gone {
			back := false // subscribed again since
			if now != nil {
				now.mu.RLock()
				back = now.clients.has(c)
				now.mu.RUnlock()
			}
			if !back {
				h.unsubscribeLocked(c, tp.name)
			}
		}
	}()
}

// covers reports whether mark m, a client's, is at or after removal at:
// the removal ended an earlier membership than the one m was made on.
func covers(m, at chat.Mark) bool {
	return at.UserSeq > 0 && m.UserSeq >= at.UserSeq || at.Seq > 0 && m.Seq >= at.Seq
}

// follow subscribes the clients of user topic tp to conversation id, from
// a goroutine: Subscribe may subscribe to the broker, which must not
// happen inside a broker callback. The subscriptions are marked with at,
// the user's addition (its UserSeq, and its message's seq): a removal
// numbered at or before it ended an earlier membership (SubscribeMember),
// and spares them. If tp delivers meanwhile a removal of the user from id
// that it does not spare, whose revoke may have run before these
// subscriptions, they are undone; a follow of a later addition, which
// may have found them subscribed, marked them newer, and the undo spares
// them. The messages after the addition that the group's topic
// delivered, or missed, before they were subscribed reach them from the
// store, ahead of what it delivers since (topic.catchFrom); those up to
// it, which the topic may deliver late, do not (topic.floors). An addition
// logged before a removal that tp has delivered already, or than those
// it no longer notes (pruneRemovals), is stale, and follows nothing.
// tp.dmu is held.
func (h *Hub) follow(tp *topic, id int64, at chat.Mark) {
	t := chat.ConvTopic(id)
	base := at.Seq
	tp.mu.RLock()
	cs := slices.Clone(tp.clients)
	tp.mu.RUnlock()
	before := tp.removals[id]
	if at.UserSeq > 0 && max(before.seq, tp.removals[0].seq) > at.UserSeq {
		// A removal logged after the addition was delivered first (two
		// nodes published them): the membership has ended already.
		return
	}
	if tp.removals == nil {
		tp.removals = make(map[int64]removal)
	}
	pin := before
	pin.follows++
	tp.removals[id] = pin // kept until the follow's last look (removed)
	// removed reports whether a removal since ended the addition's
	// membership (or may have: not logged), and what to revoke from;
	// the last call lets the entry go.
	removed := func(last bool) (bool, chat.Mark) {
		tp.dmu.Lock()
		defer tp.dmu.Unlock()
		r := tp.removals[id]
		if last {
			if r.follows--; r.n == 0 && r.follows == 0 {
				delete(tp.removals, id)
			} else {
				tp.removals[id] = r
			}
		}
		switch {
		case r.n == before.n:
			return false, chat.Mark{}
		case r.unlogged != before.unlogged:
			return true, chat.Mark{} // stops every client
		}
		end := chat.Mark{UserSeq: r.seq}
		return !covers(at, end), end
	}
	go func() {
		var fills []*topic
		held := make(map[*topic][]*hold) // one topic, unless it went and came back meanwhile
		for _, c := range cs {
			if gone, _ := removed(false); gone {
				break
			}
			ctp, what, hd, err := h.subscribe(c, t, at, base)
			if err != nil && !errors.Is(err, ErrClosed) {
				h.log.Warn("follow group", "topic", string(t), "err", err)
			}
			switch what {
			case catchFill:
				fills = append(fills, ctp)
			case catchHeld:
				held[ctp] = append(held[ctp], hd)
			}
		}
		gone, end := removed(true)
		if gone {
			h.revoke(h.topicOf(t), 0, tp, end)
		}
		for _, ftp := range fills { // whatever became of the follow: it set filling
			h.fillGap(ftp, base, true)
		}
		for htp, hs := range held {
			if gone { // nothing from the store; a client the revoke spared is let go
				h.release(htp, hs, base, base, 0)
			} else {
				h.catchUp(htp, hs, base)
			}
		}
	}()
}

// catchUp gives the clients that a follow subscribed to conversation
// topic tp, and held with hs (catchFrom), the messages after seq base that
// tp delivered before, from the store, a page at a time, then lets go
// what tp held for them meanwhile: all in seq order, each once. A client
// no longer held with its hold of hs (unsubscribed, closed, revoked
// otherwise than by a message of tp; and maybe held again by a later
// follow) gets no more of it; one that a message of tp revoked gets what
// came up to that message (hold.cut), unless subscribed again. If the
// store fails, the clients get what they were held for all the same, and
// see a gap, which they fill as after any other. If the store gives the
// user's removal, the clients get nothing after it (release).
func (h *Hub) catchUp(tp *topic, hs []*hold, base int64) {
	var until int64 // the store has to give what comes before
	tp.mu.RLock()
	for _, hd := range hs {
		if tp.holding(hd) {
			until = max(until, hd.from)
		}
	}
	tp.mu.RUnlock()
	after, removed := base, int64(0)
	for removed == 0 && after+1 < until {
		ctx, cancel := context.WithTimeout(context.Background(), fillTimeout)
		evs, err := h.fetch(ctx, tp.name, after)
		cancel()
		if err != nil {
			h.log.Warn("catch up a followed group from the store", "topic", string(tp.name), "after", after, "err", err)
			break
		}
		last := after
		tp.mu.RLock()
		for _, ev := range evs {
			if ev.Message == nil || ev.Message.Seq <= last {
				continue
			}
			last = ev.Message.Seq
			var it *Item
			for _, hd := range hs {
				if tp.holding(hd) && last < hd.from {
					if it == nil {
						it = &Item{Event: ev, Fanout: len(hs)}
					}
					hd.c.Push(it)
				}
			}
			if ev.Revoke != 0 && ev.Revoke == hs[0].c.UserID {
				// Removed again: what follows is not theirs, unless the
				// user was added again, which they learn through sync.
				removed = last
				break
			}
		}
		tp.mu.RUnlock()
		if last <= after {
			break
		}
		after = last
	}
	h.release(tp, hs, base, after, removed)
}

// release ends the holds hs on tp, those of them it still has, whose messages from base to after
// (at most) came from the store, and pushes them what tp held for them.
// If the store gave the user's removal at seq removed (not 0), what tp
// held from the first message after it on is dropped instead, and the
// client is revoked, as the removal's revoke would have done, had the
// topic delivered the removal with the client subscribed: unless the
// client's mark is newer than the removal (revoke spares it): then only
// what it held after the removal up to the client's floor (the later
// addition) is dropped. The user topic's EventRemoved may not do it: the
// removal may have been logged before the addition (a log written before
// the stores logged an addition in its transaction, as they log a
// removal), and then delivered first. If the
// user was added again, the follow of that addition subscribes the
// client anew.
func (h *Hub) release(tp *topic, hs []*hold, base, after, removed int64) {
	tp.dmu.Lock() // no delivery to them in between
	tp.mu.Lock()
	holds := make([]*hold, 0, len(hs))
	cut := make([]bool, 0, len(hs))
	floors := make([]int64, 0, len(hs))
	var gone []*Client // cut: revoked
	var cuts []int64   // seqs of the messages that revoked clients of hs while held
	for _, hd := range hs {
		if hd.cut > 0 && !slices.Contains(cuts, hd.cut) {
			cuts = append(cuts, hd.cut)
		}
		if !tp.holding(hd) {
			continue
		}
		holds = append(holds, hd)
		floors = append(floors, tp.floors[hd.c])
		cut = append(cut, removed > 0 && !covers(tp.marks[hd.c], chat.Mark{Seq: removed}))
		if tp.held[hd.c] == hd {
			delete(tp.held, hd.c)
		}
		if cut[len(cut)-1] {
			gone = append(gone, hd.c)
		}
	}
	if len(tp.held) == 0 {
		tp.held = nil
	}
	tp.removeLocked(gone...)
	// The pushes are made with tp.mu held, as a fan-out's are: an
	// Unsubscribe or a revoke of their client that returns is followed by
	// none of them.
	for i, hd := range holds {
		c := hd.c
		pushed := min(after, hd.from-1) // from the store, through
		for _, it := range hd.items {
			ev := it.Event
			isMsg := ev.Type == chat.EventMessage && ev.Message != nil
			if cut[i] && isMsg && ev.Message.Seq > removed {
				break // not the user's: the removal came before
			}
			if isMsg && removed > 0 && removed < ev.Message.Seq && ev.Message.Seq <= floors[i] {
				// Not the user's either: between the removal and the
				// later addition whose follow spared the client (its
				// floor), held before that follow raised the floor.
				continue
			}
			if isMsg && base < ev.Message.Seq && ev.Message.Seq <= pushed {
				continue // a late publish it had from the store
			}
			c.Push(it)
		}
	}
	tp.mu.Unlock()
	h.revokeUnsubscribe(tp, gone)
	for _, seq := range cuts { // the removals that waited for these
		h.endWaitsAt(tp, seq, true)
	}
	tp.dmu.Unlock()
}

// Seen tells the hub that the clients of topic t have its messages up to
// seq (one just read it from the store, after subscribing). If t has
// delivered no message yet, it delivers from seq+1 on, in order, instead of
// starting at whichever publish comes first.
func (h *Hub) Seen(t chat.Topic, seq int64) {
	tp := h.topicOf(t)
	if tp == nil {
		return
	}
	tp.dmu.Lock()
	defer tp.dmu.Unlock()
	tp.startAfter(seq)
}

// startAfter makes tp, if it has delivered no message yet, deliver from
// seq+1 on, and reports whether it did. tp.dmu is held.
func (tp *topic) startAfter(seq int64) bool {
	if tp.next != 0 {
		return false
	}
	tp.next, tp.first = seq+1, seq+1
	return true
}

// Fetch returns the events of topic t after position after: a
// conversation's messages with seq > after, or a user's logged events with
// UserSeq > after, in order, or the first page of them. With after < 0 it
// returns the newest event only.
type Fetch func(ctx context.Context, t chat.Topic, after int64) ([]chat.Event, error)

// resyncWorkers bounds the store queries of one Resync.
const resyncWorkers = 4

// Resync delivers, from the store, what the broker may have dropped while
// it was disconnected (chat.Broker implementations that can lose events
// announce their return). Each topic gets what follows the last event it
// delivered; a topic that delivered nothing gets its newest event, which
// shows clients a gap they then fill themselves (docs/protocol.md,
// "Staying in sync"). Clients drop what they already have.
func (h *Hub) Resync(ctx context.Context) {
	fetch := h.fetch
	if fetch == nil {
		return
	}
	h.tmu.RLock()
	tps := make([]*topic, 0, len(h.topics))
	for _, tp := range h.topics {
		tps = append(tps, tp)
	}
	h.tmu.RUnlock()
	work := make(chan *topic)
	var wg sync.WaitGroup
	for range min(resyncWorkers, len(tps)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tp := range work {
				h.resyncTopic(ctx, tp, fetch)
			}
		}()
	}
	for _, tp := range tps {
		work <- tp
	}
	close(work)
	wg.Wait()
}

// resyncAttempts bounds the store queries of a topic's resync that fail
// in a row; the first retry waits resyncRetryWait, each next one twice as
// long (about 25 s in all).
const (
	resyncAttempts  = 8
	resyncRetryWait = 200 * time.Millisecond
)

// resyncTopic delivers what tp missed, a page at a time: fetch answers
// with at most a page (chat.Service.Missed: Config.HistoryLimit), and
// nothing else would show clients a tail they lack once the conversation
// goes quiet. It stops when a page takes the topic no further: it has
// caught up with the store, and the broker delivers what comes next. A
// query that fails is tried again, for the same reason.
func (h *Hub) resyncTopic(ctx context.Context, tp *topic, fetch Fetch) {
	after := tp.position()
	wait, failed := resyncRetryWait, 0
	for {
		evs, err := fetch(ctx, tp.name, after)
		if err != nil {
			failed++
			if failed >= resyncAttempts || ctx.Err() != nil {
				h.log.Warn("resync", "topic", string(tp.name), "attempts", failed, "err", err)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait *= 2
			continue
		}
		failed, wait = 0, resyncRetryWait
		if len(evs) == 0 || h.topicOf(tp.name) != tp {
			return // caught up, or nobody listens any more
		}
		for _, ev := range evs {
			h.deliver(tp, ev)
		}
		pos := tp.position()
		if pos <= after {
			return
		}
		after = pos
	}
}

// position returns what tp delivered last: the seq of its newest message,
// or else the UserSeq of its newest logged event; -1 if neither.
func (tp *topic) position() int64 {
	tp.dmu.Lock()
	defer tp.dmu.Unlock()
	switch {
	case tp.next > 0:
		return tp.next - 1
	case tp.user > 0:
		return tp.user
	}
	return -1
}

// Close closes every client with ReasonShutdown, refuses new ones, and
// waits until their connections have unregistered or ctx ends.
func (h *Hub) Close(ctx context.Context) error {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.stop)
		if len(h.clients) == 0 {
			close(h.empty)
		}
	}
	for c := range h.clients {
		c.Close(ReasonShutdown)
	}
	h.mu.Unlock()
	select {
	case <-h.empty:
		if h.cancelAll != nil { // no topic is left to deliver to
			h.cancelAll()
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("hub close: %w", ctx.Err())
	}
}

// Stopping is closed once Close has begun.
func (h *Hub) Stopping() <-chan struct{} { return h.stop }

// Len reports the number of registered clients.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}
