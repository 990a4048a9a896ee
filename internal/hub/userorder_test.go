package hub_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
)

// userLogStore serves conversation 5's messages and user 100's log, as
// chat.Service.Missed does.
func userLogStore(conv, log []chat.Event) func(context.Context, chat.Topic, int64) ([]chat.Event, error) {
	return func(_ context.Context, tp chat.Topic, after int64) ([]chat.Event, error) {
		switch tp {
		case chat.ConvTopic(5):
			return slices.DeleteFunc(slices.Clone(conv), func(ev chat.Event) bool { return ev.Message.Seq <= after }), nil
		case chat.UserTopic(100):
			return slices.DeleteFunc(slices.Clone(log), func(ev chat.Event) bool { return ev.UserSeq <= after }), nil
		}
		return nil, fmt.Errorf("fetch %s; want conversation 5 or user 100", tp)
	}
}

// removedFrom5 is user's removal from group 5, logged at userSeq.
func removedFrom5(userSeq int64) chat.Event {
	return chat.Event{Type: chat.EventRemoved, ConvID: 5, Reason: "removed", UserSeq: userSeq}
}

// contactAt is a logged EventContact, numbered userSeq.
func contactAt(userSeq int64) chat.Event {
	return chat.Event{Type: chat.EventContact, UserSeq: userSeq}
}

// reAddedAt10 is the hub of TestUserTopicReAddedBeforeRemoved and its
// variants: group 5's messages 1..11, user 100 added at 2 (logged at 1),
// removed at 5 (logged at 2) and added again at 10 (logged at 3), which
// its store gives; another member's connection other holding the group,
// to which 1 and 2 were delivered; and user 100's connection c.
func reAddedAt10(t *testing.T) (h *hub.Hub, b *countingBroker, conv, log []chat.Event, other, c *hub.Client) {
	t.Helper()
	h, b = newHub(t)
	t5 := chat.ConvTopic(5)
	for seq := int64(1); seq <= 11; seq++ {
		ev := msg(5, seq)
		switch seq {
		case 2, 10:
			ev.Message.Kind, ev.Message.TargetID = chat.KindAdded, 100
		case 5:
			ev.Message.Kind, ev.Message.TargetID, ev.Revoke = chat.KindRemoved, 100, 100
		}
		conv = append(conv, ev)
	}
	log = []chat.Event{added(100, 1, 2), removedFrom5(2), added(100, 3, 10)}
	h.UseStore(userLogStore(conv, log))
	other = mustRegister(t, h, 1, 1, 64)
	if err := h.Subscribe(other, t5); err != nil {
		t.Fatal(err)
	}
	publish(t, b, t5, conv[0])
	publish(t, b, t5, conv[1])
	return h, b, conv, log, other, mustRegister(t, h, 100, 2, 64)
}

// TestUserTopicReAddedBeforeRemoved: user 100, following group 5 since
// its addition (logged at 1, seq 2), is removed (logged at 2, seq 5) and
// added again (3, seq 10), others writing 6..9 in between; this node
// receives the addition before the removal (two nodes published them),
// and before the group's messages from 3 on. The connection must not get
// the messages written while the user was not a member.
func TestUserTopicReAddedBeforeRemoved(t *testing.T) {
	// opened: the connection opened group 5 on the user's first
	// membership (SubscribeMember), rather than a follow subscribing it.
	for _, opened := range []bool{false, true} {
		t.Run(fmt.Sprintf("opened=%v", opened), func(t *testing.T) {
			h, b, conv, log, other, c := reAddedAt10(t)
			t5 := chat.ConvTopic(5)
			if opened {
				if err := h.SubscribeMember(c, t5, chat.Mark{UserSeq: 1, Seq: 2}); err != nil {
					t.Fatal(err)
				}
			} else {
				publish(t, b, chat.UserTopic(100), log[0])
				waitGoroutines(t, "(*Hub).follow", "(*Hub).catchUp", "(*Hub).fillGap")
			}

			publish(t, b, chat.UserTopic(100), log[2]) // the addition, early
			waitGoroutines(t, "(*Hub).follow", "(*Hub).catchUp", "(*Hub).fillGap")
			for _, ev := range conv[2:] {
				publish(t, b, t5, ev)
			}
			publish(t, b, chat.UserTopic(100), log[1]) // the removal, late
			var got []int64
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !slices.Contains(got, 11); time.Sleep(5 * time.Millisecond) {
				got = append(got, convSeqs(c)...)
			}
			settleFollows(t)
			got = append(got, convSeqs(c)...)
			if slices.ContainsFunc(got, func(seq int64) bool { return 5 < seq && seq < 10 }) || !slices.Contains(got, 11) {
				t.Errorf("the connection of the user removed at seq 5 and added again at 10 got %v; want 11 and nothing of 6..9", got)
			}
			h.Unregister(c)
			h.Unregister(other)
		})
	}
}

