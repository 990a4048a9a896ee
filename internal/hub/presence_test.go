package hub_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
	"github.com/parley-chat/parley/internal/inmem"
)

// TestFriendPresenceInVersionOrder: on a user topic, a friend's presence
// news older (chat.Event.Seq, its version) than news of that friend
// delivered before is dropped; news without a version, of another friend,
// or with the version delivered, goes through; presence in a conversation
// is not ordered so on a user topic (it comes on the conversation's).
func TestFriendPresenceInVersionOrder(t *testing.T) {
	evs := append(versionedNews(chat.Everywhere),
		chat.Event{Type: chat.EventPresence, ConvID: 3, User: &chat.User{ID: 7}, Online: true, Seq: 1}) // in a room
	gots := deliveredPresence(t, chat.UserTopic(1), evs)
	want := []presenceGot{{7, true, 10}, {8, false, 5}, {7, true, 10}, {7, false, 0}, {7, false, 11}, {7, true, 1}}
	if diff := cmp.Diff(want, gots); diff != "" {
		t.Errorf("delivered mismatch (-want +got):\n%s", diff)
	}
}

// TestRoomPresenceInVersionOrder: on a conversation topic, a user's
// presence news in the conversation older (chat.Event.Seq, its version)
// than news of that user delivered before is dropped; news without a
// version, of another user, or with the version delivered, goes through.
func TestRoomPresenceInVersionOrder(t *testing.T) {
	gots := deliveredPresence(t, chat.ConvTopic(3), versionedNews(3))
	want := []presenceGot{{7, true, 10}, {8, false, 5}, {7, true, 10}, {7, false, 0}, {7, false, 11}}
	if diff := cmp.Diff(want, gots); diff != "" {
		t.Errorf("delivered mismatch (-want +got):\n%s", diff)
	}
}

// versionedNews is presence news of users 7 and 8 in conversation conv
// (chat.Everywhere: a friend's), with versions out of order.
func versionedNews(conv int64) []chat.Event {
	news := func(user int64, online bool, version int64) chat.Event {
		ev := chat.Event{Type: chat.EventPresence, ConvID: conv, User: &chat.User{ID: user}, Online: online, Seq: version}
		if conv != chat.Everywhere {
			ev.OnlineCount = 1
		}
		return ev
	}
	return []chat.Event{
		news(7, true, 10),
		news(7, false, 9), // older: dropped
		news(8, false, 5), // another user
		news(7, true, 10), // the same news again
		news(7, false, 0), // unknown version (an older node): as it comes
		news(7, false, 11),
		news(7, true, 10), // older: dropped
	}
}

// presenceGot is a presence frame delivered: whose, online, its version.
type presenceGot struct {
	User    int64
	Online  bool
	Version int64
}

// deliveredPresence publishes evs on topic to a hub with one connection
// subscribed to it, and returns what the connection got.
func deliveredPresence(t *testing.T, topic chat.Topic, evs []chat.Event) []presenceGot {
	t.Helper()
	h, b := newHub(t)
	c := mustRegister(t, h, 1, 1, 64)
	if err := h.Subscribe(c, topic); err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		publish(t, b, topic, ev)
	}
	var gots []presenceGot
	for _, it := range c.Next(nil) {
		gots = append(gots, presenceGot{it.Event.User.ID, it.Event.Online, it.Event.Seq})
	}
	return gots
}

// TestFriendPresenceOrderKeptPastBound: a user topic notes the versions
// of a bounded number of friends' news. Past the bound it forgets the
// oldest, not the news just delivered: a friend's stale news, crossing
// their newer one between nodes, is still dropped right after.
func TestFriendPresenceOrderKeptPastBound(t *testing.T) {
	const friends = 4096 // hub.maxPresence
	h, b := newHub(t)
	c := mustRegister(t, h, 1, 1, 2*friends)
	if err := h.Subscribe(c, chat.UserTopic(1)); err != nil {
		t.Fatal(err)
	}
	news := func(friend int64, online bool, version int64) chat.Event {
		return chat.Event{Type: chat.EventPresence, User: &chat.User{ID: friend}, Online: online, Seq: version}
	}
	// Friends 100..: news long ago; then Grace (7) comes online, the
	// newest; then one more friend's news passes the bound.
	for i := range int64(friends - 1) {
		publish(t, b, chat.UserTopic(1), news(100+i, false, 1+i))
	}
	publish(t, b, chat.UserTopic(1), news(7, true, 10_000))
	publish(t, b, chat.UserTopic(1), news(99, true, 10_001))
	c.Next(nil)
	// Grace's phone's offline news, read before her laptop connected,
	// published last by another node.
	publish(t, b, chat.UserTopic(1), news(7, false, 9_999))
	for _, it := range c.Next(nil) {
		t.Errorf("delivered %+v after Grace's newer online news (version 10000); want it dropped", *it.Event.User)
	}
}

