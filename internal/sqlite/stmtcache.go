package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"strings"
)

// SQLite drivers parse a statement anew each time database/sql runs it
// without preparing it first, which is how the store runs all but its
// hottest statements (prepareHot, rawconn.go). Connecting a client runs
// several such statements, and parsing them was a quarter of the server's
// CPU while clients connected (docs/benchmarks.md, target 5). So every
// connection of the store's pools keeps each statement it runs prepared,
// for its life: a statement is parsed once per connection, as a prepared
// *sql.Stmt would be, without the store having to prepare each one.

// maxCachedStmts bounds the statements a connection keeps. The store's
// statements are constants, a few dozen; past the bound, a statement is
// prepared for the call and closed after it.
const maxCachedStmts = 256

// stmtCacheConn is a driver connection that keeps the statements run
// through its ExecContext and QueryContext prepared. database/sql uses a
// connection from one goroutine at a time, its Rows' Close included, so
// the cache needs no lock of its own.
type stmtCacheConn struct {
	driver.Conn
	stmts map[string]*cachedStmt
}

// cachedStmt is a prepared statement and whether rows of it are open: a
// statement run again before its rows are closed (a query inside the loop
// over another's rows) is prepared for that call.
type cachedStmt struct {
	st   driver.Stmt
	busy bool
}

func newStmtCacheConn(c driver.Conn) *stmtCacheConn {
	return &stmtCacheConn{Conn: c, stmts: make(map[string]*cachedStmt)}
}

// single reports whether q is one statement: a script of several runs on
// the driver's own path, since a prepared statement would run only its
// first (github.com/mattn/go-sqlite3 does so).
func single(q string) bool {
	return !strings.Contains(strings.TrimRight(strings.TrimSpace(q), "; \t\n"), ";")
}

// stmt returns q prepared, and what to call once the caller is done with
// it.
func (c *stmtCacheConn) stmt(ctx context.Context, q string) (driver.Stmt, func(), error) {
	if cs, ok := c.stmts[q]; ok && !cs.busy {
		cs.busy = true
		return cs.st, func() { cs.busy = false }, nil
	}
	st, err := c.PrepareContext(ctx, q)
	if err != nil {
		return nil, nil, err
	}
	_, canExec := st.(driver.StmtExecContext)
	_, canQuery := st.(driver.StmtQueryContext)
	if _, ok := c.stmts[q]; ok || len(c.stmts) >= maxCachedStmts || !canExec || !canQuery {
		return st, func() { _ = st.Close() }, nil
	}
	cs := &cachedStmt{st: st, busy: true}
	c.stmts[q] = cs
	return st, func() { cs.busy = false }, nil
}

func (c *stmtCacheConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	if !single(q) {
		e, ok := c.Conn.(driver.ExecerContext)
		if !ok {
			return nil, driver.ErrSkip
		}
		return e.ExecContext(ctx, q, args)
	}
	st, done, err := c.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	defer done()
	if e, ok := st.(driver.StmtExecContext); ok {
		return e.ExecContext(ctx, args)
	}
	return nil, driver.ErrSkip // not reached: stmt keeps only statements that run with a context
}

func (c *stmtCacheConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	if !single(q) {
		qc, ok := c.Conn.(driver.QueryerContext)
		if !ok {
			return nil, driver.ErrSkip
		}
		return qc.QueryContext(ctx, q, args)
	}
	st, done, err := c.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	qs, ok := st.(driver.StmtQueryContext)
	if !ok {
		done()
		return nil, driver.ErrSkip
	}
	rows, err := qs.QueryContext(ctx, args)
	if err != nil {
		done()
		return nil, err
	}
	return &cachedRows{Rows: rows, done: done}, nil
}

func (c *stmtCacheConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, q)
	}
	return c.Prepare(q)
}

func (c *stmtCacheConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if b, ok := c.Conn.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
	return nil, errors.New("sqlite driver connection cannot begin with options")
}

func (c *stmtCacheConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *stmtCacheConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *stmtCacheConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *stmtCacheConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.Conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip // database/sql's own conversion, as without a checker
}

// Close closes the kept statements, then the connection.
func (c *stmtCacheConn) Close() error {
	var errs []error
	for _, cs := range c.stmts {
		errs = append(errs, cs.st.Close())
	}
	c.stmts = nil
	return errors.Join(append(errs, c.Conn.Close())...)
}

// cachedRows are the rows of a kept statement, which is free again once
// they are closed.
type cachedRows struct {
	driver.Rows
	done func()
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	if r.done != nil {
		r.done()
		r.done = nil
	}
	return err
}

// stmtCacheConnector opens connections with connect, each keeping its
// statements prepared.
type stmtCacheConnector struct {
	connect func() (driver.Conn, error)
	drv     driver.Driver
}

func (c stmtCacheConnector) Connect(context.Context) (driver.Conn, error) {
	dc, err := c.connect()
	if err != nil {
		return nil, err
	}
	return newStmtCacheConn(dc), nil
}

func (c stmtCacheConnector) Driver() driver.Driver { return c.drv }
