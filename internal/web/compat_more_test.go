package web_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/web"
)

// TestChannelsCompatEdges: a frame past the limit closes the connection
// with 1009 and stores nothing; rooms made per address are limited; a
// look-alike name is refused; the server stopping closes with 1012.
func TestChannelsCompatEdges(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.ChannelsCompat = true; c.MaxFrameBytes = 1024 }),
		withChat(func(c *chat.Config) { c.NewConvsPerHour = 2 }))
	ada := ts.signIn(t, "ada@example.com", "Ada")
	c1 := ts.connectCompat(t, "general")
	c1.sendRaw(t, websocket.TextMessage, []byte(fmt.Sprintf(`{"message":%q}`, strings.Repeat("x", 2000))))
	c1.expectClose(t, websocket.CloseMessageTooBig)
	room := ts.enterRoom(t, ada, "general")
	if room.LastSeq != 1 {
		t.Errorf("room after an oversize frame = %+v; want only Ada's join", room)
	}
	_, resp, err := ts.dial(t, nil, "/ws/chat/genera1/", dialOptions{})
	if err == nil || resp == nil || resp.StatusCode != http.StatusConflict {
		t.Errorf("a look-alike room: %v (%s); want 409", err, statusOf(resp))
	}
	ts.connectCompat(t, "second")
	_, resp, err = ts.dial(t, nil, "/ws/chat/third/", dialOptions{})
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("a third room by one address, two allowed: %v (%s); want 429", err, statusOf(resp))
	}
	c2 := ts.connectCompat(t, "general")
	c2.send(t, map[string]string{"message": "hi"})
	if f := c2.next(t); f.Raw != `{"message":"hi"}` {
		t.Fatalf("got %s", f.Raw)
	}
	ts.stop()
	c2.expectClose(t, websocket.CloseServiceRestart)
}

// TestChannelsCompatErrorNamesMessage: an error about the text a client of
// the Django Channels endpoint sent names the field it sent it in,
// "message", not the native protocol's "body", which that client never
// saw.
func TestChannelsCompatErrorNamesMessage(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.ChannelsCompat = true }))
	c := ts.connectCompat(t, "general")
	for _, tt := range []struct{ text, code string }{
		{"", chat.CodeEmpty},
		{"   ", chat.CodeEmpty},
		{strings.Repeat("x", chat.DefaultConfig().MaxMessageLen+1), chat.CodeTooLong},
	} {
		c.send(t, map[string]string{"message": tt.text})
		f := c.next(t)
		if f.Error == nil || f.Error.Code != tt.code || f.Error.Field != "message" {
			t.Errorf("{\"message\": %.20q…} got %s; want error %s with field \"message\"", tt.text, f.Raw, tt.code)
		}
	}
}
