package chattest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

func testEnsureDirect(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ada := mustUser(t, s, "ada@example.com", "Ada")
	grace := mustUser(t, s, "grace@example.com", "Grace")
	eve := mustUser(t, s, "eve@example.com", "Eve")

	if _, err := s.Direct(ctx, ada.ID, grace.ID); !errors.Is(err, chat.ErrNotFound) {
		t.Fatalf("Direct before EnsureDirect: err = %v; want ErrNotFound", err)
	}
	if _, _, err := s.EnsureDirect(ctx, ada.ID, missing, t0); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("EnsureDirect with a missing user: err = %v; want ErrNotFound", err)
	}
	if _, _, err := s.EnsureDirect(ctx, ada.ID, ada.ID, t0); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("EnsureDirect with oneself: err = %v; want ErrInvalid", err)
	}

	// Concurrent creators, from both sides, get one conversation.
	const n = 8
	ids := make([]int64, n)
	created := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, b := ada.ID, grace.ID
			if i%2 == 1 {
				a, b = b, a
			}
			c, cr, err := s.EnsureDirect(ctx, a, b, t0)
			if err != nil {
				t.Errorf("EnsureDirect: %v", err)
				return
			}
			if c.Peer == nil || c.Peer.ID != b || c.Kind != chat.ConvDirect {
				t.Errorf("EnsureDirect(%d, %d) = %+v; want direct with peer %d", a, b, c, b)
			}
			ids[i], created[i] = c.ID, cr
		}()
	}
	wg.Wait()
	nc := 0
	for i := range n {
		if ids[i] != ids[0] {
			t.Errorf("EnsureDirect ids = %v; want one id", ids)
			break
		}
		if created[i] {
			nc++
		}
	}
	if nc != 1 {
		t.Errorf("EnsureDirect created %d times; want once", nc)
	}
	id := ids[0]
	c, err := s.Direct(ctx, grace.ID, ada.ID)
	if err != nil || c.ID != id || c.Peer == nil || c.Peer.ID != ada.ID || c.Peer.Email != "" || c.Members != 2 || c.Name != "" {
		t.Errorf("Direct(grace, ada) = %+v, %v; want conversation %d with peer Ada, 2 members", c, err, id)
	}
	for _, u := range []chat.User{ada, grace} {
		wantMember(t, s, id, u.ID, true)
	}
	wantMember(t, s, id, eve.ID, false)
	if _, member, err := s.Conversation(ctx, id, eve.ID); err != nil || member {
		t.Errorf("Conversation(%d, eve) member = %v, %v; want false", id, member, err)
	}
	if _, _, err := s.Conversation(ctx, missing, ada.ID); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("Conversation(missing) err = %v; want ErrNotFound", err)
	}
	// A direct conversation is no room.
	if _, err := s.Room(ctx, id); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("Room(direct) err = %v; want ErrNotFound", err)
	}
	wantUserRooms(t, s, ada.ID)
}

