package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/chat/chattest"
	"github.com/parley-chat/parley/internal/hub"
	"github.com/parley-chat/parley/internal/inmem"
	"github.com/parley-chat/parley/internal/mailer"
	"github.com/parley-chat/parley/internal/mailer/smtptest"
	"github.com/parley-chat/parley/internal/postgres"
	"github.com/parley-chat/parley/internal/redis"
	"github.com/parley-chat/parley/internal/sqlite"
	"github.com/parley-chat/parley/internal/web"
)

// waitTimeout bounds every wait of these tests.
const waitTimeout = 5 * time.Second

// tbWriter sends the server's log to the test log until the test ends.
type tbWriter struct {
	mu   sync.Mutex
	tb   testing.TB
	done bool
}

func (w *tbWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.tb.Logf("server: %s", bytes.TrimRight(p, "\n"))
	}
	return len(p), nil
}

// testConfig is what a test may change of the stack newTestServer builds.
type testConfig struct {
	web     web.Config
	chat    chat.Config
	sndbuf  int    // when positive, the socket send buffer of every accepted connection
	mailURL string // when set, the mailer's relay instead of the smtptest server
	tls     bool   // serve HTTPS (httptest's certificate) instead of plain HTTP
	dbPath  string // when set, the SQLite file instead of a new one
	// forwardedProto, when set, are the X-Forwarded-Proto lines every
	// request reaches the handler with, as a proxy in front sets them.
	forwardedProto []string
	// wrapStore and wrapBroker, when set, wrap the store and the broker
	// that the service and the hub get, to step in between.
	wrapStore  func(chat.Store) chat.Store
	wrapBroker func(chat.Broker) chat.Broker
	// node, when set, makes the server one node of a cluster: PostgreSQL
	// and Redis shared with the other nodes of the same node.
	node *clusterNode
}

// clusterNode is where a node of a test cluster keeps its shared state:
// a PostgreSQL schema and a Redis key prefix, and its own node id.
type clusterNode struct {
	postgres string // URL
	redis    string // URL
	prefix   string // Redis key prefix
	id       string // redis.Options.NodeID
}

type option func(*testConfig)

func withWeb(f func(*web.Config)) option   { return func(c *testConfig) { f(&c.web) } }
func withChat(f func(*chat.Config)) option { return func(c *testConfig) { f(&c.chat) } }

// withTLS serves the stack over HTTPS; the clients of signIn and do trust
// its certificate.
func withTLS() option { return func(c *testConfig) { c.tls = true } }

// withForwardedProto has every request reach the handler with lines as
// its X-Forwarded-Proto header, whatever the client sent: a proxy's, or,
// without BehindProxy, a client's.
func withForwardedProto(lines ...string) option {
	return func(c *testConfig) { c.forwardedProto = lines }
}

// behindProxy starts the server with BehindProxy and has every request
// reach it with lines as its X-Forwarded-Proto header (none: without it).
func behindProxy(lines ...string) option {
	return func(c *testConfig) {
		c.web.BehindProxy = true
		c.forwardedProto = lines
	}
}

// withDB makes the server use the SQLite file at path, so that a test can
// stop a server and start another on the same database.
func withDB(path string) option { return func(c *testConfig) { c.dbPath = path } }

// onCluster makes the server a node of the cluster whose shared state is
// pg (a PostgreSQL URL) and Redis at url under prefix, named id.
func onCluster(pg, url, prefix, id string) option {
	return func(c *testConfig) { c.node = &clusterNode{postgres: pg, redis: url, prefix: prefix, id: id} }
}

// withStore and withBroker wrap the stack's store and broker.
func withStore(f func(chat.Store) chat.Store) option { return func(c *testConfig) { c.wrapStore = f } }
func withBroker(f func(chat.Broker) chat.Broker) option {
	return func(c *testConfig) { c.wrapBroker = f }
}

// testServer is Parley's whole stack (SQLite in a temporary directory,
// inmem broker, presence and limiter, SMTP to an smtptest server) behind an
// httptest.Server.
type testServer struct {
	*httptest.Server
	mail  *smtptest.Server
	clock *chattest.Clock
	svc   *chat.Service
	hub   *hub.Hub
	stop  func() // stops the server and closes its database; idempotent
}

