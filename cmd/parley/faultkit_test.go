package main

// The fault kit: real parley processes on PostgreSQL and Redis, a TCP proxy
// that can cut the database away, a private redis-server that can be
// restarted, and a WebSocket client that follows docs/protocol.md "Staying
// in sync" (the rules the web UI follows).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/parley-chat/parley/internal/testenv"
)

// nodeEnv, when set, makes the test binary a parley server: the fault tests
// start nodes by running their own executable with it.
const nodeEnv = "PARLEY_FAULT_NODE"

func TestMain(m *testing.M) {
	if os.Getenv(nodeEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// skipFaultIfShort skips a fault test in -short mode.
func skipFaultIfShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("fault tests start several servers; skipped in -short mode")
	}
}

// ---- services ----

// freePort returns a loopback port nobody listens on now.
func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// redisServer is a private redis-server on a loopback port, which the test
// may stop and start again on the same port.
type redisServer struct {
	tb   testing.TB
	exe  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
	log  *syncBuffer
}

// startRedisServer starts a private redis-server, skipping the test when
// there is none in PATH unless PARLEY_TEST_REDIS is set (then it fails).
func startRedisServer(tb testing.TB) *redisServer {
	tb.Helper()
	exe, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("PARLEY_TEST_REDIS") != "" {
			tb.Fatalf("PARLEY_TEST_REDIS is set but redis-server is not in PATH: the Redis restart test needs a private redis-server")
		}
		tb.Skipf("Redis restart test skipped: no redis-server in PATH (%v)", err)
	}
	r := &redisServer{tb: tb, exe: exe, port: freePort(tb), log: newSyncBuffer()}
	r.start()
	tb.Cleanup(r.stop)
	return r
}

func (r *redisServer) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d", r.port) }

func (r *redisServer) start() {
	r.tb.Helper()
	r.cmd = exec.Command(r.exe, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		r.tb.Fatalf("start redis-server: %v", err)
	}
	done := make(chan struct{})
	r.done = done
	cmd := r.cmd
	go func() { cmd.Wait(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", r.port), time.Second); err == nil {
			c.SetDeadline(time.Now().Add(time.Second))
			_, err = c.Write([]byte("PING\r\n"))
			buf := make([]byte, 7)
			if err == nil {
				_, err = io.ReadFull(c, buf)
			}
			c.Close()
			if err == nil && string(buf) == "+PONG\r\n" {
				return
			}
		}
		select {
		case <-done:
			r.tb.Fatalf("redis-server exited:\n%s", r.log)
		case <-time.After(50 * time.Millisecond):
		}
	}
	r.tb.Fatalf("redis-server did not answer within 10s:\n%s", r.log)
}

// stop kills the server and waits for it to exit.
func (r *redisServer) stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// ---- nodes ----

// node is one parley server process.
type node struct {
	id     string
	args   []string
	mu     sync.Mutex // guards addr, read by clients
	addr   string     // host:port, kept across restarts
	stderr *syncBuffer
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
}

func (n *node) URL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return "http://" + n.addr
}

// faultEnv is a cluster under test: the nodes, their users and the
// conversations the users share.
type faultEnv struct {
	t     *testing.T
	db    string // the nodes' database URL
	nodes []*node
	users []*fuser
	room  int64
	group int64
	dm    int64 // direct conversation of users 0 and 1
}

type fuser struct {
	id    int64
	token string
	convs []int64
}

// nodeEnviron is the environment of a node: this one without PARLEY_*
// variables, which parley reads as flag defaults.
func nodeEnviron() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PARLEY_") {
			env = append(env, kv)
		}
	}
	return append(env, nodeEnv+"=1")
}

