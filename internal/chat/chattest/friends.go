package chattest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/parley-chat/parley/internal/chat"
)

// pub is u as FriendStore returns it: without email.
func pub(u chat.User) chat.User { u.Email = ""; return u }

func wantContacts(t *testing.T, s chat.Store, me int64, want []chat.Contact) {
	t.Helper()
	got, err := s.Contacts(t.Context(), me)
	if err != nil {
		t.Fatalf("Contacts(%d): %v", me, err)
	}
	if want == nil {
		want = []chat.Contact{}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Contacts(%d) mismatch (-want +got):\n%s", me, diff)
	}
}

func wantFriends(t *testing.T, s chat.Store, a, b int64, want bool) {
	t.Helper()
	for _, p := range [][2]int64{{a, b}, {b, a}} {
		got, err := s.AreFriends(t.Context(), p[0], p[1])
		if err != nil || got != want {
			t.Errorf("AreFriends(%d, %d) = %v, %v; want %v", p[0], p[1], got, err, want)
		}
	}
}

func wantBlocked(t *testing.T, s chat.Store, a, b int64, want bool) {
	t.Helper()
	for _, p := range [][2]int64{{a, b}, {b, a}} {
		got, err := s.IsBlocked(t.Context(), p[0], p[1])
		if err != nil || got != want {
			t.Errorf("IsBlocked(%d, %d) = %v, %v; want %v", p[0], p[1], got, err, want)
		}
	}
}

func mustRequest(t *testing.T, s chat.Store, from, to int64, at time.Time, wantState string, wantChanged bool) chat.Contact {
	t.Helper()
	c, changed, err := s.RequestFriend(t.Context(), from, to, at, chat.FriendLimits{})
	if err != nil || c.State != wantState || changed != wantChanged {
		t.Fatalf("RequestFriend(%d, %d) = %+v, %v, %v; want state %s, changed %v", from, to, c, changed, err, wantState, wantChanged)
	}
	return c
}

func testFriendRequests(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ann := mustUser(t, s, "ann@example.com", "Ann")
	bob := mustUser(t, s, "bob@example.com", "Bob")
	t1 := t0.Add(time.Minute)

	wantContacts(t, s, ann.ID, nil)
	c := mustRequest(t, s, ann.ID, bob.ID, t0, chat.StateRequestSent, true)
	if diff := cmp.Diff(chat.Contact{User: pub(bob), State: chat.StateRequestSent, Since: t0}, c); diff != "" {
		t.Errorf("RequestFriend mismatch (-want +got):\n%s", diff)
	}
	// Asking again changes nothing, not even the time.
	mustRequest(t, s, ann.ID, bob.ID, t1, chat.StateRequestSent, false)
	wantContacts(t, s, ann.ID, []chat.Contact{{User: pub(bob), State: chat.StateRequestSent, Since: t0}})
	wantContacts(t, s, bob.ID, []chat.Contact{{User: pub(ann), State: chat.StateRequestReceived, Since: t0}})
	wantFriends(t, s, ann.ID, bob.ID, false)

	// The asker cannot accept their own request.
	_, err := s.AcceptFriend(ctx, ann.ID, bob.ID, t1, 0)
	wantNotFound(t, "AcceptFriend(by the asker)", err)

	c, err = s.AcceptFriend(ctx, bob.ID, ann.ID, t1, 0)
	if err != nil {
		t.Fatalf("AcceptFriend: %v", err)
	}
	if diff := cmp.Diff(chat.Contact{User: pub(ann), State: chat.StateFriends, Since: t1}, c); diff != "" {
		t.Errorf("AcceptFriend mismatch (-want +got):\n%s", diff)
	}
	wantFriends(t, s, ann.ID, bob.ID, true)
	wantContacts(t, s, ann.ID, []chat.Contact{{User: pub(bob), State: chat.StateFriends, Since: t1}})
	wantContacts(t, s, bob.ID, []chat.Contact{{User: pub(ann), State: chat.StateFriends, Since: t1}})

	// A request between friends changes nothing and says so.
	mustRequest(t, s, bob.ID, ann.ID, t1.Add(time.Minute), chat.StateFriends, false)
	_, err = s.AcceptFriend(ctx, bob.ID, ann.ID, t1, 0)
	wantNotFound(t, "AcceptFriend(friends)", err)

	_, _, err = s.RequestFriend(ctx, ann.ID, missing, t0, chat.FriendLimits{})
	wantNotFound(t, "RequestFriend(missing)", err)
	_, err = s.AcceptFriend(ctx, ann.ID, missing, t0, 0)
	wantNotFound(t, "AcceptFriend(missing)", err)
	if _, _, err := s.RequestFriend(ctx, ann.ID, ann.ID, t0, chat.FriendLimits{}); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("RequestFriend(self) = %v; want chat.ErrInvalid", err)
	}
}

