package chattest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/internal/chat"
)

// MigratedEmails checks a store just migrated to folded addresses
// (chat.MigrateEmailsNFC) from a database holding, as the parley before
// it stored them (trimmed and lower-cased only), users 1
// "cafe\u0301@example.com" (e and a combining accent), 2
// "ze\u0301e@example.org", 3 "caf\u00e9@example.com" (precomposed), 4
// "o\u0308\u0323@example.net", 5 "o\u0323\u0308@example.net" (the marks the
// other way round) and 6 "ada@example.com", and login codes pending for
// "cafe\u0301@example.com" and "ada@example.com". got is its users, one
// "id email" a row, by id; codes the addresses of its login codes; log
// what the migration logged.
//
// Every user keeps their data. Each address becomes its folded form,
// unless that is another's: user 1 keeps its address, as café is user 3's,
// and so does user 5, as the oldest of its spellings, user 4, takes it;
// both are logged with the user that has the address. User 2 signs in
// with either spelling. The code of a changed address is gone (it was
// hashed with the old spelling); the other stays.
func MigratedEmails(t *testing.T, st chat.Store, got, codes []string, log string) {
	t.Helper()
	ctx := context.Background()
	want := []string{
		"1 cafe\u0301@example.com",
		"2 z\u00e9e@example.org",
		"3 caf\u00e9@example.com",
		"4 \u1ecd\u0308@example.net",
		"5 o\u0323\u0308@example.net",
		"6 ada@example.com",
	}
	wantMigrated(t, want, got, []string{"ada@example.com"}, codes, log, "user=1 holder=3", "user=5 holder=4")
	at := time.Unix(100, 0)
	wantSignInsAs(t, st, at, map[string]int64{
		"ze\u0301e@example.org": 2, "Z\u00c9E@example.org": 2,
		"cafe\u0301@example.com": 3, "caf\u00e9@example.com": 3,
		"o\u0323\u0308@example.net": 4, "o\u0308\u0323@example.net": 4,
	})
	// A code asked for with one spelling is found with the other.
	ask, _ := chat.NormalizeEmail("ze\u0301e@example.org")
	verify, _ := chat.NormalizeEmail("z\u00e9e@example.org")
	if err := st.PutLoginCode(ctx, chat.LoginCode{Email: ask, Hash: "h", ExpiresAt: at.Add(time.Hour)}, 1); err != nil {
		t.Fatal(err)
	}
	if cs, err := st.AttemptLoginCodes(ctx, verify); err != nil || len(cs) != 1 || cs[0].Hash != "h" {
		t.Errorf("AttemptLoginCodes(%+q) = %+v, %v; want the code put for %+q", verify, cs, err, ask)
	}
	if _, err := st.AttemptLoginCodes(ctx, "cafe\u0301@example.com"); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("AttemptLoginCodes(the old spelling's code) = %v; want ErrNotFound", err)
	}
}

// MigratedIDNEmails checks a store just migrated to addresses whose
// internationalized domain is in Unicode (chat.FoldEmail) from a
// database holding, as the parley before it stored them, users 1
// "ana@xn--bcher-kva.example", 2 "bob@xn--bcher-kva.example", 3
// "bob@bücher.example" (user 2's mailbox, stored twice) and 4
// "cy@bücher.example", and login codes pending for
// "ana@xn--bcher-kva.example" and "cy@bücher.example". got, codes and log
// are as for MigratedEmails.
//
// User 1 signs in with either form of the domain. User 2 keeps its
// address, which no sign-in reaches, as user 3 holds the folded one, and
// is logged. The code of user 1's changed address is gone; the other stays.
func MigratedIDNEmails(t *testing.T, st chat.Store, got, codes []string, log string) {
	t.Helper()
	want := []string{
		"1 ana@bücher.example",
		"2 bob@xn--bcher-kva.example",
		"3 bob@bücher.example",
		"4 cy@bücher.example",
	}
	wantMigrated(t, want, got, []string{"cy@bücher.example"}, codes, log, "user=2 holder=3")
	wantSignInsAs(t, st, time.Unix(100, 0), map[string]int64{
		"ana@xn--bcher-kva.example": 1, "ANA@BÜCHER.example": 1,
		"bob@xn--bcher-kva.example": 3, "bob@bücher.example": 3,
		"cy@XN--BCHER-KVA.EXAMPLE": 4,
	})
}

// wantMigrated checks a migration's outcome: the users (got) and the
// login codes' addresses (codes) it left, and the lines of its log that
// name the users kept apart (kept).
func wantMigrated(t *testing.T, want, got, wantCodes, codes []string, log string, kept ...string) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("users after the migration mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantCodes, codes); diff != "" {
		t.Errorf("login codes after the migration mismatch (-want +got):\n%s", diff)
	}
	for _, k := range kept {
		if !strings.Contains(log, k) {
			t.Errorf("the migration logged:\n%s\nwant a line with %q", log, k)
		}
	}
}

// wantSignInsAs checks that each address, as a user types it, signs in
// as the user given (NormalizeEmail, then EnsureUser at at), creating none.
func wantSignInsAs(t *testing.T, st chat.Store, at time.Time, users map[string]int64) {
	t.Helper()
	for email, id := range users {
		folded, err := chat.NormalizeEmail(email)
		if err != nil {
			t.Fatalf("NormalizeEmail(%+q): %v", email, err)
		}
		u, created, err := st.EnsureUser(context.Background(), folded, at)
		if err != nil || created || u.ID != id {
			t.Errorf("EnsureUser(%+q) = user %d (created %v), %v; want user %d", folded, u.ID, created, err, id)
		}
	}
}
