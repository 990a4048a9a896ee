package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/hub"
	"github.com/parley-chat/parley/internal/inmem"
	"github.com/parley-chat/parley/internal/mailer"
	"github.com/parley-chat/parley/internal/postgres"
	"github.com/parley-chat/parley/internal/redact"
	"github.com/parley-chat/parley/internal/redis"
	"github.com/parley-chat/parley/internal/sqlite"
	"github.com/parley-chat/parley/internal/web"
	"github.com/parley-chat/parley/ui"
)

// store is what run needs of a database.
type store interface {
	chat.Store
	Ping(ctx context.Context) error
	Close() error
}

// run is the whole program: config → store, broker → hub, service, web
// handler → serve until ctx ends → shut down.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "admin":
			return helpIsNoError(runAdmin(ctx, args[1:], getenv, stdout, stderr))
		case "migrate":
			return helpIsNoError(adminMigrate(ctx, args[1:], getenv, stdout, stderr))
		case "bench":
			return runBench(ctx, args[1:], getenv, stdout, stderr)
		}
	}
	return runServer(ctx, args, getenv, stdout, stderr, nil)
}

// runServer is run without a subcommand: it serves Parley. wrap, if not
// nil, is given the store opened and returns the one the server uses, so
// that tests can serve the whole program on a store that fails on cue.
func runServer(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, wrap func(store) store) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return helpIsNoError(err)
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))

	// Before the store is opened or anything listens.
	var uiFS fs.FS
	if cfg.Dev {
		uiFS = os.DirFS("ui/dist")
		if _, err := fs.Stat(uiFS, "index.html"); err != nil {
			return fmt.Errorf("--dev serves the UI from ui/dist in the working directory (run parley from the repository's root): %w", err)
		}
	} else if uiFS, err = fs.Sub(ui.FS, "dist"); err != nil {
		return err
	}

	st, err := openStore(ctx, cfg.DB, sqlite.Options{Synchronous: sqlite.Synchronous(cfg.SQLiteSync), Logger: logger})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	// Closed last, once what may write has stopped, but waited for within
	// the shutdown's bound: a store that does not answer (a write lock
	// held by another process, PostgreSQL unreachable) holds its close
	// up, which waits for the group commit under way and the connections
	// in use. Nothing unanswered is lost by not waiting: a commit that
	// ends later is told to no client, whose resync finds it.
	var closeBy time.Time // the shutdown's deadline, once it has begun
	opened := st          // not the store wrap returns
	defer func() {
		d := storeCloseWait
		if !closeBy.IsZero() {
			d = max(d, time.Until(closeBy))
		}
		if err := closeWithin(opened.Close, d); err != nil {
			logger.Warn("close store", "err", err)
		}
	}()
	if _, ok := st.(*sqlite.DB); ok {
		logger.Info("sqlite database opened", "driver", sqlite.Driver, "synchronous", cfg.SQLiteSync)
	}
	if wrap != nil {
		st = wrap(st)
	}
	fab, err := openFabric(ctx, cfg, logger)
	if err != nil {
		return err
	}
	// After the graceful shutdown, which --shutdown-timeout bounds; Redis's
	// close takes at most redis.CloseTimeout more, even while it hangs.
	// The service closes after it, before the store, however run returns:
	// republishes still due are dropped, those running ended (Close
	// returns even while the broker hangs), and clients resync on
	// reconnecting; the presences Redis's close reported ended and has
	// stopped waiting for are cut, so that nothing writes to the store as
	// it closes (their users' last-seen times stay as they were).
	var svc *chat.Service
	defer func() {
		if err := fab.close(); err != nil {
			logger.Warn("close broker", "err", err)
		}
		if svc != nil {
			svc.Close()
		}
	}()

	var mail chat.Mailer = mailer.NewLog(logger)
	var smtpMail *mailer.SMTP // waited for at shutdown
	if cfg.SMTP != "" {
		if smtpMail, err = mailer.NewSMTP(cfg.SMTP, cfg.MailFrom, logger, mailer.WithMaxSessions(cfg.SMTPMaxSessions)); err != nil {
			return fmt.Errorf("smtp: %w", err)
		}
		mail = smtpMail
	}

	var tlsConfig *tls.Config // loaded before listening: a bad file stops the start
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("--tls-cert, --tls-key: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}

	ln, err := net.Listen("tcp", cfg.Addr) // listen first: errors now, ":0" works in tests
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	defer ln.Close()

	h := hub.New(fab.broker, logger)
	svc = chat.NewService(chat.Config{
		MaxMessageLen:         cfg.MaxMessageLen,
		MaxGroupMembers:       cfg.MaxGroupMembers,
		OnlineMax:             cfg.OnlineMax,
		AnnounceMax:           cfg.AnnounceMax,
		NewConvsPerHour:       cfg.NewConvsPerHour,
		FriendRequestsPerHour: cfg.FriendRequestsPerHour,
		EmailLookupsPerHour:   cfg.EmailLookupsPerHour,
		RoomLeavesPerHour:     cfg.RoomLeavesPerHour,
		RenamesPerHour:        cfg.RenamesPerHour,
		AddsByStrangersPerDay: cfg.AddsByStrangersPerDay,
		StrangerAddsPerHour:   cfg.StrangerAddsPerHour,
		MaxFriends:            cfg.MaxFriends,
		MaxBlocks:             cfg.MaxBlocks,
		MaxPendingRequests:    cfg.MaxPendingRequests,
		MaxUserRooms:          cfg.MaxUserRooms,
		MaxUserGroups:         cfg.MaxUserGroups,
		SessionTTL:            cfg.SessionTTL,
		MaxSessionsPerUser:    cfg.MaxSessionsPerUser,
		PublicURL:             cfg.publicURL(ln.Addr().String()),
	}, chat.Deps{
		Store:    st,
		Broker:   fab.broker,
		Presence: fab.presence,
		Limiter:  fab.limiter,
		Mailer:   mail,
		Logger:   logger,
	})

	webCfg := web.Config{
		Origins:        cfg.Origins,
		ChannelsCompat: cfg.ChannelsCompat,
		BehindProxy:    cfg.BehindProxy,
		MaxFrameBytes:  cfg.MaxFrameBytes,
		SendRate:       cfg.SendRate,
		SendBurst:      cfg.SendBurst,
		Outbox:         cfg.Outbox,
		MaxUserConns:   cfg.MaxUserConns,
		OpenRate:       cfg.OpenRate,
		OpenBurst:      cfg.OpenBurst,
		PingInterval:   cfg.PingInterval,
		PongWait:       cfg.PongWait,
		PollHold:       cfg.PollHold,
		Health:         st.Ping,
		Ended:          fab.ended,
	}
	handler := web.NewHandler(logger, webCfg, svc, h, uiFS)
	// A request must be read and answered within these, a long-poll GET
	// held for --poll-hold included: past the read timeout net/http cancels
	// the request, past the write one it drops the answer.
	reqTimeout := max(30*time.Second, cfg.PollHold+10*time.Second)
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       reqTimeout,
		WriteTimeout:      reqTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    webCfg.HeaderReadLimit(), // the handler answers past its own bound
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		TLSConfig:         tlsConfig,
	}

	bg, stopBG := context.WithCancel(ctx)
	defer stopBG()
	if fab.onResume != nil {
		// Events published while the broker was away reach this node's
		// clients from the store.
		fab.onResume(func() {
			start := time.Now()
			h.Resync(bg)
			logger.Info("resynced after broker reconnect", "took", time.Since(start).String())
		})
	}
	go sweep(bg, st, logger)
	if cfg.DebugAddr != "" {
		dbg, err := serveDebug(cfg.DebugAddr, logger)
		if err != nil {
			return fmt.Errorf("--debug-addr: %w", err)
		}
		defer dbg.Close()
	}

	errc := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	fmt.Fprintf(stdout, "listening on %s://%s\n", scheme, ln.Addr())
	logger.Info("parley started", "addr", ln.Addr().String(), "db", redactURL(cfg.DB), "broker", redactURL(cfg.Broker), "channels_compat", cfg.ChannelsCompat)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	closeBy = time.Now().Add(cfg.ShutdownTimeout)
	sctx, cancel := context.WithDeadline(context.Background(), closeBy)
	defer cancel()
	// Shutdown stops accepting and waits for HTTP requests; it does not
	// track WebSockets, which the hub closes with "server restarting".
	// Both at once: a long-poll GET held open is a request that ends only
	// when the hub closes its channel.
	// Both end a share of the timeout early, kept for the presence flush
	// after them, which a close that timed out would otherwise leave
	// nothing.
	hctx, hcancel := context.WithDeadline(sctx, closeBy.Add(-presenceFlushShare(cfg.ShutdownTimeout)))
	defer hcancel()
	herr := make(chan error, 1)
	go func() { herr <- h.Close(hctx) }()
	err = errors.Join(srv.Shutdown(hctx), <-herr)
	// No request sends mail any more, but the SMTP sessions of those that
	// gave up waiting for the relay run on: their codes are stored and
	// counted, so their mail must go out, not be cut when the process
	// exits. Waited for beside the flushes, which need the store alone;
	// those still open at the timeout are cut, and their codes removed
	// (chat.Mail.Unsent), before the store closes.
	merr := make(chan error, 1)
	go func() {
		if smtpMail == nil {
			merr <- nil
			return
		}
		merr <- smtpMail.Wait(sctx)
	}()
	svc.FlushPresence(sctx) // record last-seen times of those who just left
	svc.FlushRenames(sctx)  // tell the renames answered already; Close drops the rest
	if err := <-merr; err != nil {
		logger.Warn("mail cut at shutdown: --shutdown-timeout ended before its SMTP sessions", "err", err)
	}
	logger.Info("stopped", "err", err)
	return err
}

