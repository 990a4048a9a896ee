package chattest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/internal/chat"
)

// MigratedSkeletons checks a store just migrated to name skeletons from a
// database holding rooms 1 "paypal", 2 "раypal" (Cyrillic р and а), 3
// "PAYPA1" and 4 "general", groups 5 "РаyPal" and 6 "PayPal", and direct
// conversation 7, owned or made by user 1. got is its conversations, one
// "kind id name name_skel" (NULL for none) a row, by id. Of look-alikes the
// oldest keeps the skeleton and the later ones a key of their own; nobody
// is renamed; every room is found by its name as before; and a new
// look-alike is refused as looking like the oldest.
func MigratedSkeletons(t *testing.T, st chat.Store, got []string) {
	t.Helper()
	ctx := context.Background()
	want := []string{
		"room 1 paypal paypal",
		"room 2 \u0440\u0430ypal paypal\x1f#2",
		"room 3 PAYPA1 paypal\x1f#3",
		"room 4 general general",
		"group 5 \u0420\u0430yPal paypal",
		"group 6 PayPal paypal\x1f#6",
		"direct 7  NULL",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("conversations after the migration mismatch (-want +got):\n%s", diff)
	}
	at := time.Unix(100, 0)
	for name, id := range map[string]int64{"PayPal": 1, "\u0440\u0430ypal": 2, "paypa1": 3} {
		if r, _, err := st.EnsureRoom(ctx, name, at); err != nil || r.ID != id {
			t.Errorf("EnsureRoom(%+q) = room %d, %v; want room %d", name, r.ID, err, id)
		}
	}
	var e *chat.LookAlikeError
	if _, _, err := st.EnsureRoom(ctx, "p\u0430yp\u0430l", at); !errors.As(err, &e) || e.Name != "paypal" {
		t.Errorf("EnsureRoom(new look-alike) = %v; want a LookAlikeError naming paypal", err)
	}
	if _, _, _, err := st.CreateGroup(ctx, chat.NewGroup{Name: "P\u0430yp\u0430l", MaxMembers: 3, OwnerID: 1, At: at}, createdEv); !errors.As(err, &e) || e.Name != "\u0420\u0430yPal" {
		t.Errorf("CreateGroup(new look-alike) = %v; want a LookAlikeError naming group 5", err)
	}
	if _, _, _, err := st.CreateGroup(ctx, chat.NewGroup{Name: "PAYPAL", MaxMembers: 3, OwnerID: 1, At: at}, createdEv); !errors.Is(err, chat.ErrNameTaken) {
		t.Errorf("CreateGroup(PAYPAL) = %v; want ErrNameTaken (group 6)", err)
	}
	// A later look-alike keeps its name, but is renamed only to a name
	// that looks like no other group's, as any group is.
	if _, _, err := st.RenameGroup(ctx, 6, "PAYPAL", 1, at); !errors.As(err, &e) || e.Name != "\u0420\u0430yPal" {
		t.Errorf("RenameGroup(6, PAYPAL) = %v; want a LookAlikeError naming group 5", err)
	}
	if _, changed, err := st.RenameGroup(ctx, 6, "Pay Pal fans", 1, at); err != nil || !changed {
		t.Errorf("RenameGroup(6, Pay Pal fans) = %v, %v; want renamed", changed, err)
	}
}

// FilledSkeletons checks a store reopened after an older parley, which
// knows no skeletons, added rooms 10 "раypal", 11 "hello", 12 "HELL0" and
// groups 13 "Теаm" (Cyrillic Т, е, а), 14 "Crew" beside the keyed room 1
// "paypal" and group 2 "Team". got is as for MigratedSkeletons. The rows
// without a key get one by the migration's rule, nobody is renamed, and
// new look-alikes are refused as looking like the row that holds the
// skeleton.
func FilledSkeletons(t *testing.T, st chat.Store, got []string) {
	t.Helper()
	ctx := context.Background()
	if diff := cmp.Diff(FilledKeys, got); diff != "" {
		t.Errorf("conversations after reopening mismatch (-want +got):\n%s", diff)
	}
	at := time.Unix(100, 0)
	var e *chat.LookAlikeError
	for name, other := range map[string]string{"he11o": "hello", "p\u0430yp\u0430l": "paypal"} {
		if _, _, err := st.EnsureRoom(ctx, name, at); !errors.As(err, &e) || e.Name != other {
			t.Errorf("EnsureRoom(%+q) = %v; want a LookAlikeError naming %q", name, err, other)
		}
	}
	if _, _, _, err := st.CreateGroup(ctx, chat.NewGroup{Name: "\u0421rew", MaxMembers: 3, OwnerID: 1, At: at}, createdEv); !errors.As(err, &e) || e.Name != "Crew" {
		t.Errorf("CreateGroup(Cyrillic Сrew) = %v; want a LookAlikeError naming Crew", err)
	}
}

// FilledKeys are the conversations of FilledSkeletons once filled.
var FilledKeys = []string{
	"room 1 paypal paypal",
	"group 2 Team tearn",
	"room 10 \u0440\u0430ypal paypal\x1f#10",
	"room 11 hello hello",
	"room 12 HELL0 hello\x1f#12",
	"group 13 \u0422\u0435\u0430m tearn\x1f#13",
	"group 14 Crew crew",
}
