// Package chattest holds conformance suites that every implementation of
// package chat's interfaces runs from its own tests, so that the backends
// behave alike. It tests behaviour through the interfaces only, never how a
// backend stores things. Test-only: no production code imports it.
package chattest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/parley-chat/parley/internal/chat"
)

// t0 is the base time of the suite: whole seconds, so that every backend
// stores it exactly.
var t0 = time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC)

// missing is an id that no user, room or session has.
const missing int64 = 1 << 40

// TestStore checks that the chat.Store returned by open keeps the contract
// documented in package chat. Each subtest calls open for a new, empty
// store, which open closes through t.Cleanup; subtests run one after
// another, so open may reuse one database if it empties it.
//
// Beyond chat's doc comments, the suite holds stores to these rules:
// times come back in UTC, truncated to the microsecond; room names are
// unique regardless of case; only ActiveRooms sets Room.Recent, and its
// limit defaults to 20; a Page's limit defaults to 100; UseSession of a missing session, and JoinRoom with a
// missing room or user, return chat.ErrNotFound; CreateSession returns
// chat.ErrNotFound for a missing user and chat.ErrConflict for a token hash
// in use; DeleteSession of a missing session succeeds; DeleteExpired removes
// what expires at or before now, up to its limit. FriendStore returns users without email;
// contacts and blocked users come by case-folded name (strings.ToLower),
// then id, compared byte-wise; SearchUsers' limit defaults to 20.
func TestStore(t *testing.T, open func(t *testing.T) chat.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s chat.Store)
	}{
		{"Users", testUsers},
		{"UsersList", testUsersList},
		{"NameVersionInLists", testNameVersionInLists},
		{"Times", testTimes},
		{"LoginCodes", testLoginCodes},
		{"LoginCodeAttemptsConcurrent", testLoginCodeAttemptsConcurrent},
		{"DeleteLoginCodeRace", testDeleteLoginCodeRace},
		{"UseLoginCodeRace", testUseLoginCodeRace},
		{"Sessions", testSessions},
		{"TrimSessions", testTrimSessions},
		{"UseSessions", testUseSessions},
		{"DeleteExpired", testDeleteExpired},
		{"SessionIDsOnce", testSessionIDsOnce},
		{"Rooms", testRooms},
		{"RoomNamesIgnoreCase", testRoomNamesIgnoreCase},
		{"EnsureRoomConcurrent", testEnsureRoomConcurrent},
		{"RoomNameLookAlikes", testRoomNameLookAlikes},
		{"GroupNameLookAlikes", testGroupNameLookAlikes},
		{"NameLookAlikeConcurrent", testNameLookAlikeConcurrent},
		{"JoinLeave", testJoinLeave},
		{"JoinConcurrent", testJoinConcurrent},
		{"UserRooms", testUserRooms},
		{"ActiveRooms", testActiveRooms},
		{"ActiveRoomsDefaultLimit", testActiveRoomsDefaultLimit},
		{"Append", testAppend},
		{"AppendIdempotent", testAppendIdempotent},
		{"AppendConcurrent", testAppendConcurrent},
		{"AppendConcurrentRetries", testAppendConcurrentRetries},
		{"QueueAppend", testQueueAppend},
		{"AppendPeer", testAppendPeer},
		{"MarkReadConcurrent", testMarkReadConcurrent},
		{"MarkReadBatch", testMarkReadBatch},
		{"Messages", testMessages},
		{"MessagesDefaultLimit", testMessagesDefaultLimit},
		{"SenderName", testSenderName},
		{"FriendRequests", testFriendRequests},
		{"FriendRequestMutual", testFriendRequestMutual},
		{"FriendsCap", testFriendsCap},
		{"FriendsCapAtOnce", testFriendsCapAtOnce},
		{"FriendRequestLimits", testFriendRequestLimits},
		{"RemoveContact", testRemoveContact},
		{"ContactsOrder", testContactsOrder},
		{"Block", testBlock},
		{"BlocksCap", testBlocksCap},
		{"Acquaintances", testAcquaintances},
		{"SearchUsers", testSearchUsers},
		{"SearchUsersDefaultLimit", testSearchUsersDefaultLimit},
		{"EnsureDirect", testEnsureDirect},
		{"ReadPositions", testReadPositions},
		{"Conversations", testConversations},
		{"Membership", testMembership},
		{"UserGroups", testUserGroups},
		{"ConversationIDsOnce", testConversationIDsOnce},
		{"Groups", testGroups},
		{"GroupRemoveRoles", testGroupRemoveRoles},
		{"GroupAddBlocked", testGroupAddBlocked},
		{"GroupCapConcurrent", testGroupCapConcurrent},
		{"LastSeen", testLastSeen},
		{"MemberReadPositions", testMemberReadPositions},
		{"UserEvents", testUserEvents},
		{"UserEventsConcurrent", testUserEventsConcurrent},
		{"TrimUserEvents", testTrimUserEvents},
		{"RemovedLogged", testRemovedLogged},
		{"MemberEventLogged", testMemberEventLogged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

func testUsers(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ann, created, err := s.EnsureUser(ctx, "ann@example.com", t0)
	if err != nil || !created {
		t.Fatalf("EnsureUser(new) = _, %v, %v; want created", created, err)
	}
	if ann.ID == 0 {
		t.Fatal("EnsureUser(new) returned ID 0")
	}
	want := chat.User{ID: ann.ID, Email: "ann@example.com", CreatedAt: t0}
	if diff := cmp.Diff(want, ann); diff != "" {
		t.Errorf("EnsureUser(new) mismatch (-want +got):\n%s", diff)
	}

	again, created, err := s.EnsureUser(ctx, "ann@example.com", t0.Add(time.Hour))
	if err != nil || created {
		t.Fatalf("EnsureUser(existing) = _, %v, %v; want not created", created, err)
	}
	if diff := cmp.Diff(want, again); diff != "" {
		t.Errorf("EnsureUser(existing) mismatch (-want +got):\n%s", diff)
	}

	bob := mustUser(t, s, "bob@example.com", "")
	if bob.ID == ann.ID {
		t.Errorf("two users share ID %d", bob.ID)
	}

	got, err := s.User(ctx, ann.ID)
	if err != nil {
		t.Fatalf("User: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("User mismatch (-want +got):\n%s", diff)
	}
	_, err = s.User(ctx, missing)
	wantNotFound(t, "User(missing)", err)

	named, err := s.SetUserName(ctx, ann.ID, "Ann")
	if err != nil {
		t.Fatalf("SetUserName: %v", err)
	}
	want.Name, want.NameVersion = "Ann", 1 // one change of name
	if diff := cmp.Diff(want, named); diff != "" {
		t.Errorf("SetUserName mismatch (-want +got):\n%s", diff)
	}
	got, err = s.User(ctx, ann.ID)
	if err != nil {
		t.Fatalf("User: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("User after SetUserName mismatch (-want +got):\n%s", diff)
	}
	got, _, err = s.EnsureUser(ctx, "ann@example.com", t0)
	if err != nil {
		t.Fatalf("EnsureUser: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("EnsureUser after SetUserName mismatch (-want +got):\n%s", diff)
	}
	// Each change counts, the same name again too: the version orders
	// the news of renames, which tells each.
	for _, name := range []string{"Annie", "Annie"} {
		if named, err = s.SetUserName(ctx, ann.ID, name); err != nil {
			t.Fatalf("SetUserName: %v", err)
		}
		if named.NameVersion != want.NameVersion+1 {
			t.Errorf("SetUserName(%q) after version %d: NameVersion = %d; want %d", name, want.NameVersion, named.NameVersion, want.NameVersion+1)
		}
		want.NameVersion = named.NameVersion
	}
	_, err = s.SetUserName(ctx, missing, "Nobody")
	wantNotFound(t, "SetUserName(missing)", err)
}

func testUsersList(t *testing.T, s chat.Store) {
	ann := mustUser(t, s, "ann@example.com", "Ann")
	bob := mustUser(t, s, "bob@example.com", "Bob")
	mustUser(t, s, "cat@example.com", "Cat")
	tests := []struct {
		name string
		ids  []int64
		want []chat.User
	}{
		{"nil", nil, nil},
		{"empty", []int64{}, nil},
		{"one", []int64{bob.ID}, []chat.User{bob}},
		{"unknown skipped", []int64{bob.ID, missing, ann.ID}, []chat.User{ann, bob}},
		{"only unknown", []int64{missing}, nil},
	}
	for _, tt := range tests {
		got, err := s.Users(t.Context(), tt.ids)
		if err != nil {
			t.Fatalf("Users(%s): %v", tt.name, err)
		}
		slices.SortFunc(got, func(a, b chat.User) int { return cmpInt(a.ID, b.ID) })
		if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Users(%s) mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
}

func testTimes(t *testing.T, s chat.Store) {
	ctx := t.Context()
	at := time.Date(2031, time.March, 4, 5, 6, 7, 123456789, time.FixedZone("UTC+5:30", 5*3600+1800))
	want := at.Truncate(time.Microsecond)
	check := func(what string, got time.Time) {
		t.Helper()
		if !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("%s = %v; want %v", what, got, want.UTC())
		}
	}

	u, _, err := s.EnsureUser(ctx, "ann@example.com", at)
	if err != nil {
		t.Fatalf("EnsureUser: %v", err)
	}
	check("EnsureUser: CreatedAt", u.CreatedAt)
	u, err = s.User(ctx, u.ID)
	if err != nil {
		t.Fatalf("User: %v", err)
	}
	check("User: CreatedAt", u.CreatedAt)

	r, _, err := s.EnsureRoom(ctx, "general", at)
	if err != nil {
		t.Fatalf("EnsureRoom: %v", err)
	}
	check("EnsureRoom: CreatedAt", r.CreatedAt)
	check("EnsureRoom: LastActiveAt", r.LastActiveAt)

	m, _, err := s.Append(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: u.ID, Body: "hi", At: at})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	check("Append: CreatedAt", m.CreatedAt)
	ms, err := s.Messages(ctx, r.ID, chat.Page{})
	if err != nil || len(ms) != 1 {
		t.Fatalf("Messages = %v, %v; want 1 message", ms, err)
	}
	check("Messages: CreatedAt", ms[0].CreatedAt)

	sess, err := s.CreateSession(ctx, chat.Session{UserID: u.ID, TokenHash: "t", CreatedAt: at, ExpiresAt: at})
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	check("CreateSession: ExpiresAt", sess.ExpiresAt)
	sess, su, err := s.Session(ctx, "t")
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	check("Session: CreatedAt", sess.CreatedAt)
	check("Session: ExpiresAt", sess.ExpiresAt)
	check("Session: user's CreatedAt", su.CreatedAt)

	if err := s.PutLoginCode(ctx, chat.LoginCode{Email: "ann@example.com", Hash: "h", ExpiresAt: at}, 1); err != nil {
		t.Fatalf("PutLoginCode: %v", err)
	}
	cs, err := s.AttemptLoginCodes(ctx, "ann@example.com")
	if err != nil || len(cs) != 1 {
		t.Fatalf("AttemptLoginCodes = %+v, %v; want one code", cs, err)
	}
	check("AttemptLoginCodes: ExpiresAt", cs[0].ExpiresAt)
}

func testLoginCodes(t *testing.T, s chat.Store) {
	ctx := t.Context()
	const ann, bob = "ann@example.com", "bob@example.com"
	_, err := s.AttemptLoginCodes(ctx, ann)
	wantNotFound(t, "AttemptLoginCodes(none)", err)
	put := func(c chat.LoginCode, keep int) {
		t.Helper()
		if err := s.PutLoginCode(ctx, c, keep); err != nil {
			t.Fatalf("PutLoginCode(%s, keep %d): %v", c.Hash, keep, err)
		}
	}
	tried := func(c chat.LoginCode, n int) chat.LoginCode {
		c.Attempts = n
		return c
	}
	code := func(hash string, expires time.Duration) chat.LoginCode {
		return chat.LoginCode{Email: ann, Hash: hash, ExpiresAt: t0.Add(expires)}
	}

	c1 := code("h1", 10*time.Minute)
	put(c1, 3)
	put(chat.LoginCode{Email: bob, Hash: "hb", ExpiresAt: t0}, 3)
	for n := 1; n <= 2; n++ {
		wantAttempts(t, s, ann, tried(c1, n))
	}

	// A second code joins the first; a try counts against both.
	c2 := code("h2", 20*time.Minute)
	put(c2, 3)
	wantAttempts(t, s, ann, tried(c1, 3), tried(c2, 1))

	// The keep codes that expire last are kept, of two expiring at once
	// the one put last.
	c3 := code("h3", 20*time.Minute)
	put(c3, 2)
	wantAttempts(t, s, ann, tried(c2, 2), tried(c3, 1))
	c4 := code("h4", 20*time.Minute)
	put(c4, 2)
	wantAttempts(t, s, ann, tried(c3, 2), tried(c4, 1))

	// DeleteLoginCode removes the one code.
	if ok, err := s.DeleteLoginCode(ctx, ann, "h1"); err != nil || ok {
		t.Errorf("DeleteLoginCode(a code no longer kept) = %v, %v; want false, nil", ok, err)
	}
	if ok, err := s.DeleteLoginCode(ctx, ann, "h3"); err != nil || !ok {
		t.Errorf("DeleteLoginCode = %v, %v; want true, nil", ok, err)
	}
	if ok, err := s.DeleteLoginCode(ctx, ann, "h3"); err != nil || ok {
		t.Errorf("DeleteLoginCode(again) = %v, %v; want false, nil", ok, err)
	}
	wantAttempts(t, s, ann, tried(c4, 2))

	// UseLoginCode removes every code of the address, if one has the hash.
	c5 := code("h5", 30*time.Minute)
	put(c5, 3)
	if ok, err := s.UseLoginCode(ctx, ann, "hx"); err != nil || ok {
		t.Errorf("UseLoginCode(no such code) = %v, %v; want false, nil", ok, err)
	}
	wantAttempts(t, s, ann, tried(c4, 3), tried(c5, 1))
	if ok, err := s.UseLoginCode(ctx, ann, "h4"); err != nil || !ok {
		t.Errorf("UseLoginCode = %v, %v; want true, nil", ok, err)
	}
	if ok, err := s.UseLoginCode(ctx, ann, "h5"); err != nil || ok {
		t.Errorf("UseLoginCode(a code ended by the use of another) = %v, %v; want false, nil", ok, err)
	}
	_, err = s.AttemptLoginCodes(ctx, ann)
	wantNotFound(t, "AttemptLoginCodes(used)", err)
	if ok, err := s.DeleteLoginCode(ctx, "nobody@example.com", "h"); err != nil || ok {
		t.Errorf("DeleteLoginCode(no code) = %v, %v; want false, nil", ok, err)
	}
	if ok, err := s.UseLoginCode(ctx, "nobody@example.com", "h"); err != nil || ok {
		t.Errorf("UseLoginCode(no code) = %v, %v; want false, nil", ok, err)
	}

	// Bob's code was untouched by all of the above.
	wantAttempts(t, s, bob, chat.LoginCode{Email: bob, Hash: "hb", ExpiresAt: t0, Attempts: 1})

	// A code is restored with no attempts counted, beside the codes
	// pending, not over one with its hash, and not past keep when it
	// expires first.
	c6 := code("h6", 30*time.Minute)
	put(c6, 3)
	c7 := code("h7", 10*time.Minute)
	if ok, err := s.RestoreLoginCode(ctx, c7, 3); err != nil || !ok {
		t.Errorf("RestoreLoginCode = %v, %v; want true, nil", ok, err)
	}
	wantAttempts(t, s, ann, tried(c6, 1), tried(c7, 1))
	if ok, err := s.RestoreLoginCode(ctx, code("h7", 40*time.Minute), 3); err != nil || ok {
		t.Errorf("RestoreLoginCode(pending) = %v, %v; want false, nil", ok, err)
	}
	wantAttempts(t, s, ann, tried(c6, 2), tried(c7, 2))
	if ok, err := s.UseLoginCode(ctx, ann, "h6"); err != nil || !ok {
		t.Fatalf("UseLoginCode = %v, %v; want true, nil", ok, err)
	}
	put(c6, 1)
	if ok, err := s.RestoreLoginCode(ctx, c7, 1); err != nil || ok {
		t.Errorf("RestoreLoginCode(past keep, expiring first) = %v, %v; want false, nil", ok, err)
	}
	wantAttempts(t, s, ann, tried(c6, 1))

	// A code put again is afresh: its tries are not counted.
	put(c6, 1)
	wantAttempts(t, s, ann, tried(c6, 1))

	// DropLoginCode removes the one code, and tells whether it was
	// pending untried.
	c8 := code("h8", 30*time.Minute)
	put(c8, 2)
	if untried, err := s.DropLoginCode(ctx, ann, "h6"); err != nil || untried {
		t.Errorf("DropLoginCode(a code tried) = %v, %v; want false, nil", untried, err)
	}
	if untried, err := s.DropLoginCode(ctx, ann, "h6"); err != nil || untried {
		t.Errorf("DropLoginCode(again) = %v, %v; want false, nil", untried, err)
	}
	c9 := code("h9", 30*time.Minute)
	put(c9, 2)
	if untried, err := s.DropLoginCode(ctx, ann, "h9"); err != nil || !untried {
		t.Errorf("DropLoginCode(a code not tried) = %v, %v; want true, nil", untried, err)
	}
	if untried, err := s.DropLoginCode(ctx, "nobody@example.com", "h"); err != nil || untried {
		t.Errorf("DropLoginCode(no code) = %v, %v; want false, nil", untried, err)
	}
	wantAttempts(t, s, ann, tried(c8, 1))
}

// testLoginCodeAttemptsConcurrent: concurrent tries are each counted
// once against every code of the address.
func testLoginCodeAttemptsConcurrent(t *testing.T, s chat.Store) {
	const email, workers, tries = "ann@example.com", 8, 5
	for _, h := range []string{"h1", "h2"} {
		if err := s.PutLoginCode(t.Context(), chat.LoginCode{Email: email, Hash: h, ExpiresAt: t0}, 2); err != nil {
			t.Fatalf("PutLoginCode: %v", err)
		}
	}
	var mu sync.Mutex
	got := map[string][]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range tries {
				cs, err := s.AttemptLoginCodes(t.Context(), email)
				if err != nil {
					t.Errorf("AttemptLoginCodes: %v", err)
					return
				}
				mu.Lock()
				for _, c := range cs {
					got[c.Hash] = append(got[c.Hash], c.Attempts)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	var want []int
	for n := 1; n <= workers*tries; n++ {
		want = append(want, n)
	}
	for _, h := range []string{"h1", "h2"} {
		slices.Sort(got[h])
		if diff := cmp.Diff(want, got[h]); diff != "" {
			t.Errorf("concurrent attempts of %s mismatch (-want +got):\n%s", h, diff)
		}
	}
}

func testDeleteLoginCodeRace(t *testing.T, s chat.Store) {
	const email, workers = "ann@example.com", 8
	for round := range 5 {
		hash := fmt.Sprintf("h%d", round)
		if err := s.PutLoginCode(t.Context(), chat.LoginCode{Email: email, Hash: hash, ExpiresAt: t0}, 1); err != nil {
			t.Fatalf("PutLoginCode: %v", err)
		}
		wins := racers(t, workers, "DeleteLoginCode", func(int) (bool, error) {
			return s.DeleteLoginCode(t.Context(), email, hash)
		})
		if wins != 1 {
			t.Errorf("round %d: %d of %d concurrent DeleteLoginCode calls won; want 1", round, wins, workers)
		}
	}
}

// racers runs try(i) for i in [0, n) at once and counts the calls that
// won (true); a call's error, named what, fails the test.
func racers(t *testing.T, n int, what string, try func(i int) (bool, error)) int {
	var wins atomic.Int32
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			ok, err := try(i)
			if err != nil {
				t.Errorf("%s: %v", what, err)
			} else if ok {
				wins.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	return int(wins.Load())
}

// testUseLoginCodeRace: of concurrent uses of the codes of one address,
// whichever each names, one wins, and no code is left.
func testUseLoginCodeRace(t *testing.T, s chat.Store) {
	const email, workers = "ann@example.com", 8
	for round := range 5 {
		hashes := []string{fmt.Sprintf("a%d", round), fmt.Sprintf("b%d", round)}
		for _, h := range hashes {
			if err := s.PutLoginCode(t.Context(), chat.LoginCode{Email: email, Hash: h, ExpiresAt: t0}, 2); err != nil {
				t.Fatalf("PutLoginCode: %v", err)
			}
		}
		wins := racers(t, workers, "UseLoginCode", func(i int) (bool, error) {
			return s.UseLoginCode(t.Context(), email, hashes[i%2])
		})
		if wins != 1 {
			t.Errorf("round %d: %d of %d concurrent UseLoginCode calls won; want 1", round, wins, workers)
		}
		_, err := s.AttemptLoginCodes(t.Context(), email)
		wantNotFound(t, fmt.Sprintf("round %d: AttemptLoginCodes after a use", round), err)
	}
}

func testSessions(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ann := mustUser(t, s, "ann@example.com", "Ann")
	in := chat.Session{UserID: ann.ID, TokenHash: "t1", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), UsedAt: t0.Add(time.Minute)}
	s1, err := s.CreateSession(ctx, in)
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	if s1.ID == 0 {
		t.Fatal("CreateSession returned ID 0")
	}
	want := in
	want.ID = s1.ID
	if diff := cmp.Diff(want, s1); diff != "" {
		t.Errorf("CreateSession mismatch (-want +got):\n%s", diff)
	}
	s2, err := s.CreateSession(ctx, chat.Session{UserID: ann.ID, TokenHash: "t2", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)})
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	if !s2.UsedAt.Equal(t0) {
		t.Errorf("CreateSession without UsedAt: UsedAt = %v; want CreatedAt %v", s2.UsedAt, t0)
	}
	if s2.ID == s1.ID {
		t.Errorf("two sessions share ID %d", s1.ID)
	}

	got, gotUser, err := s.Session(ctx, "t1")
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Session mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ann, gotUser); diff != "" {
		t.Errorf("Session's user mismatch (-want +got):\n%s", diff)
	}
	_, _, err = s.Session(ctx, "nope")
	wantNotFound(t, "Session(unknown)", err)

	if err := s.UseSession(ctx, s1.ID, t0.Add(90*time.Minute), t0.Add(2*time.Hour)); err != nil {
		t.Fatalf("UseSession: %v", err)
	}
	want.UsedAt, want.ExpiresAt = t0.Add(90*time.Minute), t0.Add(2*time.Hour)
	got, _, err = s.Session(ctx, "t1")
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Session after UseSession mismatch (-want +got):\n%s", diff)
	}
	if got, _, err := s.Session(ctx, "t2"); err != nil {
		t.Errorf("Session(other): %v", err)
	} else if diff := cmp.Diff(s2, got); diff != "" {
		t.Errorf("Session(other) after UseSession mismatch (-want +got):\n%s", diff)
	}
	wantNotFound(t, "UseSession(missing)", s.UseSession(ctx, missing, t0, t0))

	if err := s.DeleteSession(ctx, s1.ID); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	_, _, err = s.Session(ctx, "t1")
	wantNotFound(t, "Session(deleted)", err)
	if _, _, err := s.Session(ctx, "t2"); err != nil {
		t.Errorf("Session(other) after DeleteSession: %v", err)
	}
	if err := s.DeleteSession(ctx, s1.ID); err != nil {
		t.Errorf("DeleteSession(again) = %v; want nil", err)
	}

	_, err = s.CreateSession(ctx, chat.Session{UserID: missing, TokenHash: "t3", CreatedAt: t0, ExpiresAt: t0})
	wantNotFound(t, "CreateSession(missing user)", err)
	_, err = s.CreateSession(ctx, chat.Session{UserID: ann.ID, TokenHash: "t2", CreatedAt: t0, ExpiresAt: t0})
	if !errors.Is(err, chat.ErrConflict) {
		t.Errorf("CreateSession(token hash in use) = %v; want chat.ErrConflict", err)
	}

	// s1 is signed out, s2 lives an hour from t0, s3 expires at t0.
	s3, err := s.CreateSession(ctx, chat.Session{UserID: ann.ID, TokenHash: "t3", CreatedAt: t0, ExpiresAt: t0})
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	all := []int64{s1.ID, s2.ID, s3.ID, missing}
	for _, c := range []struct {
		ids  []int64
		now  time.Time
		want []int64
	}{
		{all, t0.Add(-time.Second), []int64{s2.ID, s3.ID}},
		{all, t0, []int64{s2.ID}},
		{all, t0.Add(time.Hour), nil},
		{[]int64{s3.ID, s2.ID}, t0.Add(-time.Second), []int64{s2.ID, s3.ID}},
		{nil, t0, nil},
	} {
		got, err := liveIDs(ctx, s, c.ids, c.now)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("LiveSessions(%v, t0%+v) = %v, %v; want %v", c.ids, c.now.Sub(t0), got, err, c.want)
		}
	}
	// With their times and user, not their token hash.
	live, err := s.LiveSessions(ctx, []int64{s2.ID}, t0)
	if err != nil {
		t.Fatalf("LiveSessions: %v", err)
	}
	want2 := s2
	want2.TokenHash = ""
	if diff := cmp.Diff([]chat.Session{want2}, live); diff != "" {
		t.Errorf("LiveSessions mismatch (-want +got):\n%s", diff)
	}
}

// liveIDs returns the IDs of the sessions LiveSessions returns, in order.
func liveIDs(ctx context.Context, s chat.Store, ids []int64, now time.Time) ([]int64, error) {
	live, err := s.LiveSessions(ctx, ids, now)
	var got []int64
	for _, sess := range live {
		got = append(got, sess.ID)
	}
	slices.Sort(got)
	return got, err
}

// testUseSessions: UseSessions moves the last use of the sessions it is
// given, and only theirs, forward: never back, and never their expiry.
func testUseSessions(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ann := mustUser(t, s, "ann@example.com", "Ann")
	mk := func(token string, used time.Time) chat.Session {
		t.Helper()
		sess, err := s.CreateSession(ctx, chat.Session{UserID: ann.ID, TokenHash: token, CreatedAt: t0, ExpiresAt: t0.Add(2 * time.Hour), UsedAt: used})
		if err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
		return sess
	}
	old, other := mk("old", t0), mk("other", t0)
	later := mk("later", t0.Add(2*time.Minute)) // used after the time given: kept
	same := mk("same", t0.Add(time.Minute))
	gone := mk("gone", t0)
	if err := s.DeleteSession(ctx, gone.ID); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	used := t0.Add(time.Minute)
	if err := s.UseSessions(ctx, []int64{later.ID, old.ID, gone.ID, same.ID, missing}, used); err != nil {
		t.Fatalf("UseSessions: %v", err)
	}
	for _, c := range []struct {
		sess     chat.Session
		wantUsed time.Time
	}{{old, used}, {other, t0}, {later, later.UsedAt}, {same, used}} {
		got, _, err := s.Session(ctx, c.sess.TokenHash)
		want := c.sess
		want.UsedAt = c.wantUsed
		if err != nil {
			t.Errorf("Session(%s) after UseSessions: %v", c.sess.TokenHash, err)
		} else if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Session(%s) after UseSessions mismatch (-want +got):\n%s", c.sess.TokenHash, diff)
		}
	}
	if _, _, err := s.Session(ctx, "gone"); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("Session(gone) after UseSessions = %v; want chat.ErrNotFound", err)
	}
	if err := s.UseSessions(ctx, nil, used); err != nil {
		t.Errorf("UseSessions(none) = %v; want nil", err)
	}
}

