// Package bench is the load tool behind "parley bench": it opens many
// client connections to running Parley servers, sends messages at a set
// rate, and checks every delivery for loss, duplication and order while
// timing it end to end. It speaks only the wire protocol
// (docs/protocol.md) and must not import the server's packages; its tests
// do, to start a server.
package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes one benchmark run.
type Config struct {
	Targets        []string      // server base URLs (http://host:port); connections are spread over them in turn
	Transport      string        // TransportWS (default), TransportCompat or TransportLongPoll
	Conns          int           // client connections
	Rooms          int           // rooms the connections are spread over (default 1)
	Groups         bool          // spread the connections over private groups the run creates (and deletes), not rooms
	SendersPerRoom int           // connections per room that also send
	Rate           float64       // messages per second over all senders; 0: as fast as InFlight allows
	InFlight       int           // unanswered sends per sender (default 8 when Rate is 0, else 1000)
	Duration       time.Duration // how long to send; with Idle, how long to hold the connections
	Ramp           float64       // connections opened per second (default 1000)
	Drain          time.Duration // from the end of the sending window, how long to wait for senders still behind, then for answers and deliveries (default 5s)
	Settle         time.Duration // before sending, wait until no frame has come for this long (see settle), 30s at most; 0: do not wait
	RoomPrefix     string        // rooms are PREFIX-0 … PREFIX-(Rooms-1) (default "bench")
	Tokens         []string      // session tokens (ws, longpoll); reused in turn when fewer than Conns
	ServerPID      int           // if not 0, the server's memory and CPU time are read from /proc
	Idle           bool          // connect and hold only, to measure the server's memory per connection
	PerMessage     bool          // fill Result.Messages: what the run saw of each message
	MarkRead       bool          // every client moves its read position as the web app does (ws, longpoll)
	Progress       io.Writer     // a progress line per second and phase changes; nil: none
}

const (
	defaultRamp         = 1000
	defaultDrain        = 5 * time.Second
	defaultInFlight     = 8     // per sender, as fast as possible
	defaultRateInFlight = 1000  // per sender, at a set rate: a memory bound, not a pace
	minRamp             = 0.001 // one connection every 1,000 s: the ramp's interval must fit a time.Duration
	maxRamp             = 1_000_000
	maxConnecting       = 200 // connections being set up at once
	connectTimeout      = 30 * time.Second
	settleLimit         = 30 * time.Second // the longest settle waits
	fdReserve           = 64               // files the process needs besides its connections
	nShards             = 64               // receive statistics are spread over shards to spare the cache lines
)

// fill applies the defaults and reports every problem of c at once.
func (c *Config) fill() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Transport == "" {
		c.Transport = TransportWS
	}
	switch c.Transport {
	case TransportWS, TransportCompat, TransportLongPoll:
	default:
		bad("unknown transport %q: want %s, %s or %s", c.Transport, TransportWS, TransportCompat, TransportLongPoll)
	}
	if len(c.Targets) == 0 {
		bad("no target: give at least one server URL")
	}
	for i, t := range c.Targets {
		t = strings.TrimRight(strings.TrimSpace(t), "/")
		u, err := url.Parse(t)
		// The API's paths are appended to it: a query or a fragment would
		// take them in.
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			bad("target %q: want a URL like http://127.0.0.1:8080, with no query or fragment", t)
		}
		c.Targets[i] = t
	}
	if c.Rooms == 0 {
		c.Rooms = 1
	}
	if c.Ramp == 0 {
		c.Ramp = defaultRamp
	}
	if c.Drain == 0 {
		c.Drain = defaultDrain
	}
	if c.RoomPrefix == "" {
		c.RoomPrefix = "bench"
	}
	if c.InFlight == 0 {
		c.InFlight = defaultInFlight
		if c.Rate > 0 {
			c.InFlight = defaultRateInFlight
		}
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	switch {
	case c.Conns < 1:
		bad("conns must be at least 1, not %d", c.Conns)
	case c.Rooms < 1 || c.Rooms > c.Conns:
		bad("rooms must be between 1 and the number of connections (%d), not %d", c.Conns, c.Rooms)
	case !c.Idle && (c.SendersPerRoom < 1 || c.SendersPerRoom > c.Conns/c.Rooms):
		bad("senders per room must be between 1 and the connections per room (%d), not %d", c.Conns/c.Rooms, c.SendersPerRoom)
	}
	// The comparisons are written so that NaN, which fails every one,
	// fails them.
	senders := float64(max(c.Rooms, 1)) * float64(max(c.SendersPerRoom, 1))
	switch {
	case !(c.Rate >= 0) || math.IsInf(c.Rate, 1):
		bad("rate must be a number of messages per second, 0 or more, not %v", c.Rate)
	case c.Rate > 0 && senders/c.Rate*float64(time.Second) >= math.MaxInt64:
		// A sender's interval between sends must fit a time.Duration.
		bad("rate must be at least %.3g messages per second for %g senders, not %v", senders*float64(time.Second)/math.MaxInt64, senders, c.Rate)
	}
	if c.InFlight < 1 {
		bad("in-flight must be at least 1, not %d", c.InFlight)
	}
	if c.Duration < 0 || (c.Duration == 0 && !c.Idle) {
		bad("duration must be positive, not %v", c.Duration)
	}
	if !(c.Ramp >= minRamp && c.Ramp <= maxRamp) {
		bad("ramp must be between %g and %d connections per second, not %v", minRamp, maxRamp, c.Ramp)
	}
	if c.Settle < 0 || c.Settle > settleLimit {
		bad("settle must be between 0 and %v, not %v", settleLimit, c.Settle)
	}
	if c.Drain < 0 {
		bad("drain must not be negative")
	}
	if c.ServerPID < 0 {
		bad("server PID %d: a process ID is positive", c.ServerPID)
	}
	name := c.RoomPrefix + "-" + strconv.Itoa(c.Rooms-1)
	if len(name) > 64 || strings.ContainsFunc(name, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_')
	}) {
		bad("room prefix %q: room names are 1-64 letters, digits, - and _", c.RoomPrefix)
	}
	if c.Groups {
		// The run's ID, at most 8 characters, goes in a group's name.
		name = c.RoomPrefix + "-12345678-" + strconv.Itoa(c.Rooms-1)
		if len(name) > 64 {
			bad("room prefix %q: too long for the names of %d groups (at most 64 characters with the run's ID)", c.RoomPrefix, c.Rooms)
		}
		if c.Transport == TransportCompat {
			bad("groups need a signed-in transport (%s or %s); the %s endpoint has rooms only", TransportWS, TransportLongPoll, TransportCompat)
		}
	}
	if c.MarkRead && c.Transport == TransportCompat {
		bad("read positions need a signed-in transport (%s or %s); the %s endpoint has none", TransportWS, TransportLongPoll, TransportCompat)
	}
	if (c.Transport == TransportWS || c.Transport == TransportLongPoll) && len(c.Tokens) == 0 {
		bad("the %s transport needs session tokens (parley admin sessions)", c.Transport)
	}
	return errors.Join(errs...)
}

