package chat_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/inmem"
	"github.com/parley-chat/parley/internal/mailer"
	"github.com/parley-chat/parley/internal/mailer/smtptest"
)

// TestCodeMailGivenUpStillCounts: a sign-in mail that the client stopped
// waiting for (its request cancelled, or past its deadline) once the relay
// had it may still be sent: the SMTP session runs on. It counts against
// the address's limit of codes. Before, such a request gave the address's
// count back, as for a relay that took nothing: a client that cancelled
// each request once the relay had read the mail had the address mailed
// as often as its own limit per client IP let it, past the address's.
func TestCodeMailGivenUpStillCounts(t *testing.T) {
	const email = "ada@example.com"
	svc, relay, _ := mailGivenUp(t, chat.Config{CodesPerEmail: 1}, email)

	err := svc.RequestCode(context.Background(), email, "192.0.2.2")
	if !errors.Is(err, chat.ErrRateLimited) {
		t.Errorf("a second code for %s, past its limit of 1, after one mailed to a client that gave up = %v; want rate limited", email, err)
	}
	if n := len(relay.Messages()); n != 1 {
		t.Errorf("%s was mailed %d times; want 1", email, n)
	}
}

// mailGivenUp asks a service of cfg, on SQLite, for a code for email,
// gives the request up once its relay has the mail (as a client that went
// away), and then lets the relay take the mail: it returns the service,
// the relay and the mail, which went out.
func mailGivenUp(t *testing.T, cfg chat.Config, email string) (*chat.Service, *smtptest.Server, smtptest.Message) {
	t.Helper()
	held, release := make(chan struct{}, 1), make(chan struct{})
	relay := smtptest.Start(t, smtptest.WithHold(held, release))
	svc, _ := serviceMailing(t, cfg, smtpMailer(t, relay, mailer.WithTimeout(10*time.Second)))
	requestGivenUp(t, svc, email, held)
	close(release) // the relay takes the mail after all
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	m, err := relay.WaitFor(wctx, email)
	if err != nil {
		t.Fatalf("the mail given up on was not sent: %v", err)
	}
	return svc, relay, m
}

// serviceMailing returns a service of cfg, on a fresh SQLite store, that
// mails with m, and its store.
func serviceMailing(t *testing.T, cfg chat.Config, m chat.Mailer) (*chat.Service, chat.Store) {
	t.Helper()
	store := sqliteStore(t)
	svc := chat.NewService(cfg, chat.Deps{
		Store:    store,
		Broker:   inmem.NewBroker(),
		Presence: inmem.NewPresence(),
		Limiter:  inmem.NewLimiter(nil),
		Mailer:   m,
	})
	t.Cleanup(svc.Close)
	return svc, store
}

// smtpMailer is an SMTP mailer of relay, with opts.
func smtpMailer(t *testing.T, relay *smtptest.Server, opts ...mailer.Option) *mailer.SMTP {
	t.Helper()
	ml, err := mailer.NewSMTP(relay.URL(), "Parley <parley@example.com>", nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return ml
}

// requestGivenUp asks svc for a code for email and gives the request up
// once the relay has the mail (held), as a client that went away; the
// request fails as unavailable.
func requestGivenUp(t *testing.T, svc *chat.Service, email string, held <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- svc.RequestCode(ctx, email, "192.0.2.1") }()
	select {
	case <-held: // the relay has the mail
	case err := <-errc:
		t.Fatalf("RequestCode before the relay had the mail: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the relay got no mail")
	}
	cancel() // the client goes away
	if err := <-errc; !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("RequestCode given up = %v; want unavailable", err)
	}
}

// TestCodeMailFailedLateGivenBack: a sign-in mail whose request gave up
// while the relay had it, and whose SMTP session then failed (here the
// relay stops answering past the mailer's timeout), went nowhere: its
// code is removed and the address's count given back, as for a mail that
// failed while its request waited, so the user may ask again. Before, the
// session's failure was only logged: the code stayed pending, never
// mailed, and the address's count stayed used up, refusing the user a
// new code for a mail that never left.
func TestCodeMailFailedLateGivenBack(t *testing.T) {
	const email = "ada@example.com"
	held := make(chan struct{}, 1)
	relay := smtptest.Start(t, smtptest.WithHold(held, make(chan struct{}))) // never released
	ml := smtpMailer(t, relay, mailer.WithTimeout(500*time.Millisecond))
	svc, store := serviceMailing(t, chat.Config{CodesPerEmail: 1}, ml)
	requestGivenUp(t, svc, email, held)
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := ml.Wait(wctx); err != nil {
		t.Fatalf("the session given up on did not end: %v", err)
	}

	if codes, err := store.AttemptLoginCodes(context.Background(), email); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("pending codes of %s, whose mail failed after its request gave up: %d, %v; want none", email, len(codes), err)
	}
	if err := svc.RequestCode(wctx, email, "192.0.2.2"); errors.Is(err, chat.ErrRateLimited) {
		t.Errorf("RequestCode(%s) again (limit 1), its mail having failed after its request gave up = %v; want the count given back", email, err)
	}
}

// failingAtEndMailer is a Mailer whose Send fails, the mail surely not
// sent, once its context has ended: a relay that refuses, or a dial
// cut, just as the request ends.
type failingAtEndMailer struct{}

func (failingAtEndMailer) Send(ctx context.Context, _ chat.Mail) error {
	<-ctx.Done()
	return errors.New("relay refused the mail")
}

// TestCodeMailFailedAsRequestEndsGivenBack: a mail whose Send failed
// outright (the mailer knows it did not go out) as its request ended is
// not one that may still go out: its code is removed and the address's
// count given back. Before, any failure once the request had ended kept
// the code and the count, as for a session running on, though no
// session ran on to send it or to tell (chat.Mail.Unsent) that it did
// not.
func TestCodeMailFailedAsRequestEndsGivenBack(t *testing.T) {
	const email = "ada@example.com"
	svc, store := serviceMailing(t, chat.Config{CodesPerEmail: 1}, failingAtEndMailer{})

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := svc.RequestCode(ctx, email, "192.0.2.1"); !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("RequestCode whose mail failed = %v; want unavailable", err)
	}
	if codes, err := store.AttemptLoginCodes(context.Background(), email); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("pending codes of %s, whose mail failed as its request ended: %d, %v; want none", email, len(codes), err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if err := svc.RequestCode(ctx2, email, "192.0.2.2"); errors.Is(err, chat.ErrRateLimited) {
		t.Errorf("RequestCode(%s) again (limit 1), its mail having failed = %v; want the count given back", email, err)
	}
}
