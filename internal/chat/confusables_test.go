package chat_test

import (
	"context"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
)

// confusableStores opens a fixture on each store.
var confusableStores = []struct {
	name string
	open func(t *testing.T) *fixture
}{
	{"sqlite", func(t *testing.T) *fixture { return newFixture(t, chat.Config{}) }},
	{"postgres", func(t *testing.T) *fixture { return postgresFixture(t) }},
}

// TestConfusableNames: a room or group whose name looks like another's of
// its kind (UTS #39 confusables: Cyrillic а, р, е for Latin a, p, e; the
// digit 1 for l) is refused with name_look_alike, and nothing is made. A
// room's refusal names the room it looks like; a group's, private, does not.
func TestConfusableNames(t *testing.T) {
	for _, st := range confusableStores {
		t.Run(st.name, func(t *testing.T) {
			ctx := context.Background()
			f := st.open(t)
			ada, _ := f.signIn(t, "ada@example.com", "Ada")
			bob, _ := f.signIn(t, "bob@example.com", "Bob")
			general := f.enter(t, ada, "general")
			for _, name := range []string{"g\u0435neral", "G\u0415NERAL", "genera1"} {
				r, err := f.svc.EnterRoom(ctx, bob, name)
				if err == nil {
					t.Errorf("EnterRoom(%+q) = room %d named %+q; want name_look_alike", name, r.ID, r.Name)
					continue
				}
				wantError(t, "EnterRoom("+name+")", err, chat.ErrConflict, chat.CodeNameLookAlike, "")
				if msg := err.Error(); !strings.Contains(msg, `"general"`) || !strings.Contains(msg, "looks like") {
					t.Errorf("EnterRoom(%+q): message %q; want it to say it looks like \"general\"", name, msg)
				}
				if r, err := f.store.RoomByName(ctx, name); err == nil {
					t.Errorf("after EnterRoom(%+q) refused: room %d named %+q", name, r.ID, r.Name)
				}
			}
			if joined, _, err := f.svc.Rooms(ctx, bob, 10); err != nil || len(joined) != 0 {
				t.Errorf("Bob's rooms after the refusals = %v, %v; want none", joined, err)
			}
			// So from the Django Channels endpoint, which enters no one.
			_, err := f.svc.EnterRoomAnonymous(ctx, "g\u0435neral", "192.0.2.1")
			wantError(t, "EnterRoomAnonymous(look-alike)", err, chat.ErrConflict, chat.CodeNameLookAlike, "")
			// Another case of the name is the room itself.
			if r, err := f.svc.EnterRoom(ctx, bob, "General"); err != nil || r.ID != general.ID {
				t.Errorf("EnterRoom(General) = room %d, %v; want room %d", r.ID, err, general.ID)
			}

			pp, err := f.svc.CreateGroup(ctx, ada, "PayPal", "", 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"\u0420\u0430yPal", "PayPa1"} {
				g, err := f.svc.CreateGroup(ctx, bob, name, "", 0)
				if err == nil {
					t.Errorf("CreateGroup(%+q) = group %d; want name_look_alike", name, g.ID)
					continue
				}
				wantError(t, "CreateGroup("+name+")", err, chat.ErrConflict, chat.CodeNameLookAlike, "")
				if strings.Contains(err.Error(), "PayPal") {
					t.Errorf("CreateGroup(%+q): message %q names the private group", name, err)
				}
			}
			if gs, err := f.svc.UserGroups(ctx, bob); err != nil || len(gs) != 0 {
				t.Errorf("Bob's groups after the refusals = %v, %v; want none", gs, err)
			}
			mine, err := f.svc.CreateGroup(ctx, bob, "Mine", "", 0)
			if err != nil {
				t.Fatal(err)
			}
			name := "P\u0430yP\u0430l"
			_, err = f.svc.UpdateGroup(ctx, bob, mine.ID, chat.GroupUpdate{Name: &name})
			wantError(t, "UpdateGroup(rename to a look-alike)", err, chat.ErrConflict, chat.CodeNameLookAlike, "")
			if g, _, err := f.svc.Group(ctx, bob, mine.ID); err != nil || g.Name != "Mine" {
				t.Errorf("Group(mine) = %q, %v; want still Mine", g.Name, err)
			}
			// The owner may respell the group's own name.
			if _, err := f.svc.UpdateGroup(ctx, ada, pp.ID, chat.GroupUpdate{Name: &name}); err != nil {
				t.Errorf("UpdateGroup(own look-alike): %v", err)
			}
		})
	}
}
