// Package testenv gives tests the services they need, the same way in every
// package: the local PostgreSQL and Redis, each test with a fresh schema or
// key prefix of its own, removed when it ends. A test skips, with a clear
// message, when a service does not answer, unless its environment variable
// (PARLEY_TEST_POSTGRES, PARLEY_TEST_REDIS) names it: then it fails. It is
// for tests only.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"
)

// Defaults tried when the variables are empty.
const (
	DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	DefaultRedis    = "redis://127.0.0.1:6379"
)

// RandHex returns n random bytes in hex.
func RandHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var pg struct {
	once     sync.Once
	url      string
	required bool
	err      error
}

// Postgres returns the URL of the PostgreSQL server to test against.
func Postgres(tb testing.TB) string {
	tb.Helper()
	pg.once.Do(func() {
		pg.url = os.Getenv("PARLEY_TEST_POSTGRES")
		pg.required = pg.url != ""
		if !pg.required {
			pg.url = DefaultPostgres
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, pg.url)
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		pg.err = err
	})
	if pg.err != nil {
		if pg.required {
			tb.Fatalf("PostgreSQL at PARLEY_TEST_POSTGRES does not answer: %v", pg.err)
		}
		tb.Skipf("PostgreSQL tests skipped: no server at %s (%v); set PARLEY_TEST_POSTGRES to a postgres:// URL to run them", pg.url, pg.err)
	}
	return pg.url
}

// WithSearchPath returns rawURL with search_path set to schema.
func WithSearchPath(tb testing.TB, rawURL, schema string) string {
	tb.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		tb.Fatalf("PARLEY_TEST_POSTGRES must be a postgres:// URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// PostgresSchema creates an empty schema, dropped when the test ends, and
// returns the test server's URL with search_path set to it.
func PostgresSchema(tb testing.TB) string {
	tb.Helper()
	base := Postgres(tb)
	schema := "parley_test_" + RandHex(8)
	exec := func(q string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, q)
		return err
	}
	if err := exec(`CREATE SCHEMA ` + schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		if err := exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return WithSearchPath(tb, base, schema)
}

// Redis returns the URL of the Redis to test against, a key prefix of the
// test's own, whose keys are deleted when it ends, and a client for
// inspecting it (closed then too).
func Redis(tb testing.TB) (url, prefix string, raw *goredis.Client) {
	tb.Helper()
	url = os.Getenv("PARLEY_TEST_REDIS")
	required := url != ""
	if !required {
		url = DefaultRedis
	}
	opt, err := goredis.ParseURL(url)
	if err != nil {
		tb.Fatalf("PARLEY_TEST_REDIS: %v", err)
	}
	opt.MaxRetries = -1
	raw = goredis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := raw.Ping(ctx).Err(); err != nil {
		raw.Close()
		if required {
			tb.Fatalf("PARLEY_TEST_REDIS=%s is unreachable: %v", url, err)
		}
		tb.Skipf("no Redis at %s (%v); set PARLEY_TEST_REDIS=redis://host:port/db to run the Redis tests", url, err)
	}
	prefix = "parleytest:" + RandHex(6) + ":"
	tb.Cleanup(func() {
		defer raw.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		keys, err := raw.Keys(ctx, prefix+"*").Result()
		if err == nil && len(keys) > 0 {
			err = raw.Del(ctx, keys...).Err()
		}
		if err != nil {
			tb.Errorf("delete test keys: %v", err)
		}
	})
	return url, prefix, raw
}
