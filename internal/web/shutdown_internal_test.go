package web

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/hub"
)

// A connection closed as the server shuts down writes what its outbox
// holds, and the answers given after the close (the acks of the sends in
// flight), before its goodbye; one closed as too slow or signed out says
// goodbye at once.
func TestGoodbyeAfterOutboxAtShutdown(t *testing.T) {
	for _, tc := range []struct {
		reason  hub.CloseReason
		code    int
		written bool
	}{
		{hub.ReasonShutdown, websocket.CloseServiceRestart, true},
		{hub.ReasonSlow, CloseTooSlow, false},
		{hub.ReasonSessionEnded, CloseSessionEnded, false},
	} {
		t.Run(tc.reason.String(), func(t *testing.T) {
			ws, peer := wsPair(t)
			cl, err := hub.New(nil, slog.New(slog.DiscardHandler)).Register(0, 0, 64, nil)
			if err != nil {
				t.Fatal(err)
			}
			c := &conn{s: &server{cfg: Config{WriteWait: time.Minute}, log: slog.New(slog.DiscardHandler), writers: newWriters()}, format: formatNative, client: cl}
			c.setWS(ws)
			ack := func(i int) *hub.Item {
				return &hub.Item{Raw: fmt.Appendf(nil, `{"type":"ack","client_id":"c-%d"}`, i)}
			}
			const n = 4
			for i := range n - 1 {
				if !cl.Push(ack(i)) {
					t.Fatalf("Push %d refused", i)
				}
			}
			cl.Close(tc.reason)
			late := cl.Push(ack(n - 1))
			if late != tc.written {
				t.Errorf("Push of an answer after the close = %v; want %v", late, tc.written)
			}
			c.flush(cl, false)

			var got []string
			_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
			for range n + 1 {
				var data []byte
				if _, data, err = peer.ReadMessage(); err != nil {
					break
				}
				for line := range bytes.SplitSeq(data, newline) {
					got = append(got, string(line))
				}
			}
			if ce := (*websocket.CloseError)(nil); !errors.As(err, &ce) || ce.Code != tc.code {
				t.Errorf("peer's read ended with %v; want close code %d", err, tc.code)
			}
			var want []string
			if tc.written {
				for i := range n {
					want = append(want, string(ack(i).Raw))
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("frames before the close:\n%q\nwant\n%q", got, want)
			}
		})
	}
}
