package chat

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"math/big"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

func newCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// HashToken returns the stored form of a session token.
func HashToken(token string) string {
	h := tokenSum(token)
	return hex.EncodeToString(h[:])
}

const tokenPrefix = "parley-session\x00"

// tokenSum is the SHA-256 of a token under its prefix, hashed from a
// buffer on the stack when the token is no longer than a real one can be.
func tokenSum(token string) [sha256.Size]byte {
	var buf [len(tokenPrefix) + 256]byte
	if len(token) > len(buf)-len(tokenPrefix) {
		return sha256.Sum256([]byte(tokenPrefix + token))
	}
	n := copy(buf[:], tokenPrefix)
	n += copy(buf[n:], token)
	return sha256.Sum256(buf[:n])
}

// TokenMatches reports, in constant time, whether token's stored form is
// hash, without allocating: a long-polling client shows its token with
// every poll.
func TokenMatches(token, hash string) bool {
	sum := tokenSum(token)
	var enc [2 * sha256.Size]byte
	hex.Encode(enc[:], sum[:])
	if len(hash) != len(enc) {
		return false
	}
	var diff byte
	for i := range enc {
		diff |= enc[i] ^ hash[i]
	}
	return subtle.ConstantTimeByteEq(diff, 0) == 1
}

func hashCode(email, code string) string {
	h := sha256.Sum256([]byte("parley-code\x00" + email + "\x00" + code))
	return hex.EncodeToString(h[:])
}

// RequestCode sends a new login code to email. It answers the same way
// whether or not the address belongs to a user: sign-up and sign-in are one
// flow, and no user record is touched until the code is verified.
func (s *Service) RequestCode(ctx context.Context, email, clientIP string) error {
	email, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	// The client IP is counted first, so that a client over its own limit
	// cannot use up an address's codes; a code then refused for its
	// address is taken back from the IP's count, so that asking again for
	// an address that has had its codes (a user clicking "send" again)
	// does not use up the codes of everyone behind the same IP.
	ipKey := "code-ip:" + clientIP
	if err := s.allow(ctx, ipKey, s.cfg.CodesPerIP, s.cfg.CodeWindow); err != nil {
		return err
	}
	emailKey := "code-email:" + email
	if err := s.allow(ctx, emailKey, s.cfg.CodesPerEmail, s.cfg.CodeWindow); err != nil {
		s.undo(ctx, ipKey)
		return err
	}
	code, err := s.cfg.NewCode()
	if err != nil {
		return internal("new code", err)
	}
	lc := LoginCode{Email: email, Hash: hashCode(email, code), ExpiresAt: s.cfg.Now().Add(s.cfg.CodeTTL)}
	// Stored first, mailed after: a mail that goes out, even once the
	// client has gone, carries a code that works. The codes mailed before
	// keep working (the CodesPerEmail newest): mail arrives late and out
	// of order, and the user types the code of the first to arrive.
	if err := s.store.PutLoginCode(ctx, lc, s.cfg.CodesPerEmail); err != nil {
		s.undo(ctx, emailKey) // nothing was mailed
		return internal("store login code", err)
	}
	m := s.codeMail(email, code)
	m.Unsent = func() {
		// Send returned ErrMailPending, keeping the code and the
		// address's count for a mail that might still go out (below);
		// it did not: as for one that failed while the request waited.
		s.log.Warn("login code not mailed: its SMTP session failed after the request ended")
		if s.dropCode(ctx, lc) {
			s.undo(ctx, emailKey)
		}
	}
	if err := s.mailer.Send(ctx, m); err != nil {
		if errors.Is(err, ErrMailerBusy) {
			// Nothing was sent, the node having as many sign-in mails
			// under way as it may: the code goes and the address's
			// count is given back, whether or not the request ended.
			// The client's count stays, bounding how often it makes
			// us store and drop a code.
			s.log.Warn("login code not mailed: the mailer is busy", "err", err)
			if s.dropCode(ctx, lc) {
				s.undo(ctx, emailKey)
			}
			e := Errorf(ErrUnavailable, CodeUnavailable, "too many sign-in mails are being sent; try again in a few seconds")
			e.RetryAfter = mailerBusyRetry
			return e
		}
		if errors.Is(err, ErrInvalid) {
			// The relay refuses the address for good: the user must
			// correct it, not retry. As for a relay that is down, the
			// client's count stays, bounding how often it makes us try.
			s.log.Info("login code refused by the mail relay", "err", err)
			if s.dropCode(ctx, lc) {
				s.undo(ctx, emailKey)
			}
			return Invalid(CodeInvalidField, "email", "the mail server refuses this address; check it")
		}
		s.log.Error("send login code", "err", err)
		// The address got nothing: its code is removed, the codes mailed
		// before it still work, its count is not used up by a relay that
		// is down, and the user may ask again once it is back. The
		// client's count stays, bounding how often it makes us try.
		// Unless the mailer gave up waiting for the relay, the request
		// having ended first (the client went, or its deadline passed):
		// the mail may still go out, the SMTP session running on, so its
		// code stays, and a client that went away each time the relay
		// had the mail would have the address mailed past its limit, so
		// its count stays too, until the mailer tells that the mail did
		// not go out after all (Unsent). A failure the mailer knows of
		// is one even if the request ended meanwhile.
		if !errors.Is(err, ErrMailPending) && s.dropCode(ctx, lc) {
			s.undo(ctx, emailKey)
		}
		return Errorf(ErrUnavailable, CodeUnavailable, "the sign-in mail could not be sent; try again later")
	}
	return nil
}

