package web

import (
	"bufio"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSharedHeaderValues checks that the header values every response
// shares (securityHeaders, setJSONHeaders) are set, and that handlers
// adding to them, before either response is written, change neither each
// other's headers nor the next response's nor the shared values.
func TestSharedHeaderValues(t *testing.T) {
	h := securityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setJSONHeaders(w.Header())
		if extra := r.URL.Query().Get("add"); extra != "" {
			w.Header().Add("X-Frame-Options", extra)
			w.Header().Add("Cache-Control", extra)
		}
	}), func(*http.Request) bool { return false })
	serve := func(target string) http.Header {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
		return rec.Header() // the handler's own map, as it left it
	}
	want := func(extra string) map[string][]string {
		w := map[string][]string{
			"X-Frame-Options":              {"DENY"},
			"X-Content-Type-Options":       {"nosniff"},
			"Referrer-Policy":              {"same-origin"},
			"Cross-Origin-Opener-Policy":   {"same-origin"},
			"Cross-Origin-Resource-Policy": {"same-origin"},
			"Content-Type":                 {"application/json; charset=utf-8"},
			"Cache-Control":                {"no-store"},
		}
		if extra != "" {
			w["X-Frame-Options"] = append(w["X-Frame-Options"], extra)
			w["Cache-Control"] = append(w["Cache-Control"], extra)
		}
		return w
	}
	one, two := serve("/?add=one"), serve("/?add=two")
	plain := serve("/")
	for _, c := range []struct {
		got   http.Header
		extra string
	}{{one, "one"}, {two, "two"}, {plain, ""}} {
		for k, v := range want(c.extra) {
			if got := c.got.Values(k); !slices.Equal(got, v) {
				t.Errorf("added %q: %s = %q; want %q", c.extra, k, got, v)
			}
		}
		if c.got.Get("Content-Security-Policy") == "" {
			t.Errorf("added %q: no Content-Security-Policy", c.extra)
		}
	}
	if !slices.Equal(hdrNoStore, []string{"no-store"}) || !slices.Equal(securityHeaderValues[1].value, []string{"DENY"}) {
		t.Errorf("shared values changed: %q, %q", hdrNoStore, securityHeaderValues[1].value)
	}
}

// queryInputs are query strings that need each rule of url.ParseQuery.
var queryInputs = []string{
	"", "cursor=abc", "a=1&cursor=abc&cursor=def", "cursor", "cursor=", "x=1",
	"cursor=a%2Bb+c", "cur%73or=esc", "cursor=%zz&cursor=ok", "cursor=a;b&cursor=c",
	"a;b=1&cursor=d", "&&cursor=e&", "cursor=f=g", "%zz=1&cursor=h", "cursorx=1&xcursor=2",
}

// checkQueryValue checks queryValue against url.ParseQuery.
func checkQueryValue(t *testing.T, q string) {
	want := url.Values{}
	if v, err := url.ParseQuery(q); err == nil || v != nil {
		want = v
	}
	if got := queryValue(q, "cursor"); got != want.Get("cursor") {
		t.Errorf("queryValue(%q) = %q; url.ParseQuery gives %q", q, got, want.Get("cursor"))
	}
}

func TestQueryValue(t *testing.T) {
	for _, q := range queryInputs {
		checkQueryValue(t, q)
	}
}

func FuzzQueryValue(f *testing.F) {
	for _, q := range queryInputs {
		f.Add(q)
	}
	f.Fuzz(checkQueryValue)
}

// TestHeaderBytes: headerBytes counts a request's line and header fields
// as they came over HTTP/1.1, Host included.
func TestHeaderBytes(t *testing.T) {
	raw := "GET /api/poll?cursor=AQ HTTP/1.1\r\nHost: chat.example.com\r\nCookie: parley_session=abc\r\n" +
		"Accept: */*\r\nX-Twice: 1\r\nX-Twice: 22\r\n\r\n"
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if got := headerBytes(r); got != len(raw) {
		t.Errorf("headerBytes(%q) = %d; want %d", raw, got, len(raw))
	}
}

