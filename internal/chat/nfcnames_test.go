package chat_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/parley-chat/parley/internal/chat"
)

// TestNFCRenames: names already in NFC stay; a decomposed name takes its
// NFC form unless another holds that key, and then a suffix, within the
// limit of characters, past the suffixes taken too.
func TestNFCRenames(t *testing.T) {
	long := strings.Repeat("e\u0301", 64) // 64 characters in NFC
	names := []chat.StoredName{
		{ID: 1, Name: "caf\u00e9", Key: "caf\u00e9"},
		{ID: 2, Name: "Cafe\u0301", Key: "cafe\u0301"},
		{ID: 3, Name: "caf\u00e9-2", Key: "caf\u00e9-2"},
		{ID: 5, Name: long, Key: long},
		{ID: 6, Name: strings.Repeat("\u00e9", 64), Key: strings.Repeat("\u00e9", 64)},
	}
	got := chat.NFCRenames(names, strings.ToLower, chat.MaxRoomNameLen)
	want := map[int64]string{
		2: "Caf\u00e9-3",
		5: strings.Repeat("\u00e9", 62) + "-2",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("NFCRenames mismatch (-want +got):\n%s", diff)
	}
}
