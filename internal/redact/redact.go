// Package redact hides the credentials of the URLs an operator configures
// (database, broker, SMTP relay), for error messages and logs, whether or
// not a URL parses. It knows nothing of what the URLs name.
package redact

import (
	"errors"
	"net/url"
	"strings"
)

// hidden replaces credentials that cannot be told apart from the rest.
const hidden = "xxxxx"

// URL returns rawURL with its password replaced by "xxxxx". When rawURL
// does not parse as a URL with every '@' in its user information (a
// password with an unescaped '%', '#', '/', '?' or '@'), everything
// between the scheme and the last '@' is replaced instead, user name
// included: what the parser would take for a host, a port or a path may
// be part of the password.
func URL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err == nil && clean(u) {
		if u.User == nil {
			return rawURL
		}
		return u.Redacted()
	}
	at := strings.LastIndexByte(rawURL, '@')
	if at < 0 {
		return rawURL // nothing that could be a password
	}
	start := 0
	if i := strings.Index(rawURL, "://"); i >= 0 && i < at {
		start = i + len("://")
	} else if i := strings.IndexByte(rawURL, ':'); i >= 0 && i < at {
		start = i + 1
	}
	return rawURL[:start] + hidden + rawURL[at:]
}

// clean reports whether u has no '@' outside its user information, where
// one would mean credentials that did not parse as such.
func clean(u *url.URL) bool {
	return !strings.Contains(u.Opaque+u.Host+u.Path+u.RawQuery+u.Fragment, "@")
}

// errNotEscaped is the cause of Parse's error for a URL whose user
// information does not parse.
var errNotEscaped = errors.New("the user name or password has a character that must be percent-encoded (% as %25, # as %23, / as %2F, ? as %3F, @ as %40)")

// Parse is url.Parse, except that a URL with an authority ("//") and an
// '@' outside its user information is refused as one whose credentials
// are not escaped, and that its error, a *url.Error, shows the URL as URL
// does and never any part of the password. An opaque URL ("scheme:rest")
// is returned as url.Parse returns it, and its Opaque may hold a
// password: a caller that wants no opaque URL says so without it.
func Parse(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err == nil && (u.Opaque != "" || clean(u)) {
		return u, nil
	}
	safe := URL(rawURL)
	cause := errNotEscaped
	if safe != rawURL || err == nil {
		// The cause, found again in the URL without its credentials: the
		// first error may quote a part of the password ("invalid port").
		if _, err2 := url.Parse(safe); err2 != nil {
			var ue *url.Error
			if errors.As(err2, &ue) {
				cause = ue.Err
			}
		}
	} else {
		var ue *url.Error
		if errors.As(err, &ue) {
			cause = ue.Err
		}
	}
	return nil, &url.Error{Op: "parse", URL: safe, Err: cause}
}
