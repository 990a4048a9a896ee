package chat

import (
	"slices"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/bidi"
)

//go:generate go run gen_invisible.go -ucd $UCD

// checkInvisibles checks the characters of name s that show nothing: the
// format characters (Cf) and the rest of Unicode's Default_Ignorable_Code_Point
// (the Hangul fillers, variation selectors, the combining grapheme
// joiner, tags). Inside a name one would make a look-alike: "Te\u200bam"
// shows as "Team", and is another group. So, as PRECIS does (RFC 8264,
// whose Nickname profile, RFC 8266, is the IETF's rule for the names
// people choose), they are refused, but for those that do something where
// they stand:
//
//   - a zero-width joiner that joins two emoji into one (an emoji ZWJ
//     sequence of Unicode's UTS #51: 👨‍👩‍👧, 🏳️‍🌈), the first with its
//     variation selector or skin tone;
//   - the zero-width joiner and non-joiner where IDNA's CONTEXTJ takes them
//     (joinersOK: می‌خواهم, क्‍ष);
//   - a variation selector after a character that has a variant for it
//     (❤️, and the variants of CJK ideographs and Mongolian letters); the
//     ideographic ones (U+E0100–U+E01EF) after any unified ideograph, as
//     Japanese names need; the emoji ones after a digit, '#' or '*' only
//     in a keycap (1️⃣), since "1" with U+FE0F alone shows as "1";
//   - tags only in the emoji flags that are made of them (🏴󠁧󠁢󠁳󠁣󠁴󠁿);
//   - the Mongolian vowel separator between Mongolian letters, whose
//     shape it changes;
//   - the direction marks (U+200E, U+200F, U+061C) in a name with
//     right-to-left letters, beside a digit, punctuation or a space: there
//     they decide on which side of the words it shows. Between letters, at
//     either end beside a letter, or in a name with no right-to-left letter
//     they change nothing.
//
// PRECIS itself refuses all but the joiners of CONTEXTJ, emoji sequences
// and direction marks included; and it maps names with NFKC, which would
// change what people typed ("ﬁ" to "fi").
func checkInvisibles(s, what string) error {
	rs := []rune(s)
	ok := make([]bool, len(rs)) // rs[i] is a tag of an emoji flag
	for _, seq := range emojiTagSequences {
		for i := 0; ; {
			j := strings.Index(s[i:], seq)
			if j < 0 {
				break
			}
			from := len([]rune(s[:i+j])) + 1 // past the flag
			for k := range len([]rune(seq)) - 1 {
				ok[from+k] = true
			}
			i += j + len(seq)
		}
	}
	rtl := slices.ContainsFunc(rs, func(r rune) bool { return !dirMark(r) && rightToLeft(r) })
	emojiJoins := false
	for i, r := range rs {
		if !invisible(r) || ok[i] {
			continue
		}
		switch {
		case r == zwj && emojiJoin(rs, i):
			emojiJoins = true
			continue
		case r == zwj || r == zwnj:
			continue // checked by joinersOK below
		case unicode.Is(unicode.Variation_Selector, r):
			if i > 0 && takesSelector(rs, i) {
				continue
			}
			return Invalid(CodeInvalidField, "name", "the %s has a variation selector (%U) after a character that has no variant for it: it shows as nothing", what, r)
		case dirMark(r):
			if rtl && besideNeutral(rs, i) {
				continue
			}
			return Invalid(CodeInvalidField, "name", "a direction mark (%U) in a %s must stand beside a digit, punctuation or a space of a name with right-to-left letters; elsewhere it shows as nothing", r, what)
		case r == mvs && i > 0 && i+1 < len(rs) && mongolianLetter(rs[i-1]) && mongolianLetter(rs[i+1]):
			continue
		}
		return Invalid(CodeInvalidField, "name", "the %s contains %U, a character that shows as nothing: the name would look like another", what, r)
	}
	probe := s
	if emojiJoins {
		// The joiners of emoji are not CONTEXTJ's: joinersOK sees them as '-'.
		var b strings.Builder
		for i, r := range rs {
			if r == zwj && emojiJoin(rs, i) {
				r = '-'
			}
			b.WriteRune(r)
		}
		probe = b.String()
	}
	if !joinersOK(probe) {
		return Invalid(CodeInvalidField, "name", "a zero-width joiner or non-joiner in a %s must join two emoji, follow a virama, or stand between letters that join", what)
	}
	return nil
}

