package mailer_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/mailer"
	"github.com/parley-chat/parley/internal/mailer/smtptest"
)

const (
	testUser     = "parley@example.com"
	testPassword = "p@ss:w/rd%20é" // needs URL escaping
	testFrom     = "Parley <parley@example.com>"
)

var testMail = chat.Mail{
	To:      "alice@example.org",
	Subject: "Your Parley sign-in code: 482910 — ünïcode",
	Text:    "Your Parley sign-in code is: 482910\n\nIt is valid for 10 minutes and can be used once.\n",
	HTML:    "<!doctype html>\n<p>Your Parley sign-in code is:</p>\n<p style=\"font-size:28px\">482910</p>\n",
}

func newTestSMTP(tb testing.TB, rawURL string, opts ...mailer.Option) *mailer.SMTP {
	tb.Helper()
	m, err := mailer.NewSMTP(rawURL, testFrom, slog.New(slog.DiscardHandler), append([]mailer.Option{mailer.WithTimeout(5 * time.Second)}, opts...)...)
	if err != nil {
		tb.Fatalf("NewSMTP(%q) = %v", rawURL, err)
	}
	return m
}

func TestSMTPSend(t *testing.T) {
	tests := []struct {
		name   string
		opts   []smtptest.Option
		scheme string
	}{
		{"no TLS", []smtptest.Option{smtptest.WithAuth(testUser, testPassword)}, "smtp"},
		{"STARTTLS", []smtptest.Option{smtptest.WithAuth(testUser, testPassword), smtptest.WithSTARTTLS()}, "smtp"},
		{"implicit TLS", []smtptest.Option{smtptest.WithAuth(testUser, testPassword), smtptest.WithImplicitTLS()}, "smtps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtptest.Start(t, tt.opts...)
			if !strings.HasPrefix(srv.URL(), tt.scheme+"://") {
				t.Fatalf("URL() = %q; want scheme %s", srv.URL(), tt.scheme)
			}
			var opts []mailer.Option
			if c := srv.TLSConfig(); c != nil {
				opts = append(opts, mailer.WithTLSConfig(c))
			}
			m := newTestSMTP(t, srv.URL(), opts...)
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
		})
	}
}

func checkMessage(t *testing.T, got smtptest.Message, want chat.Mail) {
	t.Helper()
	if len(got.To) != 1 || got.To[0] != want.To {
		t.Errorf("To = %q; want [%q]", got.To, want.To)
	}
	if got.From != testUser {
		t.Errorf("From = %q; want %q", got.From, testUser)
	}
	if got.Subject != want.Subject {
		t.Errorf("Subject = %q; want %q", got.Subject, want.Subject)
	}
	if got.Text != want.Text {
		t.Errorf("Text = %q; want %q", got.Text, want.Text)
	}
	if got.HTML != want.HTML {
		t.Errorf("HTML = %q; want %q", got.HTML, want.HTML)
	}
	for _, s := range []string{"multipart/alternative", "text/plain", "text/html", "From: \"Parley\" <parley@example.com>"} {
		if !bytes.Contains(got.Raw, []byte(s)) {
			t.Errorf("raw message lacks %q:\n%s", s, got.Raw)
		}
	}
	if code := smtptest.CodeIn(got); code != "482910" {
		t.Errorf("CodeIn = %q; want 482910", code)
	}
}

func TestSMTPSendSinglePart(t *testing.T) {
	srv := smtptest.Start(t)
	m := newTestSMTP(t, srv.URL())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	mail := chat.Mail{To: "bob@example.org", Subject: "plain", Text: "only text\n"}
	if err := m.Send(ctx, mail); err != nil {
		t.Fatalf("Send = %v", err)
	}
	got, err := srv.WaitFor(ctx, mail.To)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != mail.Text || got.HTML != "" {
		t.Errorf("Text, HTML = %q, %q; want %q, \"\"", got.Text, got.HTML, mail.Text)
	}
	if bytes.Contains(got.Raw, []byte("multipart/")) {
		t.Errorf("text-only mail is multipart:\n%s", got.Raw)
	}
}

func TestSMTPSendFails(t *testing.T) {
	const wrongPassword = "wrong-s3cret"
	withPassword := func(rawURL, password string) string {
		u, err := url.Parse(rawURL)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(u.User.Username(), password)
		return u.String()
	}
	plain := smtptest.Start(t)
	authed := smtptest.Start(t, smtptest.WithAuth(testUser, testPassword))
	startTLS := smtptest.Start(t, smtptest.WithAuth(testUser, testPassword), smtptest.WithSTARTTLS())
	tests := []struct {
		name string
		url  string
		opts []mailer.Option
		want string // in the error
	}{
		{"wrong password", withPassword(authed.URL(), wrongPassword), nil, "535"},
		{"wrong password over STARTTLS", withPassword(startTLS.URL(), wrongPassword), []mailer.Option{mailer.WithTLSConfig(startTLS.TLSConfig())}, "535"},
		{"no credentials", "smtp://" + authed.Addr() + "?tls=none", nil, "authenticate"},
		{"untrusted certificate", startTLS.URL(), nil, "certificate"},
		{"STARTTLS required but not offered", "smtp://" + plain.Addr(), nil, "STARTTLS"},
		{"no clear-text password with opportunistic TLS", "smtp://u:" + wrongPassword + "@" + authed.Addr() + "?tls=opportunistic", nil, "auth"},
		{"nothing listening", "smtp://127.0.0.1:1?tls=none", nil, "127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestSMTP(t, tt.url, tt.opts...)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			err := m.Send(ctx, testMail)
			if err == nil {
				t.Fatal("Send = nil; want an error")
			}
			t.Logf("Send = %v", err)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Send = %v; want an error containing %q", err, tt.want)
			}
			for _, secret := range []string{wrongPassword, testPassword} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("Send error reveals the password: %v", err)
				}
			}
		})
	}
	for _, srv := range []*smtptest.Server{plain, authed, startTLS} {
		if n := len(srv.Messages()); n != 0 {
			t.Errorf("server %s received %d messages; want 0", srv.Addr(), n)
		}
	}
}

