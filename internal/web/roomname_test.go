package web_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/web"
)

// TestRoomNamesWithMarks: every way in by name (REST, the Django Channels
// endpoint's path) takes names written with combining marks, and a name
// typed decomposed is the room typed composed.
func TestRoomNamesWithMarks(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.ChannelsCompat = true }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	for _, name := range []string{"नमस्ते", "ภาษาไทย"} {
		if r := ts.enterRoom(t, ada, name); r.Name != name {
			t.Errorf("POST /api/rooms %q: name %q; want it as typed", name, r.Name)
		}
	}
	cafe := ts.enterRoom(t, ada, "cafe\u0301")
	if cafe.Name != "caf\u00e9" {
		t.Errorf("POST /api/rooms cafe+U+0301: name %q; want %q (NFC)", cafe.Name, "caf\u00e9")
	}
	if r := ts.enterRoom(t, ada, "Caf\u00e9"); r.ID != cafe.ID {
		t.Errorf("POST /api/rooms Café precomposed = room %d; want %d", r.ID, cafe.ID)
	}

	// The compat endpoint, by the decomposed name in its path, is in the
	// same room: its message is in the room's history.
	compat := ts.connectCompat(t, url.PathEscape("cafe\u0301"))
	compat.send(t, map[string]string{"message": "bonjour"})
	if f := compat.next(t); f.Raw != `{"message":"bonjour"}` {
		t.Fatalf("compat client got %s; want its message back", f.Raw)
	}
	ms := ts.allMessages(t, ada, cafe.ID)
	if len(ms) == 0 || ms[len(ms)-1].Body != "bonjour" {
		t.Errorf("history of café = %+v; want the compat client's message last", ms)
	}

	// Marks that carry nothing, or lead, are refused alike on both.
	for _, name := range []string{"\u0301cafe", "cafe-\u0301", "general\ufe0f"} {
		r := ts.do(t, ada, "POST", "/api/rooms", map[string]string{"name": name})
		wantError(t, "POST /api/rooms "+name, r, http.StatusBadRequest, chat.CodeInvalidField)
		_, resp, err := ts.dial(t, nil, "/ws/chat/"+url.PathEscape(name)+"/", dialOptions{})
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("dial /ws/chat/%q/ = %v (%s); want 400", name, err, statusOf(resp))
		}
	}
}
