// Command perfsplit reads the samples of a system-wide perf recording
// ("perf record -g -a", then "perf script -F comm,pid,ip,sym") and says,
// for the server and for the load tool, what share of each process's
// samples has given functions on its stack, kernel ones included: where
// pprof sees only "a system call", this tells the kernel's TCP from the
// system call's own entry and exit, and a loopback write's sending side
// from the receiving side's work done under it. scripts/bench.sh runs it
// when PERF=1.
//
// Usage: perf script -F comm,pid,ip,sym -i perf.data | go run ./scripts/perfsplit -server PID
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// stages are the stack frames whose share perfsplit prints, in order,
// with what each stands for.
var stages = []struct{ frame, what string }{
	{"syscall.write", "write(2), from Go"},
	{"syscall.read", "read(2), from Go"},
	{"entry_SYSCALL_64", "any system call, entry to exit"},
	{"tcp_sendmsg", "TCP sending (the kernel's tcp_sendmsg)"},
	{"tcp_v4_rcv", "TCP receiving, in softirq (on loopback: the peer's side, under the sender's write)"},
	{"tcp_recvmsg", "TCP reading (tcp_recvmsg)"},
	{"try_to_wake_up", "waking a thread"},
	{"do_epoll_", "epoll_pwait(2), the runtime's netpoller waiting"},
	{"runtime.netpoll", "the runtime's netpoller, all of it"},
	{"runtime.findRunnable", "the Go scheduler looking for work"},
	{"runtime.exitsyscall", "the Go scheduler taking a thread back from a system call"},
	{"runtime.sysmon", "the runtime's monitor thread (it hands over a processor stuck in a system call)"},
	{"runtime.mallocgc", "allocation"},
	{"runtime.gcBgMarkWorker", "the collector's own goroutines"},
	{"sqlite.", "the SQLite store"},
}

type sample struct {
	comm   string
	pid    int
	frames []string
}

func main() {
	server := flag.Int("server", 0, "the server's process id (the load tool is the other process of the same command with the most samples)")
	flag.Parse()
	samples, err := read(os.Stdin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "perfsplit: %v\n", err)
		os.Exit(1)
	}
	if err := report(os.Stdout, samples, *server); err != nil {
		fmt.Fprintf(os.Stderr, "perfsplit: %v\n", err)
		os.Exit(1)
	}
}

// read parses perf script's output: a header line "comm pid" per sample,
// then one line "<tab>address symbol" per frame, leaf first.
func read(r io.Reader) ([]sample, error) {
	var out []sample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
		case line[0] == '\t':
			if len(out) == 0 {
				continue
			}
			f := strings.Fields(line)
			if len(f) >= 2 {
				s := &out[len(out)-1]
				s.frames = append(s.frames, f[1])
			}
		default:
			f := strings.Fields(line)
			if len(f) < 2 {
				return nil, fmt.Errorf("sample header %q: want comm and pid", line)
			}
			pid, err := strconv.Atoi(f[len(f)-1])
			if err != nil {
				return nil, fmt.Errorf("sample header %q: %v", line, err)
			}
			out = append(out, sample{comm: strings.Join(f[:len(f)-1], " "), pid: pid})
		}
	}
	return out, sc.Err()
}

func report(w io.Writer, samples []sample, server int) error {
	byPID := map[int][]sample{}
	for _, s := range samples {
		byPID[s.pid] = append(byPID[s.pid], s)
	}
	own := byPID[server]
	if len(own) == 0 {
		return fmt.Errorf("no sample of the server (pid %d) among %d", server, len(samples))
	}
	tool := 0
	for pid, ss := range byPID {
		if pid != server && ss[0].comm == own[0].comm && (tool == 0 || len(ss) > len(byPID[tool]) || len(ss) == len(byPID[tool]) && pid < tool) {
			tool = pid
		}
	}
	fmt.Fprintf(w, "%d samples over the whole machine: the server %d (%.1f %%), the load tool %d (%.1f %%), the rest %d\n",
		len(samples), len(own), pct(len(own), len(samples)), len(byPID[tool]), pct(len(byPID[tool]), len(samples)),
		len(samples)-len(own)-len(byPID[tool]))
	for _, p := range []struct {
		name string
		ss   []sample
	}{{"server", own}, {"load tool", byPID[tool]}} {
		if len(p.ss) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s: share of its samples with the frame on the stack\n", p.name)
		for _, st := range stages {
			n := 0
			for _, s := range p.ss {
				if has(s.frames, st.frame) {
					n++
				}
			}
			fmt.Fprintf(w, "  %5.1f %%  %-24s %s\n", pct(n, len(p.ss)), st.frame, st.what)
		}
		fmt.Fprintf(w, "%s: leaf functions, top 15\n", p.name)
		leaves := map[string]int{}
		for _, s := range p.ss {
			if len(s.frames) > 0 {
				leaves[s.frames[0]]++
			}
		}
		names := make([]string, 0, len(leaves))
		for f := range leaves {
			names = append(names, f)
		}
		sort.Slice(names, func(i, j int) bool {
			if leaves[names[i]] != leaves[names[j]] {
				return leaves[names[i]] > leaves[names[j]]
			}
			return names[i] < names[j]
		})
		for _, f := range names[:min(15, len(names))] {
			fmt.Fprintf(w, "  %5.1f %%  %s\n", pct(leaves[f], len(p.ss)), f)
		}
	}
	return nil
}

// has reports whether a frame's symbol contains name.
func has(frames []string, name string) bool {
	for _, f := range frames {
		if strings.Contains(f, name) {
			return true
		}
	}
	return false
}

func pct(n, of int) float64 { return 100 * float64(n) / float64(of) }