// startNode starts parley with args on n.addr (127.0.0.1:0 the first time)
// and waits for its "listening on" line.
func (e *faultEnv) startNode(n *node) {
	t := e.t
	t.Helper()
	n.mu.Lock()
	args := append([]string{"--addr", n.addr}, n.args...)
	n.mu.Unlock()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	cmd := exec.Command(exe, args...)
	cmd.Env = nodeEnviron()
	cmd.Stdout, cmd.Stderr = pw, n.stderr
	fmt.Fprintf(n.stderr, "=== %s start %s\n", time.Now().Format("15:04:05.000"), n.id)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node %s: %v", n.id, err)
	}
	done := make(chan struct{})
	n.cmd, n.done = cmd, done
	go func() {
		err := cmd.Wait()
		n.err = err
		pw.Close()
		close(done)
	}()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on http://"); ok {
				lines <- a
			}
		}
		close(lines)
	}()
	select {
	case a, ok := <-lines:
		if !ok {
			<-done
			t.Fatalf("node %s exited before listening: %v\n%s", n.id, n.err, n.stderr)
		}
		n.mu.Lock()
		n.addr = a
		n.mu.Unlock()
	case <-time.After(30 * time.Second):
		t.Fatalf("node %s did not print its address within 30s\n%s", n.id, n.stderr)
	}
}

// signal sends sig to node n and waits for it to exit.
func (e *faultEnv) signal(n *node, sig os.Signal) error {
	e.t.Helper()
	fmt.Fprintf(n.stderr, "=== %s signal %v\n", time.Now().Format("15:04:05.000"), sig)
	n.cmd.Process.Signal(sig)
	select {
	case <-n.done:
	case <-time.After(20 * time.Second):
		n.cmd.Process.Kill()
		<-n.done
		e.t.Errorf("node %s did not exit within 20s of %v", n.id, sig)
	}
	return n.err
}

type envOptions struct {
	nodes  int
	users  int
	broker string // Redis URL; "" for the shared test Redis
	prefix string
	viaDB  func(dbURL string) string // rewrites the nodes' database URL (a proxy)
}

