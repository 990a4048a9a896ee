package main

import (
	"strings"
	"testing"
)

// A few samples as perf script -F comm,pid,ip,sym prints them: the server
// (pid 10), two other processes of the same command (the load tool is the
// one with more samples), and another command.
const script = `          parley    10 
	ffffffff81e7a14e tcp_v4_rcv
	ffffffff81e7a14e tcp_sendmsg
	ffffffff81000000 entry_SYSCALL_64_after_hwframe
	000000000047a1b2 syscall.write

          parley    10 
	000000000047a1b2 runtime.mallocgc

          parley    10 
	ffffffff81e7a14e tcp_sendmsg
	000000000047a1b2 syscall.write

          parley    10 
	000000000047a1b2 github.com/parley-chat/parley/internal/sqlite.(*DB).commitBatch

          parley    20 
	ffffffff81e7a14e tcp_recvmsg
	000000000047a1b2 syscall.read

          parley    20 
	ffffffff81e7a14e do_epoll_pwait
	000000000047a1b2 runtime.netpoll

       Web Content    30 
	000000000047a1b2 [unknown]

          parley    21 
	000000000047a1b2 runtime.findRunnable
`

func TestReport(t *testing.T) {
	samples, err := read(strings.NewReader(script))
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 8 || samples[6].comm != "Web Content" || samples[6].pid != 30 || len(samples[0].frames) != 4 {
		t.Fatalf("read %d samples, the seventh %+v, the first with %d frames; want 8, Web Content 30, 4", len(samples), samples[6], len(samples[0].frames))
	}
	var b strings.Builder
	if err := report(&b, samples, 10); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"8 samples over the whole machine: the server 4 (50.0 %), the load tool 2 (25.0 %), the rest 2",
		"   50.0 %  syscall.write ",   // the server
		"   25.0 %  tcp_v4_rcv ",      // the server
		"   25.0 %  sqlite. ",         // the server
		"   50.0 %  tcp_sendmsg ",     // the server
		"   50.0 %  do_epoll_ ",       // the tool
		"   50.0 %  runtime.netpoll ", // the tool
		"   50.0 %  tcp_recvmsg",      // the tool: the leaf
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report has no line with %q:\n%s", want, out)
		}
	}
	if err := report(&b, samples, 99); err == nil {
		t.Error("a server pid without samples: no error")
	}
}
