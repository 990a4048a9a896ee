package postgres

import (
	"errors"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestNotRun: a statement outside a transaction runs again only when its
// error proves that it did not run: nothing of it was sent, or the
// server's farewell came before its CommandComplete under the extended
// protocol, which commits only after that. A farewell after the
// CommandComplete (the statement may have committed), under the simple
// protocol (which commits before it), or an error that does not end the
// session leaves the statement's outcome to the caller.
func TestNotRun(t *testing.T) {
	fatal := &pgconn.PgError{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "57P01"}
	for _, tc := range []struct {
		name     string
		err      error
		tag      string
		extended bool
		want     bool
	}{
		{"nothing sent", &notRunError{errors.New("broken pipe")}, "", false, true},
		{"farewell first", fatal, "", true, true},
		{"farewell after CommandComplete", fatal, "UPDATE 1", true, false},
		{"farewell by the simple protocol", fatal, "", false, false},
		{"error", &pgconn.PgError{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "23505"}, "", true, false},
		{"connection lost", errors.New("unexpected EOF"), "", true, false},
	} {
		if got := notRun(tc.err, pgconn.NewCommandTag(tc.tag), tc.extended); got != tc.want {
			t.Errorf("%s: notRun(%v, %q, %v) = %v; want %v", tc.name, tc.err, tc.tag, tc.extended, got, tc.want)
		}
	}
	p := &pool{mode: pgx.QueryExecModeCacheStatement}
	simple := &pool{mode: pgx.QueryExecModeSimpleProtocol}
	for _, tc := range []struct {
		name string
		p    *pool
		exec bool
		args []any
		want bool
	}{
		{"Query", p, false, []any{1}, true},
		{"Query without arguments", p, false, nil, true},
		{"Exec", p, true, []any{1}, true},
		{"Exec without arguments", p, true, nil, false},
		{"Exec with options only", p, true, []any{pgx.QueryExecModeExec}, false},
		{"Query by the simple protocol", simple, false, []any{1}, false},
		{"Query in the simple protocol's mode", p, false, []any{pgx.QueryExecModeSimpleProtocol, 1}, false},
		{"Query in the exec mode", simple, false, []any{pgx.QueryExecModeExec, 1}, true},
	} {
		if got := tc.p.extended(tc.exec, tc.args); got != tc.want {
			t.Errorf("%s: extended = %v; want %v", tc.name, got, tc.want)
		}
	}
}

// TestStatementsThroughPool: every statement outside a transaction goes
// through pool's Exec, Query or QueryRow, which run it again when the
// server had ended its connection (TestStatementAfterServerEndedConnection).
// Outside pool.go, the package's code neither calls those methods of a
// *pgxpool.Pool (such as the group commit's), nor reaches past pool for
// its *pgxpool.Pool, nor passes a *pgxpool.Pool as an interface (such as
// a querier) that has those methods.
func TestStatementsThroughPool(t *testing.T) {
	out, err := exec.Command("go", "list", "-export", "-deps", "-f", "{{.ImportPath}}={{.Export}}", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	exports := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, file, _ := strings.Cut(line, "=")
		exports[path] = file
	}
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	conf := types.Config{Importer: importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		return os.Open(exports[path])
	})}
	info := &types.Info{
		Types:      map[ast.Expr]types.TypeAndValue{},
		Selections: map[*ast.SelectorExpr]*types.Selection{},
	}
	if _, err := conf.Check("github.com/parley-chat/parley/internal/postgres", fset, files, info); err != nil {
		t.Fatal(err)
	}
	const rawPool = "*github.com/jackc/pgx/v5/pgxpool.Pool"
	outside := func(n ast.Node) bool { return filepath.Base(fset.Position(n.Pos()).Filename) != "pool.go" }
	for sel, s := range info.Selections {
		if !outside(sel) {
			continue
		}
		switch s.Kind() {
		case types.MethodVal:
			m := s.Obj().(*types.Func)
			if recv := m.Type().(*types.Signature).Recv(); recv != nil && recv.Type().String() == rawPool &&
				(m.Name() == "Exec" || m.Name() == "Query" || m.Name() == "QueryRow") {
				t.Errorf("%s: %s of a *pgxpool.Pool: use DB.pool's", fset.Position(sel.Sel.Pos()), m.Name())
			}
		case types.FieldVal:
			if f := s.Obj().(*types.Var); f.Embedded() && f.Type().String() == rawPool {
				t.Errorf("%s: the *pgxpool.Pool inside pool: use pool itself", fset.Position(sel.Sel.Pos()))
			}
		}
	}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || !outside(call) {
				return true
			}
			sig, ok := info.Types[call.Fun].Type.(*types.Signature)
			if !ok {
				return true
			}
			for i, arg := range call.Args {
				var param types.Type
				switch {
				case i < sig.Params().Len()-1 || !sig.Variadic() && i < sig.Params().Len():
					param = sig.Params().At(i).Type()
				case sig.Variadic() && call.Ellipsis == token.NoPos:
					param = sig.Params().At(sig.Params().Len() - 1).Type().(*types.Slice).Elem()
				default:
					continue
				}
				if tv := info.Types[arg]; tv.Type != nil && tv.Type.String() == rawPool && runsStatements(param) {
					t.Errorf("%s: a *pgxpool.Pool as %s: pass DB.pool", fset.Position(arg.Pos()), param)
				}
			}
			return true
		})
	}
}

// runsStatements reports whether t is an interface with an Exec, Query or
// QueryRow method.
func runsStatements(t types.Type) bool {
	i, ok := t.Underlying().(*types.Interface)
	if !ok {
		return false
	}
	for m := range i.Methods() {
		if m.Name() == "Exec" || m.Name() == "Query" || m.Name() == "QueryRow" {
			return true
		}
	}
	return false
}