// newFaultEnv starts a cluster in a fresh schema and prefix, creates the
// users, a room and a group of all of them and a direct chat of users 0
// and 1.
func newFaultEnv(t *testing.T, o envOptions) *faultEnv {
	t.Helper()
	skipFaultIfShort(t)
	db := testenv.PostgresSchema(t)
	if o.broker == "" {
		o.broker, o.prefix, _ = testenv.Redis(t)
	}
	if o.prefix == "" {
		o.prefix = "parleyfault:" + testenv.RandHex(6) + ":"
	}
	e := &faultEnv{t: t, db: db}

	// Users and sessions, straight into the store (this also migrates).
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, []string{"admin", "sessions", "--db", db, "--count", strconv.Itoa(o.users), "--prefix", "fault", "--domain", "fault.invalid"}, func(string) string { return "" }, &out, &errb); err != nil {
		t.Fatalf("admin sessions: %v\n%s", err, errb.String())
	}
	for line := range strings.Lines(out.String()) {
		f := strings.Split(strings.TrimSpace(line), "\t")
		if len(f) != 3 {
			t.Fatalf("admin sessions printed %q", line)
		}
		id, _ := strconv.ParseInt(f[0], 10, 64)
		e.users = append(e.users, &fuser{id: id, token: f[2]})
	}

	nodeDB := db
	if o.viaDB != nil {
		nodeDB = o.viaDB(db)
	}
	t.Cleanup(func() {
		for _, n := range e.nodes {
			if n.cmd != nil {
				n.cmd.Process.Kill()
				<-n.done
			}
		}
		for _, n := range e.nodes {
			if strings.Contains(n.stderr.String(), "WARNING: DATA RACE") {
				t.Errorf("node %s: the race detector found a data race", n.id)
			}
		}
		// PARLEY_TEST_FAULT_LOGS=1 shows the nodes' logs even when all is well.
		if t.Failed() || os.Getenv("PARLEY_TEST_FAULT_LOGS") != "" {
			for _, n := range e.nodes {
				s := n.stderr.String()
				if len(s) > 30000 {
					s = "…" + s[len(s)-30000:]
				}
				t.Logf("node %s stderr:\n%s", n.id, s)
			}
		}
	})
	for i := range o.nodes {
		n := &node{
			id:     fmt.Sprintf("n%d", i),
			addr:   "127.0.0.1:0",
			stderr: newSyncBuffer(),
			args: []string{"--db", nodeDB, "--broker", o.broker, "--redis-prefix", o.prefix, "--node-id", fmt.Sprintf("n%d", i),
				"--send-rate", "1000", "--send-burst", "1000", "--shutdown-timeout", "5s"},
		}
		e.nodes = append(e.nodes, n)
	}
	var wg sync.WaitGroup
	for _, n := range e.nodes {
		wg.Go(func() { e.startNode(n) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	e.setup()
	return e
}

// api performs one REST request as u against the first live node.
func (e *faultEnv) api(u *fuser, method, path string, body any, want int, out any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	base := e.nodes[0].URL()
	for _, n := range e.nodes {
		if n.cmd != nil && !exited(n) {
			base = n.URL()
			break
		}
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	req.AddCookie(&http.Cookie{Name: "parley_session", Value: u.token})
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		e.t.Fatalf("%s %s = %d %s; want %d", method, path, resp.StatusCode, data, want)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
}

func exited(n *node) bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

func (e *faultEnv) setup() {
	e.t.Helper()
	var room struct {
		Room struct{ ID int64 } `json:"room"`
	}
	for _, u := range e.users {
		e.api(u, "POST", "/api/rooms", map[string]string{"name": "fault"}, 200, &room)
	}
	e.room = room.Room.ID
	var g struct {
		Group struct{ ID int64 } `json:"group"`
	}
	owner := e.users[0]
	e.api(owner, "POST", "/api/groups", map[string]any{"name": "fault-group"}, 201, &g)
	e.group = g.Group.ID
	for _, u := range e.users[1:] {
		e.api(owner, "POST", fmt.Sprintf("/api/groups/%d/members", e.group), map[string]any{"user_id": u.id}, 200, nil)
	}
	a, b := e.users[0], e.users[1]
	e.api(a, "POST", "/api/contacts", map[string]any{"user_id": b.id}, 200, nil)
	e.api(b, "POST", fmt.Sprintf("/api/contacts/%d/accept", a.id), nil, 200, nil)
	var dm struct {
		Conversation struct{ ID int64 } `json:"conversation"`
	}
	e.api(a, "POST", fmt.Sprintf("/api/direct/%d/messages", b.id), map[string]string{"client_id": "setup", "body": "hello"}, 200, &dm)
	e.dm = dm.Conversation.ID
	for i, u := range e.users {
		u.convs = []int64{e.room, e.group}
		if i < 2 {
			u.convs = append(u.convs, e.dm)
		}
	}
}

// urls lists the nodes' base URLs, in node order.
func (e *faultEnv) urls() []string {
	var us []string
	for _, n := range e.nodes {
		us = append(us, n.URL())
	}
	return us
}

// history fetches conversation conv's whole stored history as u.
func (e *faultEnv) history(u *fuser, conv int64) []fmsg {
	e.t.Helper()
	var all []fmsg
	for range 1000 {
		var page struct {
			Messages []fmsg `json:"messages"`
			HasMore  bool   `json:"has_more"`
		}
		e.api(u, "GET", fmt.Sprintf("/api/conversations/%d/messages?after=%d&limit=100", conv, int64(len(all))), nil, 200, &page)
		all = append(all, page.Messages...)
		if !page.HasMore {
			break
		}
	}
	return all
}

// ---- client ----

type fmsg struct {
	RoomID   int64  `json:"room_id"`
	Seq      int64  `json:"seq"`
	Kind     string `json:"kind"`
	SenderID int64  `json:"sender_id"`
	ClientID string `json:"client_id"`
	Body     string `json:"body"`
}

type fframe struct {
	Type         string          `json:"type"`
	Ref          string          `json:"ref"`
	RoomID       int64           `json:"room_id"`
	ClientID     string          `json:"client_id"`
	Message      json.RawMessage `json:"message"`
	Messages     []fmsg          `json:"messages"`
	HasMore      bool            `json:"has_more"`
	Code         string          `json:"code"`
	RetryAfterMS int64           `json:"retry_after_ms"`
	Room         *struct {
		LastSeq int64 `json:"last_seq"`
	} `json:"room"`
}

// convState is what a client knows of one conversation.
type convState struct {
	last     int64 // the last seq shown; all before it were shown
	maxSeen  int64
	got      []fmsg
	gotAt    []time.Time
	opened   bool
	openAt   time.Time // earliest next open
	syncAt   time.Time // earliest next sync
	baseline int64     // last_seq of the latest "opened"
}

// pending is a send not acknowledged yet, or acknowledged.
type pending struct {
	room     int64
	cid      string
	body     string
	gen      int // connection it was last sent on
	sentAt   time.Time
	retryAt  time.Time
	attempts int
	acked    bool
	seq      int64
	ackedAt  time.Time
}

// fclient is one user's connection that reconnects, resyncs and retries
// like the web UI: it never gives up on a send.
type fclient struct {
	name  string
	user  *fuser
	urls  func() []string
	pref  int
	dialT time.Duration

	mu        sync.Mutex
	ws        *websocket.Conn
	gen       int
	node      int
	convs     map[int64]*convState
	queue     []*pending // serial outbox: queue[0] is in flight
	byCID     map[string]*pending
	downAt    time.Time // when the last connection ended, until resynced
	reconnect []time.Duration
	resync    []time.Duration
	hellos    int
	errCodes  map[string]int
	errTimes  []time.Time
	problems  []string
	dupFrames int
	acks      map[string][]int64 // every ack received, by client_id

	stop chan struct{}
	wg   sync.WaitGroup
}

func newClient(name string, u *fuser, urls func() []string, pref int) *fclient {
	c := &fclient{
		name: name, user: u, urls: urls, pref: pref, dialT: 3 * time.Second,
		convs: map[int64]*convState{}, byCID: map[string]*pending{},
		errCodes: map[string]int{}, acks: map[string][]int64{}, stop: make(chan struct{}),
	}
	for _, id := range u.convs {
		c.convs[id] = &convState{}
	}
	return c
}

func (c *fclient) start() {
	c.wg.Go(c.loop)
}

// close stops the client and waits for its goroutines.
func (c *fclient) close() {
	close(c.stop)
	c.mu.Lock()
	if c.ws != nil {
		c.ws.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

func (c *fclient) stopped() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

func (c *fclient) problem(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(c.name+": "+format, args...))
}

// loop connects, preferring node pref, and serves each connection until it
// ends, with back-off between failed rounds.
func (c *fclient) loop() {
	backoff := 50 * time.Millisecond
	for !c.stopped() {
		urls := c.urls()
		var ws *websocket.Conn
		var node int
		for k := range urls {
			i := (c.pref + k) % len(urls)
			if w, err := c.dial(urls[i]); err == nil {
				ws, node = w, i
				break
			}
		}
		if ws == nil {
			select {
			case <-c.stop:
				return
			case <-time.After(backoff + time.Duration(randInt(int(backoff/time.Millisecond)/2+1))*time.Millisecond):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		c.serve(ws, node)
	}
}

func randInt(n int) int {
	var b [4]byte
	rand.Read(b[:])
	return int(uint32(b[0])|uint32(b[1])<<8|uint32(b[2])<<16|uint32(b[3])<<24) % n
}

func (c *fclient) dial(base string) (*websocket.Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: c.dialT}
	h := http.Header{}
	h.Set("Cookie", "parley_session="+c.user.token)
	ws, resp, err := d.Dial("ws"+strings.TrimPrefix(base, "http")+"/api/ws", h)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	return ws, err
}

// serve runs one connection: hello, then frames until it breaks.
func (c *fclient) serve(ws *websocket.Conn, node int) {
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, data, err := ws.ReadMessage()
	if err != nil || !bytes.Contains(data, []byte(`"type":"hello"`)) {
		ws.Close()
		return
	}
	ws.SetReadDeadline(time.Time{})
	c.mu.Lock()
	if c.stopped() {
		c.mu.Unlock()
		ws.Close()
		return
	}
	c.ws, c.node = ws, node
	c.gen++
	c.hellos++
	if !c.downAt.IsZero() {
		c.reconnect = append(c.reconnect, time.Since(c.downAt))
	}
	for _, cs := range c.convs {
		cs.opened, cs.openAt, cs.syncAt = false, time.Time{}, time.Time{}
	}
	c.pump()
	c.mu.Unlock()

	done := make(chan struct{})
	var tick sync.WaitGroup
	tick.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				c.mu.Lock()
				c.pump()
				c.mu.Unlock()
			}
		}
	})
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			break
		}
		c.mu.Lock()
		for line := range bytes.SplitSeq(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) > 0 {
				c.handle(line)
			}
		}
		c.mu.Unlock()
	}
	close(done)
	tick.Wait()
	ws.Close()
	c.mu.Lock()
	c.ws = nil
	c.downAt = time.Now()
	c.mu.Unlock()
}

