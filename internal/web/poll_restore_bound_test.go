package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/web"
)

// TestPollRestoreAnswerBounded: a channel rebuilt from a cursor naming
// many open conversations, each with many messages missed, used to put
// every conversation's sync in its first answer: up to 256 of them, of
// up to 100 messages each (12 rooms of 60 long messages here: 3.1 MB),
// held in memory and written at once. The syncs of one answer now stop
// past 1 MiB (docs/protocol.md, Limits); the others come in the next
// answers, each before the conversation's later messages. A message that
// comes meanwhile must not overtake its conversation's sync, which would
// skip what the sync would have held past its 100 messages.
func TestPollRestoreAnswerBounded(t *testing.T) {
	const (
		rooms      = 12
		perRoom    = 60
		bodyLen    = 4000
		oneSync    = perRoom * (bodyLen + 300) // a sync of one room, with its messages' other fields
		restoreMax = 1 << 20                   // the documented bound
	)
	db := t.TempDir() + "/parley.db"
	fast := withWeb(func(c *web.Config) { fastPoll(c); c.SendRate, c.SendBurst = 1e6, 1e6 })
	ts := newTestServer(t, fast, withDB(db))
	ada, grace, ids, cursor := ts.cursorOfRooms(t, rooms)

	// A restart; meanwhile every room gets perRoom long messages.
	ts.stop()
	ts2 := newTestServer(t, fast, withDB(db))
	ada.Client.Jar, grace.Client.Jar = rejar(t, ts, ts2, ada), rejar(t, ts, ts2, grace)
	body := strings.Repeat("x", bodyLen)
	want := make(map[int64][]int64)
	for _, id := range ids {
		for j := range perRoom {
			want[id] = append(want[id], ts2.post(t, grace, id, fmt.Sprintf("m%d-%d", id, j), body).Seq)
		}
	}
	// The last room misses more than a sync holds (100): a message that
	// comes before its sync must not skip those its sync does not hold.
	last := ids[len(ids)-1]
	for j := range 50 {
		want[last] = append(want[last], ts2.post(t, grace, last, fmt.Sprint("short", j), "short").Seq)
	}

	type answer struct {
		Cursor string            `json:"cursor"`
		Frames []json.RawMessage `json:"frames"`
	}
	got := make(map[int64][]int64) // per room, the seqs received, in order
	var order []string
	read := func(frames []json.RawMessage) (more []int64) {
		t.Helper()
		for _, raw := range frames {
			f, err := parseFrame(raw)
			if err != nil {
				t.Fatal(err)
			}
			switch f.Type {
			case "sync":
				got[f.RoomID] = append(got[f.RoomID], seqs(f.Messages)...)
				order = append(order, fmt.Sprintf("sync %d ×%d", f.RoomID, len(f.Messages)))
				if f.HasMore {
					more = append(more, f.RoomID)
				}
			case "message":
				got[f.RoomID] = append(got[f.RoomID], f.Message.Seq)
				order = append(order, fmt.Sprintf("message %d/%d", f.RoomID, f.Message.Seq))
			case "resumed":
				if !slices.Equal(f.Rooms, ids) {
					t.Errorf("resumed = %s; want rooms %v, all open", f, ids)
				}
			case "error":
				t.Errorf("error frame: %s", f)
			}
		}
		return more
	}
	poll := func(cur string) answer {
		t.Helper()
		r := ts2.do(t, ada, "GET", "/api/poll?cursor="+url.QueryEscape(cur), nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET /api/poll: %s", r)
		}
		var a answer
		if err := json.Unmarshal(r.Body, &a); err != nil {
			t.Fatal(err)
		}
		if len(r.Body) > restoreMax+oneSync {
			t.Errorf("an answer of the rebuilt channel is %d bytes; want at most %d (the bound, and the sync that crossed it)", len(r.Body), restoreMax+oneSync)
		}
		return a
	}

	first := poll(cursor)
	cursor = first.Cursor
	more := read(first.Frames)
	// A message in the last room, whose sync the first answer did not hold.
	if len(got[last]) != 0 {
		t.Fatalf("the first answer held every room's sync (%v): the bound did not stop it", order)
	}
	live := ts2.post(t, grace, last, "live", "after the first answer")
	want[last] = append(want[last], live.Seq)

	for i := 0; i < 4*rooms && (len(more) > 0 || len(got) < rooms || !slices.Contains(got[last], live.Seq)); i++ {
		for _, id := range more {
			after := got[id][len(got[id])-1]
			b, _ := json.Marshal(map[string]any{"type": "sync", "room_id": id, "after": after})
			r := ts2.do(t, ada, "POST", "/api/poll?cursor="+url.QueryEscape(cursor), json.RawMessage(b))
			var a answer
			if r.Status != http.StatusOK || json.Unmarshal(r.Body, &a) != nil {
				t.Fatalf("POST sync: %s", r)
			}
			read(a.Frames)
		}
		a := poll(cursor)
		cursor = a.Cursor
		more = read(a.Frames)
	}
	for _, id := range ids {
		if !slices.Equal(got[id], want[id]) {
			t.Errorf("room %d: received %v; want %v, each once and in order (frames: %v)", id, got[id], want[id], order)
		}
	}
}
