package chat_test

import (
	"context"
	"errors"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
)

// wantLimit fails unless err is the limit_reached conflict.
func wantLimit(tb testing.TB, what string, err error) {
	tb.Helper()
	if e := chat.AsError(err); e == nil || !errors.Is(err, chat.ErrConflict) || e.Code != chat.CodeLimitReached {
		tb.Fatalf("%s: err = %v; want %s (conflict)", what, err, chat.CodeLimitReached)
	}
}

// TestGroupsPerUser: a user is in at most Config.MaxUserGroups groups,
// owned or joined: past it, neither creating one nor being added to one
// goes through, and a refused create does not count as a group made.
func TestGroupsPerUser(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{MaxUserGroups: 2, NewConvsPerHour: 3})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	bob, _ := f.signIn(t, "bob@example.com", "Bob")
	a, err := f.svc.CreateGroup(ctx, ada, "A", "", 0)
	if err != nil {
		t.Fatalf("CreateGroup(A): %v", err)
	}
	b, err := f.svc.CreateGroup(ctx, bob, "B", "", 0)
	if err != nil {
		t.Fatalf("CreateGroup(B): %v", err)
	}
	if _, err := f.svc.AddGroupMember(ctx, bob, b.ID, ada.ID); err != nil {
		t.Fatalf("AddGroupMember(B, Ada): %v", err)
	}
	_, err = f.svc.CreateGroup(ctx, ada, "C", "", 0)
	wantLimit(t, "Ada makes a third group", err)
	c, err := f.svc.CreateGroup(ctx, bob, "C", "", 0)
	if err != nil {
		t.Fatalf("CreateGroup(C): %v", err)
	}
	_, err = f.svc.AddGroupMember(ctx, bob, c.ID, ada.ID)
	wantLimit(t, "Bob adds Ada to a third group", err)
	if err := f.svc.DeleteGroup(ctx, ada, a.ID); err != nil {
		t.Fatalf("DeleteGroup(A): %v", err)
	}
	if _, err := f.svc.AddGroupMember(ctx, bob, c.ID, ada.ID); err != nil {
		t.Fatalf("AddGroupMember(C, Ada) after Ada deleted A: %v", err)
	}
	if err := f.svc.RemoveGroupMember(ctx, ada, b.ID, ada.ID); err != nil {
		t.Fatalf("Ada leaves B: %v", err)
	}
	// Two made and one refused: the refused one did not count.
	if _, err := f.svc.CreateGroup(ctx, ada, "D", "", 0); err != nil {
		t.Fatalf("CreateGroup(D) once Ada is in one group: %v", err)
	}
}

// TestRoomsPerUser: a user is in at most Config.MaxUserRooms rooms: past
// it, entering another, made or not, is refused, makes no room and does
// not count as a room made; entering one of theirs again still works, and
// once they leave one, they may enter another.
func TestRoomsPerUser(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{MaxUserRooms: 2, NewConvsPerHour: 3})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	bob, _ := f.signIn(t, "bob@example.com", "Bob")
	a, err := f.svc.EnterRoom(ctx, ada, "a")
	if err != nil {
		t.Fatalf("EnterRoom(a): %v", err)
	}
	if _, err := f.svc.EnterRoom(ctx, ada, "b"); err != nil {
		t.Fatalf("EnterRoom(b): %v", err)
	}
	if _, err := f.svc.EnterRoom(ctx, bob, "c"); err != nil {
		t.Fatalf("Bob enters c: %v", err)
	}
	_, err = f.svc.EnterRoom(ctx, ada, "c")
	wantLimit(t, "Ada enters a third room", err)
	_, err = f.svc.EnterRoom(ctx, ada, "d")
	wantLimit(t, "Ada makes a third room", err)
	if _, err := f.svc.RoomByName(ctx, "d"); !errors.Is(err, chat.ErrNotFound) {
		t.Fatalf("room d after a refused enter: err = %v; want not found", err)
	}
	if _, err := f.svc.EnterRoom(ctx, ada, "a"); err != nil {
		t.Fatalf("Ada enters a again: %v", err)
	}
	if err := f.svc.LeaveRoom(ctx, ada, a.ID); err != nil {
		t.Fatalf("LeaveRoom(a): %v", err)
	}
	// Two made and one refused: the refused one did not count.
	if _, err := f.svc.EnterRoom(ctx, ada, "d"); err != nil {
		t.Fatalf("EnterRoom(d) after leaving a: %v", err)
	}
}

