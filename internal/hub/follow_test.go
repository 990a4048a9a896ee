package hub_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
)

// TestFollowAfterRemoved: a user added to group 5 and removed from it
// in quick succession (or both replayed by Resync after a broker outage)
// must not end up following the group; the follow of the add runs in a
// goroutine, after the removal's revoke found nothing to revoke.
func TestFollowAfterRemoved(t *testing.T) {
	leaks := 0
	const runs = 20
	for i := range runs {
		h, b := newHub(t)
		user := int64(100 + i)
		c := mustRegister(t, h, user, 1, 64)
		publish(t, b, chat.UserTopic(user), chat.Event{Type: chat.EventConversation, ConvID: 5, ConvKind: chat.ConvGroup, UserSeq: 1,
			Message: &chat.Message{ConvID: 5, Seq: 2, Kind: chat.KindAdded, TargetID: user}})
		publish(t, b, chat.UserTopic(user), chat.Event{Type: chat.EventRemoved, ConvID: 5, Reason: "removed", UserSeq: 2})
		time.Sleep(20 * time.Millisecond) // the hub's goroutines run
		c.Next(nil)
		publish(t, b, chat.ConvTopic(5), chat.Event{Type: chat.EventTyping, ConvID: 5, User: &chat.User{ID: 1}})
		publish(t, b, chat.ConvTopic(5), msg(5, 4))
		if got := queuedOf(c); len(got) > 0 {
			leaks++
			if leaks == 1 {
				t.Errorf("run %d: removed user received group 5 events: %s", i, fmt.Sprint(got))
			}
		}
		h.Unregister(c)
	}
	if leaks > 0 {
		t.Errorf("the removed user went on receiving the group in %d of %d runs", leaks, runs)
	}
}

// TestSubscribeAgainAfterRevokedTopicWent: a client whose user was
// removed from conversation 5 is subscribed to it again (the user was
// added back) after the topic went meanwhile, its last other client
// having left before the removal's bookkeeping ran: it receives the
// conversation again.
func TestSubscribeAgainAfterRevokedTopicWent(t *testing.T) {
	const runs = 20
	lost := 0
	for i := range runs {
		h, b := newHub(t)
		gone := mustRegister(t, h, 2, 2, 16)
		other := mustRegister(t, h, 1, 1, 16)
		for _, c := range []*hub.Client{gone, other} {
			if err := h.Subscribe(c, chat.ConvTopic(5)); err != nil {
				t.Fatal(err)
			}
		}
		publish(t, b, chat.UserTopic(2), chat.Event{Type: chat.EventRemoved, ConvID: 5, Reason: "removed"})
		h.Unsubscribe(other, chat.ConvTopic(5))
		for j := 0; b.live.Load() != 2 && j < 5000; j++ { // the user topics only; 5 s at most
			time.Sleep(time.Millisecond)
		}
		gone.Next(nil)
		if err := h.Subscribe(gone, chat.ConvTopic(5)); err != nil {
			t.Fatal(err)
		}
		publish(t, b, chat.ConvTopic(5), msg(5, 1))
		if got := fmt.Sprint(queuedOf(gone)); got != "[1]" {
			lost++
			if lost == 1 {
				t.Errorf("run %d: client subscribed again got %s; want [1]", i, got)
			}
		}
		h.Unregister(gone)
		h.Unregister(other)
	}
	if lost > 0 {
		t.Errorf("the client subscribed again received nothing in %d of %d runs", lost, runs)
	}
}

// TestFollowCatchesUp: a group message published as a user is added to
// the group (between the added event and the hub's subscription of the
// user's connections, which runs in a goroutine) reaches them all the
// same, from the store: when another connection here already follows the
// group, and when none does (the node had no subscription to it yet).
func TestFollowCatchesUp(t *testing.T) {
	const runs = 10
	for _, others := range []bool{true, false} {
		lost := 0
		for i := range runs {
			h, b := newHub(t)
			stored := []chat.Event{msg(5, 1), msg(5, 2), msg(5, 3)}
			h.UseStore(func(_ context.Context, tp chat.Topic, after int64) ([]chat.Event, error) {
				if tp != chat.ConvTopic(5) {
					return nil, fmt.Errorf("fetch %s; want conversation 5", tp)
				}
				return slices.DeleteFunc(slices.Clone(stored), func(ev chat.Event) bool { return ev.Message.Seq <= after }), nil
			})
			if others {
				other := mustRegister(t, h, 1, 1, 16)
				if err := h.Subscribe(other, chat.ConvTopic(5)); err != nil {
					t.Fatal(err)
				}
				publish(t, b, chat.ConvTopic(5), msg(5, 1))
			}
			user := int64(100 + i)
			c := mustRegister(t, h, user, 2, 16)
			publish(t, b, chat.UserTopic(user), chat.Event{Type: chat.EventConversation, ConvID: 5, ConvKind: chat.ConvGroup, UserSeq: 1,
				Message: &chat.Message{ConvID: 5, Seq: 2, Kind: chat.KindAdded, TargetID: user}})
			publish(t, b, chat.ConvTopic(5), msg(5, 2))
			publish(t, b, chat.ConvTopic(5), msg(5, 3)) // before the subscription, most likely
			var got []string
			// The catch-up runs in a goroutine, which a loaded -race run
			// may leave waiting for more than a second.
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !slices.Contains(got, "3"); {
				time.Sleep(5 * time.Millisecond)
				got = append(got, queuedOf(c)...)
			}
			if !slices.Contains(got, "3") {
				lost++
				if lost == 1 {
					t.Errorf("others following: %v; run %d: the user added got %v; want seq 3", others, i, got)
				}
			}
			h.Unregister(c)
		}
		if lost > 0 {
			t.Errorf("others following: %v: the message after the add was missed in %d of %d runs", others, lost, runs)
		}
	}
}

