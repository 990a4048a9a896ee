package mailer_test

import (
	"context"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/mailer"
	"github.com/parley-chat/parley/internal/mailer/smtptest"
)

// TestSMTPInternationalDomain: mail to an address whose domain is
// internationalized, as chat.NormalizeEmail keeps it (in Unicode), goes
// to the relay with the domain in ASCII, its A-label, in RCPT TO and in
// the To header: a relay that does not offer SMTPUTF8, as the test relay
// does not, may refuse a domain in UTF-8. Before, the domain went as
// given, in UTF-8.
func TestSMTPInternationalDomain(t *testing.T) {
	srv := smtptest.Start(t)
	m := newTestSMTP(t, srv.URL())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	mail1 := testMail
	mail1.To = "ana@bücher.example"
	const want = "ana@xn--bcher-kva.example"
	if err := m.Send(ctx, mail1); err != nil {
		t.Fatalf("Send to %s = %v", mail1.To, err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("the relay has %d mails; want 1", len(msgs))
	}
	if got := msgs[0].To; len(got) != 1 || got[0] != want {
		t.Errorf("RCPT TO = %q; want [%q]", got, want)
	}
	hdr, err := mail.ReadMessage(strings.NewReader(string(msgs[0].Raw)))
	if err != nil {
		t.Fatal(err)
	}
	to := hdr.Header.Get("To")
	if !strings.Contains(to, want) {
		t.Errorf("To: %s; want %s", to, want)
	}
	if strings.Contains(to, "bücher") {
		t.Errorf("To: %s has the domain in UTF-8", to)
	}

	// The same for the From address the operator gives.
	m2, err := mailer.NewSMTP(srv.URL(), "Parley <parley@bücher.example>", nil, mailer.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Send(ctx, testMail); err != nil {
		t.Fatalf("Send from parley@bücher.example = %v", err)
	}
	got, err := srv.WaitFor(ctx, testMail.To)
	if err != nil {
		t.Fatal(err)
	}
	if got.From != "parley@xn--bcher-kva.example" {
		t.Errorf("MAIL FROM = %q; want %q", got.From, "parley@xn--bcher-kva.example")
	}
	hdr, err = mail.ReadMessage(strings.NewReader(string(got.Raw)))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"From", "Message-Id"} {
		if v := hdr.Header.Get(h); !strings.Contains(v, "@xn--bcher-kva.example") {
			t.Errorf("%s: %s; want the domain xn--bcher-kva.example", h, v)
		}
	}
}
