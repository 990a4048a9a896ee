// Package web is Parley's HTTP transport: the REST API, the WebSocket and
// the Django Channels-compatible endpoint, sessions as cookies, CSRF and
// Origin checks, and the embedded UI. It parses input and maps errors; the
// rules live in chat.Service. No SQL here.
package web

import (
	"context"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
)

// Config holds the transport's settings and limits.
type Config struct {
	Origins        []string      // allowed origins besides the server's own, e.g. "https://chat.example.com"
	ChannelsCompat bool          // serve /ws/chat/{room}/
	BehindProxy    bool          // behind a proxy: client IP from X-Forwarded-For; TLS (Secure cookies, Strict-Transport-Security) unless X-Forwarded-Proto says http
	MaxFrameBytes  int64         // largest WebSocket frame a client may send
	MaxBodyBytes   int64         // largest REST request body
	SendRate       float64       // sends per second per user on a node, shared by the user's WebSockets and long-poll channels (userLimits); per connection on the Django Channels endpoint
	SendBurst      int           // sends allowed in a burst, as SendRate
	Outbox         int           // frames queued per connection before it is cut off as too slow
	MaxUserConns   int           // WebSockets and long-poll channels per user on one node; Django Channels connections per client address
	OpenRate       float64       // WebSockets and long-poll channels a user may open per second on a node (allowOpen); Django Channels connections per client address
	OpenBurst      int           // opens allowed in a burst, as OpenRate
	MaxOpen        int           // conversations open at once on one WebSocket
	PingInterval   time.Duration // WebSocket ping period
	PongWait       time.Duration // silence after which a connection is dropped
	WriteWait      time.Duration // longest a write may stall
	PollHold       time.Duration // longest a long-poll GET is held open
	PollIdle       time.Duration // how long a long-poll channel outlives its last poll
	Health         func(context.Context) error
	// Ended, if set, records the long-poll channels clients end (DELETE)
	// where every node reads them (Redis): a late poll for one is refused
	// whichever node it reaches. Unset, each node remembers those ended
	// through it.
	Ended EndedLog
	// MaxHeaderBytes bounds a request's line and header fields (headerBytes):
	// past it, the request is answered 431 headers_too_large. The
	// http.Server serving the handler is to be given HeaderReadLimit.
	MaxHeaderBytes int
}

// HeaderReadLimit is the MaxHeaderBytes to give the http.Server serving a
// handler of c. net/http answers a request whose header is past its own
// limit (plus 4 KiB of slack for its buffer) with a plain-text 431, so it
// is given twice c.MaxHeaderBytes: the handler answers a request over
// c.MaxHeaderBytes with a typed error (limitHeaders), and net/http still
// cuts one far over it, so what is read of a header stays bounded.
func (c Config) HeaderReadLimit() int {
	c.fill()
	return 2 * c.MaxHeaderBytes
}

// EndedLog records, for every node, the long-poll channels clients ended.
// The channels it is given are families: a channel with its forks
// (channelFamily).
type EndedLog interface {
	// Add records that userID ended channel, for ttl; of a user's
	// channels only the newest max need be kept.
	Add(ctx context.Context, userID int64, channel string, ttl time.Duration, max int) error
	// Has reports whether userID ended channel within its ttl.
	Has(ctx context.Context, userID int64, channel string) (bool, error)
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		MaxFrameBytes: 32 << 10,
		MaxBodyBytes:  64 << 10,
		// Not net/http's 1 MiB: room for many cookies (a browser keeps up
		// to 4 KiB each) and a tighter bound on a request's memory.
		MaxHeaderBytes: 64 << 10,
		SendRate:       10,
		SendBurst:      20,
		Outbox:         256,
		MaxUserConns:   64,
		OpenRate:       2,
		OpenBurst:      20,
		MaxOpen:        256,
		PingInterval:   30 * time.Second,
		PongWait:       60 * time.Second,
		WriteWait:      10 * time.Second,
		PollHold:       25 * time.Second,
		PollIdle:       20 * time.Second,
	}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = d.MaxFrameBytes
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = d.MaxBodyBytes
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if c.SendRate <= 0 {
		c.SendRate = d.SendRate
	}
	if c.SendBurst <= 0 {
		c.SendBurst = d.SendBurst
	}
	if c.Outbox <= 0 {
		c.Outbox = d.Outbox
	}
	if c.MaxUserConns <= 0 {
		c.MaxUserConns = d.MaxUserConns
	}
	if c.OpenRate <= 0 {
		c.OpenRate = d.OpenRate
	}
	if c.OpenBurst <= 0 {
		c.OpenBurst = d.OpenBurst
	}
	if c.MaxOpen <= 0 {
		c.MaxOpen = d.MaxOpen
	}
	if c.PingInterval <= 0 {
		c.PingInterval = d.PingInterval
	}
	if c.PongWait <= 0 {
		c.PongWait = d.PongWait
	}
	if c.PollHold <= 0 {
		c.PollHold = d.PollHold
	}
	if c.PollIdle <= 0 {
		c.PollIdle = d.PollIdle
	}
	if c.WriteWait <= 0 {
		c.WriteWait = d.WriteWait
	}
}