// Result is what a run measured. Its JSON form is one line of the
// "parley bench" output.
type Result struct {
	Transport         string  `json:"transport"`
	Rooms             int     `json:"rooms"`
	Groups            bool    `json:"groups,omitempty"` // the rooms were private groups
	Senders           int     `json:"senders"`
	Rate              float64 `json:"rate"` // target messages/s; 0: as fast as possible
	Idle              bool    `json:"idle,omitempty"`
	ConnsEstablished  int     `json:"conns_established"`
	ConnsFailed       int     `json:"conns_failed"`
	ConnsDropped      int     `json:"conns_dropped"` // ended by the server or the network before the run did
	ConnectSeconds    float64 `json:"connect_seconds"`
	GroupSetupSeconds float64 `json:"group_setup_seconds,omitempty"` // creating the groups, before connecting
	ConnectRate       float64 `json:"connect_rate"`                  // connections established per second
	ConnectError      string  `json:"connect_error,omitempty"`
	DropError         string  `json:"drop_error,omitempty"` // why the first connection to end early ended
	MessagesSent      int64   `json:"messages_sent"`
	MessagesAcked     int64   `json:"messages_acked"` // compat: echoed back to the sender
	// Of MessagesAcked, those acknowledged by the end of the sending
	// window (DurationSeconds); the rest came in the drain after it.
	AckedInWindow      int64            `json:"acked_in_window"`
	SendErrors         int64            `json:"send_errors"`
	SendErrorCodes     map[string]int64 `json:"send_error_codes,omitempty"`
	Unanswered         int64            `json:"unanswered"`            // sends neither acknowledged nor refused by the end of the drain
	ReadsSent          int64            `json:"reads_sent,omitempty"`  // with Config.MarkRead: read positions sent
	ReadErrors         int64            `json:"read_errors,omitempty"` // read positions refused or not sent
	ReadErrorCodes     map[string]int64 `json:"read_error_codes,omitempty"`
	ReceiptFrames      int64            `json:"receipt_frames,omitempty"` // receipt and receipts frames received (groups)
	DeliveriesExpected int64            `json:"deliveries_expected"`
	DeliveriesReceived int64            `json:"deliveries_received"` // distinct
	DeliveriesPerSec   float64          `json:"deliveries_per_sec"`
	Lost               int64            `json:"lost"`
	Duplicated         int64            `json:"duplicated"`
	OutOfOrder         int64            `json:"out_of_order"`
	Latency            Latency          `json:"latency_ms"` // over deliveries
	// LatencyFirst and LatencyLast are over messages: each message's
	// latency to its first recipient (its fastest delivery: the way
	// through the server, before most of the fan-out) and to its last
	// (its slowest delivery).
	LatencyFirst    Latency      `json:"latency_first_ms"`
	LatencyLast     Latency      `json:"latency_last_ms"`
	DurationSeconds float64      `json:"duration_seconds"` // of sending (idle: of holding)
	Server          *ServerStats `json:"server,omitempty"`
	// The load tool's own CPU time while sending and draining: on a
	// machine it shares with the server, what it takes from the server.
	ToolCPUSeconds       float64 `json:"tool_cpu_seconds,omitempty"`
	ToolCPUPerDeliveryUS float64 `json:"tool_cpu_per_delivery_us,omitempty"`
	// Of ToolCPUSeconds, the time the kernel spent on the tool's behalf
	// (its system calls, and TCP's work in them).
	ToolCPUSystemSeconds float64 `json:"tool_cpu_system_seconds,omitempty"`
	// The CPU time of the machine the tool runs on (the server's too, when
	// it shares it) while sending and draining, over all its CPUs: busy,
	// and in all (busy and idle). Busy near all means the machine could not
	// do more: the latencies then hold the queueing. Busy beyond the
	// server's and the tool's is other processes', and the kernel's own
	// threads'.
	MachineBusySeconds float64 `json:"machine_busy_seconds,omitempty"`
	MachineCPUSeconds  float64 `json:"machine_cpu_seconds,omitempty"`
	// How long the tool waited, once every client was connected, for the
	// frames of connecting to stop coming (Config.Settle, see settle), and
	// how long its collection of its own garbage took after that, before
	// sending began (see run).
	SettleMS              float64  `json:"settle_ms,omitempty"`
	ToolGCBeforeSendingMS float64  `json:"tool_gc_before_sending_ms,omitempty"`
	OK                    bool     `json:"ok"`
	Interrupted           bool     `json:"interrupted,omitempty"` // stopped early (ctx ended): the run is not OK whatever it measured
	InterruptReason       string   `json:"interrupt_reason,omitempty"`
	Notes                 []string `json:"notes,omitempty"`
	// With Config.PerMessage, each message sent, room by room, sender by
	// sender, in the order sent: too many for the JSON line.
	Messages []MessageStat `json:"-"`
}

// MessageStat is what a run saw of one message: when it was sent, how many
// clients of its room got it, and how long it took to reach the first of
// them, the median one and the last.
type MessageStat struct {
	Room      int   // the room's index: ROOM-PREFIX-Room
	Sender    int   // the sender's index within the room
	N         int64 // the sender's Nth message
	Sent      time.Time
	Receivers int // clients of the room that got it
	// Latencies to the first, the median and the last of the receivers, to
	// the µs; 0 if none got it.
	First, Median, Last time.Duration
}

// ServerStats is what /proc says about the server process. A figure that
// needs a reading the process did not give (it ended during the run) is 0,
// with a note.
type ServerStats struct {
	RSSBefore        int64   `json:"rss_bytes_before"`    // before connecting
	RSSAfter         int64   `json:"rss_bytes_after"`     // once every connection was open
	RSSEnd           int64   `json:"rss_bytes_end"`       // when the run ended
	RSSPerConn       int64   `json:"rss_per_conn_bytes"`  // (after - before) / connections
	CPUSeconds       float64 `json:"cpu_seconds"`         // while sending and draining (idle: while connecting)
	CPUPerDeliveryUS float64 `json:"cpu_per_delivery_us"` // CPU time per delivery received
	CPUSystemSeconds float64 `json:"cpu_system_seconds"`  // of CPUSeconds, the kernel's on the server's behalf

	cpuRead bool // the CPU figures were measured (the summary's business)
}

