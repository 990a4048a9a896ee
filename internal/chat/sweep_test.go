package chat_test

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// TestTrimUserEventsKeepsReplay fills a user's log past chat.MaxReplay:
// the trim leaves exactly the newest chat.MaxReplay, all a returning
// client can be given, and the log then stays at that size as it grows.
func TestTrimUserEventsKeepsReplay(t *testing.T) {
	ctx := context.Background()
	st := sqliteStore(t)
	u, _, err := st.EnsureUser(ctx, "ada@example.com", time.Now())
	if err != nil {
		t.Fatalf("EnsureUser: %v", err)
	}
	const extra = 10
	ev := chat.Event{Type: chat.EventRemoved, ConvID: 12, Reason: "removed"}
	appendN := func(n int) {
		t.Helper()
		for range n {
			if _, err := st.AppendUserEvent(ctx, u.ID, ev, time.Now()); err != nil {
				t.Fatalf("AppendUserEvent: %v", err)
			}
		}
	}
	check := func(last int64) {
		t.Helper()
		if _, err := chat.TrimUserEvents(ctx, st); err != nil {
			t.Fatalf("TrimUserEvents: %v", err)
		}
		evs, err := st.UserEvents(ctx, u.ID, 0, 10*chat.MaxReplay)
		if err != nil {
			t.Fatalf("UserEvents: %v", err)
		}
		if len(evs) != chat.MaxReplay || evs[0].UserSeq != last-chat.MaxReplay+1 || evs[len(evs)-1].UserSeq != last {
			first, newest := int64(0), int64(0)
			if len(evs) > 0 {
				first, newest = evs[0].UserSeq, evs[len(evs)-1].UserSeq
			}
			t.Fatalf("after the trim the log holds %d events, %d to %d; want %d, %d to %d",
				len(evs), first, newest, chat.MaxReplay, last-chat.MaxReplay+1, last)
		}
	}
	appendN(chat.MaxReplay + extra)
	check(chat.MaxReplay + extra)
	appendN(extra)
	check(chat.MaxReplay + 2*extra)
}

// fullTrimStore is a store whose every trim removes as many as asked: a
// backlog that never ends.
type fullTrimStore struct {
	chat.ActivityStore
	calls int
	keeps []int
}

func (s *fullTrimStore) TrimUserEvents(_ context.Context, keep, limit int) (int, error) {
	s.calls++
	s.keeps = append(s.keeps, keep)
	return limit, nil
}

// TestTrimUserEventsBounded checks that one call works off a bounded
// part of a backlog, in bounded batches, keeping the replay.
func TestTrimUserEventsBounded(t *testing.T) {
	st := &fullTrimStore{}
	n, err := chat.TrimUserEvents(context.Background(), st)
	if err != nil {
		t.Fatalf("TrimUserEvents: %v", err)
	}
	if st.calls == 0 || st.calls > 100 || n != st.calls*1000 {
		t.Errorf("TrimUserEvents = %d in %d batches; want batches of 1000, 1 to 100 of them", n, st.calls)
	}
	for _, k := range st.keeps {
		if k != chat.MaxReplay {
			t.Fatalf("TrimUserEvents kept %d events per user; want chat.MaxReplay, %d", k, chat.MaxReplay)
		}
	}
}

// fullExpiredStore is a store whose every DeleteExpired removes as many
// as asked: a backlog that never ends.
type fullExpiredStore struct {
	chat.AuthStore
	limits []int
}

func (s *fullExpiredStore) DeleteExpired(_ context.Context, _ time.Time, limit int) (int, error) {
	s.limits = append(s.limits, limit)
	return limit, nil
}

// TestDeleteExpiredBounded checks that one call removes a bounded part of
// a backlog of expired sessions and codes, in bounded batches.
func TestDeleteExpiredBounded(t *testing.T) {
	st := &fullExpiredStore{}
	n, err := chat.DeleteExpired(context.Background(), st, time.Now())
	if err != nil {
		t.Fatalf("DeleteExpired: %v", err)
	}
	if len(st.limits) == 0 || len(st.limits) > 100 || n != 1000*len(st.limits) {
		t.Fatalf("DeleteExpired = %d in %d batches of %v; want batches of 1000, 1 to 100 of them", n, len(st.limits), st.limits)
	}
}

// deadlineStore is a store whose sweeps note, for each batch, how long its
// context gave it.
type deadlineStore struct {
	chat.AuthStore
	chat.ActivityStore
	lefts []time.Duration // -1: no deadline
}

func (s *deadlineStore) note(ctx context.Context) {
	left := time.Duration(-1)
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	s.lefts = append(s.lefts, left)
}

func (s *deadlineStore) DeleteExpired(ctx context.Context, _ time.Time, limit int) (int, error) {
	s.note(ctx)
	return limit, nil
}

func (s *deadlineStore) TrimUserEvents(ctx context.Context, _, limit int) (int, error) {
	s.note(ctx)
	return limit, nil
}

// TestSweepBatchesBounded: each batch of a sweep has a deadline of its
// own, even when the sweep's context has none (the server's, for as long
// as it runs): a batch stuck on a connection that does not answer ends,
// and gives its connection back, rather than holding it until TCP gives
// up.
func TestSweepBatchesBounded(t *testing.T) {
	for name, sweep := range map[string]func(*deadlineStore) (int, error){
		"DeleteExpired":  func(st *deadlineStore) (int, error) { return chat.DeleteExpired(context.Background(), st, time.Now()) },
		"TrimUserEvents": func(st *deadlineStore) (int, error) { return chat.TrimUserEvents(context.Background(), st) },
	} {
		st := &deadlineStore{}
		if _, err := sweep(st); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i, left := range st.lefts {
			if left < 0 || left > chat.SweepBatchTimeout {
				t.Fatalf("%s: batch %d had %v left (-1: no deadline); want at most %v", name, i+1, left, chat.SweepBatchTimeout)
			}
		}
	}
}
