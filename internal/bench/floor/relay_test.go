package floor

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The bare relay: the floor under the fan-out targets (3 and 4 of
// docs/benchmarks.md). A peer process opens conns connections to this one
// and, on the first, sends rate records a second; this process writes each
// record it reads to every connection, the first included, and the peer
// times each record's arrival on each connection against the time stamp
// the record carries. That is a message's way through Parley and the load
// tool (two processes, loopback TCP, Go's network poller on both sides, one
// write per recipient, one goroutine reading each connection) without
// anything Parley or the tool do on top: no WebSocket, no JSON, no store,
// no hub, no sequence checks. No server of these targets on this machine,
// with a client that reads each connection, can do better.

// relayPeerEnv makes the test binary the peer process of the relay
// (TestMain); its value is "ADDR CONNS MESSAGES RATE".
const relayPeerEnv = "PARLEY_BENCH_RELAY_PEER"

// recordSize is the size of a relayed record: about what a message event
// of the load tool's takes on the wire. A record holds its index and its
// time stamp (Unix ns), then padding.
const recordSize = 160

// relayResult is what the peer measured: latencies in ns, CPU in ns.
type relayResult struct {
	deliveries         int
	p50, p99, max      int64 // over every delivery
	firstP50, firstP99 int64 // over messages, of each one's first delivery
	lastP50, lastP99   int64 // over messages, of each one's last delivery
	lastMax            int64
	peerCPU, serverCPU int64 // user + system, while records flowed
	peerSys, serverSys int64 // of which system: the kernel's
}

// runRelay starts the peer and relays its records until it reports: conns
// connections, messages records at rate a second. It fails t on any error.
func runRelay(t testing.TB, conns, messages, rate int, uring bool) relayResult {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out := startPeer(t, fmt.Sprintf("%s=%s %d %d %d", relayPeerEnv, ln.Addr(), conns, messages, rate))

	// The peer dials the sending connection first and waits for it to be
	// established before the others, so it is the first accepted.
	cs := make([]net.Conn, 0, conns)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(time.Minute))
	for len(cs) < conns {
		c, err := ln.Accept()
		if err != nil {
			t.Fatalf("accepted %d of %d connections: %v", len(cs), conns, err)
		}
		cs = append(cs, c)
	}

	// One writer per processor, as Parley's, each with its share of the
	// connections, written in order.
	writers := min(runtime.GOMAXPROCS(0), conns)
	queues := make([]chan []byte, writers)
	var wg sync.WaitGroup
	writeErr := make(chan error, writers+1) // the writers' and the reader's
	for w := range queues {
		queues[w] = make(chan []byte, messages)
		mine := cs[w*conns/writers : (w+1)*conns/writers]
		var fds []int32
		if uring {
			fds = socketFDs(t, mine)
		}
		wg.Go(func() {
			send := func(rec []byte) error {
				for _, c := range mine {
					if _, err := c.Write(rec); err != nil {
						return err
					}
				}
				return nil
			}
			if uring {
				// A ring per writer, on a thread of its own: the ring is
				// set up for a single issuer.
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				r, err := newRing(1024)
				if err != nil {
					writeErr <- err
					return
				}
				defer r.close()
				send = func(rec []byte) error { return r.sendAll(fds, rec) }
			}
			for rec := range queues[w] {
				if err := send(rec); err != nil {
					writeErr <- err
					return
				}
			}
		})
	}
	// The reader closes the queues when it ends, which ends the writers;
	// on a failure, closing its connection ends it early.
	readerDone := make(chan struct{})
	defer func() {
		select {
		case <-readerDone:
		default:
			cs[0].Close()
			<-readerDone
		}
		wg.Wait()
	}()
	cpu0, sys0 := cpuTime()
	go func() {
		defer close(readerDone)
		defer func() {
			for _, q := range queues {
				close(q)
			}
		}()
		// Relay what the first connection sends, after telling the peer
		// that every connection is ready.
		if _, err := cs[0].Write([]byte{1}); err != nil {
			writeErr <- err
			return
		}
		r := bufio.NewReaderSize(cs[0], recordSize)
		for range messages {
			rec := make([]byte, recordSize)
			if _, err := io.ReadFull(r, rec); err != nil {
				writeErr <- err
				return
			}
			for _, q := range queues {
				q <- rec
			}
		}
	}()

	line := make(chan string, 1)
	go func() {
		s, _ := out.ReadString('\n')
		line <- s
	}()
	var s string
	select {
	case s = <-line:
	case err := <-writeErr:
		t.Fatalf("relay: %v", err)
	case <-time.After(time.Duration(messages/rate)*time.Second + 40*time.Second):
		t.Fatal("the relay's peer did not report in time")
	}
	cpu1, sys1 := cpuTime()
	res, err := parseRelayResult(s)
	if err != nil {
		t.Fatalf("relay peer: %v", err)
	}
	res.serverCPU, res.serverSys = cpu1-cpu0, sys1-sys0
	return res
}

