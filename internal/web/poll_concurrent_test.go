package web_test

import (
	"context"
	"encoding/json"
	"net/http"
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
