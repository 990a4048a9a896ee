package chat_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// befriend makes a and b friends.
func (f *fixture) befriend(tb testing.TB, a, b chat.User) {
	tb.Helper()
	ctx := context.Background()
	if _, err := f.svc.RequestFriend(ctx, a, b.ID); err != nil {
		tb.Fatalf("RequestFriend(%s → %s): %v", a.Name, b.Name, err)
	}
	if _, err := f.svc.AcceptFriend(ctx, b, a.ID); err != nil {
		tb.Fatalf("AcceptFriend(%s ← %s): %v", b.Name, a.Name, err)
	}
}

// addState is what an add writes: the group's sequence and the added
// user's event log.
type addState struct {
	lastSeq, members int
	userEvent        int64
}

func (f *fixture) addState(tb testing.TB, owner chat.User, groupID int64, user chat.User) addState {
	tb.Helper()
	ctx := context.Background()
	g, ms, err := f.svc.Group(ctx, owner, groupID)
	if err != nil {
		tb.Fatalf("Group(%d): %v", groupID, err)
	}
	ue, err := f.svc.LastUserEvent(ctx, user)
	if err != nil {
		tb.Fatalf("LastUserEvent(%s): %v", user.Name, err)
	}
	return addState{lastSeq: int(g.LastSeq), members: len(ms), userEvent: ue}
}

// wantAddLimited fails unless err is a rate_limited error whose retry
// is within window, naming field ("user_id" when the limit is the added
// user's), and the refused add of user to group id wrote nothing.
func (f *fixture) wantAddLimited(tb testing.TB, what string, err error, window time.Duration, field string, before addState, owner chat.User, id int64, user chat.User) {
	tb.Helper()
	e := chat.AsError(err)
	if e == nil || !errors.Is(err, chat.ErrRateLimited) || e.Code != chat.CodeRateLimited || e.RetryAfter <= 0 || e.RetryAfter > window {
		tb.Fatalf("%s: err = %v; want %s with a retry within %s", what, err, chat.CodeRateLimited, window)
	}
	if e.Field != field {
		tb.Errorf("%s: field %q; want %q", what, e.Field, field)
	}
	if after := f.addState(tb, owner, id, user); after != before {
		tb.Errorf("%s: refused, and yet the group and the user's events went from %+v to %+v", what, before, after)
	}
}

// TestAddsByStrangersPerDay: a user is added to at most
// Config.AddsByStrangersPerDay groups a day by users who are not their
// friends, whoever those are: past it the add is refused with
// rate_limited, and nothing is written. An add that fails for another
// reason does not count; adds by friends are not limited; once the day
// has passed, strangers may add the user again.
func TestAddsByStrangersPerDay(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{AddsByStrangersPerDay: 2})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	mallory, _ := f.signIn(t, "mallory@example.com", "Mallory")
	eve, _ := f.signIn(t, "eve@example.com", "Eve")
	bob, _ := f.signIn(t, "bob@example.com", "Bob")
	f.befriend(t, bob, ada)
	group := func(u chat.User, name string) chat.Group {
		t.Helper()
		g, err := f.svc.CreateGroup(ctx, u, name, "", 0)
		if err != nil {
			t.Fatalf("CreateGroup(%s): %v", name, err)
		}
		return g
	}
	m1, m2, m3 := group(mallory, "m1"), group(mallory, "m2"), group(mallory, "m3")
	e1 := group(eve, "e1")
	// Ada's friend is not limited, and his adds do not count against
	// strangers.
	for i := range 3 {
		g := group(bob, fmt.Sprintf("b%d", i))
		if _, err := f.svc.AddGroupMember(ctx, bob, g.ID, ada.ID); err != nil {
			t.Fatalf("Bob, Ada's friend, adds her to group %d: %v", i+1, err)
		}
	}
	if _, err := f.svc.AddGroupMember(ctx, mallory, m1.ID, ada.ID); err != nil {
		t.Fatalf("Mallory adds Ada to m1: %v", err)
	}
	// Refused for another reason: not counted.
	if _, err := f.svc.AddGroupMember(ctx, mallory, m1.ID, ada.ID); chat.AsError(err) == nil || chat.AsError(err).Code != chat.CodeAlreadyMember {
		t.Fatalf("Mallory adds Ada to m1 again: err = %v; want %s", err, chat.CodeAlreadyMember)
	}
	if _, err := f.svc.AddGroupMember(ctx, mallory, m2.ID, ada.ID); err != nil {
		t.Fatalf("Mallory adds Ada to m2: %v", err)
	}
	before := f.addState(t, mallory, m3.ID, ada)
	_, err := f.svc.AddGroupMember(ctx, mallory, m3.ID, ada.ID)
	f.wantAddLimited(t, "Mallory adds Ada to a third group", err, 24*time.Hour, "user_id", before, mallory, m3.ID, ada)
	before = f.addState(t, eve, e1.ID, ada)
	_, err = f.svc.AddGroupMember(ctx, eve, e1.ID, ada.ID)
	f.wantAddLimited(t, "Eve, another stranger, adds Ada", err, 24*time.Hour, "user_id", before, eve, e1.ID, ada)

	f.clock.Advance(24 * time.Hour)
	if _, err := f.svc.AddGroupMember(ctx, mallory, m3.ID, ada.ID); err != nil {
		t.Fatalf("Mallory adds Ada to m3 a day later: %v", err)
	}
	if _, err := f.svc.AddGroupMember(ctx, eve, e1.ID, ada.ID); err != nil {
		t.Fatalf("Eve adds Ada to e1 a day later: %v", err)
	}
}

