package mailer

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	mail "github.com/wneessen/go-mail"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/inflight"
	"github.com/parley-chat/parley/internal/redact"
)

var _ chat.Mailer = (*SMTP)(nil)

// DefaultTimeout bounds connecting to the relay and each exchange with it.
const DefaultTimeout = 30 * time.Second

// DefaultMaxSessions is how many SMTP sessions an SMTP mailer holds open
// at once.
const DefaultMaxSessions = 10

// cutGrace bounds how long Wait, having cut the sessions still under way,
// waits for them to tell their outcome (Mail.Unsent).
const cutGrace = 2 * time.Second

// Values of the tls query parameter of smtp:// URLs.
const (
	tlsSTARTTLS      = "starttls"
	tlsOpportunistic = "opportunistic"
	tlsNone          = "none"
)

// SMTP is a Mailer that hands mail to an SMTP relay, one connection per
// mail, at most WithMaxSessions at once. It is safe for concurrent use.
type SMTP struct {
	host   string // as go-mail wants it: IPv6 literals in brackets
	addr   string // host:port, for errors and logs
	from   *netmail.Address
	domain string // from's, in ASCII: for EHLO and the Message-ID
	opts   []mail.Option
	dial   mail.DialContextFunc // TLS too for smtps://
	logger *slog.Logger
	// slots holds a token for each session open, taken before it dials
	// and given back when it has ended, which may be after Send returned.
	slots chan struct{}
	// open counts the sessions under way until their outcome is told
	// (logged), a little longer than they hold their slots, for Wait:
	// taking all the slots instead would refuse the Sends that come
	// meanwhile, which Wait is to let through.
	open inflight.Count

	mu    sync.Mutex
	conns map[net.Conn]struct{} // of the sessions under way, for Wait to cut
}

// Option configures NewSMTP.
type Option func(*options)

type options struct {
	tlsConfig   *tls.Config
	timeout     time.Duration
	maxSessions int
}

// WithTLSConfig makes the mailer use a clone of c for STARTTLS and implicit
// TLS, for example to trust a test server's self-signed certificate. When
// c.ServerName is empty, the URL's host is used.
func WithTLSConfig(c *tls.Config) Option {
	return func(o *options) { o.tlsConfig = c }
}

// WithTimeout replaces DefaultTimeout; d must be positive.
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// WithMaxSessions replaces DefaultMaxSessions; n must be positive.
func WithMaxSessions(n int) Option {
	return func(o *options) { o.maxSessions = n }
}

