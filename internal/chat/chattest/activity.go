package chattest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/parley-chat/parley/internal/chat"
)

func testLastSeen(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ada := mustUser(t, s, "ada@example.com", "Ada")
	grace := mustUser(t, s, "grace@example.com", "Grace")
	got, err := s.LastSeen(ctx, []int64{ada.ID, grace.ID, missing})
	if err != nil || len(got) != 0 {
		t.Fatalf("LastSeen before any = %v, %v; want empty", got, err)
	}
	at := t0.Add(1500 * time.Microsecond).In(time.FixedZone("X", 3600))
	if err := s.SetLastSeen(ctx, ada.ID, at); err != nil {
		t.Fatalf("SetLastSeen: %v", err)
	}
	if err := s.SetLastSeen(ctx, grace.ID, t0); err != nil {
		t.Fatalf("SetLastSeen: %v", err)
	}
	if err := s.SetLastSeen(ctx, grace.ID, t0.Add(time.Hour)); err != nil {
		t.Fatalf("SetLastSeen again: %v", err)
	}
	// An older time, written late (another node's, counting Grace out
	// with its clock behind, or its write overtaken), moves nothing back.
	if err := s.SetLastSeen(ctx, grace.ID, t0.Add(time.Minute)); err != nil {
		t.Fatalf("SetLastSeen older: %v", err)
	}
	got, err = s.LastSeen(ctx, []int64{ada.ID, grace.ID, missing})
	want := map[int64]time.Time{ada.ID: at.UTC(), grace.ID: t0.Add(time.Hour)}
	if err != nil {
		t.Fatalf("LastSeen: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LastSeen mismatch (-want +got):\n%s", diff)
	}
	if got, err := s.LastSeen(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("LastSeen(nil) = %v, %v; want empty", got, err)
	}
}

func testMemberReadPositions(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ada := mustUser(t, s, "ada@example.com", "Ada")
	grace := mustUser(t, s, "grace@example.com", "Grace")
	c, _, err := s.EnsureDirect(ctx, ada.ID, grace.ID, t0)
	if err != nil {
		t.Fatalf("EnsureDirect: %v", err)
	}
	for i := range 3 {
		mustAppend(t, s, chat.NewMessage{ConvID: c.ID, Kind: chat.KindText, SenderID: ada.ID, Body: "a", At: t0.Add(time.Duration(i) * time.Second)})
	}
	if _, _, err := MarkRead(ctx, s, c.ID, grace.ID, 2); err != nil {
		t.Fatalf("MarkRead: %v", err)
	}
	got, err := s.ReadPositions(ctx, c.ID)
	want := []chat.ReadPosition{{UserID: ada.ID, Seq: 3}, {UserID: grace.ID, Seq: 2}}
	if err != nil {
		t.Fatalf("ReadPositions: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadPositions mismatch (-want +got):\n%s", diff)
	}
	if got, err := s.ReadPositions(ctx, missing); err != nil || len(got) != 0 {
		t.Errorf("ReadPositions(missing) = %v, %v; want empty", got, err)
	}
}

