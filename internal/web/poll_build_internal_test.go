package web

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
	"github.com/parley-chat/parley/internal/inmem"
	"github.com/parley-chat/parley/internal/sqlite"
)

// stallConv is a store whose Conversation, once armed, waits until it is
// let go: a rebuilt channel's restore reads each conversation it opens.
type stallConv struct {
	chat.Store
	armed   atomic.Bool
	stalled chan struct{}
	resume  chan struct{}
}

func (s *stallConv) Conversation(ctx context.Context, id, userID int64) (chat.Conversation, bool, error) {
	if s.armed.CompareAndSwap(true, false) {
		close(s.stalled)
		<-s.resume
	}
	return s.Store.Conversation(ctx, id, userID)
}

// TestPollStoppedWhileBuiltNotRegistered: a channel that stops while it
// is rebuilt (its hub client closed: the session ended, or too slow, as
// it restored its conversations) is not registered. It was, after its
// stop had found nothing to take out: a stopped channel, its session and
// the frames of its answer, kept among the live ones for good, as nothing
// stops a channel twice.
func TestPollStoppedWhileBuiltNotRegistered(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "parley.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := &stallConv{Store: db, stalled: make(chan struct{}), resume: make(chan struct{})}
	b := inmem.NewBroker()
	svc := chat.NewService(chat.Config{}, chat.Deps{Store: st, Broker: b, Presence: inmem.NewPresence(), Limiter: inmem.NewLimiter(time.Now), Logger: log})
	h := hub.New(b, log)
	t.Cleanup(func() { _ = h.Close(ctx) })
	cfg := Config{}
	cfg.fill()
	s := &server{log: log, cfg: cfg, svc: svc, hub: h, polls: pollChannels{m: make(map[string]*pollChannel)}}
	h.UseStore(svc.Missed)

	si, err := svc.IssueSession(ctx, "ada@example.com", "Ada")
	if err != nil {
		t.Fatal(err)
	}
	room, err := svc.EnterRoom(ctx, si.User, "general")
	if err != nil {
		t.Fatal(err)
	}
	cur := &pollCursor{Channel: "lost", N: 1, Convs: map[int64]int64{room.ID: 0}}

	st.armed.Store(true)
	built := make(chan error, 1)
	go func() {
		_, err := s.buildChannel(authInfo{User: si.User, Session: si.Session}, cur, cur.Channel, nil, true)
		built <- err
	}()
	select {
	case <-st.stalled: // the restore opens the room
	case <-time.After(5 * time.Second):
		t.Fatal("the rebuild did not open the room")
	}
	if err := svc.SignOut(ctx, si.Session); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); h.UserClients(si.User.ID) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the sign-out did not end the channel's hub client")
		}
	}
	close(st.resume)
	<-built // whatever it answers

	s.polls.mu.Lock()
	ch := s.polls.m[cur.Channel]
	s.polls.mu.Unlock()
	if ch != nil {
		ch.mu.Lock()
		stopped := ch.stopped
		ch.mu.Unlock()
		if stopped {
			t.Error("a channel stopped while it was rebuilt is registered among the live ones")
		}
	}
}
