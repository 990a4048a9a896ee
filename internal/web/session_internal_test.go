package web

import (
	"errors"
	"slices"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
)

// TestInOrderFetchFails: a gap that cannot be filled delivers nothing and
// leaves the position where it was, so that a client resumed from there
// misses nothing; once the store answers, the gap comes first, in order.
func TestInOrderFetchFails(t *testing.T) {
	ev := func(n int64) chat.Event { return chat.Event{Type: chat.EventContact, UserSeq: n} }
	num := func(e chat.Event) int64 { return e.UserSeq }
	var o inOrder
	o.reset(2)
	down := errors.New("store down")
	evs, err := o.admit(5, ev(5), func(int64, int) ([]chat.Event, error) { return nil, down }, num)
	if !errors.Is(err, down) || evs != nil || o.last() != 2 {
		t.Fatalf("admit with the store down = %v, %v at %d; want nothing, the error, at 2", evs, err, o.last())
	}
	var asked [2]int64
	evs, err = o.admit(5, ev(5), func(after int64, limit int) ([]chat.Event, error) {
		asked = [2]int64{after, int64(limit)}
		return []chat.Event{ev(3), ev(4), ev(5)}, nil
	}, num)
	var got []int64
	for _, e := range evs {
		got = append(got, e.UserSeq)
	}
	if err != nil || !slices.Equal(got, []int64{3, 4, 5}) || o.last() != 5 || asked != [2]int64{2, 3} {
		t.Errorf("admit = %v, %v at %d, asked %v; want [3 4 5] at 5, asked after 2 for 3", got, err, o.last(), asked)
	}
	if evs, err := o.admit(4, ev(4), nil, num); evs != nil || err != nil {
		t.Errorf("admit of one delivered = %v, %v; want nothing", evs, err)
	}
}