func testUserEvents(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ada := mustUser(t, s, "ada@example.com", "Ada")
	grace := mustUser(t, s, "grace@example.com", "Grace")
	if n, err := s.LastUserEvent(ctx, ada.ID); err != nil || n != 0 {
		t.Fatalf("LastUserEvent before any = %d, %v; want 0", n, err)
	}
	contact := chat.Event{Type: chat.EventContact, Contact: &chat.Contact{User: pub(grace), State: chat.StateRequestReceived, Since: t0}}
	removed := chat.Event{Type: chat.EventRemoved, ConvID: 12, Reason: "removed"}
	added := chat.Event{Type: chat.EventConversation, ConvID: 12, ConvKind: chat.ConvGroup, Message: &chat.Message{
		ConvID: 12, Seq: 3, Kind: chat.KindAdded, SenderID: grace.ID, SenderName: "Grace", TargetID: ada.ID, CreatedAt: t0,
	}}
	var want []chat.Event
	for i, ev := range []chat.Event{contact, added, removed} {
		got, err := s.AppendUserEvent(ctx, ada.ID, ev, t0.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatalf("AppendUserEvent: %v", err)
		}
		ev.UserSeq = int64(i + 1)
		if diff := cmp.Diff(ev, got); diff != "" {
			t.Errorf("AppendUserEvent %d mismatch (-want +got):\n%s", i, diff)
		}
		want = append(want, ev)
	}
	// Another user's log is separate and numbered from 1.
	if got, err := s.AppendUserEvent(ctx, grace.ID, removed, t0); err != nil || got.UserSeq != 1 {
		t.Errorf("Grace's first event = %+v, %v; want UserSeq 1", got, err)
	}
	if _, err := s.AppendUserEvent(ctx, missing, removed, t0); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("AppendUserEvent(missing user): err = %v; want ErrNotFound", err)
	}
	for _, tc := range []struct {
		after int64
		limit int
		want  []chat.Event
	}{
		{0, 10, want}, {1, 10, want[1:]}, {0, 2, want[:2]}, {3, 10, []chat.Event{}},
	} {
		got, err := s.UserEvents(ctx, ada.ID, tc.after, tc.limit)
		if err != nil {
			t.Fatalf("UserEvents(%d, %d): %v", tc.after, tc.limit, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("UserEvents(%d, %d) mismatch (-want +got):\n%s", tc.after, tc.limit, diff)
		}
	}
	if n, err := s.LastUserEvent(ctx, ada.ID); err != nil || n != 3 {
		t.Errorf("LastUserEvent = %d, %v; want 3", n, err)
	}
	if _, err := s.LastUserEvent(ctx, missing); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("LastUserEvent(missing user): err = %v; want ErrNotFound", err)
	}
}

// testUserEventsConcurrent appends from many goroutines: every event gets
// its own number, with no gap.
func testUserEventsConcurrent(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ada := mustUser(t, s, "ada@example.com", "Ada")
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := chat.Event{Type: chat.EventRemoved, ConvID: int64(i + 1), Reason: fmt.Sprint("r", i)}
			if _, err := s.AppendUserEvent(ctx, ada.ID, ev, t0); err != nil {
				t.Errorf("AppendUserEvent: %v", err)
			}
		}()
	}
	wg.Wait()
	got, err := s.UserEvents(ctx, ada.ID, 0, 2*n)
	if err != nil {
		t.Fatalf("UserEvents: %v", err)
	}
	seen := make(map[int64]bool)
	for i, ev := range got {
		if ev.UserSeq != int64(i+1) {
			t.Errorf("event %d has UserSeq %d; want %d", i, ev.UserSeq, i+1)
		}
		seen[ev.ConvID] = true
	}
	if len(got) != n || len(seen) != n {
		t.Errorf("got %d events over %d distinct conversations; want %d", len(got), len(seen), n)
	}
}

// createdEv is the EventConversation that a group's creation logs, before
// the store sets its ConvID and Message.
var createdEv = chat.Event{Type: chat.EventConversation, ConvKind: chat.ConvGroup}

// addedOf is the EventConversation that an addition to group id logs.
func addedOf(id int64) chat.Event {
	return chat.Event{Type: chat.EventConversation, ConvID: id, ConvKind: chat.ConvGroup}
}

// removedOf is the EventRemoved that the end of a membership of
// conversation id logs, for reason.
func removedOf(id int64, reason string) chat.Event {
	return chat.Event{Type: chat.EventRemoved, ConvID: id, Reason: reason}
}

