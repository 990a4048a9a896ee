package hub_test

import (
	"testing"

	"github.com/parley-chat/parley/internal/chat"
)

// TestRemovalsBounded: a user topic notes the removals of its user from
// each conversation (for the follows of additions that cross them), but
// not from every conversation the user ever left while connected: a
// user who leaves one room after another does not grow it for ever. An
// addition to a group older than a removal from it that the topic no
// longer notes, delivered late, still follows nothing: the user is no
// member.
func TestRemovalsBounded(t *testing.T) {
	h, b := newHub(t)
	const user, rooms = 100, 3000
	c := mustRegister(t, h, user, 1, rooms+16)
	publish(t, b, chat.UserTopic(user), chat.Event{Type: chat.EventRemoved, ConvID: 5, Reason: "removed", UserSeq: 10})
	for i := range int64(rooms) {
		publish(t, b, chat.UserTopic(user), chat.Event{Type: chat.EventRemoved, ConvID: 1000 + i, Reason: "left", UserSeq: 11 + i})
	}
	if n := h.RemovalsNoted(user); n > 1000 {
		t.Errorf("after removals from %d conversations the user's topic notes %d; want at most 1000", rooms+1, n)
	}
	// Logged before the topic's first event, delivered as it comes: it
	// ended with the removal at 10.
	publish(t, b, chat.UserTopic(user), added(user, 3, 2))
	waitGoroutines(t, "(*Hub).follow")
	c.Next(nil)
	other := mustRegister(t, h, 1, 2, 16)
	if err := h.Subscribe(other, chat.ConvTopic(5)); err != nil {
		t.Fatal(err)
	}
	publish(t, b, chat.ConvTopic(5), msg(5, 7))
	if got := queuedOf(c); len(got) > 0 {
		t.Errorf("the user removed from group 5 at 10 got %v after a late addition logged at 3; want nothing", got)
	}
	h.Unregister(c)
	h.Unregister(other)
}
