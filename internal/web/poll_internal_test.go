package web

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/parley-chat/parley/internal/chat"
)

// TestWritePoll checks that the hand-made answer of a GET /api/poll is
// byte for byte what encoding/json makes of the same cursor and frames,
// once the frames' <, > and & are escaped as encoding/json escapes them
// (\u003c and so on): writePoll passes frames as they are.
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
		var escaped bytes.Buffer
		json.HTMLEscape(&escaped, got.Body.Bytes())
		if escaped.String() != want.Body.String() || !cmp.Equal(got.Header(), want.Header()) || got.Code != want.Code {
			t.Errorf("%d frames: writePoll wrote %d %v %q; encoding/json %d %v %q",
				len(frames), got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
		}
	}
}

func TestCursor(t *testing.T) {
	for _, c := range []pollCursor{
		{Channel: "x"},
		{Channel: "abc-_", N: 4, User: 2, Convs: map[int64]int64{7: 3}},
		{Channel: strings.Repeat("c", maxChannelLen), N: math.MaxInt64, User: 1 << 40, Convs: map[int64]int64{1: 0, 2: math.MaxInt64, 1 << 50: 5}},
	} {
		s := c.encode()
		got, err := parseCursor(s)
		if err != nil {
			t.Errorf("parseCursor(encode(%+v)): %v", c, err)
			continue
		}
		if diff := cmp.Diff(c, got.plain(), cmpopts.EquateEmpty(), cmp.AllowUnexported(pollCursor{})); diff != "" {
			t.Errorf("cursor after a round trip (-want +got):\n%s", diff)
		}
		if again := c.encode(); again != s {
			t.Errorf("encode(%+v) = %q, then %q: want the same", c, s, again)
		}
	}

	// A cursor of an earlier server, JSON under the base64, still parses.
	legacy := base64.RawURLEncoding.EncodeToString([]byte(`{"ch":"old","n":5,"u":3,"c":{"9":12}}`))
	want := pollCursor{Channel: "old", N: 5, User: 3, Convs: map[int64]int64{9: 12}}
	if got, err := parseCursor(legacy); err != nil || !cmp.Equal(got.plain(), want, cmp.AllowUnexported(pollCursor{})) {
		t.Errorf("parseCursor(legacy) = %+v, %v; want %+v", got, err, want)
	}

	raw := func(b ...byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	good := []byte{cursorV1, 1, 'a', 0, 0, 1, 7, 3}
	if _, err := parseCursor(raw(good...)); err != nil {
		t.Fatalf("parseCursor(%v): %v", good, err)
	}
	for name, s := range map[string]string{
		"not base64":        "!!",
		"other version":     raw(append([]byte{2}, good[1:]...)...),
		"no channel":        raw(cursorV1, 0, 0, 0, 0),
		"channel too long":  raw(append([]byte{cursorV1, maxChannelLen + 1}, strings.Repeat("c", maxChannelLen+1)...)...),
		"channel past end":  raw(cursorV1, 5, 'a'),
		"truncated":         raw(good[:len(good)-1]...),
		"trailing bytes":    raw(append(good, 0)...),
		"id twice":          raw(cursorV1, 1, 'a', 0, 0, 2, 7, 3, 7, 4),
		"ids not in order":  raw(cursorV1, 1, 'a', 0, 0, 2, 9, 3, 7, 4),
		"too many convs":    raw(cursorV1, 1, 'a', 0, 0, 0x81, 0x02), // 257
		"number overflows":  raw(cursorV1, 1, 'a', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0),
		"negative n (json)": base64.RawURLEncoding.EncodeToString([]byte(`{"ch":"a","n":-1}`)),
		// No conversation has an id below 1, nor a seq below 0.
		"id zero":             raw(cursorV1, 1, 'a', 0, 0, 1, 0, 3),
		"id zero (json)":      base64.RawURLEncoding.EncodeToString([]byte(`{"ch":"a","c":{"0":3}}`)),
		"negative id (json)":  base64.RawURLEncoding.EncodeToString([]byte(`{"ch":"a","c":{"-9":3}}`)),
		"negative seq (json)": base64.RawURLEncoding.EncodeToString([]byte(`{"ch":"a","c":{"9":-1}}`)),
		"too long":            strings.Repeat("A", maxCursorLen+1),
		// base64's decoder skips line breaks, but no server gave them,
		// and an answer that gives the cursor back as it came (a GET
		// replaced by a newer) would not be JSON.
		"line break": raw(good[:3]...) + "\n" + raw(good[3:]...),
		// A channel's name is not valid UTF-8: no server gave it, and
		// the channel_ended event, JSON through the broker, would name
		// another channel (U+FFFD in place of its bytes).
		"channel not UTF-8":             raw(cursorV1, 2, 'a', 0xff, 0, 0, 0),
		"channel not UTF-8 (json)":      base64.RawURLEncoding.EncodeToString([]byte("{\"ch\":\"a\xff\"}")),
		"channel lone surrogate (json)": base64.RawURLEncoding.EncodeToString([]byte(`{"ch":"a\ud800"}`)),
		// Nor is one of other characters than its names have
		// (base64url, and the dot between a fork's family and its
		// own): a fork of it would carry them in its name.
		"channel of other characters":        raw(cursorV1, 3, 'a', ' ', '<', 0, 0, 0),
		"channel of other characters (json)": base64.RawURLEncoding.EncodeToString([]byte(`{"ch":"a\n\u00e9"}`)),
	} {
		if c, err := parseCursor(s); err == nil {
			t.Errorf("%s: parseCursor(%q) = %+v, want an error", name, s, c)
		} else if !errors.Is(err, chat.ErrInvalid) {
			t.Errorf("%s: parseCursor error %v is not chat.ErrInvalid", name, err)
		}
	}
}

// TestParseCursorAllocs checks that reading a cursor makes no map of its
// conversations: the buffer it is decoded into, the channel's name and
// the cursor are all it allocates.
func TestParseCursorAllocs(t *testing.T) {
	s := pollCursor{Channel: "abc-_", N: 4, User: 2, Convs: map[int64]int64{7: 3, 9: 1, 12: 40}}.encode()
	if n := testing.AllocsPerRun(100, func() { _, _ = parseCursor(s) }); n > 3 {
		t.Errorf("parseCursor allocates %v times; want 3 at most", n)
	}
}

// TestHoldTimer checks that a hold timer taken again fires at the end of
// its new period, not with a value its earlier one left unread.
func TestHoldTimer(t *testing.T) {
	for range 3 { // the pool may drop what it was given: try a few
		old := getHoldTimer(time.Millisecond)
		time.Sleep(20 * time.Millisecond) // it fired; nobody received
		putHoldTimer(old)
		tm := getHoldTimer(time.Hour)
		select {
		case <-tm.C:
			t.Fatal("a timer taken for an hour fired at once")
		case <-time.After(30 * time.Millisecond):
		}
		putHoldTimer(tm)
		tm = getHoldTimer(time.Millisecond)
		select {
		case <-tm.C:
		case <-time.After(10 * time.Second):
			t.Fatal("a timer taken for a millisecond did not fire")
		}
		putHoldTimer(tm)
	}
}

func FuzzParseCursor(f *testing.F) {
	f.Add(pollCursor{Channel: "abc", N: 4, User: 2, Convs: map[int64]int64{7: 3}}.encode())
	f.Add(base64.RawURLEncoding.EncodeToString([]byte(`{"ch":"old","n":5,"u":3,"c":{"9":12}}`)))
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCursor(s)
		if err != nil || c == nil {
			return
		}
		// What parses is a cursor the server could have given.
		again, err := parseCursor(c.encode())
		if err != nil || !cmp.Equal(c.plain(), again.plain(), cmpopts.EquateEmpty(), cmp.AllowUnexported(pollCursor{})) {
			t.Fatalf("parseCursor(%q) = %+v, which encodes to %+v, %v", s, c, again, err)
		}
	})
}

