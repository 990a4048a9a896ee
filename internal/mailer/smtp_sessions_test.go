package mailer_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/mailer"
	"github.com/parley-chat/parley/internal/mailer/smtptest"
)

// TestSMTPMaxSessions: an SMTP mailer holds at most WithMaxSessions
// sessions open at once. With a relay that holds every mail, of n+1 mails
// sent at once n reach it and the other waits for a slot, then fails with
// chat.ErrMailerBusy, untried, before its context ends. The slots stay
// taken after their senders gave up, as long as their sessions run on:
// a mail sent then is refused too. Once the relay lets the sessions end,
// mail goes out again. Before, every mail opened its session at once.
func TestSMTPMaxSessions(t *testing.T) {
	const n = 3
	held, release := make(chan struct{}, 2*n), make(chan struct{})
	srv := smtptest.Start(t, smtptest.WithHold(held, release))
	m := newTestSMTP(t, srv.URL(), mailer.WithMaxSessions(n))

	errc := make(chan error, n+1)
	for i := range n + 1 {
		go func() {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			mail := testMail
			mail.To = fmt.Sprintf("user%d@example.org", i)
			errc <- m.Send(ctx, mail)
		}()
	}
	busy := 0
	for range n + 1 {
		select {
		case err := <-errc:
			switch {
			case errors.Is(err, chat.ErrMailerBusy):
				busy++
			case !errors.Is(err, context.DeadlineExceeded):
				t.Errorf("Send to a relay that holds the mail = %v; want busy or the context's deadline", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Send did not return")
		}
	}
	for i := range n {
		select {
		case <-held:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d sessions reached the relay; want %d", i, n)
		}
	}
	if extra := len(held); extra != 0 {
		t.Errorf("%d sessions reached the relay at once; want %d (WithMaxSessions)", n+extra, n)
	}
	if busy != 1 {
		t.Errorf("%d of %d mails sent at once failed as busy; want 1", busy, n+1)
	}

	// The senders gave up; their sessions still hold the slots.
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	err := m.Send(ctx, testMail)
	cancel()
	if !errors.Is(err, chat.ErrMailerBusy) {
		t.Errorf("Send while %d sessions given up on still run = %v; want busy", n, err)
	}

	close(release)
	ctx, cancel = context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := m.Send(ctx, testMail); err != nil {
		t.Fatalf("Send once the relay let the sessions end = %v", err)
	}
	if _, err := srv.WaitFor(ctx, testMail.To); err != nil {
		t.Fatal(err)
	}
}
