package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pollServer is an HTTP server that counts the connections it accepts and
// answers GET /base/api/poll with the query, the cookie and a body of the
// size asked for (?size=N).
type pollServer struct {
	*httptest.Server
	conns atomic.Int64

	mu    sync.Mutex
	hold  chan struct{} // when set, a GET ?hold waits for it to close
	close bool          // answer with Connection: close
}

func newPollServer(t *testing.T) *pollServer {
	t.Helper()
	s := &pollServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/base/api/poll" || r.Method != http.MethodGet {
			http.Error(w, `{"error":{"code":"not_found","message":"no such path"}}`, http.StatusNotFound)
			return
		}
		s.mu.Lock()
		hold, closeConn := s.hold, s.close
		s.mu.Unlock()
		if r.URL.Query().Has("hold") && hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		if closeConn {
			w.Header().Set("Connection", "close")
		}
		body := r.URL.RawQuery + " " + r.Header.Get("Cookie")
		if n := r.URL.Query().Get("size"); n != "" {
			size, _ := strconv.Atoi(n)
			body = strings.Repeat("x", size)
			// Large bodies go chunked: write them in pieces.
			for len(body) > 0 {
				k := min(len(body), 1000)
				_, _ = io.WriteString(w, body[:k])
				body = body[k:]
			}
			return
		}
		_, _ = io.WriteString(w, body)
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func TestPollConn(t *testing.T) {
	srv := newPollServer(t)
	pc, err := newPollConn(srv.URL+"/base", "tok")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.close()
	ctx := t.Context()
	get := func(query string) (int, string, error) {
		t.Helper()
		resp, body, err := pc.get(ctx, "/api/poll", query, 10*time.Second)
		if err != nil {
			return 0, "", err
		}
		return resp.StatusCode, string(body), nil
	}

	// Requests share one connection, and carry the query and the cookie.
	for i := range 3 {
		q := "cursor=c" + strconv.Itoa(i)
		status, body, err := get(q)
		if err != nil || status != http.StatusOK || body != q+" "+sessionCookie("tok") {
			t.Fatalf("get %d = %d %q, %v", i, status, body, err)
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("3 gets used %d connections, want 1", n)
	}

	// A large answer comes chunked; one over the limit is an error.
	if status, body, err := get("size=50000"); err != nil || status != http.StatusOK || len(body) != 50000 {
		t.Errorf("chunked answer: %d, %d bytes, %v", status, len(body), err)
	}
	if _, _, err := get("size=" + strconv.Itoa(pollBodyLimit+1)); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("answer over the limit: err = %v, want one about its size", err)
	}

	// The server closes the idle connection: the next get dials again and
	// succeeds.
	before := srv.conns.Load()
	if _, _, err := get("a=1"); err != nil {
		t.Fatal(err)
	}
	srv.CloseClientConnections()
	if status, body, err := get("a=2"); err != nil || status != http.StatusOK || !strings.HasPrefix(body, "a=2 ") {
		t.Fatalf("get after the server closed the connection = %d %q, %v", status, body, err)
	}
	if n := srv.conns.Load() - before; n != 2 {
		t.Errorf("%d connections dialled, want 2 (one after the error, one after the server closed)", n)
	}

	// Connection: close is obeyed.
	srv.mu.Lock()
	srv.close = true
	srv.mu.Unlock()
	before = srv.conns.Load()
	for range 2 {
		if _, _, err := get("b=1"); err != nil {
			t.Fatal(err)
		}
		if pc.nc != nil {
			t.Errorf("the connection was kept after an answer with Connection: close")
		}
	}
	if n := srv.conns.Load() - before; n != 1 {
		t.Errorf("%d connections dialled for 2 gets after Connection: close, want 1", n)
	}
	srv.mu.Lock()
	srv.close = false
	srv.mu.Unlock()

	// An error status comes back as the answer.
	resp, _, err := pc.get(ctx, "/api/other", "", 10*time.Second)
	if err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET of a missing path: %v, %v; want 404", resp, err)
	}
}

func TestPollConnEnds(t *testing.T) {
	srv := newPollServer(t)
	hold := make(chan struct{})
	defer close(hold)
	srv.mu.Lock()
	srv.hold = hold
	srv.mu.Unlock()
	pc, err := newPollConn(srv.URL+"/base", "tok")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.close()

	// A held GET ends at its timeout, not later.
	_, _, err = pc.get(t.Context(), "/api/poll", "hold", 100*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("held GET past its timeout: err = %v, want a timeout", err)
	}

	// Ending the context ends a held GET.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, _, err := pc.get(ctx, "/api/poll", "hold", time.Minute)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("held GET after cancel: err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancel did not end the held GET")
	}
	if _, _, err := pc.get(ctx, "/api/poll", "", time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("GET with an ended context: err = %v, want context.Canceled", err)
	}
}
