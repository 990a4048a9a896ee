package chat_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/inmem"
)

// contactEvents returns the (user id, state) of the contact events in evs.
func contactEvents(tb testing.TB, evs []chat.Event) [][2]any {
	tb.Helper()
	var out [][2]any
	for _, ev := range evs {
		if ev.Type != chat.EventContact || ev.Contact == nil {
			tb.Errorf("unexpected event %+v", ev)
			continue
		}
		if ev.Contact.User.Email != "" {
			tb.Errorf("contact event carries an email: %+v", ev.Contact)
		}
		out = append(out, [2]any{ev.Contact.User.ID, ev.Contact.State})
	}
	return out
}

func wantContactEvents(tb testing.TB, what string, r *recorder, want ...[2]any) {
	tb.Helper()
	if diff := cmp.Diff(want, contactEvents(tb, r.take()), cmpopts.EquateEmpty()); diff != "" {
		tb.Errorf("%s: contact events mismatch (-want +got):\n%s", what, diff)
	}
}

type friendsFixture struct {
	*fixture
	ada, grace, eve chat.User
	adaEv, graceEv  *recorder
	eveEv           *recorder
}

func newFriendsFixture(t *testing.T) *friendsFixture {
	return newFriendsFixtureWith(t, inmem.NewPresence())
}

// newFriendsFixtureWith is newFriendsFixture with Presence p.
func newFriendsFixtureWith(t *testing.T, p chat.Presence) *friendsFixture {
	f := &friendsFixture{fixture: newFixtureWith(t, chat.Config{}, p)}
	f.ada, _ = f.signIn(t, "ada@example.com", "Ada")
	f.grace, _ = f.signIn(t, "grace@example.com", "Grace")
	f.eve, _ = f.signIn(t, "eve@example.com", "Eve")
	f.adaEv = f.record(t, chat.UserTopic(f.ada.ID))
	f.graceEv = f.record(t, chat.UserTopic(f.grace.ID))
	f.eveEv = f.record(t, chat.UserTopic(f.eve.ID))
	return f
}

func (f *friendsFixture) contacts(tb testing.TB, u chat.User) map[int64]string {
	tb.Helper()
	cs, _, err := f.svc.Contacts(context.Background(), u)
	if err != nil {
		tb.Fatalf("Contacts(%s): %v", u.Name, err)
	}
	m := map[int64]string{}
	for _, c := range cs {
		if c.User.Email != "" {
			tb.Errorf("Contacts(%s) shows an email: %+v", u.Name, c)
		}
		m[c.User.ID] = c.State
	}
	return m
}

func TestFriendRequestAccept(t *testing.T) {
	f := newFriendsFixture(t)
	ctx := context.Background()

	c, err := f.svc.RequestFriend(ctx, f.ada, f.grace.ID)
	if err != nil {
		t.Fatalf("RequestFriend: %v", err)
	}
	if c.State != chat.StateRequestSent || c.User.ID != f.grace.ID || c.User.Email != "" {
		t.Errorf("RequestFriend = %+v; want request_sent to Grace without email", c)
	}
	wantContactEvents(t, "request, Ada", f.adaEv, [2]any{f.grace.ID, chat.StateRequestSent})
	wantContactEvents(t, "request, Grace", f.graceEv, [2]any{f.ada.ID, chat.StateRequestReceived})

	// Repeating the request is harmless and silent.
	if c, err := f.svc.RequestFriend(ctx, f.ada, f.grace.ID); err != nil || c.State != chat.StateRequestSent {
		t.Errorf("RequestFriend(again) = %+v, %v; want request_sent", c, err)
	}
	wantContactEvents(t, "repeat, Grace", f.graceEv)

	_, err = f.svc.AcceptFriend(ctx, f.ada, f.grace.ID)
	wantError(t, "AcceptFriend(own request)", err, chat.ErrNotFound, chat.CodeNotFound, "")

	c, err = f.svc.AcceptFriend(ctx, f.grace, f.ada.ID)
	if err != nil || c.State != chat.StateFriends || c.User.ID != f.ada.ID {
		t.Fatalf("AcceptFriend = %+v, %v; want friends with Ada", c, err)
	}
	wantContactEvents(t, "accept, Ada", f.adaEv, [2]any{f.grace.ID, chat.StateFriends})
	wantContactEvents(t, "accept, Grace", f.graceEv, [2]any{f.ada.ID, chat.StateFriends})
	if diff := cmp.Diff(map[int64]string{f.grace.ID: chat.StateFriends}, f.contacts(t, f.ada)); diff != "" {
		t.Errorf("Ada's contacts mismatch (-want +got):\n%s", diff)
	}

	_, err = f.svc.RequestFriend(ctx, f.grace, f.ada.ID)
	wantError(t, "RequestFriend(friends)", err, chat.ErrConflict, chat.CodeAlreadyFriends, "")
	if err := f.svc.CanMessage(ctx, f.ada.ID, f.grace.ID); err != nil {
		t.Errorf("CanMessage(friends) = %v; want nil", err)
	}
}

