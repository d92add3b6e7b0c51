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
// unescaped '@', '/', '?' or '#' in a password), Redact hides too much
// rather than too little: everything before the URI's last '@' counts as
// user-info (so rtsp://host/a@b shows as rtsp://***@b).
func Redact(uri string) string {
	r, _ := redact(uri)
	return r
}

// secretKeys are the query parameter names (lower case, as substrings)
// whose values Redact hides.
var secretKeys = []string{"pass", "pwd", "token", "secret", "key", "auth", "sig", "cred"}

// redact returns Redact(uri) and the secret substrings it hid, so that text
// that may quote the URI (a decoder's error output) can be scrubbed too.
// The query is redacted first; then everything before the last '@' is
// user-info, so that an unescaped '@', '?', '#' or '/' in a password never
// leaves part of it showing.
func redact(uri string) (string, []string) {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return uri, nil
	}
	var secrets []string
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
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		userinfo := rest[:at]
		user, pass, hasPass := strings.Cut(userinfo, ":")
		if hasPass && !strings.ContainsAny(user, "/?#") {
			secrets = append(secrets, pass)
			rest = user + ":***" + rest[at:]
		} else {
			secrets = append(secrets, userinfo)
			rest = "***" + rest[at:]
		}
	}
	// Percent-decoded forms of the secrets may appear in a decoder's output.
	for _, s := range secrets {
		if d, err := url.PathUnescape(s); err == nil && d != s {
			secrets = append(secrets, d)
		}
	}
	return scheme + "://" + rest, secrets
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
