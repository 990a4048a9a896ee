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