// testTrimSessions: TrimSessions keeps, of a user's sessions made before
// the one kept, those used last, and touches neither the sessions made
// after it nor other users' sessions.
func testTrimSessions(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ann := mustUser(t, s, "ann@example.com", "Ann")
	bob := mustUser(t, s, "bob@example.com", "Bob")
	mk := func(u chat.User, token string, used time.Time) int64 {
		t.Helper()
		sess, err := s.CreateSession(ctx, chat.Session{UserID: u.ID, TokenHash: token, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), UsedAt: used})
		if err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
		return sess.ID
	}
	// Made in this order; used: old at t0, mid at t0+1m, recent at
	// t0+2m, tie and tie2 both at t0+1m (tie2, made later, counts as
	// used later).
	bobOld := mk(bob, "bob-old", t0)
	recent := mk(ann, "recent", t0.Add(2*time.Minute))
	old := mk(ann, "old", t0)
	tie := mk(ann, "tie", t0.Add(time.Minute))
	tie2 := mk(ann, "tie2", t0.Add(time.Minute))
	keep := mk(ann, "keep", t0.Add(3*time.Minute))
	after := mk(ann, "after", t0) // another sign-in's, made after keep

	live := func() []int64 {
		t.Helper()
		got, err := liveIDs(ctx, s, []int64{bobOld, recent, old, tie, tie2, keep, after}, t0)
		if err != nil {
			t.Fatalf("LiveSessions: %v", err)
		}
		return got
	}
	for _, c := range []struct {
		n          int
		wantEnded  []int64
		wantRemain []int64
	}{
		{5, nil, []int64{bobOld, recent, old, tie, tie2, keep, after}},
		{4, nil, []int64{bobOld, recent, old, tie, tie2, keep, after}},
		{2, []int64{old, tie}, []int64{bobOld, recent, tie2, keep, after}},
		{2, nil, []int64{bobOld, recent, tie2, keep, after}},
		{0, []int64{recent, tie2}, []int64{bobOld, keep, after}},
	} {
		ended, err := s.TrimSessions(ctx, ann.ID, keep, c.n)
		slices.Sort(ended)
		if err != nil || !slices.Equal(ended, c.wantEnded) {
			t.Errorf("TrimSessions(ann, keep, %d) = %v, %v; want %v", c.n, ended, err, c.wantEnded)
		}
		if got := live(); !slices.Equal(got, c.wantRemain) {
			t.Errorf("after TrimSessions(ann, keep, %d): sessions %v; want %v", c.n, got, c.wantRemain)
		}
	}
	if ended, err := s.TrimSessions(ctx, missing, keep, 0); err != nil || len(ended) != 0 {
		t.Errorf("TrimSessions(missing user) = %v, %v; want none", ended, err)
	}
}