// newTestServer starts the stack and stops it when the test ends.
func newTestServer(tb testing.TB, opts ...option) *testServer {
	tb.Helper()
	logw := &tbWriter{tb: tb}
	tb.Cleanup(func() {
		logw.mu.Lock()
		defer logw.mu.Unlock()
		logw.done = true
	})
	logger := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))

	var cfg testConfig
	for _, opt := range opts {
		opt(&cfg)
	}
	clk := chattest.NewClock(time.Now().UTC())
	if cfg.chat.Now == nil {
		cfg.chat.Now = clk.Now
	}
	smtp := smtptest.Start(tb)
	if cfg.mailURL == "" {
		cfg.mailURL = smtp.URL()
	}
	ml, err := mailer.NewSMTP(cfg.mailURL, "Parley <parley@example.com>", logger, mailer.WithTimeout(waitTimeout))
	if err != nil {
		tb.Fatalf("mailer.NewSMTP: %v", err)
	}
	var (
		db interface {
			chat.Store
			Close() error
		}
		broker   interface{ Close() error }
		br       chat.Broker
		presence chat.Presence
		limiter  chat.Limiter
	)
	if n := cfg.node; n != nil {
		pg, err := postgres.Open(context.Background(), n.postgres)
		if err != nil {
			tb.Fatalf("postgres.Open: %v", err)
		}
		rc, err := redis.New(context.Background(), n.redis, redis.Options{Prefix: n.prefix, NodeID: n.id, Logger: logger})
		if err != nil {
			tb.Fatalf("redis.New: %v", err)
		}
		db, broker, br, presence, limiter = pg, rc, rc.Broker(), rc.Presence(), rc.Limiter()
		cfg.web.Ended = rc.Ended()
	} else {
		if cfg.dbPath == "" {
			cfg.dbPath = filepath.Join(tb.TempDir(), "parley.db")
		}
		lite, err := sqlite.Open(context.Background(), cfg.dbPath)
		if err != nil {
			tb.Fatalf("sqlite.Open: %v", err)
		}
		b := inmem.NewBroker()
		db, broker, br, presence, limiter = lite, b, b, inmem.NewPresence(), inmem.NewLimiter(cfg.chat.Now)
	}
	var store chat.Store = db
	if cfg.wrapStore != nil {
		store = cfg.wrapStore(db)
	}
	if cfg.wrapBroker != nil {
		br = cfg.wrapBroker(br)
	}
	svc := chat.NewService(cfg.chat, chat.Deps{
		Store:    store,
		Broker:   br,
		Presence: presence,
		Limiter:  limiter,
		Mailer:   ml,
		Logger:   logger,
	})
	h := hub.New(br, logger) // NewHandler gives it the store
	ui := fstest.MapFS{"index.html": {Data: []byte("<!doctype html><title>Parley</title>")}}
	handler := web.NewHandler(logger, cfg.web, svc, h, ui)
	if lines := cfg.forwardedProto; lines != nil {
		next := handler
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Header["X-Forwarded-Proto"] = lines
			next.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewUnstartedServer(handler)
	if cfg.sndbuf > 0 {
		srv.Listener = &sndbufListener{Listener: srv.Listener, size: cfg.sndbuf}
	}
	if cfg.tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			// The hub closes the WebSockets, which httptest does not track.
			ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
			defer cancel()
			if err := h.Close(ctx); err != nil {
				tb.Errorf("close hub: %v", err)
			}
			srv.Close()
			broker.Close()
			if err := db.Close(); err != nil {
				tb.Errorf("close database: %v", err)
			}
		})
	}
	tb.Cleanup(stop)
	return &testServer{Server: srv, mail: smtp, clock: clk, svc: svc, hub: h, stop: stop}
}

// sndbufListener shrinks the send buffer of the connections it accepts, so
// that a client that does not read blocks the server's writes soon.
type sndbufListener struct {
	net.Listener
	size int
}

func (l *sndbufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(l.size)
	}
	return c, err
}

// client is a signed-in user's HTTP client, its cookie jar holding the
// session.
type client struct {
	*http.Client
	ID    int64
	Name  string
	Email string
	// NameVersion is the version of Name the sign-in's rename gave
	// (name_version).
	NameVersion int64
}

func newHTTPClient(tb testing.TB) *http.Client {
	tb.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 2 * waitTimeout}
}

