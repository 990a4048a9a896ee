package chat_test

import (
	"context"
	"sync"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/inmem"
)

// missedRoom is a store whose RoomByName, once armed, calls made (another
// user making the room now) and then answers not found: the room is made
// between the read of an entry and its write, as when two enter a new
// name at once.
type missedRoom struct {
	chat.Store
	mu   sync.Mutex
	made func()
}

func (s *missedRoom) RoomByName(ctx context.Context, name string) (chat.Room, error) {
	s.mu.Lock()
	made := s.made
	s.made = nil
	s.mu.Unlock()
	if made == nil {
		return s.Store.RoomByName(ctx, name)
	}
	made()
	return chat.Room{}, chat.ErrNotFound
}

// TestEnterRoomMadeMeanwhileNotCounted: a user who enters a new name at
// the same moment as another, whose entry makes the room, made nothing:
// the room does not count among the rooms they make an hour, on either
// store.
func TestEnterRoomMadeMeanwhileNotCounted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(testing.TB) chat.Store
	}{
		{"sqlite", sqliteStore},
		{"postgres", postgresStore},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := &missedRoom{Store: tc.store(t)}
			f := newFixtureOn(t, chat.Config{NewConvsPerHour: 1}, inmem.NewPresence(), db)
			ada, _ := f.signIn(t, "ada@example.com", "Ada")
			bob, _ := f.signIn(t, "bob@example.com", "Bob")
			var adas chat.Room
			db.made = func() { adas = f.enter(t, ada, "lobby") }
			bobs, err := f.svc.EnterRoom(ctx, bob, "Lobby")
			if err != nil {
				t.Fatalf("Bob enters Lobby as Ada makes it: %v", err)
			}
			if bobs.ID != adas.ID || bobs.Members != 2 {
				t.Fatalf("Bob entered room %d with %d members; want Ada's room %d, with 2", bobs.ID, bobs.Members, adas.ID)
			}
			// Ada made it; Bob has made none yet.
			if _, err := f.svc.EnterRoom(ctx, bob, "annex"); err != nil {
				t.Errorf("Bob makes his first room: %v; want it made", err)
			}
			_, err = f.svc.EnterRoom(ctx, ada, "attic")
			wantError(t, "Ada makes a second room", err, chat.ErrRateLimited, chat.CodeRateLimited, "")
		})
	}
}
