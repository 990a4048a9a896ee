package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

// TestAdminHelp: asking a command for its help is no failure.
func TestAdminHelp(t *testing.T) {
	for _, args := range [][]string{
		{"admin", "sessions", "--help"},
		{"admin", "migrate", "-h"},
		{"migrate", "--help"},
	} {
		var stderr bytes.Buffer
		err := run(context.Background(), args, func(string) string { return "" }, io.Discard, &stderr)
		if err != nil || !strings.Contains(stderr.String(), "-db") {
			t.Errorf("parley %s = %v, printing %q; want nil and the flags", strings.Join(args, " "), err, stderr.String())
		}
	}
}
