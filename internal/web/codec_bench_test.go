package web

import (
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

func benchEvent() chat.Event {
	return chat.Event{Type: chat.EventMessage, ConvID: 3, Message: &chat.Message{
		ConvID: 3, Seq: 42, Kind: chat.KindText, SenderID: 7, SenderName: "Ada", ClientID: "c-1f3a9b",
		Body: "hello, this is a message of ordinary length in a busy room", CreatedAt: time.Date(2026, 11, 22, 10, 5, 0, 0, time.UTC),
	}}
}

// BenchmarkEncodeNative is the cost of one broadcast, paid once per event
// whatever the number of recipients (hub.Item caches it).
func BenchmarkEncodeNative(b *testing.B) {
	ev := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		if encodeNative(ev) == nil {
			b.Fatal("nil frame")
		}
	}
}

func BenchmarkEncodeCompat(b *testing.B) {
	ev := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		if encodeCompat(ev) == nil {
			b.Fatal("nil frame")
		}
	}
}

// BenchmarkDecodeSend is the cost of reading one client send frame.
func BenchmarkDecodeSend(b *testing.B) {
	frame := []byte(`{"type":"send","room_id":3,"client_id":"c-1f3a9b","body":"hello, this is a message of ordinary length in a busy room"}`)
	b.ReportAllocs()
	for b.Loop() {
		var f inFrame
		if err := decodeFrame(frame, &f); err != nil || f.Body == nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeSendAfterPause is BenchmarkDecodeSend with the process
// idle for 100 ms before each decode, as between two messages at target 3's
// light load: what is left of the CPU's caches then is what a light load
// pays for, on every step of a message's path.
func BenchmarkDecodeSendAfterPause(b *testing.B) {
	const decodes = 10
	frame := []byte(`{"type":"send","room_id":3,"client_id":"c-1f3a9b","body":"hello, this is a message of ordinary length in a busy room"}`)
	var spent time.Duration
	n := 0
	for b.Loop() {
		for range decodes {
			time.Sleep(100 * time.Millisecond)
			t0 := time.Now()
			var f inFrame
			err := decodeFrame(frame, &f)
			spent += time.Since(t0)
			if err != nil || f.Body == nil {
				b.Fatal(err)
			}
			n++
		}
	}
	b.ReportMetric(float64(spent.Nanoseconds())/1e3/float64(n), "µs/decode")
}