// testRemovedLogged: the end of a membership (a room left, a group's
// member removed or leaving, a group deleted) keeps its removed in the
// user's event log, numbered in the transaction that ends the membership,
// and returns it so numbered, as an addition to a group keeps its added;
// a change that changes nothing or is refused logs nothing.
func testRemovedLogged(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ada := mustUser(t, s, "ada@example.com", "Ada")
	bob := mustUser(t, s, "bob@example.com", "Bob")
	cy := mustUser(t, s, "cy@example.com", "Cy")
	// Each user's log starts with an event of another kind.
	for _, u := range []chat.User{ada, bob, cy} {
		if _, err := s.AppendUserEvent(ctx, u.ID, chat.Event{Type: chat.EventContact}, t0); err != nil {
			t.Fatal(err)
		}
	}
	wantLog := func(what string, u chat.User, got chat.Event, want chat.Event) {
		t.Helper()
		want.UserSeq = got.UserSeq
		if diff := cmp.Diff(want, got); diff != "" || got.UserSeq < 2 {
			t.Errorf("%s: logged event mismatch (-want +got):\n%s(UserSeq %d; want after the first)", what, diff, got.UserSeq)
		}
		evs, err := s.UserEvents(ctx, u.ID, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := s.LastUserEvent(ctx, u.ID); err != nil || n != got.UserSeq || len(evs) == 0 || !cmp.Equal(evs[len(evs)-1], got) {
			t.Errorf("%s: %s's log = %+v, last %d, %v; want it to end with %+v", what, u.Name, evs, n, err, got)
		}
	}

	r, _, err := s.EnsureRoom(ctx, "lobby", t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.JoinRoom(ctx, r.ID, ada.ID, t0, true); err != nil {
		t.Fatal(err)
	}
	_, logged, left, err := s.LeaveRoom(ctx, r.ID, ada.ID, t0, true, removedOf(r.ID, "left"))
	if err != nil || !left {
		t.Fatalf("LeaveRoom = %v, %v; want left", left, err)
	}
	wantLog("LeaveRoom", ada, logged, removedOf(r.ID, "left"))
	last, _ := s.LastUserEvent(ctx, ada.ID)
	// Conversation reads the log's position with the membership.
	if c, member, err := s.Conversation(ctx, r.ID, ada.ID); err != nil || member || c.UserSeq != last {
		t.Errorf("Conversation after the leave = UserSeq %d, member %v, %v; want UserSeq %d, not a member", c.UserSeq, member, err, last)
	}
	// Not a member (any more), or no such room: nothing logged.
	if _, logged, left, err := s.LeaveRoom(ctx, r.ID, ada.ID, t0, false, removedOf(r.ID, "left")); err != nil || left || logged.Type != "" || logged.UserSeq != 0 {
		t.Errorf("LeaveRoom(not a member) = %+v, %v, %v; want nothing logged, not left", logged, left, err)
	}
	if _, _, _, err := s.LeaveRoom(ctx, missing, ada.ID, t0, true, removedOf(missing, "left")); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("LeaveRoom(missing room): err = %v; want ErrNotFound", err)
	}
	if n, err := s.LastUserEvent(ctx, ada.ID); err != nil || n != last {
		t.Errorf("LastUserEvent after leaves that left nothing = %d, %v; want %d", n, err, last)
	}
	// A leave without a message logs its removed too.
	if _, _, err := s.JoinRoom(ctx, r.ID, ada.ID, t0, false); err != nil {
		t.Fatal(err)
	}
	if _, logged, left, err = s.LeaveRoom(ctx, r.ID, ada.ID, t0, false, removedOf(r.ID, "left")); err != nil || !left {
		t.Fatalf("LeaveRoom(unannounced) = %v, %v; want left", left, err)
	}
	wantLog("LeaveRoom(unannounced)", ada, logged, removedOf(r.ID, "left"))

	g := mustGroup(t, s, ada, "crew", 10)
	for _, u := range []chat.User{bob, cy} {
		m, logged, err := s.AddGroupMember(ctx, g.ID, u.ID, ada.ID, t0, addedOf(g.ID))
		if err != nil {
			t.Fatal(err)
		}
		if m.Kind != chat.KindAdded || m.SenderName != ada.Name || m.TargetID != u.ID || m.TargetName != u.Name {
			t.Errorf("AddGroupMember(%s) = %+v; want the added message from Ada, with both names", u.Name, m)
		}
		want := addedOf(g.ID)
		want.Message = &m
		wantLog("AddGroupMember("+u.Name+")", u, logged, want)
	}
	// Refused: nothing logged.
	last, _ = s.LastUserEvent(ctx, bob.ID)
	if _, _, err := s.AddGroupMember(ctx, g.ID, bob.ID, ada.ID, t0, addedOf(g.ID)); !errors.Is(err, chat.ErrAlreadyMember) {
		t.Errorf("AddGroupMember(Bob again): err = %v; want ErrAlreadyMember", err)
	}
	if n, err := s.LastUserEvent(ctx, bob.ID); err != nil || n != last {
		t.Errorf("LastUserEvent(Bob) after a refused addition = %d, %v; want %d", n, err, last)
	}
	_, logged, err = s.RemoveGroupMember(ctx, g.ID, bob.ID, ada.ID, t0, removedOf(g.ID, "removed"))
	if err != nil {
		t.Fatal(err)
	}
	wantLog("RemoveGroupMember", bob, logged, removedOf(g.ID, "removed"))
	last, _ = s.LastUserEvent(ctx, bob.ID)
	lastAda, _ := s.LastUserEvent(ctx, ada.ID)
	// Refused: nothing of it is kept, the removed neither.
	if _, _, err := s.RemoveGroupMember(ctx, g.ID, bob.ID, ada.ID, t0, removedOf(g.ID, "removed")); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("RemoveGroupMember(non-member): err = %v; want ErrNotFound", err)
	}
	if _, _, err := s.RemoveGroupMember(ctx, g.ID, ada.ID, cy.ID, t0, removedOf(g.ID, "removed")); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("RemoveGroupMember(the owner): err = %v; want ErrInvalid", err)
	}
	if n, err := s.LastUserEvent(ctx, bob.ID); err != nil || n != last {
		t.Errorf("LastUserEvent(Bob) after a refused removal = %d, %v; want %d", n, err, last)
	}
	if n, err := s.LastUserEvent(ctx, ada.ID); err != nil || n != lastAda {
		t.Errorf("LastUserEvent(Ada) after a refused removal of her = %d, %v; want %d", n, err, lastAda)
	}
	if _, _, err := s.AddGroupMember(ctx, g.ID, bob.ID, ada.ID, t0, addedOf(g.ID)); err != nil {
		t.Fatal(err)
	}
	_, logged, err = s.RemoveGroupMember(ctx, g.ID, cy.ID, cy.ID, t0, removedOf(g.ID, "left"))
	if err != nil {
		t.Fatal(err)
	}
	wantLog("RemoveGroupMember(leave)", cy, logged, removedOf(g.ID, "left"))

	// Deleting logs one per member, by user id; refused, none.
	lastAda, _ = s.LastUserEvent(ctx, ada.ID)
	if _, err := s.DeleteGroup(ctx, g.ID, bob.ID, t0, removedOf(g.ID, "deleted")); !errors.Is(err, chat.ErrForbidden) {
		t.Errorf("DeleteGroup(not the owner): err = %v; want ErrForbidden", err)
	}
	if n, err := s.LastUserEvent(ctx, ada.ID); err != nil || n != lastAda {
		t.Errorf("LastUserEvent(Ada) after a refused deletion = %d, %v; want %d", n, err, lastAda)
	}
	all, err := s.DeleteGroup(ctx, g.ID, ada.ID, t0, removedOf(g.ID, "deleted"))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].UserID != min(ada.ID, bob.ID) || all[1].UserID != max(ada.ID, bob.ID) {
		t.Fatalf("DeleteGroup logged %+v; want a removed each of Ada and Bob, by id", all)
	}
	for _, ue := range all {
		u := ada
		if ue.UserID == bob.ID {
			u = bob
		}
		wantLog("DeleteGroup", u, ue.Event, removedOf(g.ID, "deleted"))
	}
}

