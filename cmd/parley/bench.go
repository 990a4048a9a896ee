package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/bench"
)

const benchUsage = `Usage: parley bench [flags]

Load-tests running Parley servers: opens --conns client connections spread
over --rooms rooms (and over the --targets in turn), lets --senders
connections per room send for --duration, and checks that every
connection of a room receives every message of it once and in order.
Prints a progress line a second to stderr, then a summary and one JSON
line to stdout; exits with an error if a delivery was lost, duplicated or
out of order, if a send was still unanswered at the end, if a connection
failed or ended before the run did, or if the run was interrupted (SIGINT)
before its end. Runs with GOGC=400 unless GOGC is set, to leave the CPU to
a server on the same machine.

Prepare the server for it:
  - sessions without mail: parley admin sessions --db parley.db --count N > tokens
    (before starting the server; pass the file as --tokens)
  - raise its per-user limits, or senders get rate_limited and slow
    readers are disconnected: --send-rate 100000 --send-burst 100000 --outbox 4096
  - more than 20 connections a token (64 at once), or a --transport compat
    run of more, needs --open-burst (and --max-user-conns) raised as far
  - --transport compat needs the server's --channels-compat
  - --groups needs the server's --max-group-members at or above the users
    of one group (--conns / --rooms with a token each)
  - both processes need an open-file limit above the connection count (ulimit -n)

Flags:
`

// benchGCPercent is the load tool's GOGC unless the environment sets one.
const benchGCPercent = 400

