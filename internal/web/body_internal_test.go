package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/parley-chat/parley/internal/chat"
)

// restBody has a field of each type the REST request bodies have.
type restBody struct {
	ClientID   string  `json:"client_id"`
	Body       *string `json:"body"`
	UserID     int64   `json:"user_id"`
	MaxMembers *int    `json:"max_members"`
	Seq        int64   `json:"seq"`
}

// restInputs are REST bodies valid and not: what docs/protocol.md calls
// bad_json is whatever encoding/json refuses as the whole body, and what
// it takes but alters: strings that are not valid UTF-8.
var restInputs = []string{
	"{\"body\":\"\xff\xfe\"}", "{\"client_id\":\"c\xe6\x9d\"}", "{\"\xc3\":1}",
	`{"body":"\udc00"}`, `{"body":"a\ud800\u0041"}`, `{"body":"\ud83d\ude00"}`, "{\"body\":\"\xff\"",
	`{"client_id":"c-1","body":"hello"}`,
	`{"CLIENT_ID":"c-1","Body":"hello","body":"again","unknown":[1,{"a":null}]}`,
	`{"user_id":9,"max_members":50,"seq":7}`,
	`{"user_id":99999999999999999999}`, `{"user_id":1e2}`, `{"user_id":"9"}`, `{"max_members":2.5}`,
	`{"body":"\xff\xfe"}`, `{"body":"\ud800"}`, `{"body":null}`, ` {"seq" : -1} `,
	`{}` + "\n",
	`{"seq":1`, `[1,2]`, `null`, `hello`, ``, `{}`,
}

// decodeREST decodes in as a POST body, as the handlers do.
func decodeREST(in string, v any) error {
	s := &server{cfg: Config{MaxBodyBytes: 1 << 10}}
	r := httptest.NewRequest(http.MethodPost, "/api/rooms/1/messages", strings.NewReader(in))
	r.Header.Set("Content-Type", "application/json")
	return s.decodeBody(httptest.NewRecorder(), r, v)
}

func checkREST(t *testing.T, in string) {
	t.Helper()
	var got, want restBody
	gerr := decodeREST(in, &got)
	var mbe *http.MaxBytesError
	if errors.As(gerr, &mbe) {
		if len(in) <= 1<<10 {
			t.Fatalf("%q (%d bytes): %v", in, len(in), gerr)
		}
		return
	}
	if e := chat.AsError(gerr); gerr != nil && (e == nil || !errors.Is(gerr, chat.ErrInvalid) || e.Code != chat.CodeBadJSON) {
		t.Fatalf("%q: error %#v; want bad_json", in, gerr)
	}
	werr := json.Unmarshal([]byte(in), &want)
	if werr == nil && !jsontext.Value(in).IsValid(jsontext.AllowDuplicateNames(true)) {
		// Valid JSON but for its UTF-8.
		if gerr == nil {
			t.Fatalf("%q: %+v; want bad_json: not valid UTF-8", in, got)
		}
		return
	}
	if (gerr == nil) != (werr == nil) {
		t.Fatalf("%q: error %v; encoding/json's %v", in, gerr, werr)
	}
	if gerr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: %+v; encoding/json's %+v", in, got, want)
	}
}

func TestDecodeBody(t *testing.T) {
	for _, in := range restInputs {
		checkREST(t, in)
	}
}

func FuzzDecodeBody(f *testing.F) {
	for _, in := range restInputs {
		f.Add(in)
	}
	f.Fuzz(checkREST)
}

// FuzzBodyRoundTrip checks that a message body reaches a client as it was
// sent: a send frame decodes to it, and the message frame's JSON, and the
// Channels endpoint's, is one line (the server puts several frames in one,
// separated by \n) that decodes to it again.
func FuzzBodyRoundTrip(f *testing.F) {
	for _, s := range jsonStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if !utf8.ValidString(body) {
			return // invalid UTF-8: checkBody refuses it
		}
		send, err := json.Marshal(map[string]any{"type": "send", "room_id": 3, "client_id": "c-1", "body": body})
		if err != nil {
			t.Fatal(err)
		}
		var in inFrame
		if err := decodeFrame(send, &in); err != nil || in.Body == nil || *in.Body != body {
			t.Fatalf("send frame %s decodes to %+v, %v", send, in, err)
		}
		m := &chat.Message{ConvID: 3, Seq: 1, Kind: chat.KindText, SenderID: 7, SenderName: "Ada", ClientID: "c-1", Body: body, CreatedAt: time.Unix(1_800_000_000, 0).UTC()}
		out := messageFrame{Type: "message", RoomID: 3, Message: m}.appendJSON(nil)
		if strings.ContainsAny(string(out), "\n\r") {
			t.Fatalf("message frame %q is more than one line", out)
		}
		var got struct {
			Message struct {
				Body string `json:"body"`
			} `json:"message"`
		}
		if err := json.Unmarshal(out, &got); err != nil || got.Message.Body != body {
			t.Fatalf("message frame %s decodes to %q, %v; want %q", out, got.Message.Body, err, body)
		}
		// The Django Channels endpoint's frame carries it too.
		compat := encodeCompat(chat.Event{Type: chat.EventMessage, Message: m})
		var cf compatFrame
		if err := json.Unmarshal(compat, &cf); err != nil || cf.Message == nil || *cf.Message != body || strings.ContainsAny(string(compat), "\n\r") {
			t.Fatalf("compat frame %q of %q, decoded: %+v, %v", compat, body, cf, err)
		}
	})
}
