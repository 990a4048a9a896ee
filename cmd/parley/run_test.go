package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/internal/mailer/smtptest"
	"github.com/parley-chat/parley/internal/sqlite"
)

// testServer is a parley started by run() on 127.0.0.1:0.
type testServer struct {
	URL    string
	DB     string
	Mail   *smtptest.Server
	stop   context.CancelFunc
	done   chan error
	stderr *syncBuffer
}

type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

// startServer runs parley with args plus a temporary database and the test
// SMTP server, and waits for its "listening on" line.
func startServer(t testing.TB, args ...string) *testServer {
	t.Helper()
	return startServerWith(t, nil, args...)
}

// startServerWith is startServer with the store that run opens passed
// through wrap (runServer).
func startServerWith(t testing.TB, wrap func(store) store, args ...string) *testServer {
	t.Helper()
	mail := smtptest.Start(t)
	db := filepath.Join(t.TempDir(), "parley.db")
	args = append([]string{"--addr", "127.0.0.1:0", "--db", db, "--smtp", mail.URL(), "--shutdown-timeout", "5s"}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &testServer{DB: db, Mail: mail, stop: cancel, done: make(chan error, 1), stderr: newSyncBuffer()}
	go func() {
		err := runServer(ctx, args, func(string) string { return "" }, pw, s.stderr, wrap)
		pw.CloseWithError(errors.New("run returned"))
		s.done <- err
	}()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "listening on ") {
				lines <- strings.TrimPrefix(sc.Text(), "listening on ")
			}
		}
		close(lines)
	}()
	select {
	case u, ok := <-lines:
		if !ok {
			t.Fatalf("parley exited before listening: %v\n%s", <-s.done, s.stderr)
		}
		s.URL = u
	case <-time.After(15 * time.Second):
		t.Fatalf("parley did not print its address within 15s\n%s", s.stderr)
	}
	// Runs after the shutdown below: what the server logged, to its end.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server stderr:\n%s", s.stderr)
		}
	})
	t.Cleanup(func() { s.shutdown(t) })
	return s
}

// shutdown stops the server as SIGTERM would and returns run's error.
func (s *testServer) shutdown(t testing.TB) error {
	t.Helper()
	s.stop()
	select {
	case err, ok := <-s.done:
		if ok {
			close(s.done)
		}
		return err
	case <-time.After(15 * time.Second):
		t.Fatalf("parley did not stop within 15s\n%s", s.stderr)
		return nil
	}
}

// signIn walks the mail sign-in flow and returns a client holding the
// session cookie.
func signIn(t testing.TB, s *testServer, email, name string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	code := mailCode(t, s, c, email)
	postJSON(t, c, "POST", s.URL+"/api/auth/verify", map[string]string{"email": email, "code": code}, http.StatusOK, nil)
	postJSON(t, c, "PATCH", s.URL+"/api/me", map[string]string{"name": name}, http.StatusOK, nil)
	return c
}

// mailCode asks the server, through c, for a sign-in code for email, and
// returns the code of the mail that comes.
func mailCode(t testing.TB, s *testServer, c *http.Client, email string) string {
	t.Helper()
	postJSON(t, c, "POST", s.URL+"/api/auth/code", map[string]string{"email": email}, http.StatusAccepted, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := s.Mail.WaitFor(ctx, email)
	if err != nil {
		t.Fatalf("no sign-in mail for %s: %v", email, err)
	}
	code := smtptest.ExtractCode(m.Text)
	if code == "" || !strings.Contains(m.HTML, code) {
		t.Fatalf("mail to %s has no code in both parts:\ntext: %s\nhtml: %s", email, m.Text, m.HTML)
	}
	return code
}

func postJSON(t testing.TB, c *http.Client, method, u string, body any, want int, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, u, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d %s; want %d", method, u, resp.StatusCode, data, want)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, u, data, err)
		}
	}
}