// mailerBusyRetry is the wait a client is told when the mailer was busy.
const mailerBusyRetry = 5 * time.Second

// dropCode removes the pending code c, whose mail surely did not go out,
// and reports whether the address's count may be given back: whether c
// is gone untried. A failure is logged: the code then stays pending,
// unmailed, until it expires, and the address's count should stay with
// it. So should it if c was tried while its mail was under way (the code
// was stored first), or used: a try there was a guess at a code asked
// for, and giving the count back would let whoever guesses at an address
// whose mail fails have fresh codes, each with its tries, as often as
// they asked.
func (s *Service) dropCode(ctx context.Context, c LoginCode) bool {
	untried, err := s.store.DropLoginCode(context.WithoutCancel(ctx), c.Email, c.Hash)
	if err != nil {
		s.log.Error("remove login code not mailed", "err", err)
		return false
	}
	return untried
}

// allowNewConv counts a room or a group that u is about to make against
// Config.NewConvsPerHour; if the store then fails to make it, undoNewConv
// takes the count back.
func (s *Service) allowNewConv(ctx context.Context, u User) error {
	return s.allow(ctx, newConvKey(u), s.cfg.NewConvsPerHour, time.Hour)
}

func (s *Service) undoNewConv(ctx context.Context, u User) { s.undo(ctx, newConvKey(u)) }

func newConvKey(u User) string { return "new-conv:" + strconv.FormatInt(u.ID, 10) }

// undo takes back an event that allow counted for key, for an action that
// then did not happen. A failure is only logged: the count is then one too
// many until its window passes.
func (s *Service) undo(ctx context.Context, key string) {
	if err := s.limiter.Undo(context.WithoutCancel(ctx), key); err != nil {
		s.log.Warn("undo rate limit", "key", key, "err", err)
	}
}

func (s *Service) allow(ctx context.Context, key string, n int, window time.Duration) error {
	return s.allowOr(ctx, key, n, window, "", "too many requests")
}

// allowOr is allow with the refusal's field and what it says, before the
// wait.
func (s *Service) allowOr(ctx context.Context, key string, n int, window time.Duration, field, why string) error {
	ok, after, err := s.limiter.Allow(ctx, key, n, window)
	if err != nil {
		return internal("rate limit", err)
	}
	if !ok {
		e := Errorf(ErrRateLimited, CodeRateLimited, "%s; try again in %s", why, waitText(after))
		e.RetryAfter = after
		e.Field = field
		return e
	}
	return nil
}

var codeHTML = template.Must(template.New("code").Parse(`<!doctype html>
<html><body style="font-family:system-ui,sans-serif;color:#1f2933">
<p>Your {{.Product}} sign-in code is:</p>
<p style="font-size:28px;font-weight:600;letter-spacing:4px">{{.Code}}</p>
<p>It is valid for {{.Minutes}} minutes and can be used once.
<a href="{{.Link}}">Sign in to {{.Product}}</a>.</p>
<p style="color:#6b7280;font-size:13px">If you did not ask for this code, ignore this mail.</p>
</body></html>`))

