package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// meetLastUserEvent is a store whose LastUserEvent, once armed, waits
// until two calls are under way (or waitTimeout passed): a channel
// rebuilt from a cursor reads it before the channel is registered.
type meetLastUserEvent struct {
	chat.Store
	armed atomic.Bool
	n     atomic.Int32
	both  chan struct{}
	later chan struct{} // if not nil, the second call then waits for it too
}

func (s *meetLastUserEvent) LastUserEvent(ctx context.Context, userID int64) (int64, error) {
	if s.armed.Load() {
		second := s.n.Add(1) == 2
		if second {
			s.armed.Store(false)
			close(s.both)
		}
		select {
		case <-s.both:
		case <-time.After(waitTimeout):
		}
		if second && s.later != nil {
			select {
			case <-s.later:
			case <-time.After(waitTimeout):
			}
		}
	}
	return s.Store.LastUserEvent(ctx, userID)
}

// startRebuildRace starts a server on st, armed, with Ada signed in, and
// returns her session's token and the cursor of a channel of an earlier
// run of the server: "lost", one answer given, no logged event, nothing
// open.
func startRebuildRace(t *testing.T, st *meetLastUserEvent) (ts *testServer, ada *client, token, cur string) {
	t.Helper()
	ts = newTestServer(t, withStore(func(s chat.Store) chat.Store { st.Store = s; return st }))
	ada = ts.signIn(t, "ada@example.com", "Ada")
	token = ada.Jar.Cookies(mustParseURL(t, ts.URL))[0].Value
	name := "lost"
	cur = base64.RawURLEncoding.EncodeToString(append(append([]byte{1, byte(len(name))}, name...), 1, 0, 0))
	st.armed.Store(true)
	return ts, ada, token, cur
}

// TestPollConcurrentRebuildOneChannel: two polls with the cursor of a
// channel this node does not hold (it restarted), under way at once,
// rebuild one channel. Each rebuilt its own and registered it under the
// cursor's name, the second in the place of the first: the first, which
// no request could reach any more, stayed in the hub, a connection of the
// user's and their presence, until it idled out.
func TestPollConcurrentRebuildOneChannel(t *testing.T) {
	st := &meetLastUserEvent{both: make(chan struct{})}
	ts, ada, token, cur := startRebuildRace(t, st)
	var wg sync.WaitGroup
	var rs [2]response
	for i := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs[i] = pollAs(t, ts, "GET", token, cur, "")
		}()
	}
	wg.Wait()
	for i, r := range rs {
		if r.Status != http.StatusOK {
			t.Fatalf("poll %d = %s; want 200", i, r)
		}
	}
	if n := ts.hub.UserClients(ada.ID); n != 1 {
		t.Errorf("after two polls rebuilding one channel, the user has %d connections in the hub; want 1", n)
	}
	// Both polls had the cursor of answer 1, so each got answer 2 of the
	// one channel: the same answer, the second given again.
	if !bytes.Equal(rs[0].Body, rs[1].Body) {
		t.Errorf("two polls with one cursor got different answers:\n%s\n%s", rs[0], rs[1])
	}
}

// TestPollRebuildBeatenAnswersAsItsCursorAsks: of two polls rebuilding
// one channel from one cursor, the second finds the channel registered
// and answered by the first. It gets that answer again, as its cursor
// asks (one behind the channel), and does not wait on the channel for
// the answer after it, nor leave a channel of its own in the hub.
func TestPollRebuildBeatenAnswersAsItsCursorAsks(t *testing.T) {
	st := &meetLastUserEvent{both: make(chan struct{}), later: make(chan struct{})}
	ts, ada, token, cur := startRebuildRace(t, st)
	answers := make(chan response, 2)
	for range 2 {
		go func() { answers <- pollAs(t, ts, "GET", token, cur, "") }()
	}
	first := <-answers
	close(st.later) // the second rebuild goes on after the first answered
	second := <-answers
	for _, r := range []response{first, second} {
		if r.Status != http.StatusOK {
			t.Fatalf("poll = %s; want 200", r)
		}
	}
	if !bytes.Equal(first.Body, second.Body) {
		t.Errorf("the poll whose rebuild was beaten got\n%s\nwant the answer the first got again:\n%s", second, first)
	}
	if n := ts.hub.UserClients(ada.ID); n != 1 {
		t.Errorf("after two polls rebuilding one channel, the user has %d connections in the hub; want 1", n)
	}
}