// TestStaleRemovedSparesNewerOpen: a removal of user 2 from conversation
// 5 logged at UserSeq 5 reaches the hub after a connection opened the
// conversation on a membership checked with the user's log at 7 (the user
// entered it again meanwhile; over Redis the removal may come late): it
// stops the user's connections subscribed before, or on an older check,
// and not that one. A later removal, logged after its check, stops it.
func TestStaleRemovedSparesNewerOpen(t *testing.T) {
	h, b := newHub(t)
	followed := mustRegister(t, h, 2, 1, 16) // subscribed with no check of its own
	older := mustRegister(t, h, 2, 2, 16)
	newer := mustRegister(t, h, 2, 3, 16)
	t5 := chat.ConvTopic(5)
	if err := h.Subscribe(followed, t5); err != nil {
		t.Fatal(err)
	}
	if err := h.SubscribeMember(older, t5, chat.Mark{UserSeq: 4}); err != nil {
		t.Fatal(err)
	}
	if err := h.SubscribeMember(newer, t5, chat.Mark{UserSeq: 7}); err != nil {
		t.Fatal(err)
	}
	publish(t, b, chat.UserTopic(2), chat.Event{Type: chat.EventRemoved, ConvID: 5, Reason: "left", UserSeq: 5})
	publish(t, b, t5, msg(5, 1))
	for _, c := range []*hub.Client{followed, older} {
		if got := fmt.Sprint(queuedOf(c)); got != "[removed]" {
			t.Errorf("client subscribed before the removal got %s; want [removed]", got)
		}
		if h.Spares(c, t5, 5) {
			t.Errorf("Spares(client subscribed before, removal 5) = true; want false")
		}
	}
	if got := fmt.Sprint(queuedOf(newer)); got != "[removed 1]" {
		t.Errorf("client subscribed on the newer membership got %s; want [removed 1]", got)
	}
	if !h.Spares(newer, t5, 5) {
		t.Errorf("Spares(client subscribed on the newer membership, removal 5) = false; want true")
	}

	publish(t, b, chat.UserTopic(2), chat.Event{Type: chat.EventRemoved, ConvID: 5, Reason: "left", UserSeq: 8})
	// 6 and 7 are not published: the topic delivers 8 after reorderWait.
	for deadline := time.Now().Add(5 * time.Second); h.Removals(2) < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the removal logged at 8 was not delivered within 5s")
		}
	}
	publish(t, b, t5, msg(5, 2))
	if got := fmt.Sprint(queuedOf(newer)); got != "[removed]" {
		t.Errorf("after a removal logged after its check, the client got %s; want [removed]", got)
	}
	if h.Spares(newer, t5, 8) {
		t.Errorf("Spares(client, removal 8) = true; want false")
	}
}

// TestRemovedUnloggedStopsAll: a removal that could not be logged
// (UserSeq 0) tells nothing of its age: it stops every connection.
func TestRemovedUnloggedStopsAll(t *testing.T) {
	h, b := newHub(t)
	c := mustRegister(t, h, 2, 1, 16)
	if err := h.SubscribeMember(c, chat.ConvTopic(5), chat.Mark{UserSeq: 7}); err != nil {
		t.Fatal(err)
	}
	publish(t, b, chat.UserTopic(2), chat.Event{Type: chat.EventRemoved, ConvID: 5, Reason: "left"})
	publish(t, b, chat.ConvTopic(5), msg(5, 1))
	if got := fmt.Sprint(queuedOf(c)); got != "[removed]" {
		t.Errorf("client got %s; want [removed]", got)
	}
}

// gateWaker blocks the first Wake until release is closed, having closed
// entered: the fan-out that woke it holds its topic's locks meanwhile.
type gateWaker struct {
	once             sync.Once
	entered, release chan struct{}
}

func newGateWaker() *gateWaker {
	return &gateWaker{entered: make(chan struct{}), release: make(chan struct{})}
}

func (w *gateWaker) Wake(*hub.Client) {
	w.once.Do(func() {
		close(w.entered)
		<-w.release
	})
}