// server holds what the handlers share.
type server struct {
	log      *slog.Logger
	cfg      Config
	svc      *chat.Service
	hub      *hub.Hub
	origins  map[string]bool // lower-case scheme://host[:port]
	upgrader websocket.Upgrader
	polls    pollChannels
	pings    pinger
	writers  *writers
	sends    restLimits[int64]  // REST sends per user, as a user's connections' sends
	reads    restLimits[int64]  // REST read-position moves per user, as a user's connections' other frames
	checks   restLimits[int64]  // checks of whether an open would be let in (GET /api/ws/check) per user, as other frames
	ends     restLimits[int64]  // ends of long-poll channels (DELETE /api/poll) per user, as other frames
	conns    slots[int64]       // a user's connections the hub does not count yet (roomForConn)
	compat   slots[string]      // the Django Channels connections of a client address
	opens    restLimits[string] // how often a client address opens Django Channels connections
	limits   userLimits         // the limits of a user's WebSockets and long-poll channels, shared
	leftAnon leftLimits[string] // the limits of a client address's Django Channels connections that ended, for those that take their places
}

// NewHandler returns Parley's whole HTTP surface. ui is the web app's file
// tree (index.html at its root). It wires h to svc: h fills from the
// store what its broker did not bring (Hub.UseStore), drops presence news
// older than what its clients read (Hub.UsePresence), and checks the
// sessions of its clients (Hub.CheckSessions).
func NewHandler(log *slog.Logger, cfg Config, svc *chat.Service, h *hub.Hub, ui fs.FS) http.Handler {
	cfg.fill()
	s := &server{log: log, cfg: cfg, svc: svc, hub: h, origins: make(map[string]bool), polls: pollChannels{m: make(map[string]*pollChannel)}, pings: pinger{every: cfg.PingInterval}, writers: newWriters()}
	for _, o := range cfg.Origins {
		s.origins[normalizeOrigin(o)] = true
	}
	s.upgrader = newUpgrader(s.checkOrigin)
	// Gaps in the broker's stream, and a group's messages sent before a
	// member added is subscribed to it, are filled from the store.
	h.UseStore(svc.Missed)
	h.UsePresence(svc.PresenceVersion)
	// A connection's session is read when it opens; its end reaches it
	// as an event, which a node may miss (the broker lost it).
	h.CheckSessions(svc.Config().SessionCheck, svc.OpenSessions)
	go s.cutAtShutdown()
	mux := http.NewServeMux()
	s.addRoutes(mux, ui)

	cop := http.NewCrossOriginProtection()
	for _, o := range cfg.Origins {
		// The Origin header is matched as it is written: the listed origin
		// is too, as the upgrades' check (checkOrigin) matches it.
		if err := cop.AddTrustedOrigin(normalizeOrigin(o)); err != nil {
			log.Warn("ignoring bad origin", "origin", o, "err", err)
		}
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusForbidden, errorBody{Error: errorDetail{Code: chat.CodeForbidden, Message: "cross-origin request refused"}})
	}))
	return securityHeaders(limitHeaders(cfg.MaxHeaderBytes, cop.Handler(mux)), s.secure)
}

