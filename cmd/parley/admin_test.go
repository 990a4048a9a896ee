package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/sqlite"
	"github.com/parley-chat/parley/internal/testenv"
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

// TestAdminSessionsRefuses: arguments parley admin sessions cannot act on
// are refused before it writes anything.
func TestAdminSessionsRefuses(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--ttl", "-1h"}, "--ttl"},
		{[]string{"--first", "9223372036854775807", "--count", "2"}, "--first"},
		{[]string{"--count", "2", "lobby"}, "lobby"},
		{[]string{"--prefix", "two words"}, "--prefix"},
		{[]string{"--domain", "localhost"}, "--domain"},
		// The name of the first user fits in 40 characters, the last's does not.
		{[]string{"--prefix", strings.Repeat("a", 38), "--first", "9", "--count", "2"}, "--prefix"},
	} {
		db := filepath.Join(t.TempDir(), "parley.db")
		var stdout bytes.Buffer
		args := append([]string{"admin", "sessions", "--db", db}, tt.args...)
		err := run(context.Background(), args, func(string) string { return "" }, &stdout, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parley %s = %v, printing %q; want an error naming %s", strings.Join(tt.args, " "), err, stdout.String(), tt.want)
		}
		if _, err := os.Stat(db); err == nil {
			t.Errorf("parley %s created the database; want nothing written", strings.Join(tt.args, " "))
		}
	}
}

// TestMigrateRefusesArguments: parley migrate takes flags only.
func TestMigrateRefusesArguments(t *testing.T) {
	db := filepath.Join(t.TempDir(), "parley.db")
	err := run(context.Background(), []string{"migrate", "--db", db, "other.db"}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "other.db") {
		t.Errorf("parley migrate --db %s other.db = %v; want an error naming other.db", db, err)
	}
}

// TestMigrateHidesPassword: what parley migrate prints, and its error for a
// database it does not know, name the database without its password, as
// the server's log does.
func TestMigrateHidesPassword(t *testing.T) {
	const password = "migrate-secret-7"
	for _, tt := range []struct {
		name    string
		db      func(t *testing.T) string
		wantErr bool
	}{
		{"postgres", func(t *testing.T) string {
			u, err := url.Parse(testenv.PostgresSchema(t))
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := u.User.Password(); !ok { // the test server trusts: any will do
				u.User = url.UserPassword(u.User.Username(), password)
			}
			return u.String()
		}, false},
		{"unknown scheme", func(*testing.T) string { return "mysql://parley:" + password + "@127.0.0.1:3306/parley" }, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := tt.db(t)
			u, _ := url.Parse(db)
			pw, _ := u.User.Password()
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), []string{"migrate", "--db", db}, func(string) string { return "" }, &stdout, &stderr)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parley migrate = %v; want error %v", err, tt.wantErr)
			}
			out := stdout.String() + stderr.String()
			if err != nil {
				out += err.Error()
			}
			if strings.Contains(out, pw) {
				t.Errorf("parley migrate printed the database's password:\n%s", out)
			}
		})
	}
}

// adminStores are the databases parley admin sessions is tested on.
var adminStores = []struct {
	name string
	db   func(t *testing.T) string
}{
	{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "parley.db") }},
	{"postgres", func(t *testing.T) string { return testenv.PostgresSchema(t) }},
}