// newClient is newHTTPClient for ts: over TLS, it trusts ts's certificate.
func (ts *testServer) newClient(tb testing.TB) *http.Client {
	tb.Helper()
	hc := newHTTPClient(tb)
	if ts.TLS != nil {
		hc.Transport = ts.Client().Transport
	}
	return hc
}

// response is an HTTP answer with its body read.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(r.Body)) }

// newRequest returns a request to the server; body is sent as is when it
// is a string, as JSON otherwise, and with Content-Type application/json.
func (ts *testServer) newRequest(tb testing.TB, method, path string, body any) *http.Request {
	tb.Helper()
	var rd *bytes.Reader
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		data, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// send does req with hc (a client without cookies when nil).
func send(tb testing.TB, hc *http.Client, req *http.Request) response {
	tb.Helper()
	if hc == nil {
		hc = &http.Client{Timeout: 2 * waitTimeout}
	}
	resp, err := hc.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		tb.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: buf.Bytes()}
}

// anonClient is a client of ts without cookies; over TLS, it trusts ts's
// certificate.
func (ts *testServer) anonClient() *http.Client {
	hc := &http.Client{Timeout: 2 * waitTimeout}
	if ts.TLS != nil {
		hc.Transport = ts.Client().Transport
	}
	return hc
}

// do sends a request with c's cookies (none when c is nil).
func (ts *testServer) do(tb testing.TB, c *client, method, path string, body any) response {
	tb.Helper()
	hc := ts.anonClient()
	if c != nil {
		hc = c.Client
	}
	return send(tb, hc, ts.newRequest(tb, method, path, body))
}

// mustDo is do that wants status and decodes the body into out (if not nil).
func (ts *testServer) mustDo(tb testing.TB, c *client, method, path string, body any, status int, out any) {
	tb.Helper()
	r := ts.do(tb, c, method, path, body)
	if r.Status != status {
		tb.Fatalf("%s %s = %s; want status %d", method, path, r, status)
	}
	if out != nil {
		if err := decodeStrict(r.Body, out); err != nil {
			tb.Fatalf("%s %s: decode %s: %v", method, path, r.Body, err)
		}
	}
}

// decodeStrict decodes data into v, refusing fields v does not have: the
// wire types hold exactly what docs/protocol.md documents.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// errorBody is the REST error answer.
type errorBody struct {
	Error wireError `json:"error"`
}

// wantError checks that r is an error answer with status and code.
func wantError(tb testing.TB, what string, r response, status int, code string) wireError {
	tb.Helper()
	var eb errorBody
	if err := decodeStrict(r.Body, &eb); err != nil {
		tb.Fatalf("%s = %s; want a JSON error body: %v", what, r, err)
	}
	if r.Status != status || eb.Error.Code != code {
		tb.Fatalf("%s = %s; want %d %s", what, r, status, code)
	}
	if eb.Error.Message == "" {
		tb.Errorf("%s = %s; want an error message", what, r)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Errorf("%s: Content-Type = %q; want application/json", what, ct)
	}
	return eb.Error
}

// requestCode asks for a login code for email and returns the code mailed.
func (ts *testServer) requestCode(tb testing.TB, email string) string {
	tb.Helper()
	ts.mustDo(tb, nil, "POST", "/api/auth/code", map[string]string{"email": email}, http.StatusAccepted, nil)
	return ts.readCode(tb, email)
}

// readCode waits for the next mail to email and returns its code.
func (ts *testServer) readCode(tb testing.TB, email string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	m, err := ts.mail.WaitFor(ctx, email)
	if err != nil {
		tb.Fatalf("no sign-in mail: %v", err)
	}
	code := smtptest.ExtractCode(m.Text)
	if code == "" {
		tb.Fatalf("no code in the mail to %s:\n%s", email, m.Text)
	}
	return code
}

type verifyAnswer struct {
	User    wireUser `json:"user"`
	NewUser bool     `json:"new_user"`
}

