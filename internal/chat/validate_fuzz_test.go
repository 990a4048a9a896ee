package chat

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// The fuzz targets of this file hold the validators to what
// docs/protocol.md says of names, addresses and bodies. Their seeds run in
// every go test; go test -fuzz explores further.

// nameSeeds are inputs that need each rule of the validators.
var nameSeeds = []string{
	"", " ", "general", "General", "go-nuts_2026", "Été", "日本語", "한국어", "οδοσ", "ΟΔΟΣ", "οδος",
	"İstanbul", "ǅemal", "K", "ß", "two words", "  Ada \t Lovelace\n", "a/b", "dot.name",
	"general\u3164", "\u115fgeneral", "Ada\x00", "Ada\x1b[31m", "\u0085x\u00a0y\u2028z",
	"e\u0301", "\u0301e", "e-\u0301", "नमस्ते", "ที่\ufe0f", "\u1100\u1161", "\u212b", "\u200b", "\ufeffbom", "می\u200cخواهم", "क्\u200dष", "क्\u200cष", "a\u200cb", "ب\u200ca", "\u200dक्", "ക്\u200d", "x\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301", "x\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301", "a\u0301\u200b\u0301", "Te\u200bam", "Team\ufe0f", "1\ufe0f\u20e3", "\U0001F468\u200d\U0001F469\u200d\U0001F467", "\U0001F3F3\ufe0f\u200d\U0001F308", "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F", "\u05e9\u05e8\u05d4!\u200f", "\u845b\U000E0100", strings.Repeat("r", 64), strings.Repeat("é", 65), strings.Repeat("n", 41),
	"ada@example.com", "  Ada@Example.COM \n", "a.b+tag@mail.example.org", "Ada <ada@example.com>",
	"\"a b\"@example.com", "ada@[127.0.0.1]", "ADA@EXAMPLE.İO", "ada@xn--bcher-kva.example", "ü@bücher.example",
}

// wantInvalid fails unless err is nil or an ErrInvalid of field.
func wantInvalid(t *testing.T, what string, err error, field string) {
	t.Helper()
	if err == nil {
		return
	}
	e := AsError(err)
	if e == nil || !errors.Is(err, ErrInvalid) || e.Field != field || e.Message == "" {
		t.Fatalf("%s: error %#v; want ErrInvalid of field %q", what, err, field)
	}
}

func FuzzValidRoomName(f *testing.F) {
	for _, s := range nameSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidRoomName(s)
		wantInvalid(t, "ValidRoomName", err, "name")
		if err != nil {
			return
		}
		// Letters, digits, '-' and '_', and marks on a letter or digit,
		// in the name as kept: its NFC form, which is a name too.
		n, err := NormalizeRoomName(s)
		if err != nil || n != norm.NFC.String(s) {
			t.Fatalf("NormalizeRoomName(%q) = %q, %v; want its NFC form", s, n, err)
		}
		if !utf8.ValidString(s) || utf8.RuneCountInString(n) > MaxRoomNameLen {
			t.Fatalf("ValidRoomName(%q) accepts a name that is not 1-%d characters of UTF-8", s, MaxRoomNameLen)
		}
		prev := '-'
		marks := 0 // on the letter or digit before
		rs := []rune(n)
		for i, r := range rs {
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				marks = 0
			} else if unicode.IsMark(r) {
				if marks++; marks > MaxMarks {
					t.Fatalf("NormalizeRoomName(%q) accepts %d marks on one letter in %q", s, marks, n)
				}
			}
			if r == zwj || r == zwnj {
				if !joinerFits(rs, i) {
					t.Fatalf("NormalizeRoomName(%q) accepts %q at %d in %q", s, r, i, n)
				}
				continue
			}
			ok := r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) ||
				unicode.IsMark(r) && prev != '-' && prev != '_'
			if !ok || !showsSomething(r) {
				t.Fatalf("NormalizeRoomName(%q) accepts %q in %q", s, r, n)
			}
			prev = r
		}
		// Rooms are one by each letter's lower case: the other spellings
		// of an accepted name are names too, and name the same room.
		key := strings.ToLower(n)
		for _, other := range []string{key, strings.ToUpper(s), strings.ToTitle(s)} {
			if err := ValidRoomName(other); err != nil && strings.ToLower(norm.NFC.String(other)) == key {
				t.Fatalf("ValidRoomName(%q) = nil, but %q, the same room, is refused: %v", s, other, err)
			}
		}
		if strings.ToLower(key) != key {
			t.Fatalf("room key of %q is not stable: %q, then %q", s, key, strings.ToLower(key))
		}
	})
}

