package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/mailer"
	"github.com/parley-chat/parley/internal/redact"
	"github.com/parley-chat/parley/internal/sqlite"
)

// Config is everything parley's server reads from flags and environment.
type Config struct {
	Addr                  string
	DB                    string
	SQLiteSync            string
	Broker                string
	RedisPrefix           string
	NodeID                string
	SMTP                  string
	SMTPMaxSessions       int
	MailFrom              string
	Origins               []string
	ChannelsCompat        bool
	PublicURL             string
	LogLevel              slog.Level
	MaxMessageLen         int
	MaxGroupMembers       int
	OnlineMax             int
	AnnounceMax           int
	NewConvsPerHour       int
	FriendRequestsPerHour int
	EmailLookupsPerHour   int
	RoomLeavesPerHour     int
	RenamesPerHour        int
	AddsByStrangersPerDay int
	StrangerAddsPerHour   int
	MaxFriends            int
	MaxBlocks             int
	MaxPendingRequests    int
	MaxUserRooms          int
	MaxUserGroups         int
	MaxFrameBytes         int64
	SendRate              float64
	SendBurst             int
	Outbox                int
	MaxUserConns          int
	OpenRate              float64
	OpenBurst             int
	BehindProxy           bool
	TLSCert               string
	TLSKey                string
	SessionTTL            time.Duration
	MaxSessionsPerUser    int
	PingInterval          time.Duration
	PongWait              time.Duration
	PollHold              time.Duration
	ShutdownTimeout       time.Duration
	Dev                   bool
	DebugAddr             string
	DebugPublic           bool
}

