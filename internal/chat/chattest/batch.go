package chattest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// RefusedAppend is an append that a store must refuse with Err.
type RefusedAppend struct {
	What    string // as in "Append of <What>"
	Message chat.NewMessage
	Err     error
}

// MixedBatch sends many concurrent appends to st, in room general of its
// user Ann, so that the group commit's batches hold all kinds at once:
// every client ID twice, an append to a missing room, and after each
// send those that refused returns for Ann and the room (nil for none).
// Each request must get its own answer: one message stored per client ID,
// in a gap-free sequence, at the seq Append returned for it.
func MixedBatch(t *testing.T, st chat.Store, refused func(u chat.User, r chat.Room) []RefusedAppend) {
	t.Helper()
	ctx := context.Background()
	u, _, err := st.EnsureUser(ctx, "ann@example.com", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := st.EnsureRoom(ctx, "general", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var odd []RefusedAppend
	if refused != nil {
		odd = refused(u, r)
	}
	const senders, each = 40, 25
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created = map[string]int64{} // client ID → seq
		dups    int
	)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				cid := fmt.Sprintf("c%d", (s*each+i)/2) // every ID is sent twice
				m, ok, err := st.Append(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: u.ID, ClientID: cid, Body: "x", At: time.Now()})
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				if _, _, err := st.Append(ctx, chat.NewMessage{ConvID: 999999, Kind: chat.KindText, SenderID: u.ID, Body: "x", At: time.Now()}); !errors.Is(err, chat.ErrNotFound) {
					t.Errorf("Append to a missing room = %v; want ErrNotFound", err)
				}
				for _, a := range odd {
					nm := a.Message
					nm.At = time.Now()
					if _, _, err := st.Append(ctx, nm); !errors.Is(err, a.Err) {
						t.Errorf("Append of %s = %v; want %v", a.What, err, a.Err)
					}
				}
				mu.Lock()
				if ok {
					if _, seen := created[cid]; seen {
						t.Errorf("client ID %s stored twice", cid)
					}
					created[cid] = m.Seq
				} else {
					dups++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(created) != senders*each/2 || dups != senders*each/2 {
		t.Fatalf("stored %d, duplicates %d; want %d each", len(created), dups, senders*each/2)
	}
	ms, err := st.Messages(ctx, r.ID, chat.Page{After: 0, Before: 100000, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if m.Seq != int64(i+1) {
			t.Fatalf("message %d has seq %d; want a gap-free sequence", i, m.Seq)
		}
		if created[m.ClientID] != m.Seq {
			t.Errorf("seq %d holds %s; Append returned seq %d for it", m.Seq, m.ClientID, created[m.ClientID])
		}
	}
	if len(ms) != len(created) {
		t.Errorf("room holds %d messages; want %d", len(ms), len(created))
	}
	room, err := st.Room(ctx, r.ID)
	if err != nil || room.LastSeq != int64(len(created)) {
		t.Errorf("room last_seq = %d, %v; want %d", room.LastSeq, err, len(created))
	}
}
