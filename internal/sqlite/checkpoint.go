package sqlite

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"time"
)

// Checkpoints. In WAL mode a commit appends the pages it changed to the WAL
// file, and a checkpoint later copies them into the database file, syncing
// both files. By default SQLite checkpoints inside the commit that takes
// the WAL past 1000 pages (wal_autocheckpoint), so the writer, and every
// Append waiting for its group commit, also waited for the copy and two
// fsyncs. The write connection turns that off (writeConn), and the
// checkpointer goroutine below checkpoints from a connection of its own,
// beside the writer: a PASSIVE checkpoint copies what the WAL holds when it
// starts and takes no lock that a writer needs. Durability is unchanged:
// commits are synced or not as the database's Synchronous says (by default
// NORMAL: not), and a checkpoint still syncs the WAL before it copies
// anything out of it.
//
// A checkpoint waits until the WAL has grown by checkpointPages since the
// last one, as SQLite's own autocheckpoint does, and not after every write:
// once a checkpoint has copied the whole WAL, the next commit starts the
// WAL over and syncs its new header, an fsync a commit otherwise never
// waits for. Checkpointing after each of a few commits a second put that
// fsync in front of nearly every message at light load (a commit of one
// message took 0.68 ms instead of 0.25). The checkpointer learns how many
// pages the WAL holds that no checkpoint has copied from the WAL-index
// header in the "-shm" file (https://sqlite.org/walformat.html), which is
// cheaper than asking SQLite, who would checkpoint to answer. Letting SQLite
// cut the WAL file back when it starts over, so that its size would count
// the pages, cost 18 % of the group commit's throughput: the file system
// then allocates the WAL's blocks anew every time.
//
// SQLite starts the WAL over only when a writer finds every page of it
// copied, which a checkpoint beside the writer seldom achieves while commits
// keep coming. So once the WAL holds walRestartPages, the checkpointer takes
// the write connection, so that no commit comes in between, and checkpoints
// on it what remains (little: the checkpoints before did the bulk); the
// next commit then writes the WAL from its start, unless a reader still
// uses it, as with autocheckpoint. The WAL stays bounded by what is written
// in about checkpointEvery past walRestartPages.

const (
	// checkpointEvery is the least time between two checkpoints, so that a
	// page which many commits change is copied once per interval, not once
	// per commit.
	checkpointEvery = 50 * time.Millisecond

	// checkpointPages is how many pages the WAL must have grown by since
	// the last checkpoint for the next one: SQLite's default
	// wal_autocheckpoint.
	checkpointPages = 1000

	// walRestartPages is the WAL size, in pages, past which the
	// checkpointer holds writers back to start the WAL over: 16 MiB with
	// the default page size of 4 KiB.
	walRestartPages = 4096

	// walSizeLimit is the size, in bytes, that the WAL file is cut back to
	// when it starts over (the write connection's journal_size_limit): 64
	// MiB, four times walRestartPages with the default page size of 4 KiB,
	// which the WAL does not reach while the checkpointer keeps up. SQLite
	// otherwise never shrinks the file: once a long reader (a backup, a
	// long query) had kept the checkpoints from copying past its snapshot,
	// the WAL file kept the size it grew to, for as long as the database
	// stayed open. Below the limit the file is reused as it is, without
	// the cost of allocating its blocks anew.
	walSizeLimit = 4 * walRestartPages * 4096

	// Offsets in the WAL-index header, at the start of the -shm file, of
	// mxFrame (the WAL's last valid page) and nBackfill (the last one that
	// a checkpoint has copied), both 32-bit in the machine's byte order.
	shmMxFrame   = 16
	shmNBackfill = 96
)

// The checkpoint connection syncs like the writer.
func checkpointConn(s Synchronous) connSettings {
	return connSettings{pragmas: []string{"busy_timeout(10000)", s.pragma()}}
}

