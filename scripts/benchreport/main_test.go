package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMachineCommitOfRuns: the machine table names the commit the runs
// measured. machine.json is written when an invocation starts, so after one
// that stopped before any run ended (or measured another REF and failed),
// it names a commit no run in the directory comes from.
func TestMachineCommitOfRuns(t *testing.T) {
	runs := map[string]*run{
		"machine": {Name: "machine", Cores: 2, GitCommit: "bbbbbbb"},
		"target3": {Name: "target3", Commit: "aaaaaaa", Error: "interrupted"},
		"target5": {Name: "target5", Commit: "aaaaaaa", Error: "interrupted"},
	}
	var b strings.Builder
	if err := report(&b, runs); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), "| parley commit | aaaaaaa |\n"; !strings.Contains(got, want) {
		t.Errorf("report has no line %q:\n%s", want, got)
	}
}

// TestTarget5WithoutServer: a target 5 run whose result has no server
// figures (a load tool run without --pid) says so in the row, rather than
// leaving the measured cell empty.
func TestTarget5WithoutServer(t *testing.T) {
	runs := map[string]*run{
		"target5":        {Name: "target5", Result: &result{OK: true, ConnsEstablished: 19000}},
		"target5-gogc25": {Name: "target5-gogc25", Result: &result{OK: true, ConnsEstablished: 19000}},
	}
	var b strings.Builder
	if err := report(&b, runs); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"target5", "target5-gogc25"} {
		if row := "| 5 | " + name + " |  |"; strings.Contains(b.String(), row) {
			t.Errorf("row of %s has an empty measured cell:\n%s", name, b.String())
		}
	}
}

// TestGrowthHoles: a target 8 run that failed or did not run is not left
// out of its table silently, and no verdict is given over the rest.
func TestGrowthHoles(t *testing.T) {
	ok := growthResult
	runs := map[string]*run{
		"target8-conns1k":  {Name: "target8-conns1k", Result: ok(1000, 10, 20<<20)},
		"target8-conns5k":  {Name: "target8-conns5k", Error: "server did not start"},
		"target8-conns19k": {Name: "target8-conns19k", Result: ok(19000, 12, 220<<20)},
		// target8-room10 did not run at all.
		"target8-room1000":  {Name: "target8-room1000", Result: ok(1000, 8, 20<<20)},
		"target8-room10000": {Name: "target8-room10000", Result: ok(10000, 9, 100<<20)},
	}
	var b strings.Builder
	if err := report(&b, runs); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	conns, _, _ := strings.Cut(out[strings.Index(out, "### Cost growth with connections"):], "### Cost growth with room size")
	rooms, _, _ := strings.Cut(out[strings.Index(out, "### Cost growth with room size"):], "### Runs")
	if !strings.Contains(conns, "target8-conns5k") || !strings.Contains(conns, "server did not start") {
		t.Errorf("the connections table does not say target8-conns5k failed:\n%s", conns)
	}
	if !strings.Contains(rooms, "target8-room10 ") && !strings.Contains(rooms, "target8-room10:") && !strings.Contains(rooms, "target8-room10 (") {
		t.Errorf("the room size table does not say target8-room10 did not run:\n%s", rooms)
	}
	for name, sec := range map[string]string{"connections": conns, "room size": rooms} {
		if strings.Contains(sec, met) || strings.Contains(sec, notMet) {
			t.Errorf("the %s table gives a verdict over the runs left:\n%s", name, sec)
		}
	}
}

// TestTargetNotRun: a target with no result at all has a row that says
// so, rather than no row: the table would read as if it were complete.
func TestTargetNotRun(t *testing.T) {
	runs := map[string]*run{
		"target3": {Name: "target3", Result: &result{OK: true, DeliveriesExpected: 10, DeliveriesReceived: 10}},
	}
	var b strings.Builder
	if err := report(&b, runs); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"1", "2", "4", "5", "6", "7"} {
		if !strings.Contains(b.String(), "\n| "+target+" | ") {
			t.Errorf("no row for target %s:\n%s", target, b.String())
		}
	}
}

