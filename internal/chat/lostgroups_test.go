package chat_test

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

func (s *lostWriteStore) DeleteGroup(ctx context.Context, id, by int64, at time.Time, removed chat.Event) ([]chat.UserEvent, error) {
	evs, err := s.Store.DeleteGroup(ctx, id, by, at, removed)
	if err = s.lost(err); err != nil {
		return nil, err
	}
	return evs, nil
}

func (s *lostWriteStore) CreateGroup(ctx context.Context, g chat.NewGroup) (chat.Group, chat.Message, error) {
	if s.failed() {
		return chat.Group{}, chat.Message{}, errLostCommit
	}
	gr, m, err := s.Store.CreateGroup(ctx, g)
	if err = s.lost(err); err != nil {
		return chat.Group{}, chat.Message{}, err
	}
	return gr, m, nil
}

// TestLostWriteDeleteGroup: a group deletion whose commit went through
// but whose caller got an error still tells every member, once, that
// the group is gone; a retry by the owner is no error.
func TestLostWriteDeleteGroup(t *testing.T) {
	ctx := context.Background()
	db := &lostWriteStore{Store: newFixture(t, chat.Config{}).store}
	f := lostFixture(t, db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	bob, _ := f.signIn(t, "bob@example.com", "Bob")
	h := lostHub(t, f)
	g, err := f.svc.CreateGroup(ctx, ada, "team", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []chat.User{grace, bob} {
		if _, err := f.svc.AddGroupMember(ctx, ada, g.ID, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	adas, graces, bobs := userClient(t, h, ada), userClient(t, h, grace), userClient(t, h, bob)
	db.lose.Store(true)
	if err := f.svc.DeleteGroup(ctx, ada, g.ID); err == nil {
		t.Fatal("DeleteGroup = nil; want the store's error")
	}
	if err := f.svc.DeleteGroup(ctx, ada, g.ID); err != nil {
		t.Errorf("DeleteGroup retried: %v; want success", err)
	}
	removed := func(ev chat.Event) bool { return ev.Type == chat.EventRemoved && ev.ConvID == g.ID }
	wantOnce(t, adas, "Ada's removed", removed)
	wantOnce(t, graces, "Grace's removed", removed)
	wantOnce(t, bobs, "Bob's removed", removed)
}

// groupCreated matches the logged event that tells an owner of a group
// created, named name (any name if name is "").
func groupCreated(name string) func(chat.Event) bool {
	return func(ev chat.Event) bool {
		return ev.Type == chat.EventConversation && ev.ConvKind == chat.ConvGroup && ev.Message != nil &&
			ev.Message.Kind == chat.KindCreated && ev.UserSeq > 0 && (name == "" || ev.Message.Body == name)
	}
}

// TestLostWriteCreateGroup: a group creation whose commit went through
// but whose caller got an error is answered, when its owner tries it
// again soon, with the group it made, not name_taken; the owner's
// clients learn of it once, and their log keeps it.
func TestLostWriteCreateGroup(t *testing.T) {
	ctx := context.Background()
	db := &lostWriteStore{Store: newFixture(t, chat.Config{}).store}
	f := lostFixture(t, db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	h := lostHub(t, f)
	adas := userClient(t, h, ada)
	created := groupCreated("")

	db.lose.Store(true)
	if _, err := f.svc.CreateGroup(ctx, ada, "team", "ours", 10); err == nil {
		t.Fatal("CreateGroup = nil; want the store's error")
	}
	g, err := f.svc.CreateGroup(ctx, ada, "team", "ours", 10)
	if err != nil {
		t.Fatalf("CreateGroup retried: %v; want the group", err)
	}
	if g.Name != "team" || g.OwnerID != ada.ID || g.ID == 0 {
		t.Errorf("CreateGroup retried = %+v; want Ada's team", g)
	}
	wantOnce(t, adas, "Ada's new group", created)

	// Not a retry: another user, other settings, a group with more in it,
	// or one made long ago.
	if _, err := f.svc.CreateGroup(ctx, grace, "team", "ours", 10); err == nil {
		t.Error("Grace's CreateGroup(team) = nil; want name_taken")
	}
	if _, err := f.svc.CreateGroup(ctx, ada, "team", "theirs", 10); err == nil {
		t.Error("CreateGroup(team) with another description = nil; want name_taken")
	}
	if _, err := f.svc.AddGroupMember(ctx, ada, g.ID, grace.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.CreateGroup(ctx, ada, "team", "ours", 10); err == nil {
		t.Error("CreateGroup(team) of a group with two members = nil; want name_taken")
	}
	if _, err := f.svc.CreateGroup(ctx, ada, "crew", "", 0); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Hour)
	if _, err := f.svc.CreateGroup(ctx, ada, "crew", "", 0); err == nil {
		t.Error("CreateGroup(crew) an hour after = nil; want name_taken")
	}

	// A creation that failed unmade is tried again, and made, once.
	db.fail.Store(true)
	if _, err := f.svc.CreateGroup(ctx, ada, "band", "", 0); err == nil {
		t.Fatal("CreateGroup = nil; want the store's error")
	}
	if _, err := f.svc.CreateGroup(ctx, ada, "band", "", 0); err != nil {
		t.Fatal(err)
	}

	// A creation of unknown outcome not tried again: the owner's clients
	// still learn of it.
	time.Sleep(50 * time.Millisecond)
	adas.Next(nil)
	db.lose.Store(true)
	if _, err := f.svc.CreateGroup(ctx, ada, "choir", "", 0); err == nil {
		t.Fatal("CreateGroup = nil; want the store's error")
	}
	wantOnce(t, adas, "Ada's choir", created)
}

// TestLostWriteCreateGroupRetriedLater: a creation of unknown outcome
// tried again after its owner made another group is answered with the
// group it made, found by its name, not name_taken; the owner's clients
// learn of it once.
func TestLostWriteCreateGroupRetriedLater(t *testing.T) {
	ctx := context.Background()
	db := &lostWriteStore{Store: newFixture(t, chat.Config{}).store}
	f := lostFixture(t, db)
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	h := lostHub(t, f)
	adas := userClient(t, h, ada)

	db.lose.Store(true)
	if _, err := f.svc.CreateGroup(ctx, ada, "team", "ours", 10); err == nil {
		t.Fatal("CreateGroup = nil; want the store's error")
	}
	if _, err := f.svc.CreateGroup(ctx, ada, "crew", "", 0); err != nil {
		t.Fatal(err)
	}
	// Grace's group, with Ada in it, is newer still.
	gg, err := f.svc.CreateGroup(ctx, grace, "band", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AddGroupMember(ctx, grace, gg.ID, ada.ID); err != nil {
		t.Fatal(err)
	}
	g, err := f.svc.CreateGroup(ctx, ada, "team", "ours", 10)
	if err != nil {
		t.Fatalf("CreateGroup(team) retried after another: %v; want the group", err)
	}
	if g.Name != "team" || g.OwnerID != ada.ID || g.Description != "ours" {
		t.Errorf("CreateGroup(team) retried = %+v; want Ada's team", g)
	}
	wantOnce(t, adas, "Ada's team", groupCreated("team"))

	// Still not a retry: other settings, or a group made long ago.
	if _, err := f.svc.CreateGroup(ctx, ada, "team", "theirs", 10); err == nil {
		t.Error("CreateGroup(team) with another description = nil; want name_taken")
	}
	f.clock.Advance(time.Hour)
	if _, err := f.svc.CreateGroup(ctx, ada, "team", "ours", 10); err == nil {
		t.Error("CreateGroup(team) an hour after = nil; want name_taken")
	}
}
