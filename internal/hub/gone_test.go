package hub_test

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
)

// lingeringBroker is a broker whose subscriptions go on delivering what
// the test hands them after they are cancelled, as a Redis client
// dispatches the messages it read before the unsubscribe was made.
type lingeringBroker struct {
	chat.Broker
	mu  sync.Mutex
	fns map[chat.Topic]func(chat.Event)
}

func (b *lingeringBroker) Subscribe(t chat.Topic, fn func(chat.Event)) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fns == nil {
		b.fns = make(map[chat.Topic]func(chat.Event))
	}
	b.fns[t] = fn
	return func() {}, nil
}

// deliver hands ev to the last subscription made to t.
func (b *lingeringBroker) deliver(t chat.Topic, ev chat.Event) {
	b.mu.Lock()
	fn := b.fns[t]
	b.mu.Unlock()
	fn(ev)
}

// TestGoneTopicHoldsNothing: a message that reaches a topic after its
// last client left, early in seq order, is dropped: the topic does not
// hold it for its reorder wait, nor read the store to fill the gap before
// it, for nobody.
func TestGoneTopicHoldsNothing(t *testing.T) {
	b := &lingeringBroker{}
	h := hub.New(b, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	var fetched atomic.Int32
	h.UseStore(func(context.Context, chat.Topic, int64) ([]chat.Event, error) {
		fetched.Add(1)
		return nil, nil
	})
	c := mustRegister(t, h, 0, 0, 16)
	if err := h.Subscribe(c, chat.ConvTopic(1)); err != nil {
		t.Fatal(err)
	}
	b.deliver(chat.ConvTopic(1), msg(1, 1))
	h.Unregister(c)
	b.deliver(chat.ConvTopic(1), msg(1, 3)) // 2 is late
	time.Sleep(3 * 100 * time.Millisecond)  // the reorder wait, and then some
	if n := fetched.Load(); n != 0 {
		t.Errorf("the store was read %d times for a topic nobody follows; want 0", n)
	}
}
