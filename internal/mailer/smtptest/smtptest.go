// Package smtptest runs a real SMTP server in the test process and keeps
// the mail it receives, so tests can send mail over the network and read it
// back: the sign-in code in particular. It is for tests only and accepts
// mail for any recipient; it never relays.
package smtptest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Server is an SMTP server listening on 127.0.0.1. Its methods are safe for
// concurrent use.
type Server struct {
	cfg  config
	addr string
	tls  *tls.Config // server side; nil without TLS
	pool *x509.CertPool

	mu       sync.Mutex
	messages []Message
	next     map[string]int // lower-cased recipient → index in messages WaitFor looks from
	arrived  chan struct{}  // closed and replaced when a message arrives
}

// Option configures Start.
type Option func(*config)

type config struct {
	user, password string
	startTLS       bool
	implicitTLS    bool
	offerSTARTTLS  bool
	dropAfterMail  bool
	fault          Fault
	stalled        chan struct{} // closed when the test ends, with FaultStall
	held           chan<- struct{}
	release        <-chan struct{}
}

// Fault is a way for the server to fail a transaction (WithFault).
type Fault int

const (
	// FaultNone: the server accepts every transaction.
	FaultNone Fault = iota
	// FaultRejectRcpt refuses every recipient with 550.
	FaultRejectRcpt
	// FaultRejectData reads the message, then refuses it with 554.
	FaultRejectData
	// FaultDropInData closes the connection while the client sends the
	// message, before its end.
	FaultDropInData
	// FaultStall reads the message and then answers nothing until the
	// test ends, as a relay that hangs.
	FaultStall
	// FaultRelayDenied refuses every recipient with 550 5.7.1, relaying
	// denied: the relay's policy for this client (not authenticated, a
	// sender it may not use), whatever the address.
	FaultRelayDenied
	// FaultSenderRejected refuses every recipient with 550 5.1.8, the
	// sender's domain not found: a refusal of the envelope sender that
	// a relay gives at RCPT TO (Postfix with smtpd_delay_reject, its
	// default), whatever the recipient.
	FaultSenderRejected
)

// WithFault makes the server fail every transaction as f says; nothing
// is kept.
func WithFault(f Fault) Option {
	return func(c *config) { c.fault = f }
}

// WithAuth makes the server offer AUTH PLAIN and refuse mail from clients
// that have not authenticated as user with password.
func WithAuth(user, password string) Option {
	return func(c *config) { c.user, c.password = user, password }
}

// WithSTARTTLS makes the server offer STARTTLS with a self-signed
// certificate and refuse mail (and AUTH) before the client has started TLS.
func WithSTARTTLS() Option {
	return func(c *config) { c.startTLS = true }
}

// WithImplicitTLS makes the server speak TLS from the first byte (smtps),
// with a self-signed certificate.
func WithImplicitTLS() Option {
	return func(c *config) { c.implicitTLS = true }
}

// WithSTARTTLSOffered makes a server with WithImplicitTLS offer STARTTLS
// too, over the TLS it already speaks, as some relays on port 465 do, and
// close the connection of a client that takes it up: STARTTLS over TLS is
// refused, and a client that sends it sends no mail.
func WithSTARTTLSOffered() Option {
	return func(c *config) { c.offerSTARTTLS = true }
}

// WithDropAfterMail makes the server close the connection as soon as it
// has accepted a message, without waiting for the client's next command
// (RSET or QUIT): the mail is delivered, and the client's session ends in
// an error, as with a relay that goes away at that moment.
func WithDropAfterMail() Option {
	return func(c *config) { c.dropAfterMail = true }
}

// WithHold makes the server read each message, tell held (if it has room),
// and answer nothing until release is closed, when it accepts the message: a relay
// slow to take mail, whose client may give up waiting before it does.
func WithHold(held chan<- struct{}, release <-chan struct{}) Option {
	return func(c *config) { c.held, c.release = held, release }
}

