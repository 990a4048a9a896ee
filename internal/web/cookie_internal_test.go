package web

import (
	"net/http"
	"strings"
	"testing"
)

// TestCookieValue checks cookieValue against r.Cookie on Cookie headers a
// browser sends and on malformed ones, and that it allocates nothing
// where it finds the cookie.
func TestCookieValue(t *testing.T) {
	const name = "__Host-parley_session"
	for _, lines := range [][]string{
		nil,
		{""},
		{name + "=tok"},
		{"a=1; " + name + "=tok; b=2"},
		{" " + name + " = tok ;"},
		{name + `="tok"`},
		{name + `="tok`},
		{name + "=to\\k; " + name + "=second"},
		{name + "=bad\"; other=1", name + "=next-line"},
		{"x=1", name + "=in-the-second-line"},
		{name},
		{name + "="},
		{"parley_session=plain; " + name + "=host"},
		{strings.Repeat("a=1;", maxFastCookies) + name + "=many"},
		{strings.Repeat("a=1;", 4000) + name + "=too-many"},
	} {
		checkCookieValue(t, name, lines)
	}
	r := &http.Request{Header: http.Header{"Cookie": {"theme=dark; " + name + "=tok; lang=en"}}}
	if n := testing.AllocsPerRun(100, func() { _ = cookieValue(r, name) }); n != 0 {
		t.Errorf("cookieValue allocates %v times; want 0", n)
	}
}

func FuzzCookieValue(f *testing.F) {
	f.Add("a=1; s=tok", "")
	f.Add(`s="tok"`, "s=x")
	f.Add(" s = t\\k ;s=u", "s")
	f.Fuzz(func(t *testing.T, line1, line2 string) {
		checkCookieValue(t, "s", []string{line1, line2})
	})
}

func checkCookieValue(t *testing.T, name string, lines []string) {
	t.Helper()
	r := &http.Request{Header: http.Header{}}
	if lines != nil {
		r.Header["Cookie"] = lines
	}
	want := ""
	if c, err := r.Cookie(name); err == nil {
		want = c.Value
	}
	if got := cookieValue(r, name); got != want {
		t.Errorf("cookieValue(%q) = %q; r.Cookie gives %q", lines, got, want)
	}
}
