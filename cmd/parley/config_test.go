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
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args, func(string) string { return "" }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseConfig(%q) = %v; want an error naming %s", tt.args, err, tt.want)
			}
		})
	}
}
