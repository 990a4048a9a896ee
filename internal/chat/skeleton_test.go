package chat_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/internal/chat"
)

// TestNameSkeleton: names that show alike, in either case, have one
// skeleton; names that only share letters do not.
func TestNameSkeleton(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
	}{
		{"paypal", "\u0440\u0430ypal", true},        // Cyrillic р, а
		{"general", "g\u0435neral", true},           // Cyrillic е
		{"general", "genera1", true},                // digit 1
		{"good", "G0OD", true},                      // digit 0, capitals
		{"hello", "\u041d\u0415LLO", true},          // Cyrillic capitals Н, Е
		{"kat", "\u039a\u0391\u03a4", true},         // Greek capitals
		{"modern", "rnodern", true},                 // rn
		{"mall", "MAIL", true},                      // capital I is l
		{"Team", "team", true},                      // case
		{"caf\u00e9", "cafe\u0301", true},           // NFC and NFD
		{"paypal", "paypal2", false},                // more letters
		{"mail", "mall", false},                     // small i is no l
		{"\u043a\u0430\u0442", "kat", false},        // Cyrillic small к is no k
		{"\u03bf\u03b4\u03bf\u03c3", "odos", false}, // Greek small δ, σ
	}
	for _, tt := range tests {
		a, b := chat.NameSkeleton(tt.a), chat.NameSkeleton(tt.b)
		if (a == b) != tt.same {
			t.Errorf("NameSkeleton(%+q) = %+q, NameSkeleton(%+q) = %+q; want equal %v", tt.a, a, tt.b, b, tt.same)
		}
	}
}

// TestSkeletonKeys: of names that look alike, the oldest keeps the
// skeleton; each later one gets a key of its own, ending in its ID.
func TestSkeletonKeys(t *testing.T) {
	got := chat.SkeletonKeys([]chat.StoredName{
		{ID: 9, Name: "PAYPA1"},
		{ID: 3, Name: "\u0440\u0430ypal"},
		{ID: 4, Name: "general"},
		{ID: 7, Name: "paypal"},
	})
	want := []chat.StoredName{
		{ID: 3, Name: "\u0440\u0430ypal", Key: "paypal"},
		{ID: 4, Name: "general", Key: "general"},
		{ID: 7, Name: "paypal", Key: "paypal\x1f#7"},
		{ID: 9, Name: "PAYPA1", Key: "paypal\x1f#9"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SkeletonKeys mismatch (-want +got):\n%s", diff)
	}
}
