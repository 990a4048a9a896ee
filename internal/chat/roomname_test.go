package chat_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
)

// TestRoomNameMarks: letters written with combining marks (Hindi and Thai
// vowel signs, an accent typed as its own character) make room names, in
// their composed form (NFC); marks that carry nothing, and characters
// that show nothing, do not.
func TestRoomNameMarks(t *testing.T) {
	tests := []struct {
		name string
		code string // "" when valid
	}{
		{"नमस्ते", ""},        // Hindi: vowel signs (Mc, Mn) and virama
		{"ภาษาไทย", ""},       // Thai: vowel marks (Mn)
		{"cafe\u0301", ""},    // e and a combining acute accent
		{"caf\u00e9", ""},     // the same, precomposed
		{"a\u0301\u0302", ""}, // two marks on one letter
		{"9\u20e3", ""},       // an enclosing mark (Me) on a digit
		{"ทดสอบ-ที่_1", ""},
		{"\u0301abc", chat.CodeInvalidField},     // a mark first
		{"abc-\u0301", chat.CodeInvalidField},    // a mark after '-'
		{"abc_\u0301", chat.CodeInvalidField},    // a mark after '_'
		{"general\ufe0f", chat.CodeInvalidField}, // a variation selector shows nothing
		{"general\u034f", chat.CodeInvalidField}, // the combining grapheme joiner neither
		{"gen\u034f\u0301", chat.CodeInvalidField},
		{"general\u3164", chat.CodeInvalidField}, // a Hangul filler
		{"general\u200b", chat.CodeInvalidField}, // a zero-width space
	}
	for _, tt := range tests {
		err := chat.ValidRoomName(tt.name)
		if tt.code == "" {
			if err != nil {
				t.Errorf("ValidRoomName(%q) = %v; want nil", tt.name, err)
			}
			continue
		}
		wantError(t, fmt.Sprintf("ValidRoomName(%q)", tt.name), err, chat.ErrInvalid, tt.code, "name")
	}
}

// TestRoomNameNFC: "café" typed precomposed and decomposed is one room,
// kept and shown composed, and found by either spelling.
func TestRoomNameNFC(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	r1, err := f.svc.EnterRoom(ctx, ada, "Cafe\u0301")
	if err != nil {
		t.Fatalf("EnterRoom(decomposed): %v", err)
	}
	if r1.Name != "Caf\u00e9" {
		t.Errorf("EnterRoom(decomposed).Name = %q; want %q (NFC)", r1.Name, "Caf\u00e9")
	}
	r2, err := f.svc.EnterRoom(ctx, grace, "caf\u00e9")
	if err != nil {
		t.Fatalf("EnterRoom(precomposed): %v", err)
	}
	if r2.ID != r1.ID || r2.Members != 2 {
		t.Errorf("EnterRoom(precomposed) = room %d with %d members; want room %d with 2", r2.ID, r2.Members, r1.ID)
	}
	for _, name := range []string{"cafe\u0301", "CAF\u00c9", "CAFE\u0301"} {
		r, err := f.svc.RoomByName(ctx, name)
		if err != nil || r.ID != r1.ID {
			t.Errorf("RoomByName(%q) = room %d, %v; want room %d", name, r.ID, err, r1.ID)
		}
	}
	r3, err := f.svc.EnterRoomAnonymous(ctx, "cafe\u0301", "192.0.2.1")
	if err != nil || r3.ID != r1.ID {
		t.Errorf("EnterRoomAnonymous(decomposed) = room %d, %v; want room %d", r3.ID, err, r1.ID)
	}
	// A name over 64 characters decomposed, within them composed, is one.
	long := ""
	for range 64 {
		long += "e\u0301"
	}
	if err := chat.ValidRoomName(long); err != nil {
		t.Errorf("ValidRoomName(64 decomposed é) = %v; want nil", err)
	}
}
