package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"reflect"
)

// The group commit's transactions run on the write connection's driver
// connection, not through database/sql's Tx. With the Tx, every commit
// parsed two statements anew (the driver runs BEGIN and COMMIT unprepared),
// and each statement went through database/sql's bookkeeping. At light
// load, where every cache has gone cold between two messages, that cost
// most: BenchmarkAppendAfterPause took 671–919 µs through the Tx and
// 585–737 µs this way, in alternated runs (docs/benchmarks-journal.md,
// target 3).

// runner runs the appender's statements: through database/sql in a
// transaction (txRunner), or on the driver connection (rawConn).
type runner interface {
	exec(ctx context.Context, q string, args ...any) (rowsAffected int64, err error)
	queryRow(ctx context.Context, q string, args ...any) scanner
	query(ctx context.Context, q string, args []any, each func(scanner) error) error
}

// txRunner runs statements in tx. The connection keeps each prepared
// (stmtcache.go), so the transaction prepares none of its own.
type txRunner struct{ tx *sql.Tx }

func newTxRunner(tx *sql.Tx) txRunner { return txRunner{tx: tx} }

func (r txRunner) exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := r.tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (r txRunner) queryRow(ctx context.Context, q string, args ...any) scanner {
	return r.tx.QueryRowContext(ctx, q, args...)
}

func (r txRunner) query(ctx context.Context, q string, args []any, each func(scanner) error) error {
	rows, err := r.tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// errRow is a row that fails to scan with its error.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// Transaction control, prepared once per connection like the rest.
const (
	qBegin    = `BEGIN IMMEDIATE`
	qCommit   = `COMMIT`
	qRollback = `ROLLBACK`
)

// rawConn runs statements on the write connection's driver connection,
// prepared once for its life in the connection's own cache (stmtcache.go),
// without database/sql's bookkeeping. Only writeRaw and prepareBatch use
// it, inside conn.Raw on the write handle's only connection: one goroutine
// at a time, so it needs no lock.
type rawConn struct {
	dc   *stmtCacheConn      // nil if the driver connection is not one of the store's
	args []driver.NamedValue // exec's arguments, kept for the next exec: the driver binds them and keeps none
}

// on returns c ready to run statements on dc, the driver connection
// database/sql hands to conn.Raw.
func (c *rawConn) on(dc any) *rawConn {
	c.dc, _ = dc.(*stmtCacheConn)
	return c
}

func (c *rawConn) stmt(ctx context.Context, q string) (*cachedStmt, error) {
	if c.dc == nil {
		return nil, errors.New("sqlite: the write connection keeps no statements (not opened by openDB)")
	}
	return c.dc.stmt(ctx, q)
}

// namedValues converts args as database/sql does for a driver with no
// converter of its own (a type defined on string, as chat.ConvKind, becomes
// a string, an int an int64), appending them to nv.
func namedValues(nv []driver.NamedValue, args []any) ([]driver.NamedValue, error) {
	for i, a := range args {
		v, err := driver.DefaultParameterConverter.ConvertValue(a)
		if err != nil {
			return nil, fmt.Errorf("argument %d: %w", i+1, err)
		}
		nv = append(nv, driver.NamedValue{Ordinal: i + 1, Value: v})
	}
	return nv, nil
}

// unwatched is the context a statement of the write connection runs with:
// ctx's end is checked before the statement, and not watched while it
// runs. For a context that can end, the driver starts a goroutine per
// statement to interrupt it, and registers a progress handler: for the
// write connection's statements, a few rows each on a local file, that
// cost about a fifth of a lone read position's move (BenchmarkMarkRead with
// an operation's deadline, docs/benchmarks-journal.md, target 2). A
// transaction whose caller's context ends between two statements still
// stops there and rolls back.
func unwatched(ctx context.Context) (context.Context, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return context.Background(), nil
}

func (c *rawConn) exec(ctx context.Context, q string, args ...any) (int64, error) {
	ctx, err := unwatched(ctx)
	if err != nil {
		return 0, err
	}
	cs, err := c.stmt(ctx, q)
	if err != nil {
		return 0, err
	}
	defer cs.release()
	nv, err := namedValues(c.args[:0], args)
	if err != nil {
		return 0, err
	}
	res, err := cs.exec(ctx, nv)
	clear(nv) // let the values go: message bodies among them
	c.args = nv
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// rows runs query q with args.
func (c *rawConn) rows(ctx context.Context, q string, args []any) (driver.Rows, error) {
	ctx, err := unwatched(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := c.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	nv, err := namedValues(nil, args)
	if err != nil {
		cs.release()
		return nil, err
	}
	return cs.query(ctx, nv)
}

func (c *rawConn) query(ctx context.Context, q string, args []any, each func(scanner) error) error {
	rows, err := c.rows(ctx, q, args)
	if err != nil {
		return err
	}
	defer rows.Close()
	row := make(valueRow, len(rows.Columns()))
	for {
		switch err := rows.Next(row); {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return err
		}
		if err := each(row); err != nil {
			return err
		}
	}
}

// queryRow is QueryRowContext: it scans the first row, or fails with
// sql.ErrNoRows.
func (c *rawConn) queryRow(ctx context.Context, q string, args ...any) scanner {
	rows, err := c.rows(ctx, q, args)
	if err != nil {
		return errRow{err}
	}
	defer rows.Close()
	row := make(valueRow, len(rows.Columns()))
	switch err := rows.Next(row); {
	case errors.Is(err, io.EOF):
		return errRow{sql.ErrNoRows}
	case err != nil:
		return errRow{err}
	}
	for i, v := range row { // the driver may reuse its bytes once the rows close
		if b, ok := v.([]byte); ok {
			row[i] = append([]byte(nil), b...)
		}
	}
	return row
}

// valueRow is a row as the driver gives it.
type valueRow []driver.Value

// Scan stores the row's values in dest, for the types the appender reads:
// integers, booleans (an integer that is not 0), strings and types defined
// on them. Like database/sql, it refuses NULL for them.
func (r valueRow) Scan(dest ...any) error {
	if len(dest) != len(r) {
		return fmt.Errorf("sqlite: %d columns scanned into %d values", len(r), len(dest))
	}
	for i, d := range dest {
		if err := assign(d, r[i]); err != nil {
			return fmt.Errorf("sqlite: column %d: %w", i+1, err)
		}
	}
	return nil
}

func assign(dest any, v driver.Value) error {
	switch d := dest.(type) {
	case *int64:
		if x, ok := v.(int64); ok {
			*d = x
			return nil
		}
	case *bool:
		switch x := v.(type) {
		case int64:
			*d = x != 0
			return nil
		case bool:
			*d = x
			return nil
		}
	case *string:
		switch x := v.(type) {
		case string:
			*d = x
			return nil
		case []byte:
			*d = string(x)
			return nil
		}
	default:
		if p := reflect.ValueOf(dest); p.Kind() == reflect.Pointer && !p.IsNil() && p.Elem().Kind() == reflect.String {
			var s string
			if err := assign(&s, v); err != nil {
				return err
			}
			p.Elem().SetString(s)
			return nil
		}
	}
	return fmt.Errorf("cannot store %T in %T", v, dest)
}
