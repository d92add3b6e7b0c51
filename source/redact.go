package source

import (
	"net/url"
	"strings"
)

// Redact returns uri fit to show or publish: the password of its user-info
// becomes "***" (rtsp://user:***@host/path), a user-info without a password
// (often a token) becomes "***" (rtsp://***@host/path), and so do the values
// of query parameters that name a secret (password, token, key, auth,
// signature). A plain path, or a URI with nothing secret, is returned as is.
//
// Every place that shows or publishes a source URI (logs, errors, results,
// the spool, the live view) passes it through Redact; only the decoder
// subprocess is given the URI itself. When the user-info is ambiguous (an
// '@' outside the authority or more than one: an unescaped '@', '/', '?' or
// '#' in a password, or an '@' in the path), Redact hides too much rather
// than too little: everything after the scheme (rtsp://***).
func Redact(uri string) string {
	r, _ := redact(uri)
	return r
}

// secretKeys are the query parameter names (lower case, as substrings)
// whose values Redact hides.
var secretKeys = []string{"pass", "pwd", "token", "secret", "key", "auth", "sig", "cred"}

// redact returns Redact(uri) and the secret substrings it hid, so that text
// that may quote the URI (a decoder's error output) can be scrubbed too.
func redact(uri string) (string, []string) {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return uri, nil
	}
	var secrets []string
	authority := rest[:authorityEnd(rest)]
	switch at := strings.LastIndex(rest, "@"); {
	case at < 0:
	case strings.Count(rest, "@") == 1 && at < len(authority):
		userinfo := rest[:at]
		if user, pass, hasPass := strings.Cut(userinfo, ":"); hasPass {
			secrets = append(secrets, pass)
			rest = user + ":***" + rest[at:]
		} else {
			secrets = append(secrets, userinfo)
			rest = "***" + rest[at:]
		}
	default:
		// An '@' outside the authority, or more than one: an unescaped
		// character in a password, or an '@' in the path. Which part is
		// secret cannot be told, so nothing after the scheme is shown.
		secrets = append(secrets, rest, rest[:at])
		if _, pass, hasPass := strings.Cut(rest[:at], ":"); hasPass {
			secrets = append(secrets, pass)
		}
		return scheme + "://***", withUnescaped(secrets)
	}
	if q := strings.Index(rest, "?"); q >= 0 {
		query, fragment, hasFragment := strings.Cut(rest[q+1:], "#")
		params := strings.Split(query, "&")
		for i, kv := range params {
			k, v, hasV := strings.Cut(kv, "=")
			if hasV && v != "" && isSecretKey(k) {
				secrets = append(secrets, v)
				params[i] = k + "=***"
			}
		}
		rest = rest[:q+1] + strings.Join(params, "&")
		if hasFragment {
			rest += "#" + fragment
		}
	}
	return scheme + "://" + rest, withUnescaped(secrets)
}

// authorityEnd is the length of the authority at the start of rest (the
// part of a URI after "scheme://"): up to the first '/', '?' or '#'.
func authorityEnd(rest string) int {
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		return i
	}
	return len(rest)
}

// withUnescaped adds the percent-decoded forms of secrets, which may appear
// in a decoder's output.
func withUnescaped(secrets []string) []string {
	for _, s := range secrets {
		if d, err := url.PathUnescape(s); err == nil && d != s {
			secrets = append(secrets, d)
		}
	}
	return secrets
}

func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range secretKeys {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// scrub replaces every secret in text with "***".
func scrub(text string, secrets []string) string {
	for _, s := range secrets {
		if s != "" {
			text = strings.ReplaceAll(text, s, "***")
		}
	}
	return text
}
