package chat_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
)

// TestRoomNameMarks: letters written with combining marks (Hindi and Thai
// vowel signs, an accent typed as its own character) make room names, in
// their composed form (NFC); marks that carry nothing, and characters
// that show nothing, do not.
func TestRoomNameMarks(t *testing.T) {
	tests := []roomNameCase{
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
	wantValidRoomNames(t, tests)
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

// TestRoomNameJoiners: the zero-width non-joiner and joiner, which Persian
// and the Indic scripts need between letters, make room names exactly
// where IDNA's CONTEXTJ rules (RFC 5892, Appendix A.1 and A.2) allow
// them: a joiner after a virama; a non-joiner after a virama, or between
// a letter that joins on its left and one that joins on its right.
// Anywhere else they show nothing, and would make a look-alike name.
func TestRoomNameJoiners(t *testing.T) {
	tests := []struct {
		name string
		code string // "" when valid
	}{
		{"می\u200cخواهم", ""},                 // Persian: "I want", ZWNJ between joining letters
		{"نامه\u200cها", ""},                  // Persian plural suffix
		{"क्\u200dष", ""},                     // Hindi: ZWJ after the virama (a half form)
		{"क्\u200cष", ""},                     // Hindi: ZWNJ after the virama (explicit virama)
		{"ക്\u200d", ""},                      // Malayalam chillu written with ZWJ, last
		{"بِ\u200cب", ""},                     // a mark (transparent) between the letter and ZWNJ
		{"ab\u200ccd", chat.CodeInvalidField}, // ZWNJ between Latin letters
		{"ab\u200dcd", chat.CodeInvalidField}, // ZWJ between Latin letters
		{"\u200c", chat.CodeInvalidField},     // alone
		{"\u200d", chat.CodeInvalidField},
		{"\u200cمی", chat.CodeInvalidField}, // first
		{"\u200dक्ष", chat.CodeInvalidField},
		{"می\u200c", chat.CodeInvalidField}, // last, without a virama before
		{"कष\u200d", chat.CodeInvalidField},
		{"क\u200dष", chat.CodeInvalidField},            // ZWJ after a letter, no virama
		{"ب\u200ca", chat.CodeInvalidField},            // ZWNJ before a letter that does not join
		{"ب\u200c-ب", chat.CodeInvalidField},           // nor before '-'
		{"ا\u200cب", chat.CodeInvalidField},            // alef joins on its right only: nothing to cut
		{"می\u200c\u200cخواهم", chat.CodeInvalidField}, // two in a row
	}
	for _, tt := range tests {
		got, err := chat.NormalizeRoomName(tt.name)
		if tt.code == "" {
			if err != nil || got != tt.name {
				t.Errorf("NormalizeRoomName(%+q) = %+q, %v; want it kept", tt.name, got, err)
			}
			continue
		}
		wantError(t, fmt.Sprintf("NormalizeRoomName(%+q)", tt.name), err, chat.ErrInvalid, tt.code, "name")
	}
}

// TestNameMarksLimit: a letter carries at most 8 combining marks in any
// name. The deepest stacks that scripts need stay within it (a Sanskrit
// stack in Tibetan, Hebrew with points and a cantillation mark,
// Vietnamese, which NFC composes, typed decomposed); "Zalgo" text, marks
// piled by the dozen above and below the letters, does not.
func TestNameMarksLimit(t *testing.T) {
	zalgo := "Z" + strings.Repeat("\u0336\u0317", 5) + "algo" // 10 marks on Z
	nine := "x" + strings.Repeat("\u0301", 9)                 // x and an acute do not compose
	eight := "x" + strings.Repeat("\u0301", 8)
	for _, name := range []string{
		"\u0f40\u0fb5\u0fa8\u0fb1\u0f71\u0f83",       // Tibetan: ཀ and five marks
		"\u05e9\u05b8\u05bc\u05c1\u0591\u05bd\u05dc", // Hebrew: ש and five marks, then ל
		"Vie\u0323\u0302t",                           // Vietnamese ệ decomposed
		eight,
	} {
		if err := chat.ValidRoomName(name); err != nil {
			t.Errorf("ValidRoomName(%+q) = %v; want nil", name, err)
		}
		if _, err := chat.NormalizeUserName(name); err != nil {
			t.Errorf("NormalizeUserName(%+q) = %v; want nil", name, err)
		}
	}
	for _, name := range []string{zalgo, nine, "y" + nine} {
		wantError(t, fmt.Sprintf("ValidRoomName(%+q)", name), chat.ValidRoomName(name), chat.ErrInvalid, chat.CodeInvalidField, "name")
		_, err := chat.NormalizeUserName(name)
		wantError(t, fmt.Sprintf("NormalizeUserName(%+q)", name), err, chat.ErrInvalid, chat.CodeInvalidField, "name")
		_, err = chat.NormalizeGroupName(name)
		wantError(t, fmt.Sprintf("NormalizeGroupName(%+q)", name), err, chat.ErrInvalid, chat.CodeInvalidField, "name")
	}
	// Marks that follow characters showing nothing are the letter's still.
	_, err := chat.NormalizeUserName("x" + strings.Repeat("\u0301\u200b", 9))
	wantError(t, "NormalizeUserName(marks between zero-width spaces)", err, chat.ErrInvalid, chat.CodeInvalidField, "name")
}

// TestRoomNameOutsideBMP: a letter outside the Basic Multilingual Plane
// with a mark that composes with nothing is kept as it is. x/text before
// v0.44.0 composed U+1042B with U+0308 to U+04F8, a Cyrillic letter: the
// name of another room.
func TestRoomNameOutsideBMP(t *testing.T) {
	for _, name := range []string{"\U0001042B\u0308", "ab\U00010403\u0308"} {
		if got, err := chat.NormalizeRoomName(name); err != nil || got != name {
			t.Errorf("NormalizeRoomName(%+q) = %+q, %v; want it kept", name, got, err)
		}
	}
}
