package chat

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
)

// Limits on input sizes.
const (
	MaxRoomNameLen = 64
	MaxUserNameLen = 40
	MaxEmailLen    = 254
	MaxClientIDLen = 64

	// MaxMarks is how many combining marks one character of a name may
	// carry. The deepest stacks that scripts need have about five (a
	// Sanskrit stack in Tibetan: ཀ with ྵ ྨ ྱ ཱ ྃ; Hebrew with points
	// and cantillation), and Vietnamese, whose letters carry two, is
	// composed by NFC; "Zalgo" text piles marks by the dozen on each
	// letter, over the lines above and below. Unicode's Stream-Safe Text
	// Format allows 30, which still lets a 64-character name cover a
	// screen.
	MaxMarks = 8
)

// NormalizeEmail trims an address, takes it to NFC, lower case, with an
// internationalized domain in Unicode (FoldEmail), and checks its form.
// Addresses are compared in that form alone: "café@example.com" typed
// with a precomposed é and with e and a combining acute accent is one
// address, as net/mail takes UTF-8 local parts and domains, and so is
// "ana@bücher.example" written "ana@xn--bcher-kva.example". The domain
// must be a name with a dot: not a single label (localhost) nor a host by
// its address ([10.0.0.5], or 10.0.0.5: no top-level domain is all
// digits), which name the relay's own host or one in its
// network rather than a user's mailbox. An internationalized domain must
// be a valid one (see idnaProfile), and the address, its domain in ASCII
// as it is mailed (EmailASCII), at most MaxEmailLen bytes.
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", Invalid(CodeMissingField, "email", "email is required")
	}
	if len(s) > 4*MaxEmailLen {
		// Longer than any that composing could bring within the limit.
		return "", Invalid(CodeTooLong, "email", "email is longer than %d characters", MaxEmailLen)
	}
	s = FoldEmail(s)
	if len(s) > MaxEmailLen {
		return "", Invalid(CodeTooLong, "email", "email is longer than %d characters", MaxEmailLen)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return "", Invalid(CodeInvalidField, "email", "%q is not an email address", s)
	}
	at := strings.LastIndexByte(s, '@')
	if domain := s[at+1:]; !strings.Contains(domain, ".") || strings.HasPrefix(domain, "[") || numericTLD(domain) {
		return "", Invalid(CodeInvalidField, "email", "%q is not an email address", s)
	}
	if isIDN(s[at+1:]) {
		ascii, err := idnaProfile.ToASCII(s[at+1:])
		if err != nil {
			return "", Invalid(CodeInvalidField, "email", "%q is not an email address: its domain is not a valid internationalized domain name", s)
		}
		if at+1+len(ascii) > MaxEmailLen {
			return "", Invalid(CodeTooLong, "email", "email is longer than %d characters with its domain in ASCII (%s)", MaxEmailLen, ascii)
		}
	}
	return s, nil
}

// numericTLD reports whether the last label of domain is all digits: no
// top-level domain is, and a domain such as 10.0.0.5 is an IPv4 address
// without the brackets of a domain literal, which a relay resolving names
// with getaddrinfo takes as that address.
func numericTLD(domain string) bool {
	tld := domain[strings.LastIndexByte(domain, '.')+1:]
	return tld != "" && strings.Trim(tld, "0123456789") == ""
}

// idnaProfile checks and converts internationalized domains: UTS #46
// processing for lookup, nontransitional (faß.de is not fass.de, as
// IDNA2008 has it), host names' characters only (STD3), hyphens, joiners
// and the Bidi rule checked, labels of 1 to 63 bytes in ASCII.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.BidiRule(),
	idna.CheckHyphens(true),
	idna.CheckJoiners(true),
	idna.VerifyDNSLength(true),
)

// isIDN reports whether domain is an internationalized domain name: one
// with a character outside ASCII or a label in ASCII form ("xn--").
// Other domains are taken as they were before IDNA was checked.
func isIDN(domain string) bool {
	for i := 0; i < len(domain); i++ {
		if domain[i] >= utf8.RuneSelf {
			return true
		}
	}
	return strings.HasPrefix(domain, "xn--") || strings.Contains(domain, ".xn--")
}

// EmailASCII returns the address s, as NormalizeEmail returns it, with
// its domain in ASCII (its labels A-labels, "xn--" and punycode), the
// form that goes in the SMTP envelope and the To header for a relay that
// does not take UTF-8 (SMTPUTF8): "ana@bücher.example" becomes
// "ana@xn--bcher-kva.example". A local part outside ASCII is kept: it has
// no ASCII form, and only a relay that takes UTF-8 takes it.
func EmailASCII(s string) (string, error) {
	at := strings.LastIndexByte(s, '@')
	if at < 0 || !isIDN(s[at+1:]) {
		return s, nil
	}
	ascii, err := idnaProfile.ToASCII(s[at+1:])
	if err != nil {
		return "", Invalid(CodeInvalidField, "email", "%q is not an email address: its domain is not a valid internationalized domain name", s)
	}
	return s[:at+1] + ascii, nil
}

