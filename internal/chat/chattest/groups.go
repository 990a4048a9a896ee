package chattest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/internal/chat"
)

func mustGroup(t *testing.T, s chat.Store, owner chat.User, name string, maxMembers int) chat.Group {
	t.Helper()
	g, _, _, err := s.CreateGroup(t.Context(), chat.NewGroup{Name: name, Description: "about " + name, MaxMembers: maxMembers, OwnerID: owner.ID, At: t0}, createdEv)
	if err != nil {
		t.Fatalf("CreateGroup(%q): %v", name, err)
	}
	return g
}

func wantRole(t *testing.T, s chat.Store, id int64, u chat.User, want chat.Role) {
	t.Helper()
	got, err := s.GroupRole(t.Context(), id, u.ID)
	if err != nil || got != want {
		t.Errorf("GroupRole(%d, %s) = %q, %v; want %q", id, u.Name, got, err, want)
	}
}

func testGroups(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ada := mustUser(t, s, "ada@example.com", "Ada")
	bob := mustUser(t, s, "bob@example.com", "Bob")
	cy := mustUser(t, s, "cy@example.com", "Cy")

	last, err := s.LastUserEvent(ctx, ada.ID)
	if err != nil {
		t.Fatal(err)
	}
	g, m, created, err := s.CreateGroup(ctx, chat.NewGroup{Name: "Crew", Description: "the crew", MaxMembers: 3, OwnerID: ada.ID, At: t0}, createdEv)
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	// The owner's created is logged in the creation's transaction: a
	// deletion, logged in its own, comes after it.
	wantCreated := createdEv
	wantCreated.ConvID, wantCreated.Message, wantCreated.UserSeq = g.ID, &m, last+1
	if diff := cmp.Diff(wantCreated, created); diff != "" {
		t.Errorf("CreateGroup's logged event mismatch (-want +got):\n%s", diff)
	}
	if evs, err := s.UserEvents(ctx, ada.ID, last, 10); err != nil || len(evs) != 1 || evs[0].UserSeq != last+1 || evs[0].ConvID != g.ID || evs[0].Type != chat.EventConversation {
		t.Errorf("Ada's log after CreateGroup = %+v, %v; want her created, numbered %d", evs, err, last+1)
	}
	want := chat.Group{ID: g.ID, Name: "Crew", Description: "the crew", MaxMembers: 3, OwnerID: ada.ID, CreatedAt: t0, LastSeq: 1, Members: 1}
	if diff := cmp.Diff(want, g); diff != "" {
		t.Errorf("CreateGroup mismatch (-want +got):\n%s", diff)
	}
	if m.Kind != chat.KindCreated || m.Seq != 1 || m.SenderID != ada.ID || m.Body != "Crew" {
		t.Errorf("CreateGroup message = %+v; want created #1 by Ada", m)
	}
	lastBob, _ := s.LastUserEvent(ctx, bob.ID)
	if _, _, _, err := s.CreateGroup(ctx, chat.NewGroup{Name: "CREW", MaxMembers: 3, OwnerID: bob.ID, At: t0}, createdEv); !errors.Is(err, chat.ErrNameTaken) || !errors.Is(err, chat.ErrConflict) {
		t.Errorf("CreateGroup(name in other case): err = %v; want ErrNameTaken", err)
	}
	if n, err := s.LastUserEvent(ctx, bob.ID); err != nil || n != lastBob {
		t.Errorf("LastUserEvent(Bob) after a refused creation = %d, %v; want %d", n, err, lastBob)
	}
	if _, _, err := s.EnsureRoom(ctx, "Crew", t0); err != nil {
		t.Errorf("EnsureRoom with a group's name: %v; want a room (names are unique per kind)", err)
	}
	if _, err := s.Room(ctx, g.ID); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("Room(group id): err = %v; want ErrNotFound", err)
	}
	if _, err := s.Group(ctx, missing); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("Group(missing): err = %v; want ErrNotFound", err)
	}
	if _, err := s.GroupRole(ctx, missing, ada.ID); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("GroupRole(missing): err = %v; want ErrNotFound", err)
	}

	wantRole(t, s, g.ID, ada, chat.RoleOwner)
	wantRole(t, s, g.ID, bob, "")
	if _, _, err := s.AddGroupMember(ctx, g.ID, bob.ID, ada.ID, t0, addedOf(g.ID)); err != nil {
		t.Fatalf("AddGroupMember(Bob): %v", err)
	}
	if _, _, err := s.AddGroupMember(ctx, g.ID, bob.ID, ada.ID, t0, addedOf(g.ID)); !errors.Is(err, chat.ErrAlreadyMember) {
		t.Errorf("AddGroupMember(Bob again): err = %v; want ErrAlreadyMember", err)
	}
	if _, _, err := s.AddGroupMember(ctx, g.ID, missing, ada.ID, t0, addedOf(g.ID)); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("AddGroupMember(missing user): err = %v; want ErrNotFound", err)
	}
	wantRole(t, s, g.ID, bob, chat.RoleMember)
	// A plain member may neither add nor change the group, as the
	// transaction finds the roles.
	if _, _, err := s.AddGroupMember(ctx, g.ID, cy.ID, bob.ID, t0, addedOf(g.ID)); !errors.Is(err, chat.ErrForbidden) {
		t.Errorf("AddGroupMember(Cy, by the member Bob): err = %v; want ErrForbidden", err)
	}
	renamed := "Renamed"
	if _, err := s.UpdateGroup(ctx, g.ID, chat.GroupUpdate{Name: &renamed}, bob.ID, t0); !errors.Is(err, chat.ErrForbidden) {
		t.Errorf("UpdateGroup(by the member Bob): err = %v; want ErrForbidden", err)
	}

	// Roles.
	if _, changed, err := s.SetGroupRole(ctx, g.ID, bob.ID, chat.RoleAdmin, ada.ID, t0); err != nil || !changed {
		t.Errorf("SetGroupRole(Bob, admin) = %v, %v; want changed", changed, err)
	}
	if _, changed, err := s.SetGroupRole(ctx, g.ID, bob.ID, chat.RoleAdmin, ada.ID, t0); err != nil || changed {
		t.Errorf("SetGroupRole(Bob, admin) again = %v, %v; want unchanged", changed, err)
	}
	if _, _, err := s.SetGroupRole(ctx, g.ID, ada.ID, chat.RoleMember, ada.ID, t0); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("SetGroupRole(owner): err = %v; want ErrInvalid", err)
	}
	if _, _, err := s.SetGroupRole(ctx, g.ID, cy.ID, chat.RoleAdmin, ada.ID, t0); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("SetGroupRole(non-member): err = %v; want ErrNotFound", err)
	}
	for _, by := range []chat.User{bob, cy} {
		if _, _, err := s.SetGroupRole(ctx, g.ID, bob.ID, chat.RoleMember, by.ID, t0); !errors.Is(err, chat.ErrForbidden) {
			t.Errorf("SetGroupRole(Bob, member, by %s, not the owner): err = %v; want ErrForbidden", by.Name, err)
		}
	}
	wantRole(t, s, g.ID, bob, chat.RoleAdmin)
	wantRole(t, s, g.ID, bob, chat.RoleAdmin)
	if _, err := s.TransferGroup(ctx, g.ID, bob.ID, ada.ID, t0); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("TransferGroup(from a non-owner): err = %v; want ErrInvalid", err)
	}
	if _, err := s.TransferGroup(ctx, g.ID, ada.ID, cy.ID, t0); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("TransferGroup(to a non-member): err = %v; want ErrNotFound", err)
	}
	if _, err := s.TransferGroup(ctx, g.ID, ada.ID, bob.ID, t0); err != nil {
		t.Fatalf("TransferGroup: %v", err)
	}
	wantRole(t, s, g.ID, bob, chat.RoleOwner)
	wantRole(t, s, g.ID, ada, chat.RoleAdmin)

	// Settings.
	if _, changed, err := s.RenameGroup(ctx, g.ID, "Crew 2", bob.ID, t0); err != nil || !changed {
		t.Errorf("RenameGroup = %v, %v; want changed", changed, err)
	}
	mustGroup(t, s, cy, "Other", 5)
	if _, _, err := s.RenameGroup(ctx, g.ID, "other", bob.ID, t0); !errors.Is(err, chat.ErrNameTaken) {
		t.Errorf("RenameGroup(taken name): err = %v; want ErrNameTaken", err)
	}
	if _, changed, err := s.DescribeGroup(ctx, g.ID, "new", bob.ID, t0); err != nil || !changed {
		t.Errorf("DescribeGroup = %v, %v; want changed", changed, err)
	}
	if _, _, err := s.SetGroupCap(ctx, g.ID, 1, bob.ID, t0); !errors.Is(err, chat.ErrBelowMembers) {
		t.Errorf("SetGroupCap(1) with 2 members: err = %v; want ErrBelowMembers", err)
	}
	if _, changed, err := s.SetGroupCap(ctx, g.ID, 2, bob.ID, t0); err != nil || !changed {
		t.Errorf("SetGroupCap(2) = %v, %v; want changed", changed, err)
	}
	// UpdateGroup changes all it is given or nothing.
	crew3, newer, one, two := "Crew 3", "newer", 1, 2
	if ms, err := s.UpdateGroup(ctx, g.ID, chat.GroupUpdate{Name: &crew3, Description: &newer, MaxMembers: &one}, bob.ID, t0); !errors.Is(err, chat.ErrBelowMembers) {
		t.Errorf("UpdateGroup(name, description, cap 1) with 2 members = %v, %v; want ErrBelowMembers", ms, err)
	}
	if got, err := s.Group(ctx, g.ID); err != nil || got.Name != "Crew 2" || got.Description != "new" || got.MaxMembers != 2 || got.LastSeq != 7 {
		t.Errorf("after a refused UpdateGroup: Group = %+v, %v; want Crew 2, new, cap 2, last seq 7 as before", got, err)
	}
	crew2, same := "Crew 2", "new"
	if ms, err := s.UpdateGroup(ctx, g.ID, chat.GroupUpdate{Name: &crew2, Description: &same, MaxMembers: &two}, bob.ID, t0); err != nil || len(ms) != 0 {
		t.Errorf("UpdateGroup(the same settings) = %v, %v; want no messages", ms, err)
	}
	if _, _, err := s.AddGroupMember(ctx, g.ID, cy.ID, bob.ID, t0, addedOf(g.ID)); !errors.Is(err, chat.ErrGroupFull) || !errors.Is(err, chat.ErrConflict) {
		t.Errorf("AddGroupMember to a full group: err = %v; want ErrGroupFull", err)
	}

	// Leave and remove.
	if _, _, err := s.RemoveGroupMember(ctx, g.ID, cy.ID, bob.ID, t0, removedOf(g.ID, "removed")); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("RemoveGroupMember(non-member): err = %v; want ErrNotFound", err)
	}
	for _, by := range []chat.User{bob, ada} {
		if _, _, err := s.RemoveGroupMember(ctx, g.ID, bob.ID, by.ID, t0, removedOf(g.ID, "removed")); !errors.Is(err, chat.ErrInvalid) {
			t.Errorf("RemoveGroupMember(the owner, by %s): err = %v; want ErrInvalid", by.Name, err)
		}
	}
	wantRole(t, s, g.ID, bob, chat.RoleOwner)
	if _, _, err := s.RemoveGroupMember(ctx, g.ID, ada.ID, ada.ID, t0, removedOf(g.ID, "left")); err != nil {
		t.Fatalf("RemoveGroupMember(leave): %v", err)
	}
	wantRole(t, s, g.ID, ada, "")

	got, err := s.Group(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	want = chat.Group{ID: g.ID, Name: "Crew 2", Description: "new", MaxMembers: 2, OwnerID: bob.ID, CreatedAt: t0, LastSeq: got.LastSeq, Members: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Group mismatch (-want +got):\n%s", diff)
	}

	// Every change is in the sequence, in order, with who did it to whom.
	ms, err := s.Messages(ctx, g.ID, chat.Page{After: 0, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	type ev struct {
		Seq            int64
		Kind           chat.MessageKind
		Sender, Target int64
		Body           string
	}
	var evs []ev
	for _, m := range ms {
		evs = append(evs, ev{m.Seq, m.Kind, m.SenderID, m.TargetID, m.Body})
	}
	wantEvs := []ev{
		{1, chat.KindCreated, ada.ID, 0, "Crew"},
		{2, chat.KindAdded, ada.ID, bob.ID, ""},
		{3, chat.KindAdminGranted, ada.ID, bob.ID, ""},
		{4, chat.KindOwnerTransferred, ada.ID, bob.ID, ""},
		{5, chat.KindRenamed, bob.ID, 0, "Crew 2"},
		{6, chat.KindDescribed, bob.ID, 0, "new"},
		{7, chat.KindCapChanged, bob.ID, 0, "2"},
		{8, chat.KindLeave, ada.ID, 0, ""},
	}
	if diff := cmp.Diff(wantEvs, evs); diff != "" {
		t.Errorf("group messages mismatch (-want +got):\n%s", diff)
	}
	if got.LastSeq != 8 {
		t.Errorf("LastSeq = %d; want 8", got.LastSeq)
	}

	// A member-only append is refused once the sender left.
	if _, _, err := s.Append(ctx, chat.NewMessage{ConvID: g.ID, Kind: chat.KindText, SenderID: ada.ID, Body: "hi", At: t0, MemberOnly: true}); !errors.Is(err, chat.ErrNotMember) {
		t.Errorf("Append(MemberOnly, non-member): err = %v; want ErrNotMember", err)
	}
	// An append for another kind of conversation is refused, member or not.
	for _, kind := range []chat.ConvKind{chat.ConvRoom, chat.ConvDirect} {
		_, _, err := s.Append(ctx, chat.NewMessage{ConvID: g.ID, Kind: chat.KindText, SenderID: bob.ID, Body: "hi", At: t0, MemberOnly: true, ConvKind: kind})
		if !errors.Is(err, chat.ErrNotFound) || errors.Is(err, chat.ErrNotMember) {
			t.Errorf("Append(ConvKind %s) to a group: err = %v; want ErrNotFound, not ErrNotMember", kind, err)
		}
	}
	if m, _, err := s.Append(ctx, chat.NewMessage{ConvID: g.ID, Kind: chat.KindText, SenderID: bob.ID, Body: "hi", At: t0, MemberOnly: true, ConvKind: chat.ConvGroup}); err != nil || m.Seq != 9 {
		t.Errorf("Append(MemberOnly, member) = #%d, %v; want #9", m.Seq, err)
	}

	// The group shows in its members' conversation lists.
	cs, err := s.Conversations(ctx, bob.ID)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range cs {
		if c.ID == g.ID {
			found = true
			if c.Kind != chat.ConvGroup || c.Name != "Crew 2" || c.LastMessage == nil || c.LastMessage.Seq != 9 {
				t.Errorf("Conversations: group entry = %+v", c)
			}
		}
	}
	if !found {
		t.Errorf("Conversations(Bob) lacks group %d", g.ID)
	}

	// Delete.
	for _, by := range []chat.User{ada, cy} {
		if _, err := s.DeleteGroup(ctx, g.ID, by.ID, t0, removedOf(g.ID, "deleted")); !errors.Is(err, chat.ErrForbidden) {
			t.Errorf("DeleteGroup by %s, not the owner: err = %v; want ErrForbidden", by.Name, err)
		}
	}
	logged, err := s.DeleteGroup(ctx, g.ID, bob.ID, t0, removedOf(g.ID, "deleted"))
	if err != nil || len(logged) != 1 || logged[0].UserID != bob.ID {
		t.Errorf("DeleteGroup = %+v, %v; want a removed of Bob (%d)", logged, err, bob.ID)
	}
	if _, err := s.Group(ctx, g.ID); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("Group after DeleteGroup: err = %v; want ErrNotFound", err)
	}
	if _, _, err := s.Conversation(ctx, g.ID, bob.ID); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("Conversation after DeleteGroup: err = %v; want ErrNotFound", err)
	}
	if _, err := s.DeleteGroup(ctx, g.ID, bob.ID, t0, removedOf(g.ID, "deleted")); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("DeleteGroup twice: err = %v; want ErrNotFound", err)
	}
	// Its messages went with it, and none can be added.
	if ms, err := s.Messages(ctx, g.ID, chat.Page{Limit: 100}); err != nil || len(ms) != 0 {
		t.Errorf("Messages after DeleteGroup = %d messages, %v; want none", len(ms), err)
	}
	if _, _, err := s.Append(ctx, chat.NewMessage{ConvID: g.ID, Kind: chat.KindText, SenderID: bob.ID, ClientID: "late", Body: "late", At: t0}); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("Append after DeleteGroup: err = %v; want ErrNotFound", err)
	}
}

