package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/web"
)

// downMessages is a store whose Messages fails while down is set; failed
// is closed at the first call it failed.
type downMessages struct {
	chat.Store
	down   atomic.Bool
	once   sync.Once
	failed chan struct{}
}

func (s *downMessages) Messages(ctx context.Context, convID int64, p chat.Page) ([]chat.Message, error) {
	if s.down.Load() {
		s.once.Do(func() { close(s.failed) })
		return nil, errors.New("database is locked")
	}
	return s.Store.Messages(ctx, convID, p)
}

// pollGapServer is a server for long-poll gap tests: a history page of
// two messages, a broker that drops messages while lb.down is set, and
// a store whose Messages fails while st.down is set.
func pollGapServer(t *testing.T) (*testServer, *lossyBroker, *downMessages) {
	t.Helper()
	st := &downMessages{failed: make(chan struct{})}
	var lb *lossyBroker
	ts := newTestServer(t,
		withWeb(func(c *web.Config) { c.PollHold = 300 * time.Millisecond }),
		withChat(func(c *chat.Config) { c.HistoryLimit = 2 }),
		withStore(func(s chat.Store) chat.Store { st.Store = s; return st }),
		withBroker(func(b chat.Broker) chat.Broker { lb = &lossyBroker{Broker: b, typ: chat.EventMessage}; return lb }))
	return ts, lb, st
}

// pollBody is a GET /api/poll answer, decoded.
type pollBody struct {
	cursor string
	frames []frame
}

func pollBodyOf(tb testing.TB, r response) pollBody {
	tb.Helper()
	var body struct {
		Cursor string            `json:"cursor"`
		Frames []json.RawMessage `json:"frames"`
	}
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &body) != nil || body.Cursor == "" {
		tb.Fatalf("poll = %s; want 200 with a cursor", r)
	}
	out := pollBody{cursor: body.Cursor}
	for _, raw := range body.Frames {
		f, err := parseFrame(raw)
		if err != nil {
			tb.Fatal(err)
		}
		out.frames = append(out.frames, f)
	}
	return out
}

// seqsOf appends the seqs of the messages of room that frames give,
// live or in a sync, in the order given.
func seqsOf(seqs []int64, room int64, frames []frame) []int64 {
	for _, f := range frames {
		switch {
		case f.Type == "message" && f.RoomID == room && f.Message != nil:
			seqs = append(seqs, f.Message.Seq)
		case f.Type == "sync" && f.RoomID == room:
			for _, m := range f.Messages {
				seqs = append(seqs, m.Seq)
			}
		}
	}
	return seqs
}

// pollGapOpen has Grace and Ada enter room "general" of ts, and Ada's
// long-poll channel open it: it returns Grace, the room, Ada's session
// token and her channel's cursor.
func pollGapOpen(t *testing.T, ts *testServer) (*client, wireRoom, string, string) {
	t.Helper()
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	room := ts.enterRoom(t, grace, "general")
	ts.enterRoom(t, ada, "general")
	token := ada.Jar.Cookies(mustParseURL(t, ts.URL))[0].Value
	cur := cursorOf(t, pollAs(t, ts, "GET", token, "", "")) // hello
	r := pollAs(t, ts, "POST", token, cur, `{"type":"open","room_id":`+strconv.FormatInt(room.ID, 10)+`}`)
	if r.Status != http.StatusOK {
		t.Fatalf("open: %s", r)
	}
	return grace, room, token, cur
}

// TestPollGapLargerThanAPage: a long-poll channel that is given a message
// after a gap the hub could not fill (the broker lost the messages, and
// the store failed the hub's read) fills it from the store. A gap longer
// than one page (HistoryLimit) was read one page, and the cursor moved
// past the rest: the client, polling on, never got them, and a channel
// rebuilt from its cursor did not either. Every message of the gap must
// come, in order and once, over the client's next polls, with no request
// of the client's.
func TestPollGapLargerThanAPage(t *testing.T) {
	ts, lb, st := pollGapServer(t)
	grace, room, token, cur := pollGapOpen(t, ts)

	lb.down.Store(true)
	var want []int64
	for i := range 5 {
		m := ts.post(t, grace, room.ID, fmt.Sprintf("lost-%d", i), "lost on its way") // stored, not published
		want = append(want, m.Seq)
	}
	lb.down.Store(false)
	st.down.Store(true)
	last := ts.post(t, grace, room.ID, "last", "after the gap") // published; the hub cannot fill the gap
	want = append(want, last.Seq)
	select {
	case <-st.failed:
	case <-time.After(waitTimeout):
		t.Fatal("the hub did not read the gap before the last message")
	}
	st.down.Store(false)

	var got []int64
	for i := 0; i < 10 && !slices.Contains(got, last.Seq); i++ {
		b := pollBodyOf(t, pollAs(t, ts, "GET", token, cur, ""))
		got = seqsOf(got, room.ID, b.frames)
		cur = b.cursor
	}
	// What is still to come comes without a request of the client's.
	for i := 0; i < 3; i++ {
		b := pollBodyOf(t, pollAs(t, ts, "GET", token, cur, ""))
		got = seqsOf(got, room.ID, b.frames)
		cur = b.cursor
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("messages the long-polling client got, by seq: mismatch (-want +got):\n%s", diff)
	}
}

// TestPollGapFillFails: a long-poll channel that could not read a gap from
// the store (nor could the hub) gave the message after it alone, with a
// cursor past the gap: the client, polling on, never got the messages of
// the gap, nor would a channel rebuilt from its cursor. The cursor must
// stay before them until they are read, and the client's next polls give
// them, in order, once the store answers again.
func TestPollGapFillFails(t *testing.T) {
	ts, lb, st := pollGapServer(t)
	grace, room, token, cur := pollGapOpen(t, ts)

	lb.down.Store(true)
	lost := ts.post(t, grace, room.ID, "lost", "lost on its way") // stored, not published
	lb.down.Store(false)
	st.down.Store(true)
	last := ts.post(t, grace, room.ID, "last", "after the gap") // published; the hub cannot fill the gap
	select {
	case <-st.failed:
	case <-time.After(waitTimeout):
		t.Fatal("the hub did not read the gap before the last message")
	}
	// The channel cannot read the gap either.
	b := pollBodyOf(t, pollAs(t, ts, "GET", token, cur, ""))
	got := seqsOf(nil, room.ID, b.frames)
	cur = b.cursor
	st.down.Store(false)

	for i := 0; i < 10 && !slices.Contains(got, last.Seq); i++ {
		b := pollBodyOf(t, pollAs(t, ts, "GET", token, cur, ""))
		got = seqsOf(got, room.ID, b.frames)
		cur = b.cursor
	}
	if diff := cmp.Diff([]int64{lost.Seq, last.Seq}, got); diff != "" {
		t.Errorf("messages the long-polling client got, by seq: mismatch (-want +got):\n%s", diff)
	}
}