// checkHost checks the run of c, filled, against this machine: the
// process's limit on open files, which it raises as far as it may, and
// the server's process, read now rather than once the groups are made.
func (c *Config) checkHost() error {
	if c.ServerPID > 0 {
		if _, err := readProc(c.ServerPID); err != nil {
			return fmt.Errorf("server stats of PID %d: %w", c.ServerPID, err)
		}
	}
	files := c.Conns + fdReserve
	if c.Transport == TransportLongPoll && !c.Idle {
		files += c.Rooms * c.SendersPerRoom * maxPosts // a sender's POSTs
		if c.MarkRead {
			files += maxMarkPosts
		}
	}
	if limit, err := raiseFileLimit(); err == nil && limit > 0 && uint64(files) > limit {
		return fmt.Errorf("%d connections need about %d open files; the limit is %d (ulimit -n)", c.Conns, files, limit)
	}
	return nil
}

// Check reports every problem of c that Run would refuse it for before
// connecting, without running it: a caller can check before it prepares
// what the run's results go to.
func (c Config) Check() error {
	c.Targets = slices.Clone(c.Targets)
	if err := c.fill(); err != nil {
		return err
	}
	return c.checkHost()
}

// Run runs the benchmark cfg describes and returns its measurements. It
// returns when the run is over or ctx ends (then with what was measured so
// far and ctx's error); every connection and goroutine it started is gone
// by then.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg.Targets = slices.Clone(cfg.Targets)
	if err := cfg.fill(); err != nil {
		return Result{}, err
	}
	tr, err := newTransport(cfg)
	if err != nil {
		return Result{}, err
	}
	if err := cfg.checkHost(); err != nil {
		return Result{}, err
	}
	r := newRun(cfg, tr)
	return r.run(ctx)
}

// runState is one run: its clients and the counters they share.
type runState struct {
	cfg     Config
	tr      transport
	id      string // makes client IDs unique across runs
	clients []*client
	rooms   []*room
	senders []*sender
	start   time.Time

	groupHTTP  *http.Client  // with cfg.Groups: the groups' set-up and clean-up
	groupSetup time.Duration // with cfg.Groups: how long creating them took

	established, failed, dropped atomic.Int64
	sent, acked, sendErrs        atomic.Int64
	resumed                      atomic.Int64 // long-poll channels the server rebuilt
	marks                        atomic.Int64 // read positions sent
	closing                      atomic.Bool  // sessions are closing: no more read positions
	expected                     atomic.Int64 // so far: acked × receivers of the room
	shards                       [nShards]shard

	mu          sync.Mutex // guards what follows and writes to cfg.Progress
	connectErr  error
	dropErr     error
	notes       []string
	interrupted []string         // the phases ctx cut short
	markCodes   map[string]int64 // read positions refused or not sent, by code

	// acked when sending ended; set by sendAll. Here, after the counters
	// the clients share, which so lie against the cache lines as they did
	// before it.
	ackedInWindow int64
}

// shard is a part of the receive statistics; a client uses one.
type shard struct {
	hist     histogram
	frames   atomic.Int64 // every event its clients read, of any kind (settle)
	received atomic.Int64 // distinct deliveries of this run's messages
	last     atomic.Int64 // UnixNano of the latest
}

type room struct {
	idx       int
	name      string
	groupID   int64 // with Config.Groups: set before any client connects
	clients   []*client
	senders   []*sender
	receivers atomic.Int64 // clients connected when sending began
}

// client is one connection.
type client struct {
	id     int
	target string
	token  string
	room   *room
	sender *sender // nil if the client only receives
	shard  *shard
	sess   session
	alive  atomic.Bool
	mark   marker // with Config.MarkRead

	counted bool // connected when sending began: expected to receive every message

	// Owned by the reader goroutine.
	seq      seqChecker   // with seqs: the room's sequence
	bySender []seqChecker // without: each sender's message numbers
	// lat[k][n-1] is 1 + the latency, in µs, of message n of the room's
	// k-th sender; 0 if it never came. Kept here, by the one goroutine that
	// writes it, the slowest delivery of each message (its last
	// recipient's) is found at the end without the receivers sharing a
	// thing while they run.
	lat                  [][]int32
	received             int64       // without seqs: distinct deliveries
	synced               *seqChecker // with seqs: the seqs the client's own sync fetched; nil until it fetched one
	dups, late           int64       // of this run's messages
	otherDups, otherLate int64       // of other messages (joins, leaves)
	bad                  int64       // frames that did not parse
	receipts             int64       // receipt and receipts frames
}

// sender is a client that also sends.
type sender struct {
	id    int // over the run: room.idx*SendersPerRoom + number within the room
	c     *client
	slots chan struct{} // one per unanswered send

	done atomic.Bool // the sender goroutine returned

	// Set by the sender goroutine, read after it ends.
	sent, writeErrs int64
	sentAt          []int64 // with Config.PerMessage: UnixNano of each send

	// Owned by the reader goroutine of c.
	acked  []int64 // with seqs: the seqs of acknowledged messages
	nAcked int64
	errs   int64
	codes  map[string]int64
}

func (s *sender) release() {
	select {
	case <-s.slots:
	default:
	}
}

func newRun(cfg Config, tr transport) *runState {
	r := &runState{cfg: cfg, tr: tr, id: strconv.FormatUint(rand.Uint64()&0xffffffffff, 36)}
	for i := range cfg.Rooms {
		name := cfg.RoomPrefix + "-" + strconv.Itoa(i)
		if cfg.Groups {
			name = cfg.RoomPrefix + "-" + r.id + "-" + strconv.Itoa(i)
		}
		r.rooms = append(r.rooms, &room{idx: i, name: name})
	}
	for i := range cfg.Conns {
		rm := r.rooms[i%cfg.Rooms]
		c := &client{
			id: i,
			// Spread each room over the targets too.
			target: cfg.Targets[(i/cfg.Rooms)%len(cfg.Targets)],
			room:   rm,
			shard:  &r.shards[i%nShards],
		}
		if len(cfg.Tokens) > 0 {
			c.token = cfg.Tokens[i%len(cfg.Tokens)]
		}
		if k := len(rm.clients); !cfg.Idle && k < cfg.SendersPerRoom {
			s := &sender{id: rm.idx*cfg.SendersPerRoom + k, c: c, slots: make(chan struct{}, cfg.InFlight), codes: make(map[string]int64)}
			c.sender = s
			rm.senders = append(rm.senders, s)
			r.senders = append(r.senders, s)
		}
		rm.clients = append(rm.clients, c)
		r.clients = append(r.clients, c)
	}
	return r
}

func (r *runState) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.cfg.Progress, format+"\n", args...)
}

func (r *runState) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// interrupt records that ctx ended phase before its end.
func (r *runState) interrupt(phase string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.interrupted = append(r.interrupted, phase)
}

// now is the time on the tool's own clock: the wall clock as the run
// began, moved on by the monotonic clock since. Messages carry it as Unix
// nanoseconds (formatBody), which have no monotonic reading, and a
// receiver subtracts it from its own now: with time.Now, a step of the
// wall clock during a run (a clock set by hand, an NTP step) would shift
// every latency measured across it, or make one negative.
func (r *runState) now() time.Time { return r.start.Add(time.Since(r.start)) }

