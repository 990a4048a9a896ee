package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/parley-chat/parley/internal/chat/chattest"
)

func BenchmarkAppend(b *testing.B) { chattest.BenchmarkAppend(b, mustOpenDB(b)) }

func BenchmarkAppendParallel(b *testing.B) { chattest.BenchmarkAppendParallel(b, mustOpenDB(b)) }

// The same two with synchronous=FULL: every commit waits for an fsync of
// the WAL, one per message for a lone sender and one per batch for many.
func BenchmarkAppendSyncFull(b *testing.B) { chattest.BenchmarkAppend(b, mustOpenFull(b)) }

func BenchmarkAppendParallelSyncFull(b *testing.B) {
	chattest.BenchmarkAppendParallel(b, mustOpenFull(b))
}

func mustOpenFull(b *testing.B) *DB {
	db, err := OpenWith(b.Context(), filepath.Join(b.TempDir(), "parley.db"), Options{Synchronous: SyncFull})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// BenchmarkAppendAfterPause pauses long enough for whatever the
// checkpointer does after a write.
func BenchmarkAppendAfterPause(b *testing.B) {
	chattest.BenchmarkAppendAfterPause(b, mustOpenDB(b), 2*checkpointEvery)
}

func BenchmarkJoinRoomParallel(b *testing.B) { chattest.BenchmarkJoinRoomParallel(b, mustOpenDB(b)) }

func BenchmarkHistoryPage(b *testing.B) { chattest.BenchmarkHistoryPage(b, mustOpenDB(b)) }