func dialWS(t testing.TB, s *testServer, c *http.Client) *websocket.Conn {
	t.Helper()
	u, _ := url.Parse(s.URL)
	d := websocket.Dialer{Jar: c.Jar, HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial("ws://"+u.Host+"/api/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v (response %v)", err, resp)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// readUntil reads frames until one holds an object of type typ.
func readUntil(t testing.TB, ws *websocket.Conn, typ string) map[string]any {
	t.Helper()
	return readUntilBy(t, ws, typ, time.Now().Add(5*time.Second))
}

// readUntilBy is readUntil with a deadline of the caller's.
func readUntilBy(t testing.TB, ws *websocket.Conn, typ string, deadline time.Time) map[string]any {
	t.Helper()
	for {
		ws.SetReadDeadline(deadline)
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for %q: %v", typ, err)
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatalf("frame line %q: %v", line, err)
			}
			if m["type"] == typ {
				return m
			}
		}
	}
}

func TestRunServesChatAndShutsDownGracefully(t *testing.T) {
	s := startServer(t)
	ada := signIn(t, s, "ada@example.com", "Ada")
	grace := signIn(t, s, "grace@example.com", "Grace")
	var room struct {
		Room struct{ ID int64 } `json:"room"`
	}
	postJSON(t, ada, "POST", s.URL+"/api/rooms", map[string]string{"name": "general"}, http.StatusOK, &room)
	postJSON(t, grace, "POST", s.URL+"/api/rooms", map[string]string{"name": "General"}, http.StatusOK, &room)

	wa, wg := dialWS(t, s, ada), dialWS(t, s, grace)
	for _, ws := range []*websocket.Conn{wa, wg} {
		readUntil(t, ws, "hello")
		ws.WriteJSON(map[string]any{"type": "open", "room_id": room.Room.ID})
		readUntil(t, ws, "opened")
	}
	wa.WriteJSON(map[string]any{"type": "send", "room_id": room.Room.ID, "client_id": "a1", "body": "hello Grace"})
	got := readUntil(t, wg, "message")
	msg := got["message"].(map[string]any)
	if msg["body"] != "hello Grace" || msg["sender_name"] != "Ada" {
		t.Errorf("Grace received %v; want Ada's message", msg)
	}
	readUntil(t, wa, "ack")

	if err := s.shutdown(t); err != nil {
		t.Fatalf("run after shutdown = %v; want nil\n%s", err, s.stderr)
	}
	// Open sockets are told the server is restarting.
	for name, ws := range map[string]*websocket.Conn{"ada": wa, "grace": wg} {
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		var err error
		for err == nil {
			_, _, err = ws.ReadMessage()
		}
		if !websocket.IsCloseError(err, websocket.CloseServiceRestart) {
			t.Errorf("%s: socket ended with %v; want close 1012", name, err)
		}
	}
	// The database was closed cleanly: another process may open it, and
	// the history is there.
	db, err := sqlite.Open(context.Background(), s.DB)
	if err != nil {
		t.Fatalf("reopen database after shutdown: %v", err)
	}
	defer db.Close()
	r, err := db.RoomByName(context.Background(), "general")
	if err != nil || r.LastSeq != 3 { // two joins and one message
		t.Errorf("room after restart = %+v, %v; want last_seq 3", r, err)
	}
}

func TestRunServesUIAndHealth(t *testing.T) {
	s := startServer(t)
	for path, want := range map[string]string{"/": "<!doctype html", "/healthz": "ok"} {
		resp, err := http.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(strings.ToLower(string(body)), want) {
			t.Errorf("GET %s = %d %.80q; want 200 containing %q", path, resp.StatusCode, body, want)
		}
	}
	// The log names the SQLite driver the binary was built with.
	if want := `"msg":"sqlite database opened","driver":"` + sqlite.Driver + `"`; !strings.Contains(s.stderr.String(), want) {
		t.Errorf("log lacks %s:\n%s", want, s.stderr)
	}
}

// TestRunSQLiteSynchronousFull: --sqlite-synchronous, in any case, reaches
// the store, and the log says which setting the server runs with.
func TestRunSQLiteSynchronousFull(t *testing.T) {
	s := startServer(t, "--sqlite-synchronous", "FULL")
	if want := `"msg":"sqlite database opened","driver":"` + sqlite.Driver + `","synchronous":"full"`; !strings.Contains(s.stderr.String(), want) {
		t.Errorf("log lacks %s:\n%s", want, s.stderr)
	}
	resp, err := http.Get(s.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz = %d; want 200", resp.StatusCode)
	}
}