// testSessionIDsOnce: the ID of a deleted session (the newest one: signed
// out, or expired and swept) is not given to the next, whoever's: a node
// checks the sessions of its open connections by ID (LiveSessions), and
// must not find an ended one live because another's took its ID.
func testSessionIDsOnce(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ann := mustUser(t, s, "ann@example.com", "Ann")
	bob := mustUser(t, s, "bob@example.com", "Bob")
	seen := map[int64]bool{}
	for i, u := range []chat.User{ann, ann, bob} {
		sess, err := s.CreateSession(ctx, chat.Session{UserID: u.ID, TokenHash: fmt.Sprintf("once-%d", i),
			CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)})
		if err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
		if seen[sess.ID] {
			t.Fatalf("session %d (the %d-th made) has the ID of one deleted before", sess.ID, i+1)
		}
		seen[sess.ID] = true
		if err := s.DeleteSession(ctx, sess.ID); err != nil { // each the newest when deleted
			t.Fatalf("DeleteSession(%d): %v", sess.ID, err)
		}
	}
}

func testDeleteExpired(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ann := mustUser(t, s, "ann@example.com", "Ann")
	now := t0
	expiries := map[string]time.Time{
		"past":   now.Add(-time.Second),
		"now":    now,
		"future": now.Add(time.Second),
	}
	for name, exp := range expiries {
		if _, err := s.CreateSession(ctx, chat.Session{UserID: ann.ID, TokenHash: name, CreatedAt: t0.Add(-time.Hour), ExpiresAt: exp}); err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
		if err := s.PutLoginCode(ctx, chat.LoginCode{Email: name + "@example.com", Hash: "h", ExpiresAt: exp}, 1); err != nil {
			t.Fatalf("PutLoginCode: %v", err)
		}
	}
	// Two sessions and two codes expired: removed three at most at a time.
	const limit = 3
	removed := 0
	for range 4 {
		n, err := s.DeleteExpired(ctx, now, limit)
		if err != nil {
			t.Fatalf("DeleteExpired: %v", err)
		}
		if n > limit {
			t.Fatalf("DeleteExpired(now, %d) = %d; want at most %d", limit, n, limit)
		}
		removed += n
		if n < limit {
			break
		}
	}
	if removed != 4 {
		t.Errorf("DeleteExpired removed %d in all; want 4", removed)
	}
	for _, name := range []string{"past", "now"} {
		_, _, err := s.Session(ctx, name)
		wantNotFound(t, "Session("+name+")", err)
		_, err = s.AttemptLoginCodes(ctx, name+"@example.com")
		wantNotFound(t, "AttemptLoginCodes("+name+")", err)
	}
	if _, _, err := s.Session(ctx, "future"); err != nil {
		t.Errorf("Session(future): %v", err)
	}
	if _, err := s.AttemptLoginCodes(ctx, "future@example.com"); err != nil {
		t.Errorf("AttemptLoginCodes(future): %v", err)
	}
}

