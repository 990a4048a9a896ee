// Package mailer sends Parley's mail: over SMTP, or to the log in development.
//
// NewSMTP takes the relay as a URL:
//
//	smtp://user:pass@host:port    STARTTLS (port 587 by default)
//	smtps://user:pass@host:port   implicit TLS (port 465 by default)
//
// User and password are URL-decoded; without a user, no SMTP AUTH is done.
// An smtp:// URL takes one query parameter, tls, saying how to use STARTTLS:
//
//	tls=starttls        require STARTTLS; fail if the server does not offer it (default)
//	tls=opportunistic   use STARTTLS when the server offers it, else send in clear
//	tls=none            never use TLS; only for a relay on the same host or network
//
// Port 465 is for implicit TLS: smtp:// takes it only with tls=none.
//
// Credentials go over an unencrypted connection only with tls=none; with
// tls=opportunistic and no STARTTLS, only challenge-response mechanisms
// (SCRAM, CRAM-MD5) are tried.
//
// The package speaks chat.Mail and nothing else: it knows nothing of sign-in
// codes, users or HTTP.
package mailer

import (
	"context"
	"log/slog"

	"github.com/parley-chat/parley/internal/chat"
)

var _ chat.Mailer = (*Log)(nil)

// Log is a Mailer that sends nothing: it writes each mail to the log, so
// that in development the sign-in code can be read from the server output.
type Log struct {
	logger *slog.Logger
}

// NewLog returns a Log mailer writing to logger (discarding if nil).
func NewLog(logger *slog.Logger) *Log {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Log{logger: logger}
}

// Send logs m's recipient, subject and text body at Info level. It never
// fails.
func (l *Log) Send(ctx context.Context, m chat.Mail) error {
	l.logger.InfoContext(ctx, "mail not sent, logged instead (development mailer)",
		"to", m.To, "subject", m.Subject, "text", m.Text)
	return nil
}
