package chat_test

import (
	"context"
	"errors"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
)

// TestEnterRoomAgainLogged: a user leaves a room and enters it again. The
// leave is kept in the user's event log as a removed event; the entering
// again must be kept there too, after it, or a device that was offline
// meanwhile replays the log and drops a room the user belongs to. It holds
// in a room too large to announce joins (no join message) as well.
func TestEnterRoomAgainLogged(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{AnnounceMax: 2})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	bo, _ := f.signIn(t, "bo@example.com", "Bo")
	cy, _ := f.signIn(t, "cy@example.com", "Cy")
	for _, c := range []struct {
		name  string
		quiet bool
	}{{"lobby", false}, {"crowd", true}} {
		r := f.enter(t, ada, c.name)
		if c.quiet {
			f.enter(t, bo, c.name)
			f.enter(t, cy, c.name) // three members: Ada's leave and join are quiet
		}
		if err := f.svc.LeaveRoom(ctx, ada, r.ID); err != nil {
			t.Fatal(err)
		}
		f.enter(t, ada, c.name)
		f.enter(t, ada, c.name) // a member coming back: no event
		evs, err := f.svc.UserEvents(ctx, ada, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []chat.Event
		for _, ev := range evs {
			if ev.ConvID == r.ID {
				got = append(got, ev)
			}
		}
		// The first entry is not logged: no removed comes before it.
		if len(got) != 2 || got[0].Type != chat.EventRemoved ||
			got[1].Type != chat.EventConversation || got[1].ConvKind != chat.ConvRoom {
			t.Errorf("#%s: Ada's logged events of the room = %+v; want removed when she left, conversation when she entered again", c.name, got)
			continue
		}
		if m := got[1].Message; c.quiet != (m == nil) || m != nil && (m.Kind != chat.KindJoin || m.SenderID != ada.ID) {
			t.Errorf("#%s: message of the event of entering again = %+v; want her join message (none in a quiet room: %v)", c.name, m, c.quiet)
		}
	}
}

// TestCheckMemberAtMark: the mark of a membership check comes before the
// removal that ends the membership found, and at or after one that ended
// an earlier membership (the user left and entered again before the
// check); a non-member is refused as by CheckMember.
func TestCheckMemberAtMark(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	r := f.enter(t, ada, "lobby")
	before, err := f.svc.CheckMemberAt(ctx, ada, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.LeaveRoom(ctx, ada, r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.CheckMemberAt(ctx, ada, r.ID); !errors.Is(err, chat.ErrForbidden) {
		t.Errorf("CheckMemberAt after leaving: %v; want ErrForbidden", err)
	}
	f.enter(t, ada, "lobby")
	after, err := f.svc.CheckMemberAt(ctx, ada, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	removed := loggedRemoved(t, f, ada, r.ID)
	if before.UserSeq >= removed || after.UserSeq < removed {
		t.Errorf("marks before the leave %d, after entering again %d; want %d between them (before < removed ≤ after)", before.UserSeq, after.UserSeq, removed)
	}
}

// TestCheckMemberAtGroupMark: the mark of a check of a group membership
// also comes before the group's removed message that ends the membership
// found (Mark.Seq), and at or after one that ended an earlier membership.
func TestCheckMemberAtGroupMark(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{})
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	g, err := f.svc.CreateGroup(ctx, grace, "crew", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AddGroupMember(ctx, grace, g.ID, ada.ID); err != nil {
		t.Fatal(err)
	}
	before, err := f.svc.CheckMemberAt(ctx, ada, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.RemoveGroupMember(ctx, grace, g.ID, ada.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.CheckMemberAt(ctx, ada, g.ID); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("CheckMemberAt after the removal: %v; want ErrNotFound", err)
	}
	added, err := f.svc.AddGroupMember(ctx, grace, g.ID, ada.ID)
	if err != nil {
		t.Fatal(err)
	}
	after, err := f.svc.CheckMemberAt(ctx, ada, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	removed := added.Seq - 1 // the removal, the message before the addition
	if before.Seq >= removed || after.Seq < removed {
		t.Errorf("seq marks before the removal %d, after the addition again %d; want %d between them (before < removed ≤ after)", before.Seq, after.Seq, removed)
	}
	if before.UserSeq >= after.UserSeq {
		t.Errorf("user_seq marks before the removal %d, after the addition again %d; want the first lower", before.UserSeq, after.UserSeq)
	}
}