// runBench is "parley bench ...": the load tool (internal/bench).
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("parley bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg     bench.Config
		targets string
		tokens  string
		cpuProf string
		msgsOut string
	)
	fs.StringVar(&targets, "targets", "http://127.0.0.1:8080", "comma-separated server base URLs; connections are spread over them in turn")
	fs.StringVar(&cfg.Transport, "transport", bench.TransportWS, "ws (native WebSocket, signed in), compat (Django Channels endpoint, anonymous) or longpoll (HTTP long-polling on /api/poll, signed in)")
	fs.IntVar(&cfg.Conns, "conns", 100, "client connections")
	fs.IntVar(&cfg.Rooms, "rooms", 1, "rooms the connections are spread over")
	fs.BoolVar(&cfg.Groups, "groups", false, "spread the connections over private groups instead of rooms: the run creates them (named ROOM-PREFIX-RUN-N, owned by the user of their first connection), adds the users of the others, and deletes them at the end (ws and longpoll)")
	fs.IntVar(&cfg.SendersPerRoom, "senders", 1, "connections per room that also send")
	fs.Float64Var(&cfg.Rate, "rate", 100, "messages per second over all senders; 0: as fast as --inflight allows")
	fs.IntVar(&cfg.InFlight, "inflight", 0, "unanswered sends per sender (default 8 with --rate 0, else 1000)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to send (with --idle, how long to hold the connections)")
	fs.Float64Var(&cfg.Ramp, "ramp", 1000, "connections opened per second")
	fs.DurationVar(&cfg.Drain, "drain", 5*time.Second, "how long to wait for answers and deliveries once sending stops")
	fs.DurationVar(&cfg.Settle, "settle", 1500*time.Millisecond, "once connected, wait until no frame has come for this long (30s at most) before sending: what connecting made the server deliver (joins, online counts) is then not timed; 0: send at once")
	fs.StringVar(&cfg.RoomPrefix, "room-prefix", "bench", "rooms are PREFIX-0, PREFIX-1, ...")
	fs.StringVar(&tokens, "tokens", "", `file of session tokens, one a line, as printed by "parley admin sessions" (USER_ID<TAB>EMAIL<TAB>TOKEN) or bare; reused in turn if fewer than --conns (required for ws and longpoll)`)
	fs.IntVar(&cfg.ServerPID, "pid", 0, "the server's process ID (same machine): report its memory and CPU time")
	fs.StringVar(&cpuProf, "cpuprofile", "", "write the load tool's own CPU profile (go tool pprof) to this file")
	fs.StringVar(&msgsOut, "messages", "", "write what the run saw of each message to this file, as CSV: room, sender, n, sent_unix_ns, receivers, and the latency to the first, median and last receiver in µs")
	fs.BoolVar(&cfg.MarkRead, "read", false, "every client moves its read position as the web app does while it shows the room, with the latest seq: in a group at the first message at once, then at most once a second; in a room at most every 5 s, the first after a random part of that (ws and longpoll)")
	fs.BoolVar(&cfg.Idle, "idle", false, "connect and hold only, to measure the server's memory per connection (with --pid)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	for _, t := range strings.Split(targets, ",") {
		if t = strings.TrimSpace(t); t != "" {
			cfg.Targets = append(cfg.Targets, t)
		}
	}
	if tokens != "" {
		var err error
		if cfg.Tokens, err = readTokens(tokens); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	cfg.Progress = stderr
	// bench.Config takes zero for its default, which these flags have
	// already: a zero given is refused, not read as the default.
	var errs []error
	if cfg.Rooms == 0 {
		errs = append(errs, errors.New("--rooms must be at least 1, not 0"))
	}
	if cfg.Ramp == 0 {
		errs = append(errs, errors.New("--ramp must be more than 0 connections per second"))
	}
	if cfg.Drain == 0 {
		errs = append(errs, errors.New("--drain must be more than 0: the sends still unanswered when sending stops need it"))
	}
	// Checked before the files of --messages and --cpuprofile are made:
	// flags the run refuses leave an earlier run's files as they were.
	if err := errors.Join(append(errs, cfg.Check())...); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if getenv("GOGC") == "" {
		// The tool shares the machine with the server it measures: it
		// spends memory, not CPU, on collecting its garbage.
		defer debug.SetGCPercent(debug.SetGCPercent(benchGCPercent))
	}

	var msgs *os.File
	if msgsOut != "" {
		// Made before the run, so that a path that cannot be written fails
		// at once rather than after it.
		var err error
		if msgs, err = os.Create(msgsOut); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer msgs.Close()
		cfg.PerMessage = true
	}
	if cpuProf != "" {
		f, err := os.Create(cpuProf)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	res, err := bench.Run(ctx, cfg)
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("bench: %w", err)
	}
	if werr := res.WriteSummary(stdout); werr != nil {
		return werr
	}
	line, jerr := json.Marshal(res)
	if jerr != nil {
		return jerr
	}
	fmt.Fprintf(stdout, "%s\n", line)
	if msgs != nil {
		if err := res.WriteMessages(msgs); err != nil {
			return fmt.Errorf("bench: %s: %w", msgsOut, err)
		}
		if err := msgs.Close(); err != nil {
			return fmt.Errorf("bench: %s: %w", msgsOut, err)
		}
	}
	switch {
	case res.Interrupted:
		return fmt.Errorf("bench: %s", res.InterruptReason)
	case err != nil:
		return fmt.Errorf("bench: %w", err)
	case res.ConnsEstablished == 0:
		return fmt.Errorf("bench: no connection established: %s", res.ConnectError)
	case res.ConnsFailed > 0 || res.ConnsDropped > 0:
		return fmt.Errorf("bench: of %d connections, %d failed to connect and %d ended early: %s",
			res.ConnsEstablished+res.ConnsFailed, res.ConnsFailed, res.ConnsDropped, cmp.Or(res.ConnectError, res.DropError))
	case !res.OK:
		return fmt.Errorf("bench: %d lost, %d duplicated, %d out of order, %d sends unanswered; %d of %d deliveries received",
			res.Lost, res.Duplicated, res.OutOfOrder, res.Unanswered, res.DeliveriesReceived, res.DeliveriesExpected)
	}
	return nil
}

// readTokens reads session tokens from a file of "parley admin sessions"
// lines (the token is the third column) or of bare tokens.
func readTokens(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseTokens(f, path)
}

func parseTokens(r io.Reader, name string) ([]string, error) {
	var tokens []string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		switch f := strings.Fields(line); len(f) {
		case 1:
			tokens = append(tokens, f[0])
		case 3:
			tokens = append(tokens, f[2])
		default:
			return nil, fmt.Errorf("%s:%d: want USER_ID<TAB>EMAIL<TAB>TOKEN or a bare token", name, n)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%s: no tokens", name)
	}
	return tokens, nil
}