// TestStrangerAddsPerHour: a user adds at most Config.StrangerAddsPerHour
// users who are not their friends to groups in an hour, whichever groups
// and users: past it the add is refused with rate_limited, and nothing is
// written. Adds of friends are not limited; a refused add does not count
// against the user it named; once the hour has passed, the user may add
// strangers again.
func TestStrangerAddsPerHour(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{StrangerAddsPerHour: 3, AddsByStrangersPerDay: 1})
	mallory, _ := f.signIn(t, "mallory@example.com", "Mallory")
	eve, _ := f.signIn(t, "eve@example.com", "Eve")
	bob, _ := f.signIn(t, "bob@example.com", "Bob")
	f.befriend(t, mallory, bob)
	var users []chat.User
	for i := range 5 {
		u, _ := f.signIn(t, fmt.Sprintf("u%d@example.com", i), fmt.Sprintf("U%d", i))
		users = append(users, u)
	}
	m1, err := f.svc.CreateGroup(ctx, mallory, "m1", "", 0)
	if err != nil {
		t.Fatalf("CreateGroup(m1): %v", err)
	}
	m2, err := f.svc.CreateGroup(ctx, mallory, "m2", "", 0)
	if err != nil {
		t.Fatalf("CreateGroup(m2): %v", err)
	}
	e1, err := f.svc.CreateGroup(ctx, eve, "e1", "", 0)
	if err != nil {
		t.Fatalf("CreateGroup(e1): %v", err)
	}
	for i, u := range users[:3] {
		g := m1
		if i == 2 {
			g = m2
		}
		if _, err := f.svc.AddGroupMember(ctx, mallory, g.ID, u.ID); err != nil {
			t.Fatalf("Mallory adds %s: %v", u.Name, err)
		}
	}
	before := f.addState(t, mallory, m2.ID, users[3])
	_, err = f.svc.AddGroupMember(ctx, mallory, m2.ID, users[3].ID)
	f.wantAddLimited(t, "Mallory adds a fourth stranger", err, time.Hour, "", before, mallory, m2.ID, users[3])

	// Her friend is not limited.
	if _, err := f.svc.AddGroupMember(ctx, mallory, m2.ID, bob.ID); err != nil {
		t.Fatalf("Mallory adds Bob, her friend: %v", err)
	}
	// The refused add did not use up U3's one add a day by a stranger.
	if _, err := f.svc.AddGroupMember(ctx, eve, e1.ID, users[3].ID); err != nil {
		t.Fatalf("Eve adds U3 after Mallory was refused: %v", err)
	}

	f.clock.Advance(time.Hour)
	if _, err := f.svc.AddGroupMember(ctx, mallory, m2.ID, users[4].ID); err != nil {
		t.Fatalf("Mallory adds a stranger an hour later: %v", err)
	}
}