func testRooms(t *testing.T, s chat.Store) {
	ctx := t.Context()
	r, created, err := s.EnsureRoom(ctx, "general", t0)
	if err != nil {
		t.Fatalf("EnsureRoom(new): %v", err)
	}
	if !created {
		t.Error("EnsureRoom(new) created = false; want true")
	}
	if r.ID == 0 {
		t.Fatal("EnsureRoom returned ID 0")
	}
	want := chat.Room{ID: r.ID, Name: "general", CreatedAt: t0, LastActiveAt: t0}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("EnsureRoom(new) mismatch (-want +got):\n%s", diff)
	}
	again, created, err := s.EnsureRoom(ctx, "General", t0.Add(time.Hour))
	if err != nil {
		t.Fatalf("EnsureRoom(existing): %v", err)
	}
	if created {
		t.Error("EnsureRoom(existing) created = true; want false")
	}
	if diff := cmp.Diff(want, again); diff != "" {
		t.Errorf("EnsureRoom(existing) mismatch (-want +got):\n%s", diff)
	}
	other := mustRoom(t, s, "random")
	if other.ID == r.ID {
		t.Errorf("two rooms share ID %d", r.ID)
	}

	got, err := s.Room(ctx, r.ID)
	if err != nil {
		t.Fatalf("Room: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Room mismatch (-want +got):\n%s", diff)
	}
	_, err = s.Room(ctx, missing)
	wantNotFound(t, "Room(missing)", err)

	got, err = s.RoomByName(ctx, "general")
	if err != nil {
		t.Fatalf("RoomByName: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RoomByName mismatch (-want +got):\n%s", diff)
	}
	_, err = s.RoomByName(ctx, "nope")
	wantNotFound(t, "RoomByName(unknown)", err)
}

