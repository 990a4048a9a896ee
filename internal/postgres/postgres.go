// Package postgres implements chat.Store on PostgreSQL through
// github.com/jackc/pgx/v5 and its connection pool, pgxpool. It owns its SQL
// and its embedded migrations, speaks chat's types only, and never imports
// another adapter, the hub or the web transport.
//
// Any number of nodes (parley processes) may share one database: Open
// applies the migrations under an advisory lock, so nodes starting at once
// do not race, and every invariant that SQLite gets from its single writer
// is kept here with row locks. In particular Append locks the
// conversation's row before it looks for an earlier message with the same
// client ID and takes the next seq, so that sequences stay gap-free and a
// retried send is stored once, whichever nodes the sends come through.
// Concurrent Appends are committed together, many per transaction (group
// commit, batch.go).
//
// Every transaction that locks more than one row takes them in one agreed
// order, so that no two ever wait for each other in a cycle (a deadlock,
// which PostgreSQL ends after deadlock_timeout, a second, by failing one):
// conversations in id order, then their memberships in (conversation,
// user) order, then users in id order; sessions in id order; an address's
// login codes in hash order; user events in (user, seq) order. A statement
// that writes several rows in the order of its plan locks them first with
// SELECT ... ORDER BY ... FOR UPDATE (lockorder_test.go checks each).
//
// Times are stored as timestamptz, with PostgreSQL's microsecond precision:
// a time read back equals the one stored truncated to the microsecond, in
// UTC. Room and group names are unique regardless of case, by the same rule
// as the SQLite store (chat.NameKey in Go, not the server's locale); a
// name keeps the spelling it was given. PostgreSQL text cannot hold the
// byte 0, so a string that contains it, or is not valid UTF-8, is refused
// with chat.ErrInvalid.
//
// Errors that mean the server cannot be reached (refused or lost
// connections, a server shutting down), gave up on a statement after a
// timeout of its settings (statement_timeout, lock_timeout), or cannot
// write for now (out of disk or memory, or read-only: a standby, or a
// database made read-only) wrap a *chat.Error of kind
// chat.ErrUnavailable: the caller may retry later.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/parley-chat/parley/internal/chat"
)

var _ chat.Store = (*DB)(nil)

// DB is a Parley database on a PostgreSQL server. It is safe for concurrent
// use, and several DBs, in one process or many, may share a database.
type DB struct {
	// pool runs a statement outside a transaction again when the server
	// ended its connection before it ran (pool.go).
	pool *pool
	// appendPool serves the group commit alone (batch.go). Its sessions
	// use generic plans: appendSQL planned for the array sizes of each
	// batch costs more than running it for a few messages.
	appendPool *pgxpool.Pool
	name       string       // host:port/database, for messages (never the password)
	log        *slog.Logger // nil: none

	appends     []*chat.CommitQueue // to the group-commit goroutines, by conversation (batch.go)
	batcherDone chan struct{}
}

// connectTimeout bounds each attempt to connect when the URL sets no
// connect_timeout.
const connectTimeout = 10 * time.Second

// idleInTransaction is how long the server lets a session of a DB sit
// in an open transaction waiting for its next statement, unless the URL
// sets idle_in_transaction_session_timeout: a node that froze or lost
// its network mid-transaction holds its row locks (a group's, which every
// node's sends to the group wait for) that long, rather than until TCP
// keepalive notices, which takes hours by default. The DB's own
// transactions never wait between statements for more than a round trip.
const idleInTransaction = "10s"

// deadPeer are the server's TCP keepalive settings for a DB's sessions,
// unless the URL sets them: the server ends a session whose node's host
// vanished (or whose network broke) about 25 s after it last heard from
// it, rather than after the system's default of over two hours. This is
// the only bound on a session that has run the first statement of a
// pipeline without BEGIN (the group commit's lockConvs, a membership
// change's lock) and waits for the rest: PostgreSQL arms
// idle_in_transaction_session_timeout only when it answers a Sync, so that
// session holds its row locks, which every node's sends to those
// conversations wait for, until TCP gives up. A host that is alive but
// whose process froze is not noticed so (its kernel answers the probes);
// its data sent before the freeze arrives whole.
var deadPeer = map[string]string{
	"tcp_keepalives_idle":     "10",
	"tcp_keepalives_interval": "5",
	"tcp_keepalives_count":    "3",
}

// minConns is the smallest pool Open makes when the URL sets no
// pool_max_conns.
const minConns = 10

