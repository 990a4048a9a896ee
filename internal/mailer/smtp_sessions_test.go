package mailer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

// TestSMTPWait: Wait returns once every session has ended, those whose
// Send gave up waiting for the relay included, so that a node shutting
// down lets their mail go out (TestSMTPWaitCuts: when its context ends
// first). Before, nothing waited for such a session: it was
// cut when the process exited, its mail unsent.
func TestSMTPWait(t *testing.T) {
	held, release := make(chan struct{}, 2), make(chan struct{})
	srv := smtptest.Start(t, smtptest.WithHold(held, release))
	m := newTestSMTP(t, srv.URL())

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := m.Wait(ctx); err != nil {
		t.Fatalf("Wait with no session under way = %v; want nil", err)
	}

	sendGivenUp(t, m, testMail, held)

	waited := make(chan error, 1)
	go func() { waited <- m.Wait(ctx) }()
	select {
	case err := <-waited:
		t.Fatalf("Wait returned (%v) while the relay still held the mail", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("Wait once the relay took the mail = %v; want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Wait did not return once the relay took the mail")
	}
	if msgs := srv.Messages(); len(msgs) != 1 {
		t.Errorf("the relay has %d mails when Wait returned; want 1", len(msgs))
	}
}

// TestSMTPWaitCuts: when Wait's context ends (a node's --shutdown-timeout)
// while a session whose Send gave up still runs, Wait cuts the session
// and returns once its outcome is told: the mail did not go out, and
// Mail.Unsent has been called, so that its sign-in code is removed while
// the store is open. Before, Wait returned leaving the session to run on
// until the process exited: nothing told that its mail never left, and
// its code stayed stored and counted.
func TestSMTPWaitCuts(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []smtptest.Option
	}{
		{"no TLS", nil},
		{"implicit TLS", []smtptest.Option{smtptest.WithImplicitTLS()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			held := make(chan struct{}, 1)
			srv := smtptest.Start(t, append(tt.opts, smtptest.WithHold(held, make(chan struct{})))...) // never released
			var opts []mailer.Option
			if c := srv.TLSConfig(); c != nil {
				opts = append(opts, mailer.WithTLSConfig(c))
			}
			m := newTestSMTP(t, srv.URL(), append(opts, mailer.WithTimeout(30*time.Second))...)

			unsent := make(chan struct{})
			mail := testMail
			mail.Unsent = func() { close(unsent) }
			sendGivenUp(t, m, mail, held)

			cut, ccancel := context.WithCancel(t.Context())
			ccancel()
			start := time.Now()
			if err := m.Wait(cut); err == nil || !strings.Contains(err.Error(), "1 SMTP session") {
				t.Errorf("Wait with its context ended while a session runs = %v; want an error saying 1 SMTP session was cut", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Wait with its context ended took %s", d)
			}
			select {
			case <-unsent:
			default:
				t.Error("Wait returned, the session cut, before Mail.Unsent was called")
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := m.Wait(ctx); err != nil {
				t.Errorf("Wait after the cut = %v; want nil, no session left", err)
			}
		})
	}
}

// sendGivenUp sends mail with m and gives the Send up once the relay has
// the mail (held), as a request that ended: Send returns
// chat.ErrMailPending, and the session runs on.
func sendGivenUp(t *testing.T, m *mailer.SMTP, mail chat.Mail, held <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sent := make(chan error, 1)
	go func() { sent <- m.Send(ctx, mail) }()
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the mail did not reach the relay")
	}
	cancel() // the request gives up; its session runs on
	if err := <-sent; !errors.Is(err, chat.ErrMailPending) {
		t.Fatalf("Send whose context ended while the relay held the mail = %v; want chat.ErrMailPending", err)
	}
}
