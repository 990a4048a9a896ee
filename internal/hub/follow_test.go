package hub_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// TestFollowAfterRemoved: a user added to group 5 and removed from it
// in quick succession (or both replayed by Resync after a broker outage)
// must not end up following the group; the follow of the add runs in a
// goroutine, after the removal's revoke found nothing to revoke.
func TestFollowAfterRemoved(t *testing.T) {
	leaks := 0
	const runs = 20
	for i := range runs {
		h, b := newHub(t)
		user := int64(100 + i)
		c := mustRegister(t, h, user, 1, 64)
		publish(t, b, chat.UserTopic(user), chat.Event{Type: chat.EventConversation, ConvID: 5, ConvKind: chat.ConvGroup, UserSeq: 1,
			Message: &chat.Message{ConvID: 5, Seq: 2, Kind: chat.KindAdded, TargetID: user}})
		publish(t, b, chat.UserTopic(user), chat.Event{Type: chat.EventRemoved, ConvID: 5, Reason: "removed", UserSeq: 2})
		time.Sleep(20 * time.Millisecond) // the hub's goroutines run
		c.Next(nil)
		publish(t, b, chat.ConvTopic(5), chat.Event{Type: chat.EventTyping, ConvID: 5, User: &chat.User{ID: 1}})
		publish(t, b, chat.ConvTopic(5), msg(5, 4))
		if got := queuedOf(c); len(got) > 0 {
			leaks++
			if leaks == 1 {
				t.Errorf("run %d: removed user received group 5 events: %s", i, fmt.Sprint(got))
			}
		}
		h.Unregister(c)
	}
	if leaks > 0 {
		t.Errorf("the removed user went on receiving the group in %d of %d runs", leaks, runs)
	}
}
