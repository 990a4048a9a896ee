package main

import (
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
