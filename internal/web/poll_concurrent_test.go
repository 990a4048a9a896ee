package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/web"
)

// stallUserEvents is a store whose UserEvents, once armed, first waits
// until it is let go: a long-poll channel reads a gap in the user's
// logged events from it while it takes the frames of an answer.
type stallUserEvents struct {
	chat.Store
	armed   atomic.Bool
	stalled chan struct{}
	resume  chan struct{}
}

func (s *stallUserEvents) UserEvents(ctx context.Context, userID, after int64, limit int) ([]chat.Event, error) {
	if s.armed.CompareAndSwap(true, false) {
		close(s.stalled)
		<-s.resume
	}
	return s.Store.UserEvents(ctx, userID, after, limit)
}

// TestPollReplacedGetLosesNothing: a GET with the cursor of a GET still
// under way replaces it (the client gave up on the first: protocol.md,
// an answer not received is given again). The first must then not keep
// frames the second does not give: here it was taking a friend request
// (and reading the one missed before it) as the second came, and
// answered with both; the second, the one the client reads, answered
// later with a cursor past them, and the client never got them.
func TestPollReplacedGetLosesNothing(t *testing.T) {
	st := &stallUserEvents{stalled: make(chan struct{}), resume: make(chan struct{})}
	var lb *lossyBroker
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.PollHold = 300 * time.Millisecond }),
		withStore(func(s chat.Store) chat.Store { st.Store = s; return st }),
		withBroker(func(b chat.Broker) chat.Broker { lb = &lossyBroker{Broker: b, typ: chat.EventContact}; return lb }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	eve := ts.signIn(t, "eve@example.com", "Eve")
	token := ada.Jar.Cookies(mustParseURL(t, ts.URL))[0].Value
	cur := cursorOf(t, pollAs(t, ts, "GET", token, "", "")) // hello

	lb.user.Store(ada.ID)
	lb.down.Store(true)
	ts.requestFriend(t, grace, ada.ID) // logged, not published
	lb.down.Store(false)
	st.armed.Store(true)
	ts.requestFriend(t, eve, ada.ID) // queued on the channel

	first := make(chan response, 1)
	go func() { first <- pollAs(t, ts, "GET", token, cur, "") }()
	select {
	case <-st.stalled: // the first GET reads Grace's request, to give it before Eve's
	case <-time.After(waitTimeout):
		t.Fatal("the first GET did not read the gap before Eve's request")
	}
	second := make(chan response, 1)
	go func() { second <- pollAs(t, ts, "GET", token, cur, "") }()
	time.Sleep(100 * time.Millisecond) // the second GET waits on the channel (a wait, not a timing assertion)
	close(st.resume)
	<-first // given up on by the client: its answer is not read

	// The client polls on from the second GET's answer.
	got := map[int64]bool{}
	r := <-second
	for i := 0; i < 3 && !got[eve.ID]; i++ {
		var body struct {
			Cursor string            `json:"cursor"`
			Frames []json.RawMessage `json:"frames"`
		}
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &body) != nil {
			t.Fatalf("poll = %s; want 200", r)
		}
		for _, raw := range body.Frames {
			f, err := parseFrame(raw)
			if err != nil {
				t.Fatal(err)
			}
			if f.Type == "contact" && f.User != nil {
				got[f.User.ID] = true
			}
		}
		r = pollAs(t, ts, "GET", token, body.Cursor, "")
	}
	if !got[grace.ID] || !got[eve.ID] {
		t.Errorf("friend requests the client received, by user: %v; want Grace's (%d) and Eve's (%d)", got, grace.ID, eve.ID)
	}
}

// storeStall holds one call of a store, once armed: it closes stalled, then
// waits until resume is closed.
type storeStall struct {
	armed   atomic.Bool
	stalled chan struct{}
	resume  chan struct{}
}

func newStoreStall() *storeStall {
	return &storeStall{stalled: make(chan struct{}), resume: make(chan struct{})}
}

// hold is where the store's call waits, if armed.
func (s *storeStall) hold() {
	if s.armed.CompareAndSwap(true, false) {
		close(s.stalled)
		<-s.resume
	}
}

// stallMessages is a store whose Messages, once armed, first waits until
// it is let go.
type stallMessages struct {
	chat.Store
	*storeStall
}

func (s *stallMessages) Messages(ctx context.Context, convID int64, p chat.Page) ([]chat.Message, error) {
	s.hold()
	return s.Store.Messages(ctx, convID, p)
}

// TestPollCancelledGetLosesNothing: a GET that the client cancels while
// the channel reads a message it missed (to give before the next) still
// counts its answer, which the client gets again by polling with the
// same cursor. The read used the request's context: cancelled, it
// failed, and the answer given again lacked the missed message.
func TestPollCancelledGetLosesNothing(t *testing.T) {
	st := &stallMessages{storeStall: newStoreStall()}
	var lb *lossyBroker
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.PollHold = 300 * time.Millisecond }),
		withStore(func(s chat.Store) chat.Store { st.Store = s; return st }),
		withBroker(func(b chat.Broker) chat.Broker { lb = &lossyBroker{Broker: b, typ: chat.EventMessage}; return lb }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	room := ts.enterRoom(t, ada, "general")
	ts.enterRoom(t, grace, "general")
	token := ada.Jar.Cookies(mustParseURL(t, ts.URL))[0].Value
	cur := cursorOf(t, pollAs(t, ts, "GET", token, "", "")) // hello
	if r := pollAs(t, ts, "POST", token, cur, `{"type":"open","room_id":`+strconv.FormatInt(room.ID, 10)+`}`); r.Status != http.StatusOK {
		t.Fatalf("open: %s", r)
	}
	lb.down.Store(true)
	m1 := ts.post(t, grace, room.ID, "m1", "lost on its way") // stored, not published
	lb.down.Store(false)
	st.armed.Store(true)
	m2 := ts.post(t, grace, room.ID, "m2", "after a gap") // queued on the channel

	ctx, cancel := context.WithCancel(context.Background())
	req := ts.newRequest(t, "GET", "/api/poll?cursor="+url.QueryEscape(cur), nil).WithContext(ctx)
	req.AddCookie(&http.Cookie{Name: web.CookieName, Value: token})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-st.stalled: // the GET reads m1, to give it before m2
	case <-time.After(waitTimeout):
		t.Fatal("the GET did not read the gap before m2")
	}
	cancel()
	<-done
	close(st.resume)

	got := map[int64]bool{}
	for i := 0; i < 3 && !got[m2.Seq]; i++ {
		r := pollAs(t, ts, "GET", token, cur, "")
		var body struct {
			Cursor string            `json:"cursor"`
			Frames []json.RawMessage `json:"frames"`
		}
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &body) != nil {
			t.Fatalf("poll = %s; want 200", r)
		}
		for _, raw := range body.Frames {
			if f, err := parseFrame(raw); err == nil && f.Type == "message" {
				got[f.Message.Seq] = true
			}
		}
		cur = body.Cursor
	}
	if !got[m1.Seq] || !got[m2.Seq] {
		t.Errorf("messages received: %v; want %d and %d", got, m1.Seq, m2.Seq)
	}
}