// TestChecksSayWhy: a run that is not clean says why in its row, also
// when the cause is connections that failed to connect.
func TestChecksSayWhy(t *testing.T) {
	runs := map[string]*run{
		"target3": {Name: "target3", Result: &result{OK: false, ConnsEstablished: 95, ConnsFailed: 5, DeliveriesExpected: 10, DeliveriesReceived: 10}},
	}
	var b strings.Builder
	if err := report(&b, runs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "5 connections failed") {
		t.Errorf("the row of a run with 5 failed connections does not say so:\n%s", b.String())
	}
}

// TestSendErrorsNotClean: a run whose sends the server refused or whose
// answers never came (a long-poll POST that failed) is not clean, though
// the tool's own checks pass: the deliveries of those messages are not
// expected, so a loss among them would not show. Its row says so.
func TestSendErrorsNotClean(t *testing.T) {
	runs := map[string]*run{
		"target3": {Name: "target3", Result: &result{OK: true, ConnsEstablished: 100, MessagesSent: 10, MessagesAcked: 9, SendErrors: 1,
			DeliveriesExpected: 900, DeliveriesReceived: 900, Latency: latency{P50: 0.5, P99: 1}}},
	}
	var b strings.Builder
	if err := report(&b, runs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "1 sends refused or failed") || strings.Contains(b.String(), "| **met**") {
		t.Errorf("a run with a send error is reported clean, or does not say why:\n%s", b.String())
	}
}

// TestE2EAckedInWindow: target 6 end to end counts the sends acknowledged
// in the sending window, not those acknowledged in the drain after it;
// a run of the load tool from before it told them apart counts them all.
func TestE2EAckedInWindow(t *testing.T) {
	inWindow := int64(495_000)
	for _, c := range []struct {
		inWindow *int64
		want     string
	}{
		{&inWindow, "49,500 messages/s acknowledged (495,000 in 10.0 s)"},
		{nil, "50,500 messages/s acknowledged (505,000 in 10.0 s)"},
	} {
		res := &result{OK: true, ConnsEstablished: 200, MessagesSent: 505_000, MessagesAcked: 505_000, AckedInWindow: c.inWindow,
			DurationSeconds: 10, DeliveriesExpected: 505_000, DeliveriesReceived: 505_000}
		var b strings.Builder
		if err := report(&b, map[string]*run{"target6-e2e": {Name: "target6-e2e", Result: res}}); err != nil {
			t.Fatal(err)
		}
		var row string
		for line := range strings.Lines(b.String()) {
			if strings.HasPrefix(line, "| 6 | target6-e2e ") {
				row = line
			}
		}
		if !strings.Contains(row, c.want) {
			t.Errorf("target 6 end to end reads %q; want %q", row, c.want)
		}
		if met := strings.Contains(row, "| **met** |"); met != (c.inWindow == nil) {
			t.Errorf("row %q: met %v; want %v", row, met, c.inWindow == nil)
		}
	}
}

// TestTarget5NotOK: a target 5 run that is not OK (here, connections that
// ended while held) does not meet the target, whatever its RSS.
func TestTarget5NotOK(t *testing.T) {
	res := &result{OK: false, Idle: true, ConnsEstablished: 19000, ConnsDropped: 300}
	res.Server = &serverStats{RSSBefore: 20 << 20, RSSAfter: 220 << 20, RSSPerConn: 11 << 10}
	var b strings.Builder
	if err := report(&b, map[string]*run{"target5": {Name: "target5", Result: res}}); err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(b.String()) {
		if strings.HasPrefix(line, "| 5 | target5 |") && (strings.Contains(line, met) || !strings.Contains(line, "300 connections dropped")) {
			t.Errorf("row of a run with 300 connections dropped: %s", line)
		}
	}
}

