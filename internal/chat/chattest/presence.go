package chattest

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/parley-chat/parley/internal/chat"
)

// TestPresence checks that a Presence implementation keeps the
// chat.Presence contract as seen from one node. open returns a fresh,
// empty Presence for each subtest.
func TestPresence(t *testing.T, open func(t *testing.T) chat.Presence) {
	ctx := context.Background()
	sorted := cmpopts.SortSlices(func(a, b int64) bool { return a < b })
	wantOnline := func(t *testing.T, p chat.Presence, conv int64, want []int64) {
		t.Helper()
		got, n, err := p.Online(ctx, conv, 1000)
		if err != nil {
			t.Fatalf("Online(%d): %v", conv, err)
		}
		if n != len(got) {
			t.Errorf("Online(%d) counts %d, lists %d", conv, n, len(got))
		}
		if diff := cmp.Diff(want, got, sorted, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Online(%d) mismatch (-want +got):\n%s", conv, diff)
		}
	}
	add := func(t *testing.T, p chat.Presence, conv, user int64, want bool) {
		t.Helper()
		if got, err := p.Add(ctx, conv, user); err != nil || got != want {
			t.Fatalf("Add(%d, %d) = %v, %v; want %v", conv, user, got, err, want)
		}
	}
	remove := func(t *testing.T, p chat.Presence, conv, user int64, want bool) {
		t.Helper()
		if got, err := p.Remove(ctx, conv, user); err != nil || got != want {
			t.Fatalf("Remove(%d, %d) = %v, %v; want %v", conv, user, got, err, want)
		}
	}

	t.Run("StateVersions", func(t *testing.T) {
		// Every change of a user's presence gives a newer version; a
		// connection more or less that changes nothing gives the same.
		p := open(t)
		last := int64(-1)
		state := func(t *testing.T, want bool, newer bool) {
			t.Helper()
			on, v, err := p.State(ctx, chat.Everywhere, 7)
			if err != nil || on != want {
				t.Fatalf("State(7) = %v, %d, %v; want online %v", on, v, err, want)
			}
			if newer && v <= last || !newer && v != last {
				t.Fatalf("State(7) version %d after %d; want newer %v", v, last, newer)
			}
			last = v
		}
		state(t, false, true)
		add(t, p, chat.Everywhere, 7, true)
		state(t, true, true)
		add(t, p, chat.Everywhere, 7, false)
		state(t, true, false)
		remove(t, p, chat.Everywhere, 7, false)
		state(t, true, false)
		remove(t, p, chat.Everywhere, 7, true)
		state(t, false, true)
		remove(t, p, chat.Everywhere, 7, false)
		state(t, false, false)
		add(t, p, chat.Everywhere, 7, true)
		state(t, true, true)
		if on, v, err := p.State(ctx, 5, 7); err != nil || on || v != last {
			t.Errorf("State(7) in 5 = %v, %d, %v; want offline, version %d as everywhere", on, v, err, last)
		}
		if v, err := p.Version(ctx); err != nil || v != last {
			t.Errorf("Version() = %d, %v; want %d, as State", v, err, last)
		}
		add(t, p, 5, 8, true)
		if v, err := p.Version(ctx); err != nil || v <= last {
			t.Errorf("Version() = %d, %v after a change; want more than %d", v, err, last)
		}
	})

	t.Run("StateCount", func(t *testing.T) {
		// StateCount is State with the count of the conversation at the
		// version it gives, read in the same step; user 0 asks for the
		// count alone.
		p := open(t)
		stateCount := func(t *testing.T, conv, user int64, wantOn bool, wantN int) {
			t.Helper()
			on, n, v, err := p.StateCount(ctx, conv, user)
			if err != nil || on != wantOn || n != wantN {
				t.Fatalf("StateCount(%d, %d) = %v, %d, %d, %v; want %v, %d", conv, user, on, n, v, err, wantOn, wantN)
			}
			son, sv, err := p.State(ctx, conv, user)
			if err != nil || son != on || sv != v {
				t.Errorf("State(%d, %d) = %v, %d, %v; want %v, %d, as StateCount", conv, user, son, sv, err, on, v)
			}
		}
		stateCount(t, 5, 7, false, 0)
		add(t, p, 5, 7, true)
		add(t, p, 5, 7, false) // a second tab counts once
		add(t, p, 5, 8, true)
		add(t, p, 6, 9, true)
		add(t, p, chat.Everywhere, 7, true)
		stateCount(t, 5, 7, true, 2)
		stateCount(t, 5, 9, false, 2)
		stateCount(t, 5, 0, false, 2)
		stateCount(t, 6, 9, true, 1)
		stateCount(t, chat.Everywhere, 7, true, 1)
		_, _, before, _ := p.StateCount(ctx, 5, 0)
		remove(t, p, 5, 8, true)
		if _, n, v, err := p.StateCount(ctx, 5, 0); err != nil || n != 1 || v <= before {
			t.Errorf("StateCount(5) after a departure = %d, version %d, %v; want 1, newer than %d", n, v, err, before)
		}
	})

	t.Run("CountsConnectionsOnce", func(t *testing.T) {
		p := open(t)
		add(t, p, 10, 1, true)  // first tab: present
		add(t, p, 10, 1, false) // second tab
		add(t, p, 10, 2, true)  // another user
		wantOnline(t, p, 10, []int64{1, 2})
		remove(t, p, 10, 1, false) // one tab closes: still present
		wantOnline(t, p, 10, []int64{1, 2})
		remove(t, p, 10, 1, true)  // last tab: gone
		remove(t, p, 10, 1, false) // an extra Remove is harmless
		wantOnline(t, p, 10, []int64{2})
		add(t, p, 10, 1, true) // back again
		wantOnline(t, p, 10, []int64{1, 2})
	})

	t.Run("PresentIn", func(t *testing.T) {
		p := open(t)
		add(t, p, 1, 7, true)
		add(t, p, 3, 7, true)
		add(t, p, 2, 8, true)
		add(t, p, 4, 7, true)
		remove(t, p, 4, 7, true)
		got, err := p.PresentIn(ctx, 7, []int64{3, 2, 1, 4, 5})
		if err != nil {
			t.Fatalf("PresentIn: %v", err)
		}
		if diff := cmp.Diff([]int64{3, 1}, got); diff != "" {
			t.Errorf("PresentIn(7) mismatch (-want +got):\n%s", diff)
		}
		if got, err := p.PresentIn(ctx, 9, []int64{1, 2}); err != nil || len(got) != 0 {
			t.Errorf("PresentIn(9) = %v, %v; want none", got, err)
		}
		if got, err := p.PresentIn(ctx, 7, nil); err != nil || len(got) != 0 {
			t.Errorf("PresentIn(7, none) = %v, %v; want none", got, err)
		}
	})

	t.Run("RemoveWithoutAdd", func(t *testing.T) {
		p := open(t)
		remove(t, p, 3, 1, false)
		wantOnline(t, p, 3, nil)
		add(t, p, 3, 1, true)
	})

	t.Run("ConversationsAreSeparate", func(t *testing.T) {
		p := open(t)
		add(t, p, 1, 7, true)
		add(t, p, 2, 7, true) // present in 1 does not make 7 present in 2
		add(t, p, chat.Everywhere, 7, true)
		add(t, p, 2, 8, true)
		wantOnline(t, p, 1, []int64{7})
		wantOnline(t, p, 2, []int64{7, 8})
		wantOnline(t, p, chat.Everywhere, []int64{7})
		wantOnline(t, p, 3, nil)
		remove(t, p, 1, 7, true)
		wantOnline(t, p, 1, nil)
		wantOnline(t, p, 2, []int64{7, 8})
		wantOnline(t, p, chat.Everywhere, []int64{7})
		remove(t, p, chat.Everywhere, 7, true)
		wantOnline(t, p, chat.Everywhere, nil)
		wantOnline(t, p, 2, []int64{7, 8})
	})

	t.Run("OnlineCapped", func(t *testing.T) {
		p := open(t)
		all := []int64{1, 2, 3, 4, 5}
		for _, u := range all {
			add(t, p, 20, u, true)
		}
		add(t, p, 20, 3, false) // a second tab counts once
		for _, limit := range []int{0, -1, 3, 5, 6} {
			got, n, err := p.Online(ctx, 20, limit)
			if err != nil {
				t.Fatalf("Online(20, %d): %v", limit, err)
			}
			if want := min(max(limit, 0), 5); n != 5 || len(got) != want {
				t.Errorf("Online(20, %d) = %v, %d; want %d of 5 users, and 5", limit, got, n, want)
			}
			seen := map[int64]bool{}
			for _, u := range got {
				if !slices.Contains(all, u) || seen[u] {
					t.Errorf("Online(20, %d) = %v: %d is not present or listed twice", limit, got, u)
				}
				seen[u] = true
			}
		}
		if got, n, err := p.Online(ctx, 21, 3); err != nil || len(got) != 0 || n != 0 {
			t.Errorf("Online of an empty conversation = %v, %d, %v; want none", got, n, err)
		}
	})

	t.Run("OnlineOf", func(t *testing.T) {
		p := open(t)
		for _, u := range []int64{1, 2, 3} {
			add(t, p, 5, u, true)
		}
		add(t, p, 6, 4, true)
		add(t, p, chat.Everywhere, 4, true)
		for _, tc := range []struct {
			conv  int64
			users []int64
			want  []int64
		}{
			{5, []int64{3, 4, 1}, []int64{1, 3}},
			{5, []int64{4, 9}, nil},
			{5, nil, nil},
			{6, []int64{1, 2, 3, 4}, []int64{4}},
			{chat.Everywhere, []int64{1, 4}, []int64{4}},
			{7, []int64{1, 2, 3, 4}, nil},
		} {
			got, err := p.OnlineOf(ctx, tc.conv, tc.users)
			if err != nil {
				t.Fatalf("OnlineOf(%d, %v): %v", tc.conv, tc.users, err)
			}
			if diff := cmp.Diff(tc.want, got, sorted, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("OnlineOf(%d, %v) mismatch (-want +got):\n%s", tc.conv, tc.users, diff)
			}
		}
		remove(t, p, 5, 3, true)
		got, err := p.OnlineOf(ctx, 5, []int64{1, 2, 3})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]int64{1, 2}, got, sorted); diff != "" {
			t.Errorf("OnlineOf after Remove mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		p := open(t)
		var mu sync.Mutex
		firsts, lasts := 0, 0
		var wg sync.WaitGroup
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f, err := p.Add(ctx, 1, 7)
				if err != nil {
					t.Errorf("Add: %v", err)
					return
				}
				l, err := p.Remove(ctx, 1, 7)
				if err != nil {
					t.Errorf("Remove: %v", err)
				}
				mu.Lock()
				defer mu.Unlock()
				if f {
					firsts++
				}
				if l {
					lasts++
				}
			}()
		}
		wg.Wait()
		if firsts != lasts || firsts < 1 {
			t.Errorf("first transitions = %d, last = %d; want equal and at least 1", firsts, lasts)
		}
		wantOnline(t, p, 1, nil)
	})

	t.Run("ConcurrentUsers", func(t *testing.T) {
		p := open(t)
		var wg sync.WaitGroup
		for u := range int64(20) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 3 {
					if _, err := p.Add(ctx, 2, u); err != nil {
						t.Errorf("Add: %v", err)
					}
				}
				if u%2 == 1 {
					for range 3 {
						if _, err := p.Remove(ctx, 2, u); err != nil {
							t.Errorf("Remove: %v", err)
						}
					}
				}
			}()
		}
		wg.Wait()
		var want []int64
		for u := range int64(20) {
			if u%2 == 0 {
				want = append(want, u)
			}
		}
		wantOnline(t, p, 2, want)
		got, err := p.OnlineOf(ctx, 2, []int64{0, 1, 2, 3})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(sortedCopy(got), []int64{0, 2}) {
			t.Errorf("OnlineOf(2, [0 1 2 3]) = %v; want [0 2]", got)
		}
	})
}

func sortedCopy(s []int64) []int64 {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
