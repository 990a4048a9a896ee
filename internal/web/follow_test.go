package web_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// slowSubscribe is a broker whose subscriptions to conversation topics
// wait, while held, until released: a node whose broker is slow to
// subscribe it to a group that one of its users was just added to.
type slowSubscribe struct {
	chat.Broker
	held    atomic.Bool
	release chan struct{}
}

func (b *slowSubscribe) Subscribe(t chat.Topic, fn func(chat.Event)) (func(), error) {
	if b.held.Load() && !t.IsUser() {
		select {
		case <-b.release:
		case <-time.After(2 * waitTimeout):
		}
	}
	return b.Broker.Subscribe(t, fn)
}

// TestFollowedGroupCatchesUp: a group message sent after the user's
// conversation event reached their connection, but before the node's
// subscription to the group was made (the hub follows the group in a
// goroutine, and the broker may be slow), reaches that connection from
// the store, as NewHandler wires the hub (UseStore).
func TestFollowedGroupCatchesUp(t *testing.T) {
	br := &slowSubscribe{release: make(chan struct{})}
	ts := newTestServer(t, withBroker(func(b chat.Broker) chat.Broker { br.Broker = b; return br }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	aw := ts.connect(t, ada)

	br.held.Store(true)
	g := ts.createGroup(t, grace, "crew", 0)
	ts.addMember(t, grace, g.ID, ada)
	aw.take(t, "group conversation", func(f frame) bool { return f.Type == "conversation" && f.RoomID == g.ID })
	m := ts.post(t, grace, g.ID, "g1", "welcome")
	close(br.release)
	aw.expectMessage(t, g.ID, m.Seq)
}