// socketFDs returns the file descriptors of cs, which stay theirs while
// cs are open.
func socketFDs(t testing.TB, cs []net.Conn) []int32 {
	fds := make([]int32, len(cs))
	for i, c := range cs {
		rc, err := c.(*net.TCPConn).SyscallConn()
		if err == nil {
			err = rc.Control(func(fd uintptr) { fds[i] = int32(fd) })
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return fds
}

// cpuTime is this process's user and system time so far, and its system
// time alone, in ns.
func cpuTime() (cpu, sys int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano(), ru.Stime.Nano()
}

const resultFormat = "deliveries %d p50 %d p99 %d max %d first-p50 %d first-p99 %d last-p50 %d last-p99 %d last-max %d cpu %d sys %d\n"

func parseRelayResult(s string) (relayResult, error) {
	if rest, ok := strings.CutPrefix(s, "error "); ok {
		return relayResult{}, errors.New(strings.TrimSpace(rest))
	}
	var r relayResult
	_, err := fmt.Sscanf(s, resultFormat, &r.deliveries, &r.p50, &r.p99, &r.max, &r.firstP50, &r.firstP99, &r.lastP50, &r.lastP99, &r.lastMax, &r.peerCPU, &r.peerSys)
	if err != nil {
		return relayResult{}, fmt.Errorf("result %q: %w", s, err)
	}
	return r, nil
}

// relayPeer is the peer process: it dials, sends, receives and reports one
// line on stdout, the result or "error ...". It gives up after the time
// its messages take plus 30 s.
func relayPeer(arg string) int {
	fail := func(format string, a ...any) int {
		fmt.Printf("error "+format+"\n", a...)
		return 1
	}
	f := strings.Fields(arg)
	if len(f) != 4 {
		return fail("want ADDR CONNS MESSAGES RATE, got %q", arg)
	}
	conns, err1 := strconv.Atoi(f[1])
	messages, err2 := strconv.Atoi(f[2])
	rate, err3 := strconv.Atoi(f[3])
	if err := errors.Join(err1, err2, err3); err != nil || conns < 1 || messages < 1 || rate < 1 {
		return fail("bad arguments %q: %v", arg, err)
	}
	time.AfterFunc(time.Duration(messages/rate)*time.Second+30*time.Second, func() {
		fmt.Println("error timed out")
		os.Exit(2)
	})

	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := net.DialTimeout("tcp", f[0], 10*time.Second)
		if err != nil {
			return fail("dial %d of %d: %v", i+1, conns, err)
		}
		cs[i] = c
	}
	var ready [1]byte
	if _, err := io.ReadFull(cs[0], ready[:]); err != nil {
		return fail("wait for the relay: %v", err)
	}
	cpu0, sys0 := cpuTime()

	// arrived[c][m] is when record m reached connection c, less its stamp.
	arrived := make([][]int64, conns)
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for i, c := range cs {
		arrived[i] = make([]int64, messages)
		wg.Go(func() {
			var rec [recordSize]byte
			for m := range messages {
				if _, err := io.ReadFull(c, rec[:]); err != nil {
					errs <- fmt.Errorf("connection %d, record %d: %w", i, m, err)
					return
				}
				now := time.Now().UnixNano()
				if got := binary.LittleEndian.Uint64(rec[:8]); got != uint64(m) {
					errs <- fmt.Errorf("connection %d: record %d where %d was due", i, got, m)
					return
				}
				arrived[i][m] = now - int64(binary.LittleEndian.Uint64(rec[8:16]))
			}
		})
	}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	var rec [recordSize]byte
	for m := range messages {
		<-tick.C
		binary.LittleEndian.PutUint64(rec[:8], uint64(m))
		binary.LittleEndian.PutUint64(rec[8:16], uint64(time.Now().UnixNano()))
		if _, err := cs[0].Write(rec[:]); err != nil {
			return fail("send %d: %v", m, err)
		}
	}
	tick.Stop()
	wg.Wait()
	cpu1, sys1 := cpuTime()
	close(errs)
	if err := <-errs; err != nil {
		return fail("%v", err)
	}
	all := make([]int64, 0, conns*messages)
	first, last := make([]int64, messages), make([]int64, messages)
	for i, a := range arrived {
		all = append(all, a...)
		for m, d := range a {
			if i == 0 || d < first[m] {
				first[m] = d
			}
			last[m] = max(last[m], d)
		}
	}
	slices.Sort(all)
	slices.Sort(first)
	slices.Sort(last)
	fmt.Printf(resultFormat, len(all), quantile(all, 0.5), quantile(all, 0.99), all[len(all)-1],
		quantile(first, 0.5), quantile(first, 0.99), quantile(last, 0.5), quantile(last, 0.99), last[len(last)-1], cpu1-cpu0, sys1-sys0)
	return 0
}

// quantile returns the q quantile of sorted s (nearest rank).
func quantile(s []int64, q float64) int64 {
	i := int(float64(len(s))*q+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// BenchmarkRelay is the bare relay at the load of target 3 (100
// connections, 10 messages/s) and of target 4 (10,000 connections, 10
// messages/s), 100 messages each: the latencies over deliveries and to
// each message's last recipient, and the CPU each process spent per
// delivery, to set beside the load tool's figures for Parley.
func BenchmarkRelay(b *testing.B) { benchRelay(b, false) }

// BenchmarkRelayIOURing is BenchmarkRelay with the relay's writers
// sending through io_uring: all of a writer's sends of a record, up to
// 1,024, in one system call.
func BenchmarkRelayIOURing(b *testing.B) { benchRelay(b, true) }

func benchRelay(b *testing.B, uring bool) {
	for _, conns := range []int{100, 10000} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			var res relayResult
			for b.Loop() {
				res = runRelay(b, conns, 100, 10, uring)
			}
			ms := func(ns int64) float64 { return float64(ns) / 1e6 }
			b.ReportMetric(ms(res.p50), "ms-p50")
			b.ReportMetric(ms(res.p99), "ms-p99")
			b.ReportMetric(ms(res.firstP50), "ms-to-first-p50")
			b.ReportMetric(ms(res.lastP50), "ms-to-last-p50")
			b.ReportMetric(ms(res.lastP99), "ms-to-last-p99")
			b.ReportMetric(float64(res.serverCPU)/1e3/float64(res.deliveries), "µs-relay-cpu/delivery")
			b.ReportMetric(float64(res.peerCPU)/1e3/float64(res.deliveries), "µs-peer-cpu/delivery")
			// Of which the kernel's: system calls, and TCP's work in them.
			b.ReportMetric(float64(res.serverSys)/1e3/float64(res.deliveries), "µs-relay-sys/delivery")
			b.ReportMetric(float64(res.peerSys)/1e3/float64(res.deliveries), "µs-peer-sys/delivery")
		})
	}
}

