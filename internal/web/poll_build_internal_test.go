package web

import (
	"context"
	"log/slog"
	"path/filepath"
	"strconv"
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

// newPollServer is a server of the stack on SQLite and inmem, enough for
// long-poll channels, its store's Conversation stalled on demand.
func newPollServer(tb testing.TB) (*server, *stallConv) {
	tb.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	db, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "parley.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	st := &stallConv{Store: db, stalled: make(chan struct{}), resume: make(chan struct{})}
	b := inmem.NewBroker()
	svc := chat.NewService(chat.Config{}, chat.Deps{Store: st, Broker: b, Presence: inmem.NewPresence(), Limiter: inmem.NewLimiter(time.Now), Logger: log})
	h := hub.New(b, log)
	tb.Cleanup(func() { _ = h.Close(ctx) })
	cfg := Config{}
	cfg.fill()
	h.UseStore(svc.Missed)
	return &server{log: log, cfg: cfg, svc: svc, hub: h, polls: pollChannels{m: make(map[string]*pollChannel)}}, st
}

// TestPollStoppedWhileBuiltNotRegistered: a channel that stops while it
// is rebuilt (its hub client closed: the session ended, or too slow, as
// it restored its conversations) is not registered. It was, after its
// stop had found nothing to take out: a stopped channel, its session and
// the frames of its answer, kept among the live ones for good, as nothing
// stops a channel twice.
func TestPollStoppedWhileBuiltNotRegistered(t *testing.T) {
	ctx := context.Background()
	s, st := newPollServer(t)
	svc, h := s.svc, s.hub

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
		_, err := s.buildChannel(authInfo{User: si.User, Session: si.Session}, cur, forkID(cur.Channel), nil, true, cur.Channel, true)
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
	chs := s.polls.family(cur.Channel)
	if ch := s.polls.rebuilt[cur.Channel]; ch != nil {
		chs = append(chs, ch)
	}
	s.polls.mu.Unlock()
	for _, ch := range chs {
		if ch.isStopped() {
			t.Error("a channel stopped while it was rebuilt is registered among the live ones")
		}
	}
}

// TestPollFrameOnStoppedChannel: a frame handled on a channel that has
// stopped (a POST let in just before, or answered from a channel stopped
// as the POST rebuilt it) gets unavailable, a code that says to try
// again, for an open whose subscription the hub refuses: not internal,
// "a bug", logged as one.
func TestPollFrameOnStoppedChannel(t *testing.T) {
	ctx := context.Background()
	s, _ := newPollServer(t)
	si, err := s.svc.IssueSession(ctx, "ada@example.com", "Ada")
	if err != nil {
		t.Fatal(err)
	}
	room, err := s.svc.EnterRoom(ctx, si.User, "general")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := s.buildChannel(authInfo{User: si.User, Session: si.Session}, nil, newChannelID(), nil, true, "", true)
	if err != nil {
		t.Fatal(err)
	}
	ch.stop()
	var got []any
	ch.sess.handle([]byte(`{"type":"open","room_id":`+strconv.FormatInt(room.ID, 10)+`,"ref":"o"}`), func(v any) { got = append(got, v) })
	if len(got) != 1 {
		t.Fatalf("open on a stopped channel answered %v; want one error", got)
	}
	if f, ok := got[0].(errorFrame); !ok || f.Code != chat.CodeUnavailable || f.Ref != "o" {
		t.Errorf("open on a stopped channel answered %+v; want an error unavailable, ref o", got[0])
	}
}