// TestPendingFriendRequests: a user has at most
// Config.MaxPendingRequests friend requests unanswered: past it, a new one
// is refused and not counted against FriendRequestsPerHour, while
// repeating one, accepting one by asking back, and asking again once one
// was answered still work.
func TestPendingFriendRequests(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{MaxPendingRequests: 2, FriendRequestsPerHour: 6})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	bob, _ := f.signIn(t, "bob@example.com", "Bob")
	cy, _ := f.signIn(t, "cy@example.com", "Cy")
	dee, _ := f.signIn(t, "dee@example.com", "Dee")
	eve, _ := f.signIn(t, "eve@example.com", "Eve")
	for _, u := range []chat.User{bob, cy} {
		if _, err := f.svc.RequestFriend(ctx, ada, u.ID); err != nil {
			t.Fatalf("Ada asks %s: %v", u.Name, err)
		}
	}
	if _, err := f.svc.RequestFriend(ctx, eve, ada.ID); err != nil {
		t.Fatalf("Eve asks Ada: %v", err)
	}
	_, err := f.svc.RequestFriend(ctx, ada, dee.ID)
	wantLimit(t, "Ada asks a third user", err)
	if _, err := f.svc.RequestFriend(ctx, ada, bob.ID); err != nil {
		t.Fatalf("Ada asks Bob again: %v", err)
	}
	if c, err := f.svc.RequestFriend(ctx, ada, eve.ID); err != nil || c.State != chat.StateFriends {
		t.Fatalf("Ada asks Eve, who asked her = %+v, %v; want friends", c, err)
	}
	if _, err := f.svc.AcceptFriend(ctx, bob, ada.ID); err != nil {
		t.Fatalf("Bob accepts: %v", err)
	}
	// Five asked, one refused: the refused one did not count.
	if _, err := f.svc.RequestFriend(ctx, ada, dee.ID); err != nil {
		t.Fatalf("Ada asks Dee once Bob answered: %v", err)
	}
}

// TestFriendsPerUser: a user has at most Config.MaxFriends friends: a
// request from a user who has as many, and an acceptance (by accepting,
// or by asking back) that would give either user one more, are refused.
// Once a friendship ends, they go through.
func TestFriendsPerUser(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{MaxFriends: 1})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	bob, _ := f.signIn(t, "bob@example.com", "Bob")
	cy, _ := f.signIn(t, "cy@example.com", "Cy")
	dee, _ := f.signIn(t, "dee@example.com", "Dee")
	if _, err := f.svc.RequestFriend(ctx, ada, bob.ID); err != nil {
		t.Fatalf("Ada asks Bob: %v", err)
	}
	if _, err := f.svc.RequestFriend(ctx, cy, ada.ID); err != nil {
		t.Fatalf("Cy asks Ada: %v", err)
	}
	if _, err := f.svc.RequestFriend(ctx, dee, ada.ID); err != nil {
		t.Fatalf("Dee asks Ada: %v", err)
	}
	if _, err := f.svc.AcceptFriend(ctx, bob, ada.ID); err != nil {
		t.Fatalf("Bob accepts Ada: %v", err)
	}
	_, err := f.svc.AcceptFriend(ctx, ada, cy.ID)
	wantLimit(t, "Ada, with one friend, accepts Cy", err)
	_, err = f.svc.RequestFriend(ctx, ada, dee.ID)
	wantLimit(t, "Ada, with one friend, asks Dee back", err)
	_, err = f.svc.RequestFriend(ctx, bob, cy.ID)
	wantLimit(t, "Bob, with one friend, asks Cy", err)
	if err := f.svc.RemoveContact(ctx, ada, bob.ID); err != nil {
		t.Fatalf("Ada removes Bob: %v", err)
	}
	if c, err := f.svc.AcceptFriend(ctx, ada, cy.ID); err != nil || c.State != chat.StateFriends {
		t.Fatalf("Ada accepts Cy once Bob is gone = %+v, %v; want friends", c, err)
	}
	_, err = f.svc.AcceptFriend(ctx, dee, ada.ID)
	if err == nil {
		t.Fatalf("Dee accepts Ada: want an error, Dee asked Ada")
	}
}