func (r *runState) run(ctx context.Context) (Result, error) {
	cfg := r.cfg
	r.start = time.Now()
	stopProgress := r.startProgress()
	defer stopProgress() // idempotent

	// The groups are deleted once the connections are closed, and before
	// the result is made, which holds the note of a group not deleted; on
	// an early return, by the defer (after the connections' own, below).
	deleteGroups := func() {}
	if cfg.Groups {
		r.groupHTTP = newAPIClient()
		defer r.groupHTTP.CloseIdleConnections()
		deleteGroups = sync.OnceFunc(r.deleteGroups)
		defer deleteGroups()
		if err := r.makeGroups(ctx); err != nil {
			if ctx.Err() == nil {
				return Result{}, fmt.Errorf("groups: %w", err)
			}
			r.interrupt("creating the groups cut short")
		}
	}
	// The server's memory before connecting: after the groups, which are
	// not the connections' to account for.
	var before, connected, sending procStats
	if cfg.ServerPID != 0 {
		var err error
		if before, err = readProc(cfg.ServerPID); err != nil {
			return Result{}, fmt.Errorf("server stats of PID %d: %w", cfg.ServerPID, err)
		}
	}

	var readers sync.WaitGroup
	defer func() {
		r.closeAll()
		readers.Wait()
		r.tr.release()
	}()

	r.logf("connecting %d clients (%s) to %s at up to %g/s", cfg.Conns, cfg.Transport, strings.Join(cfg.Targets, ", "), cfg.Ramp)
	t0 := time.Now()
	r.connectAll(ctx, &readers)
	connectTime := time.Since(t0)
	if cfg.ServerPID != 0 {
		connected = r.proc()
	}
	var self, selfEnd procStats // the tool's own, while sending and draining
	var machine, machineEnd machineStats
	selfErr, machineErr := errors.New("not measured"), errors.New("not measured")
	var settled, gcBeforeSending time.Duration
	// With nobody connected there is nothing to wait for, and nothing is sent.
	if !cfg.Idle && cfg.Settle > 0 && r.established.Load() > 0 && ctx.Err() == nil {
		var ok bool
		if settled, ok = r.settle(ctx, cfg.Settle, settleLimit); ok {
			r.logf("no frame came for %v: settled after %v", cfg.Settle, settled.Round(time.Millisecond))
		}
	}
	if !cfg.Idle {
		// Connecting leaves the tool a heap of garbage (thousands of
		// handshakes, requests and their buffers), which its collector
		// would otherwise take in the first second of sending, beside the
		// readers whose latencies it measures. Collected now, as testing.B
		// collects before it times a benchmark.
		t := time.Now()
		runtime.GC()
		gcBeforeSending = time.Since(t)
		r.logf("collected the tool's garbage of connecting in %v", gcBeforeSending.Round(time.Millisecond))
		// The server's CPU time is taken from here too: over the span of
		// the tool's and the machine's, without the settle wait and the
		// collection, which are connecting's.
		if cfg.ServerPID != 0 {
			sending = r.proc()
		}
		self, selfErr = readProc(os.Getpid())
		machine, machineErr = readMachine()
	}

	var sendStart, sendEnd time.Time
	if cfg.Idle {
		r.logf("holding %d connections for %v", r.established.Load(), cfg.Duration)
		sendStart = time.Now()
		if !sleep(ctx.Done(), cfg.Duration) {
			r.interrupt(fmt.Sprintf("holding stopped after %.1fs of %v", time.Since(sendStart).Seconds(), cfg.Duration))
		}
		sendEnd = time.Now()
	} else if r.established.Load() > 0 && ctx.Err() == nil {
		sendStart, sendEnd = r.sendAll(ctx)
	} else if ctx.Err() != nil && !cfg.Idle {
		r.interrupt("nothing was sent")
	}
	var end procStats
	if cfg.ServerPID != 0 {
		end = r.proc()
	}
	if selfErr == nil {
		selfEnd, selfErr = readProc(os.Getpid())
	}
	if machineErr == nil {
		machineEnd, machineErr = readMachine()
	}

	stopProgress()
	r.closeAll()
	readers.Wait()
	deleteGroups()

	res := r.result(connectTime, sendStart, sendEnd)
	res.SettleMS = float64(settled.Microseconds()) / 1000
	res.ToolGCBeforeSendingMS = float64(gcBeforeSending.Microseconds()) / 1000
	if selfErr == nil && !sendStart.IsZero() {
		cpu := selfEnd.CPU - self.CPU
		res.ToolCPUSeconds = cpu.Seconds()
		res.ToolCPUSystemSeconds = (selfEnd.Sys - self.Sys).Seconds()
		if res.DeliveriesReceived > 0 {
			res.ToolCPUPerDeliveryUS = float64(cpu.Microseconds()) / float64(res.DeliveriesReceived)
		}
	}
	if machineErr == nil && !sendStart.IsZero() {
		res.MachineBusySeconds = (machineEnd.Busy - machine.Busy).Seconds()
		res.MachineCPUSeconds = (machineEnd.Total - machine.Total).Seconds()
	}
	if cfg.ServerPID != 0 {
		res.Server = serverStats(before, connected, sending, end, cfg.Idle, res.ConnsEstablished, res.DeliveriesReceived)
		if res.Server.RSSAfter > 0 && res.Server.RSSPerConn <= 0 {
			res.Notes = append(res.Notes, "the server's RSS did not grow while connecting: it reuses memory of earlier work; measure memory per connection on a freshly started server")
		}
	}
	return res, ctx.Err()
}

// proc reads the server's stats; a failure becomes a note.
func (r *runState) proc() procStats {
	ps, err := readProc(r.cfg.ServerPID)
	if err != nil {
		r.note("server stats: %v; the server figures that need them are 0 (not measured)", err)
	}
	return ps
}

// serverStats makes the server's figures from its readings before
// connecting, once connected, as sending began and at the end.
func serverStats(before, connected, sending, end procStats, idle bool, conns int, deliveries int64) *ServerStats {
	s := &ServerStats{RSSBefore: before.RSS, RSSAfter: connected.RSS, RSSEnd: end.RSS}
	if conns > 0 && connected.ok {
		s.RSSPerConn = (connected.RSS - before.RSS) / int64(conns)
	}
	from, to := sending, end
	if idle {
		from, to = before, connected
	}
	if !from.ok || !to.ok {
		// The process could not be read at one end of the span (it
		// ended; proc noted why): its CPU time over it is unknown, 0.
		return s
	}
	s.cpuRead = true
	cpu := to.CPU - from.CPU
	s.CPUSeconds = cpu.Seconds()
	s.CPUSystemSeconds = (to.Sys - from.Sys).Seconds()
	if deliveries > 0 {
		s.CPUPerDeliveryUS = float64(cpu.Microseconds()) / float64(deliveries)
	}
	return s
}

