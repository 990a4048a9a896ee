package hub_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
	"github.com/parley-chat/parley/internal/inmem"
)

// gatedBroker is an inmem broker without SubscribeAll whose Subscribe
// waits until open is closed, as a Redis that hangs keeps it waiting. It
// records the topics it holds a subscription to.
type gatedBroker struct {
	chat.Broker
	open chan struct{}

	mu   sync.Mutex
	subs map[chat.Topic]int
}

func (b *gatedBroker) Subscribe(t chat.Topic, fn func(chat.Event)) (func(), error) {
	<-b.open
	cancel, err := b.Broker.Subscribe(t, fn)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.subs[t]++
	b.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			if b.subs[t]--; b.subs[t] == 0 {
				delete(b.subs, t)
			}
			b.mu.Unlock()
			cancel()
		})
	}, nil
}

func (b *gatedBroker) held() map[chat.Topic]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := make(map[chat.Topic]int, len(b.subs))
	for t, n := range b.subs {
		m[t] = n
	}
	return m
}

// TestBrokerOpsCoalesced: while the broker hangs on one subscription, a
// client that opens and closes a conversation at its frame rate, and a
// connection that comes and goes, must not grow the hub's queue of broker
// calls with every toggle: a subscription cancelled before it was made is
// dropped with its cancel. Once the broker answers, it holds the
// subscriptions of the topics followed at the end, and no other.
func TestBrokerOpsCoalesced(t *testing.T) {
	b := &gatedBroker{Broker: inmem.NewBroker(), open: make(chan struct{}), subs: make(map[chat.Topic]int)}
	h := hub.New(b, slog.New(slog.DiscardHandler))
	opened := false
	t.Cleanup(func() {
		if !opened {
			close(b.open)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		_ = h.Close(ctx)
	})

	// a opens conversation 1: its subscription hangs, and Subscribe stops
	// waiting for it.
	a := mustRegister(t, h, 0, 0, 64)
	if err := h.Subscribe(a, chat.ConvTopic(1)); err != nil {
		t.Fatal(err)
	}

	const toggles = 2000
	c := mustRegister(t, h, 0, 0, 64)
	for range toggles {
		if err := h.Subscribe(c, chat.ConvTopic(2)); err != nil {
			t.Fatal(err)
		}
		h.Unsubscribe(c, chat.ConvTopic(2))
		d := mustRegister(t, h, 9, 90, 64)
		h.Unregister(d)
	}
	// At the end c follows conversation 2, and e, a new member,
	// conversation 3; conversation 4 was opened and closed.
	if err := h.Subscribe(c, chat.ConvTopic(2)); err != nil {
		t.Fatal(err)
	}
	e := mustRegister(t, h, 0, 0, 64)
	if err := h.Subscribe(e, chat.ConvTopic(3)); err != nil {
		t.Fatal(err)
	}
	if err := h.Subscribe(e, chat.ConvTopic(4)); err != nil {
		t.Fatal(err)
	}
	h.Unsubscribe(e, chat.ConvTopic(4))

	// Topics 2 and 3 to subscribe (1 is being made): the queue holds
	// those, give or take what it has yet to clear, not a call per toggle.
	const bound = 2*2 + 64
	if n := h.QueuedOps(); n > bound {
		t.Errorf("after %d opens and closes, and as many connects and disconnects, while the broker hangs: %d broker calls queued; want at most %d", toggles, n, bound)
	}

	close(b.open)
	opened = true
	want := map[chat.Topic]int{chat.ConvTopic(1): 1, chat.ConvTopic(2): 1, chat.ConvTopic(3): 1}
	var got map[chat.Topic]int
	for i := 0; i < 1000; i++ { // 10 s at most
		got = b.held()
		if h.QueuedOps() == 0 && len(got) == len(want) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for tp, n := range want {
		if got[tp] != n {
			t.Errorf("broker subscriptions of %s: %d; want %d", tp, got[tp], n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("broker subscriptions %v; want %v", got, want)
	}
	publish(t, b, chat.ConvTopic(2), msg(2, 1))
	publish(t, b, chat.ConvTopic(3), msg(3, 1))
	if got := seqsOf(t, c, 1, 5*time.Second); len(got) != 1 || got[0] != 1 {
		t.Errorf("c delivered %v of conversation 2; want [1]", got)
	}
	if got := seqsOf(t, e, 1, 5*time.Second); len(got) != 1 || got[0] != 1 {
		t.Errorf("e delivered %v of conversation 3; want [1]", got)
	}
}
