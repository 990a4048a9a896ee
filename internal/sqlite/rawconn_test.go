package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// TestGroupCommitRollsBack: a batch that fails on something other than a
// missing conversation stores nothing, every request in it gets the
// error, and the write connection goes on serving the next batches (a
// transaction left open would make their BEGIN fail).
func TestGroupCommitRollsBack(t *testing.T) {
	db, u, r := annInGeneral(t)
	ctx := context.Background()
	if _, err := db.rw.ExecContext(ctx, `CREATE TRIGGER boom BEFORE INSERT ON messages WHEN NEW.body = 'boom'
		BEGIN SELECT RAISE(ABORT, 'boom refused'); END`); err != nil {
		t.Fatal(err)
	}
	const senders = 20
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		stored int64
		failed int
	)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				body := "x"
				if s == 0 && i%3 == 0 {
					body = "boom"
				}
				_, _, err := db.Append(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: u.ID, Body: body, At: time.Now()})
				mu.Lock()
				switch {
				case err == nil && body == "boom":
					t.Error("the trigger's refusal was not reported")
				case err == nil:
					stored++
				case errors.Is(err, chat.ErrNotFound):
					t.Errorf("Append: %v; want the trigger's error", err)
				default:
					failed++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed < 4 {
		t.Errorf("%d appends failed; want at least the 4 refused", failed)
	}
	// Nothing of a failed batch is stored: the seqs that were acknowledged
	// are all there is, gap-free.
	ms, err := db.Messages(ctx, r.ID, chat.Page{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	room, err := db.Room(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(ms)) != stored || room.LastSeq != stored {
		t.Fatalf("room holds %d messages, last_seq %d; want the %d acknowledged", len(ms), room.LastSeq, stored)
	}
	for i, m := range ms {
		if m.Seq != int64(i+1) || m.Body != "x" {
			t.Fatalf("message %d: seq %d, body %q; want seq %d, body x", i, m.Seq, m.Body, i+1)
		}
	}
	m, _, err := db.Append(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: u.ID, Body: "after", At: time.Now()})
	if err != nil || m.Seq != stored+1 {
		t.Errorf("Append after the failures = seq %d, %v; want seq %d", m.Seq, err, stored+1)
	}
}

// TestGroupCommitEndsOpenTransaction: a transaction left open on the write
// connection (as a ROLLBACK that failed would leave it) is rolled back by
// the next batch, which then stores its message; what the open one wrote
// is not kept.
func TestGroupCommitEndsOpenTransaction(t *testing.T) {
	db, u, r := annInGeneral(t)
	ctx := context.Background()
	conn, err := db.rw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = conn.Raw(func(dc any) error {
		c := db.raw.on(dc)
		if _, err := c.exec(ctx, qBegin); err != nil {
			return err
		}
		_, err := c.exec(ctx, qInsert, r.ID, 1, chat.KindText, u.ID, "", "left open", 0, 0)
		return err
	})
	if cerr := conn.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	m, _, err := db.Append(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: u.ID, Body: "after", At: time.Now()})
	if err != nil || m.Seq != 1 {
		t.Fatalf("Append = seq %d, %v; want seq 1", m.Seq, err)
	}
	ms, err := db.Messages(ctx, r.ID, chat.Page{Limit: 10})
	if err != nil || len(ms) != 1 || ms[0].Body != "after" {
		t.Errorf("room holds %+v, %v; want the one message appended", ms, err)
	}
}

// TestWriteRawCancelledRollsBack: a writeRaw whose context ends before it
// is done (a MarkRead whose client went) still rolls back, so that the
// next write on the connection, database/sql's included, can begin, and
// nothing of it is kept.
func TestWriteRawCancelledRollsBack(t *testing.T) {
	db, u, r := annInGeneral(t)
	ctx, cancel := context.WithCancel(context.Background())
	gone := errors.New("client gone")
	err := db.writeRaw(ctx, func(rn runner) error {
		if _, err := rn.exec(ctx, qInsert, r.ID, 1, chat.KindText, u.ID, "", "cancelled", 0, 0); err != nil {
			return err
		}
		cancel()
		return gone
	})
	if !errors.Is(err, gone) {
		t.Fatalf("writeRaw = %v; want its own error", err)
	}
	if _, _, err := db.JoinRoom(context.Background(), r.ID, u.ID+1, time.Now(), false); err != nil && !errors.Is(err, chat.ErrNotFound) {
		t.Fatalf("a database/sql write after it: %v", err)
	}
	ms, err := db.Messages(context.Background(), r.ID, chat.Page{Limit: 10})
	if err != nil || len(ms) != 0 {
		t.Errorf("room holds %+v, %v; want nothing", ms, err)
	}
}

