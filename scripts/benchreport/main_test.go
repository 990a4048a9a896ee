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
