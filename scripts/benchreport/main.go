// Command benchreport prints the Markdown tables of docs/benchmarks.md from
// the results scripts/bench.sh wrote to docs/bench/*.json, so that every
// figure in the document comes from the load tool or go test, never from a
// hand. It judges each target against the goal of the performance issue.
//
// Usage: go run ./scripts/benchreport [-dir docs/bench]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

type latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func main() {
	dir := flag.String("dir", "docs/bench", "directory of the JSON files scripts/bench.sh wrote")
	flag.Parse()
	runs, err := load(*dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
		os.Exit(1)
	}
	if err := report(os.Stdout, runs); err != nil {
		fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
		os.Exit(1)
	}
}

// run is one file of docs/bench: a bench run, a go test run, the machine,
// or a target that could not run.
type run struct {
	Target        string    `json:"target"`
	Name          string    `json:"name"`
	Commit        string    `json:"commit"`
	Command       string    `json:"command"`
	ServerCommand string    `json:"server_command"`
	Tokens        int       `json:"tokens"`
	BoundSeconds  float64   `json:"bound_seconds"`
	ExitCode      int       `json:"exit_code"`
	LoadBefore    string    `json:"loadavg_before"`
	BenchWall     float64   `json:"bench_wall_seconds"`
	BenchCPU      float64   `json:"bench_cpu_seconds"`
	BusyBefore    *float64  `json:"machine_busy_percent_before"`
	ServerCPU     float64   `json:"server_cpu_seconds_total"`
	DBCPU         *float64  `json:"db_cpu_seconds"` // PostgreSQL's processes, for a server on it
	OtherCPU      *float64  `json:"other_cpu_seconds"`
	EarlierOther  []float64 `json:"earlier_attempts_other_cpu_seconds"`
	Result        *result   `json:"result"`
	Error         string    `json:"error"`
	Benchmarks    []gobench `json:"benchmarks"`

	// The machine.
	CPUModel     string `json:"cpu_model"`
	Cores        int    `json:"cores"`
	MemTotalKiB  int64  `json:"mem_total_kib"`
	GoVersion    string `json:"go_version"`
	Kernel       string `json:"kernel"`
	OpenFiles    string `json:"open_files_hard_limit"`
	TmpFS        string `json:"tmp_filesystem"`
	GitCommit    string `json:"git_commit"`
	Date         string `json:"date"`
	LoadAtStart  string `json:"loadavg_at_start"`
	TargetsAsked string `json:"targets"`
}

// result is the JSON line of "parley bench" (internal/bench.Result).
type result struct {
	Transport          string  `json:"transport"`
	Rooms              int     `json:"rooms"`
	Groups             bool    `json:"groups"`
	Senders            int     `json:"senders"`
	Rate               float64 `json:"rate"`
	Idle               bool    `json:"idle"`
	ConnsEstablished   int     `json:"conns_established"`
	ConnsFailed        int     `json:"conns_failed"`
	ConnsDropped       int     `json:"conns_dropped"`
	ConnectSeconds     float64 `json:"connect_seconds"`
	ConnectRate        float64 `json:"connect_rate"`
	MessagesSent       int64   `json:"messages_sent"`
	Unanswered         int64   `json:"unanswered"`
	ReadsSent          int64   `json:"reads_sent"`
	ReadErrors         int64   `json:"read_errors"`
	MessagesAcked      int64   `json:"messages_acked"`
	AckedInWindow      *int64  `json:"acked_in_window"` // nil in runs of a load tool that did not count them apart
	SendErrors         int64   `json:"send_errors"`
	DeliveriesExpected int64   `json:"deliveries_expected"`
	DeliveriesReceived int64   `json:"deliveries_received"`
	DeliveriesPerSec   float64 `json:"deliveries_per_sec"`
	Lost               int64   `json:"lost"`
	Duplicated         int64   `json:"duplicated"`
	OutOfOrder         int64   `json:"out_of_order"`
	Latency            latency `json:"latency_ms"`
	// LatencyFirst and LatencyLast are over messages, to each one's first
	// and last recipient; zero in results of load tools older than them.
	LatencyFirst    latency      `json:"latency_first_ms"`
	LatencyLast     latency      `json:"latency_last_ms"`
	DurationSeconds float64      `json:"duration_seconds"`
	Server          *serverStats `json:"server"`
	// The load tool's CPU while sending and draining; zero in results of
	// load tools older than it.
	ToolCPUPerDeliveryUS float64  `json:"tool_cpu_per_delivery_us"`
	OK                   bool     `json:"ok"`
	Interrupted          bool     `json:"interrupted"`
	InterruptReason      string   `json:"interrupt_reason"`
	Notes                []string `json:"notes"`
}

// serverStats is what the load tool read of the server's process.
type serverStats struct {
	RSSBefore        int64   `json:"rss_bytes_before"`
	RSSAfter         int64   `json:"rss_bytes_after"`
	RSSEnd           int64   `json:"rss_bytes_end"`
	RSSPerConn       int64   `json:"rss_per_conn_bytes"`
	CPUSeconds       float64 `json:"cpu_seconds"`
	CPUPerDeliveryUS float64 `json:"cpu_per_delivery_us"`
}

// gobench is one line of go test -bench output.
type gobench struct {
	Pkg     string             `json:"pkg"`
	Name    string             `json:"name"`
	N       int64              `json:"n"`
	Metrics map[string]float64 `json:"metrics"`
}

