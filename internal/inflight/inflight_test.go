package inflight_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/inflight"
)

func TestWaitNone(t *testing.T) {
	var c inflight.Count
	if n := c.Wait(context.Background()); n != 0 {
		t.Fatalf("Wait() = %d; want 0", n)
	}
	c.Start()
	c.Done()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n := c.Wait(ctx); n != 0 {
		t.Fatalf("Wait(ended context) after Start, Done = %d; want 0", n)
	}
}

func TestWaitEnds(t *testing.T) {
	var c inflight.Count
	c.Start()
	c.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if n := c.Wait(ctx); n != 2 {
		t.Fatalf("Wait(ending context) = %d; want 2", n)
	}
	c.Done()
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if n := c.Wait(ctx); n != 1 {
		t.Fatalf("Wait(ending context) = %d; want 1", n)
	}
	c.Done()
	if n := c.Wait(context.Background()); n != 0 {
		t.Fatalf("Wait() = %d; want 0", n)
	}
}

// TestWaitForLater: work that starts while Wait waits is waited for.
func TestWaitForLater(t *testing.T) {
	var c inflight.Count
	c.Start()
	waited := make(chan int, 1)
	go func() { waited <- c.Wait(context.Background()) }()
	time.Sleep(10 * time.Millisecond) // let Wait wait
	c.Start()                         // a second, while the first runs
	c.Done()
	select {
	case n := <-waited:
		t.Fatalf("Wait returned %d with work under way", n)
	case <-time.After(20 * time.Millisecond):
	}
	c.Done()
	select {
	case n := <-waited:
		if n != 0 {
			t.Fatalf("Wait() = %d; want 0", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return once no work was under way")
	}
}

// TestConcurrent starts and ends work from many goroutines while others
// wait; run with -race.
func TestConcurrent(t *testing.T) {
	var c inflight.Count
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 200 {
				c.Start()
				c.Done()
			}
		}()
		go func() {
			defer wg.Done()
			for range 50 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
				if n := c.Wait(ctx); n < 0 || n > 8 {
					t.Errorf("Wait() = %d; want 0 to 8", n)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	if n := c.Wait(context.Background()); n != 0 {
		t.Fatalf("Wait() after all work = %d; want 0", n)
	}
}

func TestDoneWithoutStart(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Done without Start did not panic")
		}
	}()
	var c inflight.Count
	c.Done()
}
