// Package floor measures what this machine costs a message before Parley
// does anything: the floor under docs/benchmarks.md's latency targets.
package floor

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// echoEnv makes the test binary the peer process of
// BenchmarkLoopbackAfterPause (TestMain); relayPeerEnv makes it the
// peer of the relay (relay_test.go).
const echoEnv = "PARLEY_BENCH_LOOPBACK_PEER"

func TestMain(m *testing.M) {
	if os.Getenv(echoEnv) != "" {
		os.Exit(loopbackPeer())
	}
	if arg := os.Getenv(relayPeerEnv); arg != "" {
		os.Exit(relayPeer(arg))
	}
	os.Exit(m.Run())
}

// loopbackPeer listens on a loopback port, prints its address, and answers
// each 8-byte time stamp (Unix ns) of its one client with how long ago it
// was, by its own clock: the one-way delay, since both processes read the
// same clock. It ends when the client goes, or after a minute.
func loopbackPeer() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(ln.Addr())
	time.AfterFunc(time.Minute, func() { os.Exit(2) })
	c, err := ln.Accept()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var b [8]byte
	for {
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return 0
		}
		d := time.Now().UnixNano() - int64(binary.LittleEndian.Uint64(b[:]))
		binary.LittleEndian.PutUint64(b[:], uint64(d))
		if _, err := c.Write(b[:]); err != nil {
			return 0
		}
	}
}

// BenchmarkLoopbackAfterPause is the floor under target 3's latency on
// this machine: the time one 8-byte write over loopback TCP takes to reach
// a read waiting in another process (Go's network poller on both sides, as
// in the server and the load tool) when both have been idle for 100 ms, as
// between two messages at 10 messages/s. A message's way from the load
// tool's sender through the server to a recipient crosses between the two
// processes twice.
func BenchmarkLoopbackAfterPause(b *testing.B) {
	benchLoopback(b, 100*time.Millisecond)
}

// BenchmarkLoopbackBackToBack is the same with no pause: both processes'
// threads and caches are warm.
func BenchmarkLoopbackBackToBack(b *testing.B) {
	benchLoopback(b, 0)
}

// startPeer starts this test binary as a peer process with env (TestMain
// tells which peer it is), and returns the peer's stdout. The peer is
// killed when tb ends.
func startPeer(tb testing.TB, env string) *bufio.Reader {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return bufio.NewReader(out)
}

func benchLoopback(b *testing.B, pause time.Duration) {
	addr, err := startPeer(b, echoEnv+"=1").ReadString('\n')
	if err != nil {
		b.Fatalf("peer's address: %v", err)
	}
	c, err := net.DialTimeout("tcp", strings.TrimSpace(addr), 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	const rounds = 20
	var oneWay, roundTrip []time.Duration
	var buf [8]byte
	for b.Loop() {
		for range rounds {
			if pause > 0 {
				time.Sleep(pause)
			}
			t0 := time.Now()
			binary.LittleEndian.PutUint64(buf[:], uint64(t0.UnixNano()))
			_ = c.SetDeadline(t0.Add(5 * time.Second))
			if _, err := c.Write(buf[:]); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf[:]); err != nil {
				b.Fatal(err)
			}
			roundTrip = append(roundTrip, time.Since(t0))
			oneWay = append(oneWay, time.Duration(binary.LittleEndian.Uint64(buf[:])))
		}
	}
	b.ReportMetric(median(oneWay), "µs-one-way")
	b.ReportMetric(median(roundTrip), "µs-round-trip")
}

// median returns the median of ds in microseconds.
func median(ds []time.Duration) float64 {
	slices.Sort(ds)
	return float64(ds[len(ds)/2].Nanoseconds()) / 1e3
}

// BenchmarkSyscall times the cheapest system call, getppid(2): what
// entering and leaving the kernel costs on this machine, under every
// read(2) and write(2) of the sockets. A kernel that keeps its page tables
// apart from the processes' (PTI, against Meltdown) pays for it here.
func BenchmarkSyscall(b *testing.B) {
	for b.Loop() {
		syscall.Getppid()
	}
}