const mvs = '\u180e' // MONGOLIAN VOWEL SEPARATOR

// invisible reports whether r is a Default_Ignorable_Code_Point or a
// format character (Cf). Go's unicode package has no Default_Ignorable_Code_Point:
// it is Other_Default_Ignorable_Code_Point, Cf and the variation selectors
// (less white space and a few Cf that show), and the ranges Unicode keeps
// for more of them.
func invisible(r rune) bool {
	return unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) ||
		unicode.Is(unicode.Variation_Selector, r) ||
		r >= 0x2060 && r <= 0x206f || r >= 0xfff0 && r <= 0xfff8 || r >= 0xe0000 && r <= 0xe0fff
}

// emojiJoin reports whether the zero-width joiner rs[i] joins two emoji:
// Extended_Pictographic on either side, the one before with any variation
// selector U+FE0F or skin tone after it (UTS #51's emoji ZWJ sequence, as
// UAX #29 keeps it one character).
func emojiJoin(rs []rune, i int) bool {
	if i+1 >= len(rs) || !inRanges(extendedPictographic, rs[i+1]) {
		return false
	}
	j := i - 1
	for j >= 0 && (rs[j] == 0xfe0f || inRanges(emojiModifier, rs[j])) {
		j--
	}
	return j >= 0 && inRanges(extendedPictographic, rs[j])
}

// takesSelector reports whether the variation selector rs[i] makes a
// variant of the character before it.
func takesSelector(rs []rune, i int) bool {
	base, sel := rs[i-1], rs[i]
	if sel >= 0xe0100 && sel <= 0xe01ef {
		return unicode.Is(unicode.Unified_Ideograph, base)
	}
	if (sel == 0xfe0e || sel == 0xfe0f) && (base == '#' || base == '*' || base >= '0' && base <= '9') {
		return i+1 < len(rs) && rs[i+1] == '\u20e3' // a keycap: COMBINING ENCLOSING KEYCAP
	}
	bit := selectorBit(sel)
	k, found := slices.BinarySearchFunc(variants, base, func(v variant, r rune) int { return int(v.base - r) })
	return bit >= 0 && found && variants[k].selectors&(1<<bit) != 0
}

// variant is a character and the variation selectors it takes, a bit each
// (selectorBit).
type variant struct {
	base      rune
	selectors uint32
}

// selectorBit is the bit of variation selector r in variant.selectors:
// 0–15 for U+FE00–U+FE0F, 16–18 for U+180B–U+180D, 19 for U+180F; -1 for
// the others.
func selectorBit(r rune) int {
	switch {
	case r >= 0xfe00 && r <= 0xfe0f:
		return int(r - 0xfe00)
	case r >= 0x180b && r <= 0x180d:
		return 16 + int(r-0x180b)
	case r == 0x180f:
		return 19
	}
	return -1
}

type runeRange struct{ lo, hi rune }

func inRanges(t []runeRange, r rune) bool {
	_, found := slices.BinarySearchFunc(t, r, func(x runeRange, r rune) int {
		switch {
		case x.hi < r:
			return -1
		case x.lo > r:
			return 1
		}
		return 0
	})
	return found
}

// dirMark reports whether r is a direction mark: LEFT-TO-RIGHT MARK,
// RIGHT-TO-LEFT MARK or ARABIC LETTER MARK.
func dirMark(r rune) bool { return r == '\u200e' || r == '\u200f' || r == '\u061c' }

// rightToLeft reports whether r is a strong right-to-left character.
func rightToLeft(r rune) bool {
	p, _ := bidi.LookupRune(r)
	return p.Class() == bidi.R || p.Class() == bidi.AL
}

// besideNeutral reports whether a character before or after rs[i] is one
// whose side the bidirectional algorithm takes from its neighbours: a
// digit, punctuation, a symbol, a space.
func besideNeutral(rs []rune, i int) bool {
	neutral := func(r rune) bool {
		switch p, _ := bidi.LookupRune(r); p.Class() {
		case bidi.EN, bidi.ES, bidi.ET, bidi.AN, bidi.CS, bidi.WS, bidi.ON:
			return true
		}
		return false
	}
	return i > 0 && neutral(rs[i-1]) || i+1 < len(rs) && neutral(rs[i+1])
}

func mongolianLetter(r rune) bool { return unicode.IsLetter(r) && unicode.Is(unicode.Mongolian, r) }