// waitGoroutines waits, 5 s at most, until no goroutine runs a function
// whose name contains one of fns.
func waitGoroutines(t *testing.T, fns ...string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(5 * time.Second); ; {
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !slices.ContainsFunc(fns, func(fn string) bool { return strings.Contains(stacks, fn) }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines of %v still running after 5s:\n%s", fns, stacks)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFollowUndoneSparesNewerOpen: user 2 was added to group 5 (logged at
// 5), removed (6) and added again, and a connection here opened the group
// on that last membership (its log at 7) before this node received the
// first two (late, over Redis). The removal reaches the hub while the
// add's follow is under way, which undoes the follow: that must leave the
// connection subscribed, as the removal itself does. The follow is held
// in its subscription, behind a fan-out of the group that a client's
// Waker blocks, until the removal has been counted: the undo always runs.
func TestFollowUndoneSparesNewerOpen(t *testing.T) {
	h, b := newHub(t)
	t5 := chat.ConvTopic(5)
	gate := newGateWaker()
	other, err := h.Register(1, 1, 64, gate) // another member, in the group
	if err != nil {
		t.Fatal(err)
	}
	opened := mustRegister(t, h, 2, 2, 64)
	idle := mustRegister(t, h, 2, 3, 64) // the group not open: the undo stops it
	if err := h.Subscribe(other, t5); err != nil {
		t.Fatal(err)
	}
	if err := h.SubscribeMember(opened, t5, chat.Mark{UserSeq: 7}); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	defer func() {
		select {
		case <-gate.release:
		default:
			close(gate.release)
		}
		wg.Wait()
	}()
	wg.Add(1)
	go func() { defer wg.Done(); publish(t, b, t5, msg(5, 1)) }()
	select {
	case <-gate.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the fan-out of group 5 did not wake its client within 5s")
	}
	publish(t, b, chat.UserTopic(2), chat.Event{Type: chat.EventConversation, ConvID: 5, ConvKind: chat.ConvGroup, UserSeq: 5,
		Message: &chat.Message{ConvID: 5, Seq: 1, Kind: chat.KindAdded, TargetID: 2}})
	wg.Add(1)
	go func() {
		defer wg.Done()
		publish(t, b, chat.UserTopic(2), chat.Event{Type: chat.EventRemoved, ConvID: 5, Reason: "removed", UserSeq: 6})
	}()
	for deadline := time.Now().Add(5 * time.Second); h.Removals(2) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the removal was not counted within 5s")
		}
		time.Sleep(time.Millisecond)
	}
	close(gate.release)
	wg.Wait()
	waitGoroutines(t, "(*Hub).follow", "(*Hub).revoke")

	opened.Next(nil)
	idle.Next(nil)
	publish(t, b, t5, msg(5, 2))
	if got := fmt.Sprint(queuedOf(opened)); got != "[2]" {
		t.Errorf("connection that opened the group on the newer membership got %s; want [2]", got)
	}
	if !h.Spares(opened, t5, 6) {
		t.Errorf("Spares(opened, removal 6) = false; want true")
	}
	if got := queuedOf(idle); len(got) > 0 {
		t.Errorf("connection of the removed user with the group not open got %v; want nothing", got)
	}
}

// TestStaleRevokeSparesNewerOpen: the group message that removes user 2
// from conversation 5 (seq 4, with Revoke) reaches the hub after a
// connection opened the conversation on a membership read with the
// conversation at seq 5 (the user was added again meanwhile; over Redis
// the message may come late): it stops the user's connections subscribed
// before, or on an older read, and not that one. A later removal stops it.
func TestStaleRevokeSparesNewerOpen(t *testing.T) {
	h, b := newHub(t)
	followed := mustRegister(t, h, 2, 1, 16)
	older := mustRegister(t, h, 2, 2, 16)
	newer := mustRegister(t, h, 2, 3, 16)
	t5 := chat.ConvTopic(5)
	if err := h.Subscribe(followed, t5); err != nil {
		t.Fatal(err)
	}
	if err := h.SubscribeMember(older, t5, chat.Mark{UserSeq: 1, Seq: 3}); err != nil {
		t.Fatal(err)
	}
	if err := h.SubscribeMember(newer, t5, chat.Mark{UserSeq: 3, Seq: 5}); err != nil {
		t.Fatal(err)
	}
	removal := func(seq int64) chat.Event {
		ev := msg(5, seq)
		ev.Message.Kind, ev.Message.TargetID, ev.Revoke = chat.KindRemoved, 2, 2
		return ev
	}
	publish(t, b, t5, msg(5, 3))
	publish(t, b, t5, removal(4))
	publish(t, b, t5, msg(5, 5))
	for _, c := range []*hub.Client{followed, older} {
		if got := fmt.Sprint(queuedOf(c)); got != "[3 4]" {
			t.Errorf("client subscribed before the removal got %s; want [3 4]", got)
		}
	}
	if got := fmt.Sprint(queuedOf(newer)); got != "[3 4 5]" {
		t.Errorf("client subscribed on the newer membership got %s; want [3 4 5]", got)
	}
	publish(t, b, t5, removal(6))
	publish(t, b, t5, msg(5, 7))
	if got := fmt.Sprint(queuedOf(newer)); got != "[6]" {
		t.Errorf("after a removal numbered after its read, the client got %s; want [6]", got)
	}
}

// blockingStore is a store of conversation 5's messages whose fetches
// after the user's addition wait, having closed entered, until release
// is closed (5 s at most); err, if set, is what they then return.
type blockingStore struct {
	stored           []chat.Event
	page             int // at most this many events a fetch; 0: all
	err              error
	entered, release chan struct{}
	once             sync.Once
	fetches          atomic.Int64
}

func newBlockingStore(last int64) *blockingStore {
	s := &blockingStore{entered: make(chan struct{}), release: make(chan struct{})}
	for seq := int64(1); seq <= last; seq++ {
		s.stored = append(s.stored, msg(5, seq))
	}
	return s
}

func (s *blockingStore) fetch(ctx context.Context, tp chat.Topic, after int64) ([]chat.Event, error) {
	if tp != chat.ConvTopic(5) {
		return nil, fmt.Errorf("fetch %s; want conversation 5", tp)
	}
	s.fetches.Add(1)
	s.once.Do(func() { close(s.entered) })
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(5 * time.Second):
		return nil, errors.New("fetch not released within 5s")
	}
	if s.err != nil {
		return nil, s.err
	}
	evs := slices.DeleteFunc(slices.Clone(s.stored), func(ev chat.Event) bool { return ev.Message.Seq <= after })
	if s.page > 0 && len(evs) > s.page {
		evs = evs[:s.page]
	}
	return evs, nil
}

