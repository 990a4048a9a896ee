package chattest

import (
	"testing"

	"github.com/parley-chat/parley/internal/chat"
)

// testNameVersionInLists: every list that shows a user's name gives the
// version of that name (chat.User.NameVersion) with it, as the store read
// them together: a client orders against it the renames told to it late
// (docs/protocol.md, the user frame).
func testNameVersionInLists(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ada := mustUser(t, s, "ada@example.com", "Ada")
	grace := mustUser(t, s, "grace@example.com", "Grace")
	eve := mustUser(t, s, "eve@example.com", "Eve")
	var err error
	for _, name := range []string{"Grace H", "Grace Hopper"} {
		if grace, err = s.SetUserName(ctx, grace.ID, name); err != nil {
			t.Fatalf("SetUserName: %v", err)
		}
	}
	if eve, err = s.SetUserName(ctx, eve.ID, "Eve Ill"); err != nil {
		t.Fatalf("SetUserName: %v", err)
	}
	if grace.NameVersion < 2 || eve.NameVersion < 1 {
		t.Fatalf("NameVersion after renames: Grace's %d, Eve's %d", grace.NameVersion, eve.NameVersion)
	}
	mustRequest(t, s, ada.ID, grace.ID, t0, chat.StateRequestSent, true)
	if _, err := s.AcceptFriend(ctx, grace.ID, ada.ID, t0, 0); err != nil {
		t.Fatalf("AcceptFriend: %v", err)
	}
	if _, err := s.Block(ctx, ada.ID, eve.ID, t0, 0); err != nil {
		t.Fatalf("Block: %v", err)
	}
	var d chat.Conversation
	d, _, err = s.EnsureDirect(ctx, ada.ID, grace.ID, t0)
	if err != nil {
		t.Fatalf("EnsureDirect: %v", err)
	}
	g := mustGroup(t, s, grace, "Crew", 10)

	want := func(what string, u *chat.User, name string, version int64) {
		t.Helper()
		if u == nil {
			t.Errorf("%s: no user; want %q, version %d", what, name, version)
			return
		}
		if u.Name != name || u.NameVersion != version {
			t.Errorf("%s = %q, version %d; want %q, version %d", what, u.Name, u.NameVersion, name, version)
		}
	}
	want("EnsureDirect's peer", d.Peer, "Grace Hopper", grace.NameVersion)
	if c, err := s.Direct(ctx, ada.ID, grace.ID); err != nil {
		t.Errorf("Direct: %v", err)
	} else {
		want("Direct's peer", c.Peer, "Grace Hopper", grace.NameVersion)
	}
	if c, _, err := s.Conversation(ctx, d.ID, ada.ID); err != nil {
		t.Errorf("Conversation: %v", err)
	} else {
		want("Conversation's peer", c.Peer, "Grace Hopper", grace.NameVersion)
	}
	if cs, err := s.Conversations(ctx, ada.ID); err != nil || len(cs) != 1 {
		t.Errorf("Conversations = %+v, %v; want the direct chat", cs, err)
	} else {
		want("Conversations' peer", cs[0].Peer, "Grace Hopper", grace.NameVersion)
	}
	if cs, err := s.Contacts(ctx, ada.ID); err != nil || len(cs) != 1 {
		t.Errorf("Contacts = %+v, %v; want Grace", cs, err)
	} else {
		want("Contacts' user", &cs[0].User, "Grace Hopper", grace.NameVersion)
	}
	if us, err := s.Blocked(ctx, ada.ID); err != nil || len(us) != 1 {
		t.Errorf("Blocked = %+v, %v; want Eve", us, err)
	} else {
		want("Blocked's user", &us[0], "Eve Ill", eve.NameVersion)
	}
	if us, err := s.Users(ctx, []int64{grace.ID}); err != nil || len(us) != 1 {
		t.Errorf("Users = %+v, %v; want Grace", us, err)
	} else {
		want("Users' user", &us[0], "Grace Hopper", grace.NameVersion)
	}
	if ms, err := s.GroupMembers(ctx, g.ID); err != nil || len(ms) != 1 {
		t.Errorf("GroupMembers = %+v, %v; want Grace", ms, err)
	} else {
		want("GroupMembers' user", &ms[0].User, "Grace Hopper", grace.NameVersion)
	}
}
