// Package sqlite implements chat.Store on an SQLite database file through
// database/sql and, by default, the cgo-free driver modernc.org/sqlite (built
// with the tag sqlite_cgo, the cgo driver github.com/mattn/go-sqlite3
// instead: driver_*.go). It owns its SQL
// and its embedded migrations, speaks chat's types only, and never imports
// another adapter, the hub or the web transport.
//
// SQLite serves one node: Open takes an exclusive advisory lock on a sibling
// file, path + ".lock" (beside the file linked to if path is a symbolic
// link), so a second parley process cannot open the same database. The
// lock is flock(2)'s: where that is missing (Windows, AIX, Solaris:
// lock_other.go), nothing stops a second process.
// Several nodes need PostgreSQL.
//
// Times are stored as microseconds since the Unix epoch, PostgreSQL's
// precision: a time read back equals the one stored truncated to the
// microsecond, in UTC. Room names are unique regardless of case ("General"
// and "general" are one room, and so are "Été" and "ÉTÉ"); a room keeps the
// spelling it was created with.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

var _ chat.Store = (*DB)(nil)

// Memory is the path of a private in-memory database, gone on Close.
const Memory = ":memory:"

// Synchronous is how the writes wait for the disk: SQLite's synchronous
// setting, which in WAL mode is one of two.
type Synchronous string

const (
	// SyncNormal, the default, syncs at checkpoints only: a commit
	// survives a crash of the process but not necessarily a power loss,
	// which can undo the last commits without corrupting the file.
	SyncNormal Synchronous = "normal"
	// SyncFull syncs the WAL at every commit, before the commit returns:
	// an acknowledged message survives a power loss too. With the group
	// commit (batch.go) that is one fsync per batch, not per message.
	SyncFull Synchronous = "full"
)

// ParseSynchronous reads a Synchronous from its name, in any case.
func ParseSynchronous(s string) (Synchronous, error) {
	switch v := Synchronous(strings.ToLower(s)); v {
	case SyncNormal, SyncFull:
		return v, nil
	}
	return "", fmt.Errorf("%q is not a SQLite synchronous setting: want normal or full", s)
}

// pragma is the setting as a connection pragma.
func (s Synchronous) pragma() string {
	if s == SyncFull {
		return "synchronous(FULL)"
	}
	return "synchronous(NORMAL)"
}

// Options are a database's settings besides its path. The zero value is
// the default: SyncNormal, and no log.
type Options struct {
	Synchronous Synchronous
	// Logger is told what a migration did that an operator should know
	// of (foldEmails); nil discards it.
	Logger *slog.Logger
}

// Connection settings. Every connection waits up to 10 s for a lock held
// elsewhere. Writers use WAL with the database's Synchronous. They begin
// with BEGIN IMMEDIATE, so a write transaction holds the write lock from
// its first statement and cannot fail to upgrade a read lock halfway. They
// leave checkpoints to the checkpointer (checkpoint.go), and cut the WAL
// file back to walSizeLimit when it starts over. Readers are query-only.
func writeConn(s Synchronous) connSettings {
	return connSettings{
		pragmas: []string{"busy_timeout(10000)", "journal_mode(WAL)", s.pragma(), "foreign_keys(ON)", "wal_autocheckpoint(0)",
			"journal_size_limit(" + strconv.Itoa(walSizeLimit) + ")"},
		immediate: true,
	}
}

var readConn = connSettings{pragmas: []string{"busy_timeout(10000)", "query_only(1)"}}

// connSettings is how a pool's connections are set up, whichever the
// driver: the pragmas each connection runs first, in order, as
// "PRAGMA name(value)", and whether its transactions begin IMMEDIATE.
type connSettings struct {
	pragmas   []string
	immediate bool
}

