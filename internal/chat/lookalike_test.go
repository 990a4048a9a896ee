package chat_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
)

// lookAlikes are spellings of "Team" with a character that shows nothing
// inside: each looks like "Team", and would be another group.
var lookAlikes = []string{
	"Te\u200bam",     // ZERO WIDTH SPACE
	"Te\u2060am",     // WORD JOINER
	"Team\ufeff",     // ZERO WIDTH NO-BREAK SPACE (the byte-order mark)
	"Te\u00adam",     // SOFT HYPHEN
	"Te\u200dam",     // ZERO WIDTH JOINER between Latin letters
	"Te\u200cam",     // ZERO WIDTH NON-JOINER between Latin letters
	"Te\u180eam",     // MONGOLIAN VOWEL SEPARATOR
	"Te\u034fam",     // COMBINING GRAPHEME JOINER
	"Te\u3164am",     // HANGUL FILLER
	"Team\ufe0f",     // a variation selector after a letter that takes none
	"Te\u200eam",     // LEFT-TO-RIGHT MARK in Latin text
	"Team\u2061",     // FUNCTION APPLICATION, an invisible operator
	"Te\U000E0041am", // a tag character outside an emoji flag
}

// TestGroupNameLookAlikes: with a group "Team", no other group may be
// created as, or renamed to, "Team" with an invisible character inside.
func TestGroupNameLookAlikes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	if _, err := f.svc.CreateGroup(ctx, ada, "Team", "", 0); err != nil {
		t.Fatalf("CreateGroup(Team): %v", err)
	}
	other, err := f.svc.CreateGroup(ctx, ada, "Other", "", 0)
	if err != nil {
		t.Fatalf("CreateGroup(Other): %v", err)
	}
	for _, name := range lookAlikes {
		n := name
		g, err := f.svc.UpdateGroup(ctx, ada, other.ID, chat.GroupUpdate{Name: &n})
		if err == nil {
			t.Errorf("UpdateGroup(rename to %+q) = group named %+q; want invalid_field", name, g.Name)
			back := "Other"
			if _, err := f.svc.UpdateGroup(ctx, ada, other.ID, chat.GroupUpdate{Name: &back}); err != nil {
				t.Fatalf("UpdateGroup(rename back): %v", err)
			}
			continue
		}
		wantError(t, fmt.Sprintf("UpdateGroup(rename to %+q)", name), err, chat.ErrInvalid, chat.CodeInvalidField, "name")
	}
	for _, name := range lookAlikes {
		g, err := f.svc.CreateGroup(ctx, ada, name, "", 0)
		if err == nil {
			t.Errorf("CreateGroup(%+q) = group %d named %+q; want invalid_field", name, g.ID, g.Name)
			continue
		}
		wantError(t, fmt.Sprintf("CreateGroup(%+q)", name), err, chat.ErrInvalid, chat.CodeInvalidField, "name")
	}
}

// TestUserNameLookAlikes: a display name with an invisible character
// inside is refused, so one user cannot take another's name with a
// character that shows nothing.
func TestUserNameLookAlikes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	for _, name := range append([]string{"A\u200dda", "A\u200cda"}, lookAlikes...) {
		u, err := f.svc.SetName(ctx, ada, name)
		if err == nil {
			t.Errorf("SetName(%+q) = user named %+q; want invalid_field", name, u.Name)
			continue
		}
		wantError(t, fmt.Sprintf("SetName(%+q)", name), err, chat.ErrInvalid, chat.CodeInvalidField, "name")
	}
}