// TestUserTopicRemovedBeforeAdded: user 100 is added to group 5 (logged
// at 2) and removed from it (3), and this node receives the removal
// first: the addition, when it comes, must not subscribe the user's
// connection, whether the user's topic had delivered an earlier logged
// event (1) or none yet.
func TestUserTopicRemovedBeforeAdded(t *testing.T) {
	for _, earlier := range []bool{true, false} {
		t.Run(fmt.Sprintf("earlier=%v", earlier), func(t *testing.T) {
			h, b := newHub(t)
			t5 := chat.ConvTopic(5)
			conv := []chat.Event{msg(5, 1), msg(5, 2), msg(5, 3)}
			conv[1].Message.Kind, conv[1].Message.TargetID = chat.KindAdded, 100
			conv[2].Message.Kind, conv[2].Message.TargetID, conv[2].Revoke = chat.KindRemoved, 100, 100
			log := []chat.Event{{Type: chat.EventConversation, ConvID: 9, ConvKind: chat.ConvDirect, UserSeq: 1}, added(100, 2, 2), removedFrom5(3)}
			h.UseStore(userLogStore(conv, log))
			other := mustRegister(t, h, 1, 1, 64)
			if err := h.Subscribe(other, t5); err != nil {
				t.Fatal(err)
			}
			for _, ev := range conv {
				publish(t, b, t5, ev)
			}
			c := mustRegister(t, h, 100, 2, 64)
			if earlier {
				publish(t, b, chat.UserTopic(100), log[0])
			}
			publish(t, b, chat.UserTopic(100), log[2]) // the removal, early
			publish(t, b, chat.UserTopic(100), log[1]) // the addition, late
			time.Sleep(3 * reorderWaitForTest)
			waitGoroutines(t, "(*Hub).follow", "(*Hub).catchUp", "(*Hub).fillGap", "(*Hub).revoke")
			c.Next(nil)
			publish(t, b, t5, msg(5, 4))
			if got := convSeqs(c); len(got) > 0 {
				t.Errorf("the connection of the user removed from group 5 got %v", got)
			}
			if h.Follows(c, t5) {
				t.Errorf("Follows(connection, group 5) = true; want false")
			}
			h.Unregister(c)
			h.Unregister(other)
		})
	}
}

// reorderWaitForTest is the hub's reorderWait.
const reorderWaitForTest = 100 * time.Millisecond

// reAddedConv is group 5 as user 100 left it and came back: added at
// seq 2, removed at 4, others writing 5..7, added again at 8, others
// writing 9 and 10.
func reAddedConv() []chat.Event {
	var conv []chat.Event
	for seq := int64(1); seq <= 10; seq++ {
		ev := msg(5, seq)
		switch seq {
		case 2, 8:
			ev.Message.Kind, ev.Message.TargetID = chat.KindAdded, 100
		case 4:
			ev.Message.Kind, ev.Message.TargetID, ev.Revoke = chat.KindRemoved, 100, 100
		}
		conv = append(conv, ev)
	}
	return conv
}