// write sends v on the current connection; a failure shows up in the
// reader. Called with c.mu held.
func (c *fclient) write(v any) {
	if c.ws == nil {
		return
	}
	c.ws.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if err := c.ws.WriteJSON(v); err != nil {
		c.ws.Close()
	}
}

// pump does whatever is due: open the conversations not open on this
// connection, sync those behind, send the outbox's head. Called with c.mu
// held.
func (c *fclient) pump() {
	if c.ws == nil {
		return
	}
	now := time.Now()
	for id, cs := range c.convs {
		switch {
		case !cs.opened && !now.Before(cs.openAt):
			c.write(map[string]any{"type": "open", "room_id": id, "after": cs.last, "ref": fmt.Sprintf("open:%d", id)})
			cs.openAt = now.Add(3 * time.Second)
		case cs.opened && cs.maxSeen > cs.last && !now.Before(cs.syncAt):
			c.sendSync(id, cs)
		}
	}
	if c.downAt.IsZero() == false && c.resynced() {
		c.resync = append(c.resync, time.Since(c.downAt))
		c.downAt = time.Time{}
	}
	if len(c.queue) == 0 {
		return
	}
	p := c.queue[0]
	if p.gen != c.gen || (!p.retryAt.IsZero() && !now.Before(p.retryAt)) || now.Sub(p.sentAt) > 5*time.Second {
		c.sendNow(p)
	}
}

