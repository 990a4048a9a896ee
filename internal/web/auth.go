package web

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// CookieName is the session cookie.
const CookieName = "parley_session"

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

// authenticated is authed without the time limit, for a long poll, which
// is held open longer.
func (s *server) authenticated(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(CookieName)
		token := ""
		if err == nil {
			token = c.Value
		}
		u, sess, renewed, err := s.svc.Authenticate(r.Context(), token)
		if err != nil {
			s.fail(w, err)
			return
		}
		if renewed {
			s.setSessionCookie(w, r, token, sess.ExpiresAt)
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), authKey{}, authInfo{User: u, Session: sess})))
	})
}

func (s *server) secure(r *http.Request) bool { return r.TLS != nil || s.cfg.BehindProxy }

func (s *server) setSessionCookie(w http.ResponseWriter, r *http.Request, token string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name:     CookieName,
		Value:    token,
		Path:     "/",
		MaxAge:   int(expires.Sub(s.svc.Config().Now()).Seconds()),
		HttpOnly: true,
		Secure:   s.secure(r),
		SameSite: http.SameSiteLaxMode,
	})
}

func (s *server) clearSessionCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure(r), SameSite: http.SameSiteLaxMode})
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