// Open connects to the PostgreSQL database at url (postgres://... or any
// connection string pgx accepts, including pool_* settings) and brings its
// schema up to date. Besides the pool that url describes (of at least
// minConns connections unless it sets pool_max_conns), a DB keeps one
// connection per group-commit goroutine open, from before Open returns.
// Its sessions always use read committed, whatever the server's default,
// end a transaction left idle for idleInTransaction, and, over TCP, end
// once their peer has been silent to keepalive probes (deadPeer).
func Open(ctx context.Context, url string) (*DB, error) {
	return OpenWith(ctx, url, Options{})
}

// Options are a database's settings besides its URL. The zero value is
// the default.
type Options struct {
	// Logger is told what a migration did that an operator should know
	// of (foldEmails); nil discards it.
	Logger *slog.Logger
}

// OpenWith is Open with settings other than the defaults.
func OpenWith(ctx context.Context, url string, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open postgres database: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	// The locking that keeps the invariants assumes read committed: each
	// statement sees what was committed before it started, such as the
	// messages of whoever held a lock it waited for.
	cfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = "read committed"
	if _, ok := cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !ok {
		cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = idleInTransaction
	}
	for k, v := range deadPeer {
		if _, ok := cfg.ConnConfig.RuntimeParams[k]; !ok {
			cfg.ConnConfig.RuntimeParams[k] = v
		}
	}
	if !strings.Contains(url, "pool_max_conns") {
		// pgxpool's default, max(4, NumCPU), leaves little beside the
		// group-commit goroutines.
		cfg.MaxConns = max(cfg.MaxConns, minConns)
	}
	db := &DB{name: fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database), log: opts.Logger}
	// The group commit's pool keeps one connection per committing
	// goroutine open, each with the commit's statements prepared
	// (prepareAppend), so that no message waits for a PostgreSQL backend
	// to start or for its statements to be parsed.
	acfg := cfg.Copy()
	acfg.MaxConns, acfg.MinConns = batchers, batchers
	acfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	acfg.AfterConnect = prepareAppend
	db.pool, err = newPool(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres database %s: %w", db.name, err)
	}
	if err := db.migrate(ctx); err != nil {
		db.pool.Close()
		return nil, fmt.Errorf("migrate postgres database %s: %w", db.name, mapErr(ctx, err))
	}
	if err := db.fillNameSkeletons(ctx); err != nil {
		db.pool.Close()
		return nil, fmt.Errorf("fill name skeletons of postgres database %s: %w", db.name, mapErr(ctx, err))
	}
	// After the migrations: prepareAppend needs the schema.
	db.appendPool, err = pgxpool.NewWithConfig(ctx, acfg)
	if err == nil {
		err = warm(ctx, db.appendPool, batchers)
	}
	if err != nil {
		db.pool.Close()
		if db.appendPool != nil {
			db.appendPool.Close()
		}
		return nil, fmt.Errorf("open postgres database %s: %w", db.name, mapErr(ctx, err))
	}
	db.startBatcher()
	return db, nil
}

// appendStatements are the statements of the group commit (appendAll).
var appendStatements = []string{lockConvs, appendSQL}

// prepareAppend readies a new connection of the group commit's pool. It
// prepares appendStatements, each named by its own text, which is how
// SendBatch finds them, so a mistake in them fails Open. Then it commits a
// message to conversation 0, which cannot exist (ids start at 1): that
// stores nothing, but plans the statements and loads the catalog entries
// of the tables they touch, which a new PostgreSQL backend would
// otherwise do for the first real message, tens of milliseconds on a
// small machine (docs/deploy.md).
func prepareAppend(ctx context.Context, c *pgx.Conn) error {
	for _, q := range appendStatements {
		if _, err := c.Prepare(ctx, q, q); err != nil {
			return fmt.Errorf("prepare the group commit's statements: %w", err)
		}
	}
	dry := &appendItem{m: chat.NewMessage{Kind: chat.KindText, At: time.Now()}}
	if err := appendAll(ctx, c, []*appendItem{dry}); err != nil {
		return fmt.Errorf("run the group commit's statements: %w", err)
	}
	if !errors.Is(dry.err, chat.ErrNotFound) {
		return fmt.Errorf("run the group commit's statements: a message to conversation 0 gave %v, want not found", dry.err)
	}
	return nil
}

// warm opens n connections of pool before Open returns, rather than in the
// pool's background.
func warm(ctx context.Context, pool *pgxpool.Pool, n int) error {
	return eachConn(ctx, pool, n, nil)
}

