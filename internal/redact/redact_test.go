package redact_test

import (
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/redact"
)

const secret = "topsecret"

// malformed are URLs whose passwords were not percent-encoded.
var malformed = []string{
	"redis://parley:" + secret + "/x@127.0.0.1:6379/0",
	"redis://parley:" + secret + "#x@127.0.0.1:6379/0",
	"redis://parley:" + secret + "?x@127.0.0.1:6379/0",
	"redis://parley:%zz" + secret + "@127.0.0.1:6379/0",
	"smtps://us/er:" + secret + "@mail.example.com",
	"redis:/parley:" + secret + "@127.0.0.1:6379/0",
	"mysql://parley:p%zz" + secret + "@127.0.0.1:3306/parley",
}

func TestURL(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
		{"redis://parley:" + secret + "@127.0.0.1:6379/0", "redis://parley:xxxxx@127.0.0.1:6379/0"},
		{"smtp://user:p%40ss@mail.example.com:587?tls=none", "smtp://user:xxxxx@mail.example.com:587?tls=none"},
		{"parley.db", "parley.db"},
		{"redis://parley:" + secret + "/x@127.0.0.1:6379/0", "redis://xxxxx@127.0.0.1:6379/0"},
		{"smtp:user:" + secret + "@mail.example.com", "smtp:xxxxx@mail.example.com"},
	} {
		if got := redact.URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
	for _, in := range malformed {
		if got := redact.URL(in); strings.Contains(got, secret) {
			t.Errorf("URL(%q) = %q, which shows the password", in, got)
		}
	}
}

func TestParse(t *testing.T) {
	for _, in := range malformed {
		u, err := redact.Parse(in)
		if err == nil {
			t.Errorf("Parse(%q) = %v, nil; want an error", in, u)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("Parse(%q) = %v, which shows the password", in, err)
		}
	}
	for _, tt := range []struct{ in, want string }{
		{"redis://127.0.0.1:port/0", `invalid port ":port"`},
		{"redis://u:" + secret + "/x@127.0.0.1:port/0", `invalid port ":port"`},
		{"redis://u:" + secret + "/x@127.0.0.1:6379/0", "percent-encoded"},
	} {
		if _, err := redact.Parse(tt.in); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v; want an error containing %q", tt.in, err, tt.want)
		}
	}
	if u, err := redact.Parse("smtp:user:" + secret + "@mail.example.com"); err != nil || u.Opaque == "" {
		t.Errorf("Parse(opaque) = %v, %v; want it as url.Parse has it", u, err)
	}
	u, err := redact.Parse("redis://parley:p%40ss@127.0.0.1:6379/0")
	if pw, _ := u.User.Password(); err != nil || pw != "p@ss" {
		t.Errorf("Parse(well-formed) = %v, %v", u, err)
	}
}
