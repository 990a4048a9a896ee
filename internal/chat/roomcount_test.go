package chat_test

import (
	"context"
	"sync"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/inmem"
)

// countedPresence is an inmem Presence that notes, after each change, how
// many have conversation conv open at the version the change gave; and
// that makes one change more (between) right after the first read armed
// calls for, as another node may make it at that moment.
type countedPresence struct {
	chat.Presence
	conv int64

	mu      sync.Mutex
	counts  map[int64]int // version → count in conv
	between func()        // armed: run after the next read, once
}

func (p *countedPresence) note(ctx context.Context) {
	_, n, _ := p.Presence.Online(ctx, p.conv, 0)
	v, _ := p.Presence.Version(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts[v] = n
}

func (p *countedPresence) Add(ctx context.Context, convID, userID int64) (bool, error) {
	first, err := p.Presence.Add(ctx, convID, userID)
	p.note(ctx)
	return first, err
}

func (p *countedPresence) Remove(ctx context.Context, convID, userID int64) (bool, error) {
	last, err := p.Presence.Remove(ctx, convID, userID)
	p.note(ctx)
	return last, err
}

// read runs the change armed, if any.
func (p *countedPresence) read() {
	p.mu.Lock()
	fn := p.between
	p.between = nil
	p.mu.Unlock()
	if fn != nil {
		fn()
	}
}

func (p *countedPresence) State(ctx context.Context, convID, userID int64) (bool, int64, error) {
	defer p.read()
	return p.Presence.State(ctx, convID, userID)
}

func (p *countedPresence) StateCount(ctx context.Context, convID, userID int64) (bool, int, int64, error) {
	defer p.read()
	return p.Presence.StateCount(ctx, convID, userID)
}

func (p *countedPresence) Online(ctx context.Context, convID int64, max int) ([]int64, int, error) {
	defer p.read()
	return p.Presence.Online(ctx, convID, max)
}

// TestRoomCountOfItsVersion: the count that news of a user's presence in
// a room carries (chat.Event.OnlineCount) is the count at the version the
// news carries (chat.Event.Seq), also when another change comes between
// the Service's reads: hubs order the counts by that version, and a count
// read apart from it can go back at the clients.
func TestRoomCountOfItsVersion(t *testing.T) {
	ctx := context.Background()
	p := &countedPresence{Presence: inmem.NewPresence(), counts: map[int64]int{}}
	f := newFixtureWith(t, chat.Config{}, p)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	room := f.enter(t, ada, "general")
	f.enter(t, grace, "general")
	p.conv = room.ID
	events := f.record(t, chat.ConvTopic(room.ID))
	if _, _, _, err := f.svc.OpenRoom(ctx, ada, room.ID); err != nil {
		t.Fatal(err)
	}
	// Another node's user opens the room while Grace's news is read.
	const other = 9999
	p.between = func() { p.Add(ctx, room.ID, other) }
	if _, _, _, err := f.svc.OpenRoom(ctx, grace, room.ID); err != nil {
		t.Fatal(err)
	}
	p.between = func() { p.Remove(ctx, room.ID, other) }
	if err := f.svc.CloseRoom(ctx, grace, room.ID); err != nil {
		t.Fatal(err)
	}
	evs := events.take()
	if len(evs) != 3 {
		t.Fatalf("published %+v; want three presence events", evs)
	}
	for _, ev := range evs {
		p.mu.Lock()
		want, ok := p.counts[ev.Seq]
		p.mu.Unlock()
		if !ok || ev.OnlineCount != want {
			t.Errorf("%s's news (online %v) counts %d at version %d; want %d, the count then (known %v)", ev.User.Name, ev.Online, ev.OnlineCount, ev.Seq, want, ok)
		}
	}
}
