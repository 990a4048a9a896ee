package postgres

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/parley-chat/parley/internal/chat"
)

// pool is the DB's connection pool. Its Exec, Query and QueryRow, which
// stand in for pgxpool.Pool's, run a statement outside a transaction
// again on another connection when it failed in a way that proves it did
// not run (notRun): above all on a connection that the server ended while
// it sat idle in the pool less than a second, after which pgxpool hands it
// out without a ping. Query and QueryRow run a read again, too, when its
// connection was lost. Its Ping does the same. A transaction (DB.transact)
// or a batch (execFirst) finds such a connection out by itself, and runs
// again (retrying).
//
// pool does not embed the *pgxpool.Pool: only what it offers reaches the
// connections, so no statement can go around it.
type pool struct {
	raw   *pgxpool.Pool
	mode  pgx.QueryExecMode // the connections' default
	conns int               // the most connections the pool holds
}

func newPool(ctx context.Context, cfg *pgxpool.Config) (*pool, error) {
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &pool{raw: p, mode: cfg.ConnConfig.DefaultQueryExecMode, conns: int(cfg.MaxConns)}, nil
}

// Exec is pgxpool.Pool's Exec, run again while it did not run.
func (p *pool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return again(ctx, p, p.extended(true, args), func() (pgconn.CommandTag, error) {
		return p.raw.Exec(ctx, sql, args...)
	})
}

// Query is pgxpool.Pool's Query, run again while it did not run, or, for
// a read (readOnly), while it lost its connection: a read changes nothing,
// so it may have run. That is how a connection that broke while it sat
// idle in the pool less than a second shows itself when nothing of the
// server's farewell arrived (a network that broke for a moment, a server
// that crashed or was restarted at once): pgx sends the statement and
// reads the end of the stream, "unexpected EOF". A write that lost its
// connection so may have committed, and is left to its caller. pgx
// reports an error that arrives in place of the first answer at the first
// Next, so Query reads as far as the first row (which its Rows then give
// first) to see it; an error after that stays with the Rows.
func (p *pool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return again(ctx, p, p.extended(false, args), func() (pgx.Rows, error) {
		rows, err := p.raw.Query(ctx, sql, args...)
		if err == nil {
			if rows.Next() {
				return &readRows{Rows: rows, first: true}, nil
			}
			err = rows.Err() // closed: Err is final
		}
		if err != nil && lostConn(err) && readOnly(sql) {
			err = &notRunError{err}
		}
		return rows, err
	})
}

// QueryRow is pgxpool.Pool's QueryRow, run again while it did not run.
func (p *pool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := p.Query(ctx, sql, args...)
	return &row{rows: rows, err: err}
}

// Ping is pgxpool.Pool's Ping, run again while the server had ended the
// connection it got: a ping changes nothing, and that connection says
// nothing of whether the server answers now.
func (p *pool) Ping(ctx context.Context) error {
	_, err := again(ctx, p, true, func() (struct{}, error) {
		return struct{}{}, p.raw.Ping(ctx)
	})
	return err
}

// BeginTx is pgxpool.Pool's BeginTx; DB.transact runs a transaction
// again.
func (p *pool) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	return p.raw.BeginTx(ctx, opts)
}

// SendBatch is pgxpool.Pool's SendBatch; its callers run a batch again
// (execFirst).
func (p *pool) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return p.raw.SendBatch(ctx, b)
}

// Close closes the pool's connections.
func (p *pool) Close() { p.raw.Close() }

// again calls run, which runs a statement, and again while the statement
// failed without running, or until ctx ends: at most once more than the
// connections of the pool, as every one of them may have been ended, and
// each found so leaves the pool.
func again[T any](ctx context.Context, p *pool, extended bool, run func() (T, error)) (T, error) {
	for attempt := 1; ; attempt++ {
		v, err := run()
		if err == nil || attempt > p.conns || ctx.Err() != nil || !notRun(err, extended) {
			return v, err
		}
	}
}

// notRun reports whether a statement outside a transaction that failed
// with err did not run, or ran and was rolled back: nothing of it
// reached the server, or it went by the extended protocol and the server
// ended the session (sessionEnded). By the extended protocol such a
// statement commits at the Sync after it. A termination that PostgreSQL
// acts on before that commit rolls the statement back, and it acts on
// none between the commit and the ReadyForQuery after it (only the
// processing of NOTIFYs runs there, and Parley's connections listen for
// none): it acts on the next while it waits for a command. pgx gives no
// command tag with an error that follows it, so the answer itself cannot
// tell. The simple protocol commits a statement before its
// CommandComplete, so there a farewell can follow a commit.
func notRun(err error, extended bool) bool {
	if pgconn.SafeToRetry(err) {
		return true
	}
	return extended && sessionEnded(err)
}

// lostConn reports whether err is the loss of a connection that had been
// made (a network error, the end of the stream), not a server's error nor
// a failure to connect, after which another try would only wait again.
func lostConn(err error) bool {
	var pe *pgconn.PgError
	var ce *pgconn.ConnectError
	return !errors.As(err, &pe) && !errors.As(err, &ce) && chat.Unreachable(err)
}

// readOnly reports whether sql is a read, which may run twice: a SELECT.
// A statement of the pool that starts with SELECT must change nothing (no
// function with side effects); a write starts with INSERT, UPDATE, DELETE
// or WITH.
func readOnly(sql string) bool {
	sql = strings.TrimLeft(sql, " \t\r\n")
	return len(sql) >= len("SELECT") && strings.EqualFold(sql[:len("SELECT")], "SELECT")
}

// extended reports whether pgx sends a statement with arguments args by
// the extended protocol: unless the pool's or the statement's mode is the
// simple protocol, or it is an Exec without arguments.
func (p *pool) extended(exec bool, args []any) bool {
	mode := p.mode
	for len(args) > 0 { // pgx's options come first
		switch a := args[0].(type) {
		case pgx.QueryExecMode:
			mode = a
		case pgx.QueryResultFormats, pgx.QueryResultFormatsByOID, pgx.QueryRewriter:
		default:
			return mode != pgx.QueryExecModeSimpleProtocol
		}
		args = args[1:]
	}
	return mode != pgx.QueryExecModeSimpleProtocol && !exec
}

// readRows are Rows whose first row Query has read: the first Next gives
// it.
type readRows struct {
	pgx.Rows
	first bool
}

func (r *readRows) Next() bool {
	if r.first {
		r.first = false
		return true
	}
	return r.Rows.Next()
}

// row is the pgx.Row of pool.QueryRow. Like pgx's, it gives the error
// of the query at Scan.
type row struct {
	rows pgx.Rows
	err  error
}

func (r *row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	err := r.rows.Scan(dest...)
	r.rows.Close()
	if err != nil {
		return err
	}
	return r.rows.Err()
}
