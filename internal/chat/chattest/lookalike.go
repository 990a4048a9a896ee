package chattest

import (
	"errors"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/internal/chat"
)

// Look-alike names (UTS #39 confusables): each is another spelling of a
// name that shows the same.
const (
	paypal       = "paypal"
	paypalCyr    = "\u0440\u0430ypal" // Cyrillic р and а
	general      = "General"
	generalCyr   = "g\u0435neral" // Cyrillic е
	good0        = "G0OD"         // digit zero
	helloCyrCaps = "\u041d\u0415LLO"
)

// wantLookAlike fails t unless err is the ErrNameLookAlike of a store,
// whose LookAlikeError names like (if like is not "").
func wantLookAlike(t *testing.T, what string, err error, like string) {
	t.Helper()
	if !errors.Is(err, chat.ErrNameLookAlike) || !errors.Is(err, chat.ErrConflict) {
		t.Errorf("%s: err = %v; want ErrNameLookAlike", what, err)
		return
	}
	var e *chat.LookAlikeError
	if like != "" && (!errors.As(err, &e) || e.Name != like) {
		t.Errorf("%s: err = %#v; want a LookAlikeError naming %q", what, err, like)
	}
}

// testRoomNameLookAlikes: a room whose name looks like an existing room's
// (its skeleton is the same) is not made; one that differs only in case
// is the same room, and rooms and groups do not clash.
func testRoomNameLookAlikes(t *testing.T, s chat.Store) {
	ctx := t.Context()
	pp := mustRoom(t, s, paypal)
	gen := mustRoom(t, s, general)
	good := mustRoom(t, s, "good")
	hello := mustRoom(t, s, "Hello")
	for _, tt := range []struct {
		name string
		like chat.Room
	}{
		{paypalCyr, pp},
		{"PAYPA1", pp},
		{generalCyr, gen},
		{"G\u0435NERAL", gen},
		{good0, good},
		{helloCyrCaps, hello},
	} {
		r, _, err := s.EnsureRoom(ctx, tt.name, t0)
		if err == nil {
			t.Errorf("EnsureRoom(%+q) = room %d named %+q; want ErrNameLookAlike", tt.name, r.ID, r.Name)
			continue
		}
		wantLookAlike(t, "EnsureRoom("+tt.name+")", err, tt.like.Name)
		if r, err := s.RoomByName(ctx, tt.name); !errors.Is(err, chat.ErrNotFound) {
			t.Errorf("RoomByName(%+q) after the refusal = room %d, %v; want ErrNotFound", tt.name, r.ID, err)
		}
	}
	// The same name in another case is the same room, not a look-alike.
	for _, name := range []string{"PayPal", "GENERAL", "general"} {
		r, _, err := s.EnsureRoom(ctx, name, t0)
		if err != nil || (r.ID != pp.ID && r.ID != gen.ID) {
			t.Errorf("EnsureRoom(%q) = room %d, %v; want the existing room", name, r.ID, err)
		}
	}
	// Names that only share letters are not look-alikes.
	for _, name := range []string{"paypal2", "generals", "goods"} {
		mustRoom(t, s, name)
	}
	// Per kind: a group may look like a room.
	ada := mustUser(t, s, "ada@example.com", "Ada")
	if _, _, _, err := s.CreateGroup(ctx, chat.NewGroup{Name: paypalCyr, MaxMembers: 3, OwnerID: ada.ID, At: t0}, createdEv); err != nil {
		t.Errorf("CreateGroup(%+q) beside room %q: %v; want a group (names are unique per kind)", paypalCyr, paypal, err)
	}
}