// TestNameInvisiblesKept: the invisible characters that real names need
// stay, where they do something: the joiners of emoji sequences and of
// Persian and the Indic scripts, the variation selectors of emoji and of
// ideographs, the tags of a subdivision flag, and the direction marks
// that place digits and punctuation in right-to-left names.
func TestNameInvisiblesKept(t *testing.T) {
	for _, name := range []string{
		"\U0001F468\u200d\U0001F469\u200d\U0001F467",                             // family: man, woman, girl
		"\U0001F3F3\ufe0f\u200d\U0001F308",                                       // rainbow flag
		"\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F", // Scotland
		"\U0001F469\U0001F3FD\u200d\U0001F4BB Ada",                               // woman technologist, medium skin tone
		"\U0001F441\ufe0f\u200d\U0001F5E8\ufe0f",                                 // eye in speech bubble
		"\u2764\ufe0f Team",                                                      // red heart, emoji presentation
		"#\ufe0f\u20e3 Team",                                                     // keycap
		"\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",                       // Persian: می‌خواهم
		"\u0915\u094d\u200d\u0937",                                               // Hindi: क्‍ष
		"\u0645\u0631\u064a\u0645",                                               // Arabic: Maryam
		"\u05e9\u05e8\u05d4 \u05dc\u05d5\u05d9",                                  // Hebrew: Sara Levi
		"\u05de\u05d9\u05db\u05dc (\u05e6\u05d5\u05d5\u05ea)\u200f",              // Hebrew, RLM after the closing parenthesis
		"\u0645\u0631\u064a\u0645 \u200e2",                                       // Arabic, LRM before a digit
		"\u845b\U000E0100\u98fe\u533a",                                           // Japanese: 葛飾区 with an ideographic variation selector
		"\u349e\ufe00",                                                           // a CJK compatibility ideograph's standardized variant
	} {
		for what, normalize := range map[string]func(string) (string, error){
			"NormalizeUserName": chat.NormalizeUserName, "NormalizeGroupName": chat.NormalizeGroupName,
		} {
			if got, err := normalize(name); err != nil || got != name {
				t.Errorf("%s(%+q) = %+q, %v; want it kept", what, name, got, err)
			}
		}
	}
}

// TestNameInvisiblesRefused: the characters that names keep for emoji,
// scripts and direction are refused where they do nothing.
func TestNameInvisiblesRefused(t *testing.T) {
	for _, name := range []string{
		"Team1\ufe0f",                      // U+FE0F after a digit, without the keycap
		"\U0001F600\ufe0f",                 // after an emoji that has no text variant
		"A\U000E0100",                      // an ideographic selector after a Latin letter
		"\U0001F642\u200d",                 // ZWJ after an emoji, nothing after
		"Team\u200d\U0001F642",             // ZWJ between a letter and an emoji
		"\U0001F642\u200d\u200d\U0001F642", // two in a row
		"\U0001F3F4\U000E0061\U000E0062\U000E0063\U000E007F",                // tags that make no flag
		"\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F Team", // the tags of Scotland's flag alone
		"\u05e9\u05e8\u05d4\u200f",                                          // RLM after the last letter
		"\u200f\u05e9\u05e8\u05d4",                                          // before the first
		"\u05e9\u05e8\u200f\u05d4",                                          // between letters
		"Ada\u200f!",                                                        // in a name without right-to-left letters
		"Ada \u200e2",
		"\u1820\u180e", // a Mongolian vowel separator last
	} {
		for what, normalize := range map[string]func(string) (string, error){
			"NormalizeUserName": chat.NormalizeUserName, "NormalizeGroupName": chat.NormalizeGroupName,
		} {
			got, err := normalize(name)
			if err == nil {
				t.Errorf("%s(%+q) = %+q; want invalid_field", what, name, got)
				continue
			}
			wantError(t, fmt.Sprintf("%s(%+q)", what, name), err, chat.ErrInvalid, chat.CodeInvalidField, "name")
		}
	}
}

// TestGroupStoredNameKept: a group named before a rule that now refuses its
// name keeps working. An update that sends the stored name unchanged, with
// another change, succeeds and leaves the name as it is; a rename to
// another refused name still fails.
func TestGroupStoredNameKept(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	g, err := f.svc.CreateGroup(ctx, ada, "Team", "", 0)
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	old := "Te\u200bam" // refused since invisible characters are
	if _, err := f.store.UpdateGroup(ctx, g.ID, chat.GroupUpdate{Name: &old}, ada.ID, f.clock.Now()); err != nil {
		t.Fatalf("store.UpdateGroup(name from before the rule): %v", err)
	}
	same, desc := old, "plans"
	got, err := f.svc.UpdateGroup(ctx, ada, g.ID, chat.GroupUpdate{Name: &same, Description: &desc})
	if err != nil {
		t.Fatalf("UpdateGroup(stored name unchanged, new description): %v; want the description changed", err)
	}
	if got.Name != old || got.Description != desc {
		t.Errorf("UpdateGroup = name %+q, description %+q; want %+q, %+q", got.Name, got.Description, old, desc)
	}
	other := "Te\u200bams"
	_, err = f.svc.UpdateGroup(ctx, ada, g.ID, chat.GroupUpdate{Name: &other})
	wantError(t, fmt.Sprintf("UpdateGroup(rename to %+q)", other), err, chat.ErrInvalid, chat.CodeInvalidField, "name")
}
