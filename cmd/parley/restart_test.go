package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsFrames reads ws until it ends or deadline passes, and returns the
// frames read, one object per line of each message, and how it ended.
func wsFrames(ws *websocket.Conn, deadline time.Time) ([]map[string]any, error) {
	var frames []map[string]any
	for {
		ws.SetReadDeadline(deadline)
		_, data, err := ws.ReadMessage()
		if err != nil {
			return frames, err
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			var m map[string]any
			if json.Unmarshal(line, &m) == nil {
				frames = append(frames, m)
			}
		}
	}
}

// TestRunRestartLosesNoSend: a WebSocket client sends many messages
// without waiting for their acks while the server shuts down; it is told
// to reconnect, and once the server is back on the same database it sends
// again, with the same client IDs, those not acknowledged. Every message
// is then stored exactly once, and every one acknowledged before the
// restart is among them.
func TestRunRestartLosesNoSend(t *testing.T) {
	limits := []string{"--send-rate", "1000", "--send-burst", "1000"}
	s := startServer(t, limits...)
	ada := signIn(t, s, "ada@example.com", "Ada")
	var room struct {
		Room struct{ ID int64 } `json:"room"`
	}
	postJSON(t, ada, "POST", s.URL+"/api/rooms", map[string]string{"name": "general"}, http.StatusOK, &room)
	ws := dialWS(t, s, ada)
	readUntil(t, ws, "hello")
	ws.WriteJSON(map[string]any{"type": "open", "room_id": room.Room.ID})
	readUntil(t, ws, "opened")

	const n = 300
	id := func(i int) string { return fmt.Sprintf("c-%03d", i) }
	// Sends go out while the server stops; reads go on until it closes.
	sent := make(chan int, 1)
	go func() {
		i := 0
		for ; i < n; i++ {
			ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if ws.WriteJSON(map[string]any{"type": "send", "room_id": room.Room.ID, "client_id": id(i), "body": "m " + id(i)}) != nil {
				break
			}
			if i == n/3 {
				go s.stop()
			}
		}
		sent <- i
	}()
	frames, err := wsFrames(ws, time.Now().Add(15*time.Second))
	if !websocket.IsCloseError(err, websocket.CloseServiceRestart) {
		t.Errorf("socket ended with %v; want close 1012", err)
	}
	<-sent
	if err := s.shutdown(t); err != nil {
		t.Errorf("run after shutdown = %v; want nil", err)
	}
	acked := map[string]bool{}
	for _, f := range frames {
		if f["type"] == "ack" {
			acked[f["client_id"].(string)] = true
		}
		if f["type"] == "error" {
			t.Logf("error frame before restart: %v", f)
		}
	}
	t.Logf("%d of %d sends acknowledged before the restart", len(acked), n)

	s2 := startServer(t, append(limits, "--db", s.DB)...)
	ws2 := dialWS(t, s2, ada)
	readUntil(t, ws2, "hello")
	ws2.WriteJSON(map[string]any{"type": "open", "room_id": room.Room.ID})
	readUntil(t, ws2, "opened")
	want := 0
	for i := range n {
		if !acked[id(i)] {
			ws2.WriteJSON(map[string]any{"type": "send", "room_id": room.Room.ID, "client_id": id(i), "body": "m " + id(i)})
			want++
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for got := 0; got < want; {
		fs, err := wsFrames1(ws2, deadline)
		if err != nil {
			t.Fatalf("after the restart, %d of %d sends acknowledged: %v", got, want, err)
		}
		for _, f := range fs {
			switch f["type"] {
			case "ack":
				acked[f["client_id"].(string)] = true
				got++
			case "message":
			default:
				t.Logf("after the restart: %v", f)
			}
		}
	}

	// The history: every message once, in client order.
	var page struct {
		Messages []struct {
			Seq      int64  `json:"seq"`
			ClientID string `json:"client_id"`
		} `json:"messages"`
		HasMore bool `json:"has_more"`
	}
	seen := map[string]int{}
	for after := int64(0); ; {
		resp, err := ada.Get(fmt.Sprintf("%s/api/rooms/%d/messages?after=%d&limit=100", s2.URL, room.Room.ID, after))
		if err != nil {
			t.Fatal(err)
		}
		page.Messages, page.HasMore = nil, false
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Messages {
			after = m.Seq
			if m.ClientID != "" {
				seen[m.ClientID]++
			}
		}
		if !page.HasMore || len(page.Messages) == 0 {
			break
		}
	}
	for i := range n {
		if c := seen[id(i)]; c != 1 || !acked[id(i)] {
			t.Errorf("send %s: stored %d times, acknowledged %v; want once, acknowledged", id(i), c, acked[id(i)])
		}
	}
}

// TestRunRestartLongPollMissesNothing: a long-polling client carries on
// with its cursor across a restart, while another sends to the room it
// has open over a WebSocket, as the server stops and once it is back: it
// receives every message of the room exactly once.
func TestRunRestartLongPollMissesNothing(t *testing.T) {
	limits := []string{"--send-rate", "1000", "--send-burst", "1000", "--poll-hold", "2s"}
	s := startServer(t, limits...)
	ada := signIn(t, s, "ada@example.com", "Ada")
	grace := signIn(t, s, "grace@example.com", "Grace")
	var room struct {
		Room struct{ ID int64 } `json:"room"`
	}
	postJSON(t, ada, "POST", s.URL+"/api/rooms", map[string]string{"name": "general"}, http.StatusOK, &room)
	postJSON(t, grace, "POST", s.URL+"/api/rooms", map[string]string{"name": "general"}, http.StatusOK, &room)
	poll := poller(s, ada)
	cursor := firstCursor(t, poll)
	postJSON(t, ada, "POST", s.URL+"/api/poll?cursor="+url.QueryEscape(cursor), map[string]any{"type": "open", "room_id": room.Room.ID}, http.StatusOK, nil)

	// Ada polls on, to whichever server is up, until stop.
	var server atomic.Pointer[testServer]
	server.Store(s)
	got := map[int64]int{}
	stop := make(chan struct{})
	polled := make(chan error, 1)
	go func() {
		for range 2000 {
			select {
			case <-stop:
				polled <- nil
				return
			default:
			}
			resp, err := ada.Get(server.Load().URL + "/api/poll?cursor=" + url.QueryEscape(cursor))
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			var a struct {
				Cursor string
				Frames []struct {
					Type     string
					Message  *struct{ Seq int64 }
					Messages []struct{ Seq int64 }
				}
			}
			err = json.NewDecoder(resp.Body).Decode(&a)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			cursor = a.Cursor
			for _, f := range a.Frames {
				if f.Message != nil {
					got[f.Message.Seq]++
				}
				for _, m := range f.Messages {
					got[m.Seq]++
				}
			}
		}
		polled <- errors.New("Ada's polls did not end")
	}()

	send := func(s *testServer, from, to int, shutdownAt int) map[string]bool {
		ws := dialWS(t, s, grace)
		readUntil(t, ws, "hello")
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			for i := from; i < to; i++ {
				ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if ws.WriteJSON(map[string]any{"type": "send", "room_id": room.Room.ID, "client_id": fmt.Sprintf("g-%03d", i), "body": "hi"}) != nil {
					return
				}
				if i == shutdownAt {
					go s.stop()
				}
			}
		}()
		frames, _ := wsFrames(ws, time.Now().Add(3*time.Second))
		<-sent
		acked := map[string]bool{}
		for _, f := range frames {
			if f["type"] == "ack" {
				acked[f["client_id"].(string)] = true
			}
		}
		return acked
	}
	acked := send(s, 0, 100, 50)
	if err := s.shutdown(t); err != nil {
		t.Errorf("run after shutdown = %v; want nil", err)
	}
	s2 := startServer(t, append(limits, "--db", s.DB)...)
	server.Store(s2)
	ws := dialWS(t, s2, grace)
	readUntil(t, ws, "hello")
	want := 0
	for i := range 100 {
		if id := fmt.Sprintf("g-%03d", i); !acked[id] {
			ws.WriteJSON(map[string]any{"type": "send", "room_id": room.Room.ID, "client_id": id, "body": "hi"})
			want++
		}
	}
	waitAcks(t, ws, want, "after the restart, ")
	var r struct {
		Room struct {
			LastSeq int64 `json:"last_seq"`
		} `json:"room"`
	}
	postJSON(t, grace, "POST", s2.URL+"/api/rooms", map[string]string{"name": "general"}, http.StatusOK, &r)
	time.Sleep(3 * time.Second) // let Ada's polls bring the rest
	close(stop)
	if err := <-polled; err != nil {
		t.Fatal(err)
	}
	first := int64(3) // after the two joins
	for seq := first; seq <= r.Room.LastSeq; seq++ {
		if got[seq] != 1 {
			t.Errorf("message %d received %d times; want once", seq, got[seq])
		}
	}
	t.Logf("last seq %d; %d before the restart acknowledged", r.Room.LastSeq, len(acked))
}