// envVar is the environment twin of a flag: --max-frame-bytes is
// PARLEY_MAX_FRAME_BYTES.
func envVar(flagName string) string {
	return "PARLEY_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseConfig reads args, falling back to PARLEY_* variables, then to the
// defaults; Validate's problems are reported all at once.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("parley", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var origins, level string
	fs.StringVar(&c.Addr, "addr", ":8080", "address to listen on")
	fs.StringVar(&c.DB, "db", "parley.db", "database: a SQLite file path (or sqlite:PATH) for one node, or postgres://user:pass@host:5432/db for any number")
	fs.StringVar(&c.SQLiteSync, "sqlite-synchronous", "normal", "SQLite only: normal syncs the disk at checkpoints (a power loss can undo the last commits), full at every commit (one fsync per group commit)")
	fs.StringVar(&c.Broker, "broker", "", "fan-out between nodes: redis://[user:pass@]host:6379/0 (or rediss:// for TLS); empty: in this process only (one node)")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", "parley:", "prefix of every Redis key and channel, so that deployments can share a Redis")
	fs.StringVar(&c.NodeID, "node-id", "", "this node's name in Redis presence keys (default: random); a node does not start under the name of a live one")
	fs.StringVar(&c.SMTP, "smtp", "", "SMTP server for sign-in mail, smtp://user:pass@host:587 (STARTTLS) or smtps://user:pass@host:465 (TLS); empty prints codes to the log")
	fs.IntVar(&c.SMTPMaxSessions, "smtp-max-sessions", mailer.DefaultMaxSessions, "SMTP sessions this node holds open at once; a sign-in code asked for when none frees in time is refused as unavailable, to retry")
	fs.StringVar(&c.MailFrom, "mail-from", "Parley <parley@localhost>", "From address of sign-in mail")
	fs.StringVar(&origins, "origins", "", "comma-separated origins allowed besides the server's own (e.g. https://chat.example.com)")
	fs.BoolVar(&c.ChannelsCompat, "channels-compat", false, "serve the Django Channels tutorial protocol on /ws/chat/<room>/")
	fs.StringVar(&c.PublicURL, "public-url", "", "public base URL used in mail links (default http://localhost:<port>, https with --tls-cert)")
	fs.StringVar(&level, "log-level", "info", "log level: debug, info, warn or error")
	fs.IntVar(&c.MaxMessageLen, "max-message-len", 4000, "longest message, in characters")
	fs.IntVar(&c.MaxGroupMembers, "max-group-members", 200, "largest member cap of a group (new groups get at most 200)")
	fs.IntVar(&c.OnlineMax, "online-max", 100, "most users a room's online list names; above it, arrivals and departures go out as a count, once a second")
	fs.IntVar(&c.AnnounceMax, "announce-max", 1000, "most members a room may have for joining and leaving it to post a message")
	fs.IntVar(&c.NewConvsPerHour, "new-convs-per-hour", 100, "rooms and groups one user (or one address on the Channels endpoint) may make in an hour")
	fs.IntVar(&c.FriendRequestsPerHour, "friend-requests-per-hour", 100, "friend requests one user may make in an hour")
	fs.IntVar(&c.EmailLookupsPerHour, "email-lookups-per-hour", 100, "searches for people by a whole email address one user may make in an hour")
	fs.IntVar(&c.RoomLeavesPerHour, "room-leaves-per-hour", 60, "rooms one user may leave in an hour (each leave, and entering again after it, posts to the room)")
	fs.IntVar(&c.RenamesPerHour, "renames-per-hour", 10, "times one user may change their name in an hour (each rename is told to their contacts, direct chats, groups and the rooms they have open)")
	fs.IntVar(&c.AddsByStrangersPerDay, "adds-by-strangers-per-day", 20, "groups one user may be added to in a day by users who are not their friends")
	fs.IntVar(&c.StrangerAddsPerHour, "stranger-adds-per-hour", 200, "users who are not their friends one user may add to groups in an hour")
	fs.IntVar(&c.MaxUserGroups, "max-user-groups", 500, "groups one user may be in, owned or joined")
	fs.IntVar(&c.MaxUserRooms, "max-user-rooms", 500, "rooms one user may be in")
	fs.IntVar(&c.MaxPendingRequests, "max-pending-requests", 200, "friend requests one user may have unanswered")
	fs.IntVar(&c.MaxFriends, "max-friends", 1000, "friends one user may have")
	fs.IntVar(&c.MaxBlocks, "max-blocks", 1000, "users one user may block")
	fs.Int64Var(&c.MaxFrameBytes, "max-frame-bytes", 32<<10, "largest WebSocket frame a client may send, in bytes")
	fs.Float64Var(&c.SendRate, "send-rate", 10, "sends per second allowed per user on this node, shared by their WebSockets and long-poll channels (per connection on the Django Channels endpoint)")
	fs.IntVar(&c.SendBurst, "send-burst", 20, "sends allowed in a burst, shared as --send-rate")
	fs.IntVar(&c.Outbox, "outbox", 256, "frames queued per connection before a slow reader is disconnected")
	fs.IntVar(&c.MaxUserConns, "max-user-conns", 64, "WebSockets and long-poll channels a user (or, on /ws/chat/, a client address) may hold on this node")
	fs.Float64Var(&c.OpenRate, "open-rate", 2, "WebSockets and long-poll channels a user (or, on /ws/chat/, a client address) may open per second on this node, past --open-burst")
	fs.IntVar(&c.OpenBurst, "open-burst", 20, "WebSockets and long-poll channels a user may open in a burst, as --open-rate")
	fs.BoolVar(&c.BehindProxy, "behind-proxy", false, "behind a proxy: client IP from X-Forwarded-For; TLS (Secure cookies, Strict-Transport-Security) unless X-Forwarded-Proto says http")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "serve HTTPS with this certificate file (with --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "private key file for --tls-cert")
	fs.DurationVar(&c.SessionTTL, "session-ttl", 30*24*time.Hour, "session lifetime, renewed while in use")
	fs.IntVar(&c.MaxSessionsPerUser, "max-sessions-per-user", 100, "sessions one user may have; a sign-in past it ends their least recently used")
	fs.DurationVar(&c.PingInterval, "ping-interval", 30*time.Second, "WebSocket ping period")
	fs.DurationVar(&c.PongWait, "pong-wait", 60*time.Second, "drop a WebSocket silent for this long")
	fs.DurationVar(&c.PollHold, "poll-hold", 25*time.Second, "hold a long-poll request open at most this long")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a graceful shutdown may take; a second SIGINT or SIGTERM ends the process at once")
	fs.BoolVar(&c.Dev, "dev", false, "serve the UI from ui/dist on disk instead of the embedded copy")
	fs.StringVar(&c.DebugAddr, "debug-addr", "", "serve Go's pprof profiles on this address (e.g. 127.0.0.1:6060); off when empty")
	fs.BoolVar(&c.DebugPublic, "debug-public", false, "allow --debug-addr on an address other than loopback (pprof has no authentication)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: parley [flags]\n       parley bench [flags]     load tool (parley bench --help)\n       parley admin COMMAND     sessions without mail, migrations (parley admin help)\n       parley migrate [--db DB] apply the database migrations\n\nEvery flag may also be set by its environment variable, e.g. --db by PARLEY_DB.\n\nFlags:\n")
		fs.PrintDefaults()
	}

	var problems []error
	// Environment first, so that flags given on the command line win,
	// over a bad value too: its problem stands only for a flag not given.
	envProblems := make(map[string]error)
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envVar(f.Name)); v != "" {
			if err := f.Value.Set(v); err != nil {
				envProblems[f.Name] = fmt.Errorf("%s=%q: %v", envVar(f.Name), v, err)
			}
		}
	})
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	fs.Visit(func(f *flag.Flag) { delete(envProblems, f.Name) }) // the flags given
	fs.VisitAll(func(f *flag.Flag) {
		if err := envProblems[f.Name]; err != nil {
			problems = append(problems, err)
		}
	})
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
	}
	for _, o := range strings.Split(origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.Origins = append(c.Origins, o)
		}
	}
	c.SQLiteSync = strings.ToLower(c.SQLiteSync)
	if err := c.LogLevel.UnmarshalText([]byte(level)); err != nil {
		problems = append(problems, fmt.Errorf("--log-level: %v", err))
	}
	problems = append(problems, c.Validate())
	if err := errors.Join(problems...); err != nil {
		return Config{}, fmt.Errorf("bad configuration:\n%w", err)
	}
	return c, nil
}

