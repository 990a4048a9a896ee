package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunHidesPasswordOfMalformedURL: a database or broker URL whose
// password is not URL-escaped (a % or a # in it, as generated passwords
// have) is refused without showing the password, in the error or the log,
// as a well-formed one is.
func TestRunHidesPasswordOfMalformedURL(t *testing.T) {
	const secret = "s3cret-tail"
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"broker bad escape", []string{"--broker", "redis://parley:p%zz" + secret + "@127.0.0.1:1/0"}},
		{"broker hash", []string{"--broker", "redis://parley:p#" + secret + "@127.0.0.1:1/0"}},
		{"broker scheme typo", []string{"--broker", "redis:/parley:" + secret + "@127.0.0.1:1/0"}},
		{"postgres bad escape", []string{"--db", "postgres://parley:p%zz" + secret + "@127.0.0.1:1/parley"}},
		{"broker slash", []string{"--broker", "redis://parley:" + secret + "/x@127.0.0.1:1/0"}},
		{"postgres slash", []string{"--db", "postgres://parley:" + secret + "/x@127.0.0.1:1/parley"}},
		{"postgres hash", []string{"--db", "postgres://parley:" + secret + "#x@127.0.0.1:1/parley"}},
		{"unknown scheme bad escape", []string{"--db", "mysql://parley:p%zz" + secret + "@127.0.0.1:1/parley"}},
		{"migrate bad escape", []string{"migrate", "--db", "mysql://parley:p%zz" + secret + "@127.0.0.1:1/parley"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			args := append([]string{"--addr", "127.0.0.1:0"}, tt.args...)
			if tt.args[0] == "migrate" {
				args = tt.args
			} else if tt.args[0] != "--db" {
				args = append(args, "--db", filepath.Join(t.TempDir(), "parley.db"))
			}
			var stdout, stderr bytes.Buffer
			err := run(ctx, args, func(string) string { return "" }, &stdout, &stderr)
			if err == nil {
				t.Fatalf("run(%q) = nil; want an error", args)
			}
			out := err.Error() + "\n" + stdout.String() + stderr.String()
			if strings.Contains(out, secret) {
				t.Errorf("run(%q) shows the password:\n%s", args, out)
			}
		})
	}
}