// deadlineSessions is a store that records, when armed, whether each
// read of a session by its token had a deadline.
type deadlineSessions struct {
	chat.Store
	armed  atomic.Bool
	mu     sync.Mutex
	noDead int // reads without a deadline
	reads  int
}

func (s *deadlineSessions) Session(ctx context.Context, tokenHash string) (chat.Session, chat.User, error) {
	if s.armed.Load() {
		_, ok := ctx.Deadline()
		s.mu.Lock()
		s.reads++
		if !ok {
			s.noDead++
		}
		s.mu.Unlock()
	}
	return s.Store.Session(ctx, tokenHash)
}

// TestPollAuthenticateTimed: the session read of a long-poll request has
// the server's time for an operation, as every other request's, so that
// a database that does not answer gets the client 503 unavailable
// (docs/protocol.md, Error codes). A long-poll request read it with no
// deadline at all (the GET is held longer, and the whole request was
// left without one): a GET, POST or DELETE then waited as long as the
// database did.
func TestPollAuthenticateTimed(t *testing.T) {
	st := &deadlineSessions{}
	ts := newTestServer(t, withStore(func(s chat.Store) chat.Store { st.Store = s; return st }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	token := ada.Jar.Cookies(mustParseURL(t, ts.URL))[0].Value

	st.armed.Store(true)
	cursorOf(t, pollAs(t, ts, "GET", token, "", "")) // a new channel: the request's session is read
	st.armed.Store(false)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.reads == 0 || st.noDead > 0 {
		t.Errorf("long-poll requests read the session %d times, %d of them without a deadline; want all with one", st.reads, st.noDead)
	}
}

// stallConversation is a store whose Conversation, once armed, first
// waits until it is let go: an open reads the conversation first, to
// check the membership.
type stallConversation struct {
	chat.Store
	*storeStall
}

func (s *stallConversation) Conversation(ctx context.Context, id, userID int64) (chat.Conversation, bool, error) {
	s.hold()
	return s.Store.Conversation(ctx, id, userID)
}

// TestPollEndDuringOpen: a channel that ends (DELETE) while a POST opens
// a conversation on it leaves the user present in none. A WebSocket's
// session ends once its reader, which handles its frames, has stopped; a
// channel's ended under the POST's frame: it closed the conversations
// open, then the open under way added its own, which nothing closed, and
// the user was shown present in the room for good.
func TestPollEndDuringOpen(t *testing.T) {
	st := &stallConversation{storeStall: newStoreStall()}
	ts := newTestServer(t, withStore(func(s chat.Store) chat.Store { st.Store = s; return st }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	room := ts.enterRoom(t, ada, "general")
	ts.enterRoom(t, grace, "general")
	token := ada.Jar.Cookies(mustParseURL(t, ts.URL))[0].Value
	cur := cursorOf(t, pollAs(t, ts, "GET", token, "", "")) // hello

	st.armed.Store(true)
	opened := make(chan response, 1)
	go func() {
		opened <- pollAs(t, ts, "POST", token, cur, fmt.Sprintf(`{"type":"open","room_id":%d}`, room.ID))
	}()
	select {
	case <-st.stalled: // the open checks the membership
	case <-time.After(waitTimeout):
		t.Fatal("the open did not read the conversation")
	}
	ended := make(chan response, 1)
	go func() { ended <- pollAs(t, ts, "DELETE", token, cur, "") }()
	time.Sleep(100 * time.Millisecond) // the DELETE ends the channel (a wait, not a timing assertion)
	close(st.resume)
	<-opened // whatever it answers: the page is closing
	if r := <-ended; r.Status != http.StatusNoContent {
		t.Fatalf("DELETE = %s; want 204", r)
	}

	var online struct {
		Users []wireUser `json:"users"`
		Count int        `json:"count"`
	}
	ts.mustDo(t, grace, "GET", roomPath(room.ID, "/online"), nil, http.StatusOK, &online)
	if slices.ContainsFunc(online.Users, func(u wireUser) bool { return u.ID == ada.ID }) {
		t.Errorf("after her channel ended, the room's online list = %+v; want Ada not in it", online)
	}
}