// convSeqs returns the seqs of the conversation messages queued for c.
func convSeqs(c *hub.Client) []int64 {
	var out []int64
	for _, it := range c.Next(nil) {
		if it.Event.Type == chat.EventMessage && it.Event.Message != nil {
			out = append(out, it.Event.Message.Seq)
		}
	}
	return out
}

// followWhileFetching adds user 100 (two clients, c and c2) to group 5 at seq 2,
// which another client here follows and has received up to seq 4, and
// while the follow's read of the store is under way publishes seq 5, then
// calls during (if not nil). It returns c and c2, each with the messages
// it received by then.
func followWhileFetching(t *testing.T, s *blockingStore, during func(h *hub.Hub, b chat.Broker, c, other *hub.Client)) (c, c2 *hub.Client, early, early2 []int64) {
	t.Helper()
	h, b := newHub(t)
	h.UseStore(s.fetch)
	t5 := chat.ConvTopic(5)
	other := mustRegister(t, h, 1, 1, 64)
	if err := h.Subscribe(other, t5); err != nil {
		t.Fatal(err)
	}
	for seq := int64(1); seq <= 4; seq++ {
		publish(t, b, t5, msg(5, seq))
	}
	c = mustRegister(t, h, 100, 2, 64)
	c2 = mustRegister(t, h, 100, 3, 64)
	publish(t, b, chat.UserTopic(100), chat.Event{Type: chat.EventConversation, ConvID: 5, ConvKind: chat.ConvGroup, UserSeq: 1,
		Message: &chat.Message{ConvID: 5, Seq: 2, Kind: chat.KindAdded, TargetID: 100}})
	select {
	case <-s.entered:
	case <-time.After(5 * time.Second):
		close(s.release)
		t.Fatal("the follow did not read the store within 5s")
	}
	publish(t, b, t5, msg(5, 5))
	if got := fmt.Sprint(convSeqs(other)); got != "[1 2 3 4 5]" {
		t.Errorf("the other member got %s while the new one caught up; want [1 2 3 4 5]", got)
	}
	if during != nil {
		during(h, b, c, other)
	}
	early, early2 = convSeqs(c), convSeqs(c2)
	close(s.release)
	t.Cleanup(func() { h.Unregister(c); h.Unregister(c2); h.Unregister(other) })
	return c, c2, early, early2
}

// collectSeqs gathers the conversation messages queued for c until it
// has want of them, or 5 s have passed, and then what a little longer
// brings (duplicates, if any).
func collectSeqs(c *hub.Client, got []int64, want int) []int64 {
	for deadline := time.Now().Add(5 * time.Second); len(got) < want && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		got = append(got, convSeqs(c)...)
	}
	time.Sleep(20 * time.Millisecond)
	return append(got, convSeqs(c)...)
}

// TestFollowCatchUpInOrder: a user added to group 5 while connected
// receives the messages after the addition in seq order, each once:
// those the group's topic delivered before the user's connection was
// subscribed come from the store, and the one published live while that
// read was under way waits for them.
func TestFollowCatchUpInOrder(t *testing.T) {
	for _, page := range []int{0, 1} {
		t.Run(fmt.Sprintf("page=%d", page), func(t *testing.T) {
			s := newBlockingStore(5)
			s.page = page
			c, c2, early, early2 := followWhileFetching(t, s, nil)
			if got := fmt.Sprint(collectSeqs(c, early, 3)); got != "[3 4 5]" {
				t.Errorf("the user added at seq 2 got %s; want [3 4 5]", got)
			}
			if got := fmt.Sprint(collectSeqs(c2, early2, 3)); got != "[3 4 5]" {
				t.Errorf("the user's other connection got %s; want [3 4 5]", got)
			}
		})
	}
}

// TestFollowCatchUpFetchFails: the follow's read of the store fails: the
// user's connection still receives what the topic delivers from its
// subscription on, in order, and sees the gap before it (which a client
// fills with sync).
func TestFollowCatchUpFetchFails(t *testing.T) {
	s := newBlockingStore(5)
	s.err = errors.New("store down")
	c, _, early, _ := followWhileFetching(t, s, nil)
	if got := fmt.Sprint(collectSeqs(c, early, 1)); got != "[5]" {
		t.Errorf("the user added at seq 2 got %s; want [5]", got)
	}
}

