package main

import (
	"io"
	"reflect"
	"strings"
	"testing"
)

// TestConfigRefuses: values a server cannot run with are refused at start,
// naming the flag.
func TestConfigRefuses(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"send rate NaN", []string{"--send-rate", "NaN"}, "--send-rate"},
		{"send rate Inf", []string{"--send-rate", "+Inf"}, "--send-rate"},
		{"send burst whose fivefold overflows", []string{"--send-burst", "2000000000000000000"}, "--send-burst"},
		{"open rate NaN", []string{"--open-rate", "NaN"}, "--open-rate"},
		{"open rate Inf", []string{"--open-rate", "+Inf"}, "--open-rate"},
		{"open rate zero", []string{"--open-rate", "0"}, "--open-rate"},
		{"open burst zero", []string{"--open-burst", "0"}, "--open-burst"},
		{"pprof on every address", []string{"--debug-addr", ":6060"}, "--debug-addr"},
		{"pprof on a public address", []string{"--debug-addr", "0.0.0.0:6060"}, "--debug-addr"},
		{"pprof on no port", []string{"--debug-addr", "127.0.0.1"}, "--debug-addr"},
		{"sqlite synchronous off", []string{"--sqlite-synchronous", "off"}, "--sqlite-synchronous"},
		{"public URL with a fragment", []string{"--public-url", "https://chat.example.com/#a"}, "--public-url"},
		{"public URL with a query", []string{"--public-url", "https://chat.example.com/?a=b"}, "--public-url"},
		{"ping every nanosecond", []string{"--ping-interval", "1ns", "--pong-wait", "2ns"}, "--ping-interval"},
		{"origin with a query", []string{"--origins", "https://chat.example.com?x"}, "--origins"},
		{"origin with a fragment", []string{"--origins", "https://chat.example.com#x"}, "--origins"},
		{"origin with a wildcard", []string{"--origins", "https://*.example.com"}, "--origins"},
		{"origin with a user", []string{"--origins", "https://ada@chat.example.com"}, "--origins"},
		{"origin with an empty port", []string{"--origins", "https://chat.example.com:"}, "--origins"},
		{"origin with a port of leading zeros", []string{"--origins", "https://chat.example.com:0443"}, "--origins"},
		{"origin with a port out of range", []string{"--origins", "https://chat.example.com:70000"}, "--origins"},
		{"origin with a space", []string{"--origins", "https://chat example.com"}, "--origins"},
		{"no SMTP sessions", []string{"--smtp-max-sessions", "0"}, "--smtp-max-sessions"},
		{"SMTP URL of another scheme", []string{"--smtp", "ftp://mail.example.com"}, "--smtp"},
		{"SMTP URL with a bad port", []string{"--smtp", "smtp://u:p@mail.example.com:99999"}, "--smtp"},
		{"SMTP URL without a host", []string{"--smtp", "smtp:mail.example.com"}, "--smtp"},
		{"database URL of another scheme", []string{"--db", "mysql://parley@127.0.0.1/parley"}, "--db"},
		{"database as libpq keywords", []string{"--db", "host=127.0.0.1 dbname=parley"}, "--db"},
		{"address without a port", []string{"--addr", "127.0.0.1"}, "--addr"},
		{"sqlite synchronous on postgres", []string{"--db", "postgres://parley@127.0.0.1/parley", "--sqlite-synchronous", "full"}, "--sqlite-synchronous applies to a SQLite database only"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args, func(string) string { return "" }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseConfig(%q) = %v; want an error naming %s", tt.args, err, tt.want)
			}
		})
	}
}

// TestConfigDebugAddr: pprof, which has no authentication, is served on
// loopback, or elsewhere only when asked for with --debug-public.
func TestConfigDebugAddr(t *testing.T) {
	for _, args := range [][]string{
		{"--debug-addr", "127.0.0.1:6060"},
		{"--debug-addr", "[::1]:6060"},
		{"--debug-addr", "localhost:6060"},
		{"--debug-addr", ":6060", "--debug-public"},
		{"--debug-addr", "10.0.0.1:6060", "--debug-public"},
	} {
		c, err := parseConfig(args, func(string) string { return "" }, io.Discard)
		if err != nil || c.DebugAddr != args[1] {
			t.Errorf("parseConfig(%q) = %q, %v; want it accepted", args, c.DebugAddr, err)
		}
	}
}

// TestConfigSMTPMaxSessions: --smtp-max-sessions, the SMTP sessions a
// node holds open at once, is 10 unless set, by the flag or by
// PARLEY_SMTP_MAX_SESSIONS.
func TestConfigSMTPMaxSessions(t *testing.T) {
	for _, tt := range []struct {
		args []string
		env  string
		want int
	}{
		{nil, "", 10},
		{[]string{"--smtp-max-sessions", "3"}, "", 3},
		{nil, "4", 4},
	} {
		c, err := parseConfig(tt.args, func(k string) string {
			if k == "PARLEY_SMTP_MAX_SESSIONS" {
				return tt.env
			}
			return ""
		}, io.Discard)
		if err != nil || c.SMTPMaxSessions != tt.want {
			t.Errorf("parseConfig(%q), PARLEY_SMTP_MAX_SESSIONS=%q: SMTPMaxSessions = %d, %v; want %d", tt.args, tt.env, c.SMTPMaxSessions, err, tt.want)
		}
	}
}

