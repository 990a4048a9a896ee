package sqlite

import (
	"testing"

	"github.com/parley-chat/parley/internal/chat/chattest"
)

func BenchmarkAppend(b *testing.B) { chattest.BenchmarkAppend(b, mustOpenDB(b)) }

func BenchmarkAppendParallel(b *testing.B) { chattest.BenchmarkAppendParallel(b, mustOpenDB(b)) }

// BenchmarkAppendAfterPause pauses long enough for whatever the
// checkpointer does after a write.
func BenchmarkAppendAfterPause(b *testing.B) {
	chattest.BenchmarkAppendAfterPause(b, mustOpenDB(b), 2*checkpointEvery)
}

func BenchmarkJoinRoomParallel(b *testing.B) { chattest.BenchmarkJoinRoomParallel(b, mustOpenDB(b)) }
