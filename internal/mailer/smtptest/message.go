package smtptest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"regexp"
	"strings"
)

// Message is one mail the server received.
type Message struct {
	Helo string   // the name the client greeted with (EHLO or HELO)
	From string   // envelope sender (MAIL FROM)
	To   []string // envelope recipients (RCPT TO)
	Raw  []byte   // the message as sent: headers and body

	// Subject is the decoded Subject header. Text and HTML are the first
	// text/plain and text/html bodies, transfer-decoded, with CRLF turned
	// into LF; empty when the message has no such part. Charsets other than
	// UTF-8 are not converted.
	Subject, Text, HTML string
}

// parse fills in Subject, Text and HTML from raw.
func parse(raw []byte) (Message, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Message{}, fmt.Errorf("read header: %w", err)
	}
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return Message{}, fmt.Errorf("decode subject: %w", err)
	}
	m := Message{Raw: raw, Subject: subject}
	if err := m.walk(textproto.MIMEHeader(msg.Header), msg.Body); err != nil {
		return Message{}, err
	}
	return m, nil
}

// walk reads the entity with header h and body r, descending into
// multipart bodies.
func (m *Message) walk(h textproto.MIMEHeader, r io.Reader) error {
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain"
	}
	mediaType, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return fmt.Errorf("content type %q: %w", ct, err)
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(r, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s: %w", mediaType, err)
			}
			if err := m.walk(p.Header, p); err != nil {
				return err
			}
		}
	}
	// A multipart.Part already decodes quoted-printable and then hides the
	// Content-Transfer-Encoding header.
	switch cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))); cte {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, r) // skips line breaks
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("%s body: %w", mediaType, err)
	}
	body := strings.ReplaceAll(string(b), "\r\n", "\n")
	switch {
	case mediaType == "text/plain" && m.Text == "":
		m.Text = body
	case mediaType == "text/html" && m.HTML == "":
		m.HTML = body
	}
	return nil
}

var codeRE = regexp.MustCompile(`(?:^|[^0-9])([0-9]{6})(?:[^0-9]|$)`)

// ExtractCode returns the first run of exactly six digits in text, or ""
// if there is none.
func ExtractCode(text string) string {
	if sm := codeRE.FindStringSubmatch(text); sm != nil {
		return sm[1]
	}
	return ""
}

// CodeIn returns the sign-in code in m's text body: its first run of
// exactly six digits, or "" if there is none.
func CodeIn(m Message) string { return ExtractCode(m.Text) }