// sleep waits for d or until done is closed, and reports whether it slept
// the whole time.
func sleep(done <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return false
	case <-t.C:
		return true
	}
}

// connectAll connects every client at most cfg.Ramp per second and at most
// maxConnecting at once, starting a reader for each.
func (r *runState) connectAll(ctx context.Context, readers *sync.WaitGroup) {
	tick := time.NewTicker(time.Duration(float64(time.Second) / r.cfg.Ramp))
	defer tick.Stop()
	sem := make(chan struct{}, maxConnecting)
	var wg sync.WaitGroup
	for i, c := range r.clients {
		if i > 0 {
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
		select {
		case <-ctx.Done():
		case sem <- struct{}{}:
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			r.connect(ctx, c, readers)
		})
	}
	wg.Wait()
	r.tr.doneConnecting()
	if ctx.Err() != nil {
		r.interrupt("connecting cut short")
	}
}

// countReceivers marks the clients connected now, as sending begins, as
// the receivers of their rooms: those expected to get every message. One
// that connected but ended since (while the run settled, say) is not.
func (r *runState) countReceivers() {
	for _, rm := range r.rooms {
		n := int64(0)
		for _, c := range rm.clients {
			if c.counted = c.alive.Load(); c.counted {
				n++
			}
		}
		rm.receivers.Store(n)
	}
}

func (r *runState) connect(ctx context.Context, c *client, readers *sync.WaitGroup) {
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	sess, err := r.tr.connect(cctx, c)
	if err != nil {
		r.failed.Add(1)
		r.mu.Lock()
		if r.connectErr == nil && ctx.Err() == nil {
			r.connectErr = fmt.Errorf("client %d to %s: %w", c.id, c.target, err)
		}
		r.mu.Unlock()
		return
	}
	c.sess = sess
	if r.tr.seqs() {
		c.seq = newSeqChecker(sess.base())
	} else {
		c.bySender = make([]seqChecker, len(c.room.senders))
		for i := range c.bySender {
			c.bySender[i] = newSeqChecker(0)
		}
	}
	c.alive.Store(true)
	r.established.Add(1)
	readers.Go(func() {
		err := sess.read(func(ev event) { r.handle(c, ev) })
		if c.alive.Swap(false) { // not closed by closeAll
			sess.close(time.Now().Add(time.Second))
			r.dropped.Add(1)
			r.mu.Lock()
			if r.dropErr == nil {
				r.dropErr = fmt.Errorf("client %d: %w", c.id, err)
			}
			r.mu.Unlock()
		}
	})
}

// settle waits until no client has read a frame for quiet, for limit at
// most, and reports how long it waited and whether it came to pass. What
// connecting makes the server deliver may still be coming when the last
// client has connected: each client's join, to every client of its room
// before it, and each room's online count, which Parley sends at most
// once a second (chat.Config.OnlineCountEvery), to all of them. Messages
// sent into that would wait behind it, and their latencies be those of
// connecting, not of the load asked for: with 5,000 long-polling clients
// in 50 rooms, a server trace showed some 3,200 polls answered with no
// message in the 300 ms before the first send (docs/benchmarks.md,
// target 7).
func (r *runState) settle(ctx context.Context, quiet, limit time.Duration) (time.Duration, bool) {
	frames := func() (n int64) {
		for i := range r.shards {
			n += r.shards[i].frames.Load()
		}
		return n
	}
	t0 := time.Now()
	last, lastAt := frames(), t0
	tick := time.NewTicker(max(min(quiet/10, 50*time.Millisecond), time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return time.Since(t0), false
		case now := <-tick.C:
			if n := frames(); n != last {
				last, lastAt = n, now
			} else if now.Sub(lastAt) >= quiet {
				return now.Sub(t0), true
			}
			if now.Sub(t0) >= limit {
				r.note("frames still came %v after connecting: sending began all the same", limit)
				return now.Sub(t0), false
			}
		}
	}
}

// closeAll ends every session; each reader then returns.
func (r *runState) closeAll() {
	r.closing.Store(true)
	for _, c := range r.clients {
		c.mark.stop()
	}
	deadline := time.Now().Add(time.Second)
	for _, c := range r.clients {
		if c.alive.Swap(false) {
			c.sess.close(deadline)
		}
	}
}

// sendAll runs the senders for cfg.Duration, then waits up to cfg.Drain
// for the answers and deliveries still under way.
func (r *runState) sendAll(ctx context.Context) (start, end time.Time) {
	cfg := r.cfg
	r.countReceivers()
	var active []*sender
	for _, s := range r.senders {
		if s.c.alive.Load() {
			active = append(active, s)
		}
	}
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(len(active)) / cfg.Rate * float64(time.Second))
		if per := cfg.Rate / float64(len(active)); r.sendLimit() > 0 && per > r.sendLimit() {
			r.note("each sender sends %.4g/s but the server allows %g/s per user, shared by its connections (--send-rate): expect rate_limited errors", per, r.sendLimit())
		}
	} else if r.sendLimit() > 0 && r.sendLimit() < 1000 {
		r.note("the server allows %g sends/s per user, shared by its connections (--send-rate): as fast as possible will hit rate_limited", r.sendLimit())
	}
	if cfg.Rate > 0 {
		r.logf("sending %g messages/s from %d senders for %v", cfg.Rate, len(active), cfg.Duration)
	} else {
		r.logf("sending as fast as possible from %d senders (%d in flight each) for %v", len(active), cfg.InFlight, cfg.Duration)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start = r.now() // the senders' due times and stamps are on the tool's clock
	for i, s := range active {
		// Stagger the senders over one interval so that the rate is even.
		offset := time.Duration(int64(interval) * int64(i) / int64(len(active)))
		wg.Go(func() {
			defer s.done.Store(true)
			r.runSender(s, stop, start, start.Add(cfg.Duration), interval, offset)
		})
	}
	full := sleep(ctx.Done(), cfg.Duration)
	drainFrom := time.Now()
	deadline := time.NewTimer(cfg.Drain)
	defer deadline.Stop()
	drained, caughtUp := false, true
	if full && interval > 0 {
		// At a set rate a sender returns once it sent what was due in
		// the window; one that a stall held back sends what it still
		// owes first, within the drain, each message timed from its
		// place. Stopped at the end of the window, it would leave out
		// of the figures the messages the stall held back. One whose
		// connection ended is not waited for.
		poll := time.NewTicker(20 * time.Millisecond)
		for caughtUp && !drained && slices.ContainsFunc(active, func(s *sender) bool { return !s.done.Load() && s.c.alive.Load() }) {
			select {
			case <-poll.C:
			case <-ctx.Done():
				caughtUp = false
			case <-deadline.C:
				drained = true
			}
		}
		poll.Stop()
	}
	close(stop)
	waitSenders(&wg, active)
	end = r.now()
	r.ackedInWindow = r.acked.Load()
	switch {
	case !full:
		r.interrupt(fmt.Sprintf("sending stopped after %.1fs of %v", end.Sub(start).Seconds(), cfg.Duration))
		return start, end
	case !caughtUp:
		r.interrupt("sending what was due in the window stopped before the senders caught up")
		return start, end
	case drained:
		r.note("draining ended after %v with messages due in the sending window still unsent: the server held the senders back", cfg.Drain)
		return start, end
	}

	r.logf("sending stopped; draining for up to %v", (cfg.Drain - time.Since(drainFrom)).Round(time.Millisecond))
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for !r.settled() {
		select {
		case <-ctx.Done():
			r.interrupt(fmt.Sprintf("draining stopped with %d sends unanswered and %d deliveries missing",
				r.inFlight(), max(0, r.expected.Load()-r.received())))
			return start, end
		case <-deadline.C:
			r.note("draining ended after %v with %d sends unanswered and %d deliveries missing",
				cfg.Drain, r.inFlight(), max(0, r.expected.Load()-r.received()))
			return start, end
		case <-poll.C:
		}
	}
	return start, end
}

