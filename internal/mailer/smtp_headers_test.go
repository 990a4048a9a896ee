package mailer_test

import (
	"bytes"
	"context"
	"log/slog"
	"mime"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/mailer"
	"github.com/parley-chat/parley/internal/mailer/smtptest"
)

// TestSMTPHeaders: the mail carries a Date and a Message-ID, greets with
// the From address's domain, a From whose
// display name is not ASCII is RFC 2047-encoded (and decodes back), no
// line is longer than RFC 5322's 998 characters even for a body of one
// long line, and the headers hold nothing but what was asked.
func TestSMTPHeaders(t *testing.T) {
	srv := smtptest.Start(t)
	const from = "Pärley Ünïcode Ñame <parley@example.com>"
	m, err := mailer.NewSMTP(srv.URL(), from, slog.New(slog.DiscardHandler), mailer.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	long := strings.Repeat("0123456789", 300)
	want := chat.Mail{To: "bob@example.org", Subject: "Ünïcode subject", Text: long + "\n", HTML: "<p>" + long + "</p>"}
	if err := m.Send(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := srv.WaitFor(ctx, want.To)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != want.Text || got.HTML != want.HTML || got.Subject != want.Subject {
		t.Errorf("long body or subject changed on the way")
	}
	for i, line := range bytes.Split(got.Raw, []byte("\r\n")) {
		if len(line) > 998 {
			t.Errorf("line %d is %d bytes long", i+1, len(line))
		}
		for _, c := range line {
			if c >= 0x80 {
				t.Fatalf("line %d has a byte that is not ASCII: %q", i+1, line)
			}
		}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(got.Raw))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := msg.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	// The Message-ID's domain is the From address's, not this machine's
	// name, which is no domain of the sender's and tells strangers the
	// name of a host inside.
	if id := msg.Header.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@example.com>") || len(id) < len("<@example.com>")+20 {
		t.Errorf("Message-ID %q; want <random id@example.com>", id)
	}
	// So is the name it greets the relay with, which a relay writes into
	// the Received header every recipient sees.
	if got.Helo != "example.com" {
		t.Errorf("EHLO %q; want example.com, the From address's domain", got.Helo)
	}
	dec := mail.AddressParser{WordDecoder: &mime.WordDecoder{}}
	addr, err := dec.Parse(msg.Header.Get("From"))
	if err != nil || addr.Name != "Pärley Ünïcode Ñame" || addr.Address != "parley@example.com" {
		t.Errorf("From %q parsed as %v, %v", msg.Header.Get("From"), addr, err)
	}
	for _, h := range []string{"Bcc", "Cc", "Reply-To"} {
		if v, ok := msg.Header[h]; ok {
			t.Errorf("header %s: %q; want none", h, v)
		}
	}
}

// TestSMTPHeaderInjection: a From or a recipient with a line break in it
// cannot add a header: NewSMTP refuses the From, Send the recipient, and
// nothing reaches the relay.
func TestSMTPHeaderInjection(t *testing.T) {
	srv := smtptest.Start(t)
	for _, from := range []string{
		"Parley <parley@example.com>\r\nBcc: eve@example.net",
		"\"Parley\r\nBcc: eve@example.net\" <parley@example.com>",
		"Parley\nBcc: eve@example.net <parley@example.com>",
	} {
		if _, err := mailer.NewSMTP(srv.URL(), from, nil); err == nil {
			t.Errorf("NewSMTP(from %q) = nil error; want it refused", from)
		}
	}
	m := newTestSMTP(t, srv.URL())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, to := range []string{
		"bob@example.org\r\nBcc: eve@example.net",
		"\"Bob\r\nBcc: eve@example.net\" <bob@example.org>",
		"bob@example.org\nBcc: eve@example.net",
	} {
		mail := testMail
		mail.To = to
		if err := m.Send(ctx, mail); err == nil {
			t.Errorf("Send(to %q) = nil; want it refused", to)
		}
	}
	mail := testMail
	mail.Subject = "code\r\nBcc: eve@example.net"
	if err := m.Send(ctx, mail); err == nil {
		got, err := srv.WaitFor(ctx, mail.To)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(got.Raw, []byte("\r\nBcc:")) || strings.Contains(strings.Join(got.To, ","), "eve") {
			t.Errorf("a line break in the subject added a header:\n%s", got.Raw)
		}
	}
	for _, msg := range srv.Messages() {
		if strings.Contains(strings.Join(msg.To, ","), "eve") {
			t.Errorf("mail reached %v", msg.To)
		}
	}
}
