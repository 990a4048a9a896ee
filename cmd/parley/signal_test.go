package main

import (
	"bufio"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSecondSignalStopsAtOnce: while a graceful shutdown waits for a
// request, a second SIGTERM ends the process at once, with a failure.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	e := &faultEnv{t: t}
	n := &node{id: "a", addr: "127.0.0.1:0", stderr: newSyncBuffer(),
		args: []string{"--db", filepath.Join(t.TempDir(), "parley.db"), "--shutdown-timeout", "2m"}}
	e.startNode(n)
	t.Cleanup(func() {
		n.cmd.Process.Kill()
		<-n.done
	})
	// A request whose body never comes: the graceful shutdown waits for
	// it until the server's read timeout. Its handler is reading the body
	// once the server asks for it (100 Continue): before that, the server
	// may not have accepted the connection, which a shutdown then never
	// waits for.
	c, err := net.Dial("tcp", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "POST /api/auth/code HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(line, "100 Continue") {
		t.Fatalf("answer to the request's headers = %q, %v; want 100 Continue", line, err)
	}
	fmt.Fprint(c, "{")

	n.cmd.Process.Signal(syscall.SIGTERM)
	if !pollUntil(10*time.Second, func() bool { return strings.Contains(n.stderr.String(), `"shutting down"`) }) {
		t.Fatalf("no shutdown begun within 10s of SIGTERM\n%s", n.stderr)
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10s after a second SIGTERM\n%s", n.stderr)
	}
	if n.err == nil {
		t.Errorf("exit after a second SIGTERM = success; want a failure")
	}
}
