package hub_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
)

// TestRemovedWaitsForItsMessage: the message that removes user 2 from
// conversation 5 (seq 3, with Revoke) is held back, waiting for seq 2,
// when the user's EventRemoved arrives (another node published seq 2
// late). The user's connection gets seq 2, its removal, and then the
// removed frame, as docs/protocol.md promises; the other member gets
// both messages.
func TestRemovedWaitsForItsMessage(t *testing.T) {
	h, b := newHub(t)
	stay, gone := stayAndGone(t, h)
	removalHeldBack(t, b)
	if got := fmt.Sprint(queuedOf(gone)); got != "[1]" {
		t.Errorf("removed client got %s before seq 2; want [1]", got)
	}
	publish(t, b, chat.ConvTopic(5), msg(5, 2))
	publish(t, b, chat.ConvTopic(5), msg(5, 4))
	if got := fmt.Sprint(queuedOf(gone)); got != "[2 3 removed]" {
		t.Errorf("removed client got %s; want [2 3 removed]", got)
	}
	if got := fmt.Sprint(queuedOf(stay)); got != "[1 2 3 4]" {
		t.Errorf("staying client got %s; want [1 2 3 4]", got)
	}
}

// TestRemovedWaitingTopicGoes: as above, but the conversation's topic
// goes (its last clients close it) while the removal waits: the removed
// frame still reaches the user's connection.
func TestRemovedWaitingTopicGoes(t *testing.T) {
	h, b := newHub(t)
	gone := mustRegister(t, h, 2, 2, 16)
	if err := h.Subscribe(gone, chat.ConvTopic(5)); err != nil {
		t.Fatal(err)
	}
	removalHeldBack(t, b)
	h.Unsubscribe(gone, chat.ConvTopic(5))
	if got := fmt.Sprint(queuedOf(gone)); got != "[1 removed]" {
		t.Errorf("removed client got %s; want [1 removed]", got)
	}
}

// removalHeldBack publishes seq 1 of conversation 5, then seq 3, which
// removes user 2 and waits for seq 2, then user 2's EventRemoved.
func removalHeldBack(t *testing.T, b chat.Broker) {
	t.Helper()
	publish(t, b, chat.ConvTopic(5), msg(5, 1))
	rm := msg(5, 3)
	rm.Revoke = 2
	publish(t, b, chat.ConvTopic(5), rm)
	publish(t, b, chat.UserTopic(2), chat.Event{Type: chat.EventRemoved, ConvID: 5, Reason: "removed", UserSeq: 1})
}

// TestRemovedWaitingLaterUserEvent: as TestRemovedWaitsForItsMessage, but
// an event of the user's log after the removal (a contact, UserSeq 2)
// comes while the removal waits. The user's events must still reach the
// connection in UserSeq order, the removed frame first: a session that
// got 2 first would fill 1, the removal, from the store, and then take
// the group's messages after it.
func TestRemovedWaitingLaterUserEvent(t *testing.T) {
	h, b := newHub(t)
	stay, gone := stayAndGone(t, h)
	publish(t, b, chat.ConvTopic(5), msg(5, 1))
	rm := msg(5, 3)
	rm.Revoke = 2
	publish(t, b, chat.ConvTopic(5), rm)
	publish(t, b, chat.UserTopic(2), chat.Event{Type: chat.EventRemoved, ConvID: 5, Reason: "removed", UserSeq: 1})
	publish(t, b, chat.UserTopic(2), chat.Event{Type: chat.EventContact, UserSeq: 2})
	publish(t, b, chat.ConvTopic(5), msg(5, 2))
	publish(t, b, chat.ConvTopic(5), msg(5, 4))
	var order []int64
	var after []string
	for _, it := range gone.Next(nil) {
		switch {
		case it.Event.UserSeq > 0:
			order = append(order, it.Event.UserSeq)
		case len(order) > 0 && it.Event.Message != nil:
			after = append(after, fmt.Sprint(it.Event.Message.Seq))
		}
	}
	if fmt.Sprint(order) != "[1 2]" || after != nil {
		t.Errorf("removed client got user events %v, and messages %v after the first; want [1 2], and none", order, after)
	}
	if got := fmt.Sprint(queuedOf(stay)); got != "[1 2 3 4]" {
		t.Errorf("staying client got %s; want [1 2 3 4]", got)
	}
}

// TestRemovedWaitsForRepeatedMessage: the message that removes user 2
// was delivered first as a repeat (chat.Event.Repeat, before any other),
// and its first publish, which the topic does not deliver again, is held
// back when the user's EventRemoved comes. Its frame must not wait for
// ever.
func TestRemovedWaitsForRepeatedMessage(t *testing.T) {
	h, b := newHub(t)
	stay, gone := stayAndGone(t, h)
	rm := msg(5, 3)
	rm.Revoke = 2
	again := rm
	again.Repeat = true
	publish(t, b, chat.ConvTopic(5), again)
	publish(t, b, chat.ConvTopic(5), msg(5, 1))
	publish(t, b, chat.ConvTopic(5), rm)
	publish(t, b, chat.UserTopic(2), chat.Event{Type: chat.EventRemoved, ConvID: 5, Reason: "removed", UserSeq: 1})
	publish(t, b, chat.ConvTopic(5), msg(5, 2))
	publish(t, b, chat.ConvTopic(5), msg(5, 4))
	if got := queuedOf(gone); !slices.Contains(got, "removed") {
		t.Errorf("removed client got %v; want the removed frame", got)
	}
	if got := fmt.Sprint(queuedOf(stay)); got != "[3 1 2 4]" {
		t.Errorf("staying client got %s; want [3 1 2 4]", got)
	}
}

// stayAndGone registers user 1 (who stays) and user 2 (who goes), each
// with one connection subscribed to conversation 5.
func stayAndGone(t *testing.T, h *hub.Hub) (stay, gone *hub.Client) {
	t.Helper()
	stay = mustRegister(t, h, 1, 1, 16)
	gone = mustRegister(t, h, 2, 2, 16)
	for _, c := range []*hub.Client{stay, gone} {
		if err := h.Subscribe(c, chat.ConvTopic(5)); err != nil {
			t.Fatal(err)
		}
	}
	return stay, gone
}
