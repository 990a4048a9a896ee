package web_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
)

// failMessages is a store whose Messages fail while failing is set.
type failMessages struct {
	chat.Store
	failing atomic.Bool
}

func (s *failMessages) Messages(ctx context.Context, convID int64, p chat.Page) ([]chat.Message, error) {
	if s.failing.Load() {
		return nil, errors.New("messages unreadable")
	}
	return s.Store.Messages(ctx, convID, p)
}

// TestPollRestoreSyncFails: a channel is rebuilt from its cursor, and a
// conversation the cursor names opens again, but the sync of what was
// missed in it fails. The conversation is open on the channel (its live
// messages come, the next cursor names it), but "resumed" left it out,
// which tells the client it is not. It is in "resumed" now, and what was
// missed in it comes once the store answers again, at a later poll.
func TestPollRestoreSyncFails(t *testing.T) {
	db := t.TempDir() + "/parley.db"
	ts := newTestServer(t, withWeb(fastPoll), withDB(db))
	ada, grace, ids, cursor := ts.cursorOfRooms(t, 1)
	room := ids[0]

	// A restart, whose store cannot read messages for a while.
	ts.stop()
	st := new(failMessages)
	ts2 := newTestServer(t, withDB(db), withWeb(fastPoll), withStore(func(s chat.Store) chat.Store { st.Store = s; return st }))
	ada.Client.Jar, grace.Client.Jar = rejar(t, ts, ts2, ada), rejar(t, ts, ts2, grace)
	missed := ts2.post(t, grace, room, "g1", "while Ada is away")
	st.failing.Store(true)
	back := ts2.connectPoll(t, ada, cursor)
	if f := back.expect(t, "resumed"); f.Raw != fmt.Sprintf(`{"type":"resumed","rooms":[%d]}`, room) {
		t.Errorf("resumed = %s; want room %d, which is open", f, room)
	}
	st.failing.Store(false)
	got := back.take(t, fmt.Sprintf("message %d, missed", missed.Seq), func(f frame) bool {
		return f.Type == "sync" && f.RoomID == room || f.Type == "message" && f.RoomID == room
	})
	var seqsGot []int64
	if got.Type == "sync" {
		seqsGot = seqs(got.Messages)
	} else {
		seqsGot = []int64{got.Message.Seq}
	}
	if !slices.Equal(seqsGot, []int64{missed.Seq}) {
		t.Errorf("after the store came back: %s; want message %d", got, missed.Seq)
	}
}