// eachConn takes n connections of pool at once, so that each is another,
// running fn (if not nil) on each as it is taken, and then gives them
// back.
func eachConn(ctx context.Context, pool *pgxpool.Pool, n int, fn func(*pgxpool.Conn) error) error {
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		conns = append(conns, c)
		if fn != nil {
			if err := fn(c); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close waits for the Appends in progress and closes every connection.
func (db *DB) Close() error {
	db.stopBatcher()
	db.pool.Close()
	db.appendPool.Close()
	return nil
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres database %s: %w", db.name, mapErr(ctx, err))
	}
	return nil
}

// maxAttempts is how many times write and read run a transaction that
// failed on a deadlock or a serialization failure.
const maxAttempts = 5

// write runs fn in a read-committed transaction and commits it if fn
// returns nil. fn may run more than once, so it must set its results
// afresh each time.
func (db *DB) write(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return db.transact(ctx, pgx.TxOptions{}, fn)
}

// read runs fn in a read-only transaction that sees one snapshot.
func (db *DB) read(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return db.transact(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

func (db *DB) transact(ctx context.Context, opts pgx.TxOptions, fn func(tx pgx.Tx) error) error {
	return retrying(ctx, db.pool.conns, func() error {
		tx, err := db.pool.BeginTx(ctx, opts)
		if err != nil {
			if sessionEnded(err) {
				// Ended before BEGIN ran, as a connection that the
				// server ended while it sat idle in the pool shows
				// itself: nothing ran.
				return &notRunError{err}
			}
			return err
		}
		defer func() { _ = tx.Rollback(ctx) }() // after Commit: pgx.ErrTxClosed
		if err := fn(tx); err != nil {
			return err
		}
		return tx.Commit(ctx)
	})
}

// retrying runs fn, a transaction on a pool of at most conns
// connections, and again while it fails in a way that allows it
// (retryable), and returns its last error as mapErr maps it. It runs fn
// up to maxAttempts times for conflicts and the like, and besides once for
// each connection that it found ended before anything ran: every one of
// the pool's may have been, and each found so leaves the pool.
func retrying(ctx context.Context, conns int, fn func() error) error {
	for attempts, ended := 1, 0; ; {
		err := fn()
		switch {
		case err == nil || ctx.Err() != nil || !retryable(err):
			return mapErr(ctx, err)
		case pgconn.SafeToRetry(err) && ended < conns:
			ended++
		case attempts < maxAttempts:
			attempts++
		default:
			return mapErr(ctx, err)
		}
	}
}

// retryable reports whether a transaction that failed with err may run
// again: it lost a deadlock or a serialization conflict and was rolled
// back, the server ended it for sitting idle between statements (which
// it cannot do while committing, so nothing of it was stored), or it
// failed before anything reached the server or ran there (notRunError).
func retryable(err error) bool {
	if pgconn.SafeToRetry(err) {
		return true
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01" || pe.Code == "25P03")
}

// unavailable is the error kind of a server that cannot be reached.
var unavailable = &chat.Error{Kind: chat.ErrUnavailable, Code: chat.CodeUnavailable,
	Message: "the database is unavailable; try again later"}

// mapErr turns the errors of a server that cannot be reached, that gave
// up on a statement after a timeout of its settings, or that cannot write
// for now, into chat.ErrUnavailable, and those of strings PostgreSQL
// cannot store into chat.ErrInvalid, keeping err in the chain. Errors of
// a ctx that ended stay as they are.
func mapErr(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil || errors.Is(err, chat.ErrUnavailable) || errors.Is(err, chat.ErrInvalid) {
		return err // mapped already: once is enough, said once
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "22021" || pe.Code == "22P05": // character_not_in_repertoire, untranslatable_character
			return fmt.Errorf("%w: %w", chat.ErrInvalid, err)
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // admin or crash shutdown, cannot connect now
			pe.Code == "25P03",                     // idle_in_transaction_session_timeout ended the session
			pe.Code == "57014", pe.Code == "55P03", // statement_timeout (ctx is alive), lock_timeout
			strings.HasPrefix(pe.Code, "53"),       // insufficient resources: disk full, out of memory, too many connections
			pe.Code == "25006",                     // read-only transaction: a standby, or a database made read-only
			pe.Code == "40001", pe.Code == "40P01": // conflicts that outlasted maxAttempts, all rolled back
			return fmt.Errorf("%w: %w", unavailable, err)
		}
		return err
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || pgconn.SafeToRetry(err) || chat.Unreachable(err) {
		return fmt.Errorf("%w: %w", unavailable, err)
	}
	return err
}

// storable returns chat.ErrInvalid if PostgreSQL text cannot hold s.
func storable(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("text is not valid UTF-8: %w", chat.ErrInvalid)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("text holds the byte 0, which PostgreSQL cannot store: %w", chat.ErrInvalid)
	}
	return nil
}

//go:embed migrations/*.sql
var migrations embed.FS

// goSteps are the parts of migrations that SQL cannot do, by version; each
// runs in the migration's transaction right after its SQL.
func (db *DB) goSteps() map[int]func(ctx context.Context, tx pgx.Tx) error {
	return map[int]func(ctx context.Context, tx pgx.Tx) error{
		5:  namesNFC,
		7:  nameSkeletons,
		8:  db.foldEmails(8),
		10: db.foldEmails(10),
		11: nameKeysNFC,
	}
}

type migration struct {
	version int
	name    string
}

// migrate applies, in one transaction, the migrations not yet recorded in
// schema_migrations. The transaction first takes an advisory lock of the
// schema, so that of several nodes starting at once one migrates and the
// others then find nothing to do.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := listMigrations()
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx pgx.Tx) error {
		if err := lockSchema(ctx, tx, "parley migrate "); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer     PRIMARY KEY,
			applied_at timestamptz NOT NULL
		)`); err != nil {
			return err
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return err
		}
		if current > len(ms) {
			return fmt.Errorf("schema version %d is newer than this parley knows (%d); use a newer parley", current, len(ms))
		}
		for _, m := range ms {
			if m.version <= current {
				continue
			}
			src, err := migrations.ReadFile(m.name)
			if err != nil {
				return err
			}
			// Without arguments, Exec uses the simple protocol, which runs
			// a whole script.
			if _, err := tx.Exec(ctx, string(src)); err != nil {
				return fmt.Errorf("apply %s: %w", m.name, err)
			}
			if step := db.goSteps()[m.version]; step != nil {
				if err := step(ctx, tx); err != nil {
					return fmt.Errorf("apply %s: %w", m.name, err)
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`,
				m.version, ts(time.Now())); err != nil {
				return err
			}
		}
		return nil
	})
}