// testEnsureRoomConcurrent: several make one new room at once, under
// names that differ in case: all get the one room, and exactly one of
// them made it.
func testEnsureRoomConcurrent(t *testing.T, s chat.Store) {
	ctx := t.Context()
	names := []string{"Lobby", "lobby", "LOBBY", "lObBy", "lobbY", "LOBby", "loBBY", "Lobby"}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ids     = map[int64]int{}
		created int
		errs    []error
	)
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, made, err := s.EnsureRoom(ctx, name, t0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			ids[r.ID]++
			if made {
				created++
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 || len(ids) != 1 || created != 1 {
		t.Errorf("%d EnsureRoom at once: rooms %v, %d made, errors %v; want one room, made once", len(names), ids, created, errs)
	}
}

func testRoomNamesIgnoreCase(t *testing.T, s chat.Store) {
	ctx := t.Context()
	for _, names := range [][]string{
		{"General", "general", "GENERAL", "gEnErAl"},
		{"Été", "été", "ÉTÉ"},
		// Capitals without a composed form of their own: their lower
		// case, letter by letter, composes (ẖ, ΐ, ǰ), and is one name
		// with the small letters typed composed.
		{"\u1e96ello", "H\u0331ello", "H\u0331ELLO"},
		{"\u0390ab", "\u03aa\u0301ab", "\u03aa\u0301AB"},
		{"J\u030cab", "\u01f0ab"},
	} {
		r := mustRoom(t, s, names[0])
		for _, name := range names {
			got, _, err := s.EnsureRoom(ctx, name, t0.Add(time.Hour))
			if err != nil {
				t.Fatalf("EnsureRoom(%q): %v", name, err)
			}
			if diff := cmp.Diff(r, got); diff != "" {
				t.Errorf("EnsureRoom(%q) mismatch (-want +got):\n%s", name, diff)
			}
			got, err = s.RoomByName(ctx, name)
			if err != nil {
				t.Fatalf("RoomByName(%q): %v", name, err)
			}
			if diff := cmp.Diff(r, got); diff != "" {
				t.Errorf("RoomByName(%q) mismatch (-want +got):\n%s", name, diff)
			}
		}
	}
	a, b := mustRoom(t, s, "general"), mustRoom(t, s, "general-2")
	if a.ID == b.ID {
		t.Errorf("rooms %q and %q share ID %d", a.Name, b.Name, a.ID)
	}
}

func testJoinLeave(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ann := mustUser(t, s, "ann@example.com", "Ann")
	bob := mustUser(t, s, "bob@example.com", "Bob")
	r := mustRoom(t, s, "general")

	m1, joined, err := s.JoinRoom(ctx, r.ID, ann.ID, t0.Add(1*time.Minute), true)
	if err != nil || !joined {
		t.Fatalf("JoinRoom = _, %v, %v; want joined", joined, err)
	}
	want1 := chat.Message{ConvID: r.ID, Seq: 1, Kind: chat.KindJoin, SenderID: ann.ID, SenderName: "Ann", CreatedAt: t0.Add(1 * time.Minute)}
	if diff := cmp.Diff(want1, m1); diff != "" {
		t.Errorf("JoinRoom mismatch (-want +got):\n%s", diff)
	}
	m, joined, err := s.JoinRoom(ctx, r.ID, ann.ID, t0.Add(2*time.Minute), true)
	if err != nil || joined || m != (chat.Message{}) {
		t.Errorf("JoinRoom(member) = %+v, %v, %v; want zero message, false, nil", m, joined, err)
	}
	wantMember(t, s, r.ID, ann.ID, true)
	wantMember(t, s, r.ID, bob.ID, false)

	m2, joined, err := s.JoinRoom(ctx, r.ID, bob.ID, t0.Add(3*time.Minute), true)
	if err != nil || !joined {
		t.Fatalf("JoinRoom = _, %v, %v; want joined", joined, err)
	}
	want2 := chat.Message{ConvID: r.ID, Seq: 2, Kind: chat.KindJoin, SenderID: bob.ID, SenderName: "Bob", CreatedAt: t0.Add(3 * time.Minute)}
	if diff := cmp.Diff(want2, m2); diff != "" {
		t.Errorf("JoinRoom(second) mismatch (-want +got):\n%s", diff)
	}
	wantRoom(t, s, chat.Room{ID: r.ID, Name: "general", CreatedAt: t0, LastSeq: 2, LastActiveAt: t0.Add(3 * time.Minute), Members: 2})

	m3, _, left, err := s.LeaveRoom(ctx, r.ID, ann.ID, t0.Add(4*time.Minute), true, removedOf(r.ID, "left"))
	if err != nil || !left {
		t.Fatalf("LeaveRoom = _, %v, %v; want left", left, err)
	}
	want3 := chat.Message{ConvID: r.ID, Seq: 3, Kind: chat.KindLeave, SenderID: ann.ID, SenderName: "Ann", CreatedAt: t0.Add(4 * time.Minute)}
	if diff := cmp.Diff(want3, m3); diff != "" {
		t.Errorf("LeaveRoom mismatch (-want +got):\n%s", diff)
	}
	m, _, left, err = s.LeaveRoom(ctx, r.ID, ann.ID, t0.Add(5*time.Minute), true, removedOf(r.ID, "left"))
	if err != nil || left || m != (chat.Message{}) {
		t.Errorf("LeaveRoom(not member) = %+v, %v, %v; want zero message, false, nil", m, left, err)
	}
	wantMember(t, s, r.ID, ann.ID, false)
	wantMember(t, s, r.ID, bob.ID, true)
	wantRoom(t, s, chat.Room{ID: r.ID, Name: "general", CreatedAt: t0, LastSeq: 3, LastActiveAt: t0.Add(4 * time.Minute), Members: 1})
	wantMessages(t, s, r.ID, chat.Page{}, []chat.Message{want1, want2, want3})

	_, _, err = s.JoinRoom(ctx, missing, ann.ID, t0, true)
	wantNotFound(t, "JoinRoom(missing room)", err)
	_, _, err = s.JoinRoom(ctx, r.ID, missing, t0, true)
	wantNotFound(t, "JoinRoom(missing user)", err)
	_, _, _, err = s.LeaveRoom(ctx, missing, ann.ID, t0, true, removedOf(missing, "left"))
	wantNotFound(t, "LeaveRoom(missing room)", err)

	m4, joined, err := s.JoinRoom(ctx, r.ID, ann.ID, t0.Add(6*time.Minute), true)
	if err != nil || !joined {
		t.Fatalf("JoinRoom(again) = _, %v, %v; want joined", joined, err)
	}
	if m4.Seq != 4 || m4.Kind != chat.KindJoin {
		t.Errorf("JoinRoom(again) = seq %d kind %q; want seq 4 kind %q", m4.Seq, m4.Kind, chat.KindJoin)
	}
	wantMember(t, s, r.ID, ann.ID, true)

	// Unannounced: membership changes, no message; a newcomer has read the
	// room up to its last message, as its join message would have made it.
	cy := mustUser(t, s, "cy@example.com", "Cy")
	m, joined, err = s.JoinRoom(ctx, r.ID, cy.ID, t0.Add(7*time.Minute), false)
	if err != nil || !joined || m != (chat.Message{}) {
		t.Fatalf("JoinRoom(unannounced) = %+v, %v, %v; want zero message, joined", m, joined, err)
	}
	if m, joined, err = s.JoinRoom(ctx, r.ID, cy.ID, t0.Add(7*time.Minute), false); err != nil || joined {
		t.Errorf("JoinRoom(unannounced, member) = %+v, %v, %v; want not joined", m, joined, err)
	}
	wantMember(t, s, r.ID, cy.ID, true)
	wantRoom(t, s, chat.Room{ID: r.ID, Name: "general", CreatedAt: t0, LastSeq: 4, LastActiveAt: t0.Add(6 * time.Minute), Members: 3})
	ps, err := s.ReadPositions(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(ps, func(p chat.ReadPosition) bool { return p.UserID == cy.ID }); i < 0 || ps[i].Seq != 4 {
		t.Errorf("read positions after an unannounced join = %+v; want Cy at 4", ps)
	}
	m, _, left, err = s.LeaveRoom(ctx, r.ID, cy.ID, t0.Add(8*time.Minute), false, removedOf(r.ID, "left"))
	if err != nil || !left || m != (chat.Message{}) {
		t.Errorf("LeaveRoom(unannounced) = %+v, %v, %v; want zero message, left", m, left, err)
	}
	wantMember(t, s, r.ID, cy.ID, false)
	wantRoom(t, s, chat.Room{ID: r.ID, Name: "general", CreatedAt: t0, LastSeq: 4, LastActiveAt: t0.Add(6 * time.Minute), Members: 2})
}

// testJoinConcurrent has users join one room at once, announced, while a
// member sends to it: the joins and the messages must share out the
// room's seqs without a gap or a repeat, each join message must be the one
// JoinRoom returned, and each newcomer must have read up to its own join.
func testJoinConcurrent(t *testing.T, s chat.Store) {
	const joiners, sends = 24, 24
	ann := mustUser(t, s, "ann@example.com", "Ann")
	r := mustRoom(t, s, "general")
	mustJoin(t, s, r.ID, ann.ID, t0)
	users := make([]chat.User, joiners)
	for i := range users {
		users[i] = mustUser(t, s, fmt.Sprintf("user%d@example.com", i), fmt.Sprintf("User %d", i))
	}
	joinSeq := make([]int64, joiners)
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() {
			m, joined, err := s.JoinRoom(t.Context(), r.ID, u.ID, t0.Add(time.Minute), true)
			if err != nil || !joined || m.Kind != chat.KindJoin || m.SenderID != u.ID || m.SenderName != u.Name {
				t.Errorf("JoinRoom(%s) = %+v, %v, %v; want its join message", u.Name, m, joined, err)
			}
			joinSeq[i] = m.Seq
		})
	}
	wg.Go(func() {
		for i := range sends {
			nm := chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: ann.ID, Body: fmt.Sprint(i), At: t0.Add(time.Minute)}
			if _, created, err := s.Append(t.Context(), nm); err != nil || !created {
				t.Errorf("Append = _, %v, %v; want created", created, err)
				return
			}
		}
	})
	wg.Wait()
	if t.Failed() {
		return
	}
	ms := wantRoomSeqs(t, s, r.ID, 1+joiners+sends)
	ps, err := s.ReadPositions(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	read := map[int64]int64{}
	for _, p := range ps {
		read[p.UserID] = p.Seq
	}
	for i, u := range users {
		if m := ms[joinSeq[i]-1]; m.Kind != chat.KindJoin || m.SenderID != u.ID {
			t.Errorf("seq %d holds %s of user %d; JoinRoom returned it for the join of %d", m.Seq, m.Kind, m.SenderID, u.ID)
		}
		if read[u.ID] != joinSeq[i] {
			t.Errorf("%s has read up to %d; want its join, %d", u.Name, read[u.ID], joinSeq[i])
		}
	}
	wantRoom(t, s, chat.Room{ID: r.ID, Name: "general", CreatedAt: t0, LastSeq: 1 + joiners + sends, LastActiveAt: t0.Add(time.Minute), Members: 1 + joiners})
}