func TestRunRefusesSecondProcessOnSameSQLiteFile(t *testing.T) {
	s := startServer(t)
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"--addr", "127.0.0.1:0", "--db", s.DB}, func(string) string { return "" }, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second run on %s = %v; want an error saying the database is in use", s.DB, err)
	}
}

func TestConfig(t *testing.T) {
	env := map[string]string{"PARLEY_ADDR": ":9000", "PARLEY_CHANNELS_COMPAT": "true", "PARLEY_ORIGINS": "https://a.example, https://b.example"}
	getenv := func(k string) string { return env[k] }
	c, err := parseConfig([]string{"--addr", ":9001"}, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":9001" {
		t.Errorf("Addr = %q; want the flag to beat the environment", c.Addr)
	}
	if !c.ChannelsCompat || len(c.Origins) != 2 || c.Origins[1] != "https://b.example" {
		t.Errorf("config from environment = %+v", c)
	}
	if c.DB != "parley.db" || c.MaxMessageLen != 4000 || c.MaxGroupMembers != 200 {
		t.Errorf("defaults: DB=%q MaxMessageLen=%d MaxGroupMembers=%d", c.DB, c.MaxMessageLen, c.MaxGroupMembers)
	}
	if c, err := parseConfig(nil, func(k string) string {
		if k == "PARLEY_MAX_GROUP_MEMBERS" {
			return "500"
		}
		return ""
	}, io.Discard); err != nil || c.MaxGroupMembers != 500 {
		t.Errorf("PARLEY_MAX_GROUP_MEMBERS=500: MaxGroupMembers = %d, %v; want 500", c.MaxGroupMembers, err)
	}

	_, err = parseConfig([]string{"--max-message-len", "0", "--origins", "ftp://x", "--tls-cert", "c.pem", "--max-group-members", "1", "--online-max", "0", "--announce-max", "0"}, func(string) string { return "" }, io.Discard)
	if err == nil {
		t.Fatal("bad flags accepted")
	}
	for _, want := range []string{"--max-message-len", "--origins", "--tls-cert", "--max-group-members", "--online-max", "--announce-max"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s; every problem should be reported at once", err, want)
		}
	}

	var help bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, func(string) string { return "" }, io.Discard, &help); err != nil {
		t.Errorf("--help = %v; want nil", err)
	}
	for _, want := range []string{"-addr", "-db", "-smtp", "-origins", "-channels-compat", "PARLEY_DB"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("--help does not mention %s", want)
		}
	}
}

// TestRunShutsDownWithLongPolls: a long-poll GET held open (up to 25 s)
// is answered when the server shuts down, and the shutdown ends within
// its timeout, as it does with WebSockets open.
func TestRunShutsDownWithLongPolls(t *testing.T) {
	s := startServer(t)
	ada := signIn(t, s, "ada@example.com", "Ada")
	ada.Timeout = 30 * time.Second
	poll := poller(s, ada)
	cursor := firstCursor(t, poll)
	held := make(chan string, 1)
	go func() {
		status, body := poll(cursor) // nothing to give: held
		held <- fmt.Sprintf("%d %.200s", status, body)
	}()
	time.Sleep(300 * time.Millisecond) // setup: let the GET reach the server and wait there
	if err := s.shutdown(t); err != nil {
		t.Errorf("run after shutdown with a long-poll held = %v; want nil\n%s", err, s.stderr)
	}
	select {
	case got := <-held:
		t.Logf("held poll answered: %s", got)
	case <-time.After(10 * time.Second):
		t.Errorf("the held poll was not answered")
	}
}

