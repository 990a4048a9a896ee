package web_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/testenv"
)

// textBroker holds, once armed for a conversation, the publish of the
// next text message of it: entered is closed as it starts, it goes on
// when open is closed, and done is closed once it has returned.
type textBroker struct {
	chat.Broker
	holdOnce
}

func (b *textBroker) Publish(ctx context.Context, t chat.Topic, ev chat.Event) error {
	if ev.Type == chat.EventMessage && ev.Message != nil {
		defer b.hold(ev.ConvID, ev.Message.Kind == chat.KindText)()
	}
	return b.Broker.Publish(ctx, t, ev)
}

// TestClusterRemovedMessageBeforeFrame: three nodes share PostgreSQL and
// Redis. Ada posts to her group on node A, whose publish is slow; then,
// on node B, she removes Bob, who has the group open on node C. The
// removal reaches C before Ada's post, and C holds it back until the post
// comes (or it reads it from the store). Bob's connection must still get
// the removed message and then the removed frame, as docs/protocol.md
// promises ("Removal is immediate"); Cy, who stays, gets both messages in
// order.
func TestClusterRemovedMessageBeforeFrame(t *testing.T) {
	testClusterRemovedMessageBeforeFrame(t, "websocket")
}

// TestClusterRemovedMessageBeforeFramePoll is
// TestClusterRemovedMessageBeforeFrame with Bob and Cy long-polling.
func TestClusterRemovedMessageBeforeFramePoll(t *testing.T) {
	testClusterRemovedMessageBeforeFrame(t, "poll")
}

func testClusterRemovedMessageBeforeFrame(t *testing.T, transport string) {
	pg := testenv.PostgresSchema(t)
	url, prefix, _ := testenv.Redis(t)
	gate := &textBroker{}
	a := newTestServer(t, onCluster(pg, url, prefix, "a"),
		withBroker(func(b chat.Broker) chat.Broker { gate.Broker = b; return gate }))
	b := newTestServer(t, onCluster(pg, url, prefix, "b"))
	c := newTestServer(t, onCluster(pg, url, prefix, "c"))

	ada := a.signIn(t, "ada@example.com", "Ada")
	bob := a.signIn(t, "bob@example.com", "Bob")
	cy := a.signIn(t, "cy@example.com", "Cy")
	g := a.createGroup(t, ada, "crew", 0)
	a.addMember(t, ada, g.ID, bob)
	last := a.addMember(t, ada, g.ID, cy)
	connect := c.connect
	if transport == "poll" {
		connect = func(tb testing.TB, u *client) *wsClient { return c.connectPoll(tb, u, "") }
	}
	bw := connect(t, bob)
	bw.open(t, g.ID, nil)
	cw := connect(t, cy)
	cw.open(t, g.ID, nil)

	gate.arm(g.ID)
	posted := make(chan response, 1)
	go func() {
		posted <- a.do(t, ada, "POST", roomPath(g.ID, "/messages"), map[string]string{"client_id": "c-1", "body": "hello"})
	}()
	select { // stored at last.Seq+1, its publish held
	case <-gate.entered:
	case <-time.After(waitTimeout):
		t.Fatal("node A did not publish Ada's post")
	}
	b.mustDo(t, ada, "DELETE", memberPath(g.ID, bob, ""), nil, http.StatusNoContent, nil)
	bw.find(t, "Bob's removed frame", func(f frame) bool { return f.Type == "removed" && f.RoomID == g.ID }, false)
	close(gate.open)
	<-gate.done
	if r := <-posted; r.Status != http.StatusOK {
		t.Fatalf("Ada's post = %s; want 200", r)
	}

	post, removal := last.Seq+1, last.Seq+2
	cw.expectMessage(t, g.ID, post)
	cw.expectMessage(t, g.ID, removal)
	bw.barrier(t)
	var got []string
	for _, f := range bw.drain() {
		if f.RoomID == g.ID && (f.Type == "message" || f.Type == "removed") {
			got = append(got, f.Raw)
		}
	}
	if len(got) != 3 || !isMessage(got[0], post) || !isMessage(got[1], removal) || !isRemoved(got[2]) {
		t.Errorf("Bob's frames of the group:\n\t%q\nwant message %d, message %d (his removal), then removed", got, post, removal)
	}
}

func isMessage(raw string, seq int64) bool {
	f, err := parseFrame([]byte(raw))
	return err == nil && f.Type == "message" && f.Message != nil && f.Message.Seq == seq
}

func isRemoved(raw string) bool {
	f, err := parseFrame([]byte(raw))
	return err == nil && f.Type == "removed"
}