// testGroupCapConcurrent adds 50 users at once to a group with 10 free
// places: exactly 10 join, the others get ErrGroupFull.
func testGroupCapConcurrent(t *testing.T, s chat.Store) {
	ctx := t.Context()
	owner := mustUser(t, s, "owner@example.com", "Owner")
	g := mustGroup(t, s, owner, "Packed", 11)
	const n = 50
	users := make([]chat.User, n)
	for i := range users {
		users[i] = mustUser(t, s, fmt.Sprintf("u%d@example.com", i), fmt.Sprintf("U%d", i))
	}
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		ok, full  int
		seqs      = map[int64]bool{}
		otherErrs []error
	)
	for _, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, _, err := s.AddGroupMember(ctx, g.ID, u.ID, owner.ID, t0, addedOf(g.ID))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
				seqs[m.Seq] = true
			case errors.Is(err, chat.ErrGroupFull):
				full++
			default:
				otherErrs = append(otherErrs, err)
			}
		}()
	}
	wg.Wait()
	if ok != 10 || full != n-10 || len(otherErrs) > 0 {
		t.Errorf("concurrent adds: %d ok, %d full, errors %v; want 10 ok, %d full", ok, full, otherErrs, n-10)
	}
	got, err := s.Group(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Members != 11 || got.LastSeq != 11 {
		t.Errorf("after concurrent adds: %d members, last seq %d; want 11, 11", got.Members, got.LastSeq)
	}
	for seq := int64(2); seq <= 11; seq++ {
		if !seqs[seq] {
			t.Errorf("no add got seq %d; seqs %v", seq, seqs)
		}
	}
	ms, err := s.GroupMembers(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 11 || ms[0].User.ID != owner.ID || ms[0].Role != chat.RoleOwner {
		t.Errorf("GroupMembers: %d members, first %+v; want 11, owner first", len(ms), ms[0])
	}
}

// testGroupRemoveRoles: RemoveGroupMember checks, as it removes, that the
// remover may: the owner anyone else, an admin plain members.
func testGroupRemoveRoles(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ada := mustUser(t, s, "ada@example.com", "Ada")
	bob := mustUser(t, s, "bob@example.com", "Bob")
	cy := mustUser(t, s, "cy@example.com", "Cy")
	dan := mustUser(t, s, "dan@example.com", "Dan")
	eve := mustUser(t, s, "eve@example.com", "Eve")
	g := mustGroup(t, s, ada, "Crew", 10)
	for _, u := range []chat.User{bob, cy, dan} {
		if _, _, err := s.AddGroupMember(ctx, g.ID, u.ID, ada.ID, t0, addedOf(g.ID)); err != nil {
			t.Fatalf("AddGroupMember(%s): %v", u.Name, err)
		}
	}
	for _, u := range []chat.User{bob, cy} {
		if _, _, err := s.SetGroupRole(ctx, g.ID, u.ID, chat.RoleAdmin, ada.ID, t0); err != nil {
			t.Fatalf("SetGroupRole(%s): %v", u.Name, err)
		}
	}
	for _, tt := range []struct{ by, who chat.User }{{cy, bob}, {dan, cy}, {dan, bob}, {eve, dan}} {
		if _, _, err := s.RemoveGroupMember(ctx, g.ID, tt.who.ID, tt.by.ID, t0, removedOf(g.ID, "removed")); !errors.Is(err, chat.ErrForbidden) {
			t.Errorf("RemoveGroupMember(%s, by %s): err = %v; want ErrForbidden", tt.who.Name, tt.by.Name, err)
		}
	}
	if g, err := s.Group(ctx, g.ID); err != nil || g.Members != 4 || g.LastSeq != 6 {
		t.Errorf("after refused removals: Group = %+v, %v; want 4 members, last seq 6 as before", g, err)
	}
	if _, _, err := s.RemoveGroupMember(ctx, g.ID, dan.ID, bob.ID, t0, removedOf(g.ID, "removed")); err != nil {
		t.Errorf("RemoveGroupMember(Dan, by admin Bob): %v", err)
	}
	if _, _, err := s.RemoveGroupMember(ctx, g.ID, bob.ID, ada.ID, t0, removedOf(g.ID, "removed")); err != nil {
		t.Errorf("RemoveGroupMember(admin Bob, by the owner): %v", err)
	}
	if _, _, err := s.RemoveGroupMember(ctx, g.ID, cy.ID, cy.ID, t0, removedOf(g.ID, "left")); err != nil {
		t.Errorf("RemoveGroupMember(Cy leaving): %v", err)
	}
}

// testGroupAddBlocked: AddGroupMember refuses with ErrBlocked, and writes
// nothing, when the adder or the added user blocked the other.
func testGroupAddBlocked(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ada := mustUser(t, s, "ada@example.com", "Ada")
	bob := mustUser(t, s, "bob@example.com", "Bob")
	cy := mustUser(t, s, "cy@example.com", "Cy")
	g := mustGroup(t, s, ada, "Crew", 10)
	if _, err := s.Block(ctx, bob.ID, ada.ID, t0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Block(ctx, ada.ID, cy.ID, t0, 0); err != nil {
		t.Fatal(err)
	}
	for _, u := range []chat.User{bob, cy} {
		last, err := s.LastUserEvent(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.AddGroupMember(ctx, g.ID, u.ID, ada.ID, t0, addedOf(g.ID)); !errors.Is(err, chat.ErrBlocked) {
			t.Errorf("AddGroupMember(%s, blocked): err = %v; want ErrBlocked", u.Name, err)
		}
		wantRole(t, s, g.ID, u, "")
		if got, err := s.LastUserEvent(ctx, u.ID); err != nil || got != last {
			t.Errorf("after the refused add, %s's last event = %d, %v; want %d as before", u.Name, got, err, last)
		}
	}
	if got, err := s.Group(ctx, g.ID); err != nil || got.Members != 1 || got.LastSeq != g.LastSeq {
		t.Errorf("after refused adds: Group = %+v, %v; want 1 member, last seq %d as before", got, err, g.LastSeq)
	}
}