// presenceFlushShare is the part of a shutdown's timeout d kept for
// counting out the users whose connections ended within the presence
// grace period (chat.Service.FlushPresence), so that they get their
// last-seen time even when the HTTP server's or the hub's close does not
// end in time: a fifth, at most a second.
func presenceFlushShare(d time.Duration) time.Duration {
	return min(d/5, time.Second)
}

// storeCloseWait is how long closing the store may take at least, past
// what is left of --shutdown-timeout.
const storeCloseWait = 2 * time.Second

// closeWithin calls close and waits for it at most d; past that it
// returns an error, and close goes on in the background.
func closeWithin(close func() error, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- close() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("not closed within %v: writes under way are abandoned, unanswered", d)
	}
}

// helpIsNoError is err, unless it is only that --help was asked for: a
// command that printed its usage on request succeeded.
func helpIsNoError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// openStore opens the database named by dsn, a SQLite one with opts (a
// PostgreSQL one with opts.Logger alone); it is
// the only code that knows every backend.
func openStore(ctx context.Context, dsn string, opts sqlite.Options) (store, error) {
	switch {
	case isPostgresURL(dsn):
		return postgres.OpenWith(ctx, dsn, postgres.Options{Logger: opts.Logger})
	case strings.HasPrefix(dsn, "sqlite:"):
		return sqlite.OpenWith(ctx, strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//"), opts)
	case strings.Contains(dsn, "://"):
		return nil, fmt.Errorf("unknown database URL scheme in %q", redactURL(dsn))
	case isKeywordDSN(dsn):
		// Not echoed: it may hold a password.
		return nil, errors.New("the database looks like a PostgreSQL connection string of keyword=value pairs: give it as a URL, postgres://USER:PASSWORD@HOST:5432/DBNAME?sslmode=require (or sqlite:PATH for a SQLite file of that name)")
	}
	return sqlite.OpenWith(ctx, dsn, opts)
}

// pgKeywords are the keywords of libpq's connection strings that start
// one in practice.
var pgKeywords = map[string]bool{
	"host": true, "hostaddr": true, "port": true, "dbname": true, "user": true,
	"password": true, "passfile": true, "sslmode": true, "service": true,
	"connect_timeout": true, "application_name": true, "options": true,
	"target_session_attrs": true, "pool_max_conns": true,
}

// isKeywordDSN reports whether dsn is a PostgreSQL connection string of
// keyword=value pairs ("host=db user=parley dbname=parley"), which pgx
// takes but openStore would take for the name of a SQLite file.
func isKeywordDSN(dsn string) bool {
	f := strings.Fields(dsn)
	if len(f) == 0 {
		return false
	}
	k, _, ok := strings.Cut(f[0], "=")
	return ok && pgKeywords[strings.ToLower(k)]
}

// isPostgresURL reports whether dsn names a PostgreSQL database.
func isPostgresURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// fabric is what connects the nodes: the broker, presence and rate limits,
// in this process or in Redis.
type fabric struct {
	broker   chat.Broker
	presence chat.Presence
	limiter  chat.Limiter
	ended    web.EndedLog // nil: each node remembers the long-poll channels ended through it
	onResume func(func()) // nil when the broker never loses events
	close    func() error
}

// openFabric opens the broker named by cfg.Broker, or the in-process one.
func openFabric(ctx context.Context, cfg Config, logger *slog.Logger) (*fabric, error) {
	if cfg.Broker == "" {
		b := inmem.NewBroker()
		return &fabric{broker: b, presence: inmem.NewPresence(), limiter: inmem.NewLimiter(nil), close: b.Close}, nil
	}
	rc, err := redis.New(ctx, cfg.Broker, redis.Options{Prefix: cfg.RedisPrefix, NodeID: cfg.NodeID, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("broker %s: %w", redactURL(cfg.Broker), err)
	}
	return &fabric{
		broker: rc.Broker(), presence: rc.Presence(), limiter: rc.Limiter(), ended: rc.Ended(),
		onResume: rc.Broker().OnResume, close: rc.Close,
	}, nil
}

// redactURL hides the password of a database or broker URL, for logs,
// even one that does not parse.
func redactURL(s string) string { return redact.URL(s) }

// sweep deletes expired sessions and login codes now and then, and the
// logged events no client can be given again, a bounded number per run
// (chat.DeleteExpired, chat.TrimUserEvents).
func sweep(ctx context.Context, st store, logger *slog.Logger) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := chat.DeleteExpired(ctx, st, time.Now()); err != nil && ctx.Err() == nil {
				logger.Warn("delete expired sessions", "err", err)
			}
			if _, err := chat.TrimUserEvents(ctx, st); err != nil && ctx.Err() == nil {
				logger.Warn("trim user event logs", "err", err)
			}
		}
	}
}

// serveDebug serves pprof on its own listener, never on the public one.
func serveDebug(addr string, logger *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("debug server stopped", "err", err)
		}
	}()
	logger.Info("pprof listening", "addr", ln.Addr().String())
	return srv, nil
}
