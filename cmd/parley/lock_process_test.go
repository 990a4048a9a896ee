//go:build unix && !aix && !solaris

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/sqlite"
)

// TestSQLiteSecondProcess: while one process has a SQLite database open, a
// parley server or `parley migrate` started on the same file in another
// process exits at once with status 1 and says why, rather than serving
// from it too.
func TestSQLiteSecondProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--db", path, "--addr", "127.0.0.1:0"},
		{"migrate", "--db", path},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		cmd := exec.CommandContext(ctx, exe, args...)
		cmd.Env = nodeEnviron()
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		err := cmd.Run()
		cancel()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Errorf("parley %s: %v; want exit status 1\n%s", strings.Join(args, " "), err, stderr.String())
			continue
		}
		if !strings.Contains(stderr.String(), "is in use by another parley process") || !strings.Contains(stderr.String(), path) {
			t.Errorf("parley %s said %q; want the in-use error naming %s", strings.Join(args, " "), stderr.String(), path)
		}
	}
}
