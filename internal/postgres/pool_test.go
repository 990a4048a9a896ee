package postgres

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
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

// TestLostRead: Query runs a statement again after its connection was
// lost only when it is a read (a SELECT), and only when the connection
// had been made: a failure to connect says the server cannot be reached,
// and an error of the server's says nothing of the connection.
func TestLostRead(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		want bool
	}{
		{"SELECT 1", true},
		{"\n\t  select id FROM users", true},
		{"WITH x AS (UPDATE users SET name = '' RETURNING id) SELECT id FROM x", false},
		{"UPDATE users SET name = '' RETURNING id", false},
		{"DELETE FROM sessions RETURNING id", false},
		{"SELEC", false},
		{"", false},
	} {
		if got := readOnly(tc.sql); got != tc.want {
			t.Errorf("readOnly(%q) = %v; want %v", tc.sql, got, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"end of the stream", io.ErrUnexpectedEOF, true},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"server's error", &pgconn.PgError{Severity: "ERROR", Code: "23505"}, false},
		{"farewell", &pgconn.PgError{Severity: "FATAL", Code: "57P01"}, false},
		{"refused", refused(t), false},
	} {
		if got := lostConn(tc.err); got != tc.want {
			t.Errorf("%s: lostConn(%v) = %v; want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// refused returns the error of pgconn connecting to a loopback port where
// nothing listens.
func refused(t *testing.T) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := pgconn.Connect(t.Context(), "postgres://postgres@"+addr+"/test?sslmode=disable&connect_timeout=5")
	if err == nil {
		c.Close(t.Context())
		t.Fatalf("connected to %s, where nothing listens", addr)
	}
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("connecting to %s, where nothing listens: %v; want a refused ConnectError", addr, err)
	}
	return err
}