// withAdminStore opens db as parley does, runs f on it and closes it
// again, so that the next command finds a SQLite database free.
func withAdminStore(t *testing.T, db string, f func(st store)) {
	t.Helper()
	st, err := openStore(t.Context(), db, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f(st)
}

// liveSessions returns how many sessions of the first hundred IDs are live.
func liveSessions(t *testing.T, db string) int {
	t.Helper()
	var n int
	withAdminStore(t, db, func(st store) {
		ids := make([]int64, 100)
		for i := range ids {
			ids[i] = int64(i + 1)
		}
		ss, err := st.LiveSessions(t.Context(), ids, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		n = len(ss)
	})
	return n
}

// TestAdminSessionsKeepsNames: parley admin sessions run again for users
// that exist gives them sessions but leaves their names as they chose
// them: the names PREFIX-N are for the users it creates.
func TestAdminSessionsKeepsNames(t *testing.T) {
	for _, tt := range adminStores {
		t.Run(tt.name, func(t *testing.T) {
			db := tt.db(t)
			var out bytes.Buffer
			args := []string{"admin", "sessions", "--db", db, "--prefix", "ada", "--domain", "example.com"}
			if err := run(t.Context(), args, func(string) string { return "" }, &out, io.Discard); err != nil {
				t.Fatalf("parley %s: %v", strings.Join(args, " "), err)
			}
			var id int64
			withAdminStore(t, db, func(st store) {
				u, _, err := st.EnsureUser(t.Context(), "ada-1@example.com", time.Now())
				if err != nil {
					t.Fatal(err)
				}
				id = u.ID
				if _, err := st.SetUserName(t.Context(), id, "Ada Lovelace"); err != nil {
					t.Fatal(err)
				}
			})
			if err := run(t.Context(), args, func(string) string { return "" }, &out, io.Discard); err != nil {
				t.Fatalf("parley %s again: %v", strings.Join(args, " "), err)
			}
			withAdminStore(t, db, func(st store) {
				u, err := st.User(t.Context(), id)
				if err != nil {
					t.Fatal(err)
				}
				if u.Name != "Ada Lovelace" {
					t.Errorf("name of ada-1@example.com after admin sessions ran again = %q; want %q, the name she chose", u.Name, "Ada Lovelace")
				}
			})
		})
	}
}

// failingWriter fails every write, as a closed pipe or a full disk does.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// TestAdminSessionsNoUnprintedTokens: a session whose token parley admin
// sessions could not print is not left in the store, whether the run
// fails entering the room or writing the line; and it stops at the first
// failure.
func TestAdminSessionsNoUnprintedTokens(t *testing.T) {
	for _, tt := range adminStores {
		t.Run(tt.name, func(t *testing.T) {
			db := tt.db(t)
			noEnv := func(string) string { return "" }
			var out bytes.Buffer
			if err := run(t.Context(), []string{"admin", "sessions", "--db", db, "--room", "general"}, noEnv, &out, io.Discard); err != nil {
				t.Fatal(err)
			}
			// A room name like general's (the digit 1 for l) is refused
			// once the user and the session are made.
			out.Reset()
			args := []string{"admin", "sessions", "--db", db, "--first", "2", "--count", "3", "--room", "genera1"}
			err := run(t.Context(), args, noEnv, &out, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "genera1") {
				t.Errorf("parley %s = %v; want an error naming genera1", strings.Join(args, " "), err)
			}
			if n := liveSessions(t, db); n != 1+strings.Count(out.String(), "\n") {
				t.Errorf("after it, %d live sessions, printed %q; want the first run's and those printed", n, out.String())
			}
			args = []string{"admin", "sessions", "--db", db, "--first", "10", "--count", "3"}
			err = run(t.Context(), args, noEnv, failingWriter{}, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "no space left") {
				t.Errorf("parley %s printing to a failing writer = %v; want its error", strings.Join(args, " "), err)
			}
			if n := liveSessions(t, db); n != 1 {
				t.Errorf("after printing failed, %d live sessions; want 1, the first run's", n)
			}
		})
	}
}

// TestRunRefusesKeywordValueDB: a PostgreSQL connection string of
// keyword=value pairs, the other form pgx takes, is refused, by the server
// and by the commands that open the store alike, rather than taken for the
// name of a SQLite file: each node of a cluster so started would serve a
// database of its own, with the password in the file's name and in the log.
func TestRunRefusesKeywordValueDB(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	const secret = "topsecret"
	const dsn = "host=127.0.0.1 port=5432 user=parley password=" + secret + " dbname=parley sslmode=disable"
	for _, args := range [][]string{
		{"--addr", "127.0.0.1:0", "--db", dsn},
		{"migrate", "--db", dsn},
		{"admin", "sessions", "--db", dsn},
	} {
		// Bounds a server that, failing the test, starts and serves.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		var stdout, stderr bytes.Buffer
		err := run(ctx, args, func(string) string { return "" }, &stdout, &stderr)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "postgres://") {
			t.Errorf("parley %s = %v; want an error saying to give a postgres:// URL", args[0], err)
		}
		if err != nil && strings.Contains(err.Error(), secret) || strings.Contains(stderr.String(), secret) || strings.Contains(stdout.String(), secret) {
			t.Errorf("parley %s showed the password: %v\n%s%s", args[0], err, stdout.String(), stderr.String())
		}
		if des, _ := os.ReadDir(dir); len(des) > 0 {
			t.Errorf("parley %s left %s in the working directory; want nothing made", args[0], des[0].Name())
			for _, de := range des {
				os.Remove(filepath.Join(dir, de.Name()))
			}
		}
	}
	// The prefix sqlite: still names any file.
	db := "sqlite:" + dsn
	if err := run(t.Context(), []string{"migrate", "--db", db}, func(string) string { return "" }, io.Discard, io.Discard); err != nil {
		t.Errorf("parley migrate --db %q = %v; want the SQLite file made", db, err)
	}
}

// TestAdminRefusesMemoryDB: a SQLite database in memory is gone once the
// command ends, so parley admin sessions would print tokens no server
// knows, and parley migrate would say a database is migrated that no
// longer exists. Both refuse it, saying why, and print nothing.
func TestAdminRefusesMemoryDB(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, args := range [][]string{
		{"admin", "sessions", "--db", ":memory:"},
		{"admin", "sessions", "--db", "sqlite::memory:"},
		{"admin", "sessions", "--db", "sqlite://:memory:", "--count", "3"},
		{"migrate", "--db", ":memory:"},
	} {
		var stdout bytes.Buffer
		err := run(t.Context(), args, func(string) string { return "" }, &stdout, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "memory") {
			t.Errorf("parley %s = %v; want an error saying the database is in memory", strings.Join(args, " "), err)
		}
		if stdout.Len() > 0 {
			t.Errorf("parley %s printed %q; want nothing", strings.Join(args, " "), stdout.String())
		}
	}
	// The server's default, from the environment, is refused as well.
	var stdout bytes.Buffer
	err := run(t.Context(), []string{"admin", "sessions"}, func(k string) string {
		if k == "PARLEY_DB" {
			return ":memory:"
		}
		return ""
	}, &stdout, io.Discard)
	if err == nil || stdout.Len() > 0 {
		t.Errorf("parley admin sessions with PARLEY_DB=:memory: = %v, printing %q; want an error and nothing printed", err, stdout.String())
	}
}
