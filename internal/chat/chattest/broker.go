package chattest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/internal/chat"
)

// collector records the events one subscription receives.
type collector struct {
	mu     sync.Mutex
	events []chat.Event
	signal chan struct{}
}

func newCollector() *collector { return &collector{signal: make(chan struct{}, 1)} }

func (c *collector) add(ev chat.Event) {
	c.mu.Lock()
	c.events = append(c.events, ev)
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// wait returns the events once there are n, failing after timeout.
func (c *collector) wait(tb testing.TB, n int, timeout time.Duration) []chat.Event {
	tb.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		got := append([]chat.Event(nil), c.events...)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-c.signal:
		case <-deadline:
			tb.Fatalf("received %d events; want %d within %s", len(got), n, timeout)
		}
	}
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

func textEvent(conv, seq int64) chat.Event {
	return chat.Event{Type: chat.EventMessage, ConvID: conv, Message: &chat.Message{
		ConvID: conv, Seq: seq, Kind: chat.KindText, SenderID: 1, SenderName: "Ada", ClientID: fmt.Sprint("c", seq),
		Body: fmt.Sprint("message ", seq), CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
	}}
}

// TestBroker checks that a Broker implementation keeps the chat.Broker
// contract. open returns a fresh broker (and its own topics namespace) for
// each subtest; brokers that deliver asynchronously get a few seconds.
func TestBroker(t *testing.T, open func(t *testing.T) chat.Broker) {
	const wait = 5 * time.Second
	ctx := context.Background()

	t.Run("DeliversInOrder", func(t *testing.T) {
		b := open(t)
		c := newCollector()
		cancel, err := b.Subscribe(chat.ConvTopic(1), c.add)
		if err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
		defer cancel()
		var want []chat.Event
		for i := int64(1); i <= 200; i++ {
			ev := textEvent(1, i)
			want = append(want, ev)
			if err := b.Publish(ctx, chat.ConvTopic(1), ev); err != nil {
				t.Fatalf("Publish: %v", err)
			}
		}
		if diff := cmp.Diff(want, c.wait(t, len(want), wait)); diff != "" {
			t.Errorf("events mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("TopicsAreSeparate", func(t *testing.T) {
		b := open(t)
		c1, c2 := newCollector(), newCollector()
		cancel1, err := b.Subscribe(chat.ConvTopic(1), c1.add)
		if err != nil {
			t.Fatal(err)
		}
		defer cancel1()
		cancel2, err := b.Subscribe(chat.UserTopic(1), c2.add)
		if err != nil {
			t.Fatal(err)
		}
		defer cancel2()
		if err := b.Publish(ctx, chat.ConvTopic(1), textEvent(1, 1)); err != nil {
			t.Fatal(err)
		}
		ended := chat.Event{Type: chat.EventSessionEnded, UserID: 1, SessionID: 9}
		if err := b.Publish(ctx, chat.UserTopic(1), ended); err != nil {
			t.Fatal(err)
		}
		contact := chat.Event{Type: chat.EventContact, Contact: &chat.Contact{
			User: chat.User{ID: 3, Name: "Grace", CreatedAt: t0}, State: chat.StateRequestReceived, Since: t0,
		}}
		if err := b.Publish(ctx, chat.UserTopic(1), contact); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]chat.Event{textEvent(1, 1)}, c1.wait(t, 1, wait)); diff != "" {
			t.Errorf("conv topic mismatch (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]chat.Event{ended, contact}, c2.wait(t, 2, wait)); diff != "" {
			t.Errorf("user topic mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("EverySubscriberReceives", func(t *testing.T) {
		b := open(t)
		cs := []*collector{newCollector(), newCollector(), newCollector()}
		for _, c := range cs {
			cancel, err := b.Subscribe(chat.ConvTopic(7), c.add)
			if err != nil {
				t.Fatal(err)
			}
			defer cancel()
		}
		presence := chat.Event{Type: chat.EventPresence, ConvID: 7, User: &chat.User{ID: 3, Name: "Grace"}, Online: true}
		if err := b.Publish(ctx, chat.ConvTopic(7), presence); err != nil {
			t.Fatal(err)
		}
		for i, c := range cs {
			if diff := cmp.Diff([]chat.Event{presence}, c.wait(t, 1, wait)); diff != "" {
				t.Errorf("subscriber %d mismatch (-want +got):\n%s", i, diff)
			}
		}
	})

	t.Run("CancelStopsDelivery", func(t *testing.T) {
		b := open(t)
		gone, stays := newCollector(), newCollector()
		cancelGone, err := b.Subscribe(chat.ConvTopic(2), gone.add)
		if err != nil {
			t.Fatal(err)
		}
		cancelStays, err := b.Subscribe(chat.ConvTopic(2), stays.add)
		if err != nil {
			t.Fatal(err)
		}
		defer cancelStays()
		if err := b.Publish(ctx, chat.ConvTopic(2), textEvent(2, 1)); err != nil {
			t.Fatal(err)
		}
		gone.wait(t, 1, wait)
		stays.wait(t, 1, wait)
		cancelGone()
		cancelGone() // a second cancel is harmless
		if err := b.Publish(ctx, chat.ConvTopic(2), textEvent(2, 2)); err != nil {
			t.Fatal(err)
		}
		stays.wait(t, 2, wait) // once the survivor has it, the cancelled one would have too
		if n := gone.count(); n != 1 {
			t.Errorf("cancelled subscriber received %d events; want 1", n)
		}
	})

	t.Run("CancelInsideCallback", func(t *testing.T) {
		// A subscriber may end its subscription as it receives an event
		// (the one it waited for), and the others still receive.
		b := open(t)
		once, stays := newCollector(), newCollector()
		var (
			mu         sync.Mutex
			cancelOnce func()
		)
		mu.Lock() // until cancelOnce is set
		c, err := b.Subscribe(chat.ConvTopic(3), func(ev chat.Event) {
			once.add(ev)
			mu.Lock()
			cancel := cancelOnce
			mu.Unlock()
			cancel()
		})
		cancelOnce = c
		mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		cancelStays, err := b.Subscribe(chat.ConvTopic(3), stays.add)
		if err != nil {
			t.Fatal(err)
		}
		defer cancelStays()
		done := make(chan error, 1)
		go func() {
			var err error
			for i := int64(1); i <= 2 && err == nil; i++ {
				err = b.Publish(ctx, chat.ConvTopic(3), textEvent(3, i))
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Publish: %v", err)
			}
		case <-time.After(wait):
			t.Fatalf("Publish did not return within %s of a subscriber cancelling itself in its callback", wait)
		}
		stays.wait(t, 2, wait)
		if n := once.count(); n != 1 {
			t.Errorf("subscriber that cancelled at its first event received %d; want 1", n)
		}
	})

	t.Run("PublishWithoutSubscribers", func(t *testing.T) {
		b := open(t)
		if err := b.Publish(ctx, chat.ConvTopic(99), textEvent(99, 1)); err != nil {
			t.Errorf("Publish with no subscriber = %v; want nil", err)
		}
	})

	t.Run("ConcurrentPublishers", func(t *testing.T) {
		b := open(t)
		c := newCollector()
		cancel, err := b.Subscribe(chat.ConvTopic(5), c.add)
		if err != nil {
			t.Fatal(err)
		}
		defer cancel()
		const writers, each = 4, 50
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					if err := b.Publish(ctx, chat.ConvTopic(5), textEvent(5, int64(w*1000+i))); err != nil {
						t.Errorf("Publish: %v", err)
						return
					}
				}
			}()
		}
		wg.Wait()
		got := c.wait(t, writers*each, wait)
		last := map[int64]int64{}
		for _, ev := range got {
			w, seq := ev.Message.Seq/1000, ev.Message.Seq
			if prev, ok := last[w]; ok && seq <= prev {
				t.Fatalf("publisher %d: event %d after %d; each publisher's events must keep their order", w, seq, prev)
			}
			last[w] = seq
		}
	})
}
