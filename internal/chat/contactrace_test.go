package chat_test

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/inmem"
)

// heldAcceptStore holds an AcceptFriend, once it is committed, until
// release is closed: its events are then told after those of a change
// made after it, as when the request that made it is slower to publish.
type heldAcceptStore struct {
	chat.Store
	committed chan struct{}
	release   chan struct{}
}

func (s *heldAcceptStore) AcceptFriend(ctx context.Context, me, from int64, at time.Time, maxFriends int) (chat.Contact, error) {
	c, err := s.Store.AcceptFriend(ctx, me, from, at, maxFriends)
	close(s.committed)
	<-s.release
	return c, err
}

// lastLoggedContact returns the state of the newest contact event about
// other in u's event log, "" if none.
func lastLoggedContact(t *testing.T, f *fixture, u chat.User, other int64) string {
	t.Helper()
	ctx := context.Background()
	evs, err := f.svc.UserEvents(ctx, u, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	state := ""
	for _, ev := range evs {
		if ev.Type == chat.EventContact && ev.Contact != nil && ev.Contact.User.ID == other {
			state = ev.Contact.State
		}
	}
	return state
}

// TestContactChangesCrossing: an acceptance committed before a removal
// or a block of the same two, but told after it, leaves each user's event
// log (which every device replays) ending with the state the store has,
// not "friends": the blocked user must not be shown the blocker as a
// friend, online or not.
func TestContactChangesCrossing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after func(f *fixture, ada, grace chat.User) error
		want  string // Ada's state
	}{
		{"remove", func(f *fixture, ada, grace chat.User) error {
			return f.svc.RemoveContact(context.Background(), ada, grace.ID)
		}, chat.StateNone},
		{"block", func(f *fixture, ada, grace chat.User) error {
			return f.svc.Block(context.Background(), ada, grace.ID)
		}, chat.StateBlocked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := &heldAcceptStore{Store: sqliteStore(t), committed: make(chan struct{}), release: make(chan struct{})}
			f := newFixtureOn(t, chat.Config{}, inmem.NewPresence(), db)
			ctx := context.Background()
			ada, _ := f.signIn(t, "ada@example.com", "Ada")
			grace, _ := f.signIn(t, "grace@example.com", "Grace")
			if _, err := f.svc.RequestFriend(ctx, ada, grace.ID); err != nil {
				t.Fatal(err)
			}
			accepted := make(chan error, 1)
			go func() {
				_, err := f.svc.AcceptFriend(ctx, grace, ada.ID)
				accepted <- err
			}()
			<-db.committed
			if err := tc.after(f, ada, grace); err != nil {
				t.Fatal(err)
			}
			close(db.release)
			if err := <-accepted; err != nil {
				t.Fatal(err)
			}
			if got := lastLoggedContact(t, f, grace, ada.ID); got != chat.StateNone {
				t.Errorf("Grace's log ends with Ada %q; want %q", got, chat.StateNone)
			}
			if got := lastLoggedContact(t, f, ada, grace.ID); got != tc.want {
				t.Errorf("Ada's log ends with Grace %q; want %q", got, tc.want)
			}
		})
	}
}