// otherAt registers, unless pos is negative, another member's connection
// holding group 5, to which the topic delivered conv[:pos]; nil if pos is
// negative (no topic here).
func otherAt(t *testing.T, h *hub.Hub, b *countingBroker, conv []chat.Event, pos int) *hub.Client {
	t.Helper()
	if pos < 0 {
		return nil
	}
	other := mustRegister(t, h, 1, 1, 64)
	if err := h.Subscribe(other, chat.ConvTopic(5)); err != nil {
		t.Fatal(err)
	}
	for _, ev := range conv[:pos] {
		publish(t, b, chat.ConvTopic(5), ev)
	}
	return other
}

// settleFollows waits for the goroutines a follow, its catch-up and a
// revoke start.
func settleFollows(t *testing.T) {
	t.Helper()
	waitGoroutines(t, "(*Hub).follow", "(*Hub).catchUp", "(*Hub).fillGap", "(*Hub).revoke")
}

// TestFollowReAddedTopicBehind: user 100 is added to group 5 (logged at
// 1, seq 2), removed (2, seq 4) and added again (3, seq 8), and this node
// has delivered the group only up to some point when the second
// addition's follow subscribes the user's connection: the other
// messages, published by another node, come late. The connection must
// get the group's messages after 8, in order, each once, and none of
// those written before, while the user was no member among them: whether
// the group's topic here is behind the removal, between the removal and
// the addition, at the addition or past it, or has delivered nothing, or
// is not there. With followed, the connection followed the first
// addition too, and the removal revoked it.
func TestFollowReAddedTopicBehind(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pos      int // messages the topic delivered before the addition; -1: no topic here
		followed bool
	}{
		{"no topic", -1, false},
		{"nothing delivered", 0, false},
		{"behind the removal", 1, false},
		{"behind the removal, followed before", 1, true},
		{"between removal and addition", 6, false},
		{"at the addition", 8, false},
		{"past the addition", 9, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, b := newHub(t)
			t5 := chat.ConvTopic(5)
			conv := reAddedConv()
			log := []chat.Event{added(100, 1, 2), removedFrom5(2), added(100, 3, 8)}
			h.UseStore(userLogStore(conv, log))
			other := otherAt(t, h, b, conv, tc.pos)
			c := mustRegister(t, h, 100, 2, 64)
			settle := func() { settleFollows(t) }
			if tc.followed {
				publish(t, b, chat.UserTopic(100), log[0])
				settle()
			}
			publish(t, b, chat.UserTopic(100), log[1])
			settle()
			c.Next(nil)
			publish(t, b, chat.UserTopic(100), log[2])
			settle()
			for _, ev := range conv[max(tc.pos, 0):] { // late, from another node
				publish(t, b, t5, ev)
			}
			for _, ev := range conv[1:7] { // and some again, later still
				publish(t, b, t5, ev)
			}
			settle()
			if got := fmt.Sprint(convSeqs(c)); got != "[9 10]" {
				t.Errorf("the connection of the user added again at seq 8 got %s; want [9 10]", got)
			}
			h.Unregister(c)
			if other != nil {
				h.Unregister(other)
			}
		})
	}
}