// NewSMTP returns a mailer sending through the relay at rawURL (see the
// package documentation for its forms) with from as the From address, such
// as "Parley <parley@example.com>". It checks its arguments but does not
// connect. Errors never include the password.
func NewSMTP(rawURL, from string, logger *slog.Logger, opts ...Option) (*SMTP, error) {
	o := options{timeout: DefaultTimeout, maxSessions: DefaultMaxSessions}
	for _, opt := range opts {
		opt(&o)
	}
	if o.timeout <= 0 {
		return nil, fmt.Errorf("mailer: timeout must be positive, got %s", o.timeout)
	}
	if o.maxSessions <= 0 {
		return nil, fmt.Errorf("mailer: most sessions at once must be positive, got %d", o.maxSessions)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	fromAddr, err := netmail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("mailer: invalid from address %q: %w", from, err)
	}
	// Its domain in ASCII, as the recipients' (Send), for MAIL FROM, the
	// From header and the Message-ID.
	if fromAddr.Address, err = chat.EmailASCII(fromAddr.Address); err != nil {
		return nil, fmt.Errorf("mailer: invalid from address %q: %w", from, err)
	}
	c, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}

	tc := &tls.Config{}
	if o.tlsConfig != nil {
		tc = o.tlsConfig.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = c.host
	}
	if tc.MinVersion == 0 {
		tc.MinVersion = tls.VersionTLS12
	}
	// go-mail would greet with this machine's name, which the relay
	// writes into the Received header: no domain of the sender's, and
	// the name of a host inside for every recipient to see.
	domain := fromAddr.Address[strings.LastIndexByte(fromAddr.Address, '@')+1:]
	mopts := []mail.Option{
		mail.WithHELO(domain),
		mail.WithPort(c.port),
		mail.WithTimeout(o.timeout),
		mail.WithTLSConfig(tc),
	}
	// Each session dials through s.dial, which keeps its connection for
	// Wait to cut. smtps:// gets its TLS from s.dial, and never STARTTLS:
	// some relays on port 465 offer it over the TLS they already speak,
	// and refuse it or nest a second TLS inside the first.
	nd := &net.Dialer{}
	dial := nd.DialContext
	switch {
	case c.implicitTLS:
		dial = (&tls.Dialer{NetDialer: nd, Config: tc}).DialContext
		mopts = append(mopts, mail.WithTLSPolicy(mail.NoTLS))
	case c.tls == tlsOpportunistic:
		mopts = append(mopts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	case c.tls == tlsNone:
		mopts = append(mopts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		mopts = append(mopts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if c.user != "" {
		mopts = append(mopts, mail.WithUsername(c.user), mail.WithPassword(c.password))
		switch {
		case c.implicitTLS:
			// go-mail takes a connection it did not dial itself for one
			// in clear, and so would not pick PLAIN or LOGIN: the
			// mechanisms its discovery would pick over TLS, in its
			// order. PLAIN and LOGIN still check that the connection is
			// TLS before they send the password.
			mopts = append(mopts, mail.WithOpportunisticSMTPAuth(
				mail.SMTPAuthSCRAMSHA256PLUS, mail.SMTPAuthSCRAMSHA256, mail.SMTPAuthSCRAMSHA1PLUS, mail.SMTPAuthSCRAMSHA1,
				mail.SMTPAuthNTLM, mail.SMTPAuthCramMD5, mail.SMTPAuthPlain, mail.SMTPAuthLogin))
		case c.tls == tlsNone:
			// The operator chose a connection without TLS: prefer
			// challenge-response, but allow PLAIN and LOGIN in clear.
			mopts = append(mopts, mail.WithOpportunisticSMTPAuth(
				mail.SMTPAuthSCRAMSHA256, mail.SMTPAuthSCRAMSHA1, mail.SMTPAuthCramMD5,
				mail.SMTPAuthPlainNoEnc, mail.SMTPAuthLoginNoEnc))
		default:
			// The strongest mechanism the server offers; PLAIN and LOGIN
			// only once the connection is encrypted.
			mopts = append(mopts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover))
		}
	}
	addr := net.JoinHostPort(c.host, strconv.Itoa(c.port))
	host := c.host
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // go-mail joins host and port with a bare colon
	}
	s := &SMTP{
		host:   host,
		addr:   addr,
		from:   fromAddr,
		domain: domain,
		opts:   mopts,
		dial:   dial,
		logger: logger,
		slots:  make(chan struct{}, o.maxSessions),
		conns:  make(map[net.Conn]struct{}),
	}
	if _, err := s.client(nil); err != nil {
		return nil, err
	}
	return s, nil
}

// client returns a new go-mail client, which dials with dial if it is
// not nil. Send makes one per mail because a client keeps per-connection
// state (the negotiated auth mechanism).
func (s *SMTP) client(dial mail.DialContextFunc) (*mail.Client, error) {
	opts := s.opts
	if dial != nil {
		opts = append(opts[:len(opts):len(opts)], mail.WithDialContextFunc(dial))
	}
	c, err := mail.NewClient(s.host, opts...)
	if err != nil {
		return nil, fmt.Errorf("mailer: configure SMTP client for %s: %w", s.addr, err)
	}
	return c, nil
}

// Send delivers m to the relay as a multipart/alternative message with a
// text/plain and a text/html part (just one of them when the other is
// empty). Send returns when ctx ends, with an error wrapping
// chat.ErrMailPending and ctx's cause; the session, each of whose
// exchanges is bounded by the timeout, then ends on its own, and its
// outcome is logged, and told to m.Unsent if the mail did not go out.
// A mail the relay accepted is sent: a failure of the session after that
// is logged, not returned.
//
// With WithMaxSessions sessions open, Send waits for one to end, until
// ctx ends or, if ctx has a deadline, for half the time left to it, so
// that the session has the other half; past that it returns an error
// wrapping chat.ErrMailerBusy, having sent nothing.
func (s *SMTP) Send(ctx context.Context, m chat.Mail) error {
	msg := mail.NewMsg(mail.WithNoDefaultUserAgent())
	msg.FromMailAddress(s.from)
	// go-mail would name this machine in the Message-ID too.
	msg.SetMessageIDWithValue(rand.Text() + "@" + s.domain)
	// The domain in ASCII: a relay without SMTPUTF8 refuses it in UTF-8.
	to, err := chat.EmailASCII(m.To)
	if err != nil {
		return fmt.Errorf("mailer: invalid recipient %q: %w", m.To, err)
	}
	if err := msg.To(to); err != nil {
		return fmt.Errorf("mailer: invalid recipient %q: %w", m.To, err)
	}
	msg.Subject(m.Subject)
	switch {
	case m.HTML == "":
		msg.SetBodyString(mail.TypeTextPlain, m.Text)
	case m.Text == "":
		msg.SetBodyString(mail.TypeTextHTML, m.HTML)
	default:
		msg.SetBodyString(mail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(mail.TypeTextHTML, m.HTML)
	}
	var conn net.Conn // the session's, once dialled
	c, err := s.client(func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := s.dial(ctx, network, addr)
		if err == nil {
			conn = nc
			s.track(nc)
		}
		return nc, err
	})
	if err != nil {
		return err
	}
	if err := s.acquire(ctx); err != nil {
		return err
	}
	// go-mail heeds ctx only while it dials; after that each exchange has
	// the timeout. So the session runs on its own, and Send returns when
	// ctx ends: a relay that stops answering must not hold the caller (a
	// sign-in request) past its own deadline. The session keeps its slot
	// until it ends.
	s.open.Start()
	done := make(chan error, 1)
	go func() {
		defer s.release()
		err := c.DialAndSendWithContext(ctx, msg)
		if conn != nil {
			s.untrack(conn)
		}
		done <- err
	}()
	select {
	case err := <-done:
		defer s.open.Done()
		return s.sent(ctx, m, msg, err)
	case <-ctx.Done():
		go func() {
			defer s.open.Done()
			// The session ends within its timeouts. The caller was told
			// the mail failed: one the relay took after all is logged,
			// one it did not take is told to m.Unsent.
			err := <-done
			if err == nil || msg.IsDelivered() {
				s.logger.WarnContext(context.WithoutCancel(ctx), "mail sent after its sender gave up waiting", "to", m.To, "relay", s.addr)
				return
			}
			s.logger.WarnContext(context.WithoutCancel(ctx), "mail not sent after its sender gave up waiting", "to", m.To, "relay", s.addr, "err", err)
			if m.Unsent != nil {
				m.Unsent()
			}
		}()
		return fmt.Errorf("mailer: send mail to %s via %s: gave up waiting for the relay: %w: %w", m.To, s.addr, chat.ErrMailPending, context.Cause(ctx))
	}
}

// acquire takes a session slot, waiting as Send says.
func (s *SMTP) acquire(ctx context.Context) error {
	select {
	case s.slots <- struct{}{}:
		return nil
	default:
	}
	wait := ctx
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeout(ctx, time.Until(d)/2)
		defer cancel()
	}
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-wait.Done():
		return fmt.Errorf("mailer: no SMTP session free for %s: %d open at once, the most allowed: %w", s.addr, cap(s.slots), chat.ErrMailerBusy)
	}
}