func testFriendRequestMutual(t *testing.T, s chat.Store) {
	ann := mustUser(t, s, "ann@example.com", "Ann")
	bob := mustUser(t, s, "bob@example.com", "Bob")
	mustRequest(t, s, ann.ID, bob.ID, t0, chat.StateRequestSent, true)
	t1 := t0.Add(time.Hour)
	c := mustRequest(t, s, bob.ID, ann.ID, t1, chat.StateFriends, true)
	if diff := cmp.Diff(chat.Contact{User: pub(ann), State: chat.StateFriends, Since: t1}, c); diff != "" {
		t.Errorf("RequestFriend(mutual) mismatch (-want +got):\n%s", diff)
	}
	wantFriends(t, s, ann.ID, bob.ID, true)
	wantContacts(t, s, ann.ID, []chat.Contact{{User: pub(bob), State: chat.StateFriends, Since: t1}})
}

// testFriendsCap: an acceptance, or a request that accepts, that would
// give either user more than maxFriends friends is refused with
// chat.ErrTooManyFriends, and changes nothing.
func testFriendsCap(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ann := mustUser(t, s, "ann@example.com", "Ann")
	bob := mustUser(t, s, "bob@example.com", "Bob")
	cy := mustUser(t, s, "cy@example.com", "Cy")
	dee := mustUser(t, s, "dee@example.com", "Dee")
	mustRequest(t, s, ann.ID, bob.ID, t0, chat.StateRequestSent, true)
	if _, err := s.AcceptFriend(ctx, bob.ID, ann.ID, t0, 1); err != nil {
		t.Fatalf("AcceptFriend(first friend): %v", err)
	}
	mustRequest(t, s, cy.ID, ann.ID, t0, chat.StateRequestSent, true)
	mustRequest(t, s, dee.ID, ann.ID, t0, chat.StateRequestSent, true)
	mustRequest(t, s, bob.ID, cy.ID, t0, chat.StateRequestSent, true)
	if _, err := s.AcceptFriend(ctx, ann.ID, cy.ID, t0, 1); !errors.Is(err, chat.ErrTooManyFriends) {
		t.Errorf("AcceptFriend(the accepter full) = %v; want chat.ErrTooManyFriends", err)
	}
	if _, _, err := s.RequestFriend(ctx, ann.ID, dee.ID, t0, chat.FriendLimits{MaxFriends: 1}); !errors.Is(err, chat.ErrTooManyFriends) {
		t.Errorf("RequestFriend(asking back, the asker full) = %v; want chat.ErrTooManyFriends", err)
	}
	if _, _, err := s.RequestFriend(ctx, dee.ID, ann.ID, t0, chat.FriendLimits{MaxFriends: 1}); err != nil {
		t.Errorf("RequestFriend(a repeat to one full) = %v; want nil", err)
	}
	if _, err := s.AcceptFriend(ctx, cy.ID, bob.ID, t0, 1); !errors.Is(err, chat.ErrTooManyFriends) {
		t.Errorf("AcceptFriend(the asker full) = %v; want chat.ErrTooManyFriends", err)
	}
	wantFriends(t, s, cy.ID, bob.ID, false)
	wantContacts(t, s, ann.ID, []chat.Contact{
		{User: pub(bob), State: chat.StateFriends, Since: t0},
		{User: pub(cy), State: chat.StateRequestReceived, Since: t0},
		{User: pub(dee), State: chat.StateRequestReceived, Since: t0},
	})
	// No limit: made.
	if _, err := s.AcceptFriend(ctx, ann.ID, cy.ID, t0, 0); err != nil {
		t.Errorf("AcceptFriend(no limit) = %v", err)
	}
	if _, err := s.AcceptFriend(ctx, ann.ID, dee.ID, t0, 3); err != nil {
		t.Errorf("AcceptFriend(under the limit) = %v", err)
	}
}