// TestPresenceOlderThanNewTopicDropped: a topic just made reads the
// version of presence news once subscribed, before its first Subscribe
// returns, and drops news older than it, also news delivered while the
// read is under way: it was told before the lists its clients read next.
// Both ways of subscribing: per topic, and through one subscription for
// all (inmem.Broker).
func TestPresenceOlderThanNewTopicDropped(t *testing.T) {
	for _, all := range []bool{false, true} {
		for _, conv := range []int64{chat.Everywhere, 3} {
			var b chat.Broker = &countingBroker{Broker: inmem.NewBroker()}
			if all {
				b = inmem.NewBroker()
			}
			h := hub.New(b, slog.New(slog.DiscardHandler))
			topic := chat.UserTopic(1)
			if conv != chat.Everywhere {
				topic = chat.ConvTopic(conv)
			}
			entered, open := make(chan struct{}), make(chan struct{})
			h.UsePresence(func(context.Context) (int64, error) {
				close(entered)
				<-open
				return 20, nil
			})
			news := func(user int64, online bool, version int64) chat.Event {
				return chat.Event{Type: chat.EventPresence, ConvID: conv, User: &chat.User{ID: user}, Online: online, Seq: version}
			}
			c := mustRegister(t, h, 0, 0, 64) // no user topic of its own: topic is the one made
			subscribed := make(chan error, 1)
			go func() { subscribed <- h.Subscribe(c, topic) }()
			<-entered
			publish(t, b, topic, news(7, false, 19)) // while the read is under way
			close(open)
			if err := <-subscribed; err != nil {
				t.Fatal(err)
			}
			publish(t, b, topic, news(8, true, 5))
			publish(t, b, topic, news(7, true, 20))
			publish(t, b, topic, news(9, true, 0)) // no version: as it comes
			publish(t, b, topic, news(7, false, 21))
			var gots []presenceGot
			for _, it := range c.Next(nil) {
				gots = append(gots, presenceGot{it.Event.User.ID, it.Event.Online, it.Event.Seq})
			}
			want := []presenceGot{{7, true, 20}, {9, true, 0}, {7, false, 21}}
			if diff := cmp.Diff(want, gots); diff != "" {
				t.Errorf("all %v, conv %d: delivered mismatch (-want +got):\n%s", all, conv, diff)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			_ = h.Close(ctx)
			cancel()
		}
	}
}

// TestContactPresenceVersion: a friend's contact (chat.EventContact of
// state friends) carries the version of the presence it shows. Their news
// older than it, which crossed the befriending, is dropped after it; a
// contact whose presence is older than news of them delivered before is
// delivered with its presence marked stale, for the client to keep the
// newer it has. A contact without a version, or not of a friend, changes
// nothing.
func TestContactPresenceVersion(t *testing.T) {
	contact := func(user int64, state string, online bool, version int64) chat.Event {
		return chat.Event{Type: chat.EventContact, Contact: &chat.Contact{User: chat.User{ID: user}, State: state, Online: online}, Seq: version}
	}
	news := func(user int64, online bool, version int64) chat.Event {
		return chat.Event{Type: chat.EventPresence, User: &chat.User{ID: user}, Online: online, Seq: version}
	}
	h, b := newHub(t)
	c := mustRegister(t, h, 1, 1, 64)
	if err := h.Subscribe(c, chat.UserTopic(1)); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []chat.Event{
		contact(7, chat.StateFriends, true, 11),  // Grace befriended, online at 11
		news(7, false, 10),                       // her phone's offline, told before: dropped
		news(8, true, 20),                        // Alan comes online at 20
		contact(8, chat.StateFriends, false, 19), // his contact read before that: stale
		contact(9, chat.StateFriends, true, 0),   // no version: as it comes
		news(9, false, 1),
		contact(7, chat.StateNone, false, 0), // not a friend
		news(7, true, 12),
	} {
		publish(t, b, chat.UserTopic(1), ev)
	}
	type got struct {
		Type    chat.EventType
		User    int64
		Online  bool
		Stale   bool
		Version int64
	}
	var gots []got
	for _, it := range c.Next(nil) {
		ev := it.Event
		if ev.Contact != nil {
			gots = append(gots, got{ev.Type, ev.Contact.User.ID, ev.Contact.Online, ev.Contact.PresenceStale, ev.Seq})
		} else {
			gots = append(gots, got{ev.Type, ev.User.ID, ev.Online, false, ev.Seq})
		}
	}
	want := []got{
		{chat.EventContact, 7, true, false, 11},
		{chat.EventPresence, 8, true, false, 20},
		{chat.EventContact, 8, false, true, 19},
		{chat.EventContact, 9, true, false, 0},
		{chat.EventPresence, 9, false, false, 1},
		{chat.EventContact, 7, false, false, 0},
		{chat.EventPresence, 7, true, false, 12},
	}
	if diff := cmp.Diff(want, gots); diff != "" {
		t.Errorf("delivered mismatch (-want +got):\n%s", diff)
	}
}

// TestRoomCountNeverGoesBack: a conversation's count of who has it open
// (chat.Event.OnlineCount) comes with the version it was read at
// (chat.Event.Seq). Two users' news, told by two nodes at about the same
// time, may arrive in the order opposite to their counts: the older news
// is delivered, it is the newest of its user, but without its count, which
// would undo the newer one. A count event (chat.EventOnlineCount) older
// than a count delivered is dropped. News and counts without a version
// go as they come.
func TestRoomCountNeverGoesBack(t *testing.T) {
	h, b := newHub(t)
	c := mustRegister(t, h, 1, 1, 64)
	topic := chat.ConvTopic(3)
	if err := h.Subscribe(c, topic); err != nil {
		t.Fatal(err)
	}
	news := func(user int64, online bool, count int, version int64) chat.Event {
		return chat.Event{Type: chat.EventPresence, ConvID: 3, User: &chat.User{ID: user}, Online: online, OnlineCount: count, Seq: version}
	}
	count := func(n int, version int64) chat.Event {
		return chat.Event{Type: chat.EventOnlineCount, ConvID: 3, OnlineCount: n, Seq: version}
	}
	for _, ev := range []chat.Event{
		news(8, false, 2, 12), // Bo left, 2 remain
		news(7, true, 3, 10),  // Al came before, when 3 were there: no count
		count(3, 11),          // older than 12: dropped
		count(2, 12),          // the count delivered, again
		news(9, true, 0, 13),  // no count
		news(9, false, 1, 0),  // no version (an older node): as it comes
		count(4, 0),           // no version: as it comes
		news(7, false, 1, 14),
		count(2, 13), // older: dropped
		count(1, 15),
	} {
		publish(t, b, topic, ev)
	}
	type got struct {
		Type    chat.EventType
		User    int64
		Count   int
		Version int64
	}
	var gots []got
	for _, it := range c.Next(nil) {
		g := got{Type: it.Event.Type, Count: it.Event.OnlineCount, Version: it.Event.Seq}
		if it.Event.User != nil {
			g.User = it.Event.User.ID
		}
		gots = append(gots, g)
	}
	want := []got{
		{chat.EventPresence, 8, 2, 12},
		{chat.EventPresence, 7, 0, 10},
		{chat.EventOnlineCount, 0, 2, 12},
		{chat.EventPresence, 9, 0, 13},
		{chat.EventPresence, 9, 1, 0},
		{chat.EventOnlineCount, 0, 4, 0},
		{chat.EventPresence, 7, 1, 14},
		{chat.EventOnlineCount, 0, 1, 15},
	}
	if diff := cmp.Diff(want, gots); diff != "" {
		t.Errorf("delivered mismatch (-want +got):\n%s", diff)
	}
}

// TestCountOlderThanNewTopicDropped: a conversation's topic just made
// drops a count (chat.EventOnlineCount) older than the version of
// presence news it read once subscribed, also one delivered while the
// read is under way: the clients read the count after it. Subscribed per
// topic, a newer count delivered meanwhile waits for the read; through
// one subscription for all (inmem.Broker), the topic is made after it.
func TestCountOlderThanNewTopicDropped(t *testing.T) {
	for _, all := range []bool{false, true} {
		var b chat.Broker = &countingBroker{Broker: inmem.NewBroker()}
		want := []int{160, 170}
		if all {
			b = inmem.NewBroker()
			want = []int{170}
		}
		h := hub.New(b, slog.New(slog.DiscardHandler))
		entered, open := make(chan struct{}), make(chan struct{})
		h.UsePresence(func(context.Context) (int64, error) {
			close(entered)
			<-open
			return 20, nil
		})
		topic := chat.ConvTopic(3)
		count := func(n int, version int64) chat.Event {
			return chat.Event{Type: chat.EventOnlineCount, ConvID: 3, OnlineCount: n, Seq: version}
		}
		c := mustRegister(t, h, 0, 0, 64)
		subscribed := make(chan error, 1)
		go func() { subscribed <- h.Subscribe(c, topic) }()
		<-entered
		publish(t, b, topic, count(150, 19)) // while the read is under way
		publish(t, b, topic, count(160, 21))
		close(open)
		if err := <-subscribed; err != nil {
			t.Fatal(err)
		}
		publish(t, b, topic, count(140, 18))
		publish(t, b, topic, count(170, 22))
		var gots []int
		for _, it := range c.Next(nil) {
			gots = append(gots, it.Event.OnlineCount)
		}
		if diff := cmp.Diff(want, gots); diff != "" {
			t.Errorf("all %v: counts delivered mismatch (-want +got):\n%s", all, diff)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		_ = h.Close(ctx)
		cancel()
	}
}