// TestRelay runs the relay small and fast, with plain writes and through
// io_uring: every connection gets every record, in order, and the figures
// are consistent.
func TestRelay(t *testing.T) {
	for _, uring := range []bool{false, true} {
		t.Run(map[bool]string{false: "write", true: "io_uring"}[uring], func(t *testing.T) {
			if uring {
				r, err := newRing(8)
				if err != nil {
					t.Skipf("io_uring is not available here: %v", err)
				}
				r.close()
			}
			res := runRelay(t, 5, 20, 200, uring)
			if res.deliveries != 5*20 {
				t.Fatalf("deliveries = %d, want %d", res.deliveries, 5*20)
			}
			if !(0 < res.p50 && res.p50 <= res.p99 && res.p99 <= res.max && res.lastP50 <= res.lastP99 && res.lastP99 <= res.lastMax && res.lastMax == res.max &&
				0 < res.firstP50 && res.firstP50 <= res.firstP99 && res.firstP50 <= res.p50 && res.firstP99 <= res.lastP99) {
				t.Fatalf("inconsistent result %+v", res)
			}
			if !(0 <= res.serverSys && res.serverSys <= res.serverCPU && 0 <= res.peerSys && res.peerSys <= res.peerCPU) {
				t.Fatalf("system time beyond CPU time: %+v", res)
			}
		})
	}
}