// TestRunHoldsLongPollPastThirtySeconds: --poll-hold accepts up to 5m, so
// a poll held longer than the HTTP server's usual 30 s read and write
// timeouts must still be answered.
func TestRunHoldsLongPollPastThirtySeconds(t *testing.T) {
	if testing.Short() {
		t.Skip("holds a long-poll for 32s; skipped in -short mode")
	}
	s := startServer(t, "--poll-hold", "32s")
	// A new connection per poll: on a reused one, net/http's client would
	// retry a GET the server dropped unanswered, and hide the fault.
	ada := &http.Client{Jar: signIn(t, s, "ada@example.com", "Ada").Jar, Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	poll := poller(s, ada)
	status, body := poll(firstCursor(t, poll)) // nothing to give: held 32s
	var next struct{ Cursor string }
	if status != http.StatusOK || json.Unmarshal([]byte(body), &next) != nil || next.Cursor == "" {
		t.Errorf("poll held 32s = %d %.200s; want 200 with a cursor", status, body)
	}
}

// TestRunRefusesAddressInUse: an --addr another socket listens on, or a
// --debug-addr, stops the start with an error naming the flag.
func TestRunRefusesAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tt := range []struct {
		flag string
		args []string
	}{
		{"--addr", []string{"--addr", ln.Addr().String()}},
		{"--debug-addr", []string{"--addr", "127.0.0.1:0", "--debug-addr", ln.Addr().String()}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // ends a server that started
		var stdout bytes.Buffer
		err := run(ctx, append(tt.args, "--db", filepath.Join(t.TempDir(), "parley.db")), func(string) string { return "" }, &stdout, io.Discard)
		cancel()
		if err == nil || !strings.HasPrefix(err.Error(), tt.flag+":") {
			t.Errorf("run %q with %s in use = %v (printed %q); want an error naming %s", tt.args, ln.Addr(), err, stdout.String(), tt.flag)
		}
	}
}

// TestRunRefusesMissingTLSFiles: a certificate that cannot be loaded stops
// the start before the server says it is listening.
func TestRunRefusesMissingTLSFiles(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "parley.db"),
		"--tls-cert", filepath.Join(dir, "missing.pem"), "--tls-key", filepath.Join(dir, "missing.key")},
		func(string) string { return "" }, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "--tls-cert") {
		t.Errorf("run with missing TLS files = %v; want an error naming --tls-cert", err)
	}
	if strings.Contains(stdout.String(), "listening on") {
		t.Errorf("run with missing TLS files printed %q; want no listening line", stdout.String())
	}
}

// TestRunServesTLS: with --tls-cert and --tls-key the server speaks HTTPS.
func TestRunServesTLS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(s.URL, "https://") {
		t.Fatalf("server URL %q; want https", s.URL)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	resp, err := c.Get(s.URL + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz over TLS = %d; want 200", resp.StatusCode)
	}
	// Reached over TLS, the server has the browser come back over TLS only.
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Errorf("GET /healthz over TLS: Strict-Transport-Security = %q; want max-age=31536000", got)
	}
	// The page may open its WebSocket to its own wss: origin, no other.
	if got, want := resp.Header.Get("Content-Security-Policy"), "connect-src 'self' wss://"+strings.TrimPrefix(s.URL, "https://")+";"; !strings.Contains(got, want) {
		t.Errorf("GET /healthz over TLS: Content-Security-Policy = %q; want it to hold %q", got, want)
	}

	// HTTP/2 bounds a header by its own count (net/http's limit, as the
	// header list size it announces): a header over the server's bound
	// still reaches the handler, answered 431 headers_too_large.
	req, _ := http.NewRequest("GET", s.URL+"/api/me", nil)
	req.Header.Set("X-Big", strings.Repeat("x", 100<<10))
	resp, err = c.Do(req)
	if err != nil {
		t.Fatalf("GET /api/me over TLS with a 100 KiB header: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(string(b), `"code":"headers_too_large"`) {
		t.Errorf("GET /api/me over TLS with a 100 KiB header = %s %d %.200q; want HTTP/2, 431 headers_too_large", resp.Proto, resp.StatusCode, b)
	}

	// Signed in over TLS, without --behind-proxy, the session cookie is
	// Secure (it never goes out over plain HTTP) and __Host- prefixed (no
	// other host of the site can set it).
	const email = "ada@example.com"
	body, _ := json.Marshal(map[string]string{"email": email, "code": mailCode(t, s, c, email)})
	resp, err = c.Post(s.URL+"/api/auth/verify", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST /api/auth/verify over TLS: %v", err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "__Host-parley_session" {
			session = ck
		}
	}
	if resp.StatusCode != http.StatusOK || session == nil || !session.Secure || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode ||
		session.Path != "/" || session.Domain != "" {
		t.Errorf("verify over TLS = %d, Set-Cookie %q; want 200 and a Secure, HttpOnly, SameSite=Lax __Host-parley_session for Path=/", resp.StatusCode, resp.Header.Values("Set-Cookie"))
	}
}

