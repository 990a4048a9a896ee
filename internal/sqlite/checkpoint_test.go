package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// TestCheckpointerBoundsWAL writes several times walRestartPages while the
// checkpointer runs: the WAL must be started over rather than grow, and
// the database must hold every row on reopening.
func TestCheckpointerBoundsWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	fill, pageSize := fillerTable(t, db)
	const chunks = 3 * 8
	for range chunks {
		fill()
		time.Sleep(checkpointEvery / 4)
	}
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	// Written: three times walRestartPages. Without a start over the WAL
	// would hold all of it. With one, it holds walRestartPages and what
	// was written while the checkpointer waited (checkpointEvery) and
	// copied: on a slow disk, with the test writing on, more than another
	// walRestartPages at times (8,314 pages in one run of CI).
	if max := 5 * walRestartPages * pageSize / 2; fi.Size() > max {
		t.Errorf("WAL holds %d bytes after writing %d pages; want at most %d", fi.Size(), fillChunk*chunks, max)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpen(t, path)
	var n int
	if err := db.ro.QueryRowContext(ctx, `SELECT count(*) FROM filler`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != fillChunk*chunks {
		t.Errorf("filler holds %d rows; want %d", n, fillChunk*chunks)
	}
}

// TestCheckpointerWaitsForPages makes a few small commits, far apart: none
// may be followed by a checkpoint, since the commit after a checkpoint that
// copied the whole WAL starts the WAL over and syncs it. The pages no
// checkpoint has copied must keep growing, as SQLite counts them.
func TestCheckpointerWaitsForPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	ctx := context.Background()
	db := mustOpen(t, path)
	if err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE notes (s TEXT NOT NULL)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	last := db.walBacklog()
	for i := range 5 {
		if err := db.write(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO notes VALUES ('note')`)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * checkpointEvery) // time for a checkpoint, if one were due
		pages := db.walBacklog()
		if pages <= last {
			t.Fatalf("commit %d: the WAL holds %d pages not checkpointed, %d before; want it to grow", i, pages, last)
		}
		last = pages
	}
	var busy, pages, copied int64
	if err := db.ck.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &pages, &copied); err != nil {
		t.Fatal(err)
	}
	if pages != last || copied != pages {
		t.Errorf("SQLite copied %d of %d pages in the WAL; the -shm file said %d not copied", copied, pages, last)
	}
	if n := db.walBacklog(); n != 0 {
		t.Errorf("after a checkpoint, the -shm file says %d pages are not copied; want 0", n)
	}
}

// TestGroupCommitCheckpoints stores more than checkpointPages pages
// through the group commit alone: its commits must wake the checkpointer,
// which copies the WAL back below checkpointPages.
func TestGroupCommitCheckpoints(t *testing.T) {
	db, u, r := annInGeneral(t)
	ctx := context.Background()
	body := strings.Repeat("x", 3000) // about a page a message
	for i := range 2 * checkpointPages {
		if _, _, err := db.Append(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: u.ID,
			ClientID: fmt.Sprint(i), Body: body, At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for db.walBacklog() >= checkpointPages {
		if time.Now().After(deadline) {
			t.Fatalf("the WAL still holds %d pages not checkpointed 10 s after the last commit; want fewer than %d",
				db.walBacklog(), checkpointPages)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWALBacklogReopens: the -shm file is kept open between reads; a read
// that fails answers checkpointPages (a checkpoint then runs anyway) and
// closes it, and the next read opens it again and answers the backlog.
// The test reads through a shmHeader of its own, beside the checkpointer's.
func TestWALBacklogReopens(t *testing.T) {
	db, u, r := annInGeneral(t)
	ctx := context.Background()
	if _, _, err := db.Append(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: u.ID, ClientID: "c-1", Body: "hello", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	h := &shmHeader{path: db.file + "-shm"}
	defer h.close()
	n := h.backlog()
	if n <= 0 || n >= checkpointPages {
		t.Fatalf("backlog after one message = %d; want between 1 and %d", n, checkpointPages-1)
	}
	if h.f == nil {
		t.Fatal("the -shm file was not kept open after a read")
	}
	if err := h.f.Close(); err != nil { // the next read fails
		t.Fatal(err)
	}
	if got := h.backlog(); got != checkpointPages {
		t.Errorf("backlog with the file failing = %d; want checkpointPages (%d)", got, checkpointPages)
	}
	if h.f != nil {
		t.Error("the file was kept after a failed read")
	}
	if got := h.backlog(); got != n {
		t.Errorf("backlog once the file is opened again = %d; want %d", got, n)
	}
}

// TestCheckpointerShrinksWALAfterLongReader: while a reader keeps an old
// snapshot (a backup, a long query), no checkpoint can copy past it and the
// WAL grows with every write. Once the reader is done, the WAL starts over,
// and its file must be cut back to walSizeLimit, not keep the size it grew
// to for as long as the database stays open.
func TestCheckpointerShrinksWALAfterLongReader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	ctx := context.Background()
	db := mustOpen(t, path)
	fill, pageSize := fillerTable(t, db)
	walSize := func() int64 {
		t.Helper()
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}

	reader, err := db.ro.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := reader.QueryRowContext(ctx, `SELECT count(*) FROM filler`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	for range (walSizeLimit/pageSize + walRestartPages) / fillChunk {
		fill()
	}
	grown := walSize()
	if grown <= walSizeLimit {
		t.Fatalf("WAL holds %d bytes with a reader in the way; want more than %d for the test to mean anything", grown, walSizeLimit)
	}
	if err := reader.Rollback(); err != nil {
		t.Fatal(err)
	}

	// With the reader gone, the next checkpoints copy the WAL, and a
	// commit after them starts it over.
	for i := 0; ; i++ {
		fill()
		size := walSize()
		if size <= walSizeLimit {
			t.Logf("WAL cut back from %d to %d bytes after %d more writes", grown, size, i+1)
			return
		}
		if i == 40 {
			t.Fatalf("WAL still holds %d bytes (%d at most with the reader) after %d writes past the reader; want at most %d",
				size, grown, i+1, walSizeLimit)
		}
		time.Sleep(checkpointEvery)
	}
}

// fillChunk is how many rows, of about a page each, one call of
// fillerTable's fill writes: an eighth of walRestartPages.
const fillChunk = walRestartPages / 8

// fillerTable makes a table in db and returns a function that writes
// fillChunk pages' worth of rows to it in one transaction, and the
// database's page size.
func fillerTable(t *testing.T, db *DB) (fill func(), pageSize int64) {
	t.Helper()
	ctx := context.Background()
	if err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE filler (b BLOB NOT NULL)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.ro.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := db.write(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
				INSERT INTO filler SELECT zeroblob(? - 200) FROM n`, fillChunk, pageSize)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}, pageSize
}
