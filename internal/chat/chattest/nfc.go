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