func testReadPositions(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ada := mustUser(t, s, "ada@example.com", "Ada")
	grace := mustUser(t, s, "grace@example.com", "Grace")
	eve := mustUser(t, s, "eve@example.com", "Eve")
	c, _, err := s.EnsureDirect(ctx, ada.ID, grace.ID, t0)
	if err != nil {
		t.Fatalf("EnsureDirect: %v", err)
	}
	for i := range 3 {
		mustAppend(t, s, chat.NewMessage{ConvID: c.ID, Kind: chat.KindText, SenderID: ada.ID, Body: "a", At: t0.Add(time.Duration(i) * time.Second)})
	}
	wantRead := func(u chat.User, read, last int64) {
		t.Helper()
		got, member, err := s.Conversation(ctx, c.ID, u.ID)
		if err != nil || !member || got.ReadSeq != read || got.LastSeq != last {
			t.Errorf("%s: read/last = %d/%d (member %v, err %v); want %d/%d", u.Name, got.ReadSeq, got.LastSeq, member, err, read, last)
		}
	}
	wantRead(ada, 3, 3) // own sends advance own read position
	wantRead(grace, 0, 3)

	for _, tc := range []struct {
		seq, want int64
		moved     bool
	}{{2, 2, true}, {1, 2, false}, {2, 2, false}, {10, 3, true}, {0, 3, false}} {
		st, moved, err := MarkRead(ctx, s, c.ID, grace.ID, tc.seq)
		if err != nil || st.ReadSeq != tc.want || st.LastSeq != 3 || moved != tc.moved {
			t.Errorf("MarkRead(%d) = %+v, %v, %v; want read %d, moved %v", tc.seq, st, moved, err, tc.want, tc.moved)
		}
	}
	if _, _, err := MarkRead(ctx, s, c.ID, eve.ID, 1); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("MarkRead by a non-member: err = %v; want ErrNotFound", err)
	}
	// Grace replies: her position follows, Ada's stays.
	mustAppend(t, s, chat.NewMessage{ConvID: c.ID, Kind: chat.KindText, SenderID: grace.ID, Body: "g", At: t0.Add(time.Minute)})
	wantRead(grace, 4, 4)
	wantRead(ada, 3, 4)

	// A room member's join counts as read; later messages of others do not.
	r := mustRoom(t, s, "general")
	mustJoin(t, s, r.ID, ada.ID, t0)
	mustJoin(t, s, r.ID, eve.ID, t0)
	mustAppend(t, s, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: eve.ID, Body: "e", At: t0.Add(2 * time.Minute)})
	rc, _, err := s.Conversation(ctx, r.ID, ada.ID)
	if err != nil || rc.Kind != chat.ConvRoom || rc.Name != "general" || rc.ReadSeq != 1 || rc.LastSeq != 3 || rc.Members != 2 || rc.Peer != nil {
		t.Errorf("room as Ada = %+v, %v; want read 1 of 3", rc, err)
	}
}

func testConversations(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ada := mustUser(t, s, "ada@example.com", "Ada")
	grace := mustUser(t, s, "grace@example.com", "Grace")
	eve := mustUser(t, s, "eve@example.com", "Eve")
	if cs, err := s.Conversations(ctx, ada.ID); err != nil || cs == nil || len(cs) != 0 {
		t.Errorf("Conversations of a new user = %v, %v; want an empty list", cs, err)
	}
	r := mustRoom(t, s, "general")
	mustJoin(t, s, r.ID, ada.ID, t0)
	d1, _, err := s.EnsureDirect(ctx, ada.ID, grace.ID, t0)
	if err != nil {
		t.Fatal(err)
	}
	d2, _, err := s.EnsureDirect(ctx, eve.ID, ada.ID, t0)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, chat.NewMessage{ConvID: d2.ID, Kind: chat.KindText, SenderID: eve.ID, Body: "e1", At: t0.Add(1 * time.Minute)})
	last1 := mustAppend(t, s, chat.NewMessage{ConvID: d1.ID, Kind: chat.KindText, SenderID: grace.ID, Body: "g1", At: t0.Add(2 * time.Minute)})
	mustAppend(t, s, chat.NewMessage{ConvID: d2.ID, Kind: chat.KindText, SenderID: eve.ID, Body: "e2", At: t0.Add(3 * time.Minute)})
	last2 := mustAppend(t, s, chat.NewMessage{ConvID: d2.ID, Kind: chat.KindText, SenderID: ada.ID, Body: "a1", At: t0.Add(4 * time.Minute)})

	cs, err := s.Conversations(ctx, ada.ID)
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		id, read, last int64
		peer           int64
		body           string
	}
	var got []entry
	for _, c := range cs {
		e := entry{id: c.ID, read: c.ReadSeq, last: c.LastSeq}
		if c.Peer != nil {
			e.peer = c.Peer.ID
		}
		if c.LastMessage != nil {
			e.body = c.LastMessage.Body
		}
		got = append(got, e)
	}
	want := []entry{
		{id: d2.ID, read: 3, last: 3, peer: eve.ID, body: "a1"},
		{id: d1.ID, read: 0, last: 1, peer: grace.ID, body: "g1"},
		{id: r.ID, read: 1, last: 1, body: ""},
	}
	if len(got) != len(want) {
		t.Fatalf("Conversations(ada) = %+v; want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Conversations(ada)[%d] = %+v; want %+v", i, got[i], want[i])
		}
	}
	if m := cs[0].LastMessage; m == nil || *m != last2 {
		t.Errorf("last message of %d = %+v; want %+v", d2.ID, m, last2)
	}
	if m := cs[1].LastMessage; m == nil || *m != last1 || m.SenderName != "Grace" {
		t.Errorf("last message of %d = %+v; want %+v", d1.ID, m, last1)
	}
	if cs[2].Kind != chat.ConvRoom || cs[2].Name != "general" || cs[2].LastMessage == nil || cs[2].LastMessage.Kind != chat.KindJoin {
		t.Errorf("room entry = %+v; want general with the join as last message", cs[2])
	}
}