// Validate reports every problem of c.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Addr == "" {
		bad("--addr is required")
	} else if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("--addr %q: want HOST:PORT or :PORT: %v", c.Addr, err)
	}
	switch {
	case c.DB == "":
		bad("--db is required")
	case isPostgresURL(c.DB), strings.HasPrefix(c.DB, "sqlite:"):
	case strings.Contains(c.DB, "://"):
		bad("--db %q: unknown URL scheme; want postgres://USER:PASSWORD@HOST:5432/DBNAME, or a SQLite file (PATH or sqlite:PATH)", redactURL(c.DB))
	case isKeywordDSN(c.DB):
		// Not echoed: it may hold a password.
		bad("--db looks like a PostgreSQL connection string of keyword=value pairs: give it as a URL, postgres://USER:PASSWORD@HOST:5432/DBNAME?sslmode=require (or sqlite:PATH for a SQLite file of that name)")
	}
	if _, err := sqlite.ParseSynchronous(c.SQLiteSync); err != nil {
		bad("--sqlite-synchronous: %v", err)
	} else if isPostgresURL(c.DB) && c.SQLiteSync != string(sqlite.SyncNormal) {
		bad("--sqlite-synchronous applies to a SQLite database only: PostgreSQL syncs as its synchronous_commit setting says")
	}
	if c.Broker != "" && !strings.HasPrefix(c.Broker, "redis://") && !strings.HasPrefix(c.Broker, "rediss://") {
		bad("--broker %q: only redis:// and rediss:// brokers are supported (empty for one node)", redactURL(c.Broker))
	} else if c.Broker != "" {
		if _, err := redact.Parse(c.Broker); err != nil {
			bad("--broker: %v", err)
		}
	}
	if c.Broker != "" && c.RedisPrefix == "" {
		bad("--redis-prefix must not be empty")
	}
	if c.SMTP != "" {
		// Checked, not dialled, with a From known to pass: what is wrong
		// is the URL's. The mailer's errors never show its password.
		if _, err := mailer.NewSMTP(c.SMTP, "parley@localhost", nil); err != nil {
			bad("--smtp: %v", err)
		}
	}
	if c.MailFrom != "" {
		if _, err := mail.ParseAddress(c.MailFrom); err != nil {
			bad("--mail-from %q: %v", c.MailFrom, err)
		}
	}
	for _, o := range c.Origins {
		// Only what a browser's Origin header can be (a scheme and a host
		// with an optional port) ever matches one: a query, a fragment, a
		// user or a wildcard would leave the origin refused, with nothing
		// said.
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") ||
			u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(o, "#") || !originHost(u) {
			bad("--origins: %q is not an origin like https://chat.example.com", o)
		}
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("--public-url: %q is not an http(s) URL", c.PublicURL)
		} else if u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(c.PublicURL, "?") || strings.Contains(c.PublicURL, "#") {
			// The sign-in mail's link is this URL followed by
			// "/#login?email=...": after a query or a fragment it would
			// not open the sign-in.
			bad("--public-url: %q has a query or a fragment; give the base URL alone", c.PublicURL)
		}
	}
	if c.MaxMessageLen < 1 || c.MaxMessageLen > 100_000 {
		bad("--max-message-len must be between 1 and 100000, not %d", c.MaxMessageLen)
	}
	if c.MaxGroupMembers < 2 || c.MaxGroupMembers > 100_000 {
		bad("--max-group-members must be between 2 and 100000, not %d", c.MaxGroupMembers)
	}
	if c.OnlineMax < 1 || c.OnlineMax > 10_000 {
		bad("--online-max must be between 1 and 10000, not %d", c.OnlineMax)
	}
	// Counts and hourly allowances: at least one of each.
	for _, f := range []struct {
		flag string
		v    int
	}{
		{"--announce-max", c.AnnounceMax},
		{"--new-convs-per-hour", c.NewConvsPerHour},
		{"--friend-requests-per-hour", c.FriendRequestsPerHour},
		{"--email-lookups-per-hour", c.EmailLookupsPerHour},
		{"--room-leaves-per-hour", c.RoomLeavesPerHour},
		{"--renames-per-hour", c.RenamesPerHour},
		{"--adds-by-strangers-per-day", c.AddsByStrangersPerDay},
		{"--stranger-adds-per-hour", c.StrangerAddsPerHour},
		{"--max-user-groups", c.MaxUserGroups},
		{"--max-user-rooms", c.MaxUserRooms},
		{"--max-pending-requests", c.MaxPendingRequests},
		{"--max-friends", c.MaxFriends},
		{"--max-blocks", c.MaxBlocks},
		{"--max-sessions-per-user", c.MaxSessionsPerUser},
		{"--smtp-max-sessions", c.SMTPMaxSessions},
	} {
		if f.v < 1 {
			bad("%s must be at least 1, not %d", f.flag, f.v)
		}
	}
	if min := int64(c.MaxMessageLen)*4 + 1024; c.MaxFrameBytes < min {
		bad("--max-frame-bytes must be at least %d (4 bytes per character of --max-message-len plus 1024), not %d", min, c.MaxFrameBytes)
	}
	if !(c.SendRate > 0) || math.IsInf(c.SendRate, 0) { // NaN fails the first
		bad("--send-rate must be a positive number, not %v", c.SendRate)
	}
	// The server allows five times the burst of other frames: a burst
	// whose fivefold overflows would refuse them all.
	if c.SendBurst < 1 || c.SendBurst > 1_000_000_000 {
		bad("--send-burst must be between 1 and 1000000000, not %d", c.SendBurst)
	}
	if c.Outbox < 8 {
		bad("--outbox must be at least 8")
	}
	if c.MaxUserConns < 1 {
		bad("--max-user-conns must be at least 1")
	}
	if !(c.OpenRate > 0) || math.IsInf(c.OpenRate, 0) { // NaN fails the first
		bad("--open-rate must be a positive number, not %v", c.OpenRate)
	}
	if c.OpenBurst < 1 || c.OpenBurst > 1_000_000_000 {
		bad("--open-burst must be between 1 and 1000000000, not %d", c.OpenBurst)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("--tls-cert and --tls-key go together")
	}
	if c.SessionTTL < time.Minute {
		bad("--session-ttl must be at least 1m")
	}
	if c.PollHold < time.Second || c.PollHold > 5*time.Minute {
		bad("--poll-hold (%s) must be between 1s and 5m", c.PollHold)
	}
	if c.PingInterval < time.Second {
		// Each ping is a frame to every connection: at a nanosecond the
		// server would do nothing else, and drop every one it misses.
		bad("--ping-interval (%s) must be at least 1s", c.PingInterval)
	} else if c.PongWait <= c.PingInterval {
		bad("--pong-wait (%s) must be longer than --ping-interval (%s)", c.PongWait, c.PingInterval)
	}
	if c.ShutdownTimeout <= 0 {
		bad("--shutdown-timeout must be positive")
	}
	if c.DebugAddr != "" {
		if host, _, err := net.SplitHostPort(c.DebugAddr); err != nil {
			bad("--debug-addr %q: %v", c.DebugAddr, err)
		} else if !c.DebugPublic && !loopback(host) {
			bad("--debug-addr %q is not a loopback address, and pprof has no authentication: use 127.0.0.1:PORT, or add --debug-public", c.DebugAddr)
		}
	}
	return errors.Join(errs...)
}

// loopback reports whether host names only this machine: "localhost" or
// a loopback IP.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// publicURL is the configured public URL or one derived from the listener.
func (c *Config) publicURL(listenAddr string) string {
	if c.PublicURL != "" {
		return c.PublicURL
	}
	port := "8080"
	if i := strings.LastIndexByte(listenAddr, ':'); i >= 0 {
		port = listenAddr[i+1:]
	}
	scheme := "http"
	if c.TLSCert != "" {
		scheme = "https"
	}
	if _, err := strconv.Atoi(port); err != nil {
		return scheme + "://localhost"
	}
	return scheme + "://localhost:" + port
}

// originHost reports whether the host of u, an --origins entry, is one a
// browser can name: letters, digits, dots and hyphens, or an IPv6 literal
// in brackets, and a port, if any, as a browser writes it (1 to 65535,
// no leading zero).
func originHost(u *url.URL) bool {
	for _, r := range u.Hostname() {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(".-:", r):
		default:
			return false
		}
	}
	if !strings.HasSuffix(u.Host, ":") && u.Port() == "" {
		return true
	}
	p, err := strconv.Atoi(u.Port())
	return err == nil && p >= 1 && p <= 65535 && strconv.Itoa(p) == u.Port()
}
