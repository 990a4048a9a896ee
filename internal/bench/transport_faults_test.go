package bench_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/bench"
)

// faultyTransports speaks just enough of the long-polling protocol and of
// the Django Channels endpoint for one room, to show that their receivers
// count faults as the WebSocket's do (TestBenchNoticesFaults). Unless
// whole, it loses message 3, sends message 5 twice and message 7 after
// message 8, to every client; numbers are the room's seqs, and with one
// sender the sender's message numbers too. With resumeAt, long-polling
// channels are lost for messages resumeAt to resumeAt+2: those come in the
// answer that resumes them, as a sync.
type faultyTransports struct {
	mu    sync.Mutex
	seq   int64
	msgs  []string // msgs[i]: the message object of seq i+1
	held  string   // message 7's frame, sent after message 8's
	chans map[string]*fakeChan
	comp  map[*fakeConn]bool

	whole       bool
	resumeAt    int64
	resumeDup   bool  // the resuming sync repeats resumeAt-1, which came live
	resumeDrop  bool  // the resuming sync leaves out resumeAt+1
	resumePaged bool  // the resuming sync holds resumeAt only, with has_more: the client fetches the rest
	redeliver   int64 // if not 0: message 2, delivered live before, comes live again before message redeliver
	resumeShut  bool  // the channels resume without the room open (its open failed): the client must open it again
}

// fakeChan is a long-polling channel: the frames its next poll gets.
type fakeChan struct {
	frames []string
	open   bool
	wake   chan struct{}
}

func newFaultyTransports() *faultyTransports {
	return &faultyTransports{chans: make(map[string]*fakeChan), comp: make(map[*fakeConn]bool)}
}

// deliver gives frame (a message frame, or "" for none) of seq to every
// client of the room, with the faults. Called with f.mu held.
func (f *faultyTransports) deliver(seq int64, frame string, out func(string)) {
	switch {
	case f.whole:
		out(frame)
	case seq == 3: // lost
	case seq == 5: // twice
		out(frame)
		out(frame)
	case seq == 7: // held back
		f.held = frame
	case seq == 8:
		out(frame)
		out(f.held)
	default:
		out(frame)
	}
}

