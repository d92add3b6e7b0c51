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
// unescaped '@' or '/' in a password), Redact hides too much rather than too
// little: everything before the last '@' of the URI's path part counts as
// user-info.
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
	head, tail := rest, ""
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		head, tail = rest[:i], rest[i:]
	}
	if at := strings.LastIndex(head, "@"); at >= 0 {
		userinfo := head[:at]
		user, pass, hasPass := strings.Cut(userinfo, ":")
		if hasPass && !strings.Contains(user, "/") {
			secrets = append(secrets, pass)
			head = user + ":***" + head[at:]
		} else {
			secrets = append(secrets, userinfo)
			head = "***" + head[at:]
		}
	}
	if strings.HasPrefix(tail, "?") {
		query, fragment, hasFragment := strings.Cut(tail[1:], "#")
		params := strings.Split(query, "&")
		for i, kv := range params {
			k, v, hasV := strings.Cut(kv, "=")
			if hasV && v != "" && isSecretKey(k) {
				secrets = append(secrets, v)
				params[i] = k + "=***"
			}
		}
		tail = "?" + strings.Join(params, "&")
		if hasFragment {
			tail += "#" + fragment
		}
	}
	// Percent-decoded forms of the secrets may appear in a decoder's output.
	for _, s := range secrets {
		if d, err := url.PathUnescape(s); err == nil && d != s {
			secrets = append(secrets, d)
		}
	}
	return scheme + "://" + head + tail, secrets
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
