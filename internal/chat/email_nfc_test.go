package chat_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/parley-chat/parley/internal/chat"
)

// The one address "café@example.com", with a precomposed é and with e and
// a combining acute accent.
const (
	cafeComposed   = "caf\u00e9@example.com"
	cafeDecomposed = "cafe\u0301@example.com"
)

// lastMailCode returns the code of the latest mail, whatever its address.
func (m *fakeMailer) lastMailCode(tb testing.TB) (to, code string) {
	tb.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.mails) == 0 {
		tb.Fatal("no mail sent")
	}
	last := m.mails[len(m.mails)-1]
	if code = codeRE.FindString(last.Text); code == "" {
		tb.Fatalf("no code in mail to %s:\n%s", last.To, last.Text)
	}
	return last.To, code
}

// TestEmailNFC: an address is one address whichever way its accents are
// typed. A code asked for with one spelling signs in with the other, to
// the same user, and the exact address finds the user either way. On
// SQLite and, when PARLEY_TEST_POSTGRES names one, PostgreSQL.
func TestEmailNFC(t *testing.T) {
	ctx := context.Background()
	onBothStores(t, "spellings", func(t *testing.T, f *fixture) {
		signIn := func(ask, verify string) chat.SignIn {
			t.Helper()
			if err := f.svc.RequestCode(ctx, ask, "192.0.2.1"); err != nil {
				t.Fatalf("RequestCode(%+q): %v", ask, err)
			}
			to, code := f.mail.lastMailCode(t)
			if to != cafeComposed {
				t.Errorf("RequestCode(%+q) mailed %+q; want %+q", ask, to, cafeComposed)
			}
			in, err := f.svc.VerifyCode(ctx, verify, code, "192.0.2.1")
			if err != nil {
				t.Fatalf("VerifyCode(%+q) of the code asked for with %+q: %v", verify, ask, err)
			}
			return in
		}
		first := signIn(cafeDecomposed, cafeComposed)
		if !first.NewUser || first.User.Email != cafeComposed {
			t.Errorf("first sign-in: new %v, email %+q; want a new user of %+q", first.NewUser, first.User.Email, cafeComposed)
		}
		if _, err := f.svc.SetName(ctx, first.User, "Ren\u00e9e"); err != nil {
			t.Fatal(err)
		}
		again := signIn(cafeComposed, cafeDecomposed)
		if again.NewUser || again.User.ID != first.User.ID {
			t.Errorf("sign-in with the other spelling: user %d (new %v); want user %d", again.User.ID, again.NewUser, first.User.ID)
		}
		ada, _ := f.signIn(t, "ada@example.com", "Ada")
		for _, q := range []string{cafeComposed, cafeDecomposed, "CAFE\u0301@example.com", "CAF\u00c9@EXAMPLE.COM"} {
			us, err := f.svc.SearchUsers(ctx, ada, q)
			if err != nil {
				t.Fatalf("SearchUsers(%+q): %v", q, err)
			}
			var got []int64
			for _, u := range us {
				got = append(got, u.ID)
			}
			if diff := cmp.Diff([]int64{first.User.ID}, got); diff != "" {
				t.Errorf("SearchUsers(%+q) mismatch (-want +got):\n%s", q, diff)
			}
		}
	})
}

// TestFoldedEmails: stored addresses that folding changes take their
// folded form, unless it is another user's: one signed in to by it today
// keeps it, and of two decomposed spellings the older user takes it.
func TestFoldedEmails(t *testing.T) {
	users := []chat.StoredEmail{
		{ID: 8, Email: "a\u030a@example.com"}, // after 4: kept apart
		{ID: 1, Email: cafeDecomposed},        // café is user 2's
		{ID: 2, Email: cafeComposed},
		{ID: 3, Email: "ze\u0301e@example.org"},
		{ID: 4, Email: "\u212b@example.com"}, // ANGSTROM SIGN
		{ID: 5, Email: "ada@example.com"},
	}
	renames, kept := chat.FoldedEmails(users)
	wantRenames := map[int64]string{3: "z\u00e9e@example.org", 4: "\u00e5@example.com"}
	if diff := cmp.Diff(wantRenames, renames); diff != "" {
		t.Errorf("renames mismatch (-want +got):\n%s", diff)
	}
	wantKept := []chat.KeptEmail{{ID: 1, Email: cafeDecomposed, Holder: 2}, {ID: 8, Email: "a\u030a@example.com", Holder: 4}}
	if diff := cmp.Diff(wantKept, kept); diff != "" {
		t.Errorf("kept mismatch (-want +got):\n%s", diff)
	}
}
