package chat_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
	"github.com/parley-chat/parley/internal/inmem"
)

// errLostCommit is what a store answers when it cannot tell whether its
// commit went through: the connection was lost after COMMIT was sent.
var errLostCommit = errors.New("connection lost after commit")

// lostCommitStore stores the first message queued with a client ID that
// begins with "lose-", and then answers errLostCommit for it.
type lostCommitStore struct {
	chat.Store
	mu   sync.Mutex
	lost map[string]bool
}

func (s *lostCommitStore) QueueAppend(ctx context.Context, nm chat.NewMessage) chat.PendingAppend {
	p := s.Store.QueueAppend(ctx, nm)
	if !strings.HasPrefix(nm.ClientID, "lose-") {
		return p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lost[nm.ClientID] {
		return p
	}
	s.lost[nm.ClientID] = true
	return lostCommit{p}
}

type lostCommit struct{ chat.PendingAppend }

func (p lostCommit) Wait() (chat.Message, bool, error) {
	if _, _, err := p.PendingAppend.Wait(); err != nil {
		return chat.Message{}, false, err
	}
	return chat.Message{}, false, errLostCommit
}

// TestResendPublishes: a send whose commit went through but whose
// sender got an error (the store could not tell) is sent again with the
// same client ID, and the Service gets the stored message back. Nothing
// was published the first time: the resend must publish it, for the other
// members' clients to get it at once, not at the next message's gap.
func TestResendPublishes(t *testing.T) {
	ctx := context.Background()
	db := &lostCommitStore{Store: newFixture(t, chat.Config{}).store, lost: make(map[string]bool)}
	f := newFixtureOn(t, chat.Config{}, inmem.NewPresence(), db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	h := hub.New(f.broker, slog.New(slog.DiscardHandler))
	h.UseStore(f.svc.Missed) // as parley wires it
	t.Cleanup(func() { h.Close(context.Background()) })

	// resend sends a message twice, as send does: an error, and then the
	// message, which must reach c.
	resend := func(t *testing.T, c *hub.Client, send func() (chat.Message, error)) {
		t.Helper()
		if m, err := send(); err == nil {
			t.Fatalf("first send = %+v; want the store's error", m)
		}
		m, err := send()
		if err != nil {
			t.Fatalf("send again: %v", err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			for _, it := range c.Next(nil) {
				if it.Event.Message != nil && it.Event.Message.ConvID == m.ConvID && it.Event.Message.Seq == m.Seq {
					return
				}
			}
			time.Sleep(time.Millisecond)
		}
		t.Errorf("message %d of conversation %d, sent again, never reached Grace's client", m.Seq, m.ConvID)
	}

	t.Run("room", func(t *testing.T) {
		r := f.enter(t, ada, "lobby")
		f.enter(t, grace, "lobby")
		c, err := h.Register(grace.ID, 0, 64, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Unregister(c) })
		mark, err := f.svc.CheckMemberAt(ctx, grace, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.SubscribeMember(c, chat.ConvTopic(r.ID), mark); err != nil {
			t.Fatal(err)
		}
		h.Seen(chat.ConvTopic(r.ID), mark.Seq)
		resend(t, c, func() (chat.Message, error) { return f.svc.Send(ctx, ada, r.ID, "lose-1", "hello") })
	})
	t.Run("direct", func(t *testing.T) {
		if _, err := f.svc.RequestFriend(ctx, ada, grace.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.AcceptFriend(ctx, grace, ada.ID); err != nil {
			t.Fatal(err)
		}
		// Grace has no conversation with Ada open: the message reaches
		// her list through her user topic.
		c, err := h.Register(grace.ID, 0, 64, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Unregister(c) })
		resend(t, c, func() (chat.Message, error) {
			m, _, err := f.svc.SendDirect(ctx, ada, grace.ID, "lose-2", "hi")
			return m, err
		})
	})
}

// TestSendDirectRetryStoresOnce: the first message to a friend, whose
// first try made the conversation and stored the message but answered an
// error, is tried again with the same client ID, over REST (SendDirect) or
// on the socket to the conversation it made (Send): each gets the stored
// message back, and the conversation holds it once.
func TestSendDirectRetryStoresOnce(t *testing.T) {
	ctx := context.Background()
	db := &lostCommitStore{Store: newFixture(t, chat.Config{}).store, lost: make(map[string]bool)}
	f := newFixtureOn(t, chat.Config{}, inmem.NewPresence(), db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	if _, err := f.svc.RequestFriend(ctx, ada, grace.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AcceptFriend(ctx, grace, ada.ID); err != nil {
		t.Fatal(err)
	}
	if m, _, err := f.svc.SendDirect(ctx, ada, grace.ID, "lose-1", "hello"); err == nil {
		t.Fatalf("first SendDirect = %+v; want the store's error", m)
	}
	c, err := f.svc.DirectWith(ctx, ada, grace.ID)
	if err != nil {
		t.Fatalf("DirectWith after the first try: %v", err)
	}
	m1, c1, err := f.svc.SendDirect(ctx, ada, grace.ID, "lose-1", "hello")
	if err != nil {
		t.Fatalf("SendDirect again: %v", err)
	}
	m2, err := f.svc.Send(ctx, ada, c.ID, "lose-1", "hello")
	if err != nil {
		t.Fatalf("Send to the conversation: %v", err)
	}
	if c1.ID != c.ID || m1.ConvID != c.ID || m1.Seq != m2.Seq || m2.ConvID != c.ID {
		t.Errorf("the retries got message %d/%d and %d/%d, conversation %d; want one message of conversation %d", m1.ConvID, m1.Seq, m2.ConvID, m2.Seq, c1.ID, c.ID)
	}
	ms, err := f.svc.History(ctx, grace, c.ID, chat.Page{})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	n := 0
	for _, m := range ms {
		if m.ClientID == "lose-1" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the conversation holds the message %d times; want once", n)
	}
}
