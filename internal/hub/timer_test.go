package hub_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
)

// TestStaleReorderTimerHoldsNothing: a reorder timer that fires as the
// gap it waited for closes (its flush then waits for the delivery that
// closes it) must not cut short the wait of a gap opened after: the next
// early message is held its whole reorder wait, so that the one before
// it, arriving within the wait, is delivered first.
func TestStaleReorderTimerHoldsNothing(t *testing.T) {
	h, b := newHub(t)
	gate := make(chan struct{})
	var gated sync.Once
	var hold chan struct{} // set while the test holds the writer's wake
	var mu sync.Mutex
	c, err := h.Register(0, 0, 64, hub.WakeFunc(func(*hub.Client) {
		mu.Lock()
		g := hold
		mu.Unlock()
		if g != nil {
			gated.Do(func() { close(gate) })
			<-g // a wake that takes long: the fan-out holds the topic meanwhile
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Subscribe(c, chat.ConvTopic(1)); err != nil {
		t.Fatal(err)
	}
	publish(t, b, chat.ConvTopic(1), msg(1, 1))
	publish(t, b, chat.ConvTopic(1), msg(1, 3)) // held: its reorder timer starts
	var got []int64
	for {
		items := c.Next(nil)
		if items == nil {
			break // the writer is idle: the next push wakes it
		}
		for _, it := range items {
			got = append(got, it.Event.Message.Seq)
		}
	}
	release := make(chan struct{})
	mu.Lock()
	hold = release
	mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // 2 arrives; its fan-out wakes the writer, slowly
		defer wg.Done()
		publish(t, b, chat.ConvTopic(1), msg(1, 2))
	}()
	<-gate
	go func() { // 5 arrives, and waits for the topic
		defer wg.Done()
		publish(t, b, chat.ConvTopic(1), msg(1, 5))
	}()
	time.Sleep(150 * time.Millisecond) // 3's timer fires, and waits for the topic too
	mu.Lock()
	hold = nil
	mu.Unlock()
	close(release)
	wg.Wait()
	time.Sleep(10 * time.Millisecond)
	publish(t, b, chat.ConvTopic(1), msg(1, 4)) // well within 5's wait
	got = append(got, seqsOf(t, c, 3, time.Second)...)
	if want := "[1 2 3 4 5]"; fmt.Sprint(got) != want {
		t.Errorf("delivered %v; want %v: 5 held its whole reorder wait", got, want)
	}
}
