package main

import (
	"io"
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
		{"pprof on every address", []string{"--debug-addr", ":6060"}, "--debug-addr"},
		{"pprof on a public address", []string{"--debug-addr", "0.0.0.0:6060"}, "--debug-addr"},
		{"pprof on no port", []string{"--debug-addr", "127.0.0.1"}, "--debug-addr"},
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
