package hub_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
)

// armedGate blocks the first Wake after it is armed until release is
// closed, having closed entered; wakes before it is armed pass.
type armedGate struct {
	armed            atomic.Bool
	once             sync.Once
	entered, release chan struct{}
}

func (w *armedGate) Wake(*hub.Client) {
	if !w.armed.Load() {
		return
	}
	w.once.Do(func() {
		close(w.entered)
		<-w.release
	})
}

// TestReleaseThenUnsubscribe: a client that a follow held is let go with
// what the topic held for it; an Unsubscribe of the topic that returns
// meanwhile is followed by none of it, as it is by no fan-out. The
// client's Waker stops the release at its first push: an Unsubscribe
// that returns then must find nothing pushed after it.
func TestReleaseThenUnsubscribe(t *testing.T) {
	h, b := newHub(t)
	s := newBlockingStore(4)
	s.err = errors.New("store down") // the catch-up pushes nothing: the release pushes all
	h.UseStore(s.fetch)
	t5 := chat.ConvTopic(5)
	other := mustRegister(t, h, 1, 1, 64)
	if err := h.Subscribe(other, t5); err != nil {
		t.Fatal(err)
	}
	for seq := int64(1); seq <= 4; seq++ {
		publish(t, b, t5, msg(5, seq))
	}
	gate := &armedGate{entered: make(chan struct{}), release: make(chan struct{})}
	defer func() {
		select {
		case <-gate.release:
		default:
			close(gate.release)
		}
	}()
	c, err := h.Register(100, 2, 64, gate)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, b, chat.UserTopic(100), added(100, 1, 2))
	select {
	case <-s.entered:
	case <-time.After(5 * time.Second):
		close(s.release)
		t.Fatal("the follow did not read the store within 5s")
	}
	publish(t, b, t5, msg(5, 5))
	publish(t, b, t5, msg(5, 6))
	for c.Next(nil) != nil { // idle: the release's first push wakes it
	}
	gate.armed.Store(true)
	close(s.release)
	select {
	case <-gate.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the release pushed nothing within 5s")
	}
	done := make(chan int, 1)
	go func() {
		h.Unsubscribe(c, t5)
		done <- c.Queued()
	}()
	var atReturn int
	returned := false
	select {
	case atReturn = <-done: // while the release is stopped at its first push
		returned = true
	case <-time.After(200 * time.Millisecond): // waiting for the release: it is let go below
	}
	close(gate.release)
	waitGoroutines(t, "(*Hub).follow", "(*Hub).catchUp", "(*Hub).release")
	if !returned {
		select {
		case atReturn = <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Unsubscribe did not return within 5s of the release")
		}
	}
	if n := c.Queued(); n != atReturn {
		t.Errorf("%d items queued as Unsubscribe returned, %d once the release ended: %d frames of the topic came after it", atReturn, n, n-atReturn)
	}
	h.Unregister(c)
	h.Unregister(other)
}
