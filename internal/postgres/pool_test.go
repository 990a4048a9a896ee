package postgres

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestNotRun: a statement outside a transaction runs again only when its
// error shows that it did not run or was rolled back: nothing of it was
// sent, or the server ended the session under the extended protocol,
// which commits at the Sync after the statement (see notRun). A farewell
// under the simple protocol (which commits before it), or an error that
// does not end the session, leaves the statement's outcome to the caller.
func TestNotRun(t *testing.T) {
	fatal := &pgconn.PgError{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "57P01"}
	for _, tc := range []struct {
		name     string
		err      error
		extended bool
		want     bool
	}{
		{"nothing sent", &notRunError{errors.New("broken pipe")}, false, true},
		{"farewell", fatal, true, true},
		{"farewell by the simple protocol", fatal, false, false},
		{"error", &pgconn.PgError{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "23505"}, true, false},
		{"connection lost", errors.New("unexpected EOF"), true, false},
	} {
		if got := notRun(tc.err, tc.extended); got != tc.want {
			t.Errorf("%s: notRun(%v, %v) = %v; want %v", tc.name, tc.err, tc.extended, got, tc.want)
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
