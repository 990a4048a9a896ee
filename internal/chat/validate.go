package chat

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on input sizes.
const (
	MaxRoomNameLen = 64
	MaxUserNameLen = 40
	MaxEmailLen    = 254
	MaxClientIDLen = 64
)

// NormalizeEmail trims and lower-cases an address and checks its form.
func NormalizeEmail(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return "", Invalid(CodeMissingField, "email", "email is required")
	}
	if len(s) > MaxEmailLen {
		return "", Invalid(CodeTooLong, "email", "email is longer than %d characters", MaxEmailLen)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" || !strings.Contains(s[strings.LastIndexByte(s, '@')+1:], ".") {
		return "", Invalid(CodeInvalidField, "email", "%q is not an email address", s)
	}
	return s, nil
}

// ValidRoomName checks a room name: 1–64 letters, digits, '-' or '_'.
// The letters that show as nothing (the Hangul fillers) are refused: a
// name with one looks like the name without it, and is another room.
func ValidRoomName(s string) error {
	if s == "" {
		return Invalid(CodeMissingField, "name", "room name is required")
	}
	if utf8.RuneCountInString(s) > MaxRoomNameLen {
		return Invalid(CodeTooLong, "name", "room name is longer than %d characters", MaxRoomNameLen)
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)) || unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) {
			return Invalid(CodeInvalidField, "name", "room names use letters, digits, '-' and '_' only")
		}
	}
	return nil
}

// NormalizeUserName trims a display name and checks it.
func NormalizeUserName(s string) (string, error) {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "", Invalid(CodeMissingField, "name", "name is required")
	}
	if !utf8.ValidString(s) {
		return "", Invalid(CodeInvalidField, "name", "name is not valid UTF-8")
	}
	if utf8.RuneCountInString(s) > MaxUserNameLen {
		return "", Invalid(CodeTooLong, "name", "name is longer than %d characters", MaxUserNameLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "", Invalid(CodeInvalidField, "name", "name contains control characters")
		}
	}
	return s, nil
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
	if strings.TrimSpace(body) == "" {
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