func (s *SMTP) release() { <-s.slots }

func (s *SMTP) track(c net.Conn) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
}

func (s *SMTP) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// cut closes the connections of the sessions under way: each then fails
// at once, its mail unsent unless the relay had accepted it.
func (s *SMTP) cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// Wait waits until no SMTP session is under way, those whose Send
// returned before they ended (gave up waiting for the relay) included,
// or until ctx ends: then it cuts the sessions still under way, their
// mail unsent unless the relay had accepted it, waits (at most cutGrace)
// for them to tell their outcome (Mail.Unsent), and returns an error
// saying how many it cut. Sends that start meanwhile are waited for too;
// a node calls Wait once it serves no more requests, and before it
// closes what Mail.Unsent needs.
func (s *SMTP) Wait(ctx context.Context) error {
	n := s.open.Wait(ctx)
	if n == 0 {
		return nil
	}
	s.cut()
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cutGrace)
	defer cancel()
	if left := s.open.Wait(gctx); left > 0 {
		// Dialling as they were cut, or their outcome slow to tell.
		return fmt.Errorf("mailer: %d SMTP session%s to %s cut, %d still under way %s after: %w", n, plural(n), s.addr, left, cutGrace, context.Cause(ctx))
	}
	return fmt.Errorf("mailer: %d SMTP session%s to %s cut: %w", n, plural(n), s.addr, context.Cause(ctx))
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// sent reports how the session that sent msg ended with err: nil if the
// relay accepted the mail, even if the session failed after it.
func (s *SMTP) sent(ctx context.Context, m chat.Mail, msg *mail.Msg, err error) error {
	if err != nil {
		if msg.IsDelivered() {
			// The relay accepted the mail; only what follows (RSET,
			// QUIT) failed.
			s.logger.WarnContext(ctx, "mail sent, then the SMTP session failed", "to", m.To, "relay", s.addr, "err", err)
			return nil
		}
		if addressRefused(err) {
			return fmt.Errorf("mailer: send mail to %s via %s: the address is refused: %w: %w", m.To, s.addr, chat.ErrInvalid, err)
		}
		return fmt.Errorf("mailer: send mail to %s via %s: %w", m.To, s.addr, err)
	}
	s.logger.DebugContext(ctx, "mail sent", "to", m.To, "relay", s.addr)
	return nil
}