// testFriendsCapAtOnce: acceptances made at once, of requests to one user
// and by their askers, give no user more than maxFriends friends.
func testFriendsCapAtOnce(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ann := mustUser(t, s, "ann@example.com", "Ann")
	const n = 8
	var others []chat.User
	for i := range n {
		u := mustUser(t, s, fmt.Sprintf("u%d@example.com", i), fmt.Sprintf("U%d", i))
		if i%2 == 0 {
			mustRequest(t, s, u.ID, ann.ID, t0, chat.StateRequestSent, true)
		} else {
			mustRequest(t, s, ann.ID, u.ID, t0, chat.StateRequestSent, true)
		}
		others = append(others, u)
	}
	errs := make(chan error, n)
	for i, u := range others {
		go func() {
			var err error
			if i%2 == 0 {
				_, err = s.AcceptFriend(ctx, ann.ID, u.ID, t0, 2)
			} else {
				_, err = s.AcceptFriend(ctx, u.ID, ann.ID, t0, 2)
			}
			errs <- err
		}()
	}
	made := madeAtOnce(t, errs, n, chat.ErrTooManyFriends, "AcceptFriend(at once)")
	friends := 0
	cs, err := s.Contacts(ctx, ann.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.State == chat.StateFriends {
			friends++
		}
	}
	if made != 2 || friends != 2 {
		t.Errorf("%d acceptances at once with a limit of 2: %d made, Ann has %d friends; want 2 and 2", n, made, friends)
	}
}

// testFriendRequestLimits: a new request from a user with lim.MaxPending
// requests unanswered, or lim.MaxFriends friends, is refused and changes
// nothing, also when requests are made at once; a repeat is no new one.
func testFriendRequestLimits(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ann := mustUser(t, s, "ann@example.com", "Ann")
	bob := mustUser(t, s, "bob@example.com", "Bob")
	cy := mustUser(t, s, "cy@example.com", "Cy")
	one := chat.FriendLimits{MaxPending: 1, MaxFriends: 1}
	if _, _, err := s.RequestFriend(ctx, ann.ID, bob.ID, t0, one); err != nil {
		t.Fatalf("RequestFriend(first) = %v", err)
	}
	if _, _, err := s.RequestFriend(ctx, ann.ID, cy.ID, t0, one); !errors.Is(err, chat.ErrTooManyRequests) {
		t.Errorf("RequestFriend(past the pending limit) = %v; want chat.ErrTooManyRequests", err)
	}
	if _, changed, err := s.RequestFriend(ctx, ann.ID, bob.ID, t0, one); err != nil || changed {
		t.Errorf("RequestFriend(a repeat) = %v, %v; want unchanged", changed, err)
	}
	if _, err := s.AcceptFriend(ctx, bob.ID, ann.ID, t0, 1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RequestFriend(ctx, ann.ID, cy.ID, t0, one); !errors.Is(err, chat.ErrTooManyFriends) {
		t.Errorf("RequestFriend(from one with as many friends) = %v; want chat.ErrTooManyFriends", err)
	}
	wantContacts(t, s, cy.ID, nil)

	// At once.
	dee := mustUser(t, s, "dee@example.com", "Dee")
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		u := mustUser(t, s, fmt.Sprintf("v%d@example.com", i), fmt.Sprintf("V%d", i))
		go func() {
			_, _, err := s.RequestFriend(ctx, dee.ID, u.ID, t0, chat.FriendLimits{MaxPending: 2})
			errs <- err
		}()
	}
	made := madeAtOnce(t, errs, n, chat.ErrTooManyRequests, "RequestFriend(at once)")
	cs, err := s.Contacts(ctx, dee.ID)
	if err != nil {
		t.Fatal(err)
	}
	if made != 2 || len(cs) != 2 {
		t.Errorf("%d requests at once with a limit of 2: %d made, Dee has %d pending; want 2 and 2", n, made, len(cs))
	}
}