// stopGrace is how long a sender has to return once sending stopped
// before waitSenders cuts its write short, and again between two cuts.
const stopGrace = 50 * time.Millisecond

// waitSenders waits for the senders of wg, of active, to return once
// sending stopped. A sender whose server stopped reading its connection
// is blocked in a write that would hold the run for the write's deadline
// (10 s), past the sending window and the drain: a sender that has not
// returned within stopGrace has its send interrupted, again every
// stopGrace while it has not (a write just beginning sets its own
// deadline). One that returns at once, as a sender not blocked does,
// sends nothing more and is left alone.
func waitSenders(wg *sync.WaitGroup, active []*sender) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	tick := time.NewTicker(stopGrace)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		for _, s := range active {
			if !s.done.Load() {
				s.c.sess.interrupt()
			}
		}
	}
}

// sendLimit is the per-user send limit a server announced, 0 if
// none did.
func (r *runState) sendLimit() float64 {
	for _, s := range r.senders {
		if s.c.alive.Load() {
			return s.c.sess.sendRate()
		}
	}
	return 0
}

func (r *runState) inFlight() int {
	n := 0
	for _, s := range r.senders {
		if s.c.alive.Load() {
			n += len(s.slots)
		}
	}
	return n
}

// settled reports whether every send was answered and every expected
// delivery arrived, or no connection is left to wait for.
func (r *runState) settled() bool {
	if r.inFlight() > 0 {
		return false
	}
	if r.received() >= r.expected.Load() {
		return true
	}
	for _, c := range r.clients {
		if c.alive.Load() {
			return false
		}
	}
	return true
}

func (r *runState) received() int64 {
	var n int64
	for i := range r.shards {
		n += r.shards[i].received.Load()
	}
	return n
}

// runSender sends from s until stop is closed: message n when
// offset+(n-1)×interval has passed since start, if that is before end, or,
// if interval is 0, whenever fewer than cfg.InFlight sends are unanswered.
// A sender that fell behind its schedule (waiting for answers, or for a
// write) sends what it owes at once, and a message it was held back from
// (it came to it late because of the send before, or had to wait for an
// answer) is timed from when it was due, however short the wait: the wait
// is the server's doing and belongs in the latency, which would otherwise
// be taken only of the messages the server let through (coordinated
// omission). A message sent on time, after the sender's timer, is timed
// when it went, so that the timer's own lateness stays out of the figures.
func (r *runState) runSender(s *sender, stop <-chan struct{}, start, end time.Time, interval, offset time.Duration) {
	var timer *time.Timer
	if interval > 0 {
		timer = time.NewTimer(time.Hour)
		defer timer.Stop()
	}
	for n := int64(1); ; n++ {
		var due time.Time
		held := false // held back by the send before, or waiting for an answer
		if interval > 0 {
			due = start.Add(offset + time.Duration(n-1)*interval)
			if !due.Before(end) {
				// Not in the window: a message due at its end raced the
				// end, and rate × duration were sent without it.
				return
			}
			if d := time.Until(due); d > 0 {
				timer.Reset(d)
				select {
				case <-stop:
					return
				case <-timer.C:
				}
			} else {
				// Past its place already: the send before went late.
				// The first, past its place only by the time the
				// senders took to start, is the tool's.
				held = n > 1
			}
		}
		select {
		case s.slots <- struct{}{}:
		default:
			held = true
			select {
			case <-stop:
				return
			case s.slots <- struct{}{}:
			}
		}
		select {
		case <-stop:
			s.release()
			return
		default:
		}
		// The session stamps the send once it can go, past its own
		// limits (a long-poll session's POST slots): that wait is the
		// load tool's, not the server's.
		var now time.Time
		err := s.c.sess.send(stop, func() (string, string) {
			now = r.now()
			if interval > 0 && held && now.After(due) {
				now = due
			}
			return clientID(now, s.id, n), formatBody(s.id, n, now)
		})
		if err != nil {
			s.release()
			if !errors.Is(err, errStopped) {
				s.writeErrs++
			}
			return
		}
		s.sent++
		r.sent.Add(1)
		if r.cfg.PerMessage {
			s.sentAt = append(s.sentAt, now.UnixNano())
		}
	}
}

// clientID is the client ID of a sender's nth send at t: the time in 16
// hexadecimal digits, then "-SENDER-N". IDs made later sort later, as
// docs/protocol.md recommends: the SQLite store's index of client IDs then
// takes a batch of sends on a few pages, where IDs in each sender's own
// order put each sender on pages of its own. The time also keeps them apart
// from an earlier run's IDs.
func clientID(t time.Time, sender int, n int64) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 16, 16+2+2*20)
	for i, x := 15, uint64(t.UnixNano()); i >= 0; i, x = i-1, x>>4 {
		b[i] = digits[x&15]
	}
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(sender), 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, n, 10)
	return string(b)
}

// formatBody is a message body: "SENDER:N:UNIXNANOS".
func formatBody(sender int, n int64, t time.Time) string {
	b := make([]byte, 0, 40)
	b = strconv.AppendInt(b, int64(sender), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, n, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, t.UnixNano(), 10)
	return string(b)
}

