package hub_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
	"github.com/parley-chat/parley/internal/inmem"
)

// countingBroker is an inmem broker that counts live subscriptions. It
// hides inmem's SubscribeAll, so that the hub takes a subscription per
// topic, as over Redis or NATS.
type countingBroker struct {
	chat.Broker
	live atomic.Int64
}

func (b *countingBroker) Subscribe(t chat.Topic, fn func(chat.Event)) (func(), error) {
	cancel, err := b.Broker.Subscribe(t, fn)
	if err != nil {
		return nil, err
	}
	b.live.Add(1)
	var once sync.Once
	return func() { once.Do(func() { b.live.Add(-1); cancel() }) }, nil
}

func newHub(t *testing.T) (*hub.Hub, *countingBroker) {
	t.Helper()
	b := &countingBroker{Broker: inmem.NewBroker()}
	h := hub.New(b, slog.New(slog.DiscardHandler))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		_ = h.Close(ctx) // clients left registered make this time out: fine here
	})
	return h, b
}

func mustRegister(t *testing.T, h *hub.Hub, user, session int64, outbox int) *hub.Client {
	t.Helper()
	c, err := h.Register(user, session, outbox, nil)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	return c
}

func publish(t *testing.T, b chat.Broker, topic chat.Topic, ev chat.Event) {
	t.Helper()
	if err := b.Publish(context.Background(), topic, ev); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

func msg(conv, seq int64) chat.Event {
	return chat.Event{Type: chat.EventMessage, ConvID: conv, Message: &chat.Message{ConvID: conv, Seq: seq}}
}

func TestFanOut(t *testing.T) {
	h, b := newHub(t)
	a := mustRegister(t, h, 1, 1, 16)
	c := mustRegister(t, h, 2, 2, 16)
	other := mustRegister(t, h, 3, 3, 16)
	for _, cl := range []*hub.Client{a, c} {
		if err := h.Subscribe(cl, chat.ConvTopic(5)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Subscribe(other, chat.ConvTopic(6)); err != nil {
		t.Fatal(err)
	}
	for seq := int64(1); seq <= 3; seq++ {
		publish(t, b, chat.ConvTopic(5), msg(5, seq))
	}
	var shared *hub.Item
	for _, cl := range []*hub.Client{a, c} {
		items := cl.Next(nil)
		if len(items) != 3 {
			t.Fatalf("user %d has %d items; want 3", cl.UserID, len(items))
		}
		for i, it := range items {
			if seq := int64(i + 1); it.Event.Message.Seq != seq {
				t.Fatalf("user %d got seq %d; want %d", cl.UserID, it.Event.Message.Seq, seq)
			}
		}
		if shared != nil && shared != items[0] {
			t.Error("recipients got different items; want one item shared by all")
		}
		if items[0].Fanout != 2 {
			t.Errorf("an item pushed to 2 clients says Fanout %d", items[0].Fanout)
		}
		shared = items[0]
	}
	if n := other.Queued(); n != 0 {
		t.Errorf("client of another topic got %d items; want 0", n)
	}
}

func TestEncodedOncePerFormat(t *testing.T) {
	it := &hub.Item{Event: msg(1, 1)}
	calls := 0
	enc := func(chat.Event) []byte { calls++; return []byte("x") }
	for range 3 {
		it.Encoded(0, enc)
		it.Encoded(1, enc)
	}
	if calls != 2 {
		t.Errorf("encoder called %d times; want 2 (once per format)", calls)
	}
	raw := &hub.Item{Raw: []byte("raw")}
	if got := string(raw.Encoded(0, enc)); got != "raw" {
		t.Errorf("Encoded of a raw item = %q; want %q", got, "raw")
	}
}

// Prepared makes one value per format from the encoding, which it shares
// with Encoded, for clients that may ask at once; none for a raw item, or
// one not shown in a format.
func TestPreparedOncePerFormat(t *testing.T) {
	it := &hub.Item{Event: msg(1, 1)}
	var encs, preps atomic.Int32
	enc := func(chat.Event) []byte { encs.Add(1); return []byte("x") }
	prep := func(b []byte) any { preps.Add(1); return string(b) + "!" }
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for f := range 2 {
				if got := it.Prepared(f, enc, prep); got != "x!" {
					t.Errorf("Prepared(%d) = %v; want x!", f, got)
				}
			}
		})
	}
	wg.Wait()
	it.Encoded(0, enc)
	if encs.Load() != 2 || preps.Load() != 2 {
		t.Errorf("encoder called %d times, prep %d; want 2 each (once per format)", encs.Load(), preps.Load())
	}
	if got := (&hub.Item{Raw: []byte("raw")}).Prepared(0, enc, prep); got != nil {
		t.Errorf("Prepared of a raw item = %v; want nil", got)
	}
	none := func(chat.Event) []byte { return nil }
	if got := (&hub.Item{Event: msg(1, 2)}).Prepared(0, none, prep); got != nil {
		t.Errorf("Prepared of an item not shown = %v; want nil", got)
	}
}

func TestSlowClientEvictedOthersServed(t *testing.T) {
	h, b := newHub(t)
	slow := mustRegister(t, h, 1, 1, 4)
	fast := mustRegister(t, h, 2, 2, 64)
	for _, cl := range []*hub.Client{slow, fast} {
		if err := h.Subscribe(cl, chat.ConvTopic(1)); err != nil {
			t.Fatal(err)
		}
	}
	for seq := int64(1); seq <= 20; seq++ {
		publish(t, b, chat.ConvTopic(1), msg(1, seq)) // never blocks, though slow never reads
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("slow client not closed after its outbox filled")
	}
	if r := slow.Reason(); r != hub.ReasonSlow {
		t.Errorf("slow client reason = %v; want %v", r, hub.ReasonSlow)
	}
	if n := fast.Queued(); n != 20 {
		t.Errorf("fast client has %d items; want all 20", n)
	}
	select {
	case <-fast.Done():
		t.Error("fast client closed")
	default:
	}
}

