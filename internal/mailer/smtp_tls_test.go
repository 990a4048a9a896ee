package mailer_test

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/mailer"
	"github.com/parley-chat/parley/internal/mailer/smtptest"
)

// TestSMTPImplicitTLSOffersSTARTTLS: over smtps:// the connection is TLS
// from its first byte, so the mailer never sends STARTTLS, even to a relay
// that offers it over that TLS (which then refuses it), and still
// authenticates with PLAIN, the connection being encrypted.
func TestSMTPImplicitTLSOffersSTARTTLS(t *testing.T) {
	srv := smtptest.Start(t, smtptest.WithAuth(testUser, testPassword), smtptest.WithImplicitTLS(), smtptest.WithSTARTTLSOffered())
	m := newTestSMTP(t, srv.URL(), mailer.WithTLSConfig(srv.TLSConfig()))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := m.Send(ctx, testMail); err != nil {
		t.Fatalf("Send = %v", err)
	}
	got, err := srv.WaitFor(ctx, testMail.To)
	if err != nil {
		t.Fatal(err)
	}
	checkMessage(t, got, testMail)
}
