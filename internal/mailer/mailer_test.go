package mailer_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parley-chat/parley/internal/mailer"
)

func TestLogSend(t *testing.T) {
	var buf bytes.Buffer
	m := mailer.NewLog(slog.New(slog.NewJSONHandler(&buf, nil)))
	if err := m.Send(t.Context(), testMail); err != nil {
		t.Fatalf("Send = %v", err)
	}
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("log output %q: %v", buf.String(), err)
	}
	want := map[string]any{"level": "INFO", "to": testMail.To, "subject": testMail.Subject, "text": testMail.Text}
	got := map[string]any{"level": rec["level"], "to": rec["to"], "subject": rec["subject"], "text": rec["text"]}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log record mismatch (-want +got):\n%s", diff)
	}
}

func TestLogSendText(t *testing.T) {
	var buf bytes.Buffer
	m := mailer.NewLog(slog.New(slog.NewTextHandler(&buf, nil)))
	if err := m.Send(t.Context(), testMail); err != nil {
		t.Fatalf("Send = %v", err)
	}
	if !bytes.Contains(buf.Bytes(), []byte("482910")) {
		t.Errorf("log output lacks the code 482910:\n%s", buf.String())
	}
}