// parseBody reads a body made by formatBody.
func parseBody(body string) (sender int, n int64, t time.Time, ok bool) {
	a, rest, ok1 := strings.Cut(body, ":")
	b, c, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 {
		return 0, 0, time.Time{}, false
	}
	s, err1 := strconv.Atoi(a)
	n, err2 := strconv.ParseInt(b, 10, 64)
	ns, err3 := strconv.ParseInt(c, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || s < 0 || n < 1 {
		return 0, 0, time.Time{}, false
	}
	return s, n, time.Unix(0, ns), true
}

// handle is called by c's reader for each event.
func (r *runState) handle(c *client, ev event) {
	c.shard.frames.Add(1)
	s := c.sender
	switch ev.typ {
	case evBad:
		c.bad++
	case evResumed:
		r.resumed.Add(1)
	case evReceipt:
		c.receipts++
	case evMessage:
		r.message(c, ev)
	case evAck:
		if s != nil {
			s.acked = append(s.acked, ev.seq)
			r.answered(s)
		}
	case evError:
		if ev.ref == markRef {
			r.markErr(ev.code)
			return
		}
		if s != nil {
			s.errs++
			s.codes[ev.code]++
			r.sendErrs.Add(1)
			s.release()
		}
	}
}

// answered counts a stored send of s.
func (r *runState) answered(s *sender) {
	s.nAcked++
	s.release()
	r.acked.Add(1)
	r.expected.Add(s.c.room.receivers.Load())
}

func (r *runState) message(c *client, ev event) {
	now := r.now()
	g, n, sent, ok := parseBody(ev.body)
	ours := ev.isText && ok && g < len(r.senders)
	if r.tr.seqs() {
		if ev.synced {
			if c.synced == nil {
				sc := newSeqChecker(c.seq.base)
				c.synced = &sc
			}
			c.synced.add(ev.seq)
		}
		st := c.seq.add(ev.seq)
		if st == seqDup && (ev.synced || c.synced != nil && c.synced.has(ev.seq)) {
			// Again after the client's own sync fetched it, or fetched
			// again by it: a client ignores it (docs/protocol.md,
			// "Staying in sync"). A message that came twice otherwise
			// is a duplicate, also below what a sync fetched.
			return
		}
		if r.cfg.MarkRead {
			// Shown, so read, as the web app has it; the latency of this
			// delivery was taken before.
			r.queueMark(c, ev.seq)
		}
		if !ours {
			switch st {
			case seqDup:
				c.otherDups++
			case seqLate:
				c.otherLate++
			}
			return
		}
		switch st {
		case seqIgnored:
			return
		case seqDup:
			c.dups++
			return
		}
		if c.hasMessage(g-c.room.idx*r.cfg.SendersPerRoom, n) {
			// The same message again under another seq: the server
			// stored one send twice.
			c.dups++
			return
		}
		if st == seqLate {
			c.late++
		}
	} else {
		k := g - c.room.idx*r.cfg.SendersPerRoom
		if !ours || k < 0 || k >= len(c.bySender) {
			return
		}
		switch c.bySender[k].add(n) {
		case seqIgnored:
			return
		case seqDup:
			c.dups++
			return
		case seqLate:
			c.late++
		}
		c.received++
		if s := c.sender; s != nil && s.id == g {
			r.answered(s) // the echo of our own send
		}
	}
	sh := c.shard
	sh.received.Add(1)
	lat := now.Sub(sent)
	sh.hist.record(lat)
	sh.last.Store(now.UnixNano())
	c.noteLatency(g-c.room.idx*r.cfg.SendersPerRoom, n, lat)
}

// maxKept is the most messages per sender whose latency a client keeps.
const maxKept = 1 << 22

// hasMessage reports whether c got message n of the room's k-th sender
// before, whatever its seq.
func (c *client) hasMessage(k int, n int64) bool {
	return k >= 0 && k < len(c.lat) && n >= 1 && n <= int64(len(c.lat[k])) && c.lat[k][n-1] > 0
}

// noteLatency keeps the latency of message n of the room's k-th sender.
func (c *client) noteLatency(k int, n int64, d time.Duration) {
	if k < 0 || k >= len(c.room.senders) || n < 1 || n > maxKept {
		return
	}
	if c.lat == nil {
		c.lat = make([][]int32, len(c.room.senders))
	}
	l := c.lat[k]
	if int64(len(l)) < n {
		l = slices.Grow(l, int(n)-len(l))[:n]
		c.lat[k] = l
	}
	l[n-1] = int32(min(d.Microseconds(), math.MaxInt32-1)) + 1
}

// perMessage walks the messages of room rm that were sent or that some
// client got. For each that some client got it adds to first and last the
// latency of its fastest and of its slowest delivery: the time it took to
// reach its first and its last recipient. If stats is not nil it also
// appends to it what the run saw of each.
func perMessage(rm *room, first, last *histogram, stats *[]MessageStat) {
	us := func(v int32) time.Duration { return time.Duration(v-1) * time.Microsecond }
	var lats []int32 // of one message: 1 + µs, as in client.lat
	for k, s := range rm.senders {
		var sentAt []int64
		if s != nil {
			sentAt = s.sentAt
		}
		n := len(sentAt)
		for _, c := range rm.clients {
			if k < len(c.lat) {
				n = max(n, len(c.lat[k]))
			}
		}
		for i := range n {
			lats = lats[:0]
			lo, hi := int32(math.MaxInt32), int32(0)
			for _, c := range rm.clients {
				if k < len(c.lat) && i < len(c.lat[k]) && c.lat[k][i] > 0 {
					v := c.lat[k][i]
					lo, hi = min(lo, v), max(hi, v)
					if stats != nil {
						lats = append(lats, v)
					}
				}
			}
			if hi > 0 { // some client got it
				first.recordMicros(int64(lo - 1))
				last.recordMicros(int64(hi - 1))
			}
			if stats == nil {
				continue
			}
			m := MessageStat{Room: rm.idx, Sender: k, N: int64(i) + 1, Receivers: len(lats)}
			if i < len(sentAt) {
				m.Sent = time.Unix(0, sentAt[i])
			}
			if len(lats) > 0 {
				// Only the CSV's median needs them in order.
				slices.Sort(lats)
				m.First, m.Median, m.Last = us(lo), us(lats[(len(lats)-1)/2]), us(hi)
			}
			*stats = append(*stats, m)
		}
	}
}

func (r *runState) latency() snapshot {
	var s snapshot
	for i := range r.shards {
		s.add(&r.shards[i].hist)
	}
	return s
}

// startProgress prints a line a second until the returned function is
// called.
func (r *runState) startProgress() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var prev int64
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			recv := r.received()
			lat := r.latency()
			r.logf("%6.1fs  conns %d/%d  sent %d  acked %d  errors %d  received %d  %d/s  p99 %.2fms",
				time.Since(r.start).Seconds(), r.established.Load(), r.cfg.Conns,
				r.sent.Load(), r.acked.Load(), r.sendErrs.Load(), recv, recv-prev, float64(lat.quantile(0.99))/1000)
			prev = recv
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}