func testRemoveContact(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ann := mustUser(t, s, "ann@example.com", "Ann")
	bob := mustUser(t, s, "bob@example.com", "Bob")
	cat := mustUser(t, s, "cat@example.com", "Cat")

	remove := func(a, b int64, want string) {
		t.Helper()
		prev, err := s.RemoveContact(ctx, a, b)
		if err != nil || prev != want {
			t.Errorf("RemoveContact(%d, %d) = %q, %v; want %q", a, b, prev, err, want)
		}
	}
	// Decline (by the receiver) and cancel (by the asker).
	mustRequest(t, s, ann.ID, bob.ID, t0, chat.StateRequestSent, true)
	remove(bob.ID, ann.ID, chat.StateRequestReceived)
	wantContacts(t, s, ann.ID, nil)
	wantContacts(t, s, bob.ID, nil)
	mustRequest(t, s, ann.ID, bob.ID, t0, chat.StateRequestSent, true)
	remove(ann.ID, bob.ID, chat.StateRequestSent)
	wantContacts(t, s, bob.ID, nil)

	// Unfriend leaves other friendships alone.
	mustRequest(t, s, ann.ID, bob.ID, t0, chat.StateRequestSent, true)
	mustRequest(t, s, bob.ID, ann.ID, t0, chat.StateFriends, true)
	mustRequest(t, s, ann.ID, cat.ID, t0, chat.StateRequestSent, true)
	remove(bob.ID, ann.ID, chat.StateFriends)
	wantFriends(t, s, ann.ID, bob.ID, false)
	wantContacts(t, s, ann.ID, []chat.Contact{{User: pub(cat), State: chat.StateRequestSent, Since: t0}})
	remove(bob.ID, ann.ID, "")
	remove(ann.ID, missing, "")
}

func testContactsOrder(t *testing.T, s chat.Store) {
	me := mustUser(t, s, "me@example.com", "Me")
	var want []chat.Contact
	for i, name := range []string{"alice", "Bob", "Émile", "zed"} {
		u := mustUser(t, s, fmt.Sprintf("u%d@example.com", i), name)
		mustRequest(t, s, me.ID, u.ID, t0, chat.StateRequestSent, true)
		want = append(want, chat.Contact{User: pub(u), State: chat.StateRequestSent, Since: t0})
	}
	// "Émile" folds to "émile", which sorts after "zed" byte-wise.
	want[2], want[3] = want[3], want[2]
	wantContacts(t, s, me.ID, want)
}