// TestSMTPSendDeliveredThenDropped checks that a mail the relay accepted
// is reported sent even if the session fails after it: the relay has the
// mail, and a caller told otherwise would count it as lost.
func TestSMTPSendDeliveredThenDropped(t *testing.T) {
	srv := smtptest.Start(t, smtptest.WithDropAfterMail())
	m := newTestSMTP(t, "smtp://"+srv.Addr()+"?tls=none")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := m.Send(ctx, testMail); err != nil {
		t.Errorf("Send = %v; want nil: the relay accepted the mail", err)
	}
	got, err := srv.WaitFor(ctx, testMail.To)
	if err != nil {
		t.Fatal(err)
	}
	checkMessage(t, got, testMail)
}

func TestSMTPOpportunisticWithoutSTARTTLS(t *testing.T) {
	srv := smtptest.Start(t)
	m := newTestSMTP(t, "smtp://"+srv.Addr()+"?tls=opportunistic")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := m.Send(ctx, testMail); err != nil {
		t.Fatalf("Send = %v", err)
	}
	if _, err := srv.WaitFor(ctx, testMail.To); err != nil {
		t.Fatal(err)
	}
}

func TestNewSMTPErrors(t *testing.T) {
	tests := []struct {
		name string
		url  string
		from string
		want string // in the error
	}{
		{"empty", "", testFrom, "empty"},
		{"bad scheme", "http://mail.example.com", testFrom, `scheme "http" not supported`},
		{"no scheme", "mail.example.com:587", testFrom, "not supported"},
		{"no host", "smtp://", testFrom, "no host"},
		{"no host with user", "smtp://user:topsecret@:25", testFrom, "no host"},
		{"opaque", "smtp:mail.example.com", testFrom, "no host"},
		{"opaque with password", "smtp:user:topsecret@mail.example.com", testFrom, "no host"},
		{"no scheme with password", "user:topsecret@mail.example.com", testFrom, `scheme "user" not supported`},
		{"bad port", "smtp://mail.example.com:99999", testFrom, "invalid port"},
		{"path", "smtp://mail.example.com/inbox", testFrom, "unexpected path"},
		{"unknown parameter", "smtp://mail.example.com?starttls=opportunistic", testFrom, `unknown parameter "starttls"; the only parameter is tls=starttls|opportunistic|none`},
		{"unknown tls value", "smtp://mail.example.com?tls=insecure", testFrom, `unknown tls="insecure"; want tls=starttls (default), tls=opportunistic or tls=none`},
		{"repeated tls", "smtp://mail.example.com?tls=none&tls=starttls", testFrom, "2 times"},
		{"tls on smtps", "smtps://mail.example.com?tls=none", testFrom, "implicit TLS"},
		{"STARTTLS on port 465", "smtp://user:topsecret@mail.example.com:465", testFrom, "use smtps://"},
		{"opportunistic on port 465", "smtp://mail.example.com:465?tls=opportunistic", testFrom, "use smtps://"},
		{"password without user", "smtp://:topsecret@mail.example.com", testFrom, "password without user"},
		{"bad escape", "smtp://user:top%zzsecret@mail.example.com", testFrom, "invalid SMTP URL"},
		{"slash in password", "smtp://user:topsecret/x@mail.example.com", testFrom, "percent-encoded"},
		{"hash in password", "smtp://user:topsecret#x@mail.example.com", testFrom, "percent-encoded"},
		{"question mark in password", "smtp://user:topsecret?x@mail.example.com", testFrom, "percent-encoded"},
		{"slash in user", "smtps://us/er:topsecret@mail.example.com", testFrom, "percent-encoded"},
		{"bad from", "smtp://mail.example.com", "parley", "invalid from address"},
		{"empty from", "smtp://mail.example.com", "", "invalid from address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := mailer.NewSMTP(tt.url, tt.from, nil)
			if err == nil {
				t.Fatalf("NewSMTP(%q, %q) = nil error; want one containing %q", tt.url, tt.from, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewSMTP(%q, %q) = %v; want an error containing %q", tt.url, tt.from, err, tt.want)
			}
			if strings.Contains(err.Error(), "topsecret") {
				t.Errorf("NewSMTP(%q) error reveals the password: %v", tt.url, err)
			}
		})
	}
}

func TestNewSMTPValid(t *testing.T) {
	for _, u := range []string{
		"smtp://mail.example.com",
		"smtp://mail.example.com:25?tls=none",
		"smtp://user:pa%40ss@mail.example.com:587?tls=starttls",
		"smtp://user@mail.example.com?tls=opportunistic",
		"smtps://user:pass@mail.example.com",
		"smtps://[::1]:465/",
		"smtp://mail.example.com:465?tls=none",
	} {
		if _, err := mailer.NewSMTP(u, testFrom, nil); err != nil {
			t.Errorf("NewSMTP(%q) = %v; want nil", u, err)
		}
	}
}