// TestFollowCatchUpRemoved: the user added to group 5 is removed from it
// while the follow reads the store: its connection receives no message of
// the group after the removal, from the store or live.
func TestFollowCatchUpRemoved(t *testing.T) {
	s := newBlockingStore(5)
	var before int
	c, _, early, _ := followWhileFetching(t, s, func(h *hub.Hub, b chat.Broker, c, _ *hub.Client) {
		publish(t, b, chat.UserTopic(100), chat.Event{Type: chat.EventRemoved, ConvID: 5, Reason: "removed", UserSeq: 2})
		before = len(convSeqs(c)) // and the removed event
	})
	if before > 0 || len(early) > 0 {
		t.Fatalf("the user added got %d messages before its read of the store ended", before+len(early))
	}
	waitGoroutines(t, "(*Hub).follow", "(*Hub).catchUp")
	if got := convSeqs(c); len(got) > 0 {
		t.Errorf("the user removed while it caught up got %v after the removal; want nothing", got)
	}
}

// TestFollowCatchUpBounded: what the topic holds back for a connection
// while it catches up is bounded by its outbox: past that, the connection
// is closed as too slow (it will resync), and the others go on.
func TestFollowCatchUpBounded(t *testing.T) {
	s := newBlockingStore(5)
	c, _, _, _ := followWhileFetching(t, s, func(h *hub.Hub, b chat.Broker, c, other *hub.Client) {
		for seq := int64(6); seq <= 68; seq++ { // 64 held, with 5
			publish(t, b, chat.ConvTopic(5), msg(5, seq))
			other.Next(nil)
		}
		if c.Closed() {
			t.Errorf("the connection was closed with its outbox's worth held")
		}
		publish(t, b, chat.ConvTopic(5), msg(5, 69))
		if got := fmt.Sprint(convSeqs(other)); got != "[69]" {
			t.Errorf("the other member got %s; want [69]", got)
		}
	})
	if got := c.Reason(); got != hub.ReasonSlow {
		t.Errorf("held past its outbox, the connection was closed for %v; want slow", got)
	}
}

// TestFollowAfterRepeat: the group's topic here had delivered nothing
// but a repeat of seq 3 (chat.Event.Repeat) when a user added at seq 2
// is followed: the user's connection, which did not get that repeat,
// receives 3 from the store.
func TestFollowAfterRepeat(t *testing.T) {
	h, b := newHub(t)
	stored := []chat.Event{msg(5, 1), msg(5, 2), msg(5, 3)}
	h.UseStore(func(_ context.Context, tp chat.Topic, after int64) ([]chat.Event, error) {
		if tp != chat.ConvTopic(5) {
			return nil, fmt.Errorf("fetch %s; want conversation 5", tp)
		}
		return slices.DeleteFunc(slices.Clone(stored), func(ev chat.Event) bool { return ev.Message.Seq <= after }), nil
	})
	other := mustRegister(t, h, 1, 1, 16)
	if err := h.Subscribe(other, chat.ConvTopic(5)); err != nil {
		t.Fatal(err)
	}
	again := msg(5, 3)
	again.Repeat = true
	publish(t, b, chat.ConvTopic(5), again)
	if got := fmt.Sprint(convSeqs(other)); got != "[3]" {
		t.Fatalf("the member following got %s; want [3]", got)
	}
	c := mustRegister(t, h, 100, 2, 16)
	publish(t, b, chat.UserTopic(100), chat.Event{Type: chat.EventConversation, ConvID: 5, ConvKind: chat.ConvGroup, UserSeq: 1,
		Message: &chat.Message{ConvID: 5, Seq: 2, Kind: chat.KindAdded, TargetID: 100}})
	waitGoroutines(t, "(*Hub).follow")
	if got := fmt.Sprint(convSeqs(c)); got != "[3]" {
		t.Errorf("the user added at seq 2 got %s; want [3]", got)
	}
	h.Unregister(c)
	h.Unregister(other)
}

// pagedStore is a store of conversation 5's messages 1..last that
// answers a page of at most page of them, as chat.Service.Missed does.
func pagedStore(last, page int64, fetches *atomic.Int64) hub.Fetch {
	return func(_ context.Context, tp chat.Topic, after int64) ([]chat.Event, error) {
		if tp != chat.ConvTopic(5) {
			return nil, fmt.Errorf("fetch %s; want conversation 5", tp)
		}
		fetches.Add(1)
		var evs []chat.Event
		for seq := max(after, 0) + 1; seq <= last && int64(len(evs)) < page; seq++ {
			evs = append(evs, msg(5, seq))
		}
		return evs, nil
	}
}

