package web

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/parley-chat/parley/internal/chat"
)

// decodeFrame decodes a client's frame into f by encoding/json's rules
// (names matched without regard to case, the last of a repeated name
// kept, unknown names ignored), on the decoder of json/v2: the Go team's
// github.com/go-json-experiment/json, which Go ships as encoding/json/v2
// behind GOEXPERIMENT=jsonv2. A send frame then costs 2 allocations
// instead of 9 (BenchmarkDecodeSend); TestDecodeFrame and FuzzDecodeFrame
// hold it to encoding/json's results, but for strings that are not valid
// UTF-8 (unmarshal).
func decodeFrame(data []byte, f *inFrame) error { return unmarshal(data, f) }

// strictV1 are encoding/json's rules (jsonv1.DefaultOptionsV1) but for
// strings that are not valid UTF-8, which they take, as encoding/json
// does, turning what is wrong into U+FFFD without a word.
var strictV1 = jsonv2.JoinOptions(jsonv1.DefaultOptionsV1(), jsontext.AllowInvalidUTF8(false))

// errNotUTF8 is unmarshal's error for JSON whose only fault is a string
// that is not valid UTF-8.
var errNotUTF8 = errors.New("a string in it is not valid UTF-8 (bytes that are no UTF-8, or an escaped lone surrogate such as \\ud800)")

// unmarshal decodes data into v, a pointer, by encoding/json's rules, but
// refuses a string (a name too) that is not valid UTF-8: bytes that are
// no UTF-8, or an escape of a lone surrogate ("\ud800"). Such a string
// would be stored altered, its faults made U+FFFD, where the house rule
// is that bad input is refused and loses nothing. If that is data's only
// fault, unmarshal returns errNotUTF8 with v decoded as encoding/json
// decodes it, for the caller to answer with what it can tell of the
// request (a frame's ref); else encoding/json's error. The decoder checks
// the UTF-8 it reads anyway: valid input costs nothing more, and invalid
// input is decoded a second time, by encoding/json's rules.
func unmarshal(data []byte, v any) error {
	err := jsonv2.Unmarshal(data, v, strictV1)
	if err == nil {
		return nil
	}
	reflect.ValueOf(v).Elem().SetZero()
	if err := jsonv1.Unmarshal(data, v); err != nil {
		return err
	}
	return errNotUTF8
}

// rawRefValid reports whether the ref of frame data (its client_id unless
// isRef), as it stands in the JSON, is valid UTF-8: a ref that holds
// U+FFFD once decoded may have been sent so, or may be what decoding made
// of bytes that are no UTF-8. It is asked only of frames refused for such
// bytes (unmarshal's errNotUTF8), whose names encoding/json matches as
// decodeFrame does.
func rawRefValid(data []byte, isRef bool) bool {
	var raw struct {
		Ref      jsontext.Value `json:"ref"`
		ClientID jsontext.Value `json:"client_id"`
	}
	if jsonv1.Unmarshal(data, &raw) != nil {
		return false
	}
	v := raw.Ref
	if !isRef {
		v = raw.ClientID
	}
	var s string
	return jsonv2.Unmarshal(v, &s, strictV1) == nil
}

// The two frames that carry a message on every send, the message event and
// the sender's ack, are encoded here without reflection: encoding/json
// spends more on walking their types, and on checking what time.Time's
// MarshalJSON returns, than on the bytes. The output is the JSON of
// chat.Message's tags (TestMessageJSON compares the two on every field and
// on strings that need escaping); strings are quoted by jsontext, which
// escapes what JSON requires and nothing more.

// encodeFrame is a reply frame's JSON: its own encoding where it has one.
func encodeFrame(v any) ([]byte, error) {
	if a, ok := v.(jsonAppender); ok {
		return a.appendJSON(nil), nil
	}
	return json.Marshal(v)
}

// jsonAppender is a frame that encodes itself.
type jsonAppender interface{ appendJSON(b []byte) []byte }

// appendJSON appends the message frame's JSON to b.
func (f messageFrame) appendJSON(b []byte) []byte {
	b = grow(b, f.Message)
	b = append(b, `{"type":`...)
	b = appendString(b, f.Type)
	b = append(b, `,"room_id":`...)
	b = strconv.AppendInt(b, f.RoomID, 10)
	b = append(b, `,"message":`...)
	b = appendMessage(b, f.Message)
	return append(b, '}')
}

// appendJSON appends the ack frame's JSON to b.
func (f ackFrame) appendJSON(b []byte) []byte {
	b = grow(b, f.Message)
	b = append(b, `{"type":`...)
	b = appendString(b, f.Type)
	if f.Ref != "" {
		b = append(b, `,"ref":`...)
		b = appendString(b, f.Ref)
	}
	b = append(b, `,"room_id":`...)
	b = strconv.AppendInt(b, f.RoomID, 10)
	b = append(b, `,"client_id":`...)
	b = appendString(b, f.ClientID)
	b = append(b, `,"message":`...)
	b = appendMessage(b, f.Message)
	return append(b, '}')
}

// appendMessage appends m's JSON, as encoding/json makes it of its tags,
// to b: null for nil.
func appendMessage(b []byte, m *chat.Message) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	b = append(b, `{"room_id":`...)
	b = strconv.AppendInt(b, m.ConvID, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, m.Seq, 10)
	b = append(b, `,"kind":`...)
	b = appendString(b, string(m.Kind))
	b = append(b, `,"sender_id":`...)
	b = strconv.AppendInt(b, m.SenderID, 10)
	b = append(b, `,"sender_name":`...)
	b = appendString(b, m.SenderName)
	if m.ClientID != "" {
		b = append(b, `,"client_id":`...)
		b = appendString(b, m.ClientID)
	}
	b = append(b, `,"body":`...)
	b = appendString(b, m.Body)
	if m.TargetID != 0 {
		b = append(b, `,"target_id":`...)
		b = strconv.AppendInt(b, m.TargetID, 10)
	}
	if m.TargetName != "" {
		b = append(b, `,"target_name":`...)
		b = appendString(b, m.TargetName)
	}
	b = append(b, `,"created_at":"`...)
	b = m.CreatedAt.AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

// grow makes room in b for a frame of m, so that appending it allocates
// once: its strings plus the rest of its fields, names and numbers.
func grow(b []byte, m *chat.Message) []byte {
	n := 256
	if m != nil {
		n += len(m.SenderName) + len(m.ClientID) + len(m.Body) + len(m.TargetName)
	}
	return slices.Grow(b, n)
}

// appendString appends s quoted. Invalid UTF-8 becomes U+FFFD, as
// encoding/json makes it; the error that reports it is not one.
func appendString(b []byte, s string) []byte {
	b, _ = jsontext.AppendQuote(b, s)
	return b
}