// limitHeaders answers a request whose line and header fields hold more
// than max bytes (headerBytes) with 431 headers_too_large, as every
// other error, rather than net/http's plain text.
func limitHeaders(max int, h http.Handler) http.Handler {
	msg := "request header fields are larger than " + strconv.Itoa(max) + " bytes"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if headerBytes(r) > max {
			writeJSON(w, http.StatusRequestHeaderFieldsTooLarge, errorBody{Error: errorDetail{Code: codeHeadersTooLarge, Message: msg}})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// headerBytes is the size of r's request line and header fields as
// HTTP/1.1 sends them, "Name: value\r\n" each, Host among them (net/http
// takes it out of r.Header), whatever protocol r came by. Those parsed,
// not the bytes read: a line's extra white space is not counted, which
// net/http's own limit bounds.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	n += len("Host: \r\n") + len(r.Host)
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(": \r\n") + len(v)
		}
	}
	return n + len("\r\n")
}

// newUpgrader is the server's WebSocket upgrader; checkOrigin vets the
// Origin of every upgrade.
func newUpgrader(checkOrigin func(*http.Request) bool) websocket.Upgrader {
	return websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		// The least gorilla takes: room for a control frame. Larger frames
		// are read through it in pieces, or around it into the message.
		ReadBufferSize:  128,
		WriteBufferSize: 4096,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     checkOrigin,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			code := chat.CodeInvalidField
			if status == http.StatusForbidden {
				code = chat.CodeForbidden
			}
			writeJSON(w, status, errorBody{Error: errorDetail{Code: code, Message: reason.Error()}})
		},
	}
}

// normalizeOrigin returns origin o as a browser writes it in an Origin
// header: in lower case, without a trailing slash or its scheme's default
// port. --origins takes "https://Chat.Example.com:443/" for the origin
// browsers name "https://chat.example.com".
func normalizeOrigin(o string) string {
	o = strings.TrimRight(strings.ToLower(strings.TrimSpace(o)), "/")
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return o
	}
	if p := u.Port(); (u.Scheme == "https" && p == "443") || (u.Scheme == "http" && p == "80") {
		return u.Scheme + "://" + strings.TrimSuffix(u.Host, ":"+p)
	}
	return o
}

// checkOrigin allows upgrades without an Origin header (not a browser), from
// the server's own origin, and from the configured origins. A server
// reached over TLS is not its host's plain-HTTP origin: a page there is
// whatever the network path made it, and some browsers send a SameSite
// cookie to a host whatever the scheme.
func (s *server) checkOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) && (!s.secure(r) || strings.EqualFold(u.Scheme, "https")) {
		return true
	}
	return s.origins[normalizeOrigin(o)]
}

// securityHeaderValues are the headers securityHeaders sets as they are,
// keys in canonical form.
//
// Cross-Origin-Opener-Policy puts the app's page in a browsing context
// group of its own: a page of another origin that opened it, or that it
// opened, gets no handle on it. The app opens no window but the links in
// messages (with noopener as well) and is opened by none (mail links
// navigate to it). Cross-Origin-Resource-Policy has browsers refuse
// every answer to another origin's no-cors request (an <img>, <script>
// or no-cors fetch there): the app loads its favicon, scripts and styles
// from its own origin; the API sends no CORS headers, so a page of
// another origin, listed in --origins or not, never reads its answers
// anyway, and the WebSocket upgrades such a page makes are not subject
// to it.
var securityHeaderValues = [...]struct {
	key   string
	value []string
}{
	{"X-Content-Type-Options", []string{"nosniff"}},
	{"X-Frame-Options", []string{"DENY"}},
	{"Referrer-Policy", []string{"same-origin"}},
	{"Cross-Origin-Opener-Policy", []string{"same-origin"}},
	{"Cross-Origin-Resource-Policy", []string{"same-origin"}},
}