func load(dir string) (map[string]*run, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no results in %s: run scripts/bench.sh first", dir)
	}
	runs := make(map[string]*run)
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var r run
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if r.Name == "" {
			r.Name = strings.TrimSuffix(filepath.Base(p), ".json")
		}
		runs[r.Name] = &r
	}
	return runs, nil
}

// Verdicts.
const (
	met       = "**met**"
	notMet    = "**not met**"
	notRun    = "not run"
	undecided = "undecided"
	info      = "(context)"
)

// row is one line of the targets table.
type row struct{ target, run, measured, goal, verdict string }

func report(w io.Writer, runs map[string]*run) error {
	var b strings.Builder
	if m := runs["machine"]; m != nil {
		machine(&b, m, runs)
	}
	targets(&b, runs)
	growth(&b, runs)
	goBenchmarks(&b, runs)
	commands(&b, runs)
	_, err := io.WriteString(w, b.String())
	return err
}

func machine(b *strings.Builder, m *run, runs map[string]*run) {
	fmt.Fprintf(b, "### Machine\n\n| | |\n|---|---|\n")
	fmt.Fprintf(b, "| CPU | %d cores, %s |\n", m.Cores, m.CPUModel)
	fmt.Fprintf(b, "| memory | %.1f GiB |\n", float64(m.MemTotalKiB)/(1<<20))
	fmt.Fprintf(b, "| kernel | %s |\n", m.Kernel)
	fmt.Fprintf(b, "| Go | %s |\n", strings.TrimPrefix(m.GoVersion, "go version "))
	fmt.Fprintf(b, "| open files (hard limit) | %s |\n", m.OpenFiles)
	fmt.Fprintf(b, "| database directory | %s |\n", m.TmpFS)
	commits := map[string][]string{}
	for name, r := range runs {
		if r.Commit != "" {
			commits[r.Commit] = append(commits[r.Commit], name)
		}
	}
	switch len(commits) {
	case 0:
		fmt.Fprintf(b, "| parley commit | %s |\n", m.GitCommit)
	case 1:
		// The runs' own: machine.json is written when an invocation
		// starts, and one that ended no run names a commit none measured.
		for c := range commits {
			fmt.Fprintf(b, "| parley commit | %s |\n", c)
		}
	default:
		var parts []string
		for c, names := range commits {
			sort.Slice(names, func(i, j int) bool { return runKey(names[i]) < runKey(names[j]) })
			parts = append(parts, fmt.Sprintf("%s (%s)", c, strings.Join(names, ", ")))
		}
		sort.Strings(parts)
		fmt.Fprintf(b, "| parley commits | %s |\n", strings.Join(parts, "; "))
	}
	fmt.Fprintf(b, "| latest invocation | %s (load average at start %s; targets %s) |\n\n", m.Date, m.LoadAtStart, m.TargetsAsked)
}

