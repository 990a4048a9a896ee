package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/chat/chattest"
)

// annInGeneral opens a database holding a user, Ann, and a room, general,
// for the group commit's tests.
func annInGeneral(t *testing.T) (*DB, chat.User, chat.Room) {
	t.Helper()
	db := mustOpenDB(t)
	ctx := context.Background()
	u, _, err := db.EnsureUser(ctx, "ann@example.com", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := db.EnsureRoom(ctx, "general", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return db, u, r
}

// TestGroupCommitMixedBatch sends many concurrent appends, some with
// repeated client IDs and some to a missing room, so that batches hold all
// kinds at once: each request gets its own answer.
func TestGroupCommitMixedBatch(t *testing.T) {
	chattest.MixedBatch(t, mustOpenDB(t), nil)
}

// TestAppendAfterClose: a send that reaches the store once it is closed
// is refused as unavailable.
func TestAppendAfterClose(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// The server is shutting down: unavailable (503), for the client to
	// send again, not an internal error.
	_, _, err = db.Append(context.Background(), chat.NewMessage{ConvID: 1, Kind: chat.KindText, Body: "x"})
	if !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("Append after Close = %v; want chat.ErrUnavailable", err)
	}
}

// TestGroupCommitManyConversations: concurrent member-only appends by
// members and non-members over several rooms, so that batches check
// membership, move read positions and bump rooms for many (room, sender)
// pairs at once (the one-statement forms): each answer is right, and every
// room's last_seq and every member's read position end where they should.
func TestGroupCommitManyConversations(t *testing.T) {
	db := mustOpenDB(t)
	ctx := context.Background()
	const rooms, users, each = 4, 6, 10
	var roomIDs, userIDs []int64
	for i := range rooms {
		r, _, err := db.EnsureRoom(ctx, fmt.Sprintf("r%d", i), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		roomIDs = append(roomIDs, r.ID)
	}
	for i := range users {
		u, _, err := db.EnsureUser(ctx, fmt.Sprintf("u%d@example.com", i), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		userIDs = append(userIDs, u.ID)
	}
	// User i is a member of room j when i+j is even; joining is quiet, so
	// only the appends below take seqs.
	member := func(i, j int) bool { return (i+j)%2 == 0 }
	for i, u := range userIDs {
		for j, r := range roomIDs {
			if member(i, j) {
				if _, _, err := db.JoinRoom(ctx, r, u, time.Now(), false); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		stored = make([]int64, rooms) // messages per room
		last   = map[[2]int]int64{}   // (user, room) → the user's latest seq
	)
	for i, u := range userIDs {
		for j, r := range roomIDs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range each {
					m, _, err := db.Append(ctx, chat.NewMessage{ConvID: r, Kind: chat.KindText, SenderID: u, ClientID: fmt.Sprint(k),
						Body: "x", At: time.Now(), MemberOnly: true, ConvKind: chat.ConvRoom})
					switch {
					case member(i, j) && err != nil:
						t.Errorf("member %d in room %d: %v", i, j, err)
						return
					case !member(i, j) && !errors.Is(err, chat.ErrNotMember):
						t.Errorf("non-member %d in room %d: %v; want ErrNotMember", i, j, err)
						return
					case err == nil:
						mu.Lock()
						stored[j]++
						last[[2]int{i, j}] = max(last[[2]int{i, j}], m.Seq)
						mu.Unlock()
					}
				}
			}()
		}
	}
	wg.Wait()
	for j, r := range roomIDs {
		room, err := db.Room(ctx, r)
		if err != nil || room.LastSeq != stored[j] || stored[j] != users/2*each {
			t.Errorf("room %d: last_seq %d, %v; stored %d, want %d", j, room.LastSeq, err, stored[j], users/2*each)
		}
		ps, err := db.ReadPositions(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			i := slices.Index(userIDs, p.UserID)
			if p.Seq != last[[2]int{i, j}] {
				t.Errorf("user %d's read position in room %d = %d; want their latest message, %d", i, j, p.Seq, last[[2]int{i, j}])
			}
		}
	}
}

// TestAppendPages counts the pages that storing one message adds to the
// WAL: at light load each message commits alone, and every page it changes
// is written out whole (docs/benchmarks.md, target 3). They are the
// message's row (kept in its primary key's order, migration 13) and its two
// index entries, the conversation's row, and the sender's read position; an
// index that every message updates and no query reads, as
// conversations_last_active_at was, makes one more, and so did the primary
// key's own index while the messages were a table of rowids.
func TestAppendPages(t *testing.T) {
	db, u, r := annInGeneral(t)
	ctx := t.Context()
	now := time.Now()
	if _, _, err := db.JoinRoom(ctx, r.ID, u.ID, now, false); err != nil {
		t.Fatal(err)
	}
	send := func(i int) {
		t.Helper()
		m := chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: u.ID, ClientID: fmt.Sprintf("c-%03d", i), Body: "hello", MemberOnly: true, ConvKind: chat.ConvRoom, At: now.Add(time.Duration(i) * time.Millisecond)}
		if _, created, err := db.Append(ctx, m); err != nil || !created {
			t.Fatalf("Append %d: created %v, %v", i, created, err)
		}
	}
	send(0) // the first message of the room may start pages of its own
	const sends = 10
	before := db.walBacklog()
	for i := 1; i <= sends; i++ {
		send(i)
	}
	pages := db.walBacklog() - before
	t.Logf("%d pages for %d messages committed one by one", pages, sends)
	if pages > 5*sends {
		t.Errorf("%d messages, each in its own commit, wrote %d pages to the WAL; want at most %d", sends, pages, 5*sends)
	}
}