func (f *faultyTransports) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/api/rooms":
		fmt.Fprint(w, `{"room": {"id": 1, "name": "bench-0", "last_seq": 0}}`)
	case r.URL.Path == "/api/poll":
		f.poll(w, r)
	case strings.HasPrefix(r.URL.Path, "/ws/chat/"):
		f.compat(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (f *faultyTransports) poll(w http.ResponseWriter, r *http.Request) {
	cursor := r.URL.Query().Get("cursor")
	switch r.Method {
	case http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodGet:
		f.mu.Lock()
		if cursor == "" {
			cursor = strconv.Itoa(len(f.chans) + 1)
			f.chans[cursor] = &fakeChan{frames: []string{`{"type":"hello","limits":{"send_rate":1000}}`}, wake: make(chan struct{}, 1)}
		}
		ch := f.chans[cursor]
		f.mu.Unlock()
		if ch == nil {
			http.Error(w, `{"error":{"code":"invalid_field","message":"cursor"}}`, http.StatusBadRequest)
			return
		}
		select {
		case <-ch.wake:
		case <-time.After(100 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		f.mu.Lock()
		frames := ch.frames
		ch.frames = nil
		f.mu.Unlock()
		fmt.Fprintf(w, `{"cursor":%q,"frames":[%s]}`, cursor, strings.Join(frames, ","))
		return
	}
	var in struct {
		Type     string `json:"type"`
		Ref      string `json:"ref"`
		ClientID string `json:"client_id"`
		Body     string `json:"body"`
		After    int64  `json:"after"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := f.chans[cursor]
	if ch == nil {
		http.Error(w, `{"error":{"code":"invalid_field","message":"cursor"}}`, http.StatusBadRequest)
		return
	}
	var reply []string
	switch in.Type {
	case "open":
		ch.open = true
		reply = append(reply, fmt.Sprintf(`{"type":"opened","ref":%q,"room":{"id":1,"last_seq":%d}}`, in.Ref, f.seq))
		if in.After != 0 {
			var ms []string
			for s := in.After + 1; s <= f.seq; s++ {
				ms = append(ms, f.msgs[s-1])
			}
			reply = append(reply, fmt.Sprintf(`{"type":"sync","ref":%q,"room_id":1,"messages":[%s],"has_more":false}`, in.Ref, strings.Join(ms, ",")))
		}
	case "sync":
		var ms []string
		for s := in.After + 1; s <= f.seq; s++ {
			ms = append(ms, f.msgs[s-1])
		}
		reply = append(reply, fmt.Sprintf(`{"type":"sync","ref":%q,"room_id":1,"messages":[%s],"has_more":false}`, in.Ref, strings.Join(ms, ",")))
	case "send":
		seq, msg := f.store(in.ClientID, in.Body)
		reply = append(reply, fmt.Sprintf(`{"type":"ack","room_id":1,"client_id":%q,"message":%s}`, in.ClientID, msg))
		for _, c := range f.chans {
			if c.open {
				f.pollDeliver(c, seq)
			}
		}
	}
	fmt.Fprintf(w, `{"frames":[%s]}`, strings.Join(reply, ","))
}

// store stores a message; called with f.mu held.
func (f *faultyTransports) store(clientID, body string) (int64, string) {
	f.seq++
	msg := fmt.Sprintf(`{"room_id":1,"seq":%d,"kind":"text","client_id":%q,"body":%q}`, f.seq, clientID, body)
	f.msgs = append(f.msgs, msg)
	return f.seq, msg
}

func messageFrame(msg string) string { return `{"type":"message","room_id":1,"message":` + msg + `}` }

// pollDeliver queues message seq for channel c; called with f.mu held.
func (f *faultyTransports) pollDeliver(c *fakeChan, seq int64) {
	out := func(frame string) { c.frames = append(c.frames, frame) }
	if f.redeliver != 0 && seq == f.redeliver {
		out(messageFrame(f.msgs[1]))
	}
	if f.resumeShut && seq == f.resumeAt {
		// The channel is lost, and rebuilt without the room.
		c.open = false
		out(`{"type":"resumed","rooms":[]}`)
	} else if a := f.resumeAt; !f.resumeShut && a != 0 && seq >= a && seq <= a+2 {
		if seq < a+2 {
			return // the channel is lost
		}
		var ms []string
		if f.resumeDup {
			ms = append(ms, f.msgs[a-2])
		}
		for s := a; s <= a+2; s++ {
			if !(f.resumeDrop && s == a+1) {
				ms = append(ms, f.msgs[s-1])
			}
		}
		more := false
		if f.resumePaged {
			ms, more = ms[:1], true
		}
		out(`{"type":"resumed","rooms":[1]}`)
		out(fmt.Sprintf(`{"type":"sync","room_id":1,"messages":[%s],"has_more":%v}`, strings.Join(ms, ","), more))
	} else {
		f.deliver(seq, messageFrame(f.msgs[seq-1]), out)
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (f *faultyTransports) compat(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	c := &fakeConn{ws: ws}
	defer func() {
		f.mu.Lock()
		delete(f.comp, c)
		f.mu.Unlock()
	}()
	for {
		var in struct {
			Message *string `json:"message"`
		}
		if err := ws.ReadJSON(&in); err != nil {
			return
		}
		f.mu.Lock()
		if in.Message == nil {
			f.comp[c] = true // subscribed, then the error: the bench's barrier
			c.write(`{"error":{"code":"bad_json","message":"no message"}}`)
			f.mu.Unlock()
			continue
		}
		seq, _ := f.store("", *in.Message)
		frame, err := json.Marshal(map[string]string{"message": *in.Message})
		if err != nil {
			panic(err)
		}
		for c := range f.comp {
			f.deliver(seq, string(frame), func(s string) {
				if s != "" {
					c.write(s)
				}
			})
		}
		f.mu.Unlock()
	}
}

// runFaulty runs conns clients of transport, one of them sending 100
// messages a second for 500 ms, against f.
func runFaulty(t *testing.T, f *faultyTransports, transport string, conns int) bench.Result {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return mustRun(t, bench.Config{
		Targets: []string{srv.URL}, Transport: transport, Conns: conns, SendersPerRoom: 1,
		Rate: 100, Duration: 500 * time.Millisecond, Drain: 500 * time.Millisecond, Tokens: []string{"t"},
	})
}

// TestBenchTransportFaults: over long-polling and the Django Channels
// endpoint, every receiver counts a lost, a duplicated and a late message
// as over the WebSocket.
func TestBenchTransportFaults(t *testing.T) {
	const conns = 3
	for _, tr := range []string{bench.TransportLongPoll, bench.TransportCompat} {
		t.Run(tr, func(t *testing.T) {
			res := runFaulty(t, newFaultyTransports(), tr, conns)
			if res.MessagesSent < 10 {
				t.Fatalf("sent %d messages; want at least 10 to reach the faults", res.MessagesSent)
			}
			stored := res.MessagesAcked // long-polling: acknowledged
			if tr == bench.TransportCompat {
				// Echoed to their sender: message 3 is not, but was stored.
				stored = res.MessagesAcked + 1
				if res.Unanswered != 1 {
					t.Errorf("unanswered %d; want 1, the lost message's echo", res.Unanswered)
				}
			}
			if res.Lost != conns || res.Duplicated != conns || res.OutOfOrder != conns ||
				res.DeliveriesExpected != stored*conns || res.DeliveriesReceived != (stored-1)*conns || res.OK {
				t.Errorf("lost, dup, ooo, expected, received, ok = %d, %d, %d, %d, %d, %v; want %d, %d, %d, %d, %d, false",
					res.Lost, res.Duplicated, res.OutOfOrder, res.DeliveriesExpected, res.DeliveriesReceived, res.OK,
					conns, conns, conns, stored*conns, (stored-1)*conns)
			}
		})
	}
}

// TestBenchPollResumeFaults: a long-polling channel the server rebuilt
// resumes with a sync of the messages it missed. Given once each, they
// count once each; a message the sync gives again, or leaves out, is a
// duplicate or a loss; a message that comes twice live is a duplicate
// also after a sync the client paged through itself; and a room the
// resumed channel does not have open is opened again, as the protocol
// asks, with the messages missed.
func TestBenchPollResumeFaults(t *testing.T) {
	const conns = 3
	for _, c := range []struct {
		name           string
		f              *faultyTransports
		lost, dup, ooo int64
	}{
		{"whole", &faultyTransports{whole: true, resumeAt: 4}, 0, 0, 0},
		{"paged", &faultyTransports{whole: true, resumeAt: 4, resumePaged: true}, 0, 0, 0},
		{"repeated", &faultyTransports{whole: true, resumeAt: 4, resumeDup: true}, 0, conns, 0},
		{"left out", &faultyTransports{whole: true, resumeAt: 4, resumeDrop: true}, conns, 0, 0},
		{"twice live after paging", &faultyTransports{whole: true, resumeAt: 4, resumePaged: true, redeliver: 10}, 0, conns, 0},
		{"room not restored", &faultyTransports{whole: true, resumeAt: 4, resumeShut: true}, 0, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.f.chans, c.f.comp = make(map[string]*fakeChan), make(map[*fakeConn]bool)
			res := runFaulty(t, c.f, bench.TransportLongPoll, conns)
			if res.MessagesAcked < 12 {
				t.Fatalf("acked %d messages; want at least 12 to reach the faults", res.MessagesAcked)
			}
			if !strings.Contains(strings.Join(res.Notes, "\n"), "rebuilt") {
				t.Errorf("notes %q; want the rebuilt channels noted", res.Notes)
			}
			if res.Lost != c.lost || res.Duplicated != c.dup || res.OutOfOrder != c.ooo ||
				res.DeliveriesExpected != res.MessagesAcked*conns || res.DeliveriesReceived != res.MessagesAcked*conns-c.lost {
				t.Errorf("lost, dup, ooo, expected, received = %d, %d, %d, %d, %d; want %d, %d, %d, %d, %d",
					res.Lost, res.Duplicated, res.OutOfOrder, res.DeliveriesExpected, res.DeliveriesReceived,
					c.lost, c.dup, c.ooo, res.MessagesAcked*conns, res.MessagesAcked*conns-c.lost)
			}
		})
	}
}