// TestPublishedTables: the tables of docs/benchmarks.md are this command's
// output for docs/bench, unchanged. A table typed over by hand, or left
// behind when the files of a newer run were put in docs/bench, fails it.
func TestPublishedTables(t *testing.T) {
	runs, err := load(filepath.Join("..", "..", "docs", "bench"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := report(&b, runs); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "benchmarks.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), b.String()) {
		t.Errorf("docs/benchmarks.md does not hold the tables of go run ./scripts/benchreport; paste its output under \"## Results\":\n%s", b.String())
	}
}

// TestPollDeliveryDerived: BenchmarkPollDelivery's figures are per
// delivery, not per op (a message to 100 clients), and the derived column
// says so, rather than ops/s of its ns/op.
func TestPollDeliveryDerived(t *testing.T) {
	runs := map[string]*run{
		"gobench": {Name: "gobench", Benchmarks: []gobench{{Pkg: "github.com/parley-chat/parley/internal/web", Name: "BenchmarkPollDelivery-2", N: 300,
			Metrics: map[string]float64{"ns/op": 5469555, "ns/delivery": 54705, "cpu-ns/delivery": 90918, "allocs/delivery": 115.6, "B/op": 993093, "allocs/op": 11555}}}},
	}
	var b strings.Builder
	if err := report(&b, runs); err != nil {
		t.Fatal(err)
	}
	if want := "| 54.7 µs per delivery, 90.9 µs of CPU and 115.6 allocations of both sides |"; !strings.Contains(b.String(), want) {
		t.Errorf("report has no %q:\n%s", want, b.String())
	}
}

// TestRepeatedRuns: a load that scripts/bench.sh runs more than once
// (REPEAT) is judged by the median of its runs' figures, each run's own
// listed beside it; a run that lost a delivery or has no result decides
// the row however the others went.
func TestRepeatedRuns(t *testing.T) {
	light := lightResult
	poll := func(p99 float64) *result { return pollResult(5000, p99) }
	runs := withRuns(withRuns(nil, "target3", light(1.20, 1.9), light(0.90, 1.7), light(0.95, 2.1)),
		"target7", poll(60), poll(40), poll(45))
	for target, want := range map[string][]string{
		"3": {"target3, target3-run2, target3-run3 (median of 3 runs)", "median of 3 runs: p50 0.95 ms (1.20, 0.90, 0.95), p99 1.90 ms (1.90, 1.70, 2.10) (60,000 of 60,000 delivered)", met},
		"7": {"median of 3 runs: 5,000 long-polling clients in 50 rooms; 300,000 of 300,000 delivered (100.00 %); p50 2.00 ms (2.00, 2.00, 2.00), p99 45.0 ms (60.0, 40.0, 45.0)", met},
	} {
		row := rowOf(t, runs, target)
		for _, w := range want {
			if !strings.Contains(row, w) {
				t.Errorf("target %s: row has no %q: %s", target, w, row)
			}
		}
	}

	// One run of three lost a delivery: not met, and the row says so.
	lossy := light(0.5, 0.9)
	lossy.Lost, lossy.DeliveriesReceived = 1, 19999
	runs["target3-run2"] = &run{Name: "target3-run2", Result: lossy}
	if row := rowOf(t, runs, "3"); strings.Contains(row, met) || !strings.Contains(row, "1 lost") {
		t.Errorf("a run that lost a delivery is in a row met or silent: %s", row)
	}
	// One run of three has no result: the row names it, with no verdict.
	runs["target7-run3"] = &run{Name: "target7-run3", Error: "server did not start"}
	if row := rowOf(t, runs, "7"); strings.Contains(row, met) || !strings.Contains(row, "target7-run3 failed: `server did not start`") {
		t.Errorf("a run without a result is not named, or judged over: %s", row)
	}
}

// TestRepeatedRunsFewerConns: target 7 wants 5,000 clients connected in
// every run of it; the median of the runs' counts would hide one that
// connected fewer.
func TestRepeatedRunsFewerConns(t *testing.T) {
	poll := func(conns int) *result { return pollResult(conns, 40) }
	runs := withRuns(nil, "target7", poll(5000), poll(4000), poll(5000))
	if line := rowOf(t, runs, "7"); strings.Contains(line, met) || !strings.Contains(line, "4,000 long-polling clients") {
		t.Errorf("a run of 4,000 clients in three is hidden by the median: %s", line)
	}
}

// TestRepeatedRunsOfAnotherCommit: runs left in the directory by an
// earlier invocation (one with a larger REPEAT, of another commit or
// with another command) are not taken as runs of the same load.
func TestRepeatedRunsOfAnotherCommit(t *testing.T) {
	light := func() *result { return lightResult(0.5, 2) }
	const cmd = "parley bench --conns 100 --rooms 1"
	for name, second := range map[string]*run{
		"commit":  {Name: "target3-run2", Commit: "aaaaaaa", Command: cmd, Result: light()},
		"command": {Name: "target3-run2", Commit: "bbbbbbb", Command: cmd + " --rate 1", Result: light()},
	} {
		runs := map[string]*run{
			"target3":      {Name: "target3", Commit: "bbbbbbb", Command: cmd, Result: light()},
			"target3-run2": second,
		}
		if line := rowOf(t, runs, "3"); strings.Contains(line, met) || !strings.Contains(line, "target3-run2") {
			t.Errorf("another %s's run is judged with target3, or not named: %s", name, line)
		}
	}
}

// TestRepeatedRunsUnmeasured: a run without a CPU figure (no --pid) does
// not pull the median of the others' down as a 0.
func TestRepeatedRunsUnmeasured(t *testing.T) {
	poll := func(server, tool float64) *result {
		r := pollResult(5000, 40)
		r.ToolCPUPerDeliveryUS = tool
		if server > 0 {
			r.Server = &serverStats{CPUPerDeliveryUS: server}
		}
		return r
	}
	res, bad := combined([]*run{
		{Name: "target7", Result: poll(40, 20)},
		{Name: "target7-run2", Result: poll(0, 0)},
		{Name: "target7-run3", Result: poll(50, 30)},
	})
	if bad != "" {
		t.Fatal(bad)
	}
	if res.Server.CPUPerDeliveryUS != 45 || res.ToolCPUPerDeliveryUS != 25 {
		t.Errorf("CPU per delivery: server %v, tool %v; want 45 and 25, the medians of the runs that measured it", res.Server.CPUPerDeliveryUS, res.ToolCPUPerDeliveryUS)
	}
}

// TestRepeatedRunsSendErrors: a repeated load is clean only if every run
// is, and a send refused or failed leaves a run OK for the load tool
// (benchreport, not the tool, counts it as not clean). One run of three
// with send errors makes the row not met, and the row says how many.
func TestRepeatedRunsSendErrors(t *testing.T) {
	light := func(sendErrs int64) *result {
		r := lightResult(0.5, 2)
		r.MessagesSent, r.MessagesAcked, r.SendErrors = 200, 200-sendErrs, sendErrs
		r.DeliveriesExpected, r.DeliveriesReceived = 100*(200-sendErrs), 100*(200-sendErrs)
		return r
	}
	runs := withRuns(nil, "target3", light(0), light(3), light(0))
	if line := rowOf(t, runs, "3"); strings.Contains(line, met) || !strings.Contains(line, "3 sends refused or failed") {
		t.Errorf("a run with 3 send errors in three is judged clean, or not named: %s", line)
	}
}

// TestGrowthUnclean: a target 8 run that did not measure the load asked
// for (connections failed, deliveries lost) does not make its table met,
// however its figures line up; the table says which run it was.
func TestGrowthUnclean(t *testing.T) {
	ok := growthResult
	// 19,000 asked, 12,000 connected; and a room run that lost deliveries.
	failed := ok(12000, 12, 20<<20+11000*12000)
	failed.OK, failed.ConnsFailed = false, 7000
	lossy := ok(10000, 9, 100<<20)
	lossy.OK, lossy.Lost, lossy.DeliveriesReceived = false, 400, 600
	runs := map[string]*run{
		"target8-conns1k":   {Name: "target8-conns1k", Result: ok(1000, 10, 20<<20)},
		"target8-conns5k":   {Name: "target8-conns5k", Result: ok(5000, 11, 20<<20+11000*4000)},
		"target8-conns19k":  {Name: "target8-conns19k", Result: failed},
		"target8-room10":    {Name: "target8-room10", Result: ok(1000, 9, 20<<20)},
		"target8-room1000":  {Name: "target8-room1000", Result: ok(1000, 8, 20<<20)},
		"target8-room10000": {Name: "target8-room10000", Result: lossy},
	}
	var b strings.Builder
	if err := report(&b, runs); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	conns, _, _ := strings.Cut(out[strings.Index(out, "### Cost growth with connections"):], "### Cost growth with room size")
	rooms, _, _ := strings.Cut(out[strings.Index(out, "### Cost growth with room size"):], "### Runs")
	for name, sec := range map[string]string{"target8-conns19k": conns, "target8-room10000": rooms} {
		if strings.Contains(sec, met) || !strings.Contains(sec, notMet) || !strings.Contains(sec, name+" (") {
			t.Errorf("a table with a run that is not clean (%s) is met, or does not name it:\n%s", name, sec)
		}
	}
}

// rowOf returns the row of target (3, 7) in the report of runs.
func rowOf(t *testing.T, runs map[string]*run, target string) string {
	t.Helper()
	var b strings.Builder
	if err := report(&b, runs); err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(b.String()) {
		if strings.HasPrefix(line, "| "+target+" | target"+target) {
			return line
		}
	}
	t.Fatalf("no row for target %s:\n%s", target, b.String())
	return ""
}

// withRuns adds to runs (made if nil) the runs name, name-run2, ... of
// results, in turn, as scripts/bench.sh names a repeated load's runs.
func withRuns(runs map[string]*run, name string, results ...*result) map[string]*run {
	if runs == nil {
		runs = make(map[string]*run)
	}
	for i, r := range results {
		n := name
		if i > 0 {
			n = fmt.Sprintf("%s-run%d", name, i+1)
		}
		runs[n] = &run{Name: n, Result: r}
	}
	return runs
}

// lightResult is a clean run of target 3's load (100 clients in a room)
// with latencies p50 and p99.
func lightResult(p50, p99 float64) *result {
	r := &result{OK: true, ConnsEstablished: 100, Rooms: 1, DeliveriesExpected: 20000, DeliveriesReceived: 20000}
	r.Latency = latency{P50: p50, P99: p99, Max: p99 + 1}
	return r
}

// pollResult is a clean run of target 7's load with conns long-polling
// clients and a p99 of p99.
func pollResult(conns int, p99 float64) *result {
	r := &result{OK: true, ConnsEstablished: conns, Rooms: 50, DeliveriesExpected: 100000, DeliveriesReceived: 100000}
	r.Latency = latency{P50: 2, P99: p99, Max: p99 + 10}
	return r
}

// growthResult is a clean run of target 8 with conns connections, cpu µs
// of server CPU per delivery and a server RSS of rss.
func growthResult(conns int, cpu float64, rss int64) *result {
	r := &result{OK: true, Rate: 100, Rooms: conns / 100, ConnsEstablished: conns, DeliveriesExpected: 1000, DeliveriesReceived: 1000}
	r.Server = &serverStats{RSSAfter: rss, RSSPerConn: rss / int64(conns), CPUPerDeliveryUS: cpu, CPUSeconds: 1}
	return r
}
