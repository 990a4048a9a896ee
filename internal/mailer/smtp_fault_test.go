package mailer_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/mailer"
	"github.com/parley-chat/parley/internal/mailer/smtptest"
)

// TestSMTPSendRelayFaults: a relay that refuses the recipient or the
// message, or drops the connection in the middle of it, makes Send fail
// with its reason, and reports nothing delivered. Only a refusal of the
// recipient for good (550, no such mailbox) is chat.ErrInvalid, which the
// user must fix, not retry; a refusal of the message itself (554) does
// not blame the address, nor does one of the recipient for a policy of
// the relay's own (550 5.7.1, relaying denied: the operator's setup,
// which every address would meet), nor one of the sender given at RCPT
// (550 5.1.8).
func TestSMTPSendRelayFaults(t *testing.T) {
	tests := []struct {
		name    string
		fault   smtptest.Fault
		want    string
		invalid bool
	}{
		{"recipient refused", smtptest.FaultRejectRcpt, "550", true},
		{"relaying denied", smtptest.FaultRelayDenied, "5.7.1", false},
		{"sender rejected", smtptest.FaultSenderRejected, "5.1.8", false},
		{"message refused", smtptest.FaultRejectData, "554", false},
		{"dropped in DATA", smtptest.FaultDropInData, "send", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtptest.Start(t, smtptest.WithFault(tt.fault))
			m := newTestSMTP(t, srv.URL())
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			err := m.Send(ctx, testMail)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Send = %v; want an error containing %q", err, tt.want)
			}
			if got := errors.Is(err, chat.ErrInvalid); got != tt.invalid {
				t.Errorf("Send = %v; ErrInvalid %v, want %v", err, got, tt.invalid)
			}
			if n := len(srv.Messages()); n != 0 {
				t.Errorf("server kept %d messages; want 0", n)
			}
		})
	}
}

// TestSMTPSendStalledRelayCtx: Send gives up when its context ends, even
// after the dial, as a relay that stops answering in the middle of the
// session would otherwise hold the caller (a sign-in request, which has
// 15 s) for the mailer's timeout after each exchange.
func TestSMTPSendStalledRelayCtx(t *testing.T) {
	srv := smtptest.Start(t, smtptest.WithFault(smtptest.FaultStall))
	m, err := mailer.NewSMTP(srv.URL(), testFrom, slog.New(slog.DiscardHandler), mailer.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	err = m.Send(ctx, testMail)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v; want an error wrapping the context's deadline", err)
	}
}
