package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSeqChecker(t *testing.T) {
	type counts struct {
		Count, Dups, Late, Gaps, Missing, Last int64
	}
	for _, tc := range []struct {
		name string
		base int64
		seqs []int64
		want counts
	}{
		{"in order", 0, []int64{1, 2, 3}, counts{Count: 3, Last: 3}},
		{"gap", 0, []int64{1, 2, 5}, counts{Count: 3, Gaps: 2, Missing: 2, Last: 5}},
		{"duplicate", 0, []int64{1, 2, 2, 3, 1}, counts{Count: 3, Dups: 2, Last: 3}},
		{"out of order fills the gap", 0, []int64{1, 3, 2, 4}, counts{Count: 4, Late: 1, Gaps: 1, Last: 4}},
		{"late then duplicate", 0, []int64{2, 1, 1}, counts{Count: 2, Dups: 1, Late: 1, Gaps: 1, Last: 2}},
		{"at or below base ignored", 10, []int64{9, 10, 11, 12}, counts{Count: 2, Last: 12}},
		{"first after base is a gap", 10, []int64{13}, counts{Count: 1, Gaps: 2, Missing: 2, Last: 13}},
		{"across bitmap words", 0, []int64{1, 200, 64, 65, 200}, counts{Count: 4, Dups: 1, Late: 2, Gaps: 198, Missing: 196, Last: 200}},
		{"absurdly far ahead ignored", 0, []int64{1, maxSpan + 1}, counts{Count: 1, Last: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newSeqChecker(tc.base)
			for _, s := range tc.seqs {
				c.add(s)
			}
			got := counts{Count: c.count, Dups: c.dups, Late: c.late, Gaps: c.gaps, Missing: c.missing(), Last: c.last}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("after %v: mismatch (-want +got):\n%s", tc.seqs, diff)
			}
			for _, s := range tc.seqs {
				if s > tc.base && s <= tc.base+maxSpan && !c.has(s) {
					t.Errorf("has(%d) = false; want true", s)
				}
			}
			if c.has(tc.base) || c.has(c.last+1) {
				t.Errorf("has reports numbers never added")
			}
		})
	}
}

func TestSeqCheckerStatus(t *testing.T) {
	c := newSeqChecker(0)
	for _, step := range []struct {
		n    int64
		want seqStatus
	}{
		{0, seqIgnored}, {1, seqInOrder}, {3, seqInOrder}, {2, seqLate}, {2, seqDup}, {3, seqDup}, {4, seqInOrder},
	} {
		if got := c.add(step.n); got != step.want {
			t.Errorf("add(%d) = %d; want %d", step.n, got, step.want)
		}
	}
}