// policyDirectives splits a Content-Security-Policy into its directives,
// each name to the rest of its text.
func policyDirectives(t *testing.T, policy string) map[string]string {
	t.Helper()
	m := make(map[string]string)
	for _, d := range strings.Split(policy, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		if _, dup := m[name]; dup || name == "" {
			t.Errorf("policy %q: directive %q empty or twice", policy, name)
		}
		m[name] = value
	}
	return m
}

// TestContentSecurityPolicy: the page may connect to its own origin only,
// its WebSocket included: connect-src names the ws: or wss: origin of the
// request's Host, by the scheme secure says the page has. A Host that is
// not a plain host[:port] (one that would add to the policy, or that the
// policy's grammar has no place for) leaves connect-src at 'self'.
func TestContentSecurityPolicy(t *testing.T) {
	base := map[string]string{
		"default-src":     "'self'",
		"img-src":         "'self' data:",
		"style-src":       "'self'",
		"frame-ancestors": "'none'",
		"base-uri":        "'none'",
		"form-action":     "'self'",
	}
	for _, tc := range []struct {
		host    string
		secure  bool
		connect string
	}{
		{"chat.example.com", true, "'self' wss://chat.example.com"},
		{"chat.example.com", false, "'self' ws://chat.example.com"},
		{"127.0.0.1:8080", false, "'self' ws://127.0.0.1:8080"},
		{"Chat.Example.COM:8443", true, "'self' wss://chat.example.com:8443"},
		{"localhost", false, "'self' ws://localhost"},
		{"xn--bcher-kva.example", true, "'self' wss://xn--bcher-kva.example"},
		// Not a host the policy may name: 'self' only.
		{"", true, "'self'"},
		{"chat.example.com; script-src 'unsafe-inline'", true, "'self'"},
		{"chat.example.com;script-src", true, "'self'"},
		{"chat.example.com 'unsafe-inline'", true, "'self'"},
		{"chat.example.com wss://evil.example", true, "'self'"},
		{"chat.example.com,wss://evil.example", true, "'self'"},
		{"'self'", true, "'self'"},
		{"*", true, "'self'"},
		{"*.example.com", true, "'self'"},
		{"wss://evil.example", true, "'self'"},
		{"chat.example.com/evil", true, "'self'"},
		{"chat.example.com\"", true, "'self'"},
		{"[::1]:8080", false, "'self'"},
		{"chat.example.com:", true, "'self'"},
		{"chat.example.com:*", true, "'self'"},
		{"chat.example.com:123456", true, "'self'"},
		{"chat.example.com:80:80", true, "'self'"},
		{"chat..example.com", true, "'self'"},
		{".example.com", true, "'self'"},
		{"chat.example.com.", true, "'self'"},
		{"under_score.example", true, "'self'"},
		{strings.Repeat("a", 250) + ".example", true, "'self'"},
	} {
		h := securityHeaders(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), func(*http.Request) bool { return tc.secure })
		for range 2 { // the second answer reuses the first's policy
			req := httptest.NewRequest("GET", "/", nil)
			req.Host = tc.host
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			policies := rec.Header().Values("Content-Security-Policy")
			if len(policies) != 1 {
				t.Fatalf("Host %q: Content-Security-Policy = %q; want one", tc.host, policies)
			}
			got := policyDirectives(t, policies[0])
			want := maps.Clone(base)
			want["connect-src"] = tc.connect
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Host %q, secure %v: policy %q; directives mismatch (-want +got):\n%s", tc.host, tc.secure, policies[0], diff)
				break
			}
		}
	}
}

// TestContentSecurityPolicyShared: the answers to requests for one Host
// share its policy, made once, as they share the other headers' values.
func TestContentSecurityPolicyShared(t *testing.T) {
	var c cspCache
	first := c.policy("chat.example.com", true)
	if allocs := testing.AllocsPerRun(10, func() { c.policy("chat.example.com", true) }); allocs != 0 {
		t.Errorf("policy for the same Host allocates %v times; want none", allocs)
	}
	if again := c.policy("chat.example.com", true); &again[0] != &first[0] {
		t.Errorf("policy for the same Host made again")
	}
	if other := c.policy("chat.example.com", false); other[0] == first[0] {
		t.Errorf("policy without TLS = %q; want another than over TLS", other)
	}
}