func (c *fclient) sendSync(id int64, cs *convState) {
	c.write(map[string]any{"type": "sync", "room_id": id, "after": cs.last, "ref": fmt.Sprintf("sync:%d", id)})
	cs.syncAt = time.Now().Add(3 * time.Second)
}

func (c *fclient) sendNow(p *pending) {
	p.gen, p.sentAt, p.retryAt = c.gen, time.Now(), time.Time{}
	p.attempts++
	c.write(map[string]any{"type": "send", "room_id": p.room, "client_id": p.cid, "body": p.body})
}

// resynced reports whether every conversation is open and caught up with
// what its "opened" reply said.
func (c *fclient) resynced() bool {
	for _, cs := range c.convs {
		if !cs.opened || cs.last < cs.baseline {
			return false
		}
	}
	return true
}

func (c *fclient) handle(line []byte) {
	var f fframe
	if err := json.Unmarshal(line, &f); err != nil {
		c.problem("bad frame %s: %v", line, err)
		return
	}
	now := time.Now()
	switch f.Type {
	case "opened":
		id, _ := strconv.ParseInt(strings.TrimPrefix(f.Ref, "open:"), 10, 64)
		if cs := c.convs[id]; cs != nil {
			cs.opened = true
			cs.syncAt = now.Add(3 * time.Second) // the sync of "after" follows
			if f.Room != nil {
				cs.baseline = f.Room.LastSeq
				cs.maxSeen = max(cs.maxSeen, f.Room.LastSeq)
			}
		}
	case "sync":
		cs := c.convs[f.RoomID]
		if cs == nil {
			return
		}
		for _, m := range f.Messages {
			c.apply(f.RoomID, cs, m, false)
		}
		cs.syncAt = time.Time{}
		if f.HasMore || cs.maxSeen > cs.last {
			c.sendSync(f.RoomID, cs)
		}
	case "message":
		var m fmsg
		if err := json.Unmarshal(f.Message, &m); err != nil {
			c.problem("bad message frame %s", line)
			return
		}
		if cs := c.convs[f.RoomID]; cs != nil {
			c.apply(f.RoomID, cs, m, true)
		}
	case "ack":
		var m fmsg
		if err := json.Unmarshal(f.Message, &m); err != nil {
			c.problem("bad ack frame %s", line)
			return
		}
		c.acks[f.ClientID] = append(c.acks[f.ClientID], m.Seq)
		p := c.byCID[f.ClientID]
		if p == nil {
			c.problem("ack of unknown client_id %q", f.ClientID)
			return
		}
		if p.acked {
			if p.seq != m.Seq {
				c.problem("client_id %q acknowledged as seq %d and then %d", f.ClientID, p.seq, m.Seq)
			}
			return
		}
		p.acked, p.seq, p.ackedAt = true, m.Seq, now
		if i := slices.Index(c.queue, p); i >= 0 {
			c.queue = slices.Delete(c.queue, i, i+1)
		}
		c.pump()
	case "error":
		c.errCodes[f.Code]++
		switch {
		case strings.HasPrefix(f.Ref, "open:"):
			id, _ := strconv.ParseInt(strings.TrimPrefix(f.Ref, "open:"), 10, 64)
			if cs := c.convs[id]; cs != nil {
				cs.openAt = now.Add(300 * time.Millisecond)
			}
		case strings.HasPrefix(f.Ref, "sync:"):
			if cs := c.convs[f.RoomID]; cs != nil {
				cs.syncAt = now.Add(300 * time.Millisecond)
			}
		default:
			p := c.byCID[f.Ref]
			if p == nil {
				c.problem("error frame for nothing sent: %s", line)
				return
			}
			c.errTimes = append(c.errTimes, now)
			if p.acked {
				c.problem("error after ack for %q: %s", f.Ref, line)
				return
			}
			wait := 300 * time.Millisecond
			if f.RetryAfterMS > 0 {
				wait = time.Duration(f.RetryAfterMS) * time.Millisecond
			}
			p.retryAt = now.Add(wait)
		}
	}
}

