package web_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/web"
)

// ackGate is a store whose queued appends, once gated, commit as usual
// but give their outcome to the sender only once open is closed:
// committed receives one value per gated append committed.
type ackGate struct {
	chat.Store
	on        chan struct{} // closed: appends from now on are gated
	open      chan struct{}
	committed chan struct{}
}

func (g *ackGate) QueueAppend(ctx context.Context, m chat.NewMessage) chat.PendingAppend {
	p := g.Store.QueueAppend(ctx, m)
	select {
	case <-g.on:
	default:
		return p
	}
	go func() {
		_, _, _ = p.Wait()
		g.committed <- struct{}{}
	}()
	return gatedAppend{p, g.open}
}

type gatedAppend struct {
	chat.PendingAppend
	open <-chan struct{}
}

func (p gatedAppend) Wait() (chat.Message, bool, error) {
	m, created, err := p.PendingAppend.Wait()
	<-p.open
	return m, created, err
}

// TestWSShutdownAcksCommittedSends: a client sends without waiting, the
// server commits every send and begins to shut down before it answers
// them: the client gets the ack of every send before the 1012 close, and
// need not send any of them again on its next connection.
func TestWSShutdownAcksCommittedSends(t *testing.T) {
	const n = 20 // within the sends a connection has in flight at once
	g := &ackGate{on: make(chan struct{}), open: make(chan struct{}), committed: make(chan struct{}, n)}
	ts := newTestServer(t,
		withWeb(func(c *web.Config) { c.SendRate, c.SendBurst = 1000, 1000 }),
		withStore(func(s chat.Store) chat.Store { g.Store = s; return g }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	wa := ts.connect(t, ada)
	wa.open(t, room.ID, nil)
	wa.sendMessage(t, room.ID, "first", "the room's kind is known: the next sends are queued")

	close(g.on)
	id := func(i int) string { return fmt.Sprintf("c-%02d", i) }
	for i := range n {
		wa.send(t, map[string]any{"type": "send", "room_id": room.ID, "client_id": id(i), "body": "m " + id(i)})
	}
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for i := range n {
		select {
		case <-g.committed:
		case <-timer.C:
			t.Fatalf("%d of %d sends committed", i, n)
		}
	}
	// The acks are let go once the hub has closed its clients: it closes
	// them all under the lock that Len takes, once Stopping is closed.
	go func() {
		<-ts.hub.Stopping()
		ts.hub.Len()
		close(g.open)
	}()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		ts.stop()
	}()
	frames := wa.expectClose(t, websocket.CloseServiceRestart)
	acked := map[string]bool{}
	for _, f := range frames {
		if f.Type == "ack" {
			acked[f.ClientID] = true
		}
	}
	var missing []string
	for i := range n {
		if !acked[id(i)] {
			missing = append(missing, id(i))
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d committed sends acknowledged before the 1012 close; missing %v", n-len(missing), n, missing)
	}
	select {
	case <-stopped:
	case <-time.After(2 * waitTimeout):
		t.Fatal("the server did not stop")
	}
}
