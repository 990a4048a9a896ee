package web

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/parley-chat/parley/internal/chat"
)

// jsonStrings need every kind of escaping JSON has, and some it has not.
var jsonStrings = []string{
	"", "Ada", `quote " backslash \ slash /`, "tab\tnewline\nreturn\r bell\x07 nul\x00",
	"<script>&amp;</script>", "line\u2028paragraph\u2029", "naïve 東京 🎉",
	"invalid \xff\xfe utf-8 \xc3", "\x7f delete",
}

// sameJSON fails unless a and b are valid JSON of the same value.
func sameJSON(t *testing.T, a, b []byte) {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if !reflect.DeepEqual(va, vb) {
		t.Errorf("got  %s\nwant %s", a, b)
	}
}

// checkFrames compares the message and ack frames of m, encoded by
// appendJSON, with what encoding/json makes of the same values.
func checkFrames(t *testing.T, m *chat.Message, ref, clientID string) {
	t.Helper()
	mf := messageFrame{Type: "message", RoomID: 7, Message: m}
	want, err := json.Marshal(mf)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, mf.appendJSON(nil), want)
	af := ackFrame{Type: "ack", Ref: ref, RoomID: -3, ClientID: clientID, Message: m}
	if want, err = json.Marshal(af); err != nil {
		t.Fatal(err)
	}
	got, err := encodeFrame(af)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, got, want)
	// Appending keeps what was there.
	if got := af.appendJSON([]byte("x")); string(got[1:]) != string(af.appendJSON(nil)) || got[0] != 'x' {
		t.Errorf("appendJSON to a buffer: %q", got)
	}
}

func TestMessageJSON(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 5, 3, 123456789, time.UTC)
	checkFrames(t, nil, "", "")
	checkFrames(t, &chat.Message{}, "", "")
	for _, tz := range []*time.Location{time.UTC, time.FixedZone("x", -(3*3600 + 30*60))} {
		for _, nsec := range []int{0, 5000000, 123456789} {
			m := &chat.Message{ConvID: 1 << 40, Seq: 42, Kind: chat.KindAdded, SenderID: 9, SenderName: "Ada", ClientID: "c-1",
				Body: "hi", TargetID: 11, TargetName: "Bob", CreatedAt: at.Add(time.Duration(nsec)).In(tz)}
			checkFrames(t, m, "r1", "c-1")
		}
	}
	for _, s := range jsonStrings {
		checkFrames(t, &chat.Message{Kind: chat.MessageKind(s), SenderName: s, ClientID: s, Body: s, TargetName: s, CreatedAt: at}, s, s)
	}
	long := strings.Repeat("é<\"", 2000)
	checkFrames(t, &chat.Message{Body: long, CreatedAt: at}, "", "")
}

func FuzzMessageJSON(f *testing.F) {
	for _, s := range jsonStrings {
		f.Add(s, s, int64(1), int64(0))
	}
	f.Fuzz(func(t *testing.T, body, name string, seq, nsec int64) {
		at := time.Unix(1_800_000_000, nsec%1e9).UTC()
		checkFrames(t, &chat.Message{ConvID: seq, Seq: seq, Kind: chat.KindText, SenderID: seq, SenderName: name, ClientID: body,
			Body: body, TargetID: seq, TargetName: name, CreatedAt: at}, name, body)
	})
}

// decodeFrame must read every frame as encoding/json does, but refuse
// those whose strings are not valid UTF-8, which encoding/json alters.
var frameInputs = []string{
	"{\"type\":\"send\",\"body\":\"\xff\xfe\"}", "{\"type\":\"send\",\"b\xc3\":1}", "{\"type\":\"ping\",\"ref\":\"\xe6\x9d\"}",
	`{"type":"send","body":"\ud800"}`, `{"type":"send","body":"a\udc00b"}`, `{"ref":"\ude00\ud83d"}`,
	`{"type":"send","body":"\ud83d\ude00"}`, "{\"type\":\"send\",\"body\":\"\xff\"",
	`{"type":"send","room_id":3,"client_id":"c-1","body":"hello"}`,
	`{"TYPE":"send","Room_ID":3,"CLIENT_id":"c-1","Body":"hello"}`,
	`{"type":"sync","room_id":3,"after":null,"seq":7,"unknown":{"a":[1,2,{}]}}`,
	`{"type":"send","type":"read","room_id":1,"room_id":2}`,
	` {"type" : "ping" , "ref":"\u00e9\ud83c\udf89\n"} `,
	`{"type":"send","body":"\xff"}`,
	`{"type":"send","room_id":1e3}`,
	`{"type":"send","room_id":"3"}`,
	`{"type":5}`,
	`{"type":"send","body":5}`,
	`{"type":"send","room_id":3.5}`,
	`{"type":"send","room_id":99999999999999999999}`,
	`{"type":"send"`,
	`[1,2]`, `null`, `hello`, ``, `{}`, `{"type":"send"} {}`,
	`{"type":"send","after":-1,"seq":0}`,
}

func checkDecode(t *testing.T, in []byte) {
	var got, want inFrame
	gerr := decodeFrame(in, &got)
	werr := json.Unmarshal(in, &want)
	if werr == nil && !jsontext.Value(in).IsValid(jsontext.AllowDuplicateNames(true)) {
		// Valid JSON but for its UTF-8.
		if gerr != errNotUTF8 {
			t.Fatalf("%q: error %v; want errNotUTF8", in, gerr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %+v with errNotUTF8; encoding/json's %+v", in, got, want)
		}
		return
	}
	if (gerr == nil) != (werr == nil) {
		t.Fatalf("%q: error %v; encoding/json's %v", in, gerr, werr)
	}
	if gerr == nil && !reflect.DeepEqual(got, want) {
		t.Errorf("%q: %+v; encoding/json's %+v", in, got, want)
	}
}

func TestDecodeFrame(t *testing.T) {
	for _, in := range frameInputs {
		checkDecode(t, []byte(in))
	}
}

func FuzzDecodeFrame(f *testing.F) {
	for _, in := range frameInputs {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkDecode(t, in) })
}