// FoldEmail is an address in Unicode's composed form (NFC), lower case:
// NFC, then strings.ToLower, then NFC again. The order matters both ways.
// Lower-casing first would part canonically equal spellings: U+0130 (İ)
// lower-cases to "i", but "I" with U+0307 to "i" with the dot kept. And
// lower-casing can undo NFC: "İ" with U+0301 is in NFC, but "i" with
// U+0301 composes to "í". Lower-casing and NFC repeat, a few times at
// most, until the address is stable, as every stored address must be: it
// is its own FoldEmail. (x/text before v0.44.0 composed U+1042B with
// U+0308 to U+04F8, a capital, which the repeat lower-cased.) Then an
// internationalized domain (isIDN) that is valid is taken to Unicode,
// its labels U-labels: "XN--BCHER-KVA.example" becomes "bücher.example".
func FoldEmail(s string) string {
	s = norm.NFC.String(s)
	for range 4 {
		t := norm.NFC.String(strings.ToLower(s))
		if t == s {
			break
		}
		s = t
	}
	if at := strings.LastIndexByte(s, '@'); at >= 0 && isIDN(s[at+1:]) {
		// In NFC, lower case, and the same whichever form each label
		// was written in. A domain that is not valid is left as it is,
		// for NormalizeEmail to refuse.
		if d, err := idnaProfile.ToUnicode(s[at+1:]); err == nil {
			s = s[:at+1] + d
		}
	}
	return s
}

// ValidRoomName checks a room name as NormalizeRoomName does.
func ValidRoomName(s string) error {
	_, err := NormalizeRoomName(s)
	return err
}

// NormalizeRoomName returns a room name in Unicode's composed form (NFC),
// so that "café" typed with a precomposed é and with e and a combining
// acute accent names one room, and checks it: 1–64 letters, digits, '-'
// or '_', where a letter or digit may carry combining marks (as the vowel
// signs of Hindi and Thai do), but a mark may not start the name or follow
// '-' or '_'. The characters that show as nothing (the Hangul fillers,
// variation selectors, the combining grapheme joiner) are refused: a name
// with one looks like the name without it, and is another room. Of them,
// the zero-width non-joiner and joiner, which Persian and the Indic
// scripts need, are taken exactly where IDNA allows them (see joinersOK).
func NormalizeRoomName(s string) (string, error) {
	if s == "" {
		return "", Invalid(CodeMissingField, "name", "room name is required")
	}
	if !utf8.ValidString(s) {
		return "", Invalid(CodeInvalidField, "name", "room name is not valid UTF-8")
	}
	if len(s) > 16*MaxRoomNameLen {
		// Longer than any that composing could bring within the limit.
		return "", Invalid(CodeTooLong, "name", "room name is longer than %d characters", MaxRoomNameLen)
	}
	s = norm.NFC.String(s)
	if utf8.RuneCountInString(s) > MaxRoomNameLen {
		return "", Invalid(CodeTooLong, "name", "room name is longer than %d characters", MaxRoomNameLen)
	}
	base := false // the rune before is a letter, a digit or a mark on one
	for _, r := range s {
		switch {
		case r == zwnj || r == zwj:
			continue // checked by joinersOK below
		case !showsSomething(r):
			// Refused below, letter or mark.
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			base = true
			continue
		case unicode.IsMark(r):
			if base {
				continue
			}
			return "", Invalid(CodeInvalidField, "name", "a room name cannot start with a combining mark, nor have one after '-' or '_'")
		case r == '-' || r == '_':
			base = false
			continue
		}
		return "", Invalid(CodeInvalidField, "name", "room names use letters, digits, '-' and '_' only")
	}
	if tooManyMarks(s) {
		return "", Invalid(CodeInvalidField, "name", "a character of a room name carries more than %d combining marks", MaxMarks)
	}
	if !joinersOK(s) {
		return "", Invalid(CodeInvalidField, "name", "a zero-width joiner or non-joiner in a room name must follow a virama, or stand between letters that join")
	}
	return s, nil
}

const (
	zwnj = '\u200c' // ZERO WIDTH NON-JOINER
	zwj  = '\u200d' // ZERO WIDTH JOINER
)

// joinCheck checks the joiners of a string; see joinersOK.
var joinCheck = precis.NewFreeform()