func testUserRooms(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ann := mustUser(t, s, "ann@example.com", "Ann")
	bob := mustUser(t, s, "bob@example.com", "Bob")
	cat := mustUser(t, s, "cat@example.com", "Cat")
	alpha, beta, gamma := mustRoom(t, s, "alpha"), mustRoom(t, s, "beta"), mustRoom(t, s, "gamma")
	mustRoom(t, s, "delta")
	mustJoin(t, s, alpha.ID, ann.ID, t0.Add(10*time.Second))
	mustJoin(t, s, beta.ID, ann.ID, t0.Add(11*time.Second))
	mustJoin(t, s, gamma.ID, ann.ID, t0.Add(12*time.Second))
	mustJoin(t, s, beta.ID, bob.ID, t0.Add(13*time.Second))

	wantUserRooms(t, s, ann.ID, beta.ID, gamma.ID, alpha.ID)
	wantUserRooms(t, s, bob.ID, beta.ID)
	wantUserRooms(t, s, cat.ID)

	mustAppend(t, s, chat.NewMessage{ConvID: alpha.ID, Kind: chat.KindText, SenderID: ann.ID, Body: "hi", At: t0.Add(20 * time.Second)})
	wantUserRooms(t, s, ann.ID, alpha.ID, beta.ID, gamma.ID)

	if _, _, _, err := s.LeaveRoom(ctx, beta.ID, ann.ID, t0.Add(30*time.Second), true, removedOf(beta.ID, "left")); err != nil {
		t.Fatalf("LeaveRoom: %v", err)
	}
	wantUserRooms(t, s, ann.ID, alpha.ID, gamma.ID)
}

func testActiveRooms(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ann := mustUser(t, s, "ann@example.com", "Ann")
	since := t0.Add(time.Hour)
	text := func(r chat.Room, at time.Time) {
		t.Helper()
		mustAppend(t, s, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: ann.ID, Body: "hi", At: at})
	}
	quiet := mustRoom(t, s, "quiet")
	text(quiet, since.Add(-time.Second))
	busy := mustRoom(t, s, "busy")
	text(busy, since)
	text(busy, since.Add(time.Second))
	text(busy, since.Add(2*time.Second))
	mustJoin(t, s, busy.ID, ann.ID, since.Add(3*time.Second))
	mid := mustRoom(t, s, "mid")
	text(mid, since.Add(-time.Minute))
	text(mid, since.Add(time.Second))
	text(mid, since.Add(2*time.Second))
	tieOld := mustRoom(t, s, "tie-old")
	text(tieOld, since.Add(time.Minute))
	tieNew := mustRoom(t, s, "tie-new")
	text(tieNew, since.Add(2*time.Minute))
	joins := mustRoom(t, s, "joins")
	mustJoin(t, s, joins.ID, ann.ID, since.Add(time.Minute))
	mustRoom(t, s, "empty")

	var want []chat.Room
	for _, rc := range []struct {
		room   chat.Room
		recent int
	}{{busy, 3}, {mid, 2}, {tieNew, 1}, {tieOld, 1}} {
		r, err := s.Room(ctx, rc.room.ID)
		if err != nil {
			t.Fatalf("Room: %v", err)
		}
		r.Recent = rc.recent
		want = append(want, r)
	}
	for _, limit := range []int{10, 4, 2, 1} {
		got, err := s.ActiveRooms(ctx, since, limit)
		if err != nil {
			t.Fatalf("ActiveRooms: %v", err)
		}
		if diff := cmp.Diff(want[:min(limit, len(want))], got); diff != "" {
			t.Errorf("ActiveRooms(limit %d) mismatch (-want +got):\n%s", limit, diff)
		}
	}
	got, err := s.ActiveRooms(ctx, since.Add(time.Hour), 10)
	if err != nil {
		t.Fatalf("ActiveRooms: %v", err)
	}
	if len(got) != 0 {
		t.Errorf("ActiveRooms(after all messages) = %d rooms; want none", len(got))
	}
}

func testActiveRoomsDefaultLimit(t *testing.T, s chat.Store) {
	ctx := t.Context()
	for i := range 22 {
		r := mustRoom(t, s, fmt.Sprintf("room-%d", i))
		mustAppend(t, s, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, Body: "hi", At: t0.Add(time.Duration(i) * time.Second)})
	}
	for _, limit := range []int{0, -1} {
		got, err := s.ActiveRooms(ctx, t0, limit)
		if err != nil {
			t.Fatalf("ActiveRooms: %v", err)
		}
		if len(got) != 20 {
			t.Errorf("ActiveRooms(limit %d) = %d rooms; want 20", limit, len(got))
		}
	}
}

func testAppend(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ann := mustUser(t, s, "ann@example.com", "Ann")
	r := mustRoom(t, s, "general")

	m1, created, err := s.Append(ctx, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: ann.ID, ClientID: "c1", Body: "hello", At: t0.Add(time.Minute)})
	if err != nil || !created {
		t.Fatalf("Append = _, %v, %v; want created", created, err)
	}
	want1 := chat.Message{ConvID: r.ID, Seq: 1, Kind: chat.KindText, SenderID: ann.ID, SenderName: "Ann", ClientID: "c1", Body: "hello", CreatedAt: t0.Add(time.Minute)}
	if diff := cmp.Diff(want1, m1); diff != "" {
		t.Errorf("Append mismatch (-want +got):\n%s", diff)
	}
	m2 := mustAppend(t, s, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: ann.ID, Body: "second", At: t0.Add(2 * time.Minute)})
	want2 := chat.Message{ConvID: r.ID, Seq: 2, Kind: chat.KindText, SenderID: ann.ID, SenderName: "Ann", Body: "second", CreatedAt: t0.Add(2 * time.Minute)}
	if diff := cmp.Diff(want2, m2); diff != "" {
		t.Errorf("Append(no client ID) mismatch (-want +got):\n%s", diff)
	}
	m3 := mustAppend(t, s, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, Body: "psst", At: t0.Add(3 * time.Minute)})
	want3 := chat.Message{ConvID: r.ID, Seq: 3, Kind: chat.KindText, Body: "psst", CreatedAt: t0.Add(3 * time.Minute)}
	if diff := cmp.Diff(want3, m3); diff != "" {
		t.Errorf("Append(anonymous) mismatch (-want +got):\n%s", diff)
	}
	wantRoom(t, s, chat.Room{ID: r.ID, Name: "general", CreatedAt: t0, LastSeq: 3, LastActiveAt: t0.Add(3 * time.Minute)})
	wantMessages(t, s, r.ID, chat.Page{}, []chat.Message{want1, want2, want3})

	other := mustRoom(t, s, "random")
	if m := mustAppend(t, s, chat.NewMessage{ConvID: other.ID, Kind: chat.KindText, SenderID: ann.ID, Body: "elsewhere", At: t0}); m.Seq != 1 {
		t.Errorf("first Append to another room: seq %d; want 1", m.Seq)
	}

	_, _, err = s.Append(ctx, chat.NewMessage{ConvID: missing, Kind: chat.KindText, SenderID: ann.ID, Body: "lost", At: t0})
	wantNotFound(t, "Append(missing conversation)", err)
	_, _, err = s.Append(ctx, chat.NewMessage{ConvID: missing, Kind: chat.KindText, SenderID: ann.ID, ClientID: "c9", Body: "lost", At: t0})
	wantNotFound(t, "Append(missing conversation, client ID)", err)
}

