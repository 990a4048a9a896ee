package web_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/web"
)

// BenchmarkPollDelivery is the cost of one long-poll delivery through the
// whole handler stack over loopback HTTP, as in docs/benchmarks.md, target
// 7: pollClients clients of a room each hold a GET /api/poll on a
// keep-alive connection of their own; a message sent to the room ends
// them all, and each client polls again. One op is one message; the
// per-delivery figures divide by the deliveries (pollClients per
// message). The clients run in this process: allocs and CPU count both
// sides, the server's being most of them.
func BenchmarkPollDelivery(b *testing.B) {
	const pollClients = 100
	ts := newTestServer(b, withWeb(func(c *web.Config) {
		c.SendRate, c.SendBurst = 1e6, 1e6 // the sender is not the measure
	}), withChat(func(c *chat.Config) { c.CodesPerIP = 1000 }))
	sender := ts.signIn(b, "sender@example.com", "Sender")
	room := ts.enterRoom(b, sender, "bench")

	got := make(chan int, pollClients)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	for i := range pollClients {
		c := ts.signIn(b, fmt.Sprintf("u%d@example.com", i), fmt.Sprintf("U%d", i))
		ts.enterRoom(b, c, "bench")
		tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
		b.Cleanup(tr.CloseIdleConnections)
		hc := &http.Client{Jar: c.Jar, Transport: tr}
		_, cur := benchPoll(b, ctx, hc, ts.URL, "GET", "", "") // hello
		open := fmt.Sprintf(`{"type":"open","room_id":%d}`, room.ID)
		if body, _ := benchPoll(b, ctx, hc, ts.URL, "POST", cur, open); !bytes.Contains(body, []byte(`"opened"`)) {
			b.Fatalf("POST open = %s; want opened", body)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				body, next := benchPoll(b, ctx, hc, ts.URL, "GET", cur, "")
				if body == nil {
					return // failed, or the benchmark ended
				}
				cur = next
				if n := bytes.Count(body, []byte(benchBody)); n > 0 {
					select {
					case got <- n:
					case <-ctx.Done():
					}
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond) // every GET held

	deliveries := 0
	var ms0, ms1 runtime.MemStats
	var ru0, ru1 syscall.Rusage
	runtime.ReadMemStats(&ms0)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	b.ResetTimer()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ts.post(b, sender, room.ID, fmt.Sprintf("m%d", i), benchBody)
		for n := 0; n < pollClients; {
			select {
			case k := <-got:
				n += k
			case <-time.After(waitTimeout):
				b.Fatalf("message %d: %d of %d deliveries", i, n, pollClients)
			}
		}
		deliveries += pollClients
	}
	b.StopTimer()
	elapsed := time.Since(start)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	runtime.ReadMemStats(&ms1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	d := float64(deliveries)
	b.ReportMetric(float64(elapsed.Nanoseconds())/d, "ns/delivery")
	b.ReportMetric(float64(cpu.Nanoseconds())/d, "cpu-ns/delivery")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/d, "allocs/delivery")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/d, "B/delivery")
}

// benchBody is the text of the benchmark's messages, which the clients
// count (a join is a message too).
const benchBody = "hello, this is a message of ordinary length in a busy room"

// benchPoll does one poll request on hc and returns the answer's body and
// the cursor it gives, failing b on anything but 200 with a cursor.
// The cursor is read by hand: the client's cost is not the measure.
func benchPoll(b *testing.B, ctx context.Context, hc *http.Client, base, method, cursor, body string) ([]byte, string) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+"/api/poll?cursor="+url.QueryEscape(cursor), rd)
	if err != nil {
		b.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, cursor
		}
		b.Errorf("%s /api/poll: %v", method, err)
		return nil, cursor
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		if ctx.Err() == nil {
			b.Errorf("%s /api/poll = %d %s, %v", method, resp.StatusCode, data, err)
		}
		return nil, cursor
	}
	if method == "POST" {
		return data, cursor
	}
	const head = `{"cursor":"`
	rest, ok := bytes.CutPrefix(data, []byte(head))
	end := bytes.IndexByte(rest, '"')
	if !ok || end <= 0 {
		b.Errorf("GET /api/poll = %s; want a cursor", data)
		return nil, cursor
	}
	return data, string(rest[:end])
}