// result adds everything up once every reader has returned.
func (r *runState) result(connectTime time.Duration, sendStart, sendEnd time.Time) Result {
	cfg := r.cfg
	res := Result{
		Transport:         cfg.Transport,
		Rooms:             cfg.Rooms,
		Groups:            cfg.Groups,
		Senders:           len(r.senders),
		Idle:              cfg.Idle,
		ConnsEstablished:  int(r.established.Load()),
		ConnsFailed:       int(r.failed.Load()),
		ConnsDropped:      int(r.dropped.Load()),
		ConnectSeconds:    connectTime.Seconds(),
		GroupSetupSeconds: r.groupSetup.Seconds(),
		SendErrorCodes:    make(map[string]int64),
		Notes:             r.notes,
	}
	if n := cfg.Conns - res.ConnsFailed - res.ConnsEstablished; n > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d connections were not attempted (interrupted)", n))
		r.interrupted = append(r.interrupted, fmt.Sprintf("%d of %d connections not attempted", n, cfg.Conns))
	}
	if len(r.interrupted) > 0 {
		res.Interrupted = true
		res.InterruptReason = "interrupted: " + strings.Join(slices.Compact(r.interrupted), "; ")
	}
	if !cfg.Idle {
		res.Rate = cfg.Rate
	}
	if connectTime > 0 {
		res.ConnectRate = float64(res.ConnsEstablished) / connectTime.Seconds()
	}
	if r.connectErr != nil {
		res.ConnectError = r.connectErr.Error()
	}
	if r.dropErr != nil {
		res.DropError = r.dropErr.Error()
		res.Notes = append(res.Notes, fmt.Sprintf("%d connections ended early; the first: %v", res.ConnsDropped, r.dropErr))
	}
	if !sendEnd.IsZero() {
		res.DurationSeconds = sendEnd.Sub(sendStart).Seconds()
	}
	res.AckedInWindow = r.ackedInWindow
	var writeErrs, otherDups, otherLate, otherMissing, bad, sharedSeqs int64
	res.ReadsSent = r.marks.Load()
	r.mu.Lock() // a timer may still be failing to send one
	res.ReadErrorCodes = maps.Clone(r.markCodes)
	r.mu.Unlock()
	for _, n := range res.ReadErrorCodes {
		res.ReadErrors += n
	}
	for _, s := range r.senders {
		res.MessagesSent += s.sent
		res.MessagesAcked += s.nAcked
		res.SendErrors += s.errs + s.writeErrs
		res.Unanswered += max(0, s.sent-s.nAcked-s.errs)
		writeErrs += s.writeErrs
		for code, n := range s.codes {
			res.SendErrorCodes[code] += n
		}
	}
	for _, rm := range r.rooms {
		receivers := rm.receivers.Load()
		var acked []int64
		if r.tr.seqs() {
			for _, s := range rm.senders {
				acked = append(acked, s.acked...)
			}
			// Every acknowledged send is a message each receiver is to
			// get. Two sends acknowledged with one seq are two messages
			// of which at most one can be delivered: the other is lost.
			res.DeliveriesExpected += int64(len(acked)) * receivers
			slices.Sort(acked)
			n := len(acked)
			acked = slices.Compact(acked)
			sharedSeqs += int64(n - len(acked))
		} else {
			for _, s := range rm.senders {
				res.DeliveriesExpected += (s.sent - s.errs) * receivers
			}
		}
		for _, c := range rm.clients {
			bad += c.bad
			res.ReceiptFrames += c.receipts
			if !c.counted {
				continue
			}
			res.Duplicated += c.dups
			res.OutOfOrder += c.late
			otherDups += c.otherDups
			otherLate += c.otherLate
			if !r.tr.seqs() {
				res.DeliveriesReceived += c.received
				continue
			}
			var got, missedBelowLast int64
			for _, seq := range acked {
				switch {
				case c.seq.has(seq):
					got++
				case seq < c.seq.last:
					missedBelowLast++
				}
			}
			res.DeliveriesReceived += got
			otherMissing += c.seq.missing() - missedBelowLast
		}
	}
	res.Lost = max(0, res.DeliveriesExpected-res.DeliveriesReceived)
	if res.DeliveriesReceived > res.DeliveriesExpected {
		res.Notes = append(res.Notes, fmt.Sprintf("%d more deliveries than expected", res.DeliveriesReceived-res.DeliveriesExpected))
	}
	var last int64
	for i := range r.shards {
		last = max(last, r.shards[i].last.Load())
	}
	// Over the sending window, or to the last delivery if that came later:
	// a run at a set rate offered its rate for the whole window, also when
	// its last message was delivered before the window ended.
	if last > 0 {
		end := time.Unix(0, last)
		if sendEnd.After(end) {
			end = sendEnd
		}
		if span := end.Sub(sendStart); span > 0 {
			res.DeliveriesPerSec = float64(res.DeliveriesReceived) / span.Seconds()
		}
	}
	lat := r.latency()
	res.Latency = lat.latency()
	firstHist, lastHist := new(histogram), new(histogram) // large: not on the stack
	var stats *[]MessageStat
	if r.cfg.PerMessage {
		stats = &res.Messages
	}
	for _, rm := range r.rooms {
		perMessage(rm, firstHist, lastHist, stats)
	}
	var fs, ls snapshot
	fs.add(firstHist)
	ls.add(lastHist)
	res.LatencyFirst, res.LatencyLast = fs.latency(), ls.latency()
	if len(res.SendErrorCodes) == 0 {
		res.SendErrorCodes = nil
	}
	if writeErrs > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d sends failed to be written (the connection broke)", writeErrs))
	}
	if !r.tr.seqs() {
		res.Notes = append(res.Notes, "compat frames carry no sequence numbers: order and duplicates are checked per sender, and lost is expected minus received")
	}
	if otherDups+otherLate > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("other messages (joins, leaves) arrived %d times twice and %d times out of order", otherDups, otherLate))
	}
	if otherMissing > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d deliveries of other messages (joins, leaves) left gaps in the room sequences (a client would sync them)", otherMissing))
	}
	if sharedSeqs > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d sends were acknowledged with the seq of another send", sharedSeqs))
	}
	if bad > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d frames could not be parsed", bad))
	}
	if n := r.resumed.Load(); n > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("the server rebuilt %d long-poll channels (it lost them or they fell behind); their missed messages came in sync frames", n))
	}
	// A connection that failed or ended early is a client that got less
	// than the run asked for, even when what the others got is whole.
	res.OK = !res.Interrupted && res.ConnsEstablished > 0 && res.ConnsFailed == 0 && res.ConnsDropped == 0 && res.Unanswered == 0 &&
		res.Lost == 0 && res.Duplicated == 0 && res.OutOfOrder == 0 && res.DeliveriesReceived == res.DeliveriesExpected
	slices.SortFunc(res.Notes, func(a, b string) int { return cmp.Compare(a, b) })
	return res
}