// TestConfigHidesBrokerPassword: a --broker refused for its scheme is named
// without its password, as the log names it.
func TestConfigHidesBrokerPassword(t *testing.T) {
	const password = "broker-secret-9"
	_, err := parseConfig([]string{"--broker", "nats://parley:" + password + "@127.0.0.1:4222"}, func(string) string { return "" }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--broker") {
		t.Fatalf("parseConfig(--broker nats://...) = %v; want an error naming --broker", err)
	}
	if strings.Contains(err.Error(), password) {
		t.Errorf("the error shows the broker's password: %v", err)
	}
}

// FuzzConfig sets one flag to a value, on the command line and by its
// environment twin: the two must be refused alike or make the same Config,
// and what is accepted must be a Config the server can run with.
func FuzzConfig(f *testing.F) {
	names := []string{
		"addr", "db", "broker", "redis-prefix", "smtp", "smtp-max-sessions", "mail-from", "origins", "public-url", "log-level",
		"max-message-len", "max-group-members", "online-max", "announce-max", "new-convs-per-hour",
		"friend-requests-per-hour", "email-lookups-per-hour", "room-leaves-per-hour", "max-friends", "max-blocks", "max-pending-requests", "max-user-rooms", "max-user-groups", "max-frame-bytes", "send-rate", "send-burst",
		"outbox", "max-user-conns", "open-rate", "open-burst", "session-ttl", "max-sessions-per-user", "ping-interval", "pong-wait", "poll-hold",
		"shutdown-timeout", "debug-addr", "channels-compat", "behind-proxy", "dev",
		"adds-by-strangers-per-day", "stranger-adds-per-hour",
	}
	for i, v := range []string{
		":0", "sqlite:x.db", "redis://127.0.0.1:6379/0", "p:", "smtp://u:p@host:587", "Parley <p@example.com>",
		"https://a.example, http://b.example:8080/", "https://chat.example.com/", "debug",
		"100000", "2", "10000", "1", "-1", "0", "1e3", "401024", "NaN", "1000000000",
		"8", "0x40", "1m", "90s", "1ns", "5m", "-1s", "[::1]:6060", "true", "false", "1",
	} {
		f.Add(uint8(i), v)
	}
	f.Fuzz(func(t *testing.T, i uint8, v string) {
		name := names[int(i)%len(names)]
		if v == "" {
			return // an empty variable is as good as none
		}
		fromFlag, ferr := parseConfig([]string{"--" + name + "=" + v}, func(string) string { return "" }, io.Discard)
		fromEnv, eerr := parseConfig(nil, func(k string) string {
			if k == envVar(name) {
				return v
			}
			return ""
		}, io.Discard)
		if (ferr == nil) != (eerr == nil) || !reflect.DeepEqual(fromFlag, fromEnv) {
			t.Fatalf("--%s=%q gives %+v, %v; %s gives %+v, %v", name, v, fromFlag, ferr, envVar(name), fromEnv, eerr)
		}
		if ferr != nil {
			return
		}
		if err := fromFlag.Validate(); err != nil {
			t.Fatalf("--%s=%q is accepted, but Validate says %v", name, v, err)
		}
		// Frames other than sends are limited to five times --send-rate
		// and --send-burst (docs/protocol.md, Limits).
		if c := fromFlag; 5*c.SendBurst < c.SendBurst || !(5*c.SendRate >= c.SendRate) {
			t.Fatalf("--%s=%q: five times --send-burst %d and --send-rate %v are %d and %v", name, v, c.SendBurst, c.SendRate, 5*c.SendBurst, 5*c.SendRate)
		}
	})
}

// TestConfigFlagBeatsBadEnvironment: a flag on the command line beats its
// environment twin (README, Configuration), also one whose value is bad;
// a bad twin of a flag not given is still refused.
func TestConfigFlagBeatsBadEnvironment(t *testing.T) {
	getenv := func(k string) string {
		if k == "PARLEY_OUTBOX" {
			return "many"
		}
		return ""
	}
	c, err := parseConfig([]string{"--outbox", "512"}, getenv, io.Discard)
	if err != nil || c.Outbox != 512 {
		t.Errorf("PARLEY_OUTBOX=many --outbox 512: Outbox = %d, %v; want 512, nil", c.Outbox, err)
	}
	if _, err := parseConfig(nil, getenv, io.Discard); err == nil || !strings.Contains(err.Error(), "PARLEY_OUTBOX") {
		t.Errorf("PARLEY_OUTBOX=many alone: %v; want an error naming PARLEY_OUTBOX", err)
	}
}
