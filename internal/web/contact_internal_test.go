package web

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/internal/chat"
)

// TestContactFramePresence: a friend's contact frame shows their presence
// (online, and last_seen when offline) unless the hub marked it stale
// (chat.Contact.PresenceStale), when it has neither and the client keeps
// the newer presence it has; no other state shows a presence.
func TestContactFramePresence(t *testing.T) {
	seen := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	since := seen.Add(-time.Hour)
	grace := chat.User{ID: 9, Name: "Grace", Email: "grace@example.com"}
	for _, c := range []struct {
		name    string
		contact chat.Contact
		want    string
	}{
		{"online", chat.Contact{User: grace, State: chat.StateFriends, Since: since, Online: true},
			`{"type":"contact","user":{"id":9,"name":"Grace"},"state":"friends","since":"2026-11-22T09:00:00Z","online":true}`},
		{"offline", chat.Contact{User: grace, State: chat.StateFriends, Since: since, LastSeen: seen},
			`{"type":"contact","user":{"id":9,"name":"Grace"},"state":"friends","since":"2026-11-22T09:00:00Z","online":false,"last_seen":"2026-11-22T10:00:00Z"}`},
		{"stale online", chat.Contact{User: grace, State: chat.StateFriends, Since: since, Online: true, PresenceStale: true},
			`{"type":"contact","user":{"id":9,"name":"Grace"},"state":"friends","since":"2026-11-22T09:00:00Z"}`},
		{"stale offline", chat.Contact{User: grace, State: chat.StateFriends, Since: since, LastSeen: seen, PresenceStale: true},
			`{"type":"contact","user":{"id":9,"name":"Grace"},"state":"friends","since":"2026-11-22T09:00:00Z"}`},
		{"request", chat.Contact{User: grace, State: chat.StateRequestReceived, Since: since, LastSeen: seen},
			`{"type":"contact","user":{"id":9,"name":"Grace"},"state":"request_received","since":"2026-11-22T09:00:00Z"}`},
	} {
		ct := c.contact
		got := encodeNative(chat.Event{Type: chat.EventContact, Contact: &ct, Seq: 4})
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("%s: %s: %v", c.name, got, err)
		}
		if err := json.Unmarshal([]byte(c.want), &w); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(w, g); diff != "" {
			t.Errorf("%s: frame mismatch (-want +got):\n%s", c.name, diff)
		}
	}
}
