package hub_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/internal/chat"
)

// TestRenamesInVersionOrder: two nodes that tell two renames of one user
// at about the same moment may publish them in the order opposite to
// their commits. On a user topic and on a conversation's, a user's
// rename news older (chat.Event.Seq, the version of the name) than news
// of that user delivered before is dropped, so the older name does not
// undo the newer; news without a version (an older node), of another
// user, or with the version delivered, goes through.
func TestRenamesInVersionOrder(t *testing.T) {
	for _, topic := range []chat.Topic{chat.UserTopic(1), chat.ConvTopic(3)} {
		conv := int64(0)
		if !topic.IsUser() {
			conv = 3
		}
		renamed := func(user int64, name string, version int64) chat.Event {
			return chat.Event{Type: chat.EventUser, ConvID: conv, User: &chat.User{ID: user, Name: name}, Seq: version}
		}
		h, b := newHub(t)
		c := mustRegister(t, h, 1, 1, 64)
		if err := h.Subscribe(c, topic); err != nil {
			t.Fatal(err)
		}
		for _, ev := range []chat.Event{
			renamed(7, "Ada Byron", 2),
			renamed(7, "Ada", 1), // older: dropped
			renamed(8, "Bob", 1), // another user
			renamed(7, "Ada Byron", 2),
			renamed(7, "Ada?", 0), // unknown version: as it comes
			renamed(7, "Ada Lovelace", 3),
			renamed(7, "Ada Byron", 2), // older: dropped
			// Presence news of user 7 with a greater version (another
			// clock) orders nothing of their names.
			{Type: chat.EventPresence, ConvID: conv, User: &chat.User{ID: 7}, Online: true, Seq: 100},
			renamed(7, "Ada King", 4),
		} {
			publish(t, b, topic, ev)
		}
		var got []string
		for _, it := range c.Next(nil) {
			if it.Event.Type == chat.EventUser {
				got = append(got, it.Event.User.Name)
			}
		}
		want := []string{"Ada Byron", "Bob", "Ada Byron", "Ada?", "Ada Lovelace", "Ada King"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: names delivered mismatch (-want +got):\n%s", topic, diff)
		}
	}
}