// lockSchema takes the advisory lock of the current schema named by
// prefix until tx ends, waiting as long as another node holds it, however
// short a statement_timeout or lock_timeout the URL or the server sets
// for the statements of requests: nodes that start together wait for the
// one that migrates, however long the migration takes. The rest of tx
// runs without statement_timeout, as a migration's statements take as
// long as the database's size asks, and with lock_timeout as it was. Cut
// short, either would leave the node unable to start, and would be cut
// short again at each try.
func lockSchema(ctx context.Context, tx pgx.Tx, prefix string) error {
	var lockTimeout string
	if err := tx.QueryRow(ctx, `SELECT current_setting('lock_timeout')`).Scan(&lockTimeout); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('statement_timeout', '0', true), set_config('lock_timeout', '0', true)`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1 || coalesce(current_schema(), ''), 0))`, prefix); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, lockTimeout)
	return err
}

// listMigrations returns the embedded migrations in order. Their names are
// NNNN_description.sql, numbered from 1 without gaps.
func listMigrations() ([]migration, error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names { // fs.Glob sorts
		prefix, _, ok := strings.Cut(path.Base(name), "_")
		v, err := strconv.Atoi(prefix)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name is not NNNN_description.sql", name)
		}
		if v != len(ms)+1 {
			return nil, fmt.Errorf("migration %s: version %d, want %d", name, v, len(ms)+1)
		}
		ms = append(ms, migration{version: v, name: name})
	}
	return ms, nil
}

// ts is the stored form of a time: truncated to the microsecond (pgx would
// otherwise leave the rounding to the server).
func ts(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

// utc is a time as read back: pgx returns times in the local zone.
func utc(t time.Time) time.Time { return t.UTC() }

// nameKey is the form of a room or group name that is unique, and of a user
// name that the search ranges over: names that differ only in case have
// one key (chat.NameKey). It is the SQLite store's rule, so that both
// backends agree.
func nameKey(name string) string { return chat.NameKey(name) }

// isUniqueViolation reports whether err is a broken UNIQUE or PRIMARY KEY
// constraint: constraint[0], if given.
func isUniqueViolation(err error, constraint ...string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && (len(constraint) == 0 || pe.ConstraintName == constraint[0])
}

// scanner is a pgx.Row or pgx.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// querier is a pgx.Tx or the pool.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// isForeignKeyViolation reports whether err is a broken FOREIGN KEY
// constraint.
func isForeignKeyViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23503"
}