// plain is c with its conversations in Convs, as a cursor made to be
// encoded has them, for cmp.
func (c *pollCursor) plain() pollCursor {
	p := pollCursor{Channel: c.Channel, N: c.N, User: c.User}
	for id, seq := range c.conversations() {
		if p.Convs == nil {
			p.Convs = make(map[int64]int64)
		}
		p.Convs[id] = seq
	}
	return p
}

// ForgedCursor is a well-formed cursor of channel ch that no server gave,
// for the tests of package web_test.
func ForgedCursor(ch string) string { return pollCursor{Channel: ch}.encode() }

// TestPollTouchStopped: a channel that stopped keeps no idle countdown.
// A request under way as it stopped (a GET held as the DELETE came, or
// cut as too slow; a POST) touched it as it ended and set the countdown
// going again, which held the channel, its session and the frames of its
// last answer for PollIdle more.
func TestPollTouchStopped(t *testing.T) {
	ch := &pollChannel{s: &server{cfg: Config{PollIdle: time.Hour}}}
	ch.touch()
	// What stop does to the countdown.
	ch.mu.Lock()
	ch.stopped = true
	ch.idle.Stop()
	ch.mu.Unlock()

	ch.touch()
	if ch.idle.Stop() {
		t.Error("touch of a stopped channel set its idle countdown going again")
	}
}
