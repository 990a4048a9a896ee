package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/web"
)

// TestLookAlikeNames: entering a room, creating a group or renaming one
// to a name that looks like another's of its kind (Cyrillic е and а for
// Latin e and a) is answered 409 name_look_alike; a room's answer names
// the room it looks like, a group's does not name the private group. The
// Django Channels endpoint answers 409 before the upgrade.
func TestLookAlikeNames(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.ChannelsCompat = true }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	bob := ts.signIn(t, "bob@example.com", "Bob")

	general := ts.enterRoom(t, ada, "general")
	e := wantError(t, "enter a look-alike room", ts.do(t, bob, "POST", "/api/rooms", map[string]string{"name": "g\u0435neral"}),
		http.StatusConflict, "name_look_alike")
	if !strings.Contains(e.Message, `"general"`) {
		t.Errorf("enter a look-alike room: message %q; want it to name the room \"general\"", e.Message)
	}
	// The Django Channels endpoint, which makes rooms too, refuses it alike.
	if _, resp, err := ts.dial(t, nil, "/ws/chat/"+url.PathEscape("g\u0435neral")+"/", dialOptions{}); err == nil || resp == nil || resp.StatusCode != http.StatusConflict {
		t.Errorf("dial /ws/chat/g\u0435neral/ = %v (%s); want 409", err, statusOf(resp))
	}
	if r := ts.enterRoom(t, bob, "GENERAL"); r.ID != general.ID {
		t.Errorf("enter GENERAL = room %d; want %d, general", r.ID, general.ID)
	}

	ts.createGroup(t, ada, "PayPal", 0)
	e = wantError(t, "create a look-alike group", ts.do(t, bob, "POST", "/api/groups", map[string]string{"name": "\u0420\u0430yPal"}),
		http.StatusConflict, "name_look_alike")
	if strings.Contains(e.Message, "PayPal") {
		t.Errorf("create a look-alike group: message %q names the private group", e.Message)
	}
	mine := ts.createGroup(t, bob, "Mine", 0)
	wantError(t, "rename to a look-alike", ts.do(t, bob, "PATCH", groupPath(mine.ID, ""), map[string]string{"name": "PayPa1"}),
		http.StatusConflict, "name_look_alike")
}
