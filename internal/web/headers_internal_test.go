package web

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
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
			"X-Frame-Options":        {"DENY"},
			"X-Content-Type-Options": {"nosniff"},
			"Referrer-Policy":        {"same-origin"},
			"Content-Type":           {"application/json; charset=utf-8"},
			"Cache-Control":          {"no-store"},
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
