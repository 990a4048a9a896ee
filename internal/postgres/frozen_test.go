package postgres

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/testenv"
)

// TestFrozenNodeLock: a node whose host vanishes in the middle of a
// transaction that locked a conversation's row (as lockGroup does) holds
// that lock only for a bounded time: the other nodes' sends to the
// conversation are stored once the server has ended the frozen session,
// rather than failing until TCP keepalive notices, hours later.
func TestFrozenNodeLock(t *testing.T) {
	dsn := mustSchema(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := testenv.StartProxy(t, u.Host)
	u.Host = p.Addr()
	frozen, live := mustOpen(t, u.String()), mustOpen(t, dsn)
	ctx := t.Context()
	ann, r := annAndGeneral(t, live)

	c, err := frozen.pool.raw.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM conversations WHERE id = $1 FOR NO KEY UPDATE`, r.ID); err != nil {
		t.Fatal(err)
	}
	p.Freeze() // the node's host is gone, its transaction open

	actx, cancel := context.WithTimeout(ctx, 2*batchTimeout)
	defer cancel()
	m, _, err := live.Append(actx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: ann.ID, Body: "hi", At: time.Now()})
	p.Cut()
	c.Release()
	if err != nil || m.Seq != 1 {
		t.Errorf("Append while another node's frozen transaction held the room = seq %d, %v; want it stored", m.Seq, err)
	}
}

// TestDeadPeerNoticed: the server notices within a bounded time that the
// host of a node's session is gone, on the sessions of both pools. A
// session that has run the first statement of a pipeline without BEGIN
// (the group commit's lockConvs, a membership change's lock) and waits
// for the rest holds its locks with no timer running: PostgreSQL arms
// idle_in_transaction_session_timeout only when it answers a Sync. Only
// the server's TCP keepalive ends such a session when the node's host
// vanishes mid-send, and its default takes over two hours. (The test's
// proxy answers keepalives as a live host does, so what is checked here
// is the sessions' settings.)
func TestDeadPeerNoticed(t *testing.T) {
	db := mustOpenDB(t)
	ctx := t.Context()
	const want = 60 // seconds
	for name, pool := range map[string]interface {
		QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	}{"pool": db.pool.raw, "group commit pool": db.appendPool} {
		var idle, interval, count int
		err := pool.QueryRow(ctx, `SELECT current_setting('tcp_keepalives_idle')::int,
			current_setting('tcp_keepalives_interval')::int, current_setting('tcp_keepalives_count')::int`).Scan(&idle, &interval, &count)
		if err != nil {
			t.Fatal(err)
		}
		if got := idle + interval*count; idle == 0 || got > want {
			t.Errorf("%s: the server notices a vanished peer after %d s (tcp_keepalives_idle %d, interval %d, count %d); want at most %d s",
				name, got, idle, interval, count, want)
		}
	}
}