// TestFriendContactPresenceVersion: the contact event of a new friend
// shows their presence with its version (the event's Seq), as
// Presence.State reads it, by which the owner's hubs order it against
// that friend's presence news.
func TestFriendContactPresenceVersion(t *testing.T) {
	p := inmem.NewPresence()
	f := newFriendsFixtureWith(t, p)
	ctx := context.Background()
	if _, err := f.svc.RequestFriend(ctx, f.ada, f.grace.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Connect(ctx, f.grace); err != nil {
		t.Fatal(err)
	}
	f.adaEv.take()
	f.graceEv.take()
	if _, err := f.svc.AcceptFriend(ctx, f.grace, f.ada.ID); err != nil {
		t.Fatal(err)
	}
	_, version, _ := p.State(ctx, chat.Everywhere, f.grace.ID)
	if version == 0 {
		t.Fatal("presence version 0 after Grace connected")
	}
	type shown struct {
		User    int64
		Online  bool
		Version int64
	}
	for _, c := range []struct {
		who  string
		r    *recorder
		want shown
	}{
		{"Ada", f.adaEv, shown{f.grace.ID, true, version}},
		{"Grace", f.graceEv, shown{f.ada.ID, false, version}},
	} {
		var got []shown
		for _, ev := range c.r.take() {
			if ev.Type == chat.EventContact && ev.Contact != nil {
				got = append(got, shown{ev.Contact.User.ID, ev.Contact.Online, ev.Seq})
			}
		}
		if diff := cmp.Diff([]shown{c.want}, got); diff != "" {
			t.Errorf("%s's contact events mismatch (-want +got):\n%s", c.who, diff)
		}
	}
}

func TestFriendRequestMutual(t *testing.T) {
	f := newFriendsFixture(t)
	ctx := context.Background()
	if _, err := f.svc.RequestFriend(ctx, f.ada, f.grace.ID); err != nil {
		t.Fatal(err)
	}
	f.adaEv.take()
	f.graceEv.take()
	c, err := f.svc.RequestFriend(ctx, f.grace, f.ada.ID)
	if err != nil || c.State != chat.StateFriends {
		t.Fatalf("RequestFriend(mutual) = %+v, %v; want friends", c, err)
	}
	wantContactEvents(t, "mutual, Ada", f.adaEv, [2]any{f.grace.ID, chat.StateFriends})
	wantContactEvents(t, "mutual, Grace", f.graceEv, [2]any{f.ada.ID, chat.StateFriends})
}

func TestFriendRequestErrors(t *testing.T) {
	f := newFriendsFixture(t)
	ctx := context.Background()
	_, err := f.svc.RequestFriend(ctx, f.ada, f.ada.ID)
	wantError(t, "RequestFriend(self)", err, chat.ErrInvalid, chat.CodeInvalidField, "user_id")
	_, err = f.svc.RequestFriend(ctx, f.ada, 1<<40)
	wantError(t, "RequestFriend(unknown)", err, chat.ErrNotFound, chat.CodeNotFound, "")
	_, err = f.svc.RequestFriend(ctx, f.ada, -1)
	wantError(t, "RequestFriend(-1)", err, chat.ErrNotFound, chat.CodeNotFound, "")
	_, err = f.svc.AcceptFriend(ctx, f.ada, f.grace.ID)
	wantError(t, "AcceptFriend(no request)", err, chat.ErrNotFound, chat.CodeNotFound, "")
	err = f.svc.RemoveContact(ctx, f.ada, f.grace.ID)
	wantError(t, "RemoveContact(none)", err, chat.ErrNotFound, chat.CodeNotFound, "")
	err = f.svc.Block(ctx, f.ada, f.ada.ID)
	wantError(t, "Block(self)", err, chat.ErrInvalid, chat.CodeInvalidField, "user_id")
	err = f.svc.Block(ctx, f.ada, 1<<40)
	wantError(t, "Block(unknown)", err, chat.ErrNotFound, chat.CodeNotFound, "")
	err = f.svc.Unblock(ctx, f.ada, f.grace.ID)
	wantError(t, "Unblock(not blocked)", err, chat.ErrNotFound, chat.CodeNotFound, "")
	wantContactEvents(t, "errors, Ada", f.adaEv)
	wantContactEvents(t, "errors, Grace", f.graceEv)
}

func TestRemoveContact(t *testing.T) {
	f := newFriendsFixture(t)
	ctx := context.Background()
	none := func(id int64) [2]any { return [2]any{id, chat.StateNone} }

	// Decline.
	if _, err := f.svc.RequestFriend(ctx, f.ada, f.grace.ID); err != nil {
		t.Fatal(err)
	}
	f.adaEv.take()
	f.graceEv.take()
	if err := f.svc.RemoveContact(ctx, f.grace, f.ada.ID); err != nil {
		t.Fatalf("RemoveContact(decline): %v", err)
	}
	wantContactEvents(t, "decline, Ada", f.adaEv, none(f.grace.ID))
	wantContactEvents(t, "decline, Grace", f.graceEv, none(f.ada.ID))

	// Cancel.
	if _, err := f.svc.RequestFriend(ctx, f.ada, f.grace.ID); err != nil {
		t.Fatal(err)
	}
	f.adaEv.take()
	f.graceEv.take()
	if err := f.svc.RemoveContact(ctx, f.ada, f.grace.ID); err != nil {
		t.Fatalf("RemoveContact(cancel): %v", err)
	}
	wantContactEvents(t, "cancel, Grace", f.graceEv, none(f.ada.ID))
	f.adaEv.take()

	// Unfriend.
	if _, err := f.svc.RequestFriend(ctx, f.ada, f.grace.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AcceptFriend(ctx, f.grace, f.ada.ID); err != nil {
		t.Fatal(err)
	}
	f.adaEv.take()
	f.graceEv.take()
	if err := f.svc.RemoveContact(ctx, f.grace, f.ada.ID); err != nil {
		t.Fatalf("RemoveContact(unfriend): %v", err)
	}
	wantContactEvents(t, "unfriend, Ada", f.adaEv, none(f.grace.ID))
	wantContactEvents(t, "unfriend, Grace", f.graceEv, none(f.ada.ID))
	if got := f.contacts(t, f.ada); len(got) != 0 {
		t.Errorf("Ada's contacts after unfriend = %v; want none", got)
	}
	err := f.svc.CanMessage(ctx, f.ada.ID, f.grace.ID)
	wantError(t, "CanMessage(after unfriend)", err, chat.ErrForbidden, chat.CodeNotFriends, "")
}

func TestBlock(t *testing.T) {
	f := newFriendsFixture(t)
	ctx := context.Background()
	// Ada and Grace are friends; Eve asked Ada.
	if _, err := f.svc.RequestFriend(ctx, f.ada, f.grace.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.RequestFriend(ctx, f.grace, f.ada.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.RequestFriend(ctx, f.eve, f.ada.ID); err != nil {
		t.Fatal(err)
	}
	f.adaEv.take()
	f.graceEv.take()
	f.eveEv.take()

	if err := f.svc.Block(ctx, f.ada, f.grace.ID); err != nil {
		t.Fatalf("Block: %v", err)
	}
	wantContactEvents(t, "block, Ada", f.adaEv, [2]any{f.grace.ID, chat.StateBlocked})
	// Grace sees the friendship end exactly as after an unfriend: no
	// "blocked" anywhere.
	wantContactEvents(t, "block, Grace", f.graceEv, [2]any{f.ada.ID, chat.StateNone})
	if got := f.contacts(t, f.grace); len(got) != 0 {
		t.Errorf("Grace's contacts after the block = %v; want none", got)
	}
	cs, blocked, err := f.svc.Contacts(ctx, f.ada)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].User.ID != f.eve.ID || len(blocked) != 1 || blocked[0].ID != f.grace.ID || blocked[0].Email != "" {
		t.Errorf("Ada's Contacts = %+v, %+v; want Eve's request and Grace blocked", cs, blocked)
	}

	// Whichever side asks, the answer is the same refusal, and nothing is
	// published to anyone.
	_, errBlocked := f.svc.RequestFriend(ctx, f.grace, f.ada.ID)
	wantError(t, "RequestFriend(by the blocked)", errBlocked, chat.ErrForbidden, chat.CodeRefused, "")
	_, errBlocker := f.svc.RequestFriend(ctx, f.ada, f.grace.ID)
	wantError(t, "RequestFriend(by the blocker)", errBlocker, chat.ErrForbidden, chat.CodeRefused, "")
	if errBlocked.Error() != errBlocker.Error() {
		t.Errorf("refusals differ: %q and %q", errBlocked, errBlocker)
	}
	wantContactEvents(t, "refused, Ada", f.adaEv)
	wantContactEvents(t, "refused, Grace", f.graceEv)

	// CanMessage gives no hint of the block either.
	for _, p := range [][2]int64{{f.ada.ID, f.grace.ID}, {f.grace.ID, f.ada.ID}, {f.ada.ID, f.eve.ID}} {
		err := f.svc.CanMessage(ctx, p[0], p[1])
		wantError(t, "CanMessage", err, chat.ErrForbidden, chat.CodeNotFriends, "")
	}
	wantError(t, "CanMessage(self)", f.svc.CanMessage(ctx, f.ada.ID, f.ada.ID), chat.ErrInvalid, chat.CodeInvalidField, "user_id")

	// Blocking someone with no relation tells them nothing at all.
	if err := f.svc.Block(ctx, f.grace, f.eve.ID); err != nil {
		t.Fatal(err)
	}
	wantContactEvents(t, "block stranger, Eve", f.eveEv)
	wantContactEvents(t, "block stranger, Grace", f.graceEv, [2]any{f.eve.ID, chat.StateBlocked})

	if err := f.svc.Unblock(ctx, f.ada, f.grace.ID); err != nil {
		t.Fatalf("Unblock: %v", err)
	}
	wantContactEvents(t, "unblock, Ada", f.adaEv, [2]any{f.grace.ID, chat.StateNone})
	wantContactEvents(t, "unblock, Grace", f.graceEv)
	if _, err := f.svc.RequestFriend(ctx, f.grace, f.ada.ID); err != nil {
		t.Errorf("RequestFriend(after unblock): %v", err)
	}
}

func TestSearchUsers(t *testing.T) {
	f := newFriendsFixture(t)
	ctx := context.Background()
	ids := func(us []chat.User) []int64 {
		var out []int64
		for _, u := range us {
			if u.Email != "" {
				t.Errorf("search result carries an email: %+v", u)
			}
			out = append(out, u.ID)
		}
		return out
	}
	search := func(me chat.User, q string) []int64 {
		t.Helper()
		us, err := f.svc.SearchUsers(ctx, me, q)
		if err != nil {
			t.Fatalf("SearchUsers(%q): %v", q, err)
		}
		return ids(us)
	}
	tests := []struct {
		q    string
		want []int64
	}{
		{"  GRACE@example.com ", []int64{f.grace.ID}},
		{"gra", []int64{f.grace.ID}},
		{" g ", []int64{f.grace.ID}},
		{"grace@", nil},
		{"@example.com", nil},
		{"example", nil},
		{"ada@example.com", nil}, // oneself
		{"a", nil},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, search(f.ada, tt.q)); diff != "" {
			t.Errorf("SearchUsers(%q) mismatch (-want +got):\n%s", tt.q, diff)
		}
	}

	_, err := f.svc.SearchUsers(ctx, f.ada, "  ")
	wantError(t, "SearchUsers(blank)", err, chat.ErrInvalid, chat.CodeMissingField, "q")
	_, err = f.svc.SearchUsers(ctx, f.ada, strings.Repeat("x", chat.MaxSearchLen+1))
	wantError(t, "SearchUsers(long)", err, chat.ErrInvalid, chat.CodeTooLong, "q")

	// A block hides each from the other, in both directions.
	if err := f.svc.Block(ctx, f.grace, f.ada.ID); err != nil {
		t.Fatal(err)
	}
	if got := search(f.ada, "grace@example.com"); len(got) != 0 {
		t.Errorf("blocked Ada finds Grace: %v", got)
	}
	if got := search(f.grace, "Ad"); len(got) != 0 {
		t.Errorf("Grace finds Ada, whom she blocked: %v", got)
	}
	if diff := cmp.Diff([]int64{f.ada.ID}, search(f.eve, "ada")); diff != "" {
		t.Errorf("Eve's search mismatch (-want +got):\n%s", diff)
	}
}

// TestFriendRequestRate checks that a user cannot ask and cancel without
// end: each request is a contact event kept in the other user's event log
// for good, and a notification to them.
func TestFriendRequestRate(t *testing.T) {
	f := &friendsFixture{fixture: newFixture(t, chat.Config{FriendRequestsPerHour: 3})}
	f.ada, _ = f.signIn(t, "ada@example.com", "Ada")
	f.grace, _ = f.signIn(t, "grace@example.com", "Grace")
	f.graceEv = f.record(t, chat.UserTopic(f.grace.ID))
	ctx := context.Background()
	for i := range 3 {
		if _, err := f.svc.RequestFriend(ctx, f.ada, f.grace.ID); err != nil {
			t.Fatalf("RequestFriend %d: %v", i+1, err)
		}
		if err := f.svc.RemoveContact(ctx, f.ada, f.grace.ID); err != nil {
			t.Fatalf("RemoveContact %d: %v", i+1, err)
		}
	}
	f.graceEv.take()
	_, err := f.svc.RequestFriend(ctx, f.ada, f.grace.ID)
	wantError(t, "RequestFriend(over the rate)", err, chat.ErrRateLimited, chat.CodeRateLimited, "")
	if e := chat.AsError(err); e != nil && e.RetryAfter <= 0 {
		t.Errorf("RequestFriend(over the rate): RetryAfter = %v; want > 0", e.RetryAfter)
	}
	wantContactEvents(t, "over the rate, Grace", f.graceEv)
	if got := f.contacts(t, f.grace); len(got) != 0 {
		t.Errorf("Grace's contacts after a refused request = %v; want none", got)
	}

	// Grace is not held back by Ada's requests, and may still answer.
	if _, err := f.svc.RequestFriend(ctx, f.grace, f.ada.ID); err != nil {
		t.Fatalf("RequestFriend(Grace): %v", err)
	}
	f.clock.Advance(time.Hour)
	if c, err := f.svc.RequestFriend(ctx, f.ada, f.grace.ID); err != nil || c.State != chat.StateFriends {
		t.Errorf("RequestFriend(an hour later) = %+v, %v; want friends", c, err)
	}
}

// TestBlocksCap checks that a user cannot block without end: each block is
// a row kept until unblocked, and the block list is listed whole. A block
// past Config.MaxBlocks is refused as limit_reached and changes nothing.
func TestBlocksCap(t *testing.T) {
	f := &friendsFixture{fixture: newFixture(t, chat.Config{MaxBlocks: 2})}
	f.ada, _ = f.signIn(t, "ada@example.com", "Ada")
	f.grace, _ = f.signIn(t, "grace@example.com", "Grace")
	f.eve, _ = f.signIn(t, "eve@example.com", "Eve")
	cy, _ := f.signIn(t, "cy@example.com", "Cy")
	ctx := context.Background()
	if _, err := f.svc.RequestFriend(ctx, f.ada, cy.ID); err != nil {
		t.Fatal(err)
	}
	for _, u := range []chat.User{f.grace, f.eve} {
		if err := f.svc.Block(ctx, f.ada, u.ID); err != nil {
			t.Fatalf("Block(%s): %v", u.Name, err)
		}
	}
	f.adaEv = f.record(t, chat.UserTopic(f.ada.ID))
	cyEv := f.record(t, chat.UserTopic(cy.ID))
	err := f.svc.Block(ctx, f.ada, cy.ID)
	wantError(t, "Block(past the cap)", err, chat.ErrConflict, chat.CodeLimitReached, "")
	wantContactEvents(t, "past the cap, Ada", f.adaEv)
	wantContactEvents(t, "past the cap, Cy", cyEv)
	if got := f.contacts(t, cy); got[f.ada.ID] != chat.StateRequestReceived {
		t.Errorf("Cy's contacts after a refused block = %v; want Ada's request", got)
	}
	// A repeat is no new block.
	if err := f.svc.Block(ctx, f.ada, f.grace.ID); err != nil {
		t.Errorf("Block(a repeat at the cap) = %v", err)
	}
	if err := f.svc.Unblock(ctx, f.ada, f.eve.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Block(ctx, f.ada, cy.ID); err != nil {
		t.Errorf("Block(after an unblock) = %v", err)
	}
}

// TestDirectPresenceEnds checks that once two users stop being friends, or
// one blocks the other, neither learns any more when the other has their
// direct conversation open, as neither learns when the other is online:
// the conversation stays readable, its presence does not.
func TestDirectPresenceEnds(t *testing.T) {
	for _, end := range []string{"unfriend", "block"} {
		t.Run(end, func(t *testing.T) {
			f := newFriendsFixture(t)
			ctx := context.Background()
			if _, err := f.svc.RequestFriend(ctx, f.ada, f.grace.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.AcceptFriend(ctx, f.grace, f.ada.ID); err != nil {
				t.Fatal(err)
			}
			_, c, err := f.svc.SendDirect(ctx, f.ada, f.grace.ID, "c-1", "hi")
			if err != nil {
				t.Fatalf("SendDirect: %v", err)
			}
			// Grace has the conversation open, and hears what it carries.
			if _, _, _, err := f.svc.OpenConversation(ctx, f.grace, c.ID); err != nil {
				t.Fatalf("OpenConversation(Grace): %v", err)
			}
			conv := f.record(t, chat.ConvTopic(c.ID))
			if end == "block" {
				err = f.svc.Block(ctx, f.ada, f.grace.ID)
			} else {
				err = f.svc.RemoveContact(ctx, f.ada, f.grace.ID)
			}
			if err != nil {
				t.Fatalf("%s: %v", end, err)
			}

			_, online, n, err := f.svc.OpenConversation(ctx, f.ada, c.ID)
			if err != nil {
				t.Fatalf("OpenConversation(Ada): %v", err)
			}
			if len(online) != 1 || online[0].ID != f.ada.ID || n != 1 {
				t.Errorf("OpenConversation(Ada) online = %v, %d; want Ada alone, 1", online, n)
			}
			online, n, err = f.svc.OnlineFor(ctx, f.grace, c.ID)
			if err != nil {
				t.Fatalf("OnlineFor(Grace): %v", err)
			}
			if len(online) != 1 || online[0].ID != f.grace.ID || n != 1 {
				t.Errorf("OnlineFor(Grace) = %v, %d; want Grace alone, 1", online, n)
			}
			// Grace, whose open came before, opens it again (a tab shown
			// again): she sees herself alone there too.
			online, n = f.svc.OnlineOrAlone(ctx, f.grace, c.ID)
			if len(online) != 1 || online[0].ID != f.grace.ID || n != 1 {
				t.Errorf("OnlineOrAlone(Grace) = %v, %d; want Grace alone, 1", online, n)
			}
			if err := f.svc.CloseRoom(ctx, f.ada, c.ID); err != nil {
				t.Fatalf("CloseRoom(Ada): %v", err)
			}
			for _, ev := range conv.take() {
				if ev.Type == chat.EventPresence || ev.Type == chat.EventOnlineCount {
					t.Errorf("after the %s, the conversation carries %+v", end, ev)
				}
			}
		})
	}
}

// TestDirectReceiptsEnd checks that a blocked user learns nothing of the
// blocker's reading of their direct conversation: not the position in
// the opened reply's reads, nor its moves as receipts.
func TestDirectReceiptsEnd(t *testing.T) {
	f := newFriendsFixture(t)
	ctx := context.Background()
	befriend := func() {
		t.Helper()
		if _, err := f.svc.RequestFriend(ctx, f.grace, f.ada.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.AcceptFriend(ctx, f.ada, f.grace.ID); err != nil {
			t.Fatal(err)
		}
	}
	befriend()
	_, c, err := f.svc.SendDirect(ctx, f.ada, f.grace.ID, "a-1", "hi")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"g-1", "g-2"} {
		if _, _, err := f.svc.SendDirect(ctx, f.grace, f.ada.ID, id, "hello"); err != nil {
			t.Fatal(err)
		}
	}
	conv := f.record(t, chat.ConvTopic(c.ID))
	if err := f.svc.Block(ctx, f.ada, f.grace.ID); err != nil {
		t.Fatal(err)
	}
	ps, err := f.svc.ReadPositions(ctx, f.grace, c.ID)
	if err != nil || len(ps) != 0 {
		t.Errorf("ReadPositions(Grace, after the block) = %v, %v; want none", ps, err)
	}
	if st, err := f.svc.MarkRead(ctx, f.ada, c.ID, 2); err != nil || st.ReadSeq != 2 {
		t.Fatalf("MarkRead(Ada) = %+v, %v; want read to 2", st, err)
	}

	// Friends again, a move of Grace's goes out: Ada's move while blocked
	// must not have gone out before it, nor with it.
	if err := f.svc.Unblock(ctx, f.ada, f.grace.ID); err != nil {
		t.Fatal(err)
	}
	befriend()
	m, _, err := f.svc.SendDirect(ctx, f.ada, f.grace.ID, "a-2", "back")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.MarkRead(ctx, f.grace, c.ID, m.Seq); err != nil {
		t.Fatal(err)
	}
	var got []chat.ReadPosition
	for range 100 { // at most 5 s
		for _, ev := range conv.take() {
			switch ev.Type {
			case chat.EventReceipt:
				got = append(got, chat.ReadPosition{UserID: ev.UserID, Seq: ev.Seq})
			case chat.EventReceipts:
				got = append(got, ev.Positions...)
			}
		}
		if slices.ContainsFunc(got, func(p chat.ReadPosition) bool { return p.UserID == f.grace.ID }) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := []chat.ReadPosition{{UserID: f.grace.ID, Seq: m.Seq}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("receipts mismatch (-want +got):\n%s", diff)
	}
}

// TestEmailLookupRate: a search by a whole email address tells whether
// the address has an account, which the sign-in never does; a user's
// lookups by address are limited (Config.EmailLookupsPerHour), their
// searches by name are not.
func TestEmailLookupRate(t *testing.T) {
	f := newFixture(t, chat.Config{EmailLookupsPerHour: 3})
	ctx := context.Background()
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	for i := range 3 {
		q := fmt.Sprintf("nobody%d@example.com", i)
		if us, err := f.svc.SearchUsers(ctx, ada, q); err != nil || len(us) != 0 {
			t.Fatalf("SearchUsers(%q) = %v, %v; want no one", q, us, err)
		}
	}
	_, err := f.svc.SearchUsers(ctx, ada, "grace@example.com")
	wantError(t, "SearchUsers(an address, over the rate)", err, chat.ErrRateLimited, chat.CodeRateLimited, "q")
	if us, err := f.svc.SearchUsers(ctx, ada, "Gra"); err != nil || len(us) != 1 || us[0].ID != grace.ID {
		t.Errorf("SearchUsers(a name, over the address rate) = %v, %v; want Grace", us, err)
	}
	if us, err := f.svc.SearchUsers(ctx, grace, "ada@example.com"); err != nil || len(us) != 1 || us[0].ID != ada.ID {
		t.Errorf("SearchUsers(Grace, by address) = %v, %v; want Ada: the limit is Ada's", us, err)
	}
	f.clock.Advance(time.Hour)
	if us, err := f.svc.SearchUsers(ctx, ada, "grace@example.com"); err != nil || len(us) != 1 {
		t.Errorf("SearchUsers(an address, an hour later) = %v, %v; want Grace", us, err)
	}
}

// searchesFail is a Store whose SearchUsers fails while fail is set, as a
// database that is briefly unreachable.
type searchesFail struct {
	chat.Store
	fail *atomic.Bool
}

func (s searchesFail) SearchUsers(ctx context.Context, q chat.UserSearch) ([]chat.User, error) {
	if s.fail.Load() {
		return nil, errors.New("database unreachable")
	}
	return s.Store.SearchUsers(ctx, q)
}

// TestEmailLookupFailedNotCounted: a search by address that the store
// fails told nothing of the address, and does not count against
// Config.EmailLookupsPerHour, as a friend request the store fails does
// not count against its limit.
func TestEmailLookupFailedNotCounted(t *testing.T) {
	ctx := context.Background()
	db := sqliteStore(t)
	var fail atomic.Bool
	f := newFixtureOn(t, chat.Config{EmailLookupsPerHour: 2}, inmem.NewPresence(), searchesFail{db, &fail})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	fail.Store(true)
	for i := range 3 {
		if _, err := f.svc.SearchUsers(ctx, ada, "grace@example.com"); err == nil || errors.Is(err, chat.ErrRateLimited) {
			t.Fatalf("SearchUsers %d with the database down = %v; want the store's error", i+1, err)
		}
	}
	fail.Store(false)
	for i := range 2 {
		if us, err := f.svc.SearchUsers(ctx, ada, "grace@example.com"); err != nil || len(us) != 1 || us[0].ID != grace.ID {
			t.Errorf("SearchUsers %d once the database is back = %v, %v; want Grace", i+1, us, err)
		}
	}
}

// TestDirectReceiptWaitingAtBlock: a move made while the two were friends
// that still waits to go out (Config.ReceiptDelay, Config.ReceiptEvery)
// when one blocks the other, or unfriends them, does not go out: from then
// on neither gets the other's position (docs/protocol.md, receipt). Eve,
// who stays Ada's friend, gets hers, whose wait ends the same way.
func TestDirectReceiptWaitingAtBlock(t *testing.T) {
	f := newFixture(t, chat.Config{ReceiptDelay: time.Hour, ReceiptEvery: time.Hour})
	ctx := context.Background()
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	eve, _ := f.signIn(t, "eve@example.com", "Eve")
	cy, _ := f.signIn(t, "cy@example.com", "Cy")
	for _, u := range []chat.User{grace, eve, cy} {
		if _, err := f.svc.RequestFriend(ctx, u, ada.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.AcceptFriend(ctx, ada, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	receipts := func(r *recorder) []chat.ReadPosition {
		var got []chat.ReadPosition
		for _, ev := range r.take() {
			switch ev.Type {
			case chat.EventReceipt:
				got = append(got, chat.ReadPosition{UserID: ev.UserID, Seq: ev.Seq})
			case chat.EventReceipts:
				got = append(got, ev.Positions...)
			}
		}
		return got
	}
	for _, tc := range []struct {
		peer  chat.User
		end   func() error // ends the friendship meanwhile, if not nil
		wants bool
	}{
		{peer: eve, wants: true},
		{peer: grace, end: func() error { return f.svc.Block(ctx, ada, grace.ID) }},
		{peer: cy, end: func() error { return f.svc.RemoveContact(ctx, cy, ada.ID) }},
	} {
		m, c, err := f.svc.SendDirect(ctx, tc.peer, ada.ID, "p-1", "hello")
		if err != nil {
			t.Fatal(err)
		}
		conv := f.record(t, chat.ConvTopic(c.ID))
		if st, err := f.svc.MarkRead(ctx, ada, c.ID, m.Seq); err != nil || st.ReadSeq != m.Seq {
			t.Fatalf("MarkRead(Ada, with %s) = %+v, %v; want read to %d", tc.peer.Name, st, err, m.Seq)
		}
		if tc.end != nil {
			if err := tc.end(); err != nil {
				t.Fatal(err)
			}
		}
		f.svc.FlushReceipts(c.ID)
		var want []chat.ReadPosition
		if tc.wants {
			want = []chat.ReadPosition{{UserID: ada.ID, Seq: m.Seq}}
		}
		if diff := cmp.Diff(want, receipts(conv), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("receipts to the conversation with %s mismatch (-want +got):\n%s", tc.peer.Name, diff)
		}
	}
}