// TestFollowAddedLoggedAfterRemoval: user 100 is added to group 5 (seq
// 2) and removed from it (seq 3) at once, the removal committed, logged
// (UserSeq 1, in its transaction) and published between the addition's
// commit and the logging of its event (UserSeq 2), as chat.Service's
// AddGroupMember and RemoveGroupMember may run: the user's log has the
// removal first, the group the addition first. The addition's follow
// must leave the user's connection unsubscribed from the group, whatever
// the group's topic here has delivered when it subscribes, and whether
// the user's topic delivers the removal first or, having given up
// waiting for it, last.
func TestFollowAddedLoggedAfterRemoval(t *testing.T) {
	for _, tc := range []struct {
		name        string
		pos         int // messages the topic delivered before the follow; -1: no topic here
		removalLast bool
	}{
		{"no topic", -1, false},
		{"behind the addition", 1, false},
		{"at the addition", 2, false},
		{"past the removal", 3, false},
		{"past the removal, removal delivered last", 3, true},
		{"no topic, removal delivered last", -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, b := newHub(t)
			conv := addedAt2RemovedAt3()
			log := []chat.Event{removedFrom5(1), added(100, 2, 2)}
			h.UseStore(userLogStore(conv, log))
			other := otherAt(t, h, b, conv, tc.pos)
			c := mustRegister(t, h, 100, 2, 64)
			settle := func() { settleFollows(t) }
			if tc.removalLast {
				publish(t, b, chat.UserTopic(100), log[1])
				settle()
				publish(t, b, chat.UserTopic(100), log[0])
			} else {
				publish(t, b, chat.UserTopic(100), log[0])
				publish(t, b, chat.UserTopic(100), log[1])
			}
			settle()
			wantRemovedAt3(t, h, b, c, other, conv, tc.pos)
		})
	}
}

// TestRoomEnteredLoggedAfterLeave: user 100 enters room 5 (seq 2), and
// leaves it (seq 3, its removed logged at UserSeq 1) before
// chat.Service.EnterRoom logs the entry's event (UserSeq 2): the user's
// topic delivers the removal, then the entry. A room's entry makes the
// hub follow nothing (a connection subscribes to a room it opens, after
// a check of membership), so the user's connection must not be
// subscribed to the room.
func TestRoomEnteredLoggedAfterLeave(t *testing.T) {
	h, b := newHub(t)
	t5 := chat.ConvTopic(5)
	join := &chat.Message{ConvID: 5, Seq: 2, Kind: chat.KindJoin, SenderID: 100}
	h.UseStore(userLogStore([]chat.Event{msg(5, 1), {Type: chat.EventMessage, ConvID: 5, Message: join}, msg(5, 3)}, nil))
	other := mustRegister(t, h, 1, 1, 64)
	if err := h.Subscribe(other, t5); err != nil {
		t.Fatal(err)
	}
	c := mustRegister(t, h, 100, 2, 64)
	publish(t, b, chat.UserTopic(100), chat.Event{Type: chat.EventRemoved, ConvID: 5, Reason: "left", UserSeq: 1})
	publish(t, b, chat.UserTopic(100), chat.Event{Type: chat.EventConversation, ConvID: 5, ConvKind: chat.ConvRoom, UserSeq: 2, Message: join})
	waitGoroutines(t, "(*Hub).follow", "(*Hub).catchUp", "(*Hub).fillGap", "(*Hub).revoke")
	c.Next(nil)
	publish(t, b, t5, msg(5, 4))
	if got := queuedOf(c); len(got) > 0 {
		t.Errorf("the connection of the user who left room 5 got %v of it", got)
	}
	if h.Follows(c, t5) {
		t.Errorf("Follows(connection, room 5) = true; want false")
	}
	h.Unregister(c)
	h.Unregister(other)
}