// TestWriteRawStopsWhenCancelled: the write connection's statements are
// not watched while they run (unwatched), but a context that ends between
// two of them, or before the COMMIT, still stops the transaction there:
// the next statement fails with the context's error and nothing is kept.
func TestWriteRawStopsWhenCancelled(t *testing.T) {
	db, u, r := annInGeneral(t)
	for _, tc := range []struct {
		name   string
		second bool // a statement after the cancel, or straight to the COMMIT
	}{{"next statement", true}, {"commit", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			var secondErr error
			err := db.writeRaw(ctx, func(rn runner) error {
				if _, err := rn.exec(ctx, qInsert, r.ID, 1, chat.KindText, u.ID, "", "first", 0, 0); err != nil {
					return err
				}
				cancel()
				if tc.second {
					_, secondErr = rn.exec(ctx, qInsert, r.ID, 2, chat.KindText, u.ID, "", "second", 0, 0)
					return secondErr
				}
				return nil
			})
			if !errors.Is(err, context.Canceled) || (tc.second && !errors.Is(secondErr, context.Canceled)) {
				t.Fatalf("writeRaw = %v (second statement: %v); want context.Canceled", err, secondErr)
			}
			ms, err := db.Messages(context.Background(), r.ID, chat.Page{Limit: 10})
			if err != nil || len(ms) != 0 {
				t.Errorf("room holds %+v, %v; want nothing", ms, err)
			}
		})
	}
}

func TestValueRowScan(t *testing.T) {
	var (
		n    int64
		ok   bool
		s    string
		kind chat.ConvKind
	)
	if err := (valueRow{int64(7), int64(1), []byte("ann"), "room"}).Scan(&n, &ok, &s, &kind); err != nil {
		t.Fatal(err)
	}
	if n != 7 || !ok || s != "ann" || kind != chat.ConvRoom {
		t.Errorf("scanned %d, %v, %q, %q; want 7, true, ann, room", n, ok, s, kind)
	}
	for _, tc := range []struct {
		name string
		row  valueRow
		dest any
	}{
		{"NULL into a string", valueRow{nil}, &s},
		{"NULL into an integer", valueRow{nil}, &n},
		{"text into an integer", valueRow{"7"}, &n},
		{"an integer into a string", valueRow{int64(7)}, &s},
		{"into a type it does not know", valueRow{int64(7)}, new(float64)},
	} {
		if err := tc.row.Scan(tc.dest); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if err := (valueRow{int64(1), int64(2)}).Scan(&n); err == nil {
		t.Error("two columns into one value: no error")
	}
}

// TestRawConnNewConnection: the statements run on a driver connection are
// prepared once in that connection's cache, and a new connection prepares
// its own; a connection's statements close with it; and a driver
// connection that keeps none (not opened by openDB) is an error.
func TestRawConnNewConnection(t *testing.T) {
	ctx := context.Background()
	var c rawConn
	a, b := &fakeConn{}, &fakeConn{}
	ca, cb := newStmtCacheConn(a), newStmtCacheConn(b)
	for _, dc := range []*stmtCacheConn{ca, ca, cb} {
		cs, err := c.on(dc).stmt(ctx, qBegin)
		if err != nil {
			t.Fatal(err)
		}
		cs.release()
	}
	if a.prepared != 1 || a.closed != 0 || b.prepared != 1 || b.closed != 0 {
		t.Errorf("first connection: %d prepared, %d closed; second: %d prepared, %d closed; want 1, 0, 1, 0",
			a.prepared, a.closed, b.prepared, b.closed)
	}
	if err := ca.Close(); err != nil || a.closed != 1 {
		t.Errorf("closing the first connection: %v, %d statements closed; want 1", err, a.closed)
	}
	if _, err := c.on(a).stmt(ctx, qBegin); err == nil {
		t.Error("a driver connection that keeps no statements: no error")
	}
}

type fakeConn struct{ prepared, closed int }

func (c *fakeConn) PrepareContext(context.Context, string) (driver.Stmt, error) {
	c.prepared++
	return fakeStmt{c}, nil
}
func (c *fakeConn) Prepare(string) (driver.Stmt, error) { return nil, errors.New("not used") }
func (c *fakeConn) Close() error                        { return nil }
func (c *fakeConn) Begin() (driver.Tx, error)           { return nil, errors.New("not used") }

type fakeStmt struct{ c *fakeConn }

func (s fakeStmt) Close() error                               { s.c.closed++; return nil }
func (s fakeStmt) NumInput() int                              { return -1 }
func (s fakeStmt) Exec([]driver.Value) (driver.Result, error) { return nil, errors.New("not used") }
func (s fakeStmt) Query([]driver.Value) (driver.Rows, error)  { return nil, errors.New("not used") }
func (s fakeStmt) ExecContext(context.Context, []driver.NamedValue) (driver.Result, error) {
	return driver.RowsAffected(0), nil
}
func (s fakeStmt) QueryContext(context.Context, []driver.NamedValue) (driver.Rows, error) {
	return nil, sql.ErrNoRows
}