// testMemberEventLogged: AppendMemberEvent logs an event, numbered, for a
// member of the conversation only; for one who is no member (left, or
// never joined) or a conversation that is not there, it logs nothing.
func testMemberEventLogged(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ada := mustUser(t, s, "ada@example.com", "Ada")
	r, _, err := s.EnsureRoom(ctx, "lobby", t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.JoinRoom(ctx, r.ID, ada.ID, t0, true); err != nil {
		t.Fatal(err)
	}
	ev := chat.Event{Type: chat.EventConversation, ConvID: r.ID, ConvKind: chat.ConvRoom}
	logged, member, err := s.AppendMemberEvent(ctx, ada.ID, r.ID, ev, t0)
	if err != nil || !member || logged.UserSeq != 1 || logged.ConvID != r.ID || logged.Type != chat.EventConversation {
		t.Errorf("AppendMemberEvent(member) = %+v, %v, %v; want it logged as 1", logged, member, err)
	}
	if _, _, _, err := s.LeaveRoom(ctx, r.ID, ada.ID, t0, true, removedOf(r.ID, "left")); err != nil {
		t.Fatal(err)
	}
	last, err := s.LastUserEvent(ctx, ada.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		id   int64
	}{{"left", r.ID}, {"missing conversation", missing}} {
		logged, member, err := s.AppendMemberEvent(ctx, ada.ID, tc.id, ev, t0)
		if err != nil || member || logged.UserSeq != 0 {
			t.Errorf("AppendMemberEvent(%s) = %+v, %v, %v; want nothing logged, no member", tc.name, logged, member, err)
		}
		if n, err := s.LastUserEvent(ctx, ada.ID); err != nil || n != last {
			t.Errorf("LastUserEvent after AppendMemberEvent(%s) = %d, %v; want %d", tc.name, n, err, last)
		}
	}
}

// testTrimUserEvents fills a log past what is kept: each call removes at
// most its limit, the oldest, until only the newest keep are left; the
// numbering goes on from the newest, and logs of keep or fewer, and
// other users', are left whole.
func testTrimUserEvents(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ada := mustUser(t, s, "ada@example.com", "Ada")
	grace := mustUser(t, s, "grace@example.com", "Grace")
	mustUser(t, s, "hopper@example.com", "Hopper") // no events at all
	const keep, limit, extra = 5, 3, 7
	ev := chat.Event{Type: chat.EventRemoved, ConvID: 12, Reason: "removed"}
	for i := range keep + extra {
		if _, err := s.AppendUserEvent(ctx, ada.ID, ev, t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatalf("AppendUserEvent(ada): %v", err)
		}
	}
	for range keep {
		if _, err := s.AppendUserEvent(ctx, grace.ID, ev, t0); err != nil {
			t.Fatalf("AppendUserEvent(grace): %v", err)
		}
	}
	removed := 0
	for range extra { // each call removes one at least while some are due
		n, err := s.TrimUserEvents(ctx, keep, limit)
		if err != nil {
			t.Fatalf("TrimUserEvents(%d, %d): %v", keep, limit, err)
		}
		if n > limit {
			t.Fatalf("TrimUserEvents(%d, %d) = %d; want at most %d", keep, limit, n, limit)
		}
		if n == 0 {
			break
		}
		removed += n
	}
	if removed != extra {
		t.Errorf("TrimUserEvents removed %d in all; want %d", removed, extra)
	}
	seqs := func(u chat.User) []int64 {
		t.Helper()
		evs, err := s.UserEvents(ctx, u.ID, 0, 100)
		if err != nil {
			t.Fatalf("UserEvents(%s): %v", u.Name, err)
		}
		var out []int64
		for _, e := range evs {
			out = append(out, e.UserSeq)
		}
		return out
	}
	if diff := cmp.Diff([]int64{8, 9, 10, 11, 12}, seqs(ada)); diff != "" {
		t.Errorf("Ada's events after the trim mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{1, 2, 3, 4, 5}, seqs(grace)); diff != "" {
		t.Errorf("Grace's events after the trim mismatch (-want +got):\n%s", diff)
	}
	if n, err := s.LastUserEvent(ctx, ada.ID); err != nil || n != keep+extra {
		t.Errorf("LastUserEvent(ada) after the trim = %d, %v; want %d", n, err, keep+extra)
	}
	if got, err := s.AppendUserEvent(ctx, ada.ID, ev, t0); err != nil || got.UserSeq != keep+extra+1 {
		t.Errorf("AppendUserEvent(ada) after the trim = %+v, %v; want UserSeq %d", got, err, keep+extra+1)
	}
}
