package chat_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/mailer/smtptest"
)

// codeSeq is a Config.NewCode that gives the codes 100001, 100002, ... in
// turn, so that no two codes of a test are alike by chance.
func codeSeq() func() (string, error) {
	var mu sync.Mutex
	n := 100_000
	return func() (string, error) {
		mu.Lock()
		defer mu.Unlock()
		n++
		return fmt.Sprintf("%06d", n), nil
	}
}

// mailedCodes returns the codes of the mails to email, oldest first.
func (m *fakeMailer) mailedCodes(email string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var codes []string
	for _, mail := range m.mails {
		if mail.To == email {
			codes = append(codes, codeRE.FindString(mail.Text))
		}
	}
	return codes
}

// TestEarlierCodeStillWorks: a user who asked twice (the first mail was
// slow) and types the code of the mail that arrives first, the first one
// asked for, signs in. Mail is often delivered late and out of order.
// Before, the second request replaced the first code, and it was refused
// as bad_code. Signing in with one code ends the others.
func TestEarlierCodeStillWorks(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{NewCode: codeSeq()})
	const email = "ada@example.com"
	for range 2 {
		if err := f.svc.RequestCode(ctx, email, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
	}
	codes := f.mail.mailedCodes(email)
	if len(codes) != 2 {
		t.Fatalf("mailed codes %q; want 2", codes)
	}
	if in, err := f.svc.VerifyCode(ctx, email, codes[0], "192.0.2.1"); err != nil || in.Token == "" {
		t.Fatalf("VerifyCode(the first of two codes mailed) = %+v, %v; want a session", in, err)
	}
	_, err := f.svc.VerifyCode(ctx, email, codes[1], "192.0.2.1")
	wantError(t, "VerifyCode(the second code, after the first signed in)", err, chat.ErrUnauthorized, chat.CodeBadCode, "")
	_, err = f.svc.VerifyCode(ctx, email, codes[0], "192.0.2.1")
	wantError(t, "VerifyCode(the first code again)", err, chat.ErrUnauthorized, chat.CodeBadCode, "")
}

// TestCodeMailedAfterRequestEndedWorks: a sign-in mail that the relay
// took after the client stopped waiting (its request cancelled) still
// goes out, and the code it carries signs in. Before, the code was stored
// only once the mail was sent, and a request that ended first never
// stored it: the mail arrived with a code refused as bad_code.
func TestCodeMailedAfterRequestEndedWorks(t *testing.T) {
	const email = "ada@example.com"
	svc, _, m := mailGivenUp(t, chat.Config{}, email)
	code := smtptest.CodeIn(m)
	if in, err := svc.VerifyCode(context.Background(), email, code, "192.0.2.1"); err != nil || in.Token == "" {
		t.Errorf("VerifyCode(the code of the mail sent after its request ended) = %+v, %v; want a session", in, err)
	}
}

// TestFailedMailCodeRemoved: the code of a mail that surely failed (the
// relay down, the request still waiting) is not left pending; the code
// mailed before it still works.
func TestFailedMailCodeRemoved(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{NewCode: codeSeq()})
	const email = "ada@example.com"
	if err := f.svc.RequestCode(ctx, email, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	f.mail.mu.Lock()
	f.mail.err = errors.New("relay down")
	f.mail.mu.Unlock()
	err := f.svc.RequestCode(ctx, email, "192.0.2.1")
	wantError(t, "RequestCode with the relay down", err, chat.ErrUnavailable, chat.CodeUnavailable, "")
	// The code not mailed was 100002 (codeSeq).
	_, err = f.svc.VerifyCode(ctx, email, "100002", "192.0.2.1")
	wantError(t, "VerifyCode(the code whose mail failed)", err, chat.ErrUnauthorized, chat.CodeBadCode, "")
	if in, err := f.svc.VerifyCode(ctx, email, "100001", "192.0.2.1"); err != nil || in.Token == "" {
		t.Errorf("VerifyCode(the code mailed before) = %+v, %v; want a session", in, err)
	}
}

