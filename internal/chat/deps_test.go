package chat_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the domain free of transports and drivers: chat
// may use the standard library only, and golang.org/x/text, the Go
// project's own Unicode tables (room names are compared in NFC, and
// secure/precis checks where their joiners stand), and
// github.com/mtibben/confusables, Unicode's confusables.txt as a Go map
// with UTS #39's skeleton (look-alike room and group names), which itself
// needs only golang.org/x/text, and golang.org/x/net/idna, the Go
// project's IDNA (UTS #46) on those tables, for internationalized domains
// of addresses (one package of x/net: nothing of its network code). Of
// Parley's own packages, it may use internal/inflight (a count of work
// under way) and internal/keyed (a lock per key), on the standard library
// alone (their own dependencies are checked here too).
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", "github.com/parley-chat/parley/internal/chat").CombinedOutput()
	if err != nil {
		t.Skipf("go list unavailable: %v\n%s", err, out)
	}
	banned := []string{"net/http", "database/sql", "github.com/parley-chat/parley/internal/web", "github.com/parley-chat/parley/internal/hub"}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		dep, std, _ := strings.Cut(line, " ")
		for _, b := range banned {
			if dep == b {
				t.Errorf("internal/chat depends on %s", dep)
			}
		}
		if std != "true" && dep != "github.com/parley-chat/parley/internal/chat" && dep != "github.com/parley-chat/parley/internal/inflight" && dep != "github.com/parley-chat/parley/internal/keyed" && !strings.HasPrefix(dep, "golang.org/x/text/") && dep != "github.com/mtibben/confusables" && dep != "golang.org/x/net/idna" {
			t.Errorf("internal/chat depends on non-standard package %s", dep)
		}
	}
}