func (s *Service) codeMail(email, code string) Mail {
	link := strings.TrimRight(s.cfg.PublicURL, "/") + "/#login?email=" + url.QueryEscape(email)
	minutes := int(s.cfg.CodeTTL / time.Minute)
	var html strings.Builder
	_ = codeHTML.Execute(&html, map[string]any{"Product": s.cfg.MailFromProduct, "Code": code, "Minutes": minutes, "Link": link})
	return Mail{
		To:      email,
		Subject: fmt.Sprintf("Your %s sign-in code: %s", s.cfg.MailFromProduct, code),
		Text: fmt.Sprintf("Your %s sign-in code is: %s\n\nIt is valid for %d minutes and can be used once.\nSign in at %s\n\nIf you did not ask for this code, ignore this mail.\n",
			s.cfg.MailFromProduct, code, minutes, link),
		HTML: html.String(),
	}
}

// SignIn is the result of a verified login code.
type SignIn struct {
	User    User
	Session Session
	Token   string // the session token; only its hash is stored
	NewUser bool
}

var errBadCode = Errorf(ErrUnauthorized, CodeBadCode, "the code is wrong or has expired; ask for a new one")

// VerifyCode checks a login code, from the client at clientIP, and, if it
// is right, signs the user in, creating the user on first sign-in. Any
// code pending for the address works (RequestCode keeps the CodesPerEmail
// newest); a right one ends them all, so each is used once. A code dies
// after CodeTTL, or after CodeAttempts tries at its address: a try counts
// against every code pending for the address, whichever it was aimed at,
// so that an address takes at most CodeAttempts guesses per code asked
// for, however many are pending at once (each guess has a chance per
// code pending, and each code is pending for CodeAttempts guesses at
// most). A client's wrong codes, whatever their addresses, are limited to
// the tries of the codes it may ask for (CodesPerIP × CodeAttempts per
// CodeWindow): else one client could spend the tries of every code
// pending, each user's as soon as it is asked for, and keep them all
// from signing in.
func (s *Service) VerifyCode(ctx context.Context, email, code, clientIP string) (_ SignIn, err error) {
	email, err = NormalizeEmail(email)
	if err != nil {
		return SignIn{}, err
	}
	code = strings.TrimSpace(code)
	if code == "" {
		return SignIn{}, Invalid(CodeMissingField, "code", "code is required")
	}
	ipKey := "verify-ip:" + clientIP
	if err := s.allowOr(ctx, ipKey, s.cfg.CodesPerIP*s.cfg.CodeAttempts, s.cfg.CodeWindow, "", "too many wrong sign-in codes"); err != nil {
		return SignIn{}, err
	}
	// Only a wrong code counts: one refused as bad_code, or one that used
	// up codes whose removal then failed (the try is spent all the same).
	wrong := false
	defer func() {
		if !wrong && err != errBadCode {
			s.undo(ctx, ipKey)
		}
	}()
	codes, err := s.store.AttemptLoginCodes(ctx, email)
	if errors.Is(err, ErrNotFound) {
		return SignIn{}, errBadCode
	}
	if err != nil {
		return SignIn{}, internal("load login codes", err)
	}
	now := s.cfg.Now()
	typed := []byte(hashCode(email, code))
	var lc LoginCode
	found := false
	for _, c := range codes {
		if subtle.ConstantTimeCompare(typed, []byte(c.Hash)) == 1 {
			lc, found = c, true
		}
	}
	// A code past its last attempt is refused, but not removed here: the
	// try that used the last attempt removes it, whether it was right or
	// wrong; removing it here too could beat a right try still in flight,
	// and then nobody would sign in.
	if !found || !now.Before(lc.ExpiresAt) || lc.Attempts > s.cfg.CodeAttempts {
		// The try was wrong for every code of the address: it removes
		// those that have expired and those whose last attempt it used.
		wrong = true
		for _, c := range codes {
			if !now.Before(c.ExpiresAt) || c.Attempts == s.cfg.CodeAttempts {
				if _, err := s.store.DeleteLoginCode(ctx, email, c.Hash); err != nil {
					return SignIn{}, internal("delete login code", err)
				}
			}
		}
		return SignIn{}, errBadCode
	}
	won, err := s.store.UseLoginCode(ctx, email, lc.Hash)
	if err != nil {
		return SignIn{}, internal("use login code", err)
	}
	if !won {
		return SignIn{}, errBadCode
	}
	u, created, err := s.store.EnsureUser(ctx, email, now)
	if err != nil {
		err = internal("ensure user", err)
	} else {
		var in SignIn
		if in, err = s.startSession(ctx, u, created || u.Name == "", now); err == nil {
			s.trimSessions(ctx, in.Session)
			return in, nil
		}
	}
	// The code was right, but no session came of it: put the code back
	// for the retry the error invites (its tries counted afresh, which
	// only its holder gets). The address's other codes, ended by its use,
	// stay ended; codes asked for since stay, and are kept before it.
	if _, perr := s.store.RestoreLoginCode(context.WithoutCancel(ctx), LoginCode{Email: email, Hash: lc.Hash, ExpiresAt: lc.ExpiresAt}, s.cfg.CodesPerEmail); perr != nil {
		s.log.Error("restore login code", "err", perr)
	}
	return SignIn{}, err
}