func testMembership(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ada := mustUser(t, s, "ada@example.com", "Ada")
	grace := mustUser(t, s, "grace@example.com", "Grace")
	eve := mustUser(t, s, "eve@example.com", "Eve")
	room := mustRoom(t, s, "general")
	mustJoin(t, s, room.ID, ada.ID, t0)
	g := mustGroup(t, s, grace, "crew", 10)
	d, _, err := s.EnsureDirect(ctx, ada.ID, grace.ID, t0)
	if err != nil {
		t.Fatalf("EnsureDirect: %v", err)
	}
	for _, c := range []struct {
		name       string
		id         int64
		user       chat.User
		wantKind   chat.ConvKind
		wantMember bool
	}{
		{"room member", room.ID, ada, chat.ConvRoom, true},
		{"room non-member", room.ID, eve, chat.ConvRoom, false},
		{"group owner", g.ID, grace, chat.ConvGroup, true},
		{"group outsider", g.ID, eve, chat.ConvGroup, false},
		{"direct member", d.ID, grace, chat.ConvDirect, true},
		{"direct outsider", d.ID, eve, chat.ConvDirect, false},
	} {
		kind, member, err := s.Membership(ctx, c.id, c.user.ID)
		if err != nil || kind != c.wantKind || member != c.wantMember {
			t.Errorf("%s: Membership = %q, %v, %v; want %q, %v, nil", c.name, kind, member, err, c.wantKind, c.wantMember)
		}
	}
	if _, _, _, err := s.LeaveRoom(ctx, room.ID, ada.ID, t0, true, removedOf(room.ID, "left")); err != nil {
		t.Fatalf("LeaveRoom: %v", err)
	}
	if _, member, err := s.Membership(ctx, room.ID, ada.ID); err != nil || member {
		t.Errorf("Membership after LeaveRoom = %v, %v; want false, nil", member, err)
	}
	if _, _, err := s.Membership(ctx, missing, ada.ID); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("Membership of a missing conversation: err = %v; want ErrNotFound", err)
	}
}

