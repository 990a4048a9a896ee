package chat_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
)

// TestTokenMatches checks HashToken against SHA-256 computed here, for
// tokens short enough to hash on the stack and longer ones, and that
// TokenMatches accepts exactly the token of a hash.
func TestTokenMatches(t *testing.T) {
	for _, tok := range []string{"", "eid4ym1rglwhQtyV6uZWWDvL7pV5nFVS4nsycD-cQGg", strings.Repeat("t", 256), strings.Repeat("u", 257), strings.Repeat("v", 5000)} {
		sum := sha256.Sum256([]byte("parley-session\x00" + tok))
		want := hex.EncodeToString(sum[:])
		if got := chat.HashToken(tok); got != want {
			t.Errorf("HashToken(%d bytes) = %s; want %s", len(tok), got, want)
		}
		if !chat.TokenMatches(tok, want) {
			t.Errorf("TokenMatches(%d bytes, its own hash) = false", len(tok))
		}
		for _, other := range []string{tok + "x", "x" + tok} {
			if chat.TokenMatches(other, want) {
				t.Errorf("TokenMatches(another token of %d bytes, the hash of one of %d) = true", len(other), len(tok))
			}
		}
		for _, bad := range []string{"", want[:63], want + "0", strings.ToUpper(want)} {
			if chat.TokenMatches(tok, bad) {
				t.Errorf("TokenMatches(%d bytes, %q) = true", len(tok), bad)
			}
		}
	}
}
