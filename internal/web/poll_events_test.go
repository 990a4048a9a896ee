package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPollEventsAfter: a client that had a WebSocket and goes on by
// long-polling (the web app, when WebSockets stop getting through) starts
// its first channel with events_after, as it would have reconnected its
// WebSocket: the channel's hello is followed by the user's events logged
// since, a friend request, a group added to and a removal from it.
func TestPollEventsAfter(t *testing.T) {
	ts := newTestServer(t, withWeb(fastPoll))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	grace := ts.signIn(t, "grace@example.com", "Grace")
	w := ts.connect(t, grace)
	ts.requestFriend(t, ada, grace.ID)
	after := w.expectContact(t, ada, "request_received").UserSeq
	_ = w.conn.Close()

	eve := ts.signIn(t, "eve@example.com", "Eve")
	ts.requestFriend(t, eve, grace.ID)
	g := ts.createGroup(t, ada, "crew", 0)
	ts.addMember(t, ada, g.ID, grace)
	ts.mustDo(t, ada, "DELETE", memberPath(g.ID, grace, ""), nil, http.StatusNoContent, nil)

	r := ts.do(t, grace, "GET", fmt.Sprintf("/api/poll?events_after=%d", after), nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /api/poll?events_after=%d = %s; want 200", after, r)
	}
	var body struct {
		Frames []json.RawMessage `json:"frames"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("decode %s: %v", r, err)
	}
	var got []string
	for _, raw := range body.Frames {
		f, err := parseFrame(raw)
		if err != nil {
			t.Fatal(err)
		}
		switch f.Type {
		case "hello":
			got = append(got, fmt.Sprintf("hello %d", f.UserSeq))
		case "contact":
			got = append(got, fmt.Sprintf("contact %d %s", f.User.ID, f.State))
		case "conversation":
			got = append(got, fmt.Sprintf("conversation %d %s", f.RoomID, f.Kind))
		case "removed":
			got = append(got, fmt.Sprintf("removed %d %s", f.RoomID, f.Reason))
		}
	}
	want := []string{
		fmt.Sprintf("hello %d", after),
		fmt.Sprintf("contact %d request_received", eve.ID),
		fmt.Sprintf("conversation %d group", g.ID),
		fmt.Sprintf("removed %d removed", g.ID),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("first answer of a channel after event %d mismatch (-want +got):\n%s", after, diff)
	}
}
