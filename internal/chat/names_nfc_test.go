package chat_test

import (
	"context"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
)

// TestNamesNFC: a display name or a group name typed with combining
// accents is kept composed, so that two names that look alike are one:
// a group cannot take the name of another by spelling it decomposed.
func TestNamesNFC(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	u, err := f.svc.SetName(ctx, ada, "Rene\u0301e")
	if err != nil || u.Name != "Ren\u00e9e" {
		t.Errorf("SetName(decomposed) = %q, %v; want %q", u.Name, err, "Ren\u00e9e")
	}
	g, err := f.svc.CreateGroup(ctx, ada, "Caf\u00e9", "", 0)
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	// Another user's: the same owner's would be taken for a retry of the
	// creation (CreateGroup answers it with the group it made).
	grace, _ := f.signIn(t, "grace@example.com", "Grace")
	_, err = f.svc.CreateGroup(ctx, grace, "Cafe\u0301", "", 0)
	wantError(t, "CreateGroup(decomposed name of another)", err, chat.ErrConflict, chat.CodeNameTaken, "")
	if g.Name != "Caf\u00e9" {
		t.Errorf("CreateGroup name = %q; want %q", g.Name, "Caf\u00e9")
	}
}

// TestSearchUsersNFC: a display name is kept composed (NFC), so a search
// typed with a combining accent (as some keyboards and pasted text give
// it) must find it as the composed spelling does.
func TestSearchUsersNFC(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{})
	ada, _ := f.signIn(t, "ada@example.com", "Ada")
	renee, _ := f.signIn(t, "renee@example.com", "Ren\u00e9e")
	for _, q := range []string{"Ren\u00e9", "Rene\u0301", "RENE\u0301E"} {
		us, err := f.svc.SearchUsers(ctx, ada, q)
		if err != nil {
			t.Fatalf("SearchUsers(%+q): %v", q, err)
		}
		if len(us) != 1 || us[0].ID != renee.ID {
			t.Errorf("SearchUsers(%+q) = %v; want Renée (%d)", q, us, renee.ID)
		}
	}
}
