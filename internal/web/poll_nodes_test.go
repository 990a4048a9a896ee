package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/testenv"
)

// TestClusterPollBackOnFirstNode: behind a balancer that spreads polls
// over the nodes, Ada's channel lives on node A. A's answer to one poll is
// lost, and her retry, with the same cursor, reaches node B, which
// rebuilds the channel from it; she opens another room there. Her next
// poll, with B's cursor, reaches A again, where the old channel has
// answered as many polls as B's cursor counts: it must not answer from
// that channel, which knows neither the room opened on B nor what B gave
// her (it answered with nothing, and the room's new message was lost),
// but rebuild from the cursor: its resumed tells her to open the room
// again, which gives her the message.
func TestClusterPollBackOnFirstNode(t *testing.T) {
	pg := testenv.PostgresSchema(t)
	redisURL, prefix, _ := testenv.Redis(t)
	a := newTestServer(t, onCluster(pg, redisURL, prefix, "a"), withWeb(fastPoll))
	b := newTestServer(t, onCluster(pg, redisURL, prefix, "b"), withWeb(fastPoll))
	ada := a.signIn(t, "ada@example.com", "Ada")
	grace := a.signIn(t, "grace@example.com", "Grace")
	r1 := a.enterRoom(t, ada, "one")
	r2 := a.enterRoom(t, ada, "two")
	a.enterRoom(t, grace, "one")
	a.enterRoom(t, grace, "two")
	ada.Client.Jar = rejar(t, a, b, ada)

	type answer struct {
		Cursor string            `json:"cursor"`
		Frames []json.RawMessage `json:"frames"`
	}
	get := func(ts *testServer, cursor string) answer {
		t.Helper()
		var out answer
		ts.mustDo(t, ada, "GET", "/api/poll?cursor="+url.QueryEscape(cursor), nil, http.StatusOK, &out)
		return out
	}
	post := func(ts *testServer, cursor string, frame string) answer {
		t.Helper()
		var out answer
		ts.mustDo(t, ada, "POST", "/api/poll?cursor="+url.QueryEscape(cursor), frame, http.StatusOK, &out)
		return out
	}
	frames := func(an answer) string {
		b, _ := json.Marshal(an.Frames)
		return string(b)
	}

	var first answer
	a.mustDo(t, ada, "GET", "/api/poll", nil, http.StatusOK, &first) // hello, on A
	c0 := first.Cursor
	post(a, c0, fmt.Sprintf(`{"type":"open","room_id":%d}`, r1.ID))
	c1 := get(a, c0).Cursor // with room one open
	a.post(t, grace, r1.ID, "g1", "one")
	if an := get(a, c1); !strings.Contains(frames(an), `"client_id":"g1"`) { // lost on its way
		t.Fatalf("poll on A = %s; want message g1", frames(an))
	}
	rebuilt := get(b, c1) // the retry, on B
	if !strings.Contains(frames(rebuilt), `"client_id":"g1"`) {
		t.Fatalf("poll on B = %s; want message g1 again, rebuilt from the cursor", frames(rebuilt))
	}
	c2 := rebuilt.Cursor
	post(b, c2, fmt.Sprintf(`{"type":"open","room_id":%d}`, r2.ID))
	a.post(t, grace, r2.ID, "g2", "two")

	back := get(a, c2) // back on A
	got := frames(back)
	if strings.Contains(got, `"client_id":"g1"`) {
		t.Errorf("poll on A with B's cursor = %s; want no message g1: B gave it", got)
	}
	if strings.Contains(got, `"client_id":"g2"`) {
		return
	}
	// The cursor was B's before the open: a rebuild from it says, by a
	// resumed without room two, that the client must open it again.
	var resumed struct {
		Type  string  `json:"type"`
		Rooms []int64 `json:"rooms"`
	}
	if len(back.Frames) == 0 || json.Unmarshal(back.Frames[0], &resumed) != nil || resumed.Type != "resumed" || slices.Contains(resumed.Rooms, r2.ID) {
		t.Fatalf("poll on A with B's cursor = %s; want message g2 of room %d, opened on B, or a resumed without it", got, r2.ID)
	}
	if an := post(a, back.Cursor, fmt.Sprintf(`{"type":"open","room_id":%d,"after":0}`, r2.ID)); !strings.Contains(frames(an), `"client_id":"g2"`) {
		t.Errorf("open of room %d again on A = %s; want message g2", r2.ID, frames(an))
	}
}
