package keyed_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/internal/keyed"
)

// TestExclusive: a key's lock is held by one at a time, and guards its
// value; run with -race.
func TestExclusive(t *testing.T) {
	var l keyed.Locks[int, int]
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				v := l.Lock(1)
				*v++
				l.Unlock(1, func(*int) bool { return true })
			}
		}()
	}
	wg.Wait()
	v := l.Lock(1)
	defer l.Unlock(1, nil)
	if *v != 8*500 {
		t.Fatalf("value after 4000 increments = %d; want 4000", *v)
	}
}

// TestKeysApart: work on one key does not wait for another's.
func TestKeysApart(t *testing.T) {
	var l keyed.Locks[string, struct{}]
	l.Lock("a")
	done := make(chan struct{})
	go func() {
		l.Lock("b")
		l.Unlock("b", nil)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Lock(b) waited for a's lock")
	}
	l.Unlock("a", nil)
}

// TestWaits: a second Lock of a key waits for the first's Unlock, and
// finds the value it left, though keep would drop it.
func TestWaits(t *testing.T) {
	var l keyed.Locks[int, string]
	*l.Lock(1) = "first"
	got := make(chan string, 1)
	go func() {
		v := l.Lock(1)
		got <- *v
		l.Unlock(1, nil)
	}()
	select {
	case v := <-got:
		t.Fatalf("second Lock returned %q while the first held the lock", v)
	case <-time.After(20 * time.Millisecond):
	}
	l.Unlock(1, nil) // a waiter: kept for it
	select {
	case v := <-got:
		if v != "first" {
			t.Fatalf("second Lock's value = %q; want %q", v, "first")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second Lock did not return after Unlock")
	}
}

func TestKeep(t *testing.T) {
	var l keyed.Locks[int, int]
	nonzero := func(v *int) bool { return *v != 0 }
	*l.Lock(1) = 5
	l.Unlock(1, nonzero)
	l.Lock(2)
	l.Unlock(2, nonzero)
	l.Lock(3) // held
	defer l.Unlock(3, nil)
	got := l.Keys()
	slices.Sort(got)
	if diff := cmp.Diff([]int{1, 3}, got); diff != "" {
		t.Errorf("Keys() mismatch (-want +got):\n%s", diff)
	}
	for k, want := range map[int]bool{1: true, 2: false, 3: true} {
		if got := l.Has(k); got != want {
			t.Errorf("Has(%d) = %t; want %t", k, got, want)
		}
	}
	if v := l.Lock(1); *v != 5 {
		t.Errorf("kept value = %d; want 5", *v)
	}
	l.Unlock(1, nil)
	if l.Has(1) {
		t.Error("Has(1) = true after an Unlock with nil keep")
	}
}

func TestUnlockNotLocked(t *testing.T) {
	var l keyed.Locks[int, int]
	*l.Lock(1) = 1
	l.Unlock(1, func(*int) bool { return true }) // kept, not locked
	for _, k := range []int{1, 2} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Unlock(%d) of a key not locked did not panic", k)
				}
			}()
			l.Unlock(k, nil)
		}()
	}
}
