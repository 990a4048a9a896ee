package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/internal/chat"
)

// TestWritePoll checks that the hand-made answer of a GET /api/poll is
// what encoding/json makes of the same cursor and frames.
func TestWritePoll(t *testing.T) {
	msg := encodeNative(chat.Event{Type: chat.EventMessage, ConvID: 7, Message: &chat.Message{
		ConvID: 7, Seq: 3, Kind: chat.KindText, SenderID: 2, SenderName: "Ada", Body: `<b>"hi" & é</b>`}})
	cursor := pollCursor{Channel: "abc-_", N: 4, User: 2, Convs: map[int64]int64{7: 3}}.encode()
	for _, frames := range [][]json.RawMessage{nil, {msg}, {msg, mustJSON(map[string]any{"type": "typing", "room_id": 7})}} {
		got := httptest.NewRecorder()
		writePoll(got, cursor, frames)
		want := httptest.NewRecorder()
		writeJSON(want, http.StatusOK, struct {
			Cursor string            `json:"cursor"`
			Frames []json.RawMessage `json:"frames"`
		}{cursor, nonNil(frames)})
		if got.Body.String() != want.Body.String() || !cmp.Equal(got.Header(), want.Header()) || got.Code != want.Code {
			t.Errorf("%d frames: writePoll wrote %d %v %q; encoding/json %d %v %q",
				len(frames), got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
		}
	}
}