func testBlock(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ann := mustUser(t, s, "ann@example.com", "Ann")
	bob := mustUser(t, s, "bob@example.com", "Bob")
	cat := mustUser(t, s, "cat@example.com", "Cat")

	mustRequest(t, s, ann.ID, bob.ID, t0, chat.StateRequestSent, true)
	mustRequest(t, s, bob.ID, ann.ID, t0, chat.StateFriends, true)
	mustRequest(t, s, cat.ID, ann.ID, t0, chat.StateRequestSent, true)
	wantBlocked(t, s, ann.ID, bob.ID, false)

	prev, err := s.Block(ctx, ann.ID, bob.ID, t0, 0)
	if err != nil || prev != chat.StateFriends {
		t.Fatalf("Block(friend) = %q, %v; want %q", prev, err, chat.StateFriends)
	}
	wantBlocked(t, s, ann.ID, bob.ID, true)
	wantFriends(t, s, ann.ID, bob.ID, false)
	wantContacts(t, s, bob.ID, nil)
	wantContacts(t, s, ann.ID, []chat.Contact{{User: pub(cat), State: chat.StateRequestReceived, Since: t0}})

	// Neither side may ask the other now.
	for _, p := range [][2]int64{{ann.ID, bob.ID}, {bob.ID, ann.ID}} {
		if _, _, err := s.RequestFriend(ctx, p[0], p[1], t0, chat.FriendLimits{}); !errors.Is(err, chat.ErrForbidden) {
			t.Errorf("RequestFriend(%d, %d) while blocked = %v; want chat.ErrForbidden", p[0], p[1], err)
		}
	}
	wantContacts(t, s, bob.ID, nil)

	// Blocking twice is no error, and says so; a pending request ends too.
	if prev, err := s.Block(ctx, ann.ID, bob.ID, t0, 0); err != nil || prev != chat.StateBlocked {
		t.Errorf("Block(again) = %q, %v; want %q, nil", prev, err, chat.StateBlocked)
	}
	if prev, err := s.Block(ctx, ann.ID, cat.ID, t0, 0); err != nil || prev != chat.StateRequestReceived {
		t.Errorf("Block(asker) = %q, %v; want %q", prev, err, chat.StateRequestReceived)
	}
	wantContacts(t, s, ann.ID, nil)
	wantContacts(t, s, cat.ID, nil)

	got, err := s.Blocked(ctx, ann.ID)
	if err != nil {
		t.Fatalf("Blocked: %v", err)
	}
	if diff := cmp.Diff([]chat.User{pub(bob), pub(cat)}, got); diff != "" {
		t.Errorf("Blocked mismatch (-want +got):\n%s", diff)
	}
	if got, err := s.Blocked(ctx, bob.ID); err != nil || len(got) != 0 || got == nil {
		t.Errorf("Blocked(the blocked) = %#v, %v; want empty", got, err)
	}

	_, err = s.Block(ctx, ann.ID, missing, t0, 0)
	wantNotFound(t, "Block(missing)", err)
	if _, err := s.Block(ctx, ann.ID, ann.ID, t0, 0); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("Block(self) = %v; want chat.ErrInvalid", err)
	}

	// Only the blocker can unblock.
	if ok, err := s.Unblock(ctx, bob.ID, ann.ID); err != nil || ok {
		t.Errorf("Unblock(by the blocked) = %v, %v; want false", ok, err)
	}
	if ok, err := s.Unblock(ctx, ann.ID, bob.ID); err != nil || !ok {
		t.Errorf("Unblock = %v, %v; want true", ok, err)
	}
	if ok, err := s.Unblock(ctx, ann.ID, bob.ID); err != nil || ok {
		t.Errorf("Unblock(again) = %v, %v; want false", ok, err)
	}
	wantBlocked(t, s, ann.ID, bob.ID, false)
	// Unblocking restores nothing, but requests work again.
	wantFriends(t, s, ann.ID, bob.ID, false)
	mustRequest(t, s, bob.ID, ann.ID, t0, chat.StateRequestSent, true)
}

