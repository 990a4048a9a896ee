package chat_test

import (
	"errors"
	"slices"
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
// skeleton, unless the store holds it already; each other one gets a key
// of its own, ending in its ID.
func TestSkeletonKeys(t *testing.T) {
	names := []chat.StoredName{
		{ID: 9, Name: "PAYPA1"},
		{ID: 3, Name: "\u0440\u0430ypal"},
		{ID: 4, Name: "general"},
		{ID: 7, Name: "paypal"},
	}
	tests := []struct {
		name   string
		stored []string
		want   []chat.StoredName
	}{
		{"none stored", nil, []chat.StoredName{
			{ID: 3, Name: "\u0440\u0430ypal", Key: "paypal"},
			{ID: 4, Name: "general", Key: "general"},
			{ID: 7, Name: "paypal", Key: "paypal\x1f#7"},
			{ID: 9, Name: "PAYPA1", Key: "paypal\x1f#9"},
		}},
		{"skeleton stored", []string{"paypal", "hello"}, []chat.StoredName{
			{ID: 3, Name: "\u0440\u0430ypal", Key: "paypal\x1f#3"},
			{ID: 4, Name: "general", Key: "general"},
			{ID: 7, Name: "paypal", Key: "paypal\x1f#7"},
			{ID: 9, Name: "PAYPA1", Key: "paypal\x1f#9"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := chat.SkeletonKeys(slices.Clone(names), func(key string) (bool, error) {
				return slices.Contains(tt.stored, key), nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("SkeletonKeys mismatch (-want +got):\n%s", diff)
			}
		})
	}
	failed := errors.New("store down")
	if _, err := chat.SkeletonKeys(names, func(string) (bool, error) { return false, failed }); !errors.Is(err, failed) {
		t.Errorf("SkeletonKeys with a failing store = %v; want %v", err, failed)
	}
}