func targets(b *strings.Builder, runs map[string]*run) {
	var rows []row
	add := func(r row) { rows = append(rows, r) }

	for _, name := range []string{"target1", "target1-inflight1"} {
		r := runs[name]
		if r == nil {
			continue
		}
		res, bad := resultOf(r)
		if bad != "" {
			add(row{"1", name, bad, "", notRun})
			continue
		}
		ok := res.DeliveriesPerSec >= 300_000 && res.Latency.P99 <= 50 && clean(res)
		add(row{"1", name,
			fmt.Sprintf("%s deliveries/s; p50 %s ms, p99 %s ms; %s", commas(res.DeliveriesPerSec), ms(res.Latency.P50), ms(res.Latency.P99), checks(res)),
			"≥ 300,000 deliveries/s, p99 ≤ 50 ms, nothing lost", verdict(ok)})
	}
	// Target 2 in rooms, and the same load in private groups.
	for _, name := range []string{"target2", "target2-groups"} {
		r := runs[name]
		if r == nil {
			continue
		}
		if res, bad := resultOf(r); bad != "" {
			add(row{"2", r.Name, bad, "", notRun})
		} else {
			ok := clean(res) && res.Latency.P99 <= 10
			if res.Groups && res.Rooms > 0 {
				name += fmt.Sprintf(" (%d private groups of %d)", res.Rooms, (res.ConnsEstablished+res.ConnsFailed)/res.Rooms)
			}
			add(row{"2", name,
				fmt.Sprintf("%s of %s delivered (%s); p50 %s ms, p99 %s ms; %s", commas(float64(res.DeliveriesReceived)), commas(float64(res.DeliveriesExpected)),
					pct(res.DeliveriesReceived, res.DeliveriesExpected), ms(res.Latency.P50), ms(res.Latency.P99), checks(res)),
				"100 % delivered, p99 ≤ 10 ms", verdict(ok)})
		}
	}
	readRow(add, runs["target2-groups-read"], "2", "the groups of target 2")
	if rs := repeated(runs, "target3"); len(rs) > 0 {
		if res, bad := combined(rs); bad != "" {
			add(row{"3", rs[0].Name, bad, "", notRun})
		} else {
			ok := clean(res) && res.Latency.P50 <= 1 && res.Latency.P99 <= 5
			first := ""
			if f := res.LatencyFirst; f.Max > 0 {
				// How much of the median is the way through the server, before
				// the fan-out.
				first = fmt.Sprintf("; each message to its first recipient p50 %s ms", ms(f.P50))
			}
			add(row{"3", repeatedName(rs),
				fmt.Sprintf("%sp50 %s ms%s, p99 %s ms%s (%s of %s delivered)%s; %s", ofRuns(rs), ms(res.Latency.P50), each(rs, func(r *result) float64 { return r.Latency.P50 }),
					ms(res.Latency.P99), each(rs, func(r *result) float64 { return r.Latency.P99 }),
					commas(float64(res.DeliveriesReceived)), commas(float64(res.DeliveriesExpected)), first, checks(res)),
				"p50 ≤ 1 ms, p99 ≤ 5 ms", verdict(ok)})
		}
	}
	if r := runs["target3-rooms10"]; r != nil {
		if res, bad := resultOf(r); bad != "" {
			add(row{"3", r.Name, bad, "", notRun})
		} else {
			add(row{"3", r.Name + " (10 rooms of 10)",
				fmt.Sprintf("p50 %s ms, p99 %s ms (%s of %s delivered); %s", ms(res.Latency.P50), ms(res.Latency.P99),
					commas(float64(res.DeliveriesReceived)), commas(float64(res.DeliveriesExpected)), checks(res)),
				"(the same load with a fan-out of 10)", info})
		}
	}
	if r := runs["target4"]; r != nil {
		if res, bad := resultOf(r); bad != "" {
			add(row{"4", r.Name, bad, "", notRun})
		} else if last := res.LatencyLast; last.Max > 0 {
			add(row{"4", r.Name,
				fmt.Sprintf("%s connections; **p99 to the last recipient %s ms** (over messages; p50 %s ms, slowest %s ms); p99 of deliveries %s ms; %s deliveries/s; %s",
					commas(float64(res.ConnsEstablished)), ms(last.P99), ms(last.P50), ms(last.Max), ms(res.Latency.P99), commas(res.DeliveriesPerSec), checks(res)),
				"p99 to the last recipient ≤ 100 ms", verdict(clean(res) && last.P99 <= 100)})
		} else {
			// An older load tool gave the p99 over all deliveries only; the p99
			// over messages of the latency to their last recipient lies between
			// it and the max.
			v := undecided
			switch {
			case !clean(res) || res.Latency.P99 > 100:
				v = notMet
			case res.Latency.Max <= 100:
				v = met
			}
			add(row{"4", r.Name,
				fmt.Sprintf("%s connections; p99 of deliveries %s ms, slowest delivery %s ms; %s deliveries/s; %s", commas(float64(res.ConnsEstablished)),
					ms(res.Latency.P99), ms(res.Latency.Max), commas(res.DeliveriesPerSec), checks(res)),
				"p99 to the last recipient ≤ 100 ms", v})
		}
	}
	if r := runs["target4-joining"]; r != nil {
		if res, bad := resultOf(r); bad != "" {
			add(row{"4", r.Name, bad, "", notRun})
		} else {
			got := fmt.Sprintf("set-up only: %s distinct users, none a member before, entered one room (a join message each, to everyone there) and connected in %.1f s (%.0f/s)",
				commas(float64(res.ConnsEstablished)), res.ConnectSeconds, res.ConnectRate)
			if res.ConnsEstablished < r.Tokens {
				got = fmt.Sprintf("set-up only: %s of %s distinct users, none a member before, entered one room (a join message each, to everyone there) and connected in %.1f s (%.0f/s), then the %g s bound stopped the run",
					commas(float64(res.ConnsEstablished)), commas(float64(r.Tokens)), res.ConnectSeconds, res.ConnectRate, r.BoundSeconds)
			}
			add(row{"4", r.Name, got, "(10,000 newcomers fill a room in bounded time)", info})
		}
	}
	readRow(add, runs["target4-read"], "4", "the room of target 4")
	if r := runs["target5"]; r != nil {
		if res, bad := serverResultOf(r); bad != "" {
			add(row{"5", r.Name, bad, "", notRun})
		} else {
			s := res.Server
			ok := clean(res) && res.ConnsEstablished >= 19_000 && s.RSSPerConn <= 12*1024
			add(row{"5", r.Name,
				fmt.Sprintf("%s idle connections; RSS %s → %s MiB: **%.1f KiB** (%s B) per connection; connected in %.1f s (%.0f/s), server CPU %.1f s%s",
					commas(float64(res.ConnsEstablished)), mib(s.RSSBefore), mib(s.RSSAfter), float64(s.RSSPerConn)/1024, commas(float64(s.RSSPerConn)),
					res.ConnectSeconds, res.ConnectRate, s.CPUSeconds, unclean(res)),
				"19,000 connections, ≤ 12 KB (12,288 B) RSS each", verdict(ok)})
		}
	}
	if r := runs["target5-gogc25"]; r != nil {
		if res, bad := serverResultOf(r); bad != "" {
			add(row{"5", r.Name, bad, "", notRun})
		} else {
			s := res.Server
			add(row{"5", r.Name + " (server under GOGC=25)",
				fmt.Sprintf("%s idle connections; RSS %s → %s MiB: %.1f KiB (%s B) per connection; connected in %.1f s (%.0f/s), server CPU %.1f s%s",
					commas(float64(res.ConnsEstablished)), mib(s.RSSBefore), mib(s.RSSAfter), float64(s.RSSPerConn)/1024, commas(float64(s.RSSPerConn)),
					res.ConnectSeconds, res.ConnectRate, s.CPUSeconds, unclean(res)),
				"(how much is collectable garbage)", info})
		}
	}
	storeRow := func(name, label, goal string, min float64) {
		r := runs[name]
		if r == nil {
			return
		}
		var rates []float64
		for _, g := range r.Benchmarks {
			if ns := g.Metrics["ns/op"]; ns > 0 {
				rates = append(rates, 1e9/ns)
			}
		}
		if len(rates) == 0 {
			msg := "no benchmark output"
			if r.Error != "" {
				msg = "not measured: `" + strings.ReplaceAll(r.Error, "\n", " ") + "`"
			}
			add(row{"6", label, msg, goal, notRun})
			return
		}
		m := median(rates)
		var all []string
		for _, x := range rates {
			all = append(all, commas(x))
		}
		add(row{"6", label,
			fmt.Sprintf("**%s messages/s** stored and acknowledged (median of %d runs: %s)", commas(m), len(rates), strings.Join(all, ", ")),
			goal, verdict(m >= min)})
	}
	e2eRow := func(name, label, goal string, min float64) {
		r := runs[name]
		if r == nil {
			return
		}
		res, bad := resultOf(r)
		if bad != "" {
			add(row{"6", name, bad, goal, notRun})
			return
		}
		// The sends acknowledged in the sending window: those answered in
		// the drain after it were sent in the window but stored after.
		acked := res.MessagesAcked
		if res.AckedInWindow != nil {
			acked = *res.AckedInWindow
		}
		rate := 0.0
		if res.DurationSeconds > 0 {
			rate = float64(acked) / res.DurationSeconds
		}
		perMsg := ""
		if res.Server != nil && res.MessagesAcked > 0 {
			perMsg = fmt.Sprintf(", server CPU %s µs per message", commas(res.Server.CPUSeconds*1e6/float64(res.MessagesAcked)))
			if r.DBCPU != nil {
				perMsg += fmt.Sprintf(" (+ %s µs of PostgreSQL's over the whole run)", commas(*r.DBCPU*1e6/float64(res.MessagesAcked)))
			}
		}
		add(row{"6", label,
			fmt.Sprintf("%s messages/s acknowledged (%s in %.1f s)%s, p99 %s ms; %s", commas(rate), commas(float64(acked)), res.DurationSeconds, perMsg, ms(res.Latency.P99), checks(res)),
			goal, verdict(rate >= min && clean(res))})
	}
	const sqliteGoal, pgGoal = "≥ 50,000 messages/s (SQLite)", "≥ 40,000 messages/s (PostgreSQL)"
	storeRow("target6", "target6 (SQLite store, go test)", sqliteGoal, 50_000)
	e2eRow("target6-e2e", "target6-e2e (end to end, WebSocket)", sqliteGoal, 50_000)
	storeRow("target6-syncfull", "target6-syncfull (SQLite store, synchronous=FULL, go test)", sqliteGoal, 50_000)
	e2eRow("target6-e2e-syncfull", "target6-e2e-syncfull (end to end, WebSocket, --sqlite-synchronous full)", sqliteGoal, 50_000)
	storeRow("target6-cgo", "target6-cgo (SQLite store, cgo driver: go test -tags sqlite_cgo)", sqliteGoal, 50_000)
	e2eRow("target6-e2e-cgo", "target6-e2e-cgo (end to end, WebSocket, parley built with -tags sqlite_cgo)", sqliteGoal, 50_000)
	storeRow("target6-postgres", "target6-postgres (PostgreSQL store, go test)", pgGoal, 40_000)
	e2eRow("target6-e2e-postgres", "target6-e2e-postgres (end to end, WebSocket, server on PostgreSQL)", pgGoal, 40_000)

	if rs := repeated(runs, "target7"); len(rs) > 0 {
		const goal = "5,000 long-polling clients, 100 % delivered, p99 ≤ 50 ms"
		if res, bad := combined(rs); bad != "" {
			add(row{"7", rs[0].Name, bad, goal, notRun})
		} else {
			ok := clean(res) && res.ConnsEstablished >= 5000 && res.Latency.P99 <= 50
			cpu := ""
			if res.Server != nil && res.ToolCPUPerDeliveryUS > 0 {
				cpu = fmt.Sprintf("; CPU per delivery: server %.0f µs, load tool %.0f µs", res.Server.CPUPerDeliveryUS, res.ToolCPUPerDeliveryUS)
			}
			add(row{"7", repeatedName(rs),
				fmt.Sprintf("%s%s long-polling clients in %d rooms; %s of %s delivered (%s); p50 %s ms%s, p99 %s ms%s; %s%s", ofRuns(rs),
					commas(float64(res.ConnsEstablished)), res.Rooms, commas(float64(res.DeliveriesReceived)), commas(float64(res.DeliveriesExpected)),
					pct(res.DeliveriesReceived, res.DeliveriesExpected), ms(res.Latency.P50), each(rs, func(r *result) float64 { return r.Latency.P50 }),
					ms(res.Latency.P99), each(rs, func(r *result) float64 { return r.Latency.P99 }), checks(res), cpu),
				goal, verdict(ok)})
		}
	}

	// A target without any run in the directory is not run: a table
	// without its row would read as complete.
	for _, t := range []string{"1", "2", "3", "4", "5", "6", "7"} {
		if !slices.ContainsFunc(rows, func(r row) bool { return r.target == t }) {
			add(row{t, "—", "no result in the directory", "", notRun})
		}
	}
	slices.SortStableFunc(rows, func(a, b row) int { return strings.Compare(a.target, b.target) })

	fmt.Fprintf(b, "### Targets\n\n| target | run | measured | goal | verdict |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", r.target, r.run, r.measured, r.goal, r.verdict)
	}
	b.WriteString("\n")
}