// TestFollowReAddedRemovalLate: user 100, whose connection follows group
// 5 since its addition (logged at 1, seq 2), is removed (2, seq 4) and
// added again (3, seq 8); this node's topic of the group has delivered
// seq 1 only, and the user's topic gets the removal so late that it
// gives up waiting for it and follows the second addition first, with
// the connection still subscribed. The group's messages written while
// the user was no member (5..7), which the topic here delivers late,
// must not reach the connection, and those after 8 must, in order.
func TestFollowReAddedRemovalLate(t *testing.T) {
	h, b := newHub(t)
	t5 := chat.ConvTopic(5)
	conv := reAddedConv()
	log := []chat.Event{added(100, 1, 2), removedFrom5(2), added(100, 3, 8)}
	h.UseStore(userLogStore(conv, log))
	other := mustRegister(t, h, 1, 1, 64)
	if err := h.Subscribe(other, t5); err != nil {
		t.Fatal(err)
	}
	publish(t, b, t5, conv[0])
	c := mustRegister(t, h, 100, 2, 64)
	settle := func() {
		waitGoroutines(t, "(*Hub).follow", "(*Hub).catchUp", "(*Hub).fillGap", "(*Hub).revoke")
	}
	publish(t, b, chat.UserTopic(100), log[0])
	settle()
	publish(t, b, chat.UserTopic(100), log[2])
	time.Sleep(3 * reorderWaitForTest) // the user's topic gives up waiting for 2
	settle()
	if !h.Follows(c, t5) {
		t.Fatal("Follows(connection, group 5) = false after the second addition; want true")
	}
	for _, ev := range conv[1:] {
		publish(t, b, t5, ev)
	}
	publish(t, b, chat.UserTopic(100), log[1])
	settle()
	got := convSeqs(c)
	if slices.ContainsFunc(got, func(seq int64) bool { return 5 <= seq && seq <= 7 }) || !slices.Equal(got[max(0, len(got)-2):], []int64{9, 10}) {
		t.Errorf("the connection of the user removed at seq 4 and added again at 8 got %v; want 9 and 10 last, and nothing of 5..7", got)
	}
	h.Unregister(c)
	h.Unregister(other)
}

// TestUserTopicLateRemovalPastSkipped: the topic of user 100 gives up
// waiting for more logged events than it notes (maxRepeats), and the
// removal from conversation 5 among them arrives only then (a room's
// removal has no message with Revoke: this is the only one). The removal
// must still stop the connection's delivery of conversation 5; an event
// delivered before and arriving again is still dropped.
func TestUserTopicLateRemovalPastSkipped(t *testing.T) {
	h, b := newHub(t)
	t5, u := chat.ConvTopic(5), chat.UserTopic(100)
	c := mustRegister(t, h, 100, 1, 64)
	if err := h.Subscribe(c, t5); err != nil {
		t.Fatal(err)
	}
	publish(t, b, u, contactAt(1))
	publish(t, b, u, contactAt(30)) // 2..29 are late
	time.Sleep(3 * reorderWaitForTest)
	publish(t, b, u, contactAt(30)) // delivered: dropped
	publish(t, b, u, removedFrom5(25))
	waitGoroutines(t, "(*Hub).revoke")
	var got []int64
	for _, it := range c.Next(nil) {
		got = append(got, it.Event.UserSeq)
	}
	if want := []int64{1, 30, 25}; !slices.Equal(got, want) {
		t.Errorf("the connection got logged events %v; want %v", got, want)
	}
	publish(t, b, t5, msg(5, 1))
	if got := convSeqs(c); len(got) > 0 {
		t.Errorf("the connection of the user removed from conversation 5 got %v", got)
	}
	if h.Follows(c, t5) {
		t.Errorf("Follows(connection, conversation 5) = true; want false")
	}
	h.Unregister(c)
}

