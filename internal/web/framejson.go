package web

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

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
// hold it to encoding/json's results.
func decodeFrame(data []byte, f *inFrame) error { return jsonv1.Unmarshal(data, f) }

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