func TestSessionEndedClosesOnlyThatSession(t *testing.T) {
	h, b := newHub(t)
	s1 := mustRegister(t, h, 7, 100, 8)
	s1b := mustRegister(t, h, 7, 100, 8) // second tab of the same session
	s2 := mustRegister(t, h, 7, 200, 8)
	publish(t, b, chat.UserTopic(7), chat.Event{Type: chat.EventSessionEnded, UserID: 7, SessionID: 100})
	for _, c := range []*hub.Client{s1, s1b} {
		select {
		case <-c.Done():
			if c.Reason() != hub.ReasonSessionEnded {
				t.Errorf("reason = %v; want %v", c.Reason(), hub.ReasonSessionEnded)
			}
		default:
			t.Error("client of the ended session still open")
		}
	}
	select {
	case <-s2.Done():
		t.Error("client of another session closed")
	default:
	}
}

func TestUnsubscribeReleasesBrokerSubscription(t *testing.T) {
	h, b := newHub(t)
	c1 := mustRegister(t, h, 0, 0, 8) // anonymous: no user topic
	c2 := mustRegister(t, h, 0, 0, 8)
	for _, c := range []*hub.Client{c1, c2} {
		if err := h.Subscribe(c, chat.ConvTopic(3)); err != nil {
			t.Fatal(err)
		}
		if err := h.Subscribe(c, chat.ConvTopic(3)); err != nil { // twice is once
			t.Fatal(err)
		}
	}
	if n := b.live.Load(); n != 1 {
		t.Fatalf("broker subscriptions = %d; want 1 for the shared topic", n)
	}
	h.Unsubscribe(c1, chat.ConvTopic(3))
	if n := b.live.Load(); n != 1 {
		t.Fatalf("after one unsubscribe: %d; want 1", n)
	}
	h.Unregister(c2)
	if n := b.live.Load(); n != 0 {
		t.Fatalf("after the last client left: %d; want 0", n)
	}
}

func TestCloseWaitsForClients(t *testing.T) {
	b := inmem.NewBroker()
	h := hub.New(b, slog.New(slog.DiscardHandler))
	c := mustRegister(t, h, 1, 1, 8)
	closed := make(chan error, 1)
	go func() { closed <- h.Close(context.Background()) }()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not close the client")
	}
	if c.Reason() != hub.ReasonShutdown {
		t.Errorf("reason = %v; want %v", c.Reason(), hub.ReasonShutdown)
	}
	select {
	case <-closed:
		t.Fatal("Close returned before the client unregistered")
	default:
	}
	h.Unregister(c)
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the last client left")
	}
	if _, err := h.Register(2, 2, 8, nil); err == nil {
		t.Error("Register after Close succeeded; want an error")
	}
}

// TestPushAfterClose: a closed client takes no event; one closed for the
// shutdown still takes its own frames, for its writer to write before
// the goodbye, and Next gives them.
func TestPushAfterClose(t *testing.T) {
	for _, r := range []hub.CloseReason{hub.ReasonShutdown, hub.ReasonSlow, hub.ReasonSessionEnded, hub.ReasonChannelEnded} {
		h := hub.New(inmem.NewBroker(), slog.New(slog.DiscardHandler))
		c := mustRegister(t, h, 1, 1, 8)
		c.Close(r)
		if c.Push(&hub.Item{Event: chat.Event{Type: chat.EventMessage}}) {
			t.Errorf("%v: Push of an event after the close = true; want false", r)
		}
		own := r == hub.ReasonShutdown
		if got := c.Push(&hub.Item{Raw: []byte(`{"type":"ack"}`)}); got != own {
			t.Errorf("%v: Push of an own frame after the close = %v; want %v", r, got, own)
		}
		want := 0
		if own {
			want = 1
		}
		if got := len(c.Next(nil)); got != want {
			t.Errorf("%v: Next gave %d items after the close; want %d", r, got, want)
		}
		h.Unregister(c)
	}
}

// TestDiscard: Discard drops the outbox of a client closed for any reason
// but shutdown, whose own frames its writer still writes, and never that
// of a client still open.
func TestDiscard(t *testing.T) {
	for _, r := range []hub.CloseReason{hub.ReasonNone, hub.ReasonShutdown, hub.ReasonSlow, hub.ReasonSessionEnded, hub.ReasonChannelEnded} {
		h := hub.New(inmem.NewBroker(), slog.New(slog.DiscardHandler))
		c := mustRegister(t, h, 1, 1, 8)
		c.Push(&hub.Item{Raw: []byte(`{"type":"ack"}`)})
		if r != hub.ReasonNone {
			c.Close(r)
		}
		c.Discard()
		want := 0
		if r == hub.ReasonNone || r == hub.ReasonShutdown {
			want = 1
		}
		if got := c.Queued(); got != want {
			t.Errorf("%v: %d items queued after Discard; want %d", r, got, want)
		}
		h.Unregister(c)
	}
}