func testAppendIdempotent(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ann := mustUser(t, s, "ann@example.com", "Ann")
	bob := mustUser(t, s, "bob@example.com", "Bob")
	r := mustRoom(t, s, "general")
	other := mustRoom(t, s, "random")
	msg := func(conv, sender int64, clientID string) chat.NewMessage {
		return chat.NewMessage{ConvID: conv, Kind: chat.KindText, SenderID: sender, ClientID: clientID, Body: "hello", At: t0}
	}

	first := mustAppend(t, s, msg(r.ID, ann.ID, "c1"))
	retry := msg(r.ID, ann.ID, "c1")
	retry.Body, retry.At = "hello again", t0.Add(time.Minute)
	again, created, err := s.Append(ctx, retry)
	if err != nil || created {
		t.Fatalf("Append(retry) = _, %v, %v; want not created", created, err)
	}
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("Append(retry) mismatch (-want +got):\n%s", diff)
	}

	for _, tt := range []struct {
		name    string
		m       chat.NewMessage
		wantSeq int64
	}{
		{"other sender", msg(r.ID, bob.ID, "c1"), 2},
		{"other room", msg(other.ID, ann.ID, "c1"), 1},
		{"anonymous", msg(r.ID, 0, "c1"), 3},
		{"no client ID", msg(r.ID, ann.ID, ""), 4},
		{"no client ID again", msg(r.ID, ann.ID, ""), 5},
	} {
		m, created, err := s.Append(ctx, tt.m)
		if err != nil || !created || m.Seq != tt.wantSeq {
			t.Errorf("Append(%s) = seq %d, %v, %v; want seq %d, created", tt.name, m.Seq, created, err, tt.wantSeq)
		}
	}
	if _, created, err := s.Append(ctx, msg(r.ID, 0, "c1")); err != nil || created {
		t.Errorf("Append(anonymous retry) = _, %v, %v; want not created", created, err)
	}
	wantRoomSeqs(t, s, r.ID, 5)

	// A member-only retry needs the membership still: a sender who left
	// gets ErrNotMember, not the message they sent as a member. A refused
	// message takes no seq.
	memberOnly := func(m chat.NewMessage) chat.NewMessage { m.MemberOnly = true; return m }
	if _, _, err := s.JoinRoom(ctx, r.ID, bob.ID, t0, false); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, memberOnly(msg(r.ID, bob.ID, "c2")))
	if _, _, _, err := s.LeaveRoom(ctx, r.ID, bob.ID, t0, false, removedOf(r.ID, "left")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c2", "c3"} {
		if m, _, err := s.Append(ctx, memberOnly(msg(r.ID, bob.ID, id))); !errors.Is(err, chat.ErrNotMember) {
			t.Errorf("Append(%s from a former member) = seq %d, %v; want ErrNotMember", id, m.Seq, err)
		}
	}
	if m := mustAppend(t, s, msg(r.ID, ann.ID, "c4")); m.Seq != 7 {
		t.Errorf("Append after the refused ones = seq %d; want 7", m.Seq)
	}
	wantRoomSeqs(t, s, r.ID, 7)
	wantRoomSeqs(t, s, other.ID, 1)
}

func testAppendConcurrent(t *testing.T, s chat.Store) {
	const workers, each = 8, 50
	ann := mustUser(t, s, "ann@example.com", "Ann")
	r := mustRoom(t, s, "general")
	var mu sync.Mutex
	bodyAt := map[int64]string{} // seq → body, as Append returned them
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				body := fmt.Sprintf("%d-%d", w, i)
				m, created, err := s.Append(t.Context(), chat.NewMessage{
					ConvID: r.ID, Kind: chat.KindText, SenderID: ann.ID, ClientID: body, Body: body, At: t0.Add(time.Duration(i) * time.Millisecond),
				})
				if err != nil || !created {
					t.Errorf("Append = _, %v, %v; want created", created, err)
					return
				}
				mu.Lock()
				if prev, dup := bodyAt[m.Seq]; dup {
					t.Errorf("seq %d returned for both %q and %q", m.Seq, prev, body)
				}
				bodyAt[m.Seq] = body
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	ms := wantRoomSeqs(t, s, r.ID, workers*each)
	for _, m := range ms {
		if m.Body != bodyAt[m.Seq] {
			t.Errorf("seq %d holds %q; Append returned it for %q", m.Seq, m.Body, bodyAt[m.Seq])
		}
	}
	wantWorkerOrder(t, ms, workers)
}

// wantWorkerOrder checks that messages ms, with bodies "W-I" (message I of
// worker W), hold each worker's messages in the order it sent them.
func wantWorkerOrder(t *testing.T, ms []chat.Message, workers int) {
	t.Helper()
	next := make([]int, workers) // next i expected from each worker
	for _, m := range ms {
		var w, i int
		if _, err := fmt.Sscanf(m.Body, "%d-%d", &w, &i); err != nil {
			t.Fatalf("body %q: %v", m.Body, err)
		}
		if i != next[w] {
			t.Errorf("seq %d holds message %d of worker %d; want message %d", m.Seq, i, w, next[w])
		}
		next[w] = i + 1
	}
}

// testQueueAppend queues many messages from several goroutines, each
// without waiting for its earlier ones: each goroutine's messages must be
// stored in the order it queued them, a message to a missing conversation
// must fail alone, and a repeated client ID must get the first message.
func testQueueAppend(t *testing.T, s chat.Store) {
	const workers, each = 4, 60
	ann := mustUser(t, s, "ann@example.com", "Ann")
	r := mustRoom(t, s, "general")
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			msg := func(conv int64, clientID, body string) chat.NewMessage {
				return chat.NewMessage{ConvID: conv, Kind: chat.KindText, SenderID: ann.ID, ClientID: clientID, Body: body, At: t0}
			}
			pending := make([]chat.PendingAppend, 0, each+2)
			for i := range each {
				body := fmt.Sprintf("%d-%d", w, i)
				pending = append(pending, s.QueueAppend(t.Context(), msg(r.ID, body, body)))
				switch i {
				case each / 3:
					pending = append(pending, s.QueueAppend(t.Context(), msg(missing, "", "lost")))
				case each / 2:
					pending = append(pending, s.QueueAppend(t.Context(), msg(r.ID, body, "again")))
				}
			}
			var last int64
			for k, p := range pending {
				m, created, err := p.Wait()
				switch {
				case k == each/3+1:
					wantNotFound(t, "queued Append(missing conversation)", err)
				case k == each/2+2:
					if err != nil || created || m.Body != fmt.Sprintf("%d-%d", w, each/2) {
						t.Errorf("queued Append(repeated client ID) = %q, %v, %v; want the first, not created", m.Body, created, err)
					}
				case err != nil || !created:
					t.Errorf("queued Append %d of worker %d = _, %v, %v; want created", k, w, created, err)
				case m.Seq <= last:
					t.Errorf("worker %d: queued message %d got seq %d after seq %d", w, k, m.Seq, last)
				default:
					last = m.Seq
				}
			}
		})
	}
	wg.Wait()
	wantWorkerOrder(t, wantRoomSeqs(t, s, r.ID, workers*each), workers)
}

func testAppendConcurrentRetries(t *testing.T, s chat.Store) {
	const workers = 8
	ann := mustUser(t, s, "ann@example.com", "Ann")
	r := mustRoom(t, s, "general")
	var mu sync.Mutex
	var created []bool
	var seqs []int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			<-start
			m, c, err := s.Append(t.Context(), chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: ann.ID, ClientID: "same", Body: "hello", At: t0})
			if err != nil {
				t.Errorf("Append: %v", err)
				return
			}
			mu.Lock()
			created = append(created, c)
			seqs = append(seqs, m.Seq)
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	if n := len(slices.DeleteFunc(created, func(c bool) bool { return !c })); n != 1 {
		t.Errorf("%d of %d concurrent retries created a message; want 1", n, workers)
	}
	for _, seq := range seqs {
		if seq != 1 {
			t.Errorf("concurrent retries returned seqs %v; want all 1", seqs)
			break
		}
	}
	wantRoomSeqs(t, s, r.ID, 1)
}