// addressRefused reports whether err is the relay's refusal, for good, of
// the recipient's address: a 5xx reply to RCPT TO saying there is no such
// mailbox (550), that it is not local (551) or that its name is not
// allowed (553). Other refusals, 4xx or of the relay's own setup (relaying
// denied, authentication needed), do not blame the address. Relays give
// those the same basic codes (550 5.7.1 relaying denied, 553 5.7.1 sender
// address rejected), so where the reply has an enhanced status code
// (RFC 3463), only an address status, 5.1.x, blames the address, and not
// one of the sender's (5.1.7 bad syntax, 5.1.8 its domain), which a relay
// may give at RCPT TO too (Postfix checks the sender there by default).
func addressRefused(err error) bool {
	var se *mail.SendError
	if !errors.As(err, &se) || se.Reason != mail.ErrSMTPRcptTo || se.IsTemp() {
		return false
	}
	if esc := se.EnhancedStatusCode(); esc != "" && (!strings.HasPrefix(esc, "5.1.") || esc == "5.1.7" || esc == "5.1.8") {
		return false
	}
	switch se.ErrorCode() {
	case 550, 551, 553:
		return true
	}
	return false
}

// relay is a parsed SMTP URL.
type relay struct {
	implicitTLS    bool
	tls            string // for smtp://: tlsSTARTTLS, tlsOpportunistic or tlsNone
	host           string
	port           int
	user, password string
}