// TestFollowFillPagesThrough: a user is added to group 5 at seq 2 while
// no connection here follows the group, and more than a page of messages
// follows the addition before the user's connection is subscribed: the
// fill reads page after page, so that the connection gets them all
// although the conversation then goes quiet.
func TestFollowFillPagesThrough(t *testing.T) {
	const page, last = 100, 250
	h, b := newHub(t)
	var fetches atomic.Int64
	h.UseStore(pagedStore(last, page, &fetches))
	c := mustRegister(t, h, 100, 2, 2*last)
	publish(t, b, chat.UserTopic(100), chat.Event{Type: chat.EventConversation, ConvID: 5, ConvKind: chat.ConvGroup, UserSeq: 1,
		Message: &chat.Message{ConvID: 5, Seq: 2, Kind: chat.KindAdded, TargetID: 100}})
	waitGoroutines(t, "(*Hub).follow", "(*Hub).fillGap")
	got := convSeqs(c)
	var want []int64
	for seq := int64(3); seq <= last; seq++ {
		want = append(want, seq)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the user added at seq 2 got %d messages, %v … %v; want seqs 3..%d", len(got), got[:min(3, len(got))], got[max(0, len(got)-3):], last)
	}
	if n := fetches.Load(); n > 4 {
		t.Errorf("%d fetches; want at most 4 (3 pages and an empty one)", n)
	}
	h.Unregister(c)
}

// TestGapFillPagesThrough: a topic waits for more than a page of
// messages before an early one, none of which the broker delivers: the
// fill reads page after page up to it, and then reads no more.
func TestGapFillPagesThrough(t *testing.T) {
	const page, last = 100, 250
	h, b := newHub(t)
	var fetches atomic.Int64
	h.UseStore(pagedStore(last, page, &fetches))
	c := mustRegister(t, h, 0, 0, 2*last)
	if err := h.Subscribe(c, chat.ConvTopic(5)); err != nil {
		t.Fatal(err)
	}
	publish(t, b, chat.ConvTopic(5), msg(5, 1))
	publish(t, b, chat.ConvTopic(5), msg(5, last)) // 2..249 lost
	got := seqsOf(t, c, last, 5*time.Second)
	var want []int64
	for seq := int64(1); seq <= last; seq++ {
		want = append(want, seq)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("delivered %d messages, %v … %v; want seqs 1..%d", len(got), got[:min(3, len(got))], got[max(0, len(got)-3):], last)
	}
	waitGoroutines(t, "(*Hub).fillGap")
	if n := fetches.Load(); n != 3 {
		t.Errorf("%d fetches; want 3 pages", n)
	}
}

// TestFollowCatchUpStopsAtRemoval: the store gives the user added to
// group 5 at seq 2 its removal at seq 3, which the group's topic
// delivered before the user's connection was subscribed: the connection
// gets the removal, and not what the topic held back for it meanwhile
// (seq 5), which came after.
func TestFollowCatchUpStopsAtRemoval(t *testing.T) {
	s := newBlockingStore(5)
	m := *s.stored[2].Message
	m.Kind, m.TargetID = chat.KindRemoved, 100
	s.stored[2].Message, s.stored[2].Revoke = &m, 100
	c, c2, early, early2 := followWhileFetching(t, s, nil)
	waitGoroutines(t, "(*Hub).follow", "(*Hub).catchUp")
	if got := fmt.Sprint(append(early, convSeqs(c)...)); got != "[3]" {
		t.Errorf("the user added at seq 2 and removed at 3 got %s; want [3]", got)
	}
	if got := fmt.Sprint(append(early2, convSeqs(c2)...)); got != "[3]" {
		t.Errorf("the user's other connection got %s; want [3]", got)
	}
}

// waitStacks waits, 5 s at most, until at least n goroutines run fn.
func waitStacks(t *testing.T, fn string, n int) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(5 * time.Second); ; {
		stacks := string(buf[:runtime.Stack(buf, true)])
		if strings.Count(stacks, fn) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines run %s after 5s; want %d:\n%s", strings.Count(stacks, fn), fn, n, stacks)
		}
		time.Sleep(time.Millisecond)
	}
}

// added is user's addition to group 5, logged at userSeq, at seq.
func added(user, userSeq, seq int64) chat.Event {
	return chat.Event{Type: chat.EventConversation, ConvID: 5, ConvKind: chat.ConvGroup, UserSeq: userSeq,
		Message: &chat.Message{ConvID: 5, Seq: seq, Kind: chat.KindAdded, TargetID: user}}
}

// TestFollowAgainOutlivesEarlierRemoval: user 2 is added to group 5
// (logged at 5), removed (6) and added again (7), and the removal reaches
// the hub last (late, over Redis): the connection that the second
// addition's follow subscribed stays subscribed, as one that opened the
// group on that membership does.
func TestFollowAgainOutlivesEarlierRemoval(t *testing.T) {
	h, b := newHub(t)
	c := mustRegister(t, h, 2, 1, 64)
	t5 := chat.ConvTopic(5)
	publish(t, b, chat.UserTopic(2), added(2, 5, 1))
	waitGoroutines(t, "(*Hub).follow")
	publish(t, b, chat.UserTopic(2), added(2, 7, 3))
	time.Sleep(3 * reorderWaitForTest) // the topic gives up waiting for 6
	waitGoroutines(t, "(*Hub).follow")
	publish(t, b, chat.UserTopic(2), chat.Event{Type: chat.EventRemoved, ConvID: 5, Reason: "removed", UserSeq: 6})
	waitGoroutines(t, "(*Hub).follow", "(*Hub).revoke")
	c.Next(nil)
	publish(t, b, t5, msg(5, 4))
	if got := fmt.Sprint(queuedOf(c)); got != "[4]" {
		t.Errorf("the connection of the user added again got %s; want [4]", got)
	}
	if !h.Follows(c, t5) {
		t.Errorf("Follows(connection, group 5) = false; want true")
	}
}