// testUserGroups: UserGroups lists a user's groups only, ascending, and
// not those they have left, each with the group's last seq and the
// user's log position as the mark.
func testUserGroups(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ada := mustUser(t, s, "ada@example.com", "Ada")
	grace := mustUser(t, s, "grace@example.com", "Grace")
	if gs, err := s.UserGroups(ctx, ada.ID); err != nil || gs == nil || len(gs) != 0 {
		t.Errorf("UserGroups of a new user = %v, %v; want an empty list", gs, err)
	}
	room := mustRoom(t, s, "general")
	mustJoin(t, s, room.ID, ada.ID, t0)
	if _, _, err := s.EnsureDirect(ctx, ada.ID, grace.ID, t0); err != nil {
		t.Fatalf("EnsureDirect: %v", err)
	}
	g1 := mustGroup(t, s, ada, "crew", 10)
	g2 := mustGroup(t, s, grace, "band", 10)
	g3 := mustGroup(t, s, grace, "club", 10)
	mustGroup(t, s, grace, "alone", 10)
	for _, g := range []chat.Group{g3, g2} {
		if _, _, err := s.AddGroupMember(ctx, g.ID, ada.ID, grace.ID, t0, addedOf(g.ID)); err != nil {
			t.Fatalf("AddGroupMember(%s): %v", g.Name, err)
		}
	}
	if _, _, err := s.RemoveGroupMember(ctx, g2.ID, ada.ID, grace.ID, t0, removedOf(g2.ID, "removed")); err != nil {
		t.Fatalf("RemoveGroupMember: %v", err)
	}
	if _, _, err := s.Append(ctx, chat.NewMessage{ConvID: g3.ID, Kind: chat.KindText, SenderID: grace.ID, ClientID: "g-1", Body: "hi", At: t0}); err != nil {
		t.Fatal(err)
	}
	last, err := s.LastUserEvent(ctx, ada.ID)
	if err != nil || last == 0 {
		t.Fatalf("LastUserEvent(ada) = %d, %v; want her added and removed logged", last, err)
	}
	var want []chat.MemberAt
	for _, g := range []chat.Group{g1, g3} {
		g, err := s.Group(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, chat.MemberAt{ID: g.ID, Mark: chat.Mark{UserSeq: last, Seq: g.LastSeq}})
	}
	gs, err := s.UserGroups(ctx, ada.ID)
	if err != nil || !slices.Equal(gs, want) {
		t.Errorf("UserGroups(ada) = %v, %v; want %v", gs, err, want)
	}
	if gs, err := s.UserGroups(ctx, missing); err != nil || len(gs) != 0 {
		t.Errorf("UserGroups(missing user) = %v, %v; want none", gs, err)
	}
}

// mustDirect returns the direct conversation of users a and b.
func mustDirect(t *testing.T, s chat.Store, a, b int64) chat.Conversation {
	t.Helper()
	c, _, err := s.EnsureDirect(t.Context(), a, b, t0)
	if err != nil {
		t.Fatalf("EnsureDirect(%d, %d): %v", a, b, err)
	}
	return c
}