func TestCloseTimesOut(t *testing.T) {
	h := hub.New(inmem.NewBroker(), slog.New(slog.DiscardHandler))
	mustRegister(t, h, 1, 1, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.Close(ctx); err == nil {
		t.Error("Close with a client that never leaves = nil; want a timeout error")
	}
}

// BenchmarkFanOut measures one event delivered to n subscribers of a room.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 100, 1000, 10000} {
		b.Run(benchName(n), func(b *testing.B) {
			br := inmem.NewBroker()
			h := hub.New(br, slog.New(slog.DiscardHandler))
			clients := make([]*hub.Client, n)
			for i := range clients {
				c, err := h.Register(0, 0, 1024, nil)
				if err != nil {
					b.Fatal(err)
				}
				if err := h.Subscribe(c, chat.ConvTopic(1)); err != nil {
					b.Fatal(err)
				}
				clients[i] = c
			}
			ev := msg(1, 1)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				_ = br.Publish(ctx, chat.ConvTopic(1), ev)
				if i%512 == 511 {
					b.StopTimer()
					for _, c := range clients {
						c.Next(nil)
					}
					b.StartTimer()
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

func benchName(n int) string {
	if n >= 1000 {
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

func seqsOf(t *testing.T, c *hub.Client, n int, timeout time.Duration) []int64 {
	t.Helper()
	var got []int64
	deadline := time.Now().Add(timeout)
	for len(got) < n {
		for _, it := range c.Next(nil) {
			got = append(got, it.Event.Message.Seq)
		}
		if time.Now().After(deadline) {
			t.Fatalf("got seqs %v; want %d of them within %s", got, n, timeout)
		}
		time.Sleep(5 * time.Millisecond) // polling: the hub's reorder timer runs on its own
	}
	return got
}

func TestMessagesDeliveredInSeqOrder(t *testing.T) {
	h, b := newHub(t)
	c := mustRegister(t, h, 0, 0, 64)
	if err := h.Subscribe(c, chat.ConvTopic(1)); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []int64{1, 3, 4, 2, 6, 5, 7, 7} {
		publish(t, b, chat.ConvTopic(1), msg(1, seq))
	}
	got := seqsOf(t, c, 8, time.Second)
	want := []int64{1, 2, 3, 4, 5, 6, 7, 7}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("delivered %v; want %v (held back until in order; a repeat passes through)", got, want)
	}
}

func TestMissingMessageDoesNotHoldTheRoomForever(t *testing.T) {
	h, b := newHub(t)
	c := mustRegister(t, h, 0, 0, 64)
	if err := h.Subscribe(c, chat.ConvTopic(1)); err != nil {
		t.Fatal(err)
	}
	publish(t, b, chat.ConvTopic(1), msg(1, 1))
	// seq 2 was committed but its publisher died; 3, 4 and then 6, 7 arrive.
	for _, seq := range []int64{4, 3, 7, 6} {
		publish(t, b, chat.ConvTopic(1), msg(1, seq))
	}
	got := seqsOf(t, c, 5, 5*time.Second)
	want := []int64{1, 3, 4, 6, 7}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("delivered %v; want %v once the wait for the missing ones ran out", got, want)
	}
	publish(t, b, chat.ConvTopic(1), msg(1, 8))
	if got := seqsOf(t, c, 1, time.Second); got[0] != 8 {
		t.Errorf("after the gap, delivered %v; want [8] at once", got)
	}
}

func TestWakeOnlyWhenIdle(t *testing.T) {
	h, b := newHub(t)
	var wakes atomic.Int32
	c, err := h.Register(0, 0, 16, hub.WakeFunc(func(*hub.Client) { wakes.Add(1) }))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Subscribe(c, chat.ConvTopic(1)); err != nil {
		t.Fatal(err)
	}
	publish(t, b, chat.ConvTopic(1), msg(1, 1))
	publish(t, b, chat.ConvTopic(1), msg(1, 2))
	if n := wakes.Load(); n != 1 {
		t.Fatalf("wakes after two pushes = %d; want 1 (the writer is already due)", n)
	}
	if items := c.Next(nil); len(items) != 2 {
		t.Fatalf("Next = %d items; want 2", len(items))
	}
	if items := c.Next(nil); items != nil {
		t.Fatalf("Next on an empty queue = %v; want nil", items)
	}
	publish(t, b, chat.ConvTopic(1), msg(1, 3))
	if n := wakes.Load(); n != 2 {
		t.Fatalf("wakes after the writer stopped and a push = %d; want 2", n)
	}
	if c.Closed() {
		t.Fatal("Closed before Close")
	}
	c.Close(hub.ReasonShutdown)
	if n := wakes.Load(); n != 3 {
		t.Fatalf("wakes after Close = %d; want 3 (the writer must tell the peer)", n)
	}
	if !c.Closed() {
		t.Fatal("not Closed after Close")
	}
	if c.Push(&hub.Item{Event: msg(1, 4)}) {
		t.Error("Push after Close reported true")
	}
	if n := wakes.Load(); n != 3 {
		t.Errorf("wakes after a Push to a closed client = %d; want 3", n)
	}
}

// TestAttach: a client registered without a Waker queues what reaches it
// and wakes nobody; Attach puts its first item ahead of those, and wakes
// the writer once. A client closed before it is attached is woken by
// Attach, so that its writer says goodbye.
func TestAttach(t *testing.T) {
	h, b := newHub(t)
	c, err := h.Register(0, 0, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Subscribe(c, chat.ConvTopic(1)); err != nil {
		t.Fatal(err)
	}
	publish(t, b, chat.ConvTopic(1), msg(1, 1))
	publish(t, b, chat.ConvTopic(1), msg(1, 2))
	var wakes atomic.Int32
	wake := hub.WakeFunc(func(*hub.Client) { wakes.Add(1) })
	c.Attach(wake, &hub.Item{Raw: []byte("hello")})
	if n := wakes.Load(); n != 1 {
		t.Fatalf("wakes after Attach = %d; want 1", n)
	}
	publish(t, b, chat.ConvTopic(1), msg(1, 3))
	if n := wakes.Load(); n != 1 {
		t.Fatalf("wakes after a push to a client being written = %d; want 1", n)
	}
	items := c.Next(nil)
	var got []string
	for _, it := range items {
		if it.Raw != nil {
			got = append(got, string(it.Raw))
		} else {
			got = append(got, strconv.FormatInt(it.Event.Message.Seq, 10))
		}
	}
	if want := []string{"hello", "1", "2", "3"}; !slices.Equal(got, want) {
		t.Errorf("queued %v; want %v", got, want)
	}

	late, err := h.Register(0, 0, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	late.Close(hub.ReasonShutdown)
	wakes.Store(0)
	late.Attach(wake, nil)
	if n := wakes.Load(); n != 1 || !late.Closed() {
		t.Errorf("Attach to a closed client: %d wakes, closed %v; want 1, true", n, late.Closed())
	}
}

// queuedOf returns the seqs of the conversation messages queued for c, and
// the types of other events.
func queuedOf(c *hub.Client) []string {
	var out []string
	for _, it := range c.Next(nil) {
		if it.Event.Message != nil {
			out = append(out, strconv.FormatInt(it.Event.Message.Seq, 10))
		} else {
			out = append(out, string(it.Event.Type))
		}
	}
	return out
}

// TestRevoke: a message with Revoke reaches the revoked user and is the
// last of the conversation to; the others go on receiving; subscribing
// again works.
func TestRevoke(t *testing.T) {
	h, b := newHub(t)
	stay := mustRegister(t, h, 1, 1, 16)
	gone1 := mustRegister(t, h, 2, 2, 16)
	gone2 := mustRegister(t, h, 2, 3, 16) // a second tab of user 2
	for _, c := range []*hub.Client{stay, gone1, gone2} {
		if err := h.Subscribe(c, chat.ConvTopic(5)); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, b, chat.ConvTopic(5), msg(5, 1))
	rm := msg(5, 2)
	rm.Revoke = 2
	publish(t, b, chat.ConvTopic(5), rm)
	publish(t, b, chat.ConvTopic(5), msg(5, 3))
	if got := fmt.Sprint(queuedOf(stay)); got != "[1 2 3]" {
		t.Errorf("staying client got %s; want [1 2 3]", got)
	}
	for _, c := range []*hub.Client{gone1, gone2} {
		if got := fmt.Sprint(queuedOf(c)); got != "[1 2]" {
			t.Errorf("revoked client got %s; want [1 2]", got)
		}
	}
	if err := h.Subscribe(gone1, chat.ConvTopic(5)); err != nil {
		t.Fatal(err)
	}
	publish(t, b, chat.ConvTopic(5), msg(5, 4))
	if got := fmt.Sprint(queuedOf(gone1)); got != "[4]" {
		t.Errorf("client subscribed again got %s; want [4]", got)
	}
	if got := fmt.Sprint(queuedOf(gone2)); got != "[]" {
		t.Errorf("other revoked client got %s; want []", got)
	}
}

// TestRemovedEvent: EventRemoved on a user topic stops that user's
// connections receiving the conversation and is delivered to them.
func TestRemovedEvent(t *testing.T) {
	h, b := newHub(t)
	stay, gone := stayAndGone(t, h)
	publish(t, b, chat.UserTopic(2), chat.Event{Type: chat.EventRemoved, ConvID: 5, Reason: "deleted"})
	publish(t, b, chat.ConvTopic(5), msg(5, 1))
	if got := fmt.Sprint(queuedOf(gone)); got != "[removed]" {
		t.Errorf("removed client got %s; want [removed]", got)
	}
	if got := fmt.Sprint(queuedOf(stay)); got != "[1]" {
		t.Errorf("staying client got %s; want [1]", got)
	}
	// The bookkeeping runs in the background; then the broker
	// subscription of the topic is the staying client's alone. A loaded
	// -race run may not run it for a second: wait as other tests here do.
	deadline := time.Now().Add(5 * time.Second)
	for b.live.Load() != 3 && time.Now().Before(deadline) { // 2 user topics + conv 5
		time.Sleep(time.Millisecond)
	}
	h.Unsubscribe(stay, chat.ConvTopic(5))
	if n := b.live.Load(); n != 2 {
		t.Errorf("live subscriptions = %d; want 2 (the user topics)", n)
	}
}

// TestResync: events the broker dropped reach the clients from Resync, in
// order, after what each topic delivered last; a topic that delivered
// nothing gets its newest event, and users' topics resume after their
// newest logged event.
func TestResync(t *testing.T) {
	h, b := newHub(t)
	c := mustRegister(t, h, 7, 0, 64)
	for _, id := range []int64{1, 2} {
		if err := h.Subscribe(c, chat.ConvTopic(id)); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, b, chat.ConvTopic(1), msg(1, 1))
	publish(t, b, chat.UserTopic(7), chat.Event{Type: chat.EventContact, UserSeq: 4})
	if got := len(c.Next(nil)); got != 2 {
		t.Fatalf("before the outage: %d items; want 2", got)
	}
	// The broker lost conv 1's seqs 2 and 3, conv 2's 5 (the clients have
	// 1..4 from elsewhere: the newest shows them the gap) and user event 5.
	var (
		mu    sync.Mutex
		asked = map[chat.Topic]int64{}
	)
	fetch := func(_ context.Context, tp chat.Topic, after int64) ([]chat.Event, error) {
		mu.Lock()
		if _, ok := asked[tp]; !ok { // the first ask; Resync asks again until caught up
			asked[tp] = after
		}
		mu.Unlock()
		var evs []chat.Event
		switch tp {
		case chat.ConvTopic(1):
			evs = []chat.Event{msg(1, 2), msg(1, 3)}
		case chat.ConvTopic(2):
			evs = []chat.Event{msg(2, 5)}
		case chat.UserTopic(7):
			evs = []chat.Event{{Type: chat.EventContact, UserSeq: 5}}
		default:
			return nil, fmt.Errorf("unexpected topic %s", tp)
		}
		return slices.DeleteFunc(evs, func(ev chat.Event) bool { // as the store: only what follows after
			if ev.Message != nil {
				return ev.Message.Seq <= after
			}
			return ev.UserSeq <= after
		}), nil
	}
	h.UseStore(fetch)
	h.Resync(context.Background())
	want := map[chat.Topic]int64{chat.ConvTopic(1): 1, chat.ConvTopic(2): -1, chat.UserTopic(7): 4}
	if fmt.Sprint(asked) != fmt.Sprint(want) {
		t.Errorf("Resync asked for the events after %v; want %v", asked, want)
	}
	var got []string
	for _, it := range c.Next(nil) {
		if m := it.Event.Message; m != nil {
			got = append(got, fmt.Sprintf("conv %d seq %d", m.ConvID, m.Seq))
		} else {
			got = append(got, fmt.Sprintf("user %d", it.Event.UserSeq))
		}
	}
	slices.Sort(got)
	if w := []string{"conv 1 seq 2", "conv 1 seq 3", "conv 2 seq 5", "user 5"}; fmt.Sprint(got) != fmt.Sprint(w) {
		t.Errorf("delivered %q; want %q", got, w)
	}
	// Live delivery goes on after what Resync delivered.
	publish(t, b, chat.ConvTopic(1), msg(1, 4))
	if got := seqsOf(t, c, 1, time.Second); got[0] != 4 {
		t.Errorf("after the resync, delivered %v; want [4]", got)
	}
}

// TestResyncRetriesFailedFetch: a Resync whose store query fails (the
// database unreachable a moment as Redis comes back) tries again, rather
// than leave the topic's clients without what the broker lost until the
// next message, which a quiet conversation may never have.
func TestResyncRetriesFailedFetch(t *testing.T) {
	h, b := newHub(t)
	var calls atomic.Int32
	h.UseStore(func(_ context.Context, tp chat.Topic, after int64) ([]chat.Event, error) {
		if calls.Add(1) <= 2 {
			return nil, errors.New("store unreachable")
		}
		if tp != chat.ConvTopic(1) || after >= 2 {
			return nil, nil
		}
		return []chat.Event{msg(1, 2)}, nil
	})
	c := mustRegister(t, h, 0, 0, 64)
	if err := h.Subscribe(c, chat.ConvTopic(1)); err != nil {
		t.Fatal(err)
	}
	publish(t, b, chat.ConvTopic(1), msg(1, 1))
	if got := len(c.Next(nil)); got != 1 {
		t.Fatalf("before the outage: %d items; want 1", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h.Resync(ctx)
	var got []int64
	for _, it := range c.Next(nil) {
		got = append(got, it.Event.Message.Seq)
	}
	if !slices.Equal(got, []int64{2}) {
		t.Errorf("after a Resync whose first fetches failed, delivered %v; want [2]", got)
	}
}

// TestGapFilledFromStore: a message whose publish is late (or lost) is
// fetched from the store once the reorder wait is over, so clients get
// every message in order; the late publish, when it comes, is dropped.
func TestGapFilledFromStore(t *testing.T) {
	h, b := newHub(t)
	var fetched atomic.Int32
	h.UseStore(func(_ context.Context, tp chat.Topic, after int64) ([]chat.Event, error) {
		fetched.Add(1)
		if tp != chat.ConvTopic(1) || after != 1 {
			return nil, fmt.Errorf("fetch(%s, after %d); want conv 1 after 1", tp, after)
		}
		return []chat.Event{msg(1, 2), msg(1, 3)}, nil
	})
	c := mustRegister(t, h, 0, 0, 64)
	if err := h.Subscribe(c, chat.ConvTopic(1)); err != nil {
		t.Fatal(err)
	}
	publish(t, b, chat.ConvTopic(1), msg(1, 1))
	publish(t, b, chat.ConvTopic(1), msg(1, 3)) // 2 is late
	publish(t, b, chat.ConvTopic(1), msg(1, 4))
	got := seqsOf(t, c, 4, 5*time.Second)
	if want := []int64{1, 2, 3, 4}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("delivered %v; want %v, the gap filled from the store", got, want)
	}
	publish(t, b, chat.ConvTopic(1), msg(1, 2)) // the late publish
	publish(t, b, chat.ConvTopic(1), msg(1, 5))
	if got := seqsOf(t, c, 1, time.Second); fmt.Sprint(got) != "[5]" {
		t.Errorf("after the late publish, delivered %v; want [5] only", got)
	}
	// A publish overtaken by the one the topic started with is delivered,
	// late: the topic cannot know whether its clients have it.
	c2 := mustRegister(t, h, 0, 0, 64)
	if err := h.Subscribe(c2, chat.ConvTopic(2)); err != nil {
		t.Fatal(err)
	}
	publish(t, b, chat.ConvTopic(2), msg(2, 8))
	publish(t, b, chat.ConvTopic(2), msg(2, 7))
	if got := seqsOf(t, c2, 2, time.Second); fmt.Sprint(got) != "[8 7]" {
		t.Errorf("a topic starting at 8, then 7: delivered %v; want [8 7]", got)
	}
	if n := fetched.Load(); n != 1 {
		t.Errorf("%d fetches; want 1", n)
	}
}

// TestSeen: a topic told what its clients have starts there, so that the
// first publishes, arriving out of order, are still delivered in order.
func TestSeen(t *testing.T) {
	h, b := newHub(t)
	c := mustRegister(t, h, 0, 0, 64)
	if err := h.Subscribe(c, chat.ConvTopic(1)); err != nil {
		t.Fatal(err)
	}
	h.Seen(chat.ConvTopic(1), 4)
	publish(t, b, chat.ConvTopic(1), msg(1, 6))
	publish(t, b, chat.ConvTopic(1), msg(1, 5))
	if got := seqsOf(t, c, 2, time.Second); fmt.Sprint(got) != "[5 6]" {
		t.Errorf("delivered %v; want [5 6]", got)
	}
	h.Seen(chat.ConvTopic(1), 2) // too late to matter
	publish(t, b, chat.ConvTopic(1), msg(1, 7))
	if got := seqsOf(t, c, 1, time.Second); fmt.Sprint(got) != "[7]" {
		t.Errorf("then delivered %v; want [7]", got)
	}
}

type allSubscriber interface {
	SubscribeAll(func(chat.Topic, chat.Event)) (func(), error)
}

// TestOneSubscriptionForAllTopics: over a broker that delivers every topic
// through one subscription (inmem's SubscribeAll), the hub takes none per
// topic and delivers as it does with them.
func TestOneSubscriptionForAllTopics(t *testing.T) {
	inner := inmem.NewBroker()
	b := &countingBroker{Broker: inner}
	h := hub.New(struct {
		*countingBroker
		allSubscriber
	}{b, inner}, slog.New(slog.DiscardHandler))
	tab1 := mustRegister(t, h, 1, 10, 16)
	tab2 := mustRegister(t, h, 1, 11, 16) // a second tab of user 1
	other := mustRegister(t, h, 2, 20, 16)
	for _, c := range []*hub.Client{tab1, other} {
		if err := h.Subscribe(c, chat.ConvTopic(5)); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, b, chat.UserTopic(1), chat.Event{Type: chat.EventRead, ConvID: 5, Seq: 3})
	publish(t, b, chat.ConvTopic(5), msg(5, 1))
	publish(t, b, chat.ConvTopic(6), msg(6, 1)) // nobody's here
	for c, want := range map[*hub.Client]string{tab1: "[read 1]", tab2: "[read]", other: "[1]"} {
		if got := fmt.Sprint(queuedOf(c)); got != want {
			t.Errorf("client of user %d, session %d got %s; want %s", c.UserID, c.SessionID, got, want)
		}
	}
	if n := b.live.Load(); n != 0 {
		t.Errorf("broker subscriptions per topic = %d; want 0", n)
	}

	publish(t, b, chat.UserTopic(1), chat.Event{Type: chat.EventSessionEnded, UserID: 1, SessionID: 11})
	select {
	case <-tab2.Done():
	default:
		t.Error("client of the ended session still open")
	}
	select {
	case <-tab1.Done():
		t.Error("client of another session closed")
	default:
	}

	h.Unregister(tab1)
	h.Unregister(tab2)
	publish(t, b, chat.UserTopic(1), chat.Event{Type: chat.EventRead, ConvID: 5, Seq: 4}) // nobody's topic any more
	publish(t, b, chat.ConvTopic(5), msg(5, 2))
	if got := fmt.Sprint(queuedOf(other)); got != "[2]" {
		t.Errorf("remaining client got %s; want [2]", got)
	}
	h.Unregister(other)
	if n := h.Len(); n != 0 {
		t.Errorf("hub holds %d clients; want 0", n)
	}
}

// TestOwnBytesBound: a client's own frames (Raw) may wait in its outbox
// up to 4 MiB past the first; one more closes it as slow, whatever the
// bound in frames. What the writer has taken no longer counts, and a
// first frame of any size is taken.
func TestOwnBytesBound(t *testing.T) {
	h, _ := newHub(t)
	c, err := h.Register(0, 0, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	page := make([]byte, 1<<20)
	if !c.Push(&hub.Item{Raw: make([]byte, 5<<20)}) {
		t.Fatal("a first frame of 5 MiB refused")
	}
	if items := c.Next(nil); len(items) != 1 {
		t.Fatalf("Next = %d items; want 1", len(items))
	}
	for i := range 4 {
		if !c.Push(&hub.Item{Raw: page}) {
			t.Fatalf("page %d refused; want 4 MiB queued", i+1)
		}
	}
	if c.Closed() {
		t.Fatal("closed with 4 MiB queued")
	}
	if items := c.Next(nil); len(items) != 4 {
		t.Fatalf("Next = %d items; want 4", len(items))
	}
	for i := range 4 {
		if !c.Push(&hub.Item{Raw: page}) {
			t.Fatalf("page %d after Next refused", i+1)
		}
	}
	if c.Push(&hub.Item{Raw: []byte("one more")}) || !c.Closed() || c.Reason() != hub.ReasonSlow {
		t.Errorf("a frame past 4 MiB: closed %v (%v); want closed as slow", c.Closed(), c.Reason())
	}
}

// TestOwnBytesBoundSharedFrames: the bound on a client's own frames
// counts those alone. An event shared with other clients, queued behind a
// first own frame of any size, which the bound takes, is queued too, not
// taken for one more own frame past the bound.
func TestOwnBytesBoundSharedFrames(t *testing.T) {
	h, _ := newHub(t)
	c := mustRegister(t, h, 0, 0, 1000)
	if !c.Push(&hub.Item{Raw: make([]byte, 5<<20)}) {
		t.Fatal("a first frame of 5 MiB refused")
	}
	if !c.Push(&hub.Item{Event: msg(1, 1)}) || c.Closed() {
		t.Fatalf("an event behind a first own frame of 5 MiB: closed %v (%v); want it queued", c.Closed(), c.Reason())
	}
	if n := c.Queued(); n != 2 {
		t.Errorf("Queued = %d; want 2", n)
	}
}

// TestCheckSessions: the hub closes the clients of the sessions its check
// reports ended, as a session_ended event would, and no others; a check
// that fails closes nothing; Close ends the checks.
func TestCheckSessions(t *testing.T) {
	h, _ := newHub(t)
	ada1 := mustRegister(t, h, 1, 10, 8)
	ada1b := mustRegister(t, h, 1, 10, 8) // a second connection of the session
	ada2 := mustRegister(t, h, 1, 11, 8)
	bob := mustRegister(t, h, 2, 20, 8)
	anon := mustRegister(t, h, 0, 0, 8)
	asked := make(chan []int64, 100)
	var fail atomic.Bool
	fail.Store(true)
	h.CheckSessions(time.Millisecond, func(_ context.Context, ids []int64) ([]int64, error) {
		select {
		case asked <- ids:
		default: // the test is not listening
		}
		if fail.Load() {
			return []int64{10, 11, 20}, errors.New("database unreachable")
		}
		return []int64{10, 99}, nil
	})
	if got := <-asked; !slices.Equal(got, []int64{10, 11, 20}) {
		t.Errorf("the check was asked %v; want the three sessions once each, in order", got)
	}
	<-asked // the first failed check is over
	for _, c := range []*hub.Client{ada1, ada1b, ada2, bob, anon} {
		if c.Closed() {
			t.Fatalf("client of session %d closed after a failed check", c.SessionID)
		}
	}
	fail.Store(false)
	for _, c := range []*hub.Client{ada1, ada1b} {
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("client of ended session %d still open", c.SessionID)
		}
		if c.Reason() != hub.ReasonSessionEnded {
			t.Errorf("closed for %v; want ReasonSessionEnded", c.Reason())
		}
	}
	for _, c := range []*hub.Client{ada2, bob, anon} {
		if c.Closed() {
			t.Errorf("client of live session %d closed", c.SessionID)
		}
	}
	for _, c := range []*hub.Client{ada1, ada1b, ada2, bob, anon} {
		h.Unregister(c)
	}
	if err := h.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for len(asked) > 0 { // a check under way when Close came may still ask
		<-asked
	}
	time.Sleep(20 * time.Millisecond)
	if n := len(asked); n > 1 {
		t.Errorf("the check was asked %d times after Close", n)
	}
}

// TestResyncPagesThroughWhatWasMissed: the store answers a fetch with at
// most a page of events (chat.Service.Missed: Config.HistoryLimit, 100),
// so after an outage longer than a page, Resync must ask again until it
// has delivered everything the topic missed: nothing else would show the
// clients the tail they lack if the conversation goes quiet.
func TestResyncPagesThroughWhatWasMissed(t *testing.T) {
	const page, stored = 100, 250
	h, b := newHub(t)
	h.UseStore(func(_ context.Context, tp chat.Topic, after int64) ([]chat.Event, error) {
		var evs []chat.Event
		switch tp {
		case chat.ConvTopic(1):
			for seq := max(after, 0) + 1; seq <= stored && len(evs) < page; seq++ {
				evs = append(evs, msg(1, seq))
			}
		case chat.UserTopic(7):
			for seq := max(after, 0) + 1; seq <= stored && len(evs) < page; seq++ {
				evs = append(evs, chat.Event{Type: chat.EventContact, UserSeq: seq})
			}
		}
		return evs, nil
	})
	c := mustRegister(t, h, 7, 0, 2*stored)
	if err := h.Subscribe(c, chat.ConvTopic(1)); err != nil {
		t.Fatal(err)
	}
	publish(t, b, chat.ConvTopic(1), msg(1, 1))
	publish(t, b, chat.UserTopic(7), chat.Event{Type: chat.EventContact, UserSeq: 1})
	if got := len(c.Next(nil)); got != 2 {
		t.Fatalf("before the outage: %d items; want 2", got)
	}
	// The broker lost seqs 2..250 and user events 2..250.
	h.Resync(context.Background())
	var seqs, users []int64
	for _, it := range c.Next(nil) {
		if m := it.Event.Message; m != nil {
			seqs = append(seqs, m.Seq)
		} else {
			users = append(users, it.Event.UserSeq)
		}
	}
	var want []int64
	for seq := int64(2); seq <= stored; seq++ {
		want = append(want, seq)
	}
	if fmt.Sprint(seqs) != fmt.Sprint(want) {
		t.Errorf("Resync delivered %d messages, %v … %v; want seqs 2..%d", len(seqs), seqs[:min(3, len(seqs))], seqs[max(0, len(seqs)-3):], stored)
	}
	if fmt.Sprint(users) != fmt.Sprint(want) {
		t.Errorf("Resync delivered %d user events, %v … %v; want 2..%d", len(users), users[:min(3, len(users))], users[max(0, len(users)-3):], stored)
	}
}

func TestChannelEndedClosesOnlyThatChannel(t *testing.T) {
	h, b := newHub(t)
	poll, err := h.Register(7, 100, 8, channelWaker("ch-a"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := h.Register(7, 100, 8, channelWaker("ch-b"))
	if err != nil {
		t.Fatal(err)
	}
	ws := mustRegister(t, h, 7, 100, 8) // a WebSocket of the same session
	t.Cleanup(func() { h.Unregister(poll); h.Unregister(other) })
	publish(t, b, chat.UserTopic(7), chat.Event{Type: chat.EventChannelEnded, UserID: 7, Channel: "ch-a"})
	select {
	case <-poll.Done():
		if poll.Reason() != hub.ReasonChannelEnded {
			t.Errorf("reason = %v; want %v", poll.Reason(), hub.ReasonChannelEnded)
		}
	default:
		t.Error("client of the ended channel still open")
	}
	for name, c := range map[string]*hub.Client{"ch-b": other, "a WebSocket": ws} {
		select {
		case <-c.Done():
			t.Errorf("client of %s closed", name)
		default:
		}
		if n := c.Queued(); n != 0 {
			t.Errorf("client of %s got %d items; want none", name, n)
		}
	}
}

// channelWaker is the Waker of a client serving the long-poll channel it
// names.
type channelWaker string

func (channelWaker) Wake(*hub.Client)      {}
func (w channelWaker) ChannelName() string { return string(w) }

// TestRepeat: a message published again (chat.Event.Repeat, a send
// retried) is delivered where it is the one awaited, and where the topic
// has delivered nothing yet, without the topic starting from it: the
// messages after it may have been published before the topic was
// there. It is never delivered twice, nor below the message the topic
// started with, which its clients have from the store.
func TestRepeat(t *testing.T) {
	h, b := newHub(t)
	var fetched atomic.Int32
	h.UseStore(func(_ context.Context, tp chat.Topic, after int64) ([]chat.Event, error) {
		fetched.Add(1)
		return nil, fmt.Errorf("fetch(%s, after %d); want none", tp, after)
	})
	again := func(conv, seq int64) chat.Event {
		ev := msg(conv, seq)
		ev.Repeat = true
		return ev
	}
	c := mustRegister(t, h, 0, 0, 64)
	for _, id := range []int64{1, 2, 3} {
		if err := h.Subscribe(c, chat.ConvTopic(id)); err != nil {
			t.Fatal(err)
		}
	}

	// Topic 1 has delivered nothing: 6..8 were published before it was.
	publish(t, b, chat.ConvTopic(1), again(1, 5))
	publish(t, b, chat.ConvTopic(1), msg(1, 9))
	var got []int64 // the broker delivers as it publishes: all is there
	for _, it := range c.Next(nil) {
		got = append(got, it.Event.Message.Seq)
	}
	if fmt.Sprint(got) != "[5 9]" {
		t.Errorf("a topic that had delivered nothing: delivered %v; want [5 9] at once", got)
	}
	if len(got) < 2 {
		seqsOf(t, c, 2-len(got), time.Second) // what came late, not to the checks below
	}

	// Topic 2 holds 6 back, waiting for 5, whose first publish never came.
	h.Seen(chat.ConvTopic(2), 4)
	publish(t, b, chat.ConvTopic(2), msg(2, 6))
	publish(t, b, chat.ConvTopic(2), again(2, 5))
	if got := seqsOf(t, c, 2, time.Second); fmt.Sprint(got) != "[5 6]" {
		t.Errorf("a topic waiting for it: delivered %v; want [5 6]", got)
	}
	publish(t, b, chat.ConvTopic(2), again(2, 5))
	publish(t, b, chat.ConvTopic(2), msg(2, 7))
	if got := seqsOf(t, c, 1, time.Second); fmt.Sprint(got) != "[7]" {
		t.Errorf("a topic that delivered it: delivered %v; want [7] only", got)
	}

	// Topic 3 started at 8.
	publish(t, b, chat.ConvTopic(3), msg(3, 8))
	publish(t, b, chat.ConvTopic(3), again(3, 7))
	publish(t, b, chat.ConvTopic(3), msg(3, 9))
	if got := seqsOf(t, c, 2, time.Second); fmt.Sprint(got) != "[8 9]" {
		t.Errorf("a topic that started after it: delivered %v; want [8 9]", got)
	}
	if n := fetched.Load(); n != 0 {
		t.Errorf("%d fetches; want none", n)
	}
}

// TestRepeatBeforeItsFirstPublish: a repeat delivered by a topic that had
// delivered nothing yet counts as delivered: the message's first publish,
// arriving after it (its sender retried while it was on its way, or a
// broker published it again later), and a second repeat are dropped, as
// they are where the topic was in order. Clients without a seq to drop
// them by (the compatibility endpoint) would show the message twice.
func TestRepeatBeforeItsFirstPublish(t *testing.T) {
	h, b := newHub(t)
	h.UseStore(func(_ context.Context, tp chat.Topic, after int64) ([]chat.Event, error) {
		return nil, fmt.Errorf("fetch(%s, after %d); want none", tp, after)
	})
	again := func(conv, seq int64) chat.Event {
		ev := msg(conv, seq)
		ev.Repeat = true
		return ev
	}
	c := mustRegister(t, h, 0, 0, 64)
	for _, id := range []int64{1, 2} {
		if err := h.Subscribe(c, chat.ConvTopic(id)); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, b, chat.ConvTopic(1), again(1, 5))
	publish(t, b, chat.ConvTopic(1), msg(1, 5))
	publish(t, b, chat.ConvTopic(1), msg(1, 6))
	publish(t, b, chat.ConvTopic(2), again(2, 5))
	publish(t, b, chat.ConvTopic(2), again(2, 5))
	publish(t, b, chat.ConvTopic(2), msg(2, 6))
	var got []string // the broker delivers as it publishes: all is there
	for _, it := range c.Next(nil) {
		got = append(got, fmt.Sprintf("%d/%d", it.Event.ConvID, it.Event.Message.Seq))
	}
	if want := "[1/5 1/6 2/5 2/6]"; fmt.Sprint(got) != want {
		t.Errorf("delivered %v; want %s", got, want)
	}
}

// TestRepeatUserEvent: a logged user event published again
// (chat.Event.Repeat, after a change of unknown outcome) is delivered
// where the topic has delivered neither it nor a later logged event, and
// then only once; one that comes early waits, as any logged event does,
// for those before it.
func TestRepeatUserEvent(t *testing.T) {
	h, b := newHub(t)
	c := mustRegister(t, h, 7, 1, 64)
	ev := func(seq int64, repeat bool) chat.Event {
		return chat.Event{Type: chat.EventContact, UserSeq: seq, Repeat: repeat}
	}
	publish(t, b, chat.UserTopic(7), ev(1, false))
	publish(t, b, chat.UserTopic(7), ev(1, true)) // delivered: dropped
	publish(t, b, chat.UserTopic(7), ev(3, true)) // its first publish lost; early: held
	publish(t, b, chat.UserTopic(7), ev(3, true))
	publish(t, b, chat.UserTopic(7), ev(2, true)) // delivered, then 3
	publish(t, b, chat.UserTopic(7), ev(4, false))
	publish(t, b, chat.UserTopic(7), ev(2, false)) // a later one went before it
	// The broker delivers as it publishes: all is there.
	var got []int64
	for _, it := range c.Next(nil) {
		got = append(got, it.Event.UserSeq)
	}
	if want := "[1 2 3 4]"; fmt.Sprint(got) != want {
		t.Errorf("delivered user events %v; want %s", got, want)
	}
}