// signIn signs email in the way a browser does (code by mail, verify, set
// the name) and returns a client holding the session cookie.
func (ts *testServer) signIn(tb testing.TB, email, name string) *client {
	tb.Helper()
	code := ts.requestCode(tb, email)
	c := &client{Client: ts.newClient(tb)}
	var v verifyAnswer
	ts.mustDo(tb, c, "POST", "/api/auth/verify", map[string]string{"email": email, "code": code}, http.StatusOK, &v)
	var me struct {
		User wireUser `json:"user"`
	}
	ts.mustDo(tb, c, "PATCH", "/api/me", map[string]string{"name": name}, http.StatusOK, &me)
	if me.User.Name != name || me.User.Email != email || me.User.ID != v.User.ID {
		tb.Fatalf("PATCH /api/me = %+v; want %s <%s> with id %d", me.User, name, email, v.User.ID)
	}
	c.ID, c.Name, c.Email, c.NameVersion = me.User.ID, me.User.Name, me.User.Email, me.User.NameVersion
	return c
}

// enterRoom enters room name as c.
func (ts *testServer) enterRoom(tb testing.TB, c *client, name string) wireRoom {
	tb.Helper()
	var out struct {
		Room wireRoom `json:"room"`
	}
	ts.mustDo(tb, c, "POST", "/api/rooms", map[string]string{"name": name}, http.StatusOK, &out)
	return out.Room
}

// post sends a message over REST.
func (ts *testServer) post(tb testing.TB, c *client, roomID int64, clientID, body string) wireMessage {
	tb.Helper()
	var out struct {
		Message wireMessage `json:"message"`
	}
	ts.mustDo(tb, c, "POST", roomPath(roomID, "/messages"), map[string]string{"client_id": clientID, "body": body}, http.StatusOK, &out)
	return out.Message
}

type historyPage struct {
	Messages []wireMessage `json:"messages"`
	HasMore  bool          `json:"has_more"`
}

// history reads a page of room roomID's history; query is "" or like
// "before=10&limit=5".
func (ts *testServer) history(tb testing.TB, c *client, roomID int64, query string) historyPage {
	tb.Helper()
	var p historyPage
	path := roomPath(roomID, "/messages")
	if query != "" {
		path += "?" + query
	}
	ts.mustDo(tb, c, "GET", path, nil, http.StatusOK, &p)
	return p
}

// allMessages reads room roomID's whole history, paging forward.
func (ts *testServer) allMessages(tb testing.TB, c *client, roomID int64) []wireMessage {
	tb.Helper()
	var all []wireMessage
	for after := int64(0); ; {
		p := ts.history(tb, c, roomID, "after="+strconv.FormatInt(after, 10))
		all = append(all, p.Messages...)
		if !p.HasMore {
			return all
		}
		if len(p.Messages) == 0 {
			tb.Fatalf("history after %d: empty page with has_more", after)
		}
		after = p.Messages[len(p.Messages)-1].Seq
	}
}

func roomPath(id int64, rest string) string {
	return "/api/rooms/" + strconv.FormatInt(id, 10) + rest
}

// Wire types: what docs/protocol.md promises, independent of the Go types
// the server encodes.

type wireUser struct {
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	Email       string `json:"email,omitempty"`
	NameVersion int64  `json:"name_version"`
}

type wireRoom struct {
	ID           int64     `json:"id"`
	Name         string    `json:"name"`
	CreatedAt    time.Time `json:"created_at"`
	LastSeq      int64     `json:"last_seq"`
	LastActiveAt time.Time `json:"last_active_at"`
	Members      int       `json:"members"`
	Recent       int       `json:"recent"`
	// Only in the opened frame of a conversation that is not a room:
	Kind        string       `json:"kind"`
	Peer        *wireUser    `json:"peer"`
	ReadSeq     int64        `json:"read_seq"`
	Unread      int64        `json:"unread"`
	LastMessage *wireMessage `json:"last_message"`
}

type wireMessage struct {
	RoomID     int64     `json:"room_id"`
	Seq        int64     `json:"seq"`
	Kind       string    `json:"kind"`
	SenderID   int64     `json:"sender_id"`
	SenderName string    `json:"sender_name"`
	ClientID   string    `json:"client_id"`
	Body       string    `json:"body"`
	TargetID   int64     `json:"target_id"`
	TargetName string    `json:"target_name"`
	CreatedAt  time.Time `json:"created_at"`
}

type wireError struct {
	Code         string `json:"code"`
	Message      string `json:"message"`
	Field        string `json:"field"`
	RetryAfterMS int64  `json:"retry_after_ms"`
}

func seqs(ms []wireMessage) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

// seqRange returns from, from+1, ..., to.
func seqRange(from, to int64) []int64 {
	out := []int64{}
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}