func testMessages(t *testing.T, s chat.Store) {
	ann := mustUser(t, s, "ann@example.com", "Ann")
	r := mustRoom(t, s, "general")
	other := mustRoom(t, s, "random")
	var all []chat.Message
	for i := 1; i <= 10; i++ {
		all = append(all, mustAppend(t, s, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: ann.ID, Body: fmt.Sprintf("m%d", i), At: t0.Add(time.Duration(i) * time.Second)}))
		mustAppend(t, s, chat.NewMessage{ConvID: other.ID, Kind: chat.KindText, SenderID: ann.ID, Body: "elsewhere", At: t0})
	}
	wantMessages(t, s, r.ID, chat.Page{}, all)

	tests := []struct {
		page chat.Page
		want []int64
	}{
		{chat.Page{}, seqRange(1, 10)},
		{chat.Page{Limit: 3}, seqRange(8, 10)},
		{chat.Page{Limit: 10}, seqRange(1, 10)},
		{chat.Page{Limit: 50}, seqRange(1, 10)},
		{chat.Page{Before: 8, Limit: 3}, seqRange(5, 7)},
		{chat.Page{Before: 3, Limit: 5}, seqRange(1, 2)},
		{chat.Page{Before: 1}, nil},
		{chat.Page{Before: 100, Limit: 2}, seqRange(9, 10)},
		{chat.Page{After: 7, Limit: 2}, seqRange(8, 9)},
		{chat.Page{After: 8}, seqRange(9, 10)},
		{chat.Page{After: 10}, nil},
		{chat.Page{After: 3, Before: 5, Limit: 4}, seqRange(4, 7)}, // After wins
	}
	for _, tt := range tests {
		ms, err := s.Messages(t.Context(), r.ID, tt.page)
		if err != nil {
			t.Fatalf("Messages(%+v): %v", tt.page, err)
		}
		if diff := cmp.Diff(tt.want, seqsOf(t, r.ID, ms), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Messages(%+v) seqs mismatch (-want +got):\n%s", tt.page, diff)
		}
	}
}

func testMessagesDefaultLimit(t *testing.T, s chat.Store) {
	r := mustRoom(t, s, "general")
	for i := range 105 {
		mustAppend(t, s, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, Body: "hi", At: t0.Add(time.Duration(i) * time.Second)})
	}
	for _, tt := range []struct {
		page chat.Page
		want []int64
	}{
		{chat.Page{}, seqRange(6, 105)},
		{chat.Page{Limit: -1}, seqRange(6, 105)},
		{chat.Page{After: 1}, seqRange(2, 101)},
		{chat.Page{Before: 102}, seqRange(2, 101)},
	} {
		ms, err := s.Messages(t.Context(), r.ID, tt.page)
		if err != nil {
			t.Fatalf("Messages(%+v): %v", tt.page, err)
		}
		if diff := cmp.Diff(tt.want, seqsOf(t, r.ID, ms)); diff != "" {
			t.Errorf("Messages(%+v) seqs mismatch (-want +got):\n%s", tt.page, diff)
		}
	}
}

func testSenderName(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ann := mustUser(t, s, "ann@example.com", "Ann")
	r := mustRoom(t, s, "general")
	m1 := mustAppend(t, s, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, SenderID: ann.ID, Body: "hi", At: t0})
	m2 := mustAppend(t, s, chat.NewMessage{ConvID: r.ID, Kind: chat.KindText, Body: "psst", At: t0})
	if m1.SenderName != "Ann" || m2.SenderName != "" {
		t.Errorf("Append sender names = %q, %q; want %q, %q", m1.SenderName, m2.SenderName, "Ann", "")
	}
	if _, err := s.SetUserName(ctx, ann.ID, "Annie"); err != nil {
		t.Fatalf("SetUserName: %v", err)
	}
	m1.SenderName = "Annie"
	wantMessages(t, s, r.ID, chat.Page{}, []chat.Message{m1, m2})
}

// MarkRead moves one read position with s.MarkRead, a batch of one, and
// returns its outcome.
func MarkRead(ctx context.Context, s chat.Store, convID, userID, seq int64) (chat.ReadState, bool, error) {
	marks := []chat.ReadMark{{ConvID: convID, UserID: userID, Seq: seq}}
	if err := s.MarkRead(ctx, marks); err != nil {
		return chat.ReadState{}, false, err
	}
	return marks[0].State, marks[0].Moved, marks[0].Err
}

func mustUser(t *testing.T, s chat.Store, email, name string) chat.User {
	t.Helper()
	u, _, err := s.EnsureUser(t.Context(), email, t0)
	if err != nil {
		t.Fatalf("EnsureUser(%q): %v", email, err)
	}
	if name == "" {
		return u
	}
	u, err = s.SetUserName(t.Context(), u.ID, name)
	if err != nil {
		t.Fatalf("SetUserName(%q): %v", name, err)
	}
	return u
}

func mustRoom(t *testing.T, s chat.Store, name string) chat.Room {
	t.Helper()
	r, _, err := s.EnsureRoom(t.Context(), name, t0)
	if err != nil {
		t.Fatalf("EnsureRoom(%q): %v", name, err)
	}
	return r
}

func mustJoin(t *testing.T, s chat.Store, roomID, userID int64, at time.Time) chat.Message {
	t.Helper()
	m, joined, err := s.JoinRoom(t.Context(), roomID, userID, at, true)
	if err != nil || !joined {
		t.Fatalf("JoinRoom(%d, %d) = _, %v, %v; want joined", roomID, userID, joined, err)
	}
	return m
}

func mustAppend(t *testing.T, s chat.Store, nm chat.NewMessage) chat.Message {
	t.Helper()
	m, created, err := s.Append(t.Context(), nm)
	if err != nil || !created {
		t.Fatalf("Append(%+v) = _, %v, %v; want created", nm, created, err)
	}
	return m
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("%s = %v; want chat.ErrNotFound", what, err)
	}
}

// wantAttempts makes a try at the codes of email and checks it gets want,
// in any order.
func wantAttempts(t *testing.T, s chat.Store, email string, want ...chat.LoginCode) {
	t.Helper()
	got, err := s.AttemptLoginCodes(t.Context(), email)
	if err != nil {
		t.Fatalf("AttemptLoginCodes(%q): %v", email, err)
	}
	byHash := cmpopts.SortSlices(func(a, b chat.LoginCode) bool { return a.Hash < b.Hash })
	if diff := cmp.Diff(want, got, byHash); diff != "" {
		t.Errorf("AttemptLoginCodes(%q) mismatch (-want +got):\n%s", email, diff)
	}
}

func wantMember(t *testing.T, s chat.Store, roomID, userID int64, want bool) {
	t.Helper()
	got, err := s.IsMember(t.Context(), roomID, userID)
	if err != nil {
		t.Fatalf("IsMember: %v", err)
	}
	if got != want {
		t.Errorf("IsMember(%d, %d) = %v; want %v", roomID, userID, got, want)
	}
}

func wantRoom(t *testing.T, s chat.Store, want chat.Room) {
	t.Helper()
	got, err := s.Room(t.Context(), want.ID)
	if err != nil {
		t.Fatalf("Room: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Room mismatch (-want +got):\n%s", diff)
	}
}

// wantUserRooms checks that UserRooms(userID) lists exactly the rooms ids,
// in that order, as Room returns them.
func wantUserRooms(t *testing.T, s chat.Store, userID int64, ids ...int64) {
	t.Helper()
	var want []chat.Room
	for _, id := range ids {
		r, err := s.Room(t.Context(), id)
		if err != nil {
			t.Fatalf("Room: %v", err)
		}
		want = append(want, r)
	}
	got, err := s.UserRooms(t.Context(), userID)
	if err != nil {
		t.Fatalf("UserRooms: %v", err)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("UserRooms(%d) mismatch (-want +got):\n%s", userID, diff)
	}
}

func wantMessages(t *testing.T, s chat.Store, convID int64, p chat.Page, want []chat.Message) {
	t.Helper()
	got, err := s.Messages(t.Context(), convID, p)
	if err != nil {
		t.Fatalf("Messages: %v", err)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Messages(%d, %+v) mismatch (-want +got):\n%s", convID, p, diff)
	}
}

// wantRoomSeqs checks that room id's last seq is n and that it holds
// exactly the messages 1..n, and returns them.
func wantRoomSeqs(t *testing.T, s chat.Store, id int64, n int) []chat.Message {
	t.Helper()
	r, err := s.Room(t.Context(), id)
	if err != nil {
		t.Fatalf("Room: %v", err)
	}
	if r.LastSeq != int64(n) {
		t.Errorf("room %d: LastSeq = %d; want %d", id, r.LastSeq, n)
	}
	ms, err := s.Messages(t.Context(), id, chat.Page{After: 0, Limit: n + 10})
	if err != nil {
		t.Fatalf("Messages: %v", err)
	}
	if diff := cmp.Diff(seqRange(1, int64(n)), seqsOf(t, id, ms)); diff != "" {
		t.Errorf("room %d seqs mismatch (-want +got):\n%s", id, diff)
	}
	return ms
}

// seqsOf returns the seqs of ms, checking that they belong to convID.
func seqsOf(t *testing.T, convID int64, ms []chat.Message) []int64 {
	t.Helper()
	var seqs []int64
	for _, m := range ms {
		if m.ConvID != convID {
			t.Errorf("message %d of conversation %d listed for %d", m.Seq, m.ConvID, convID)
		}
		seqs = append(seqs, m.Seq)
	}
	return seqs
}

func seqRange(from, to int64) []int64 {
	var seqs []int64
	for n := from; n <= to; n++ {
		seqs = append(seqs, n)
	}
	return seqs
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
