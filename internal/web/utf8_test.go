package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/web"
)

// badUTF8 are JSON strings (quoted) whose text is not valid UTF-8: raw
// bytes that are no UTF-8, and escapes of lone surrogates, which
// encoding/json turned into U+FFFD without a word.
var badUTF8 = []struct{ name, quoted string }{
	{"raw bytes", "\"bad \xff\xfe bytes\""},
	{"truncated sequence", "\"cut \xe6\x9d\""},
	{"lone high surrogate", `"lone \ud800 high"`},
	{"lone low surrogate", `"lone \udc00 low"`},
	{"reversed pair", `"\ude00\ud83d"`},
}

// wantBodies fails unless the text messages of room roomID are exactly
// want.
func (ts *testServer) wantBodies(t *testing.T, c *client, roomID int64, want ...string) {
	t.Helper()
	var got []string
	for _, m := range ts.allMessages(t, c, roomID) {
		if m.Kind == "text" {
			got = append(got, m.Body)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("room %d holds %q; want %q", roomID, got, want)
	}
}

// TestWSInvalidUTF8: a frame whose strings are not valid UTF-8 is answered
// with a bad_json error frame carrying its ref, nothing is stored, and the
// connection stays open.
func TestWSInvalidUTF8(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	w := ts.connect(t, ada)
	w.open(t, room.ID, nil)
	for i, tc := range badUTF8 {
		ref := fmt.Sprintf("r-%d", i)
		w.sendRaw(t, websocket.TextMessage, fmt.Appendf(nil, `{"type":"send","ref":%q,"room_id":%d,"client_id":"c-%d","body":%s}`, ref, room.ID, i, tc.quoted))
		f := w.take(t, "answer of "+ref, func(f frame) bool { return f.Ref == ref })
		if f.Type != "error" || f.Code != chat.CodeBadJSON || f.RoomID != room.ID || f.Text == "" {
			t.Errorf("%s: send = %s; want a bad_json error with ref %q and room_id %d", tc.name, f, ref, room.ID)
		}
	}
	w.sendMessage(t, room.ID, "c-ok", "still here")
	ts.wantBodies(t, ada, room.ID, "still here")
}

// TestPollInvalidUTF8: the same over a long-poll channel's POST.
func TestPollInvalidUTF8(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	var poll struct {
		Cursor string            `json:"cursor"`
		Frames []json.RawMessage `json:"frames"`
	}
	ts.mustDo(t, ada, "GET", "/api/poll", nil, http.StatusOK, &poll)
	for i, tc := range badUTF8 {
		ref := fmt.Sprintf("r-%d", i)
		body := fmt.Sprintf(`{"type":"send","ref":%q,"room_id":%d,"client_id":"c-%d","body":%s}`, ref, room.ID, i, tc.quoted)
		var out struct {
			Frames []json.RawMessage `json:"frames"`
		}
		ts.mustDo(t, ada, "POST", "/api/poll?cursor="+url.QueryEscape(poll.Cursor), body, http.StatusOK, &out)
		if len(out.Frames) != 1 {
			t.Fatalf("%s: %d frames; want 1", tc.name, len(out.Frames))
		}
		f, err := parseFrame(out.Frames[0])
		if err != nil {
			t.Fatal(err)
		}
		if f.Type != "error" || f.Code != chat.CodeBadJSON || f.Ref != ref || f.RoomID != room.ID {
			t.Errorf("%s: send = %s; want a bad_json error with ref %q and room_id %d", tc.name, f, ref, room.ID)
		}
	}
	if f := ts.pollSend(t, ada, poll.Cursor, room.ID, "c-ok"); f.Type != "ack" {
		t.Fatalf("valid send after = %s; want its ack", f)
	}
	ts.wantBodies(t, ada, room.ID, "hi")
}

// TestRESTInvalidUTF8: a REST body whose strings are not valid UTF-8 is
// 400 bad_json, and nothing is stored.
func TestRESTInvalidUTF8(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	for i, tc := range badUTF8 {
		body := fmt.Sprintf(`{"client_id":"c-%d","body":%s}`, i, tc.quoted)
		r := ts.do(t, ada, "POST", roomPath(room.ID, "/messages"), body)
		wantError(t, tc.name, r, http.StatusBadRequest, chat.CodeBadJSON)
		r = ts.do(t, ada, "POST", "/api/rooms", fmt.Sprintf(`{"name":%s}`, tc.quoted))
		wantError(t, tc.name+" room name", r, http.StatusBadRequest, chat.CodeBadJSON)
	}
	ts.post(t, ada, room.ID, "c-ok", "still here")
	ts.wantBodies(t, ada, room.ID, "still here")
}

// TestChannelsCompatInvalidUTF8: on the Django Channels endpoint, such a
// frame is answered as the other bad frames are, and the connection stays
// usable.
func TestChannelsCompatInvalidUTF8(t *testing.T) {
	ts := newTestServer(t, withWeb(func(c *web.Config) { c.ChannelsCompat = true }))
	compat := ts.connectCompat(t, "general")
	for _, tc := range badUTF8 {
		compat.sendRaw(t, websocket.TextMessage, fmt.Appendf(nil, `{"message":%s}`, tc.quoted))
		f := compat.next(t)
		if f.Error == nil || f.Error.Code != chat.CodeBadJSON {
			t.Errorf("%s: got %s; want a bad_json error", tc.name, f)
		}
	}
	compat.sendRaw(t, websocket.TextMessage, []byte(`{"message":"still here"}`))
	if f := compat.next(t); f.Text != "still here" {
		t.Fatalf("valid message after = %s; want it back", f)
	}
}

// TestWSInvalidUTF8Ref: a frame refused for a string that is not valid
// UTF-8 has its ref, or a send's client_id, sent back exactly, though it
// holds the valid character U+FFFD (sent raw or escaped); a ref that is
// itself the invalid string is not sent back, as docs/protocol.md says.
func TestWSInvalidUTF8Ref(t *testing.T) {
	ts := newTestServer(t)
	ada := ts.signIn(t, "ada@example.com", "Ada")
	room := ts.enterRoom(t, ada, "general")
	w := ts.connect(t, ada)
	w.open(t, room.ID, nil)
	for _, tc := range []struct {
		name, frame, want string
	}{
		{"raw U+FFFD in ref", `{"type":"send","ref":"r-` + "\uFFFD" + `-0","room_id":%d,"client_id":"c-0","body":"\ud800"}`, "r-\uFFFD-0"},
		{"escaped U+FFFD in ref", `{"type":"send","ref":"r-\ufffd-1","room_id":%d,"client_id":"c-1","body":"\ud800"}`, "r-\uFFFD-1"},
		{"U+FFFD in client_id", `{"type":"send","room_id":%d,"client_id":"c-` + "\uFFFD" + `-2","body":"\ud800"}`, "c-\uFFFD-2"},
		{"U+FFFD in ref of a read", `{"type":"read","ref":"r-` + "\uFFFD" + `-3","room_id":%d,"seq":0,"x":"\udc00"}`, "r-\uFFFD-3"},
		{"invalid ref", `{"type":"send","ref":"r-\ud800-4","room_id":%d,"client_id":"c-4","body":"\ud800"}`, ""},
		{"invalid ref, valid U+FFFD too", `{"type":"send","ref":"r-` + "\uFFFD\xff" + `-5","room_id":%d,"client_id":"c-5","body":"hi"}`, ""},
		{"invalid client_id", `{"type":"send","room_id":%d,"client_id":"c-` + "\xfe" + `-6","body":"hi"}`, ""},
	} {
		w.sendRaw(t, websocket.TextMessage, fmt.Appendf(nil, tc.frame, room.ID))
		f := w.take(t, "answer of "+tc.name, func(f frame) bool { return f.Type == "error" })
		if f.Code != chat.CodeBadJSON || f.Ref != tc.want || f.RoomID != room.ID {
			t.Errorf("%s: answer %s; want a bad_json error with ref %q and room_id %d", tc.name, f, tc.want, room.ID)
		}
	}
	w.sendMessage(t, room.ID, "c-ok", "still here")
	ts.wantBodies(t, ada, room.ID, "still here")
}