// testAppendPeer: a direct message with NewMessage.Peer is stored only
// while its sender and the peer are friends, checked as it is stored. A
// refused one takes no seq, and fails alone among those queued with it.
func testAppendPeer(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ada := mustUser(t, s, "ada@example.com", "Ada")
	grace := mustUser(t, s, "grace@example.com", "Grace")
	c := mustDirect(t, s, ada.ID, grace.ID)
	n := 0
	send := func(from, to int64, clientID string) error {
		_, _, err := s.Append(ctx, chat.NewMessage{ConvID: c.ID, Kind: chat.KindText, SenderID: from, ClientID: clientID,
			Body: clientID, At: t0, Peer: to})
		if err == nil {
			n++
		}
		return err
	}
	refused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, chat.ErrNotFriends) || !errors.Is(err, chat.ErrForbidden) {
			t.Errorf("Append(%s) = %v; want ErrNotFriends", what, err)
		}
	}
	refused("no contact", send(ada.ID, grace.ID, "a1"))
	mustRequest(t, s, ada.ID, grace.ID, t0, chat.StateRequestSent, true)
	refused("request not accepted", send(ada.ID, grace.ID, "a2"))
	if _, err := s.AcceptFriend(ctx, grace.ID, ada.ID, t0, 0); err != nil {
		t.Fatal(err)
	}
	if err := send(ada.ID, grace.ID, "a3"); err != nil {
		t.Errorf("Append(friends) = %v", err)
	}
	if err := send(grace.ID, ada.ID, "g1"); err != nil {
		t.Errorf("Append(friends, the other way) = %v", err)
	}

	// Queued together, the refused one fails alone.
	eve := mustUser(t, s, "eve@example.com", "Eve")
	p1 := s.QueueAppend(ctx, chat.NewMessage{ConvID: c.ID, Kind: chat.KindText, SenderID: ada.ID, Body: "x", At: t0, Peer: eve.ID})
	p2 := s.QueueAppend(ctx, chat.NewMessage{ConvID: c.ID, Kind: chat.KindText, SenderID: ada.ID, ClientID: "a4", Body: "y", At: t0, Peer: grace.ID})
	_, _, err := p1.Wait()
	refused("to a stranger, queued", err)
	if m, _, err := p2.Wait(); err != nil || m.Seq != 3 {
		t.Errorf("queued Append(friends) = seq %d, %v; want 3", m.Seq, err)
	}
	n++

	if _, err := s.Block(ctx, grace.ID, ada.ID, t0, 0); err != nil {
		t.Fatal(err)
	}
	refused("blocked by the peer", send(ada.ID, grace.ID, "a5"))
	refused("blocking the peer", send(grace.ID, ada.ID, "g2"))
	if _, err := s.Unblock(ctx, grace.ID, ada.ID); err != nil {
		t.Fatal(err)
	}
	refused("after a block, no longer friends", send(ada.ID, grace.ID, "a6"))
	// A retry of a message stored while friends is refused too: the
	// check comes first.
	refused("retry after the friendship ended", send(ada.ID, grace.ID, "a3"))
	ms, err := s.Messages(ctx, c.ID, chat.Page{Limit: n + 10})
	if err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(t, c.ID, ms); !slices.Equal(got, seqRange(1, int64(n))) {
		t.Errorf("seqs %v; want 1 to %d", got, n)
	}
}

// testMarkReadConcurrent: concurrent moves of one member's read position,
// in any order, leave it at the highest asked for, and each call answers
// with a position at least as far as it asked.
func testMarkReadConcurrent(t *testing.T, s chat.Store) {
	const workers, each, last = 8, 25, 40
	ctx := t.Context()
	ada := mustUser(t, s, "ada@example.com", "Ada")
	grace := mustUser(t, s, "grace@example.com", "Grace")
	r := mustRoom(t, s, "general")
	mustJoin(t, s, r.ID, grace.ID, t0)
	base := mustAppend(t, s, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: ada.ID, Body: "0", At: t0}).Seq
	for i := 1; i < last; i++ {
		mustAppend(t, s, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: ada.ID, Body: "m", At: t0})
	}
	top := base + last - 1
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				seq := base + int64((w*7+i*13)%last) // every worker its own order
				st, _, err := MarkRead(ctx, s, r.ID, grace.ID, seq)
				if err != nil || st.ReadSeq < seq || st.LastSeq != top {
					t.Errorf("MarkRead(%d) = %+v, %v; want a position of at least %d, last %d", seq, st, err, seq, top)
				}
			}
		})
	}
	wg.Wait()
	c, _, err := s.Conversation(ctx, r.ID, grace.ID)
	if err != nil || c.ReadSeq != top {
		t.Errorf("after concurrent MarkReads: read %d, %v; want %d", c.ReadSeq, err, top)
	}
}