// Start starts a server on 127.0.0.1 at a free port and stops it when the
// test ends.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	var cfg config
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.startTLS && cfg.implicitTLS {
		tb.Fatal("smtptest: WithSTARTTLS and WithImplicitTLS exclude each other")
	}
	if cfg.offerSTARTTLS && !cfg.implicitTLS {
		tb.Fatal("smtptest: WithSTARTTLSOffered needs WithImplicitTLS")
	}
	s := &Server{cfg: cfg, next: make(map[string]int), arrived: make(chan struct{})}
	s.cfg.stalled = make(chan struct{})

	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "localhost"
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.MaxMessageBytes = 10 << 20
	srv.MaxRecipients = 50
	log := &tbLogger{tb: tb}
	srv.ErrorLog = log

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("smtptest: listen: %v", err)
	}
	s.addr = ln.Addr().String()
	if cfg.startTLS || cfg.implicitTLS {
		cert, pool, err := selfSigned()
		if err != nil {
			ln.Close()
			tb.Fatalf("smtptest: %v", err)
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		s.pool = pool
		srv.TLSConfig = s.tls
		if cfg.implicitTLS {
			ln = tls.NewListener(ln, s.tls)
			if cfg.offerSTARTTLS {
				// go-smtp offers STARTTLS on a connection that is not a
				// *tls.Conn, as it takes it to be in clear, and AUTH
				// there only if told to.
				ln = hideTLSListener{ln}
				srv.AllowInsecureAuth = true
			}
		}
	} else {
		srv.AllowInsecureAuth = true
	}

	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	tb.Cleanup(func() {
		close(s.cfg.stalled)
		log.close()
		if err := srv.Close(); err != nil {
			tb.Errorf("smtptest: close: %v", err)
		}
		// Serve may not have registered ln with srv yet, in which case
		// Close missed it.
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			tb.Errorf("smtptest: close listener: %v", err)
		}
		if err := <-done; err != nil {
			tb.Errorf("smtptest: serve: %v", err)
		}
	})
	return s
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return s.addr }

// URL returns a URL for mailer.NewSMTP reaching this server, with the
// credentials of WithAuth: smtps:// with WithImplicitTLS, smtp:// (STARTTLS
// required) with WithSTARTTLS, smtp://…?tls=none otherwise. Clients must
// trust TLSConfig.
func (s *Server) URL() string {
	u := url.URL{Scheme: "smtp", Host: s.addr}
	switch {
	case s.cfg.implicitTLS:
		u.Scheme = "smtps"
	case !s.cfg.startTLS:
		u.RawQuery = "tls=none"
	}
	if s.cfg.user != "" {
		u.User = url.UserPassword(s.cfg.user, s.cfg.password)
	}
	return u.String()
}

// TLSConfig returns a client configuration trusting the server's
// certificate, or nil when the server does not use TLS. Each call returns a
// new value.
func (s *Server) TLSConfig() *tls.Config {
	if s.pool == nil {
		return nil
	}
	return &tls.Config{RootCAs: s.pool, MinVersion: tls.VersionTLS12}
}

// CertPool returns a pool holding the server's self-signed certificate, or
// nil when the server does not use TLS.
func (s *Server) CertPool() *x509.CertPool { return s.pool }

// Messages returns the messages received so far, oldest first. Callers
// must not modify them.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.messages)
}

// WaitFor returns the oldest message for recipient to (compared without
// regard to case) that no earlier WaitFor for to has returned, waiting for
// one to arrive until ctx is done.
func (s *Server) WaitFor(ctx context.Context, to string) (Message, error) {
	key := strings.ToLower(strings.TrimSpace(to))
	for {
		s.mu.Lock()
		for i := s.next[key]; i < len(s.messages); i++ {
			if slices.ContainsFunc(s.messages[i].To, func(rcpt string) bool { return strings.EqualFold(rcpt, key) }) {
				s.next[key] = i + 1
				m := s.messages[i]
				s.mu.Unlock()
				return m, nil
			}
		}
		s.next[key] = len(s.messages)
		arrived := s.arrived
		s.mu.Unlock()

		select {
		case <-arrived:
		case <-ctx.Done():
			return Message{}, fmt.Errorf("smtptest: wait for mail to %s: %w", to, ctx.Err())
		}
	}
}

func (s *Server) add(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = append(s.messages, m)
	close(s.arrived)
	s.arrived = make(chan struct{})
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{srv: s, conn: c}, nil
}

// session is one SMTP connection's state.
type session struct {
	srv    *Server
	conn   *smtp.Conn
	authed bool
	from   string
	to     []string
	// accepted is set when a message was accepted; go-smtp calls Reset
	// once it has answered the DATA.
	accepted bool
}

var (
	_ smtp.Session     = (*session)(nil)
	_ smtp.AuthSession = (*session)(nil)
)

var errTLSRequired = &smtp.SMTPError{
	Code:         530,
	EnhancedCode: smtp.EnhancedCode{5, 7, 0},
	Message:      "Must issue a STARTTLS command first",
}

// AuthMechanisms offers PLAIN when the server requires authentication.
func (ss *session) AuthMechanisms() []string {
	if ss.srv.cfg.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

// Auth checks PLAIN credentials against WithAuth's.
func (ss *session) Auth(mech string) (sasl.Server, error) {
	if ss.srv.cfg.user == "" || mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, user, password string) error {
		if identity != "" && identity != user {
			return smtp.ErrAuthFailed
		}
		if user != ss.srv.cfg.user || password != ss.srv.cfg.password {
			return smtp.ErrAuthFailed
		}
		ss.authed = true
		return nil
	}), nil
}