// joinersOK reports whether every zero-width joiner and non-joiner in s
// stands where IDNA's CONTEXTJ rules (RFC 5892, Appendix A.1 and A.2)
// allow it: a joiner only after a virama (canonical combining class 9); a
// non-joiner after a virama, or where Joining_Type matches
// (L|D) T* ZWNJ T* (R|D), between letters that would join but for it.
// Elsewhere they change nothing that shows.
//
// The rules and the Joining_Type table are x/text's PRECIS, which applies
// them as RFC 8264 says. Its other rules (the classes of characters, the
// contextual rules for the middle dot, Greek and Hebrew punctuation,
// Arabic-Indic digits) are not wanted here, so it is given a copy of s in
// which every rune but the joiners, and the letters and marks it allows,
// is '-': a rune that joins nothing, as the runes it stands for (digits,
// punctuation, symbols, spaces) join nothing. golang.org/x/net/idna's
// CheckJoiners would need no copy but is wrong after a non-joiner: it
// takes any rune that joins nothing there (ZWNJ before a Latin letter or
// a space) as the right side.
func joinersOK(s string) bool {
	if !strings.ContainsRune(s, zwnj) && !strings.ContainsRune(s, zwj) {
		return true
	}
	probe := strings.Map(func(r rune) rune {
		if r == zwnj || r == zwj || (unicode.IsLetter(r) || unicode.IsMark(r)) && joinCheck.Allowed().Contains(r) {
			return r
		}
		return '-'
	}, s)
	_, err := joinCheck.String(probe)
	return err == nil
}

// NormalizeUserName trims a display name and checks it.
func NormalizeUserName(s string) (string, error) {
	return normalizeName(s, "name", MaxUserNameLen)
}

// normalizeName trims a name that others see, a user's or a group's, to
// single spaces between words, takes it to NFC and checks it: 1 to max
// characters of UTF-8, no control characters, not only characters that show nothing (the
// Hangul fillers, zero-width spaces), none of the controls that turn
// the direction of the text after them (U+202A–U+202E, U+2066–U+2069): a
// name with U+202E shows what follows it backwards; and no character that
// shows nothing but where it does something (see checkInvisibles). what
// names the name in messages ("name", "group name").
func normalizeName(s, what string, max int) (string, error) {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" || strings.IndexFunc(s, showsSomething) < 0 {
		return "", Invalid(CodeMissingField, "name", "%s is required", what)
	}
	if !utf8.ValidString(s) {
		return "", Invalid(CodeInvalidField, "name", "%s is not valid UTF-8", what)
	}
	// Composed (NFC), as room names are: two spellings of one name look
	// alike, and must be one name (a group's is unique).
	s = norm.NFC.String(s)
	if utf8.RuneCountInString(s) > max {
		return "", Invalid(CodeTooLong, "name", "%s is longer than %d characters", what, max)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "", Invalid(CodeInvalidField, "name", "%s contains control characters", what)
	}
	if strings.IndexFunc(s, turnsDirection) >= 0 {
		return "", Invalid(CodeInvalidField, "name", "%s contains characters that turn the direction of text", what)
	}
	if tooManyMarks(s) {
		return "", Invalid(CodeInvalidField, "name", "a character of the %s carries more than %d combining marks", what, MaxMarks)
	}
	if err := checkInvisibles(s, what); err != nil {
		return "", err
	}
	return s, nil
}

// tooManyMarks reports whether more than MaxMarks combining marks follow
// one another in s. The characters that show nothing between them (a
// zero-width space, a joiner) do not part them: the marks after still sit
// on the character before.
func tooManyMarks(s string) bool {
	n := 0
	for _, r := range s {
		switch {
		case unicode.IsMark(r):
			if n++; n > MaxMarks {
				return true
			}
		case showsSomething(r):
			n = 0
		}
	}
	return false
}

// showsSomething reports whether r is seen: not white space, not one of
// the characters that show nothing (invisible: format characters such as
// zero-width spaces, joiners and direction marks, the Hangul fillers,
// variation selectors).
func showsSomething(r rune) bool {
	return !unicode.IsSpace(r) && !invisible(r)
}

// turnsDirection reports whether r is one of Unicode's explicit embedding,
// override and isolate controls. The marks U+200E and U+200F, which
// right-to-left names need and which turn nothing, are not.
func turnsDirection(r rune) bool {
	return r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069
}

// checkBody validates a message body against max characters.
func checkBody(body string, max int) error {
	if !utf8.ValidString(body) {
		return Invalid(CodeInvalidField, "body", "message is not valid UTF-8")
	}
	if strings.IndexByte(body, 0) >= 0 {
		// PostgreSQL cannot store it: refused on every store alike.
		return Invalid(CodeInvalidField, "body", "message contains the NUL character")
	}
	if strings.IndexFunc(body, showsSomething) < 0 {
		// White space only, or characters that show nothing (zero-width
		// spaces, Hangul fillers): a message that would show as blank.
		return Invalid(CodeEmpty, "body", "message is empty")
	}
	if n := utf8.RuneCountInString(body); n > max {
		return Invalid(CodeTooLong, "body", "message is %d characters long; the limit is %d", n, max)
	}
	return nil
}

func checkClientID(id string) error {
	if len(id) > MaxClientIDLen {
		return Invalid(CodeTooLong, "client_id", "client_id is longer than %d bytes", MaxClientIDLen)
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return Invalid(CodeInvalidField, "client_id", "client_id must be printable ASCII without spaces")
		}
	}
	return nil
}
