package chat_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/mailer"
	"github.com/parley-chat/parley/internal/mailer/smtptest"
)

// TestCodeMailerBusy: a sign-in code that is not mailed because the
// mailer has no free SMTP session (chat.ErrMailerBusy) is removed and
// does not count against its address's limit; the client is told to
// retry (unavailable, with a wait). Before, the mailer opened a session
// for every code; one that did not go out while its request lasted kept
// its code pending and counted, so the address could not ask again.
func TestCodeMailerBusy(t *testing.T) {
	const first, second = "ada@example.com", "bob@example.com"
	held, release := make(chan struct{}, 4), make(chan struct{})
	relay := smtptest.Start(t, smtptest.WithHold(held, release))
	ml := smtpMailer(t, relay, mailer.WithTimeout(10*time.Second), mailer.WithMaxSessions(1))
	svc, store := serviceMailing(t, chat.Config{CodesPerEmail: 1}, ml)

	// The first code's session takes the one slot and is held.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- svc.RequestCode(ctx, first, "192.0.2.1") }()
	select {
	case <-held:
	case err := <-errc:
		t.Fatalf("RequestCode(%s) before the relay had the mail: %v", first, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the relay got no mail")
	}

	bctx, bcancel := context.WithTimeout(t.Context(), 2*time.Second)
	err := svc.RequestCode(bctx, second, "192.0.2.2")
	bcancel()
	e := chat.AsError(err)
	if e == nil || !errors.Is(err, chat.ErrUnavailable) || e.Code != chat.CodeUnavailable || e.RetryAfter <= 0 {
		t.Errorf("RequestCode(%s) with no free SMTP session = %#v; want unavailable with a wait", second, err)
	}
	if codes, err := store.AttemptLoginCodes(context.Background(), second); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("pending codes of %s, whose code was not mailed: %d, %v; want none", second, len(codes), err)
	}

	close(release)
	if err := <-errc; err != nil {
		t.Fatalf("RequestCode(%s) = %v", first, err)
	}
	if err := svc.RequestCode(ctx, second, "192.0.2.2"); err != nil {
		t.Fatalf("RequestCode(%s) again, its code not mailed before (limit 1) = %v", second, err)
	}
	if _, err := relay.WaitFor(ctx, second); err != nil {
		t.Fatal(err)
	}
}