// TestResyncStaleAddition: user 100 is added to group 5 (logged at 1,
// seq 2) and removed (logged at 2, seq 3); a republish of the addition,
// logged at 3 as the removal committed, was never published (as in logs
// written before chat.Service logged an addition in its transaction and a
// republished one only for a member). A Resync after a broker outage reads it
// from the log: the user's connection must not follow the group again,
// whose other member here keeps it open. An addition logged at 3 that
// made the user a member again (seq 4), which the broker dropped, is
// followed.
func TestResyncStaleAddition(t *testing.T) {
	for _, again := range []bool{false, true} {
		t.Run(fmt.Sprintf("again=%v", again), func(t *testing.T) {
			h, b := newHub(t)
			t5, u := chat.ConvTopic(5), chat.UserTopic(100)
			conv := []chat.Event{msg(5, 1), msg(5, 2), msg(5, 3)}
			conv[1].Message.Kind, conv[1].Message.TargetID = chat.KindAdded, 100
			conv[2].Message.Kind, conv[2].Message.TargetID, conv[2].Revoke = chat.KindRemoved, 100, 100
			log := []chat.Event{added(100, 1, 2), removedFrom5(2), added(100, 3, 2)}
			if again {
				conv = append(conv, msg(5, 4))
				conv[3].Message.Kind, conv[3].Message.TargetID = chat.KindAdded, 100
				log[2] = added(100, 3, 4)
			}
			fetch := userLogStore(conv, log)
			h.UseStore(func(ctx context.Context, tp chat.Topic, after int64) ([]chat.Event, error) {
				if tp == chat.UserTopic(1) {
					return nil, nil
				}
				return fetch(ctx, tp, after)
			})
			other := mustRegister(t, h, 1, 1, 64)
			if err := h.Subscribe(other, t5); err != nil {
				t.Fatal(err)
			}
			publish(t, b, t5, conv[0])
			c := mustRegister(t, h, 100, 2, 64)
			publish(t, b, u, log[0])
			waitGoroutines(t, "(*Hub).follow", "(*Hub).catchUp", "(*Hub).fillGap")
			for _, ev := range conv[1:] {
				publish(t, b, t5, ev)
			}
			publish(t, b, u, log[1])
			waitGoroutines(t, "(*Hub).follow", "(*Hub).catchUp", "(*Hub).fillGap", "(*Hub).revoke")
			if h.Follows(c, t5) {
				t.Fatalf("Follows(connection, group 5) = true after the removal; want false")
			}
			c.Next(nil)

			h.Resync(context.Background())
			waitGoroutines(t, "(*Hub).follow", "(*Hub).catchUp", "(*Hub).fillGap", "(*Hub).revoke")
			next := int64(len(conv) + 1)
			publish(t, b, t5, msg(5, next))
			if got := convSeqs(c); slices.Contains(got, next) != again {
				t.Errorf("the connection got %v after a Resync; want %d among them: %v", got, next, again)
			}
			if h.Follows(c, t5) != again {
				t.Errorf("Follows(connection, group 5) = %v after a Resync; want %v", !again, again)
			}
			h.Unregister(c)
			h.Unregister(other)
		})
	}
}

// TestUserTopicLateRemovalAgain: the topic of user 100 gives up waiting
// for more logged events than it notes, the removal from group 5 among
// them arrives late and stops the connection; the user is added again,
// and a new connection of theirs subscribes to the group with no mark (as
// a session following its user's groups did before it had the read's). The removal, arriving
// again (a broker's retry of a publish it thought failed), ended a
// membership before the current one: it must not stop the new
// connection, nor the one the second addition's follow subscribed.
func TestUserTopicLateRemovalAgain(t *testing.T) {
	h, b := newHub(t)
	t5, u := chat.ConvTopic(5), chat.UserTopic(100)
	c := mustRegister(t, h, 100, 1, 64)
	publish(t, b, u, added(100, 1, 1))
	waitGoroutines(t, "(*Hub).follow")
	publish(t, b, u, contactAt(30)) // 2..29 are late
	time.Sleep(3 * reorderWaitForTest)
	publish(t, b, u, removedFrom5(25))
	waitGoroutines(t, "(*Hub).revoke")
	if h.Follows(c, t5) {
		t.Fatalf("Follows(connection, group 5) after the late removal = true; want false")
	}
	publish(t, b, u, added(100, 31, 3))
	waitGoroutines(t, "(*Hub).follow")
	c2 := mustRegister(t, h, 100, 2, 64)
	if err := h.Subscribe(c2, t5); err != nil {
		t.Fatal(err)
	}
	publish(t, b, u, removedFrom5(25)) // again
	waitGoroutines(t, "(*Hub).revoke")
	c.Next(nil)
	c2.Next(nil)
	publish(t, b, t5, msg(5, 4))
	if got := fmt.Sprint(convSeqs(c)); got != "[4]" {
		t.Errorf("the connection followed on the second addition got %s; want [4]", got)
	}
	if got := fmt.Sprint(convSeqs(c2)); got != "[4]" {
		t.Errorf("the new connection got %s; want [4]", got)
	}
	h.Unregister(c)
	h.Unregister(c2)
}