// DB is a Parley database in one SQLite file. It is safe for concurrent use.
//
// Write transactions go through a pool of one connection, so they queue in
// Go rather than spin on SQLite's busy handler; reads use a pool of their
// own and, thanks to WAL, never wait for a writer.
type DB struct {
	path   string // as given to Open, for messages
	sync   Synchronous
	log    *slog.Logger // nil: none
	file   string       // path with its symbolic links resolved (realPath)
	rw     *sql.DB      // one connection: every write transaction, in turn
	ro     *sql.DB      // read-only connections; rw itself for Memory
	unlock func() error

	raw rawConn // the write connection, for the group commit (batch.go)

	appends     *chat.CommitQueue // to the group-commit goroutine (batch.go)
	batcherDone chan struct{}

	ck               *sql.DB       // one connection, for checkpoints (checkpoint.go)
	shm              *shmHeader    // the WAL's backlog, for the checkpointer
	written          chan struct{} // to the checkpointer: a write has committed
	stopCheckpoints  chan struct{}
	checkpointerDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Open opens the SQLite database at path, creating it if needed, and brings
// its schema up to date. path is a file path or Memory. Open fails if
// another process, or another DB in this one, has the file open.
func Open(ctx context.Context, path string) (*DB, error) {
	return OpenWith(ctx, path, Options{})
}

// OpenWith is Open with settings other than the defaults.
func OpenWith(ctx context.Context, path string, opts Options) (*DB, error) {
	if path == "" {
		return nil, errors.New("open sqlite database: empty path")
	}
	sync := opts.Synchronous
	if sync == "" {
		sync = SyncNormal
	}
	if _, err := ParseSynchronous(string(sync)); err != nil {
		return nil, fmt.Errorf("open sqlite database %s: %w", path, err)
	}
	db := &DB{path: path, sync: sync, log: opts.Logger, unlock: func() error { return nil }}
	if path == Memory {
		if err := db.openMemory(ctx); err != nil {
			return nil, err
		}
		if err := db.prepareBatch(ctx); err != nil {
			return nil, errors.Join(err, db.Close())
		}
		db.startBatcher()
		return db, nil
	}
	db.file = realPath(path)
	unlock, err := lockFile(db.file + ".lock")
	if errors.Is(err, errLocked) {
		return nil, fmt.Errorf("sqlite database %s is in use by another parley process (SQLite serves one node; use PostgreSQL for several)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("lock sqlite database %s: %w", path, err)
	}
	db.unlock = unlock
	createPrivate(db.file)
	if err := db.openFile(ctx); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	if err := db.prepareBatch(ctx); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	db.startBatcher()
	return db, nil
}

func (db *DB) openMemory(ctx context.Context) error {
	// Each connection to ":memory:" is a database of its own, so one
	// connection serves both reads and writes, and must live as long as db.
	rw, err := openDB(Memory, writeConn(db.sync))
	if err != nil {
		return fmt.Errorf("open sqlite database %s: %w", db.path, err)
	}
	rw.SetMaxOpenConns(1)
	rw.SetMaxIdleConns(1)
	rw.SetConnMaxIdleTime(0)
	rw.SetConnMaxLifetime(0)
	db.rw, db.ro = rw, rw
	if err := db.migrate(ctx); err != nil {
		rw.Close()
		return fmt.Errorf("migrate sqlite database %s: %w", db.path, err)
	}
	return nil
}

func (db *DB) openFile(ctx context.Context) error {
	name := fileURI(db.file)
	rw, err := openDB(name, writeConn(db.sync))
	if err != nil {
		return fmt.Errorf("open sqlite database %s: %w", db.path, err)
	}
	rw.SetMaxOpenConns(1)
	rw.SetMaxIdleConns(1)
	db.rw = rw
	// Migrating first also turns the file to WAL before any reader opens it.
	if err := db.migrate(ctx); err != nil {
		return fmt.Errorf("migrate sqlite database %s: %w", db.path, err)
	}
	ro, err := openDB(name, readConn)
	if err != nil {
		return fmt.Errorf("open sqlite database %s: %w", db.path, err)
	}
	n := max(4, runtime.NumCPU())
	ro.SetMaxOpenConns(n)
	ro.SetMaxIdleConns(n)
	db.ro = ro
	if err := ro.PingContext(ctx); err != nil {
		return fmt.Errorf("open sqlite database %s: %w", db.path, err)
	}
	return db.startCheckpointer(ctx, name)
}

// createPrivate makes the database file, if it is not there yet, readable
// by its owner only: it holds users' addresses and sessions, and SQLite,
// which would make it 0644, gives its -wal and -shm files the database's
// mode. An existing file keeps the mode its operator gave it; an error is
// left for SQLite's open to report.
func createPrivate(file string) {
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		f.Close()
	}
}

// realPath is the file that SQLite opens for path: its unix VFS follows
// symbolic links, the last one even to a file it has yet to make, and keeps
// the -wal and -shm files beside that file. So Open's lock goes there too,
// and the checkpointer reads that -shm file: beside a link, the lock
// refused no process that named the file by another path, and the
// checkpointer, finding no -shm file, checkpointed after every write. It
// returns path itself if a directory on the way cannot be resolved;
// opening the database then says why.
func realPath(path string) string {
	p := path
	for range 100 { // SQLite's bound on the links it follows
		dir, err := filepath.EvalSymlinks(filepath.Dir(p))
		if err != nil {
			return path
		}
		p = filepath.Join(dir, filepath.Base(p))
		target, err := os.Readlink(p)
		if err != nil {
			return p // not a link, or not made yet
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(dir, target)
		}
		p = target
	}
	return path
}

// fileURI is the SQLite URI of the file at path. An absolute path gets an
// empty authority, "file://" before it: after "file:" alone, a path that
// starts with two slashes ("//data/parley.db", which names the same file
// as "/data/parley.db") would have its first component taken for the
// URI's authority, which SQLite refuses.
func fileURI(path string) string {
	p := (&url.URL{Path: path}).EscapedPath()
	if strings.HasPrefix(p, "/") {
		return "file://" + p
	}
	return "file:" + p
}

// Close closes the database and releases its lock. Calls after the first
// return what it returned.
func (db *DB) Close() error {
	db.closeOnce.Do(func() { db.closeErr = db.close() })
	return db.closeErr
}

func (db *DB) close() error {
	db.stopBatcher()
	db.stopCheckpointer()
	var errs []error
	if db.ro != nil && db.ro != db.rw {
		errs = append(errs, db.ro.Close())
	}
	if db.ck != nil {
		errs = append(errs, db.ck.Close())
	}
	if db.rw != nil {
		errs = append(errs, db.rw.Close())
	}
	errs = append(errs, db.unlock())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close sqlite database %s: %w", db.path, err)
	}
	return nil
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.rw.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite database %s: %w", db.path, err)
	}
	if err := db.ro.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite database %s: %w", db.path, err)
	}
	return nil
}