// The Content-Security-Policy is cspHead, the page's own WebSocket origin
// when the request's Host can name it (cspSource), and cspTail. 'self'
// covers the WebSocket's origin too in CSP Level 3 browsers, not in older
// Safari; no other host: a script that got past the policy cannot send
// what it read elsewhere.
const (
	cspHead = "default-src 'self'; connect-src 'self'"
	cspTail = "; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

// hdrCSPSelf is the policy for a Host cspSource refuses.
var hdrCSPSelf = []string{cspHead + cspTail}

// cspSource returns the ws: (wss: when secure) origin of host, the origin
// the web app opens its WebSocket to, as a CSP host-source, or false when
// host is not a plain host name or IPv4 address with an optional port:
// it comes from the client, and anything else could add to the policy
// (a space, ';', a quote, '*') or has no place in its grammar (an IPv6
// literal, '_').
func cspSource(host string, secure bool) (string, bool) {
	name, port, hasPort := strings.Cut(host, ":")
	if name == "" || len(name) > 253 || (hasPort && (port == "" || len(port) > 5)) {
		return "", false
	}
	for _, c := range []byte(port) {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	prev := byte('.')
	for _, c := range []byte(name) {
		switch {
		case c == '.':
			if prev == '.' {
				return "", false
			}
		case c == '-', '0' <= c && c <= '9', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		default:
			return "", false
		}
		prev = c
	}
	if prev == '.' {
		return "", false
	}
	scheme := "ws://"
	if secure {
		scheme = "wss://"
	}
	return scheme + strings.ToLower(host), true
}

// cspCache holds the policy last made, for a Host and scheme: nearly every
// request asks for the same, and the answer shares it.
type cspCache struct {
	last atomic.Pointer[cspEntry]
}

type cspEntry struct {
	host   string
	secure bool
	value  []string
}

// policy returns the Content-Security-Policy of an answer to a request
// for host, secure or not.
func (c *cspCache) policy(host string, secure bool) []string {
	if e := c.last.Load(); e != nil && e.host == host && e.secure == secure {
		return e.value
	}
	src, ok := cspSource(host, secure)
	if !ok {
		return hdrCSPSelf
	}
	e := &cspEntry{host: host, secure: secure, value: []string{cspHead + " " + src + cspTail}}
	c.last.Store(e)
	return e.value
}

// hdrHSTS has a browser that reached the server over TLS use only TLS
// for a year: a network attacker cannot serve it the app over plain HTTP
// on a later visit. Subdomains are not the server's to speak for.
var hdrHSTS = []string{"max-age=31536000"}

// securityHeaders sets securityHeaderValues and the Content-Security-Policy
// for the request's Host on every answer, and Strict-Transport-Security on
// those to requests that secure says came over TLS (browsers ignore it
// over plain HTTP).
func securityHeaders(h http.Handler, secure func(*http.Request) bool) http.Handler {
	var csp cspCache
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		for _, kv := range securityHeaderValues {
			hd[kv.key] = kv.value // shared, as setJSONHeaders's
		}
		sec := secure(r)
		hd["Content-Security-Policy"] = csp.policy(r.Host, sec)
		if sec {
			hd["Strict-Transport-Security"] = hdrHSTS
		}
		h.ServeHTTP(w, r)
	})
}

// restLimits holds the limits of the users acting through the REST API,
// which their connections' limits do not bind: one bucket per user, as for
// their connections (userLimits), dropped once full again (swept once a
// minute, or sooner once the keys held have doubled since the last
// sweep), so that it holds only the users acting lately. It also holds,
// per client address, how often the address opens Django Channels
// connections (allowCompatOpen).
type restLimits[K comparable] struct {
	mu      sync.Mutex
	m       map[K]bucket
	sweep   time.Time
	sweepAt int // keys held at which to sweep before the minute is out
}

// allowSend applies the send-rate limit of u's connections to u's REST
// sends, apart from them.
func (s *server) allowSend(u chat.User) error {
	return s.sends.allow(u.ID, rate.Limit(s.cfg.SendRate), s.cfg.SendBurst)
}