// testMarkReadBatch: one MarkRead moves several positions, in several
// conversations, given in any order; each mark gets its own outcome, one
// that is not a member's fails alone, and two moves of one position apply
// in the order given.
func testMarkReadBatch(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ada := mustUser(t, s, "ada@example.com", "Ada")
	grace := mustUser(t, s, "grace@example.com", "Grace")
	eve := mustUser(t, s, "eve@example.com", "Eve")
	r1, r2 := mustRoom(t, s, "first"), mustRoom(t, s, "second")
	for _, r := range []chat.Room{r1, r2} {
		mustJoin(t, s, r.ID, grace.ID, t0)
	}
	last := map[int64]int64{}
	for _, r := range []chat.Room{r1, r2, r2} { // r2 has one message more
		last[r.ID] = mustAppend(t, s, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: ada.ID, Body: "m", At: t0}).Seq
	}
	// The rooms and users in descending order, and back: a store that
	// orders its updates must still answer each mark with its own.
	marks := []chat.ReadMark{
		{ConvID: r2.ID, UserID: grace.ID, Seq: last[r2.ID] - 1},
		{ConvID: r2.ID, UserID: eve.ID, Seq: 1}, // not a member
		{ConvID: r1.ID, UserID: grace.ID, Seq: last[r1.ID] + 10},
		{ConvID: r2.ID, UserID: grace.ID, Seq: last[r2.ID] - 2}, // behind the first: no move
		{ConvID: r2.ID, UserID: grace.ID, Seq: last[r2.ID]},
	}
	if err := s.MarkRead(ctx, marks); err != nil {
		t.Fatalf("MarkRead: %v", err)
	}
	want := []chat.ReadMark{
		{State: chat.ReadState{ConvID: r2.ID, ReadSeq: last[r2.ID] - 1, LastSeq: last[r2.ID]}, Moved: true},
		{Err: chat.ErrNotFound},
		{State: chat.ReadState{ConvID: r1.ID, ReadSeq: last[r1.ID], LastSeq: last[r1.ID]}, Moved: true},
		{State: chat.ReadState{ConvID: r2.ID, ReadSeq: last[r2.ID] - 1, LastSeq: last[r2.ID]}},
		{State: chat.ReadState{ConvID: r2.ID, ReadSeq: last[r2.ID], LastSeq: last[r2.ID]}, Moved: true},
	}
	for i, m := range marks {
		w := want[i]
		if !errors.Is(m.Err, w.Err) || (w.Err == nil && (m.State != w.State || m.Moved != w.Moved)) {
			t.Errorf("mark %d: state %+v, moved %v, err %v; want %+v, %v, %v", i, m.State, m.Moved, m.Err, w.State, w.Moved, w.Err)
		}
	}
	for _, r := range []chat.Room{r1, r2} {
		if c, _, err := s.Conversation(ctx, r.ID, grace.ID); err != nil || c.ReadSeq != last[r.ID] {
			t.Errorf("room %d: read %d, %v; want %d", r.ID, c.ReadSeq, err, last[r.ID])
		}
	}
	if _, member, err := s.Conversation(ctx, r2.ID, eve.ID); err != nil || member {
		t.Errorf("eve in room %d: member %v, %v; want not a member", r2.ID, member, err)
	}
}

// testConversationIDsOnce: the id of a deleted conversation (the newest
// one, a group) is not given to the next, whatever its kind: a send or a
// client that still holds the id must not reach another conversation.
func testConversationIDsOnce(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ada := mustUser(t, s, "ada@example.com", "Ada")
	grace := mustUser(t, s, "grace@example.com", "Grace")
	seen := map[int64]bool{}
	for i, make := range []func() int64{
		func() int64 { return mustGroup(t, s, ada, "crew", 10).ID },
		func() int64 { return mustGroup(t, s, ada, "band", 10).ID },
		func() int64 { return mustRoom(t, s, "general").ID },
		func() int64 {
			c, _, err := s.EnsureDirect(ctx, ada.ID, grace.ID, t0)
			if err != nil {
				t.Fatalf("EnsureDirect: %v", err)
			}
			return c.ID
		},
	} {
		id := make()
		if seen[id] {
			t.Fatalf("conversation %d (the %d-th made) has the id of one deleted before", id, i+1)
		}
		seen[id] = true
		if i < 2 { // the groups: deleted at once, each the newest conversation
			if _, err := s.DeleteGroup(ctx, id, ada.ID, t0, removedOf(id, "deleted")); err != nil {
				t.Fatalf("DeleteGroup(%d): %v", id, err)
			}
		}
	}
}