func TestBuckets(t *testing.T) {
	prev := -1
	for us := int64(0); us < 1<<20; us += 1 + us/1000 {
		i := bucketOf(us)
		if i < prev {
			t.Fatalf("bucketOf(%d) = %d < bucketOf of a smaller value (%d)", us, i, prev)
		}
		prev = i
		// The upper edge is what a quantile reads: near a goal, a wide
		// bucket turns a figure under it into one over it.
		if m := bucketMax(i); m < us || float64(m-us) > 0.008*float64(us)+1 {
			t.Fatalf("bucketMax(bucketOf(%d)) = %d; want within 0.8%% above", us, m)
		}
	}
	if i := bucketOf(maxMicro); i != nBuckets-1 {
		t.Errorf("bucketOf(maxMicro) = %d; want nBuckets-1 = %d", i, nBuckets-1)
	}
	if i := bucketOf(-5); i != 0 {
		t.Errorf("bucketOf(-5) = %d; want 0", i)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for ms := 1; ms <= 100; ms++ {
		h.record(time.Duration(ms) * time.Millisecond)
	}
	var s snapshot
	s.add(&h)
	got := s.latency()
	near := func(got, want float64) bool { return got >= want && got <= want*1.008 }
	if !near(got.P50, 50) || !near(got.P90, 90) || !near(got.P99, 99) || got.Max != 100 {
		t.Errorf("latency = %+v; want about p50 50, p90 90, p99 99, max 100", got)
	}
	var empty snapshot
	if got := empty.latency(); got != (Latency{}) {
		t.Errorf("latency of nothing = %+v; want zeros", got)
	}
}

func TestBody(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	s, n, got, ok := parseBody(formatBody(42, 7, at))
	if !ok || s != 42 || n != 7 || !got.Equal(at) {
		t.Errorf("parseBody(formatBody(42, 7, t)) = %d, %d, %v, %v; want 42, 7, %v, true", s, n, got, ok, at)
	}
	for _, b := range []string{"", "hello", "1:2", "a:1:2", "1:0:5", "-1:1:5", "1:2:x"} {
		if _, _, _, ok := parseBody(b); ok {
			t.Errorf("parseBody(%q) ok; want not", b)
		}
	}
}

func TestDecodeNative(t *testing.T) {
	var got []event
	for _, line := range []string{
		`{"type":"message","room_id":3,"message":{"seq":42,"kind":"text","sender_id":7,"body":"1:2:3"}}`,
		`{"type":"message","room_id":3,"message":{"seq":43,"kind":"join","body":""}}`,
		`{"type":"ack","room_id":3,"client_id":"c-1","message":{"seq":44,"kind":"text","body":"x"}}`,
		`{"type":"error","ref":"c-2","room_id":3,"code":"rate_limited","message":"too many requests; slow down","retry_after_ms":100}`,
		`{"type":"presence","room_id":3,"user":{"id":9,"name":"Grace"},"online":true}`,
		// Not as the server writes them: the general path.
		`{"room_id":3,"type":"message","message":{"seq":45,"kind":"text","body":"1:2:3"}}`,
		`{"type":"message","room_id":3,"message":{"seq":46,"kind":"text","sender_name":"\"seq\":1","body":"say \"hi\""}}`,
		`{"type":"message","room_id":3,"message":{"kind":"text","body":"x","seq":47}}`,
		`{"type":"ack","room_id":3,"message":{"seq":48,"client_id":"c-3","body":"x"},"client_id":"c-3"}`,
		`{"type":"ack","room_id":3,"client_id":"c\"4","message":{"seq":49,"kind":"text","body":"x"}}`,
		`not json`,
	} {
		decodeNative([]byte(line), func(ev event) { got = append(got, ev) })
	}
	want := []event{
		{typ: evMessage, seq: 42, isText: true, body: "1:2:3"},
		{typ: evMessage, seq: 43},
		{typ: evAck, seq: 44, ref: "c-1"},
		{typ: evError, ref: "c-2", code: "rate_limited", text: "too many requests; slow down"},
		{typ: evOther},
		{typ: evMessage, seq: 45, isText: true, body: "1:2:3"},
		{typ: evMessage, seq: 46, isText: true, body: `say "hi"`},
		{typ: evMessage, seq: 47, isText: true, body: "x"},
		{typ: evAck, seq: 48, ref: "c-3"},
		{typ: evAck, seq: 49, ref: `c"4`},
	}
	if len(got) != len(want)+1 || got[len(got)-1].typ != evBad {
		t.Fatalf("decoded %d events, last %+v; want %d, the last bad", len(got), got[len(got)-1], len(want)+1)
	}
	if diff := cmp.Diff(want, got[:len(want)], cmp.AllowUnexported(event{})); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

func TestParseProc(t *testing.T) {
	status := "Name:\tparley\nVmPeak:\t  300000 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n"
	stat := "4242 (par ley) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 300000000 3086 18446744073709551615\n"
	got, err := parseProc([]byte(status), []byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	want := procStats{RSS: 12345 << 10, CPU: 3 * time.Second, Sys: 500 * time.Millisecond, ok: true}
	if got != want {
		t.Errorf("parseProc = %+v; want %+v", got, want)
	}
	if _, err := parseProc([]byte("Name:\tx\n"), []byte(stat)); err == nil {
		t.Errorf("parseProc without VmRSS: no error")
	}
}

func TestParseMachine(t *testing.T) {
	stat := "cpu  100 5 50 1000 20 3 7 2 0 0\ncpu0 50 5 25 500 10 3 7 1 0 0\nintr 1 2 3\n"
	got, err := parseMachine([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	// Busy: user, nice, system, irq, softirq, steal; in all: with idle
	// and iowait.
	want := machineStats{Busy: 1670 * time.Millisecond, Total: 11870 * time.Millisecond}
	if got != want {
		t.Errorf("parseMachine = %+v; want %+v", got, want)
	}
	// A machine of 64 CPUs up for five weeks has been idle some 2×10¹⁰
	// ticks: 2×10⁸ s, which a time.Duration holds, though not the ticks
	// times a second.
	got, err = parseMachine([]byte("cpu  100 0 0 20000000000 0 0 0 0 0 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (machineStats{Busy: time.Second, Total: 200_000_001 * time.Second}); got != want {
		t.Errorf("parseMachine of a long-idle machine = %+v; want %+v", got, want)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8\n", "cpu 1 2 3\n", "cpu 1 2 3 4 x 6 7 8\n"} {
		if _, err := parseMachine([]byte(bad)); err == nil {
			t.Errorf("parseMachine(%q): no error", bad)
		}
	}
}

func TestDecodeCompat(t *testing.T) {
	var got []event
	for _, line := range []string{
		`{"message":"1:2:3"}`,
		`{"message":"say \"hi\""}`,
		`{"message": "spaced"}`,
		`{"message":"a","extra":"b"}`,
		`{"error":{"code":"rate_limited","message":"too many requests; slow down"}}`,
		`[]`,
	} {
		decodeCompat([]byte(line), func(ev event) { got = append(got, ev) })
	}
	want := []event{
		{typ: evMessage, isText: true, body: "1:2:3"},
		{typ: evMessage, isText: true, body: `say "hi"`},
		{typ: evMessage, isText: true, body: "spaced"},
		{typ: evMessage, isText: true, body: "a"},
		{typ: evError, code: "rate_limited", text: "too many requests; slow down"},
	}
	if len(got) != len(want)+1 || got[len(got)-1].typ != evBad {
		t.Fatalf("decoded %d events, last %+v; want %d, the last bad", len(got), got[len(got)-1], len(want)+1)
	}
	if diff := cmp.Diff(want, got[:len(want)], cmp.AllowUnexported(event{})); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

var sampleMessage = []byte(`{"type":"message","room_id":1,"message":{"room_id":1,"seq":123456,"kind":"text","sender_id":17,"sender_name":"bench-17","client_id":"abc123-4-567","body":"4:567:1700000000123456789","created_at":"2026-11-22T10:05:00.123456Z"}}`)

func BenchmarkDecodeNative(b *testing.B) {
	var n int64
	for b.Loop() {
		decodeNative(sampleMessage, func(ev event) { n += ev.seq })
	}
}

// sampleAnswer is a poll's answer with one message, as the server writes it.
var sampleAnswer = []byte(`{"cursor":"AQIDBAUGBwgJCgsMDQ4P","frames":[` + string(sampleMessage) + `]}` + "\n")

// TestPollAnswer: a poll's answer gives its cursor and its frames byte for
// byte; an answer that is not one JSON object, or names a key twice, is
// an error.
func TestPollAnswer(t *testing.T) {
	var a pollAnswer
	if err := a.decode(sampleAnswer); err != nil {
		t.Fatal(err)
	}
	if a.Cursor != "AQIDBAUGBwgJCgsMDQ4P" || len(a.Frames) != 1 || string(a.Frames[0]) != string(sampleMessage) {
		t.Errorf("decoded cursor %q, frames %q; want the sample's", a.Cursor, a.Frames)
	}
	a = pollAnswer{}
	if err := a.decode([]byte(`{"frames":[{"type":"ack"},{"type":"error"}]}`)); err != nil || a.Cursor != "" || len(a.Frames) != 2 {
		t.Errorf("a POST's answer: cursor %q, %d frames, error %v; want no cursor, 2 frames", a.Cursor, len(a.Frames), err)
	}
	for _, bad := range []string{
		``,
		`{"cursor":"a","frames":[{"type":"message"]}`,
		`{"cursor":"a","cursor":"b","frames":[]}`,
		`{"cursor":"a","frames":[]} {}`,
		`{"cursor":1,"frames":[]}`,
	} {
		if err := new(pollAnswer).decode([]byte(bad)); err == nil {
			t.Errorf("decode(%q): no error", bad)
		}
	}
}

func BenchmarkDecodePollAnswer(b *testing.B) {
	for b.Loop() {
		var a pollAnswer
		if err := a.decode(sampleAnswer); err != nil {
			b.Fatal(err)
		}
	}
}

// TestToFirstAndLast: each message counts once, at its fastest and at its
// slowest delivery, whichever client had them; a message nobody got does
// not count.
func TestToFirstAndLast(t *testing.T) {
	rm := &room{senders: make([]*sender, 2)}
	a, b := &client{room: rm}, &client{room: rm}
	rm.clients = []*client{a, b}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	a.noteLatency(0, 1, ms(5))
	b.noteLatency(0, 1, ms(9)) // message 1 of sender 0: 9 ms to its last recipient
	a.noteLatency(0, 3, ms(7)) // message 2 never came; 3 only to a
	b.noteLatency(1, 1, ms(2))
	a.noteLatency(1, 1, ms(1))
	a.noteLatency(2, 1, ms(50)) // no such sender: ignored
	a.noteLatency(0, 0, ms(50)) // no message 0: ignored
	var first, last histogram
	perMessage(rm, &first, &last, nil)
	var f, l snapshot
	f.add(&first)
	l.add(&last)
	// The fastest is read back as its bucket's upper edge: within 1/128.
	if q := l.quantile(0); l.n != 3 || l.max != 9000 || q < 2000 || q > 2000+2000/128 {
		t.Errorf("to last: messages %d, slowest %d µs, fastest %d µs; want 3, 9000, 2000", l.n, l.max, q)
	}
	if q := f.quantile(0); f.n != 3 || f.max != 7000 || q < 1000 || q > 1000+1000/128 {
		t.Errorf("to first: messages %d, slowest %d µs, fastest %d µs; want 3, 7000, 1000", f.n, f.max, q)
	}
}

// TestMessageStats: a line per message a sender sent, or a client got,
// with its receivers and its latencies to the first, median and last; the
// same walk counts each message got at its slowest delivery.
func TestMessageStats(t *testing.T) {
	at := time.Unix(1700000000, 0)
	rm := &room{idx: 3, senders: []*sender{
		{sentAt: []int64{at.UnixNano(), at.Add(time.Second).UnixNano(), at.Add(2 * time.Second).UnixNano()}},
		nil, // a room's sender that never sent (it did not connect)
	}}
	a, b, c := &client{room: rm}, &client{room: rm}, &client{room: rm}
	rm.clients = []*client{a, b, c}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	a.noteLatency(0, 1, ms(5))
	b.noteLatency(0, 1, ms(9))
	c.noteLatency(0, 1, ms(7))
	a.noteLatency(0, 3, ms(4)) // message 2 never came; 3 only to a
	b.noteLatency(1, 1, ms(2)) // a message of sender 1, of whose send the run kept no time
	var (
		first, last histogram
		got         []MessageStat
	)
	perMessage(rm, &first, &last, &got)
	if h := &last; h.max.Load() != 9000 || h.counts[bucketOf(9000)].Load() != 1 || h.counts[bucketOf(4000)].Load() != 1 || h.counts[bucketOf(2000)].Load() != 1 {
		t.Errorf("to last: max %d µs; want 9000, and 9, 4 and 2 ms counted once each", h.max.Load())
	}
	if h := &first; h.max.Load() != 5000 || h.counts[bucketOf(5000)].Load() != 1 || h.counts[bucketOf(4000)].Load() != 1 || h.counts[bucketOf(2000)].Load() != 1 {
		t.Errorf("to first: max %d µs; want 5000, and 5, 4 and 2 ms counted once each", h.max.Load())
	}
	want := []MessageStat{
		{Room: 3, Sender: 0, N: 1, Sent: at, Receivers: 3, First: ms(5), Median: ms(7), Last: ms(9)},
		{Room: 3, Sender: 0, N: 2, Sent: at.Add(time.Second)},
		{Room: 3, Sender: 0, N: 3, Sent: at.Add(2 * time.Second), Receivers: 1, First: ms(4), Median: ms(4), Last: ms(4)},
		{Room: 3, Sender: 1, N: 1, Receivers: 1, First: ms(2), Median: ms(2), Last: ms(2)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
	var buf strings.Builder
	if err := (Result{Messages: got[:2]}).WriteMessages(&buf); err != nil {
		t.Fatal(err)
	}
	wantCSV := "room,sender,n,sent_unix_ns,receivers,first_us,median_us,last_us\n" +
		"3,0,1,1700000000000000000,3,5000,7000,9000\n" +
		"3,0,2,1700000001000000000,0,0,0,0\n"
	if buf.String() != wantCSV {
		t.Errorf("WriteMessages wrote\n%s\nwant\n%s", buf.String(), wantCSV)
	}
}

// TestClientID checks that the load tool's client IDs sort in the order they
// were made, whatever their sender and number, stay within the 64
// characters a client ID may have, and differ between senders and sends.
func TestClientID(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	ids := []string{
		clientID(at, 999999, 999999999),
		clientID(at.Add(time.Nanosecond), 0, 1),
		clientID(at.Add(time.Microsecond), 5, 12),
		clientID(at.Add(time.Hour), 5, 13),
	}
	if !slices.IsSorted(ids) {
		t.Errorf("client IDs made in time order sort as %q; want that order", ids)
	}
	for _, id := range ids {
		if len(id) > 64 {
			t.Errorf("client ID %q has %d characters; want at most 64", id, len(id))
		}
	}
	if a, b := clientID(at, 1, 7), clientID(at, 2, 7); a == b {
		t.Errorf("two senders' client IDs at the same time are both %q", a)
	}
	if a, b := clientID(at, 1, 7), clientID(at, 1, 8); a == b {
		t.Errorf("two sends' client IDs at the same time are both %q", a)
	}
}

// markSession records when its read positions were sent.
type markSession struct {
	session
	mu sync.Mutex
	at []time.Time
}

func (s *markSession) markRead(int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at = append(s.at, time.Now())
	return nil
}

// TestMarkSpread: clients that see the same message at the same moment
// move their read positions at once in a group, and spread over ReadEvery
// in a room, as the web app's queueRead does.
func TestMarkSpread(t *testing.T) {
	const n = 50
	for _, groups := range []bool{true, false} {
		r := &runState{cfg: Config{Groups: groups}}
		ss := make([]*markSession, n)
		start := time.Now()
		for i := range ss {
			ss[i] = &markSession{}
			r.queueMark(&client{sess: ss[i]}, 1)
		}
		at := func() (sent int, first, last time.Time) {
			for _, s := range ss {
				s.mu.Lock()
				for _, a := range s.at {
					if sent == 0 || a.Before(first) {
						first = a
					}
					if a.After(last) {
						last = a
					}
					sent++
				}
				s.mu.Unlock()
			}
			return sent, first, last
		}
		if groups {
			if sent, _, _ := at(); sent != n {
				t.Fatalf("group: %d of %d moves sent at once; want all", sent, n)
			}
			continue
		}
		if sent, _, _ := at(); sent > 2 {
			t.Errorf("room: %d of %d moves sent at once; want them spread", sent, n)
		}
		every := ReadEvery(false)
		deadline := start.Add(every + 5*time.Second)
		for {
			sent, first, last := at()
			if sent == n {
				if spread := last.Sub(first); spread < every/4 {
					t.Errorf("room: %d moves within %v; want them spread over up to %v", n, spread, every)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("room: %d of %d moves sent after %v", sent, n, time.Since(start))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestMarkStops: closing a run's sessions stops the clients' armed read
// position timers, up to 5 s away in a room, which would otherwise fire
// after the run, and arms no more.
func TestMarkStops(t *testing.T) {
	s := &markSession{}
	c := &client{sess: s}
	r := &runState{cfg: Config{}, clients: []*client{c}}
	r.queueMark(c, 1)
	c.mark.mu.Lock()
	armed := c.mark.armed != nil
	c.mark.mu.Unlock()
	if !armed {
		t.Fatal("a room's first move armed no timer")
	}
	r.closeAll()
	r.queueMark(c, 2)
	c.mark.mu.Lock()
	defer c.mark.mu.Unlock()
	if c.mark.armed != nil {
		t.Error("a timer is armed after closeAll")
	}
}

// TestPollSendStampsAfterSlot: a long-polling sender whose maxPosts POSTs
// are all under way takes its send's timestamp once one of them ends, as
// the WebSocket sender takes it once its write can go: waiting for a slot
// of the load tool's own is not the server's latency.
func TestPollSendStampsAfterSlot(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"frames":[{"type":"ack","room_id":1,"client_id":"x","message":{"seq":1}}]}`)
	}))
	defer srv.Close()
	framed := make(chan struct{}, 1)
	s := &pollSession{t: newPollTransport(Config{}), target: srv.URL, posts: make(chan struct{}, maxPosts),
		frame: func(clientID, body string) []byte {
			framed <- struct{}{}
			return nativeSend(1)(clientID, body)
		}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	defer func() {
		s.cancel()
		s.wg.Wait()
	}()
	for range maxPosts {
		s.posts <- struct{}{} // every POST slot is taken
	}

	r := &runState{cfg: Config{PerMessage: true}}
	snd := &sender{c: &client{sess: s}, slots: make(chan struct{}, 1)}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.runSender(snd, stop, time.Now(), time.Time{}, 0, 0)
	}()
	// Let the sender come to its wait for a slot (the test cannot fail
	// for waiting too little, only miss the fault).
	time.Sleep(200 * time.Millisecond)
	freed := time.Now()
	<-s.posts
	select {
	case <-framed:
	case <-time.After(10 * time.Second):
		t.Fatal("no send within 10s of a POST slot coming free")
	}
	close(stop)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the sender did not stop within 10s")
	}
	if len(snd.sentAt) != 1 {
		t.Fatalf("sender sent %d messages; want 1 (one send slot)", len(snd.sentAt))
	}
	if at := time.Unix(0, snd.sentAt[0]); at.Before(freed) {
		t.Errorf("send stamped %v before its POST slot came free; want the stamp taken once the slot is had", freed.Sub(at))
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		h    string
		want time.Duration
	}{
		{"0", 0},
		{"3", 3 * time.Second},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"", time.Second},
		{"-1", time.Second},
		{"soon", time.Second},
	} {
		if got := retryAfter(tc.h, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %s; want %s", tc.h, got, tc.want)
		}
	}
}

// TestSettle checks that settle waits until no frame has come for its
// quiet time, for its limit at most.
func TestSettle(t *testing.T) {
	r := newRun(Config{Targets: []string{"http://127.0.0.1:1"}, Rooms: 2, Conns: 4, Progress: io.Discard}, nil)
	frames := func(d time.Duration) (stop func()) {
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			end := time.After(d)
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				case <-end:
					return
				case <-tick.C:
					r.clients[i%len(r.clients)].shard.frames.Add(1)
				}
			}
		})
		return func() { close(done); wg.Wait() }
	}

	// The last frame comes up to one tick (5 ms) before busy ends, and
	// settle starts a little after the frames: hence the margin.
	const busy, quiet, margin = 200 * time.Millisecond, 100 * time.Millisecond, 20 * time.Millisecond
	stop := frames(busy)
	d, ok := r.settle(context.Background(), quiet, 10*time.Second)
	stop()
	if !ok || d < busy+quiet-margin {
		t.Errorf("settle = %v, %v; want true once no frame came for %v, after %v at least", d, ok, quiet, busy+quiet-margin)
	}

	stop = frames(10 * time.Second)
	d, ok = r.settle(context.Background(), quiet, 300*time.Millisecond)
	stop()
	if ok || d < 300*time.Millisecond {
		t.Errorf("settle with frames coming all along = %v, %v; want false after its limit", d, ok)
	}
	if len(r.notes) != 1 || !strings.Contains(r.notes[0], "frames still came") {
		t.Errorf("notes = %q; want one of the frames still coming", r.notes)
	}

	// A wait shorter than the ticker's finest step still settles.
	if _, ok := r.settle(context.Background(), time.Nanosecond, 10*time.Second); !ok {
		t.Error("settle with a wait of 1ns did not settle")
	}
}