// TestFollowUndoneSparesFollowAgain: user 2 is added to group 5 (logged
// at 5), removed (6) and added again (7) while the first addition's
// follow is under way, held in its subscription behind a fan-out of the
// group that a client's Waker blocks. The first follow, finding the
// removal, undoes itself; whatever the order of that undo, the removal's
// revoke and the second follow's subscription, the user's connection
// ends subscribed to the group. (The user topic acts on the second
// addition after the removal's revoke, which waits for the fan-out too:
// the second addition is published, and waits, meanwhile.)
func TestFollowUndoneSparesFollowAgain(t *testing.T) {
	const runs = 20
	lost := 0
	for i := range runs {
		h, b := newHub(t)
		t5 := chat.ConvTopic(5)
		gate := newGateWaker()
		other, err := h.Register(1, 1, 64, gate) // another member, in the group
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Subscribe(other, t5); err != nil {
			t.Fatal(err)
		}
		c := mustRegister(t, h, 2, 2, 64)

		var wg sync.WaitGroup
		wg.Add(3)
		go func() { defer wg.Done(); publish(t, b, t5, msg(5, 1)) }()
		select {
		case <-gate.entered:
		case <-time.After(5 * time.Second):
			close(gate.release)
			t.Fatal("the fan-out of group 5 did not wake its client within 5s")
		}
		publish(t, b, chat.UserTopic(2), added(2, 5, 2))
		waitStacks(t, "(*Hub).subscribe(", 1) // the first follow, held
		go func() {
			defer wg.Done()
			publish(t, b, chat.UserTopic(2), chat.Event{Type: chat.EventRemoved, ConvID: 5, Reason: "removed", UserSeq: 6})
		}()
		for deadline := time.Now().Add(5 * time.Second); h.Removals(2) == 0; {
			if time.Now().After(deadline) {
				close(gate.release)
				t.Fatal("the removal was not counted within 5s")
			}
			time.Sleep(time.Millisecond)
		}
		go func() { defer wg.Done(); publish(t, b, chat.UserTopic(2), added(2, 7, 4)) }()
		waitStacks(t, "(*Hub).deliverLogged(", 2) // the second addition, behind the removal
		close(gate.release)
		wg.Wait()
		waitGoroutines(t, "(*Hub).follow", "(*Hub).revoke")

		for seq := int64(2); seq <= 4; seq++ { // up to the second addition: the store's to give, if any
			publish(t, b, t5, msg(5, seq))
		}
		c.Next(nil)
		publish(t, b, t5, msg(5, 5))
		if got := fmt.Sprint(queuedOf(c)); got != "[5]" {
			lost++
			if lost == 1 {
				t.Errorf("run %d: the connection of the user added again got %s; want [5]", i, got)
			}
		}
		h.Unregister(c)
		h.Unregister(other)
	}
	if lost > 0 {
		t.Errorf("the user added again lost the group in %d of %d runs", lost, runs)
	}
}