// forwardProto is a transport that sends every request with proto as its
// X-Forwarded-Proto, as a proxy in front of the server would.
type forwardProto struct{ proto string }

func (f forwardProto) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("X-Forwarded-Proto", f.proto)
	return http.DefaultTransport.RoundTrip(req)
}

// TestRunBehindPlainHTTPProxy: --behind-proxy with a proxy that serves
// plain HTTP and says so (X-Forwarded-Proto: http): signing in sets the
// plain-HTTP session cookie, not Secure (a browser on an http:// page
// other than localhost drops a Secure one, and stays signed out), which
// signs in, and the browser is not told to come back over TLS. A proxy
// that says https, or nothing, is TLS.
func TestRunBehindPlainHTTPProxy(t *testing.T) {
	s := startServer(t, "--behind-proxy")
	c := &http.Client{Timeout: 10 * time.Second, Transport: forwardProto{"http"}}
	const email = "ada@example.com"
	body, _ := json.Marshal(map[string]string{"email": email, "code": mailCode(t, s, c, email)})
	resp, err := c.Post(s.URL+"/api/auth/verify", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST /api/auth/verify: %v", err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if resp.StatusCode != http.StatusOK || len(cookies) != 1 || cookies[0].Name != "parley_session" || cookies[0].Secure {
		t.Fatalf("verify behind a plain-HTTP proxy = %d, Set-Cookie %q; want 200 and parley_session, not Secure", resp.StatusCode, resp.Header.Values("Set-Cookie"))
	}
	req, _ := http.NewRequest("GET", s.URL+"/api/me", nil)
	req.AddCookie(cookies[0])
	if resp, err = c.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /api/me with the cookie verify set = %d; want 200", resp.StatusCode)
	}

	for proto, want := range map[string]string{"http": "", "https": "max-age=31536000", "": "max-age=31536000"} {
		req, _ := http.NewRequest("GET", s.URL+"/healthz", nil)
		if proto != "" {
			req.Header.Set("X-Forwarded-Proto", proto)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Strict-Transport-Security"); got != want {
			t.Errorf("GET /healthz, X-Forwarded-Proto %q: Strict-Transport-Security = %q; want %q", proto, got, want)
		}
	}
}

// TestRunDevNeedsUIOnDisk: --dev serves ui/dist from the working
// directory; started where there is none (here, cmd/parley), it says so
// instead of answering every page with 404, before it makes the database
// or listens.
func TestRunDevNeedsUIOnDisk(t *testing.T) {
	if _, err := os.Stat("ui/dist"); err == nil {
		t.Skip("the test's directory has a ui/dist")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // ends a server that started
	defer cancel()
	var stdout bytes.Buffer
	dir := t.TempDir()
	err := run(ctx, []string{"--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "parley.db"), "--dev"},
		func(string) string { return "" }, &stdout, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--dev") {
		t.Errorf("run --dev without ui/dist = %v (printed %q); want an error naming --dev", err, stdout.String())
	}
	if des, _ := os.ReadDir(dir); len(des) > 0 {
		t.Errorf("run --dev without ui/dist made %s; want nothing made", des[0].Name())
	}
}

// poller returns a long-poll GET of s as c: its status and body, or 0
// and the error.
func poller(s *testServer, c *http.Client) func(cursor string) (int, string) {
	return func(cursor string) (int, string) {
		resp, err := c.Get(s.URL + "/api/poll?cursor=" + url.QueryEscape(cursor))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
}

// firstCursor opens a long-poll channel with poll and returns its cursor.
func firstCursor(t *testing.T, poll func(cursor string) (int, string)) string {
	t.Helper()
	status, body := poll("")
	var first struct{ Cursor string }
	if status != http.StatusOK || json.Unmarshal([]byte(body), &first) != nil || first.Cursor == "" {
		t.Fatalf("first poll = %d %s; want 200 with a cursor", status, body)
	}
	return first.Cursor
}