// apply shows message m of conversation id if it is the next one, ignores
// one it has and asks for what it missed on a gap.
func (c *fclient) apply(id int64, cs *convState, m fmsg, live bool) {
	cs.maxSeen = max(cs.maxSeen, m.Seq)
	switch {
	case m.Seq <= cs.last:
		c.dupFrames++
	case m.Seq == cs.last+1:
		cs.got = append(cs.got, m)
		cs.gotAt = append(cs.gotAt, time.Now())
		cs.last = m.Seq
	case live && cs.opened && !time.Now().Before(cs.syncAt):
		c.sendSync(id, cs)
	}
}

// enqueue adds a message to the outbox.
func (c *fclient) enqueue(room int64, cid, body string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queueLocked(room, cid, body)
	if len(c.queue) == 1 {
		c.pump()
	}
}

// queueLocked adds a message to the outbox and the index by client ID;
// c.mu is held.
func (c *fclient) queueLocked(room int64, cid, body string) *pending {
	p := &pending{room: room, cid: cid, body: body}
	c.byCID[cid] = p
	c.queue = append(c.queue, p)
	return p
}

// sendAlone sends a message now, outside the outbox (which must be
// empty), and retries it like the outbox head.
func (c *fclient) sendAlone(room int64, cid, body string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sendNow(c.queueLocked(room, cid, body))
}

func (c *fclient) backlog() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// connected reports whether the client has a connection with every
// conversation open and caught up.
func (c *fclient) connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ws != nil && c.resynced()
}

// ---- cluster helpers ----

// pollUntil polls cond every 20ms until it holds or timeout passes.
func pollUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// connectAll starts one client per user, user i preferring node i % nodes,
// and waits until all are connected and open.
func (e *faultEnv) connectAll() []*fclient {
	e.t.Helper()
	var cs []*fclient
	for i, u := range e.users {
		c := newClient(fmt.Sprintf("u%d", i), u, e.urls, i%len(e.nodes))
		c.start()
		cs = append(cs, c)
	}
	e.t.Cleanup(func() {
		for _, c := range cs {
			c.close()
		}
	})
	if !pollUntil(15*time.Second, func() bool {
		for _, c := range cs {
			if !c.connected() {
				return false
			}
		}
		return true
	}) {
		e.t.Fatalf("clients did not all connect within 15s")
	}
	return cs
}

// startLoad makes every client send a message every interval, round robin
// over its conversations, until the returned stop is called; stop returns
// when the load has stopped. A client whose outbox holds 50 messages

