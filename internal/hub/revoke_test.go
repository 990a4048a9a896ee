package hub

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/inmem"
)

// TestRevokedFollowsNothingAfterTopicWent: a client revoked from a
// conversation's topic whose last other client leaves before the
// revoke's bookkeeping runs, so that the topic goes, and comes again
// with another client, is no longer reported as following it: Follows
// would tell its connection that an open it failed need not
// unsubscribe, and leave it subscribed.
func TestRevokedFollowsNothingAfterTopicWent(t *testing.T) {
	b := inmem.NewBroker()
	h := New(b, slog.New(slog.DiscardHandler))
	reg := func(user int64) *Client {
		c, err := h.Register(user, user, 16, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Unregister(c) })
		return c
	}
	gone, other, later := reg(2), reg(1), reg(3)
	conv := chat.ConvTopic(5)
	for _, c := range []*Client{gone, other} {
		if err := h.Subscribe(c, conv); err != nil {
			t.Fatal(err)
		}
	}
	rm := chat.Event{Type: chat.EventMessage, ConvID: 5, Message: &chat.Message{ConvID: 5, Seq: 1}, Revoke: 2}
	h.mu.Lock() // the revoke's bookkeeping waits for it
	if err := b.Publish(context.Background(), conv, rm); err != nil {
		h.mu.Unlock()
		t.Fatal(err)
	}
	h.unsubscribeLocked(other, conv) // the topic goes
	h.mu.Unlock()
	if err := h.Subscribe(later, conv); err != nil { // and comes again
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.Follows(gone, conv) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if h.Follows(gone, conv) {
		t.Errorf("Follows(revoked client, %s) = true after its topic went and came again; want false", conv)
	}
}