// testBlocksCap: a new block by a user who has blocked maxBlocks users is
// refused with chat.ErrTooManyBlocks and changes nothing, also when blocks
// are made at once; a repeat is no new one, and an unblock makes room.
func testBlocksCap(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ann := mustUser(t, s, "ann@example.com", "Ann")
	bob := mustUser(t, s, "bob@example.com", "Bob")
	cat := mustUser(t, s, "cat@example.com", "Cat")
	dee := mustUser(t, s, "dee@example.com", "Dee")
	for _, u := range []chat.User{bob, cat} {
		if _, err := s.Block(ctx, ann.ID, u.ID, t0, 2); err != nil {
			t.Fatalf("Block(within the cap) = %v", err)
		}
	}
	mustRequest(t, s, ann.ID, dee.ID, t0, chat.StateRequestSent, true)
	if _, err := s.Block(ctx, ann.ID, dee.ID, t0, 2); !errors.Is(err, chat.ErrTooManyBlocks) {
		t.Errorf("Block(past the cap) = %v; want chat.ErrTooManyBlocks", err)
	}
	wantBlocked(t, s, ann.ID, dee.ID, false)
	wantContacts(t, s, dee.ID, []chat.Contact{{User: pub(ann), State: chat.StateRequestReceived, Since: t0}})
	if prev, err := s.Block(ctx, ann.ID, bob.ID, t0, 2); err != nil || prev != chat.StateBlocked {
		t.Errorf("Block(a repeat at the cap) = %q, %v; want %q, nil", prev, err, chat.StateBlocked)
	}
	if _, err := s.Block(ctx, ann.ID, dee.ID, t0, 0); err != nil {
		t.Errorf("Block(no cap) = %v", err)
	}
	for _, u := range []chat.User{bob, cat} {
		if ok, err := s.Unblock(ctx, ann.ID, u.ID); err != nil || !ok {
			t.Fatalf("Unblock = %v, %v", ok, err)
		}
	}
	if _, err := s.Block(ctx, ann.ID, bob.ID, t0, 2); err != nil {
		t.Errorf("Block(after an unblock) = %v", err)
	}

	// At once.
	eve := mustUser(t, s, "eve@example.com", "Eve")
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		u := mustUser(t, s, fmt.Sprintf("w%d@example.com", i), fmt.Sprintf("W%d", i))
		go func() {
			_, err := s.Block(ctx, eve.ID, u.ID, t0, 2)
			errs <- err
		}()
	}
	made := madeAtOnce(t, errs, n, chat.ErrTooManyBlocks, "Block(at once)")
	got, err := s.Blocked(ctx, eve.ID)
	if err != nil {
		t.Fatal(err)
	}
	if made != 2 || len(got) != 2 {
		t.Errorf("%d blocks at once with a cap of 2: %d made, Eve has %d blocked; want 2 and 2", n, made, len(got))
	}
}

func testSearchUsers(t *testing.T, s chat.Store) {
	ctx := t.Context()
	me := mustUser(t, s, "me@example.com", "Grace Me")
	grace := mustUser(t, s, "grace@example.com", "Grace Hopper")
	gr := mustUser(t, s, "gr@example.com", "grant")
	eve := mustUser(t, s, "eve@example.com", "Éve")
	ada := mustUser(t, s, "ada@example.com", "Ada")
	blocker := mustUser(t, s, "blocker@example.com", "Gremlin")
	blocked := mustUser(t, s, "blocked@example.com", "Grouch")
	noName := mustUser(t, s, "noname@example.com", "")
	if _, err := s.Block(ctx, blocker.ID, me.ID, t0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Block(ctx, me.ID, blocked.ID, t0, 0); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		q    chat.UserSearch
		want []chat.User
	}{
		{"prefix ignores case", chat.UserSearch{NamePrefix: "gR"}, []chat.User{grace, gr}},
		{"prefix with space", chat.UserSearch{NamePrefix: "grace h"}, []chat.User{grace}},
		{"unicode case", chat.UserSearch{NamePrefix: "éV"}, []chat.User{eve}},
		{"email", chat.UserSearch{Email: "ada@example.com", NamePrefix: "ada@example.com"}, []chat.User{ada}},
		{"email first", chat.UserSearch{Email: "gr@example.com", NamePrefix: "gr"}, []chat.User{gr, grace}},
		{"email of a user without name", chat.UserSearch{Email: "noname@example.com"}, []chat.User{noName}},
		{"partial email", chat.UserSearch{NamePrefix: "ada@"}, nil},
		{"email domain", chat.UserSearch{NamePrefix: "example.com"}, nil},
		{"no self", chat.UserSearch{Email: "me@example.com"}, nil},
		{"blocker left out", chat.UserSearch{Email: "blocker@example.com", NamePrefix: "Grem"}, nil},
		{"blocked left out", chat.UserSearch{Email: "blocked@example.com", NamePrefix: "Grou"}, nil},
		{"limit", chat.UserSearch{NamePrefix: "g", Limit: 1}, []chat.User{grace}},
		{"empty", chat.UserSearch{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.q.Viewer = me.ID
			got, err := s.SearchUsers(ctx, tt.q)
			if err != nil {
				t.Fatalf("SearchUsers(%+v): %v", tt.q, err)
			}
			want := []chat.User{}
			for _, u := range tt.want {
				want = append(want, pub(u))
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("SearchUsers(%+v) mismatch (-want +got):\n%s", tt.q, diff)
			}
		})
	}
	// Others still find the blocker and the blocked.
	got, err := s.SearchUsers(ctx, chat.UserSearch{NamePrefix: "gr", Viewer: ada.ID})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]chat.User{pub(grace), pub(me), pub(gr), pub(blocker), pub(blocked)}, got); diff != "" {
		t.Errorf("SearchUsers(by a third user) mismatch (-want +got):\n%s", diff)
	}
}