// outage runs load on clients (a send per client every interval), takes a
// service down with down a second in, brings it back with up after d, lets
// the load run 2 s more, then settles and checks the result (lost = 0,
// duplicated = 0, order kept). It returns when the outage began and ended.
func (e *faultEnv) outage(clients []*fclient, interval, d time.Duration, down, up func(), settle time.Duration) (downAt, upAt time.Time) {
	e.t.Helper()
	stop := startLoad(clients, interval)
	time.Sleep(time.Second)
	downAt = time.Now()
	down()
	time.Sleep(d)
	upAt = time.Now()
	up()
	time.Sleep(2 * time.Second)
	stop()
	r, _ := e.settle(clients, settle)
	r.check(e.t)
	return downAt, upAt
}

// waits, as a user would.
func startLoad(clients []*fclient, interval time.Duration) (stop func()) {
	var wg sync.WaitGroup
	quit := make(chan struct{})
	for i, c := range clients {
		wg.Go(func() {
			n := 0
			convs := c.user.convs
			time.Sleep(time.Duration(i) * interval / time.Duration(len(clients)))
			for k := 0; k < 100000; k++ {
				if c.backlog() < 50 {
					room := convs[n%len(convs)]
					c.enqueue(room, fmt.Sprintf("%s-%d-%d", c.name, room, n), fmt.Sprintf("%s says %d", c.name, n))
					n++
				}
				select {
				case <-quit:
					return
				case <-time.After(interval):
				}
			}
		})
	}
	return func() {
		close(quit)
		wg.Wait()
	}
}

// nodeIndex is the node the client is connected to (or was last).
func (c *fclient) nodeIndex() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.node
}

// faultReport is what a scenario checked.
type faultReport struct {
	sent, stored, lost, dup int
	orderOK                 bool
	deliveries, missing     int
	ignoredDupFrames        int
	retried                 int // sends sent more than once
}