const wantURL = "want smtp://user:pass@host:port or smtps://user:pass@host:port"

func parseURL(rawURL string) (relay, error) {
	if rawURL == "" {
		return relay{}, errors.New("mailer: SMTP URL is empty; " + wantURL)
	}
	u, err := redact.Parse(rawURL)
	if err != nil {
		// Its cause alone: a user could take the quoted URL, with its
		// password hidden, for the one given.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return relay{}, fmt.Errorf("mailer: invalid SMTP URL: %v", err)
	}
	if u.Scheme != "smtp" && u.Scheme != "smtps" {
		return relay{}, fmt.Errorf("mailer: SMTP URL: scheme %q not supported; %s", u.Scheme, wantURL)
	}
	if u.Opaque != "" || u.Host == "" {
		// Redacted does not hide a password in an opaque URL: print none.
		return relay{}, fmt.Errorf("mailer: SMTP URL: no host; %s", wantURL)
	}
	safe := strconv.Quote(u.Redacted())
	r := relay{implicitTLS: u.Scheme == "smtps", port: mail.DefaultPortTLS}
	if r.implicitTLS {
		r.port = mail.DefaultPortSSL
	}
	r.host = u.Hostname()
	if r.host == "" {
		return relay{}, fmt.Errorf("mailer: SMTP URL %s: no host", safe)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return relay{}, fmt.Errorf("mailer: SMTP URL %s: invalid port %q", safe, p)
		}
		r.port = n
	}
	if u.Path != "" && u.Path != "/" {
		return relay{}, fmt.Errorf("mailer: SMTP URL %s: unexpected path %q", safe, u.Path)
	}
	if u.Fragment != "" {
		return relay{}, fmt.Errorf("mailer: SMTP URL %s: unexpected fragment %q", safe, u.Fragment)
	}
	if u.User != nil {
		r.user = u.User.Username()
		r.password, _ = u.User.Password()
		if r.user == "" && r.password != "" {
			return relay{}, fmt.Errorf("mailer: SMTP URL %s: password without user", safe)
		}
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return relay{}, fmt.Errorf("mailer: SMTP URL %s: invalid query: %v", safe, err)
	}
	for k, vs := range q {
		if k != "tls" {
			return relay{}, fmt.Errorf("mailer: SMTP URL %s: unknown parameter %q; the only parameter is tls=%s|%s|%s (smtp:// only)",
				safe, k, tlsSTARTTLS, tlsOpportunistic, tlsNone)
		}
		if len(vs) != 1 {
			return relay{}, fmt.Errorf("mailer: SMTP URL %s: parameter tls given %d times", safe, len(vs))
		}
	}
	if r.implicitTLS {
		if q.Has("tls") {
			return relay{}, fmt.Errorf("mailer: SMTP URL %s: smtps:// always uses implicit TLS; drop the tls parameter or use smtp://", safe)
		}
		return r, nil
	}
	r.tls = tlsSTARTTLS
	if q.Has("tls") {
		switch v := q.Get("tls"); v {
		case tlsSTARTTLS, tlsOpportunistic, tlsNone:
			r.tls = v
		default:
			return relay{}, fmt.Errorf("mailer: SMTP URL %s: unknown tls=%q; want tls=%s (default), tls=%s or tls=%s",
				safe, v, tlsSTARTTLS, tlsOpportunistic, tlsNone)
		}
	}
	if r.port == mail.DefaultPortSSL && r.tls != tlsNone {
		// A relay there speaks TLS from the first byte (RFC 8314), and
		// waits for it, as the client waits for its greeting: every
		// mail would hang until the timeout.
		return relay{}, fmt.Errorf("mailer: SMTP URL %s: port %d is for implicit TLS; use smtps://, or tls=%s for a relay in clear on that port",
			safe, r.port, tlsNone)
	}
	return r, nil
}
