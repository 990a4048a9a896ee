package postgres

import (
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat/chattest"
)

func BenchmarkAppend(b *testing.B) { chattest.BenchmarkAppend(b, mustOpenDB(b)) }

func BenchmarkAppendParallel(b *testing.B) { chattest.BenchmarkAppendParallel(b, mustOpenDB(b)) }

func BenchmarkAppendAfterPause(b *testing.B) {
	chattest.BenchmarkAppendAfterPause(b, mustOpenDB(b), 100*time.Millisecond)
}

func BenchmarkJoinRoomParallel(b *testing.B) { chattest.BenchmarkJoinRoomParallel(b, mustOpenDB(b)) }

func BenchmarkHistoryPage(b *testing.B) { chattest.BenchmarkHistoryPage(b, mustOpenDB(b)) }