// otherFrames is the limit of a user's frames other than sends (and of a
// Django Channels connection's): five times the send rate and burst.
// Every such frame is answered, and a malformed one with an error, so
// each costs about as much as a send.
func (s *server) otherFrames() (rate.Limit, int) {
	return rate.Limit(5 * s.cfg.SendRate), 5 * s.cfg.SendBurst
}

// allowRead applies the limit of a user's frames other than sends
// (otherFrames) to u's REST read-position moves: each is a write to the
// store, moved or not.
func (s *server) allowRead(u chat.User) error {
	limit, burst := s.otherFrames()
	return s.reads.allow(u.ID, limit, burst)
}

// allowPollEnd applies the limit of a user's frames other than sends
// (otherFrames) to u's ends of long-poll channels (DELETE /api/poll), as
// to a WebSocket's close frame: each is published to every node, and
// recorded in Redis in a cluster, and one cursor may be sent again and
// again.
func (s *server) allowPollEnd(u chat.User) error {
	limit, burst := s.otherFrames()
	return s.ends.allow(u.ID, limit, burst)
}

// allowCompatOpen applies the limit of how often a user opens
// connections (allowOpen) to a client address's Django Channels
// connections.
func (s *server) allowCompatOpen(ip string) error {
	if wait, ok := s.opens.take(ip, rate.Limit(s.cfg.OpenRate), s.cfg.OpenBurst, time.Now()); !ok {
		return openedTooOften(wait)
	}
	return nil
}

// allow takes one event from key's bucket of limit and burst.
func (rs *restLimits[K]) allow(key K, limit rate.Limit, burst int) error {
	if _, ok := rs.take(key, limit, burst, time.Now()); !ok {
		return rateLimited(limit)
	}
	return nil
}

// take takes one event at now from key's bucket of limit and burst (full
// if it has none); if none may come, it takes nothing and returns how
// long until one may.
func (rs *restLimits[K]) take(key K, limit rate.Limit, burst int, now time.Time) (wait time.Duration, ok bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if now.Sub(rs.sweep) > time.Minute || len(rs.m) >= rs.sweepAt {
		rs.sweep = now
		maps.DeleteFunc(rs.m, func(_ K, b bucket) bool { return b.full(now) })
		rs.sweepAt = max(64, 2*len(rs.m))
	}
	b := rs.m[key]
	if wait, ok = b.take(now, limit, burst); ok {
		if rs.m == nil {
			rs.m = make(map[K]bucket)
		}
		rs.m[key] = b
	}
	return wait, ok
}

// userLimits holds, per user, the limits of the user's native connections
// on this node (WebSockets and long-poll channels), which they share: the
// user's budget is the user's, whatever number of tabs or devices they
// connect from, as the REST API's (restLimits): limits of each
// connection's own would give a user Config.MaxUserConns times the rate.
// Each node has its own.
//
// A connection takes its user's limits as it starts (acquire) and gives
// them back as it ends (release); a frame uses the limiter its connection
// holds, without a lookup here. Limits no connection holds are kept until
// full again, so that ending connections and opening others makes no
// more room: swept when a connection starts or ends, once a minute, or
// sooner once the users held have doubled since the last sweep. Held are
// the users connected, and those whose connections ended lately.
type userLimits struct {
	mu      sync.Mutex
	m       map[int64]*sharedLimits
	sweep   time.Time
	sweepAt int // users held at which to sweep before the minute is out
}

// sharedLimits are a user's limits on this node: of sends, and of the
// other frames (server.otherFrames), and how often the user opens
// connections (allowOpen). A connection keeps them while it lasts
// (session.lims).
type sharedLimits struct {
	send, other sharedBucket
	open        bucket // guarded by userLimits.mu
	conns       int    // connections holding them; guarded by userLimits.mu
}

// bucket counts events of a limit per second past a burst as a
// rate.Limiter of that limit and burst would, in 8 bytes: it is the time
// (Unix nanoseconds) at which the whole burst is back, the "theoretical
// arrival time" of GCRA; at or before now it is full, and the zero
// bucket is full. Every connected user holds three (sharedLimits,
// acquire), and a rate.Limiter cost 80 bytes more each, on nearly every
// connection (an open frame takes from the limit of other frames):
// memory per idle connection is a target (docs/benchmarks.md, target 5).
// A bucket is not safe for concurrent use; a sharedBucket is.
type bucket int64