// growth prints target 8's tables.
func growth(b *strings.Builder, runs map[string]*run) {
	type point struct {
		x   int
		r   *run
		res *result
	}
	// collect returns the points of the runs names, and says of each run
	// it could not use why: a table must not leave a run out silently, nor
	// judge over the runs left. It names too the runs it uses that are not
	// clean (connections that failed or dropped, deliveries lost): they did
	// not measure the load asked for, and a table with one is not met.
	collect := func(names map[int]string) (ps []point, holes, unclean []string) {
		xs := slices.Sorted(maps.Keys(names))
		for _, x := range xs {
			name := names[x]
			r := runs[name]
			if r == nil {
				holes = append(holes, name+" (not run)")
				continue
			}
			res, bad := serverResultOf(r)
			if bad != "" {
				holes = append(holes, name+" ("+bad+")")
				continue
			}
			ps = append(ps, point{x, r, res})
			if !clean(res) {
				unclean = append(unclean, name+" ("+checks(res)+")")
			}
		}
		if len(ps) == 0 {
			return nil, nil, nil // none of the table's runs: no table
		}
		return ps, holes, unclean
	}
	// judge is the verdict of a table: undecided if a run is missing, not
	// met if a run is not clean.
	judge := func(ok bool, holes, unclean []string) string {
		if len(holes) > 0 {
			return undecided
		}
		return verdict(ok && len(unclean) == 0)
	}
	writeHoles := func(holes, unclean []string) {
		if len(holes) > 0 {
			fmt.Fprintf(b, "\n**Missing from the table:** %s. The figures below are over the runs left, and give no verdict.\n", strings.Join(holes, "; "))
		}
		if len(unclean) > 0 {
			fmt.Fprintf(b, "\n**Not clean:** %s. Such a run did not measure the load asked for: the table is not met.\n", strings.Join(unclean, "; "))
		}
	}

	conns, connHoles, connUnclean := collect(map[int]string{1000: "target8-conns1k", 5000: "target8-conns5k", 19000: "target8-conns19k"})
	if len(conns) > 0 {
		fmt.Fprintf(b, "### Cost growth with connections (target 8)\n\nRooms of 100, one sender each, %g messages/s in all (%s deliveries/s offered), 10 s.\n\n",
			conns[0].res.Rate, commas(conns[0].res.Rate*100))
		fmt.Fprintf(b, "| connections | rooms | deliveries/s | server CPU per delivery | RSS per connection | marginal RSS per added connection | connect time | p50 / p99 | checked |\n|---|---|---|---|---|---|---|---|---|\n")
		var marg []float64
		for i, p := range conns {
			s := p.res.Server
			m := "—"
			if i > 0 {
				prev := conns[i-1].res
				d := float64(s.RSSAfter-prev.Server.RSSAfter) / float64(p.res.ConnsEstablished-prev.ConnsEstablished)
				marg = append(marg, d)
				m = fmt.Sprintf("%.1f KiB", d/1024)
			}
			fmt.Fprintf(b, "| %s | %d | %s | %.1f µs | %.1f KiB | %s | %.1f s (%.0f/s) | %s / %s ms | %s |\n",
				commas(float64(p.res.ConnsEstablished)), p.res.Rooms, commas(p.res.DeliveriesPerSec), s.CPUPerDeliveryUS,
				float64(s.RSSPerConn)/1024, m, p.res.ConnectSeconds, p.res.ConnectRate, ms(p.res.Latency.P50), ms(p.res.Latency.P99), checks(p.res))
		}
		writeHoles(connHoles, connUnclean)
		if len(marg) == 2 {
			ratio := math.Max(marg[0], marg[1]) / math.Min(marg[0], marg[1])
			fmt.Fprintf(b, "\nMemory grows linearly if each added connection costs about the same: the two marginal costs differ by a factor of %.2f (linear: ≤ 1.5): %s.\n",
				ratio, judge(ratio <= 1.5, connHoles, connUnclean))
		} else {
			fmt.Fprintf(b, "\nMemory grows linearly if each added connection costs about the same: %s (the three runs are needed).\n", judge(false, connHoles, connUnclean))
		}
		var cpus []float64
		for _, p := range conns {
			cpus = append(cpus, p.res.Server.CPUPerDeliveryUS)
		}
		fmt.Fprintf(b, "CPU per delivery from %s to %s connections changes by a factor of %.2f.\n\n",
			commas(float64(conns[0].x)), commas(float64(conns[len(conns)-1].x)), cpus[len(cpus)-1]/cpus[0])
	}

	rooms, roomHoles, roomUnclean := collect(map[int]string{10: "target8-room10", 100: "target8-conns1k", 1000: "target8-room1000", 10000: "target8-room10000"})
	if len(rooms) > 0 {
		fmt.Fprintf(b, "### Cost growth with room size (target 8)\n\nOne sender per room, %s deliveries/s offered in all, 10 s; 10,000 members are 10,000 connections of 1,000 users.\n\n",
			commas(rooms[0].res.Rate*float64(rooms[0].x)))
		fmt.Fprintf(b, "| members per room | rooms | connections | messages/s | deliveries/s | server CPU per delivery | server CPU per message | p50 / p99 | checked |\n|---|---|---|---|---|---|---|---|---|\n")
		var cpus []float64
		for _, p := range rooms {
			s := p.res.Server
			cpus = append(cpus, s.CPUPerDeliveryUS)
			perMsg := 0.0
			if p.res.MessagesAcked > 0 {
				perMsg = s.CPUSeconds * 1e6 / float64(p.res.MessagesAcked)
			}
			fmt.Fprintf(b, "| %s | %d | %s | %g | %s | %.1f µs | %s µs | %s / %s ms | %s |\n",
				commas(float64(p.x)), p.res.Rooms, commas(float64(p.res.ConnsEstablished)), p.res.Rate, commas(p.res.DeliveriesPerSec),
				s.CPUPerDeliveryUS, commas(perMsg), ms(p.res.Latency.P50), ms(p.res.Latency.P99), checks(p.res))
		}
		// Growth: how far CPU per delivery rises above its lowest value at a
		// smaller or equal room size.
		growth, low := 0.0, math.Inf(1)
		for _, c := range cpus {
			low = math.Min(low, c)
			growth = math.Max(growth, c/low)
		}
		writeHoles(roomHoles, roomUnclean)
		fmt.Fprintf(b, "\nFrom the smallest to the largest room, CPU per delivery varies by a factor of %.2f (max / min); it rises with room size by at most a factor of %.2f over its lowest value at a smaller room (stays flat: ≤ 1.5): %s.\n\n",
			slices.Max(cpus)/slices.Min(cpus), growth, judge(growth <= 1.5, roomHoles, roomUnclean))
	}
}