func testSearchUsersDefaultLimit(t *testing.T, s chat.Store) {
	me := mustUser(t, s, "me@example.com", "Me")
	for i := range 25 {
		mustUser(t, s, fmt.Sprintf("u%02d@example.com", i), fmt.Sprintf("user %02d", i))
	}
	got, err := s.SearchUsers(t.Context(), chat.UserSearch{NamePrefix: "user", Viewer: me.ID})
	if err != nil || len(got) != 20 {
		t.Errorf("SearchUsers(no limit) = %d users, %v; want 20", len(got), err)
	}
}

// testAcquaintances: whose lists show a user's name: every contact, the
// peers of the limit most recently active direct conversations (an
// ex-friend's among them) and the limit users who blocked the user last,
// each once; not a user the user blocked, nor an older direct peer.
func testAcquaintances(t *testing.T, s chat.Store) {
	ctx := t.Context()
	u := func(name string) int64 { return mustUser(t, s, name+"@example.com", name).ID }
	me, fr, ex, old, req, snt, mine := u("me"), u("fr"), u("ex"), u("old"), u("req"), u("snt"), u("mine")
	b1, b2, b3 := u("b1"), u("b2"), u("b3")

	mustRequest(t, s, me, fr, t0, chat.StateRequestSent, true)
	mustRequest(t, s, fr, me, t0, chat.StateFriends, true)
	mustRequest(t, s, req, me, t0, chat.StateRequestSent, true)
	mustRequest(t, s, me, snt, t0, chat.StateRequestSent, true)
	for i, peer := range []int64{old, fr, ex} { // ex most recently active
		if _, _, err := s.EnsureDirect(ctx, me, peer, t0.Add(time.Duration(i)*time.Hour)); err != nil {
			t.Fatalf("EnsureDirect(%d, %d): %v", me, peer, err)
		}
	}
	for i, blocker := range []int64{b1, b2, b3} { // b3 last
		if _, err := s.Block(ctx, blocker, me, t0.Add(time.Duration(i)*time.Hour), 0); err != nil {
			t.Fatalf("Block(%d, %d): %v", blocker, me, err)
		}
	}
	if _, err := s.Block(ctx, me, mine, t0, 0); err != nil {
		t.Fatalf("Block(%d, %d): %v", me, mine, err)
	}

	got, err := s.Acquaintances(ctx, me, 2)
	if err != nil {
		t.Fatalf("Acquaintances: %v", err)
	}
	slices.Sort(got)
	want := []int64{fr, ex, req, snt, b2, b3}
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Acquaintances(me, 2) mismatch (-want +got):\n%s", diff)
	}
	// The other side: me's direct chat and block list name them; b1's
	// block is news to no one.
	for _, c := range []struct {
		id   int64
		want []int64
	}{{mine, []int64{me}}, {b1, nil}, {old, []int64{me}}} {
		got, err := s.Acquaintances(ctx, c.id, 2)
		if err != nil || !slices.Equal(got, c.want) && len(got)+len(c.want) > 0 {
			t.Errorf("Acquaintances(%d, 2) = %v, %v; want %v", c.id, got, err, c.want)
		}
	}
}

// madeAtOnce reads the n errors of changes made at once from errs and
// returns how many were made: each is nil or refused, what names them.
func madeAtOnce(t *testing.T, errs <-chan error, n int, refused error, what string) int {
	t.Helper()
	made := 0
	for range n {
		switch err := <-errs; {
		case err == nil:
			made++
		case !errors.Is(err, refused):
			t.Errorf("%s = %v; want nil or %v", what, err, refused)
		}
	}
	return made
}