// take takes one event at now of limit per second past burst; if none may
// come, it takes nothing and returns how long until one may.
func (b *bucket) take(now time.Time, limit rate.Limit, burst int) (wait time.Duration, ok bool) {
	if wait := b.wait(now, limit, burst); wait > 0 {
		return wait, false
	}
	*b = bucket(max(int64(*b), now.UnixNano()) + int64(interval(limit)))
	return 0, true
}

// allow takes one event now, and reports whether it could.
func (b *bucket) allow(limit rate.Limit, burst int) bool {
	_, ok := b.take(time.Now(), limit, burst)
	return ok
}

// wait returns how long from now until b lets an event come, 0 if now.
// Taken, an event moves the time of the whole burst one interval on, and
// it may be at most burst intervals from now (at most maxInterval: b
// stays within 3 maxIntervals of now, far from overflowing).
func (b bucket) wait(now time.Time, limit rate.Limit, burst int) time.Duration {
	iv := interval(limit)
	window := time.Duration(min(float64(burst)*float64(iv), float64(maxInterval)))
	return max(0, time.Duration(int64(b)-now.UnixNano())+iv-window)
}

// full reports whether b has its whole burst at now.
func (b bucket) full(now time.Time) bool { return int64(b) <= now.UnixNano() }

// sharedBucket is a bucket that the connections of a user take from at
// once, without a lock.
type sharedBucket struct{ t atomic.Int64 }

// take is bucket.take, made atomic.
func (s *sharedBucket) take(now time.Time, limit rate.Limit, burst int) (wait time.Duration, ok bool) {
	for {
		old := s.t.Load()
		b := bucket(old)
		if wait, ok = b.take(now, limit, burst); !ok || s.t.CompareAndSwap(old, int64(b)) {
			return wait, ok
		}
	}
}

// allow takes one event now, and reports whether it could.
func (s *sharedBucket) allow(limit rate.Limit, burst int) bool {
	_, ok := s.take(time.Now(), limit, burst)
	return ok
}

// full reports whether s has its whole burst at now.
func (s *sharedBucket) full(now time.Time) bool { return bucket(s.t.Load()).full(now) }

// interval is the time one event of limit per second takes to come back,
// at most maxInterval.
func interval(limit rate.Limit) time.Duration {
	return time.Duration(min(float64(time.Second)/float64(limit), float64(maxInterval)))
}

// maxInterval bounds a bucket's times: 36 years, past which no wait is
// told apart.
const maxInterval = time.Duration(1) << 60

// full reports whether no connection holds l and its buckets have their
// whole bursts at now; l.conns is guarded by the caller.
func (l *sharedLimits) full(now time.Time) bool {
	return l.conns == 0 && l.send.full(now) && l.other.full(now) && l.open.full(now)
}

// allowOpen takes one open of a connection from user id's bucket of opens, of
// limit and burst. It is kept with the user's other limits until full
// again, whether a connection is let in or not.
func (u *userLimits) allowOpen(id int64, limit rate.Limit, burst int) error {
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	if wait, ok := u.getLocked(id, now).open.take(now, limit, burst); !ok {
		return openedTooOften(wait)
	}
	return nil
}

// openAllowed reports whether user id could open a connection now by
// the limit allowOpen applies (of limit and burst), taking nothing; if
// not, it returns the error allowOpen would. A user with no limits held
// has a whole burst.
func (u *userLimits) openAllowed(id int64, limit rate.Limit, burst int) error {
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	if l := u.m[id]; l != nil {
		if wait := l.open.wait(now, limit, burst); wait > 0 {
			return openedTooOften(wait)
		}
	}
	return nil
}

// openedTooOften is the rate_limited error of an open refused, the next
// allowed after wait.
func openedTooOften(wait time.Duration) error {
	e := chat.Errorf(chat.ErrRateLimited, chat.CodeRateLimited, "connections opened too often: wait before opening another")
	e.RetryAfter = wait
	return e
}

