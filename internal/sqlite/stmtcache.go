package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
)

// SQLite drivers parse a statement anew each time database/sql runs it
// without preparing it first, which is how the store ran all but its three
// hottest reads and the group commit's statements, each kept prepared on
// its own. Connecting a client runs several such statements, and parsing
// them was a quarter of the server's CPU while clients connected
// (docs/benchmarks.md, target 5). So every connection of the store's pools
// keeps each statement it runs prepared, for its life: a statement is
// parsed once per connection, whoever runs it, through database/sql or on
// the driver connection (rawconn.go).

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

// cachedStmt is a prepared statement and whether it is in use: a
// statement run again before the rows of its last run are closed (a query
// inside the loop over another's rows) is prepared for that call alone.
type cachedStmt struct {
	st     driver.Stmt
	busy   bool
	oneOff bool // not kept: closed once released
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

// stmt returns q prepared, in use until released.
func (c *stmtCacheConn) stmt(ctx context.Context, q string) (*cachedStmt, error) {
	if cs, ok := c.stmts[q]; ok && !cs.busy {
		cs.busy = true
		return cs, nil
	}
	st, err := c.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	_, canExec := st.(driver.StmtExecContext)
	_, canQuery := st.(driver.StmtQueryContext)
	if !canExec || !canQuery {
		_ = st.Close()
		return nil, fmt.Errorf("sqlite driver statement %T cannot run with a context", st)
	}
	cs := &cachedStmt{st: st, busy: true}
	if _, ok := c.stmts[q]; ok || len(c.stmts) >= maxCachedStmts {
		cs.oneOff = true
	} else {
		c.stmts[q] = cs
	}
	return cs, nil
}

// release ends the caller's use of cs.
func (cs *cachedStmt) release() {
	if cs.oneOff {
		_ = cs.st.Close()
		return
	}
	cs.busy = false
}

func (cs *cachedStmt) exec(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return cs.st.(driver.StmtExecContext).ExecContext(ctx, args)
}

// query runs cs; it is released when the rows are closed, or now if it
// fails.
func (cs *cachedStmt) query(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	rows, err := cs.st.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		cs.release()
		return nil, err
	}
	return &cachedRows{Rows: rows, cs: cs}, nil
}

func (c *stmtCacheConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	if !single(q) {
		e, ok := c.Conn.(driver.ExecerContext)
		if !ok {
			return nil, driver.ErrSkip
		}
		return e.ExecContext(ctx, q, args)
	}
	cs, err := c.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	defer cs.release()
	return cs.exec(ctx, args)
}

func (c *stmtCacheConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	if !single(q) {
		qc, ok := c.Conn.(driver.QueryerContext)
		if !ok {
			return nil, driver.ErrSkip
		}
		return qc.QueryContext(ctx, q, args)
	}
	cs, err := c.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return cs.query(ctx, args)
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

// cachedRows are the rows of a statement, which is released once they are
// closed.
type cachedRows struct {
	driver.Rows
	cs *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	if r.cs != nil {
		r.cs.release()
		r.cs = nil
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