// startSession creates a new session of u and its token.
func (s *Service) startSession(ctx context.Context, u User, newUser bool, now time.Time) (SignIn, error) {
	token, err := s.cfg.NewToken()
	if err != nil {
		return SignIn{}, internal("new token", err)
	}
	sess, err := s.store.CreateSession(ctx, Session{UserID: u.ID, TokenHash: HashToken(token), CreatedAt: now, ExpiresAt: now.Add(s.cfg.SessionTTL), UsedAt: now})
	if err != nil {
		return SignIn{}, internal("create session", err)
	}
	return SignIn{User: u, Session: sess, Token: token, NewUser: newUser}, nil
}

// trimSessions ends, past Config.MaxSessionsPerUser, the least recently
// used sessions of the user of sess, a sign-in's new session, as SignOut
// does: each node closes their connections. The sign-in has succeeded
// whatever happens here: a failure is logged, and the next sign-in trims
// again. The client going away does not stop it halfway.
func (s *Service) trimSessions(ctx context.Context, sess Session) {
	ctx = context.WithoutCancel(ctx)
	ended, err := s.store.TrimSessions(ctx, sess.UserID, sess.ID, s.cfg.MaxSessionsPerUser-1)
	if err != nil {
		s.log.Error("end sessions past the cap", "user", sess.UserID, "err", err)
		return
	}
	for _, id := range ended {
		s.sessionEnded(ctx, sess.UserID, id)
	}
}

// Authenticate returns the user and session of a session token, extending
// the session when Config.Renews says so (renewed reports that, so the
// transport can refresh its cookie) and recording its use when
// Config.Touches does.
func (s *Service) Authenticate(ctx context.Context, token string) (u User, sess Session, renewed bool, err error) {
	unauth := Errorf(ErrUnauthorized, CodeUnauthorized, "sign in first")
	if token == "" || len(token) > 256 {
		return User{}, Session{}, false, unauth
	}
	// One read for the session and its user: every request runs this.
	sess, u, err = s.store.Session(ctx, HashToken(token))
	if errors.Is(err, ErrNotFound) {
		return User{}, Session{}, false, unauth
	}
	if err != nil {
		return User{}, Session{}, false, internal("load session", err)
	}
	now := s.cfg.Now()
	if !now.Before(sess.ExpiresAt) {
		_ = s.store.DeleteSession(ctx, sess.ID)
		return User{}, Session{}, false, unauth
	}
	// A use is recorded now and then, for MaxSessionsPerUser to end the
	// least recently used sessions; a renewal is one.
	if renewed = s.cfg.Renews(sess); renewed || s.cfg.Touches(sess) {
		if renewed {
			sess.ExpiresAt = now.Add(s.cfg.SessionTTL)
		}
		sess.UsedAt = now
		err := s.store.UseSession(ctx, sess.ID, sess.UsedAt, sess.ExpiresAt)
		if errors.Is(err, ErrNotFound) { // signed out since it was read
			return User{}, Session{}, false, unauth
		}
		if err != nil {
			return User{}, Session{}, false, internal("use session", err)
		}
	}
	return u, sess, renewed, nil
}