// TestUserTopicRepeatOfSkipped: the topic of user 100 gives up waiting
// for logged event 2, whose publish was lost (a change of unknown
// outcome), and delivers 3. The republish of 2, marked Repeat, is then
// the first of it to arrive: it is delivered, once, not dropped as one
// delivered already.
func TestUserTopicRepeatOfSkipped(t *testing.T) {
	h, b := newHub(t)
	u := chat.UserTopic(100)
	c := mustRegister(t, h, 100, 1, 64)
	repeat := contactAt(2)
	repeat.Repeat = true
	publish(t, b, u, contactAt(1))
	publish(t, b, u, contactAt(3)) // 2 is lost
	time.Sleep(3 * reorderWaitForTest)
	publish(t, b, u, repeat)
	publish(t, b, u, repeat) // a broker's second delivery
	var got []int64
	for _, it := range c.Next(nil) {
		got = append(got, it.Event.UserSeq)
	}
	if want := []int64{1, 3, 2}; !slices.Equal(got, want) {
		t.Errorf("the connection got logged events %v; want %v", got, want)
	}
	h.Unregister(c)
}

// TestFreshUserTopicStaleAddition: user 100 was added to group 5 (logged
// at 1, seq 2) and removed (logged at 2, seq 3) before their connection
// registered here; then the addition's publish, delayed or republished,
// is the first logged event the user's new topic receives, and its
// removal never comes again. The follow it makes must find the removal
// through its catch-up, whatever the group's topic here has delivered,
// and leave the connection unsubscribed.
func TestFreshUserTopicStaleAddition(t *testing.T) {
	for _, tc := range []struct {
		name string
		pos  int // messages the topic delivered before the follow; -1: no topic here
	}{
		{"no topic", -1},
		{"behind the addition", 1},
		{"at the addition", 2},
		{"past the removal", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, b := newHub(t)
			conv := addedAt2RemovedAt3()
			log := []chat.Event{added(100, 1, 2), removedFrom5(2)}
			h.UseStore(userLogStore(conv, log))
			other := otherAt(t, h, b, conv, tc.pos)
			c := mustRegister(t, h, 100, 2, 64)
			stale := log[0]
			stale.Repeat = true
			publish(t, b, chat.UserTopic(100), stale)
			settleFollows(t)
			wantRemovedAt3(t, h, b, c, other, conv, tc.pos)
		})
	}
}

// addedAt2RemovedAt3 is group 5's messages 1..3: user 100 added at 2 and
// removed at 3.
func addedAt2RemovedAt3() []chat.Event {
	conv := []chat.Event{msg(5, 1), msg(5, 2), msg(5, 3)}
	conv[1].Message.Kind, conv[1].Message.TargetID = chat.KindAdded, 100
	conv[2].Message.Kind, conv[2].Message.TargetID, conv[2].Revoke = chat.KindRemoved, 100, 100
	return conv
}

// wantRemovedAt3 publishes group 5's messages conv after the pos its
// topic delivered (all, if -1), and then message 4 and a typing: c, the
// connection of user 100, who was removed at 3, must get none of them
// and follow the group no more. It unregisters c and other (if not nil).
func wantRemovedAt3(t *testing.T, h *hub.Hub, b *countingBroker, c, other *hub.Client, conv []chat.Event, pos int) {
	t.Helper()
	t5 := chat.ConvTopic(5)
	for _, ev := range conv[max(pos, 0):] {
		publish(t, b, t5, ev)
	}
	settleFollows(t)
	c.Next(nil)
	publish(t, b, t5, msg(5, 4))
	publish(t, b, t5, chat.Event{Type: chat.EventTyping, ConvID: 5, User: &chat.User{ID: 1}})
	if got := queuedOf(c); len(got) > 0 {
		t.Errorf("the connection of the user removed at seq 3 got %v of the group after", got)
	}
	if h.Follows(c, t5) {
		t.Errorf("Follows(connection, group 5) = true; want false")
	}
	h.Unregister(c)
	if other != nil {
		h.Unregister(other)
	}
}