// TestWrongTriesBoundedAcrossCodes: a try counts against every code
// pending for the address, so the wrong tries an address takes are no
// more than CodeAttempts per code asked for, however many are pending at
// once: with three codes of two tries each pending, two wrong tries use
// them all up, and the right code of any is refused after.
func TestWrongTriesBoundedAcrossCodes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{NewCode: codeSeq(), CodeAttempts: 2, CodesPerEmail: 3})
	const email = "ada@example.com"
	for range 3 {
		if err := f.svc.RequestCode(ctx, email, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		_, err := f.svc.VerifyCode(ctx, email, "999999", "192.0.2.1")
		wantError(t, fmt.Sprintf("wrong try %d", i+1), err, chat.ErrUnauthorized, chat.CodeBadCode, "")
	}
	for _, code := range f.mail.mailedCodes(email) {
		_, err := f.svc.VerifyCode(ctx, email, code, "192.0.2.1")
		wantError(t, "VerifyCode("+code+") after two wrong tries", err, chat.ErrUnauthorized, chat.CodeBadCode, "")
	}
}

// TestCodesKeptNewest: an address keeps at most CodesPerEmail codes
// pending, the newest; an older one is refused.
func TestCodesKeptNewest(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, chat.Config{NewCode: codeSeq(), CodesPerEmail: 2, CodeTTL: time.Hour, CodeWindow: 15 * time.Minute})
	const email = "ada@example.com"
	for i := range 3 {
		if i == 2 {
			f.clock.Advance(15 * time.Minute) // past the window: a third may be mailed
		}
		if err := f.svc.RequestCode(ctx, email, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
	}
	_, err := f.svc.VerifyCode(ctx, email, "100001", "192.0.2.1")
	wantError(t, "VerifyCode(the oldest of three codes, two kept)", err, chat.ErrUnauthorized, chat.CodeBadCode, "")
	if in, err := f.svc.VerifyCode(ctx, email, "100002", "192.0.2.1"); err != nil || in.Token == "" {
		t.Errorf("VerifyCode(the second of three codes) = %+v, %v; want a session", in, err)
	}
}

// lateFailingMailer is a Mailer whose sends fail, each once the relay
// has been seen to hold the mail (held) and let go of it (release): a
// relay that takes a while to refuse, as one timing out does.
type lateFailingMailer struct {
	held    chan struct{} // gets one value per send, if there is room
	release chan struct{} // closed to let the sends fail
}

func (m *lateFailingMailer) Send(ctx context.Context, _ chat.Mail) error {
	select {
	case m.held <- struct{}{}:
	default:
	}
	select {
	case <-m.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return errors.New("relay down")
}

// TestFailedMailCodeTriedStillCounts: a code is stored before its mail
// goes, so it can be tried while the relay has the mail. If the mail then
// fails, the code is removed, but a code that was tried still counts
// against the address: else whoever guesses at an address whose mail
// fails (a relay down, or one refusing the address) would get a fresh
// code, and fresh guesses, as often as they asked, past the 5 guesses per
// code asked for that bound the chance of a guess right (docs/protocol.md,
// "Sign-in").
func TestFailedMailCodeTriedStillCounts(t *testing.T) {
	ctx := context.Background()
	const email = "ada@example.com"
	ml := &lateFailingMailer{held: make(chan struct{}, 1), release: make(chan struct{})}
	svc, _ := serviceMailing(t, chat.Config{CodesPerEmail: 1, NewCode: codeSeq()}, ml)

	errc := make(chan error, 1)
	go func() { errc <- svc.RequestCode(ctx, email, "192.0.2.1") }()
	select {
	case <-ml.held:
	case err := <-errc:
		t.Fatalf("RequestCode before the relay had the mail: %v", err)
	case <-time.After(10 * time.Second):
		close(ml.release)
		t.Fatal("the relay got no mail")
	}
	// A guess at the code pending, never mailed.
	_, err := svc.VerifyCode(ctx, email, "999999", "198.51.100.7")
	wantError(t, "VerifyCode(a guess while the mail is under way)", err, chat.ErrUnauthorized, chat.CodeBadCode, "")
	close(ml.release)
	wantError(t, "RequestCode whose mail failed", <-errc, chat.ErrUnavailable, chat.CodeUnavailable, "")

	err = svc.RequestCode(ctx, email, "192.0.2.2")
	if !errors.Is(err, chat.ErrRateLimited) {
		t.Errorf("RequestCode for %s, past its limit of 1 code, after one tried whose mail failed = %v; want rate limited", email, err)
	}
}