// startCheckpointer opens the checkpoint connection to the database file
// name and starts the goroutine that checkpoints the WAL after writes.
func (db *DB) startCheckpointer(ctx context.Context, name string) error {
	ck, err := openDB(name, checkpointConn(db.sync))
	if err != nil {
		return fmt.Errorf("open sqlite database %s: %w", db.path, err)
	}
	ck.SetMaxOpenConns(1)
	ck.SetMaxIdleConns(1)
	db.ck = ck
	if err := ck.PingContext(ctx); err != nil {
		return fmt.Errorf("open sqlite database %s: %w", db.path, err)
	}
	db.shm = &shmHeader{path: db.file + "-shm"}
	db.written = make(chan struct{}, 1)
	db.stopCheckpoints = make(chan struct{})
	db.checkpointerDone = make(chan struct{})
	go db.checkpointer()
	return nil
}

// stopCheckpointer stops the checkpointer and waits for it to return. The
// WAL is left to SQLite, which checkpoints it when the last connection
// closes.
func (db *DB) stopCheckpointer() {
	if db.stopCheckpoints == nil {
		return
	}
	close(db.stopCheckpoints)
	<-db.checkpointerDone
	db.shm.close()
}

// wrote tells the checkpointer that a write transaction has committed.
func (db *DB) wrote() {
	select {
	case db.written <- struct{}{}:
	default: // a checkpoint is already due
	}
}

func (db *DB) checkpointer() {
	defer close(db.checkpointerDone)
	for {
		select {
		case <-db.written:
		case <-db.stopCheckpoints:
			return
		}
		if db.walBacklog() < checkpointPages {
			continue
		}
		// A failed checkpoint loses nothing: the pages stay in the WAL,
		// and the next checkpoint, after the next write, copies them.
		_ = db.checkpoint(context.Background())
		select {
		case <-time.After(checkpointEvery):
		case <-db.stopCheckpoints:
			return
		}
	}
}

// walBacklog is how many pages the WAL holds that no checkpoint has
// copied yet, as the WAL-index header says; checkpointPages if it cannot
// be read, so that a checkpoint runs anyway.
func (db *DB) walBacklog() int64 { return db.shm.backlog() }

// shmHeader reads the WAL-index header of the database at path from its
// "-shm" file, which it opens once and keeps open: read after every
// commit, opening it each time cost seven more system calls than the read
// (open(2), and the runtime's epoll_ctl(2) and four fcntl(2), close(2)).
// The file stays the same while the database is open: SQLite removes it
// only when the last connection of the only process that may have the
// database open (Open's lock) closes, and recreates it only on the first
// open after. A failed read closes it, to be opened again next time.
type shmHeader struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func (h *shmHeader) backlog() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.f == nil {
		f, err := os.Open(h.path)
		if err != nil {
			return checkpointPages
		}
		h.f = f
	}
	var b [shmNBackfill + 4]byte
	if _, err := h.f.ReadAt(b[:], 0); err != nil {
		_ = h.f.Close()
		h.f = nil
		return checkpointPages
	}
	mx := binary.NativeEndian.Uint32(b[shmMxFrame:])
	done := binary.NativeEndian.Uint32(b[shmNBackfill:])
	if done > mx { // read while SQLite was writing it
		return checkpointPages
	}
	return int64(mx - done)
}

// close closes the file if it is open.
func (h *shmHeader) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.f != nil {
		_ = h.f.Close()
		h.f = nil
	}
}

// checkpoint copies the WAL into the database file, and has it started
// over if it has grown past walRestartPages.
func (db *DB) checkpoint(ctx context.Context) error {
	const q = `PRAGMA wal_checkpoint(PASSIVE)`
	var busy, pages, copied int
	if err := db.ck.QueryRowContext(ctx, q).Scan(&busy, &pages, &copied); err != nil || pages < walRestartPages {
		return err
	}
	c, err := db.rw.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.QueryRowContext(ctx, q).Scan(&busy, &pages, &copied)
}