// check refuses a transaction the server's options do not allow yet.
func (ss *session) check() error {
	if ss.srv.cfg.startTLS {
		if _, ok := ss.conn.TLSConnectionState(); !ok {
			return errTLSRequired
		}
	}
	if ss.srv.cfg.user != "" && !ss.authed {
		return smtp.ErrAuthRequired
	}
	return nil
}

// Mail starts a transaction from the envelope sender from.
func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if err := ss.check(); err != nil {
		return err
	}
	ss.from = from
	return nil
}

// Rcpt adds an envelope recipient.
func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := ss.check(); err != nil {
		return err
	}
	if ss.srv.cfg.fault == FaultRejectRcpt {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "smtptest: no such mailbox"}
	}
	if ss.srv.cfg.fault == FaultRelayDenied {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "smtptest: relaying denied"}
	}
	if ss.srv.cfg.fault == FaultSenderRejected {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 8}, Message: "smtptest: sender address rejected: domain not found"}
	}
	ss.to = append(ss.to, to)
	return nil
}

// Data reads, parses and keeps the message.
func (ss *session) Data(r io.Reader) error {
	if ss.srv.cfg.fault == FaultDropInData {
		if _, err := r.Read(make([]byte, 1)); err != nil {
			return err
		}
		ss.conn.Conn().Close()
		return errors.New("smtptest: connection dropped in DATA")
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	switch ss.srv.cfg.fault {
	case FaultRejectData:
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "smtptest: message refused"}
	case FaultStall:
		<-ss.srv.cfg.stalled
		return errors.New("smtptest: stalled until the test ended")
	}
	if cfg := ss.srv.cfg; cfg.release != nil {
		select {
		case cfg.held <- struct{}{}:
		default: // told already
		}
		select {
		case <-cfg.release:
		case <-cfg.stalled:
			return errors.New("smtptest: held until the test ended")
		}
	}
	m, err := parse(raw)
	if err != nil {
		// Refuse what the parser cannot read, so the sending test fails.
		return &smtp.SMTPError{
			Code:         554,
			EnhancedCode: smtp.EnhancedCode{5, 6, 0},
			Message:      "smtptest: cannot parse message: " + err.Error(),
		}
	}
	m.Helo = ss.conn.Hostname()
	m.From = ss.from
	m.To = slices.Clone(ss.to)
	ss.srv.add(m)
	ss.accepted = true
	return nil
}

// Reset ends the transaction, and with WithDropAfterMail the connection
// if a message was accepted.
func (ss *session) Reset() {
	ss.from = ""
	ss.to = nil
	if ss.accepted && ss.srv.cfg.dropAfterMail {
		// The underlying connection: Conn.Close takes a lock that go-smtp
		// holds while it calls Reset.
		ss.conn.Conn().Close()
	}
}

// Logout frees nothing: a session holds no resources.
func (ss *session) Logout() error { return nil }

// hideTLSListener accepts connections whose TLS go-smtp cannot see, and
// that end when the client sends STARTTLS (hideTLSConn).
type hideTLSListener struct{ net.Listener }

func (l hideTLSListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &hideTLSConn{Conn: c}, nil
}

// hideTLSConn is a TLS connection that is not a *tls.Conn, and that closes
// when a line the client sends on it is STARTTLS.
type hideTLSConn struct {
	net.Conn
	line []byte // the start of the client's line under way
}

var errSTARTTLSOverTLS = errors.New("smtptest: STARTTLS over TLS refused")

func (c *hideTLSConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	for _, b := range p[:n] {
		if b == '\n' {
			if strings.EqualFold(strings.TrimSpace(string(c.line)), "STARTTLS") {
				c.Conn.Close()
				return 0, errSTARTTLSOverTLS
			}
			c.line = c.line[:0]
		} else if len(c.line) < 16 {
			c.line = append(c.line, b)
		}
	}
	return n, err
}

// selfSigned returns a certificate for 127.0.0.1, ::1 and localhost, and a
// pool trusting it.
func selfSigned() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("generate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "smtptest"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("parse certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}

// tbLogger sends the SMTP server's errors to the test log until the test
// ends; after that, testing would panic, so they are dropped.
type tbLogger struct {
	tb     testing.TB
	mu     sync.Mutex
	closed bool
}

func (l *tbLogger) Printf(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.tb.Logf("smtptest: "+format, v...)
	}
}

func (l *tbLogger) Println(v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.tb.Log(append([]any{"smtptest:"}, v...)...)
	}
}

func (l *tbLogger) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
}