// acquire returns the limits of user id, for a connection starting, which
// is to release them as it ends.
func (u *userLimits) acquire(id int64) *sharedLimits {
	u.mu.Lock()
	defer u.mu.Unlock()
	l := u.getLocked(id, time.Now())
	l.conns++
	return l
}

// getLocked sweeps (sweepLocked) and returns the limits of user id, made
// empty if it has none; u.mu is held.
func (u *userLimits) getLocked(id int64, now time.Time) *sharedLimits {
	u.sweepLocked(now)
	l := u.m[id]
	if l == nil {
		if u.m == nil {
			u.m = make(map[int64]*sharedLimits)
		}
		l = new(sharedLimits)
		u.m[id] = l
	}
	return l
}

// release gives back limits l of user id, which a connection ending had
// acquired; they go once full again.
func (u *userLimits) release(id int64, l *sharedLimits) {
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	l.conns--
	if l.full(now) && u.m[id] == l {
		delete(u.m, id)
	}
	u.sweepLocked(now)
}

// sweepLocked drops the limits no connection holds that are full again,
// once a minute or once the users held have doubled; u.mu is held.
func (u *userLimits) sweepLocked(now time.Time) {
	if now.Sub(u.sweep) <= time.Minute && len(u.m) < u.sweepAt {
		return
	}
	u.sweep = now
	maps.DeleteFunc(u.m, func(_ int64, l *sharedLimits) bool { return l.full(now) })
	u.sweepAt = max(64, 2*len(u.m))
}

// connLimits are a Django Channels connection's limits: of its sends, and
// of its other frames (server.otherFrames). One goroutine takes from them,
// the connection's reader.
type connLimits struct {
	send, other bucket
}

// leftLimits holds, per client address, the limits of Django Channels
// connections that ended before they were full again, for the
// connections that take their places: a connection's limits bind its
// address, which could otherwise get a full burst again by opening another
// as often as it liked, each time with a full burst. A new connection
// takes a limit left if there is one, else starts full, so an address's
// connections at once have as many limits as they are (at most
// Config.MaxUserConns), and one that ends and comes back has what it
// had. The connections of an address are not made to share one limit as
// a user's are (userLimits): an address may be that of many people behind
// one NAT or proxy. Held are at most max of a key's, the newest, each
// until full again (two seconds by default: the burst over the rate):
// swept when a connection starts or ends, once a minute, or sooner once
// the keys held have doubled since the last sweep.
type leftLimits[K comparable] struct {
	mu      sync.Mutex
	m       map[K][]connLimits
	sweep   time.Time
	sweepAt int // keys held at which to sweep before the minute is out
}

func (l connLimits) full(now time.Time) bool { return l.send.full(now) && l.other.full(now) }

// sweepLocked drops the limits full again, once a minute or once the
// keys held have doubled; l.mu is held.
func (l *leftLimits[K]) sweepLocked(now time.Time) {
	if now.Sub(l.sweep) <= time.Minute && len(l.m) < l.sweepAt {
		return
	}
	defer func() { l.sweepAt = max(64, 2*len(l.m)) }()
	l.sweep = now
	for k, ls := range l.m {
		if ls = slices.DeleteFunc(ls, func(c connLimits) bool { return c.full(now) }); len(ls) == 0 {
			delete(l.m, k)
		} else {
			l.m[k] = ls
		}
	}
}

// put keeps the limits c of a connection of key that ended, unless they
// are full, among at most max of key's.
func (l *leftLimits[K]) put(key K, c connLimits, max int) {
	now := time.Now()
	if c.full(now) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	if l.m == nil {
		l.m = make(map[K][]connLimits)
	}
	ls := append(l.m[key], c)
	if len(ls) > max {
		ls = slices.Delete(ls, 0, len(ls)-max) // the oldest, the fullest
	}
	l.m[key] = ls
}

// take returns the limits left by a connection of key, the newest not
// full again, for a connection starting; none (zero buckets: full) if
// there are none.
func (l *leftLimits[K]) take(key K) connLimits {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	ls := l.m[key]
	for len(ls) > 0 {
		c := ls[len(ls)-1]
		ls = ls[:len(ls)-1]
		if !c.full(now) {
			if len(ls) == 0 {
				delete(l.m, key)
			} else {
				l.m[key] = ls
			}
			return c
		}
	}
	delete(l.m, key)
	return connLimits{}
}