// unavailable is the error kind of a database that another process keeps
// locked.
var unavailable = &chat.Error{Kind: chat.ErrUnavailable, Code: chat.CodeUnavailable,
	Message: "the database is busy; try again later"}

// mapErr marks err as chat.ErrUnavailable if it is SQLITE_BUSY: a lock
// held elsewhere past the busy timeout (another process writing to the
// file, such as the sqlite3 shell in a transaction, or a backup), which
// a later try may not meet. It keeps err in the chain.
func mapErr(err error) error {
	if err != nil && isBusy(err) && !errors.Is(err, chat.ErrUnavailable) {
		return fmt.Errorf("%w: %w", unavailable, err)
	}
	return err
}

// affected returns the rows a statement changed, given as ExecContext
// returns it: n, err := affected(tx.ExecContext(…)).
func affected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// write runs fn in a write transaction and commits it if fn returns nil.
// An error of a lock held elsewhere is chat.ErrUnavailable (mapErr).
func (db *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return mapErr(db.writeTx(ctx, fn))
}

// If BEGIN fails on a transaction left open on the write connection (a
// COMMIT and then the driver's ROLLBACK of it that both failed: database/sql
// hands the connection back whatever became of it), write rolls that one
// back and begins again, as writeRaw does; without that, every write of
// this path failed until one of writeRaw's came by.
func (db *DB) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	conn, err := db.rw.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`); rerr != nil {
			return err // no transaction was open: BEGIN failed on its own
		}
		if tx, err = conn.BeginTx(ctx, nil); err != nil {
			return err
		}
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	db.wrote()
	return nil
}

// read runs fn in a read-only transaction, which sees one snapshot: for
// reads of several statements that must agree. A read of one statement
// runs on db.ro without one, as the PostgreSQL store's do: a single
// statement reads one snapshot anyway, and the transaction's BEGIN and
// COMMIT are two more statements for the driver to run, each with a
// goroutine watching the context, and one more for database/sql's Tx.
func (db *DB) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.ro.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return mapErr(err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return mapErr(err)
	}
	return mapErr(tx.Commit())
}

//go:embed migrations/*.sql
var migrations embed.FS

// goSteps are the parts of migrations that SQL cannot do, by version; each
// runs in the migration's transaction right after its SQL.
func (db *DB) goSteps() map[int]func(ctx context.Context, tx *sql.Tx) error {
	return map[int]func(ctx context.Context, tx *sql.Tx) error{
		2:  nameKeyBackfill,
		10: namesNFC,
		12: nameSkeletons,
		14: db.foldEmails(14),
		17: db.foldEmails(17),
		18: nameKeysNFC,
	}
}

type migration struct {
	version int
	name    string
}

// migrate applies, in one transaction, the migrations not yet recorded in
// schema_migrations. It runs them with foreign keys off, as a table made
// anew needs (migration 9): dropping the old one must not delete the rows
// that refer to it. Before it commits, it checks that every reference
// holds. Then it fills what an older parley, run on the file since, left
// out (fillNameSkeletons).
func (db *DB) migrate(ctx context.Context) error {
	ms, err := listMigrations()
	if err != nil {
		return err
	}
	if err := db.migrateWith(ctx, ms); err != nil {
		return err
	}
	if err := db.fillNameSkeletons(ctx); err != nil {
		return fmt.Errorf("fill name skeletons: %w", err)
	}
	return nil
}

// migrateWith is migrate with the migrations ms, for a test to stop at an
// earlier version.
func (db *DB) migrateWith(ctx context.Context, ms []migration) (err error) {
	// The pragma is the connection's, and cannot change in a transaction:
	// the write pool's only connection is held throughout.
	conn, err := db.rw.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
		return err
	}
	defer func() {
		if _, ferr := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA foreign_keys = ON`); ferr != nil {
			err = errors.Join(err, fmt.Errorf("turn foreign keys on again: %w", ferr))
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := db.migrateIn(ctx, tx, ms); err != nil {
		return err
	}
	if err := foreignKeysHold(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	db.wrote()
	return nil
}

// foreignKeysHold returns an error naming the first row whose reference
// does not hold.
func foreignKeysHold(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		return err
	}
	defer rows.Close()
	if rows.Next() {
		var table, parent string
		var rowid sql.NullInt64
		var fk int64
		if err := rows.Scan(&table, &rowid, &parent, &fk); err != nil {
			return err
		}
		return fmt.Errorf("a row of %s (rowid %v) refers to no row of %s", table, rowid, parent)
	}
	return rows.Err()
}

// migrateIn applies in tx the migrations of ms not yet recorded.
func (db *DB) migrateIn(ctx context.Context, tx *sql.Tx, ms []migration) error {
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return err
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
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
		if _, err := tx.ExecContext(ctx, string(src)); err != nil {
			return fmt.Errorf("apply %s: %w", m.name, err)
		}
		if step := db.goSteps()[m.version]; step != nil {
			if err := step(ctx, tx); err != nil {
				return fmt.Errorf("apply %s: %w", m.name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
			m.version, micros(time.Now())); err != nil {
			return err
		}
	}
	return nil
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

// micros is the stored form of a time.
func micros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros is the inverse of micros.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// querier is a *sql.Tx or a pool of connections (*sql.DB).
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// queryAll runs query on q and scans each of its rows; it returns an empty
// slice, not nil, when there are none.
func queryAll[T any](ctx context.Context, q querier, query string, args []any, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
