package hub_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
	"github.com/parley-chat/parley/internal/inmem"
	"github.com/parley-chat/parley/internal/redis"
	"github.com/parley-chat/parley/internal/testenv"
)

// redisHub is a hub whose broker reaches a real Redis through a proxy the
// test can freeze, and a broker of another node that reaches it directly.
func redisHub(t *testing.T) (h *hub.Hub, p *testenv.Proxy, other *redis.Broker, numSub func(chat.Topic) int64) {
	t.Helper()
	rawURL, prefix, raw := testenv.Redis(t)
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p = testenv.StartProxy(t, u.Host)
	direct, err := redis.New(context.Background(), rawURL, redis.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = direct.Close() })
	u.Host = p.Addr()
	c, err := redis.New(context.Background(), u.String(), redis.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() }) // before the proxy is cut
	h = hub.New(c.Broker(), slog.New(slog.DiscardHandler))
	c.Broker().OnResume(func() { h.Resync(context.Background()) })
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		_ = h.Close(ctx)
	})
	numSub = func(tp chat.Topic) int64 {
		m, err := raw.PubSubNumSub(context.Background(), prefix+string(tp)).Result()
		if err != nil {
			t.Fatal(err)
		}
		return m[prefix+string(tp)]
	}
	return h, p, direct.Broker(), numSub
}

// TestHubNotBlockedByHangingRedis: when Redis stops answering (its host
// gone: the connections stay open and nothing comes back), the broker
// notices only after its ping times out, up to about 10 s later. A
// subscription made meanwhile waits for Redis to confirm it; the hub must
// not hold its lock for that, or every connect, open and close of the
// node waits behind it. Once Redis answers again, the subscriptions made
// and cancelled meanwhile are what the hub's clients follow.
func TestHubNotBlockedByHangingRedis(t *testing.T) {
	h, p, other, numSub := redisHub(t)
	a := mustRegister(t, h, 0, 0, 64)
	if err := h.Subscribe(a, chat.ConvTopic(1)); err != nil {
		t.Fatal(err)
	}
	p.Freeze()

	// b opens conversation 2, new to the node: its subscription waits
	// for Redis.
	b := mustRegister(t, h, 0, 0, 64)
	bDone := make(chan error, 1)
	go func() { bDone <- h.Subscribe(b, chat.ConvTopic(2)) }()
	time.Sleep(200 * time.Millisecond)

	// Meanwhile c connects as a user, opens conversation 1 (which the
	// node follows already) and 3 (new), and closes 3; then it leaves.
	done := make(chan error, 1)
	go func() {
		c, err := h.Register(7, 70, 64, nil)
		if err == nil {
			err = h.Subscribe(c, chat.ConvTopic(1))
		}
		if err == nil {
			err = h.Subscribe(c, chat.ConvTopic(3))
		}
		if err == nil {
			h.Unsubscribe(c, chat.ConvTopic(3))
			h.Unregister(c)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("connect, open and close on a node whose Redis hangs: not done within 3s (the hub waits for Redis with its lock held)")
	}
	select {
	case err := <-bDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a subscription while Redis hangs: no return within 15s")
	}

	// New connections get through the proxy: once the broker's ping
	// times out, it drops the frozen ones and Redis answers again.
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for seq := int64(1); ; seq++ {
		if time.Now().After(deadline) {
			t.Fatal("conversation 2 not delivered to b within 30s of Redis answering again")
		}
		if err := other.Publish(ctx, chat.ConvTopic(2), msg(2, seq)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if len(b.Next(nil)) > 0 {
			break
		}
	}
	for _, tp := range []chat.Topic{chat.ConvTopic(3), chat.UserTopic(7)} {
		for numSub(tp) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: still subscribed in Redis after its last client left", tp)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if n := numSub(chat.ConvTopic(1)); n != 1 {
		t.Errorf("conversation 1: %d subscriptions in Redis; want 1", n)
	}
}

// stuckBroker is an inmem broker whose Subscribe waits until open is
// closed, as a Redis that hangs unnoticed keeps it waiting.
type stuckBroker struct {
	chat.Broker
	open chan struct{}
}

func (b *stuckBroker) Subscribe(t chat.Topic, fn func(chat.Event)) (func(), error) {
	<-b.open
	return b.Broker.Subscribe(t, fn)
}

// TestSubscribeLateCatchesUp: a Subscribe that stops waiting for a broker
// slow to answer returns without the broker subscription; what is
// published before that is made reaches the client from the store once
// it is, as after a reconnect.
func TestSubscribeLateCatchesUp(t *testing.T) {
	b := &stuckBroker{Broker: inmem.NewBroker(), open: make(chan struct{})}
	h := hub.New(b, slog.New(slog.DiscardHandler))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		_ = h.Close(ctx)
	})
	h.UseStore(func(_ context.Context, tp chat.Topic, after int64) ([]chat.Event, error) {
		if tp != chat.ConvTopic(1) || after != 4 {
			return nil, nil
		}
		return []chat.Event{msg(1, 5)}, nil
	})
	c := mustRegister(t, h, 0, 0, 64)
	done := make(chan error, 1)
	go func() { done <- h.Subscribe(c, chat.ConvTopic(1)) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		close(b.open)
		t.Fatal("Subscribe with the broker stuck: no return within 5s")
	}
	h.Seen(chat.ConvTopic(1), 4) // the client read the store up to 4
	publish(t, b, chat.ConvTopic(1), msg(1, 5))
	close(b.open)
	if got := seqsOf(t, c, 1, 5*time.Second); fmt.Sprint(got) != "[5]" {
		t.Errorf("delivered %v; want [5], from the store", got)
	}
}