func goBenchmarks(b *strings.Builder, runs map[string]*run) {
	var lines []gobench
	for _, name := range []string{"gobench", "target6", "target6-syncfull", "target6-cgo", "target6-postgres"} {
		if r := runs[name]; r != nil {
			for _, g := range r.Benchmarks {
				if name == "target6-cgo" {
					g.Pkg += " (-tags sqlite_cgo)"
				}
				lines = append(lines, g)
			}
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(b, "### Go benchmarks\n\n| package | benchmark | iterations | ns/op | derived | B/op | allocs/op |\n|---|---|---|---|---|---|---|\n")
	for _, g := range lines {
		derived := ""
		if v, ok := g.Metrics["deliveries/s"]; ok {
			derived = commas(v) + " deliveries/s"
		} else if v, ok := g.Metrics["µs/append"]; ok {
			derived = fmt.Sprintf("%.0f µs per append after a pause", v)
		} else if v, ok := g.Metrics["µs/decode"]; ok {
			derived = fmt.Sprintf("%.1f µs per decode after a pause", v)
		} else if v, ok := g.Metrics["ms-to-last-p99"]; ok {
			derived = fmt.Sprintf("p50 %.2f ms, p99 %.2f ms; ", g.Metrics["ms-p50"], g.Metrics["ms-p99"])
			// The way to the first recipient, in the output of benchmarks that report it.
			if f, ok := g.Metrics["ms-to-first-p50"]; ok {
				derived += fmt.Sprintf("to the first recipient p50 %.2f ms; ", f)
			}
			derived += fmt.Sprintf("to the last recipient p99 %.1f ms; CPU per delivery %.1f µs relaying, %.1f µs reading",
				v, g.Metrics["µs-relay-cpu/delivery"], g.Metrics["µs-peer-cpu/delivery"])
			// The kernel's share, in the output of benchmarks that report it.
			if rs, ok := g.Metrics["µs-relay-sys/delivery"]; ok {
				derived += fmt.Sprintf(" (in the kernel %.1f and %.1f µs)", rs, g.Metrics["µs-peer-sys/delivery"])
			}
		} else if v, ok := g.Metrics["ns/delivery"]; ok {
			derived = fmt.Sprintf("%.1f µs per delivery, %.1f µs of CPU and %.1f allocations of both sides", v/1000, g.Metrics["cpu-ns/delivery"]/1000, g.Metrics["allocs/delivery"])
		} else if v, ok := g.Metrics["µs-one-way"]; ok {
			derived = fmt.Sprintf("%.1f µs one way, %.1f µs round trip", v, g.Metrics["µs-round-trip"])
		} else if ns := g.Metrics["ns/op"]; ns > 0 {
			derived = commas(1e9/ns) + " ops/s"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s |\n", strings.TrimPrefix(g.Pkg, "github.com/parley-chat/parley/"), g.Name,
			commas(float64(g.N)), commas(g.Metrics["ns/op"]), derived, opt(g.Metrics, "B/op"), opt(g.Metrics, "allocs/op"))
	}
	b.WriteString("\n")
}

// commands lists every run with its exact command and conditions.
func commands(b *strings.Builder, runs map[string]*run) {
	names := make([]string, 0, len(runs))
	for name := range runs {
		if name != "machine" {
			names = append(names, name)
		}
	}
	sort.Slice(names, func(i, j int) bool { return runKey(names[i]) < runKey(names[j]) })
	fmt.Fprintf(b, "### Runs\n\n| run | command | exit | machine busy before | server CPU | load tool CPU / wall | other CPU during the run | notes |\n|---|---|---|---|---|---|---|---|\n")
	for _, name := range names {
		r := runs[name]
		tool := "—"
		if r.BenchWall > 0 {
			tool = fmt.Sprintf("%.1f s / %.1f s", r.BenchCPU, r.BenchWall)
		}
		var notes []string
		if r.Result != nil {
			if r.Result.Interrupted {
				notes = append(notes, "**"+r.Result.InterruptReason+"**")
			}
			notes = append(notes, r.Result.Notes...)
		}
		busy, other, server := "—", "—", "—"
		if r.BusyBefore != nil {
			busy = fmt.Sprintf("%.0f %%", *r.BusyBefore)
		}
		if r.OtherCPU != nil {
			other = fmt.Sprintf("%.1f s", *r.OtherCPU)
		}
		for _, o := range r.EarlierOther {
			notes = append(notes, fmt.Sprintf("repeated: other processes used %.1f s of CPU during an earlier attempt", o))
		}
		if r.ServerCPU > 0 {
			server = fmt.Sprintf("%.1f s", r.ServerCPU)
			if r.DBCPU != nil {
				server += fmt.Sprintf(" + %.1f s PostgreSQL", *r.DBCPU)
			}
		}
		fmt.Fprintf(b, "| %s | `%s` | %d | %s | %s | %s | %s | %s |\n", name, r.Command, r.ExitCode, busy, server, tool, other, orDash(strings.Join(notes, "; ")))
	}
	if r := firstWith(runs, func(r *run) bool { return r.ServerCommand != "" && !strings.HasPrefix(r.ServerCommand, "GO") }); r != nil {
		fmt.Fprintf(b, "\nEvery server: `%s` (a copy of a database made by `parley admin sessions --count N`; TOKENS(n) is a file of its first n session tokens; PORT and PID are the server's)", r.ServerCommand)
		for _, name := range names {
			if sc := runs[name].ServerCommand; sc != "" && sc != r.ServerCommand {
				fmt.Fprintf(b, "; %s: `%s`", name, sc)
			}
		}
		b.WriteString(".\n")
	}
}

func firstWith(runs map[string]*run, f func(*run) bool) *run {
	names := make([]string, 0, len(runs))
	for n := range runs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if f(runs[n]) {
			return runs[n]
		}
	}
	return nil
}

// runKey orders runs by target number, then name, numbers in names by
// value.
func runKey(name string) string {
	digits := strings.TrimLeftFunc(strings.TrimPrefix(name, "target"), func(r rune) bool { return r < '0' || r > '9' })
	n, _ := strconv.Atoi(strings.SplitN(digits+"-", "-", 2)[0])
	if !strings.HasPrefix(name, "target") {
		n = 99
	}
	return fmt.Sprintf("%02d %s", n, padDigits(name))
}

// padDigits pads every run of digits in s to six, so that names sort in
// numeric order ("conns5k" before "conns19k").
func padDigits(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j > i {
			fmt.Fprintf(&b, "%06s", s[i:j])
			i = j
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// repeated returns the runs of a load that scripts/bench.sh repeats
// (REPEAT): name, then name-run2, name-run3 and on while they exist; none
// if name is missing.
func repeated(runs map[string]*run, name string) []*run {
	var rs []*run
	for i := 1; ; i++ {
		n := name
		if i > 1 {
			n = fmt.Sprintf("%s-run%d", name, i)
		}
		r := runs[n]
		if r == nil {
			return rs
		}
		rs = append(rs, r)
	}
}

// combined is the result of one load run once or more: for several runs,
// each latency and CPU figure is the median of the runs' (a run's figure
// follows the machine's hour, and one run can land on a slow one), the
// connections established are the fewest of any run, the other counts
// (send errors too) are summed, and it is clean only if every run is. bad describes the
// first run without a result, or of another commit or command than the
// first.
func combined(rs []*run) (*result, string) {
	var all []*result
	for _, r := range rs {
		// A run left by an earlier invocation (with a larger REPEAT) may
		// have measured another commit or load.
		if r.Commit != rs[0].Commit || r.Command != rs[0].Command {
			return nil, fmt.Sprintf("%s is of another commit or command than %s: not a run of the same load", r.Name, rs[0].Name)
		}
		res, bad := resultOf(r)
		if bad != "" {
			if len(rs) > 1 {
				bad = r.Name + " " + bad
			}
			return nil, bad
		}
		all = append(all, res)
	}
	if len(all) == 1 {
		return all[0], ""
	}
	c := *all[0]
	c.Notes = nil
	// A figure of 0 was not measured (a CPU time without --pid, or by an
	// older tool): the median is of the runs that have it.
	med := func(f func(*result) float64) float64 {
		var xs []float64
		for _, r := range all {
			if x := f(r); x != 0 {
				xs = append(xs, x)
			}
		}
		if len(xs) == 0 {
			return 0
		}
		return median(xs)
	}
	medLat := func(f func(*result) latency) latency {
		return latency{
			P50: med(func(r *result) float64 { return f(r).P50 }),
			P90: med(func(r *result) float64 { return f(r).P90 }),
			P99: med(func(r *result) float64 { return f(r).P99 }),
			Max: med(func(r *result) float64 { return f(r).Max }),
		}
	}
	c.Latency = medLat(func(r *result) latency { return r.Latency })
	c.LatencyFirst = medLat(func(r *result) latency { return r.LatencyFirst })
	c.LatencyLast = medLat(func(r *result) latency { return r.LatencyLast })
	c.DeliveriesPerSec = med(func(r *result) float64 { return r.DeliveriesPerSec })
	c.ToolCPUPerDeliveryUS = med(func(r *result) float64 { return r.ToolCPUPerDeliveryUS })
	// The fewest any run connected, not the median: a target of so many
	// clients is met only if every run had them all.
	for _, r := range all {
		c.ConnsEstablished = min(c.ConnsEstablished, r.ConnsEstablished)
	}
	c.OK = true
	c.ConnsFailed, c.ConnsDropped, c.MessagesSent, c.MessagesAcked, c.SendErrors, c.Unanswered, c.DeliveriesExpected, c.DeliveriesReceived = 0, 0, 0, 0, 0, 0, 0, 0
	c.ReadsSent, c.ReadErrors, c.Lost, c.Duplicated, c.OutOfOrder = 0, 0, 0, 0, 0
	for _, r := range all {
		c.OK = c.OK && r.OK
		c.Interrupted = c.Interrupted || r.Interrupted
		c.ConnsFailed += r.ConnsFailed
		c.ConnsDropped += r.ConnsDropped
		c.MessagesSent += r.MessagesSent
		c.MessagesAcked += r.MessagesAcked
		// A send refused or failed leaves a run OK for the load tool;
		// clean counts it, so every run's must be here.
		c.SendErrors += r.SendErrors
		c.ReadsSent += r.ReadsSent
		c.ReadErrors += r.ReadErrors
		c.Unanswered += r.Unanswered
		c.DeliveriesExpected += r.DeliveriesExpected
		c.DeliveriesReceived += r.DeliveriesReceived
		c.Lost += r.Lost
		c.Duplicated += r.Duplicated
		c.OutOfOrder += r.OutOfOrder
	}
	if c.Server != nil {
		s := *c.Server
		s.CPUPerDeliveryUS = med(func(r *result) float64 {
			if r.Server == nil {
				return 0
			}
			return r.Server.CPUPerDeliveryUS
		})
		c.Server = &s
	}
	return &c, ""
}

// repeatedName is the run column of a load run once or more.
func repeatedName(rs []*run) string {
	if len(rs) == 1 {
		return rs[0].Name
	}
	var names []string
	for _, r := range rs {
		names = append(names, r.Name)
	}
	return fmt.Sprintf("%s (median of %d runs)", strings.Join(names, ", "), len(rs))
}

// ofRuns opens the measured column of a load run more than once.
func ofRuns(rs []*run) string {
	if len(rs) == 1 {
		return ""
	}
	return fmt.Sprintf("median of %d runs: ", len(rs))
}

// each lists, after a median of several runs, each run's own figure, in
// the runs' order; nothing for one run.
func each(rs []*run, f func(*result) float64) string {
	if len(rs) == 1 {
		return ""
	}
	var xs []string
	for _, r := range rs {
		xs = append(xs, ms(f(r.Result)))
	}
	return " (" + strings.Join(xs, ", ") + ")"
}

// resultOf returns r's bench result, or a description of why there is none.
func resultOf(r *run) (*result, string) {
	if r.Result == nil {
		msg := r.Error
		if msg == "" {
			msg = "no result"
		}
		return nil, "failed: `" + strings.ReplaceAll(msg, "\n", " ") + "`"
	}
	return r.Result, ""
}

// serverResultOf is resultOf for a target that measures the server's
// memory: a result without the server's figures (the load tool had no
// --pid) measured nothing of it.
func serverResultOf(r *run) (*result, string) {
	res, bad := resultOf(r)
	if bad == "" && res.Server == nil {
		return nil, "no server figures: the load tool ran without --pid"
	}
	return res, bad
}

// clean reports whether every expected delivery arrived once and in order.
// clean reports whether every message of r was sent, acknowledged and
// delivered to every recipient once and in order. A send the server
// refused, or whose answer never came (a long-poll POST that failed), is
// not clean either: its deliveries are not expected, so a loss among them
// would not show.
func clean(r *result) bool {
	return r.OK && r.Lost == 0 && r.Duplicated == 0 && r.OutOfOrder == 0 && r.DeliveriesReceived == r.DeliveriesExpected && r.ConnsDropped == 0 && r.SendErrors == 0
}

func checks(r *result) string {
	if clean(r) {
		return "none lost, duplicated or out of order"
	}
	c := fmt.Sprintf("**%s lost, %s duplicated, %s out of order, %d connections dropped**",
		commas(float64(r.Lost)), commas(float64(r.Duplicated)), commas(float64(r.OutOfOrder)), r.ConnsDropped)
	if r.ConnsFailed > 0 {
		c += fmt.Sprintf("; **%s connections failed**", commas(float64(r.ConnsFailed)))
	}
	if r.Unanswered > 0 {
		c += fmt.Sprintf("; **%s sends unanswered**", commas(float64(r.Unanswered)))
	}
	if r.SendErrors > 0 {
		c += fmt.Sprintf("; **%s sends refused or failed**", commas(float64(r.SendErrors)))
	}
	if r.Interrupted {
		return "**interrupted** before its end; " + c
	}
	return c
}

// unclean is "; " and what went wrong in r, or nothing if r is clean: for
// rows that otherwise tell nothing of it.
func unclean(r *result) string {
	if clean(r) {
		return ""
	}
	return "; " + checks(r)
}

func verdict(ok bool) string {
	if ok {
		return met
	}
	return notMet
}

func ms(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func mib(n int64) string { return fmt.Sprintf("%.1f", float64(n)/(1<<20)) }

func pct(a, b int64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f %%", 100*float64(a)/float64(b))
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func opt(m map[string]float64, k string) string {
	if v, ok := m[k]; ok {
		return commas(v)
	}
	return ""
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// commas formats v rounded to an integer with thousands separators; values
// below 10 keep one decimal.
func commas(v float64) string {
	if math.Abs(v) < 10 && v != math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// readRow adds the row of run r, a target's run where every client also
// moves its read position as the web app does (parley bench --read), for
// context: of what, in the target's column.
func readRow(add func(row), r *run, target, of string) {
	if r == nil {
		return
	}
	res, bad := resultOf(r)
	if bad != "" {
		add(row{target, r.Name, bad, "", notRun})
		return
	}
	add(row{target, r.Name,
		fmt.Sprintf("context: every client also moves its read position as the web app does (%s moves, %s refused); p99 %s ms, p99 to the last recipient %s ms (p50 %s ms); %s deliveries/s; %s",
			commas(float64(res.ReadsSent)), commas(float64(res.ReadErrors)), ms(res.Latency.P99), ms(res.LatencyLast.P99), ms(res.LatencyLast.P50), commas(res.DeliveriesPerSec), checks(res)),
		"(" + of + " with its members' read positions)", info})
}