// settle waits until every send is acknowledged and every client holds
// every stored message, then checks everything against the store:
//   - each conversation's stored seqs are 1..N;
//   - every message a client sent is stored exactly once, with the seq its
//     ack said, and each sender's messages are stored in the order sent;
//   - every client received exactly the stored sequence 1..N.
//
// It returns when the last client caught up.
func (e *faultEnv) settle(clients []*fclient, timeout time.Duration) (faultReport, time.Time) {
	t := e.t
	t.Helper()
	r := faultReport{orderOK: true}
	if !pollUntil(timeout, func() bool {
		for _, c := range clients {
			if c.backlog() > 0 {
				return false
			}
		}
		return true
	}) {
		for _, c := range clients {
			if n := c.backlog(); n > 0 {
				t.Errorf("%s: %d sends still unacknowledged after %v", c.name, n, timeout)
			}
		}
	}
	owner := e.users[0]
	stored := map[int64][]fmsg{}
	for _, conv := range owner.convs {
		stored[conv] = e.history(owner, conv)
	}
	var caughtUp time.Time
	if !pollUntil(timeout, func() bool {
		for _, c := range clients {
			c.mu.Lock()
			for id, cs := range c.convs {
				if cs.last < int64(len(stored[id])) {
					c.mu.Unlock()
					return false
				}
			}
			c.mu.Unlock()
		}
		return true
	}) {
		t.Errorf("clients did not catch up within %v", timeout)
	}
	for _, c := range clients {
		c.mu.Lock()
		for _, cs := range c.convs {
			if len(cs.gotAt) > 0 && cs.gotAt[len(cs.gotAt)-1].After(caughtUp) {
				caughtUp = cs.gotAt[len(cs.gotAt)-1]
			}
		}
		c.mu.Unlock()
	}
	// Fetch again: a retried send may have landed after the first fetch.
	for _, conv := range owner.convs {
		stored[conv] = e.history(owner, conv)
	}

	byCID := map[string][]fmsg{}
	for conv, ms := range stored {
		for i, m := range ms {
			if m.Seq != int64(i+1) || m.RoomID != conv {
				t.Errorf("conversation %d: stored message %d has seq %d, room %d", conv, i+1, m.Seq, m.RoomID)
				r.orderOK = false
			}
			if m.Kind == "text" && m.ClientID != "" {
				byCID[fmt.Sprintf("%d/%d/%s", conv, m.SenderID, m.ClientID)] = append(byCID[fmt.Sprintf("%d/%d/%s", conv, m.SenderID, m.ClientID)], m)
			}
		}
	}
	for _, c := range clients {
		c.mu.Lock()
		var order []string
		for cid := range c.byCID {
			order = append(order, cid)
		}
		slices.Sort(order)
		for _, cid := range order {
			p := c.byCID[cid]
			got := byCID[fmt.Sprintf("%d/%d/%s", p.room, c.user.id, cid)]
			r.sent++
			if p.attempts > 1 {
				r.retried++
			}
			switch {
			case len(got) == 0:
				r.lost++
				t.Errorf("%s: %q (acked %v) is not stored", c.name, cid, p.acked)
				continue
			case len(got) > 1:
				r.dup += len(got) - 1
				t.Errorf("%s: %q stored %d times", c.name, cid, len(got))
			}
			r.stored++
			if got[0].Body != p.body {
				t.Errorf("%s: %q stored with body %q; want %q", c.name, cid, got[0].Body, p.body)
			}
			for _, s := range c.acks[cid] {
				if s != got[0].Seq {
					t.Errorf("%s: %q acknowledged as seq %d but stored as %d", c.name, cid, s, got[0].Seq)
				}
			}
		}
		// Each sender's messages are stored in the order it sent them.
		for conv, ms := range stored {
			prev := -1
			for _, m := range ms {
				if m.SenderID != c.user.id || !strings.HasPrefix(m.ClientID, c.name+"-") {
					continue
				}
				f := strings.Split(m.ClientID, "-")
				n, err := strconv.Atoi(f[len(f)-1])
				if err != nil {
					continue
				}
				if n <= prev {
					r.orderOK = false
					t.Errorf("%s: conversation %d stores message %d after %d", c.name, conv, n, prev)
				}
				prev = n
			}
		}
		// Each client received exactly the stored sequence.
		for id, cs := range c.convs {
			want := stored[id]
			r.deliveries += len(cs.got)
			r.missing += max(0, len(want)-len(cs.got))
			for i, m := range cs.got {
				if i >= len(want) {
					t.Errorf("%s: conversation %d: received seq %d, beyond the %d stored", c.name, id, m.Seq, len(want))
					break
				}
				w := want[i]
				if m.Seq != w.Seq || m.ClientID != w.ClientID || m.SenderID != w.SenderID || m.Body != w.Body {
					r.orderOK = false
					t.Errorf("%s: conversation %d: received %+v as message %d; stored %+v", c.name, id, m, i+1, w)
					break
				}
			}
			if len(cs.got) < len(want) {
				t.Errorf("%s: conversation %d: received %d of %d messages", c.name, id, len(cs.got), len(want))
			}
		}
		r.ignoredDupFrames += c.dupFrames
		for _, p := range c.problems {
			t.Error(p)
		}
		c.mu.Unlock()
	}
	return r, caughtUp
}

func (r faultReport) String() string {
	return fmt.Sprintf("sent=%d stored=%d lost=%d duplicated=%d order_kept=%v deliveries=%d missing=%d (sends retried: %d; duplicate frames ignored by clients: %d)",
		r.sent, r.stored, r.lost, r.dup, r.orderOK, r.deliveries, r.missing, r.retried, r.ignoredDupFrames)
}

func (r faultReport) check(t *testing.T) {
	t.Helper()
	t.Logf("result: %v", r)
	if r.lost != 0 || r.dup != 0 || !r.orderOK || r.missing != 0 || r.sent == 0 {
		t.Errorf("lost=%d duplicated=%d order_kept=%v missing=%d sent=%d; want 0, 0, true, 0 and some sent", r.lost, r.dup, r.orderOK, r.missing, r.sent)
	}
}

// durations summarises ds as "max X (n)".
func maxDuration(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// sigterm and sigkill for readability.
var (
	sigterm = syscall.SIGTERM
	sigkill = syscall.SIGKILL
)
