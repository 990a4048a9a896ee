package web

import (
	"context"
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// CookieName is the session cookie over plain HTTP; SecureCookieName is
// the session cookie over TLS (secure), where only it is read.
//
// A page on another subdomain of the site can set a cookie of a plain name
// for the whole site (Domain=example.com) with a more specific Path, which
// the browser sends first: it would sign the user in as the account of the
// page's author (cookie tossing). Browsers take a __Host- cookie only with
// Secure, Path=/ and no Domain, from the host itself, so no other host can
// set SecureCookieName. A secure request carrying only CookieName is not
// signed in, not even once to move a session from before the __Host- name
// to it: that cookie may just as well be a sibling's, tossed at a user
// signed out, or whose cookies the sibling pushed out of the browser's jar
// by setting many of its own (login CSRF). A user holding only the
// CookieName of a version before SecureCookieName signs in again once.
const (
	CookieName       = "parley_session"
	SecureCookieName = "__Host-" + CookieName
)

type authKey struct{}

type authInfo struct {
	User    chat.User
	Session chat.Session
}

func authFrom(ctx context.Context) authInfo {
	a, _ := ctx.Value(authKey{}).(authInfo)
	return a
}

// authed lets only requests with a valid session through, renewing the
// cookie when the session was extended, and gives each opTimeout (timed).
func (s *server) authed(h http.Handler) http.Handler { return timed(s.authenticated(h)) }

// timed gives a request opTimeout for its work, as a frame has: a
// dependency that does not answer in that time gets the client the
// retryable 503 unavailable, rather than a wait for as long as it takes.
func timed(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// authenticated is authed without the time limit.
func (s *server) authenticated(h http.Handler) http.Handler {
	return s.handleErr(func(w http.ResponseWriter, r *http.Request) error {
		a, _, err := s.authenticate(r.Context(), w, r)
		if err != nil {
			return err
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), authKey{}, a)))
		return nil
	})
}

// authenticate reads, with ctx, the user and session of r's session
// token, and sets the cookie again in w if the session was renewed, which
// it reports.
func (s *server) authenticate(ctx context.Context, w http.ResponseWriter, r *http.Request) (_ authInfo, renewed bool, _ error) {
	token := s.sessionToken(r)
	u, sess, renewed, err := s.svc.Authenticate(ctx, token)
	if err != nil {
		return authInfo{}, false, err
	}
	if renewed {
		s.setSessionCookie(w, r, token, sess.ExpiresAt)
	}
	return authInfo{User: u, Session: sess}, renewed, nil
}

// secure reports whether the browser reached the server over TLS, which
// decides the session cookie's name and Secure flag, Strict-Transport-
// Security, the CSP's wss: and the Origin an upgrade must have. Behind a
// proxy that is what the proxy says in X-Forwarded-Proto, TLS unless it
// says "http" (a proxy serving plain HTTP, where a browser drops a Secure
// cookie); the connection to the proxy does not tell. Of the values the
// last counts, as in clientIP: a proxy that appends to what the client
// sent puts its own last, one that sets the header sends one value. Not
// behind a proxy, the header is the client's and is ignored.
func (s *server) secure(r *http.Request) bool {
	if !s.cfg.BehindProxy {
		return r.TLS != nil
	}
	xfp := r.Header.Values("X-Forwarded-Proto")
	if len(xfp) == 0 {
		return true
	}
	last := xfp[len(xfp)-1]
	return !strings.EqualFold(strings.TrimSpace(last[strings.LastIndexByte(last, ',')+1:]), "http")
}

// cookieName is the name of the session cookie for r: SecureCookieName if
// it is secure, CookieName otherwise.
func (s *server) cookieName(r *http.Request) string {
	if s.secure(r) {
		return SecureCookieName
	}
	return CookieName
}

// sessionToken is the session token r carries, "" if none: the value of
// its cookie named cookieName(r), the only one read.
func (s *server) sessionToken(r *http.Request) string {
	return cookieValue(r, s.cookieName(r))
}

// cookieValue is the value of r's cookie name, as r.Cookie reads it, but
// found without allocating: a long-polling client sends its session
// cookie with every poll (docs/benchmarks.md, target 7), and r.Cookie
// makes a slice and a Cookie. It scans as net/http's readCookies does, and
// leaves to r.Cookie what it did not find and headers of many cookies,
// which r.Cookie may refuse as a whole (GODEBUG httpcookiemaxnum).
func cookieValue(r *http.Request, name string) string {
	lines, n := r.Header["Cookie"], 0
	for _, line := range lines {
		n += strings.Count(line, ";") + 1
	}
	if n <= maxFastCookies {
		for _, line := range lines {
			line = textproto.TrimString(line)
			for line != "" {
				var part string
				part, line, _ = strings.Cut(line, ";")
				k, v, _ := strings.Cut(textproto.TrimString(part), "=")
				if textproto.TrimString(k) != name {
					continue
				}
				if v, ok := plainCookieValue(v); ok {
					return v
				}
			}
		}
	}
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

// plainCookieValue is net/http's parseCookieValue: raw without the double
// quotes around it, if it has them, and whether every byte left may be in
// a cookie's value.
func plainCookieValue(raw string) (string, bool) {
	if len(raw) > 1 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		raw = raw[1 : len(raw)-1]
	}
	for i := range len(raw) {
		if b := raw[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return "", false
		}
	}
	return raw, true
}

// maxFastCookies bounds the cookies cookieValue scans itself.
const maxFastCookies = 64

// setSessionCookie sets the session cookie to token, to live until
// expires, in whole seconds: rounded, so that a session made or renewed
// just now, for --session-ttl, has a cookie of --session-ttl exactly
// rather than a second less for the moments since.
func (s *server) setSessionCookie(w http.ResponseWriter, r *http.Request, token string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name:     s.cookieName(r),
		Value:    token,
		Path:     "/",
		MaxAge:   int(expires.Sub(s.svc.Config().Now()).Round(time.Second) / time.Second),
		HttpOnly: true,
		Secure:   s.secure(r),
		SameSite: http.SameSiteLaxMode,
	})
}

// clearSessionCookie expires the session cookie of r's scheme and, over
// TLS, a CookieName left from before SecureCookieName. (A CookieName that
// another host set for the whole site is not the server's to expire:
// browsers tell cookies apart by domain and path too.)
func (s *server) clearSessionCookie(w http.ResponseWriter, r *http.Request) {
	secure := s.secure(r)
	names := []string{CookieName}
	if secure {
		names = append(names, SecureCookieName)
	}
	for _, name := range names {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
	}
}

// clientIP is the client's address as the limits per client count it:
// the peer's, or the nearest X-Forwarded-For hop when the server sits
// behind a proxy, without a port, and for IPv6 its /64, the least a site
// is given, all of which one client can pick from. The hops of all
// X-Forwarded-For lines form one list: a proxy may add its own line after
// those the client sent (HAProxy does), so the nearest hop is the last one
// of the last line.
func (s *server) clientIP(r *http.Request) string {
	addr := r.RemoteAddr
	if s.cfg.BehindProxy {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			last := xff[len(xff)-1]
			if hop := strings.TrimSpace(last[strings.LastIndexByte(last, ',')+1:]); hop != "" {
				addr = hop
			}
		}
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return addr
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64) // never fails for IPv6
		return p.String()
	}
	return ip.String()
}
