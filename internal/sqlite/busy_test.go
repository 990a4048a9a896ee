package sqlite

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// TestWriteWhileLockedElsewhere: while another process holds the
// database's write lock longer than the busy timeout (an operator's
// sqlite3 shell left in BEGIN IMMEDIATE, a long backup or VACUUM), a write
// fails as unavailable (503, retry later), not as a bug (500), on both
// write paths: a transaction of database/sql (EnsureRoom) and the group
// commit (Append). Once the lock is gone, writes succeed again.
func TestWriteWhileLockedElsewhere(t *testing.T) {
	db, u, r := annInGeneral(t)
	ctx := context.Background()
	other, err := openDB(fileURI(db.file), connSettings{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	hold, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	if _, err := hold.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	locked := true
	defer func() {
		if locked {
			hold.ExecContext(ctx, `ROLLBACK`)
		}
	}()

	unavailable := func(what string, err error) {
		t.Helper()
		if e := chat.AsError(err); e == nil || e.Code != chat.CodeUnavailable || !errors.Is(err, chat.ErrUnavailable) {
			t.Errorf("%s while another connection holds the write lock = %v; want a chat error of kind ErrUnavailable", what, err)
		}
	}
	_, _, err = db.EnsureRoom(ctx, "random", time.Now())
	unavailable("EnsureRoom", err)
	_, _, err = db.Append(ctx, chat.NewMessage{ConvID: r.ID, SenderID: u.ID, ClientID: "c1", Body: "hi", At: time.Now()})
	unavailable("Append", err)

	if _, err := hold.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	locked = false
	if _, _, err := db.EnsureRoom(ctx, "random", time.Now()); err != nil {
		t.Errorf("EnsureRoom after the lock is gone: %v", err)
	}
	if _, _, err := db.Append(ctx, chat.NewMessage{ConvID: r.ID, SenderID: u.ID, ClientID: "c1", Body: "hi", At: time.Now()}); err != nil {
		t.Errorf("Append after the lock is gone: %v", err)
	}
}

// TestWriteAfterTransactionLeftOpen: a write transaction left open on the
// write connection, as a COMMIT and then its ROLLBACK that both failed
// leave it (the driver's Commit rolls back a COMMIT that failed, but
// database/sql hands the connection back whatever that ROLLBACK did),
// does not fail every later write until a message or a read position
// (writeRaw, which heals its own path) comes by: write rolls it back and
// begins again, as writeRaw does.
func TestWriteAfterTransactionLeftOpen(t *testing.T) {
	db, _, _ := annInGeneral(t)
	ctx := context.Background()
	conn, err := db.rw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	if err := conn.Close(); err != nil { // back to the pool, in the transaction
		t.Fatal(err)
	}
	for i := range 2 {
		if _, _, err := db.EnsureRoom(ctx, "random", time.Now()); err != nil {
			t.Errorf("EnsureRoom %d after a transaction was left open: %v", i, err)
		}
	}
	if _, err := db.RoomByName(ctx, "random"); err != nil {
		t.Errorf("RoomByName after EnsureRoom: %v; want the room stored", err)
	}
}