// TestFollowCatchUpOwnHold: user 100, added to group 5 at seq 2, is
// removed from it at 5 and added again at 6 while the first follow's
// read of the store is under way; the second follow holds the user's
// connection in its turn, from 8. The first follow's catch-up, which its
// connection left with the removal, gives it nothing and lets go of
// nothing: the connection gets the group's messages after its second
// addition, 7 from the store, then 8, which the topic held for it.
func TestFollowCatchUpOwnHold(t *testing.T) {
	h, b := newHub(t)
	t5 := chat.ConvTopic(5)
	var stored []chat.Event
	for seq := int64(1); seq <= 8; seq++ {
		ev := msg(5, seq)
		switch seq {
		case 2, 6:
			ev.Message.Kind, ev.Message.TargetID = chat.KindAdded, 100
		case 5:
			ev.Message.Kind, ev.Message.TargetID, ev.Revoke = chat.KindRemoved, 100, 100
		}
		stored = append(stored, ev)
	}
	first, second := make(chan struct{}), make(chan struct{}) // released the fetches after 2, after 6
	entered := make(chan int64, 2)
	h.UseStore(func(ctx context.Context, tp chat.Topic, after int64) ([]chat.Event, error) {
		release := first
		if after >= 6 {
			release = second
		}
		entered <- after
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return slices.DeleteFunc(slices.Clone(stored), func(ev chat.Event) bool { return ev.Message.Seq <= after }), nil
	})
	defer func() {
		for _, ch := range []chan struct{}{first, second} {
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
	}()
	waitFetch := func(want int64) {
		t.Helper()
		select {
		case after := <-entered:
			if after != want {
				t.Fatalf("fetch after %d; want after %d", after, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no fetch after %d within 5s", want)
		}
	}
	other := mustRegister(t, h, 1, 1, 64)
	if err := h.Subscribe(other, t5); err != nil {
		t.Fatal(err)
	}
	for _, ev := range stored[:4] {
		publish(t, b, t5, ev)
	}
	c := mustRegister(t, h, 100, 2, 64)
	publish(t, b, chat.UserTopic(100), added(100, 1, 2))
	waitFetch(2)
	publish(t, b, t5, stored[4]) // the removal: revokes c
	publish(t, b, chat.UserTopic(100), chat.Event{Type: chat.EventRemoved, ConvID: 5, Reason: "removed", UserSeq: 2})
	publish(t, b, t5, stored[5])
	publish(t, b, t5, stored[6])
	publish(t, b, chat.UserTopic(100), added(100, 3, 6))
	waitFetch(6)
	publish(t, b, t5, stored[7])
	if got := fmt.Sprint(convSeqs(c)); got != "[]" {
		t.Fatalf("the connection got %s before the reads of the store ended; want []", got)
	}
	close(first)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		buf := make([]byte, 1<<20)
		if strings.Count(string(buf[:runtime.Stack(buf, true)]), "(*Hub).catchUp(") <= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first follow's catch-up still runs after 5s")
		}
	}
	close(second)
	waitGoroutines(t, "(*Hub).follow", "(*Hub).catchUp")
	if got := fmt.Sprint(convSeqs(c)); got != "[7 8]" {
		t.Errorf("the connection of the user added again at 6 got %s; want [7 8]", got)
	}
	h.Unregister(c)
	h.Unregister(other)
}

// TestFollowCatchUpRemovedAddedAgain: user 100, added to group 5 at seq
// 2, was removed at 3 (a removal whose event the user topic never
// delivered), and is added again at 8 while the first follow's read of
// the store is under way, the topic holding 5 to 7 for the user's
// connections meanwhile. Those came between the removal and the second
// addition: the connections get none of them, only the removal, from the
// store, and what follows the second addition.
func TestFollowCatchUpRemovedAddedAgain(t *testing.T) {
	s := newBlockingStore(5)
	m := *s.stored[2].Message
	m.Kind, m.TargetID = chat.KindRemoved, 100
	s.stored[2].Message, s.stored[2].Revoke = &m, 100
	t5 := chat.ConvTopic(5)
	c, c2, early, early2 := followWhileFetching(t, s, func(h *hub.Hub, b chat.Broker, c, other *hub.Client) {
		for seq := int64(6); seq <= 7; seq++ {
			publish(t, b, t5, msg(5, seq))
		}
		publish(t, b, chat.UserTopic(100), added(100, 2, 8))
		for deadline := time.Now().Add(5 * time.Second); !h.Spares(c, t5, 2); {
			if time.Now().After(deadline) {
				t.Fatal("the second addition's follow did not mark the connection within 5s")
			}
			time.Sleep(time.Millisecond)
		}
		publish(t, b, t5, msg(5, 8))
		publish(t, b, t5, msg(5, 9))
	})
	waitGoroutines(t, "(*Hub).follow", "(*Hub).catchUp")
	if got := fmt.Sprint(append(early, convSeqs(c)...)); got != "[3 9]" {
		t.Errorf("the user removed at 3 and added again at 8 got %s; want [3 9]", got)
	}
	if got := fmt.Sprint(append(early2, convSeqs(c2)...)); got != "[3 9]" {
		t.Errorf("the user's other connection got %s; want [3 9]", got)
	}
}

// TestFollowCatchUpRemovedLive: the user added to group 5 at seq 2 is
// removed from it at seq 6, published live while the follow reads the
// store, and the removal then reaches the user's topic: each connection
// gets the messages of its membership in order, from the store and then
// those the topic held back for it, the one that removed the user last,
// and then the removed event, as a connection subscribed all along does.
func TestFollowCatchUpRemovedLive(t *testing.T) {
	s := newBlockingStore(6)
	m := *s.stored[5].Message
	m.Kind, m.TargetID = chat.KindRemoved, 100
	s.stored[5].Message, s.stored[5].Revoke = &m, 100
	var during []string
	c, c2, early, early2 := followWhileFetching(t, s, func(h *hub.Hub, b chat.Broker, c, other *hub.Client) {
		publish(t, b, chat.ConvTopic(5), s.stored[5])
		publish(t, b, chat.UserTopic(100), chat.Event{Type: chat.EventRemoved, ConvID: 5, Reason: "removed", UserSeq: 2})
		publish(t, b, chat.ConvTopic(5), msg(5, 7))
		during = convAndRemoved(c)
	})
	if len(during) > 0 || len(early) > 0 || len(early2) > 0 {
		t.Errorf("while the follow read the store the user's connections got %v, %v, %v; want nothing yet", during, early, early2)
	}
	waitGoroutines(t, "(*Hub).follow", "(*Hub).catchUp")
	for i, c := range []*hub.Client{c, c2} {
		if got := fmt.Sprint(convAndRemoved(c)); got != "[3 4 5 6 removed]" {
			t.Errorf("connection %d of the user added at seq 2 and removed at 6 got %s; want [3 4 5 6 removed]", i+1, got)
		}
	}
}

// convAndRemoved returns the conversation messages (by seq) and removed
// events queued for c, in order.
func convAndRemoved(c *hub.Client) []string {
	var out []string
	for _, it := range c.Next(nil) {
		switch ev := it.Event; {
		case ev.Type == chat.EventMessage && ev.Message != nil:
			out = append(out, fmt.Sprint(ev.Message.Seq))
		case ev.Type == chat.EventRemoved:
			out = append(out, "removed")
		}
	}
	return out
}