// roomForConn returns a rate_limited error if user u holds
// Config.MaxUserConns connections (WebSockets and long-poll channels) on
// this node already: each costs the server a socket and memory, and the
// sockets of a process are bounded. Or if u opened connections more often
// than Config.OpenRate allows, past Config.OpenBurst: each open costs a
// hello of the user's state read from the store, presence news to their
// friends and rooms, and hub subscriptions, so a client opening and
// closing connections in a loop is stopped; opens false (a long-poll
// channel the network or the server made the client rebuild) takes
// nothing of it. An open the cap refuses takes nothing of the rate. Otherwise it holds a place for one more until
// release is called, which must be once its hub client is registered, or
// it failed: the hub counts a connection only then, and connections that
// come all at once must not all find room.
func (s *server) roomForConn(u chat.User, opens bool) (release func(), err error) {
	release, err = s.conns.take(u.ID, s.cfg.MaxUserConns, func() int { return s.hub.UserClients(u.ID) }, msgUserConns)
	if err != nil {
		return nil, err
	}
	if !opens {
		return release, nil
	}
	if err := s.limits.allowOpen(u.ID, rate.Limit(s.cfg.OpenRate), s.cfg.OpenBurst); err != nil {
		release()
		return nil, err
	}
	return release, nil
}

const msgUserConns = "too many connections for this user: close some first"

// openRefused returns the error roomForConn would return for an open of
// a connection by user u now, or nil, taking nothing: neither a place
// nor an open of the rate (GET /api/ws/check). A browser cannot read the
// status of a refused upgrade; the web app asks this after a WebSocket
// failed before its hello, to tell a limit from a network that lets no
// WebSocket through.
func (s *server) openRefused(u chat.User) error {
	if err := s.conns.check(u.ID, s.cfg.MaxUserConns, func() int { return s.hub.UserClients(u.ID) }, msgUserConns); err != nil {
		return err
	}
	return s.limits.openAllowed(u.ID, rate.Limit(s.cfg.OpenRate), s.cfg.OpenBurst)
}

// allowOpenCheck applies the limit of a user's frames other than sends
// (otherFrames) to u's checks of whether an open would be let in
// (openRefused): each costs as little as a ping.
func (s *server) allowOpenCheck(u chat.User) error {
	limit, burst := s.otherFrames()
	return s.checks.allow(u.ID, limit, burst)
}

// slots counts places held per key K: connections let in that nothing
// else counts yet (a user's, until the hub has their client), or at all
// (an address's anonymous ones).
type slots[K comparable] struct {
	mu   sync.Mutex
	held map[K]int
}

// take holds a place for one more under key, unless others (counted
// elsewhere, read under the lock so that connections coming at once see
// each other) and those held here reach limit: then it returns a
// rate_limited error saying msg. release gives the place back; calls
// after the first do nothing.
func (sl *slots[K]) take(key K, limit int, others func() int, msg string) (release func(), err error) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if others()+sl.held[key] >= limit {
		return nil, slotsFull(msg)
	}
	if sl.held == nil {
		sl.held = make(map[K]int)
	}
	sl.held[key]++
	return sync.OnceFunc(func() {
		sl.mu.Lock()
		defer sl.mu.Unlock()
		if sl.held[key]--; sl.held[key] <= 0 {
			delete(sl.held, key)
		}
	}), nil
}

// check returns the error take would return now, holding nothing.
func (sl *slots[K]) check(key K, limit int, others func() int, msg string) error {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if others()+sl.held[key] >= limit {
		return slotsFull(msg)
	}
	return nil
}

// slotsFull is the rate_limited error of a place refused, saying msg.
func slotsFull(msg string) error {
	e := chat.Errorf(chat.ErrRateLimited, chat.CodeRateLimited, "%s", msg)
	e.RetryAfter = 10 * time.Second
	return e
}
