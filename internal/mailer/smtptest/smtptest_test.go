package smtptest_test

import (
	"context"
	"errors"
	"fmt"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/parley-chat/parley/internal/mailer/smtptest"
)

// send delivers raw (with LF line endings) through the standard library's
// client.
func send(t *testing.T, srv *smtptest.Server, from string, to []string, raw string) {
	t.Helper()
	raw = strings.ReplaceAll(raw, "\n", "\r\n")
	if err := smtp.SendMail(srv.Addr(), nil, from, to, []byte(raw)); err != nil {
		t.Fatalf("SendMail = %v", err)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want smtptest.Message
	}{
		{
			name: "plain",
			raw:  "Subject: hello\nContent-Type: text/plain; charset=utf-8\n\nline one\nline two\n",
			want: smtptest.Message{Subject: "hello", Text: "line one\nline two\n"},
		},
		{
			name: "no content type",
			raw:  "Subject: hi\n\nbody\n",
			want: smtptest.Message{Subject: "hi", Text: "body\n"},
		},
		{
			name: "encoded subject, base64 body",
			raw: "Subject: =?UTF-8?q?Your_code:_123456_=E2=80=94_ok?=\n" +
				"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n" +
				"WW91ciBjb2RlIGlzIDEyMzQ1\nNgo=\n",
			want: smtptest.Message{Subject: "Your code: 123456 — ok", Text: "Your code is 123456\n"},
		},
		{
			name: "multipart alternative, quoted-printable and base64",
			raw: "Subject: =?UTF-8?b?w7xiZXI=?=\nMIME-Version: 1.0\n" +
				"Content-Type: multipart/alternative; boundary=XYZ\n\n" +
				"--XYZ\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: quoted-printable\n\n" +
				"Code: 654321 =E2=80=94 a long line that is soft=\n-wrapped\n" +
				"--XYZ\nContent-Type: text/html; charset=UTF-8\nContent-Transfer-Encoding: base64\n\n" +
				"PHA+NjU0MzIxPC9wPg==\n" +
				"--XYZ--\n",
			want: smtptest.Message{Subject: "über", Text: "Code: 654321 — a long line that is soft-wrapped", HTML: "<p>654321</p>"},
		},
		{
			name: "nested multipart",
			raw: "Subject: nested\nContent-Type: multipart/mixed; boundary=outer\n\n" +
				"--outer\nContent-Type: multipart/alternative; boundary=inner\n\n" +
				"--inner\nContent-Type: text/plain\n\ntext\n--inner\nContent-Type: text/html\n\n<b>html</b>\n--inner--\n" +
				"--outer\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nAAEC\n" +
				"--outer--\n",
			want: smtptest.Message{Subject: "nested", Text: "text", HTML: "<b>html</b>"},
		},
	}
	srv := smtptest.Start(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			to := fmt.Sprintf("rcpt%d@example.org", i)
			send(t, srv, "sender@example.com", []string{to}, tt.raw)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			got, err := srv.WaitFor(ctx, to)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.Helo, want.From, want.To = "localhost", "sender@example.com", []string{to} // net/smtp greets with localhost
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(smtptest.Message{}, "Raw")); diff != "" {
				t.Errorf("message mismatch (-want +got):\n%s", diff)
			}
			if !strings.Contains(string(got.Raw), "Subject:") {
				t.Errorf("Raw = %q; want the whole message", got.Raw)
			}
		})
	}
}

func TestWaitFor(t *testing.T) {
	srv := smtptest.Start(t)
	msg := func(subject string) string { return "Subject: " + subject + "\n\nbody\n" }
	send(t, srv, "s@example.com", []string{"a@example.org"}, msg("a1"))
	send(t, srv, "s@example.com", []string{"b@example.org", "A@example.org"}, msg("ab"))

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for _, want := range []string{"a1", "ab"} {
		got, err := srv.WaitFor(ctx, "a@EXAMPLE.org")
		if err != nil {
			t.Fatal(err)
		}
		if got.Subject != want {
			t.Errorf("WaitFor(a) subject = %q; want %q", got.Subject, want)
		}
	}
	if got, err := srv.WaitFor(ctx, "b@example.org"); err != nil || got.Subject != "ab" {
		t.Errorf("WaitFor(b) = %q, %v; want ab", got.Subject, err)
	}

	// Nothing new for a: WaitFor blocks until ctx ends.
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if _, err := srv.WaitFor(short, "a@example.org"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitFor with nothing new = %v; want context.DeadlineExceeded", err)
	}

	// A message arriving while WaitFor waits wakes it.
	type result struct {
		m   smtptest.Message
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := srv.WaitFor(ctx, "a@example.org")
		done <- result{m, err}
	}()
	time.Sleep(20 * time.Millisecond)
	send(t, srv, "s@example.com", []string{"a@example.org"}, msg("a2"))
	if r := <-done; r.err != nil || r.m.Subject != "a2" {
		t.Errorf("WaitFor(a) = %q, %v; want a2", r.m.Subject, r.err)
	}

	var subjects []string
	for _, m := range srv.Messages() {
		subjects = append(subjects, m.Subject)
	}
	if diff := cmp.Diff([]string{"a1", "ab", "a2"}, subjects); diff != "" {
		t.Errorf("Messages subjects mismatch (-want +got):\n%s", diff)
	}
}

func TestURL(t *testing.T) {
	tests := []struct {
		name    string
		opts    []smtptest.Option
		prefix  string
		suffix  string
		withTLS bool
	}{
		{"plain", nil, "smtp://127.0.0.1:", "?tls=none", false},
		{"auth", []smtptest.Option{smtptest.WithAuth("u@x", "p w")}, "smtp://u%40x:p%20w@127.0.0.1:", "?tls=none", false},
		{"STARTTLS", []smtptest.Option{smtptest.WithSTARTTLS()}, "smtp://127.0.0.1:", "", true},
		{"implicit TLS", []smtptest.Option{smtptest.WithImplicitTLS()}, "smtps://127.0.0.1:", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtptest.Start(t, tt.opts...)
			u := srv.URL()
			if !strings.HasPrefix(u, tt.prefix) || !strings.HasSuffix(u, strings.TrimPrefix(srv.Addr(), "127.0.0.1")+tt.suffix) {
				t.Errorf("URL() = %q; want %s<port>%s", u, tt.prefix, tt.suffix)
			}
			if got := srv.TLSConfig() != nil && srv.CertPool() != nil; got != tt.withTLS {
				t.Errorf("has TLS config = %v; want %v", got, tt.withTLS)
			}
		})
	}
}

func TestExtractCode(t *testing.T) {
	tests := []struct {
		text, want string
	}{
		{"Your code is: 123456", "123456"},
		{"123456 is your code", "123456"},
		{"code 012345.", "012345"},
		{"Order 1234567, code 654321\n", "654321"},
		{"12345 and 1234567", ""},
		{"a123456b", "123456"},
		{"", ""},
		{"first 111111 then 222222", "111111"},
	}
	for _, tt := range tests {
		if got := smtptest.ExtractCode(tt.text); got != tt.want {
			t.Errorf("ExtractCode(%q) = %q; want %q", tt.text, got, tt.want)
		}
	}
	if got := smtptest.CodeIn(smtptest.Message{Subject: "999999", Text: "code: 424242"}); got != "424242" {
		t.Errorf("CodeIn = %q; want 424242", got)
	}
}
