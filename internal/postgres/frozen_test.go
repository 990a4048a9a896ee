package postgres

import (
	"context"
	"net/url"
	"testing"
	"time"

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