func FuzzNormalizeUserName(f *testing.F) {
	for _, s := range nameSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := NormalizeUserName(s)
		wantInvalid(t, "NormalizeUserName", err, "name")
		if err != nil {
			return
		}
		checkNormalName(t, "NormalizeUserName", s, got, MaxUserNameLen)
		if again, err := NormalizeUserName(got); err != nil || again != got {
			t.Fatalf("NormalizeUserName(%q) = %q, which normalizes to %q, %v", s, got, again, err)
		}
	})
}

func FuzzNormalizeGroupName(f *testing.F) {
	for _, s := range nameSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := NormalizeGroupName(s)
		wantInvalid(t, "NormalizeGroupName", err, "name")
		if err != nil {
			return
		}
		checkNormalName(t, "NormalizeGroupName", s, got, MaxGroupNameLen)
		if again, err := NormalizeGroupName(got); err != nil || again != got {
			t.Fatalf("NormalizeGroupName(%q) = %q, which normalizes to %q, %v", s, got, again, err)
		}
	})
}

// joinerFits reports whether the joiner or non-joiner rs[i] has what
// CONTEXTJ needs around it, by a test of its own, coarser than
// Joining_Type: a virama (combining class 9) just before it; or, for a
// non-joiner, letters of a script that joins (not Latin) on both sides,
// past any marks.
func joinerFits(rs []rune, i int) bool {
	if i > 0 && norm.NFC.PropertiesString(string(rs[i-1])).CCC() == 9 {
		return true
	}
	if rs[i] == zwj {
		return false
	}
	joins := func(r rune) bool { return unicode.IsLetter(r) && !unicode.Is(unicode.Latin, r) }
	j := i - 1
	for j >= 0 && unicode.IsMark(rs[j]) {
		j--
	}
	k := i + 1
	for k < len(rs) && unicode.IsMark(rs[k]) {
		k++
	}
	return j >= 0 && k < len(rs) && joins(rs[j]) && joins(rs[k])
}

// checkNormalName checks a normalized display or group name: UTF-8 that
// PostgreSQL stores as given (no NUL), 1 to max characters with no control
// characters, white space only single spaces between words.
func checkNormalName(t *testing.T, what, in, got string, max int) {
	t.Helper()
	if got == "" || !utf8.ValidString(got) || utf8.RuneCountInString(got) > max {
		t.Fatalf("%s(%q) = %q: not 1-%d characters of UTF-8", what, in, got, max)
	}
	if strings.IndexFunc(got, unicode.IsControl) >= 0 {
		t.Fatalf("%s(%q) = %q, with a control character", what, in, got)
	}
	if strings.Join(strings.Fields(got), " ") != got {
		t.Fatalf("%s(%q) = %q, with white space other than single spaces between words", what, in, got)
	}
	for _, r := range got {
		// Of the characters that show nothing, a name keeps only those
		// that do something where they stand (checkInvisibles).
		kept := r == zwj || r == zwnj || unicode.Is(unicode.Variation_Selector, r) ||
			r >= 0xe0020 && r <= 0xe007f || dirMark(r) || r == mvs
		if invisible(r) && !kept {
			t.Fatalf("%s(%q) = %q, with %U, which shows nothing", what, in, got, r)
		}
	}
	marks := 0
	for _, r := range got {
		if unicode.IsMark(r) {
			if marks++; marks > MaxMarks {
				t.Fatalf("%s(%q) = %q, with more than %d marks on one character", what, in, got, MaxMarks)
			}
		} else if showsSomething(r) {
			marks = 0
		}
	}
}

func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range nameSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := NormalizeEmail(s)
		wantInvalid(t, "NormalizeEmail", err, "email")
		if err != nil {
			return
		}
		if len(got) > MaxEmailLen || !utf8.ValidString(got) || strings.IndexFunc(got, unicode.IsControl) >= 0 || got != strings.ToLower(got) {
			t.Fatalf("NormalizeEmail(%q) = %q", s, got)
		}
		if again, err := NormalizeEmail(got); err != nil || again != got {
			t.Fatalf("NormalizeEmail(%q) = %q, which normalizes to %q, %v", s, got, again, err)
		}
	})
}

func FuzzCheckBody(f *testing.F) {
	for _, s := range append(nameSeeds, "hello", "\n\t", "a\x00b", strings.Repeat("é", 10), strings.Repeat("é", 11), "🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉") {
		f.Add(s)
	}
	const max = 10
	f.Fuzz(func(t *testing.T, body string) {
		err := checkBody(body, max)
		wantInvalid(t, "checkBody", err, "body")
		if err != nil {
			return
		}
		if !utf8.ValidString(body) || strings.IndexByte(body, 0) >= 0 || strings.TrimSpace(body) == "" || utf8.RuneCountInString(body) > max {
			t.Fatalf("checkBody(%q) = nil", body)
		}
	})
}
