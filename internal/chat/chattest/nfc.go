package chattest

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/internal/chat"
)

// MigratedNamesNFC checks a store just migrated to names in NFC from a
// database holding the rows the adapters' tests call nfcRows: users 1 (in
// conjoining jamo) and 2, rooms 1 to 7 and 9 and group 8, some of whose
// names NFC changes. got is its users and conversations, one "user id name
// name_key" or "kind id name name_key" a row, sorted. Every name is in
// NFC, and the rooms and users are found by name again.
func MigratedNamesNFC(t *testing.T, st chat.Store, got []string) {
	t.Helper()
	ctx := context.Background()
	// The room found by a name before keeps it (5, the composed 豈, over
	// the older 4; 2, found by its key å, over 3); of two decomposed
	// spellings the older (6) takes the name, the newer a suffix. Keys are
	// unique per kind: group 8 and room 9 are both Café.
	want := []string{
		"group 8 Caf\u00e9 caf\u00e9",
		"room 1 \ud55c\uae00 \ud55c\uae00",
		"room 2 \u00c5 \u00e5",
		"room 3 \u00c5-2 \u00e5-2",
		"room 4 \u8c48-2 \u8c48-2",
		"room 5 \u8c48 \u8c48",
		"room 6 \u00c9t\u00e9 \u00e9t\u00e9",
		"room 7 \u00e9t\u00e9-2 \u00e9t\u00e9-2",
		"room 9 caf\u00e9 caf\u00e9",
		"user 1 \ud55c \ud55c",
		"user 2 Ada ada",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("names after the migration mismatch (-want +got):\n%s", diff)
	}
	for name, id := range map[string]int64{"\ud55c\uae00": 1, "\u00c5": 2, "\u8c48": 5, "\u00e9t\u00e9": 6, "\u00e9t\u00e9-2": 7} {
		if r, err := st.RoomByName(ctx, name); err != nil || r.ID != id {
			t.Errorf("RoomByName(%+q) = room %d, %v; want room %d", name, r.ID, err, id)
		}
	}
	us, err := st.SearchUsers(ctx, chat.UserSearch{NamePrefix: "\ud55c", Viewer: 2})
	if err != nil || len(us) != 1 || us[0].ID != 1 {
		t.Errorf("SearchUsers(%+q) = %v, %v; want user 1", "\ud55c", us, err)
	}
}

// NameKeyRows are the rows the adapters' tests store before name keys
// were in NFC (chat.NameKey), by id, each with the key strings.ToLower
// gave it: user 1 and rooms 1 to 3 and 5, group 4. A capital without a
// composed form (H̱, J̌, Ϊ́) had a decomposed key, which the name typed
// with the small letter composed (ẖ, ǰ, ΐ) did not find.
var NameKeyRows = []struct {
	Kind string // "user", "room" or "group"
	ID   int64
	Name string
	Key  string
}{
	{"user", 1, "H\u0331ugo", "h\u0331ugo"},
	{"room", 1, "\u1e96ello", "\u1e96ello"},
	{"room", 2, "H\u0331ELLO", "h\u0331ello"},
	{"room", 3, "J\u030cab", "j\u030cab"},
	{"group", 4, "\u03aa\u0301ab", "\u03ca\u0301ab"},
	{"room", 5, "general", "general"},
}

// MigratedNameKeys checks a store just migrated to name keys in NFC from
// a database holding NameKeyRows. got is its users and conversations, one
// "user id name name_key" or "kind id name name_key" a row, sorted. Names
// are as they were; every key is chat.NameKey of its name but room 2's,
// whose new key room 1, older, holds: it keeps its old one, as a room
// made before look-alikes were refused keeps its name. The rooms are found
// by their names in any case.
func MigratedNameKeys(t *testing.T, st chat.Store, got []string) {
	t.Helper()
	ctx := context.Background()
	want := []string{
		"group 4 \u03aa\u0301ab \u0390ab",
		"room 1 \u1e96ello \u1e96ello",
		"room 2 H\u0331ELLO h\u0331ello",
		"room 3 J\u030cab \u01f0ab",
		"room 5 general general",
		"user 1 H\u0331ugo \u1e96ugo",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("name keys after the migration mismatch (-want +got):\n%s", diff)
	}
	for name, id := range map[string]int64{
		"\u1e96ello": 1, "H\u0331ello": 1, "H\u0331ELLO": 1,
		"\u01f0ab": 3, "J\u030cAB": 3,
		"General": 5,
	} {
		if r, err := st.RoomByName(ctx, name); err != nil || r.ID != id {
			t.Errorf("RoomByName(%+q) = room %d, %v; want room %d", name, r.ID, err, id)
		}
	}
	if r, err := st.Room(ctx, 2); err != nil || r.Name != "H\u0331ELLO" {
		t.Errorf("Room(2) = %+v, %v; want the room as it was", r, err)
	}
}