// testGroupNameLookAlikes: no group is created as, or renamed to, a name
// that looks like another group's; nothing is written then. A group may
// take a look-alike of its own name.
func testGroupNameLookAlikes(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ada := mustUser(t, s, "ada@example.com", "Ada")
	pp := mustGroup(t, s, ada, "PayPal", 5)
	other := mustGroup(t, s, ada, "Other", 5)
	for _, name := range []string{paypalCyr, "PAYPA1", "P\u0430yP\u0430l"} {
		g, _, _, err := s.CreateGroup(ctx, chat.NewGroup{Name: name, MaxMembers: 3, OwnerID: ada.ID, At: t0}, createdEv)
		if err == nil {
			t.Errorf("CreateGroup(%+q) = group %d; want ErrNameLookAlike", name, g.ID)
			continue
		}
		wantLookAlike(t, "CreateGroup("+name+")", err, pp.Name)
		_, changed, err := s.RenameGroup(ctx, other.ID, name, ada.ID, t0)
		if changed || err == nil {
			t.Errorf("RenameGroup(%+q) = changed %v, %v; want ErrNameLookAlike", name, changed, err)
			continue
		}
		wantLookAlike(t, "RenameGroup("+name+")", err, pp.Name)
		n := name
		if _, err := s.UpdateGroup(ctx, other.ID, chat.GroupUpdate{Name: &n}, ada.ID, t0); err == nil {
			t.Errorf("UpdateGroup(name %+q) succeeded; want ErrNameLookAlike", name)
		} else {
			wantLookAlike(t, "UpdateGroup("+name+")", err, pp.Name)
		}
	}
	// Same case-insensitive name: still name taken, not a look-alike.
	if _, _, _, err := s.CreateGroup(ctx, chat.NewGroup{Name: "PAYPAL", MaxMembers: 3, OwnerID: ada.ID, At: t0}, createdEv); !errors.Is(err, chat.ErrNameTaken) {
		t.Errorf("CreateGroup(PAYPAL): err = %v; want ErrNameTaken", err)
	}
	gs, err := s.UserGroups(ctx, ada.ID)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, g := range gs {
		ids = append(ids, g.ID)
	}
	if diff := cmp.Diff([]int64{pp.ID, other.ID}, ids); diff != "" {
		t.Errorf("groups after the refusals mismatch (-want +got):\n%s", diff)
	}
	if g, err := s.Group(ctx, other.ID); err != nil || g.Name != "Other" || g.LastSeq != 1 {
		t.Errorf("Group(other) = %+v, %v; want named Other, nothing appended", g, err)
	}
	// Its own look-alike: the group is the only one it looks like.
	if _, changed, err := s.RenameGroup(ctx, pp.ID, paypalCyr, ada.ID, t0); err != nil || !changed {
		t.Errorf("RenameGroup(own look-alike) = changed %v, %v; want renamed", changed, err)
	}
	// The old spelling now looks like it: still refused for another.
	_, _, _, err = s.CreateGroup(ctx, chat.NewGroup{Name: "paypal", MaxMembers: 3, OwnerID: ada.ID, At: t0}, createdEv)
	wantLookAlike(t, "CreateGroup(paypal) after the rename", err, paypalCyr)
}

// testNameLookAlikeConcurrent: of look-alike rooms, and groups, made at
// once, one is made and the others are refused as look-alikes.
func testNameLookAlikeConcurrent(t *testing.T, s chat.Store) {
	ctx := t.Context()
	ada := mustUser(t, s, "ada@example.com", "Ada")
	names := []string{paypal, paypalCyr, "PAYPA1", "p\u0430yp\u0430l", "\u0440aypal", "PayPaI"}
	for _, group := range []bool{false, true} {
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			made  = map[int64]bool{}
			alike int
			errs  []error
		)
		for _, name := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var id int64
				var err error
				if group {
					var g chat.Group
					g, _, _, err = s.CreateGroup(ctx, chat.NewGroup{Name: name, MaxMembers: 3, OwnerID: ada.ID, At: t0}, createdEv)
					id = g.ID
				} else {
					var r chat.Room
					r, _, err = s.EnsureRoom(ctx, name, t0)
					id = r.ID
				}
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					made[id] = true
				case errors.Is(err, chat.ErrNameLookAlike):
					alike++
				default:
					errs = append(errs, err)
				}
			}()
		}
		wg.Wait()
		if len(made) != 1 || len(errs) > 0 {
			t.Errorf("concurrent look-alikes (group %v): made %v, %d refused as look-alikes, errors %v; want one made", group, made, alike, errs)
		}
	}
}