// CheckSession returns nil if sess is still signed in: not signed out,
// not expired. It reads the store, as Authenticate does, for a transport
// that keeps a session between requests.
func (s *Service) CheckSession(ctx context.Context, sess Session) error {
	got, _, err := s.store.Session(ctx, sess.TokenHash)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return internal("load session", err)
	case got.ID == sess.ID && s.cfg.Now().Before(got.ExpiresAt):
		return nil
	}
	return Errorf(ErrUnauthorized, CodeUnauthorized, "sign in first")
}

// OpenSessions is a node's check of the sessions of its open connections
// (hub.CheckSessions, every Config.SessionCheck): it returns those of ids that are no
// longer signed in, signed out or expired, and counts the others as used,
// since a connection that stays open authenticates no request. As
// Authenticate does for a request, it records a use of a session whose
// last recorded use is SessionUseStep old (Config.Touches), one write for
// all of those a read finds, and renews a session that Config.Renews when
// less than SessionUseStep of it remains (Config.Keeps). A failed write is
// logged, and the next check tries again: it ends no session.
func (s *Service) OpenSessions(ctx context.Context, ids []int64) ([]int64, error) {
	var ended, used []int64
	for chunk := range slices.Chunk(ids, maxSessionsRead) {
		now := s.cfg.Now()
		live, err := s.store.LiveSessions(ctx, chunk, now)
		if err != nil {
			return nil, internal("load sessions", err)
		}
		slices.SortFunc(live, func(a, b Session) int { return cmp.Compare(a.ID, b.ID) })
		used = used[:0]
		// Decided at now, as written: a clock read again here could find
		// a session due that the write, at now, would not renew.
		for _, sess := range live {
			switch {
			case s.cfg.keepsAt(sess, now):
				err := s.store.UseSession(ctx, sess.ID, now, now.Add(s.cfg.SessionTTL))
				if err != nil && !errors.Is(err, ErrNotFound) { // not found: signed out since, ended at the next check
					s.log.Error("renew session of an open connection", "session", sess.ID, "err", err)
				}
			case s.cfg.touchesAt(sess, now):
				used = append(used, sess.ID)
			}
		}
		if len(used) > 0 {
			if err := s.store.UseSessions(ctx, used, now); err != nil {
				s.log.Error("record use of the sessions of open connections", "sessions", len(used), "err", err)
			}
		}
		for _, id := range chunk {
			if _, found := slices.BinarySearchFunc(live, id, func(s Session, id int64) int { return cmp.Compare(s.ID, id) }); !found {
				ended = append(ended, id)
			}
		}
	}
	return ended, nil
}

// maxSessionsRead is how many sessions OpenSessions reads at a time.
const maxSessionsRead = 500

// SignOut ends a session and tells every node to close its connections.
func (s *Service) SignOut(ctx context.Context, sess Session) error {
	if err := s.store.DeleteSession(ctx, sess.ID); err != nil {
		return internal("delete session", err)
	}
	s.sessionEnded(ctx, sess.UserID, sess.ID)
	return nil
}

// sessionEnded tells every node that session id of userID is gone
// (deleted from the store): each closes its connections.
func (s *Service) sessionEnded(ctx context.Context, userID, id int64) {
	s.publish(ctx, UserTopic(userID), Event{Type: EventSessionEnded, UserID: userID, SessionID: id})
}

// EndChannel tells every node that u's client ended its long-poll channel
// (a transport's connection, named by the transport): the node holding
// it closes it. The event may be lost, like any broker's.
func (s *Service) EndChannel(ctx context.Context, u User, channel string) {
	s.publish(ctx, UserTopic(u.ID), Event{Type: EventChannelEnded, UserID: u.ID, Channel: channel})
}

// waitText tells a wait as a person reads it, rounded up: "1 second",
// "48 minutes", "2 hours 5 minutes". Go's "47m48s" is shown to users as
// it is.
func waitText(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.FormatInt(n, 10) + " " + one + "s"
	}
	secs := max(1, int64((d+time.Second-1)/time.Second))
	mins := (secs + 59) / 60
	switch {
	case secs < 60:
		return unit(secs, "second")
	case mins < 60:
		return unit(mins, "minute")
	case mins%60 == 0:
		return unit(mins/60, "hour")
	}
	return unit(mins/60, "hour") + " " + unit(mins%60, "minute")
}
