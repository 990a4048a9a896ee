package chat_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
	"github.com/parley-chat/parley/internal/inmem"
)

// TestRenamesOfTwoNodesInOrder: Ada renames herself twice in quick
// succession, the first request taken by node A, whose teller reads the
// name from the store and is then slow to publish, the second by node B,
// which tells its rename at once. A's news, of the older name, reaches
// the hub last: a connection of Ada's must still end on the newer name,
// the one the store has.
func TestRenamesOfTwoNodesInOrder(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{}) // node B, and the shared store and broker
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	gate := &gateBroker{Broker: f.broker, open: make(chan struct{}), started: make(chan struct{}, 1)}
	a := chat.NewService(chat.Config{Now: f.clock.Now}, chat.Deps{
		Store:    f.store,
		Broker:   gate,
		Presence: inmem.NewPresence(),
		Limiter:  inmem.NewLimiter(f.clock.Now),
		Mailer:   f.mail,
	})
	t.Cleanup(a.Close)
	h := hub.New(f.broker, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { h.Close(context.Background()) })
	c := userClient(t, h, ada)

	first, err := a.SetName(ctx, ada, "Ada Byron")
	if err != nil {
		t.Fatal(err)
	}
	<-gate.started // A has read the name to tell, and holds its publish
	if _, err := f.svc.SetName(ctx, first, "Ada Lovelace"); err != nil {
		t.Fatal(err)
	}
	last := ""
	deadline := time.Now().Add(3 * time.Second)
	for last != "Ada Lovelace" && time.Now().Before(deadline) {
		for _, it := range c.Next(nil) {
			if it.Event.Type == chat.EventUser {
				last = it.Event.User.Name
			}
		}
		time.Sleep(time.Millisecond)
	}
	if last != "Ada Lovelace" {
		t.Fatalf("node B's rename reached the client as %q; want %q", last, "Ada Lovelace")
	}
	close(gate.open)
	fctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	a.FlushRenames(fctx)
	time.Sleep(50 * time.Millisecond) // the hub's delivery of what A published
	for _, it := range c.Next(nil) {
		if it.Event.Type == chat.EventUser {
			last = it.Event.User.Name
		}
	}
	if last != "Ada Lovelace" {
		t.Errorf("the client ends on Ada's name %q; want %q, the newer, which the store has", last, "Ada Lovelace")
	}
	if u, err := f.svc.User(ctx, ada.ID); err != nil || u.Name != "Ada Lovelace" {
		t.Errorf("User(ada) = %q, %v; want %q", u.Name, err, "Ada Lovelace")
	}
}
