package webhook

import (
	"net/http"
	"strings"
)

// redacted replaces the values of secret-bearing headers in RedactHeaders' copy.
const redacted = "[redacted]"

// secretHeaders are the secret-bearing headers by lowercase name, besides those whose name
// contains one of secretWords.
var secretHeaders = map[string]bool{
	"authorization":       true,
	"proxy-authorization": true,
	"cookie":              true,
	"x-hub-signature":     true,
	"x-hub-signature-256": true,
	"x-gitlab-token":      true,
	"x-codeup-token":      true,
	"x-gitea-signature":   true,
	"x-gogs-signature":    true,
}

// secretWords mark a header as secret-bearing when its lowercase name contains one.
var secretWords = []string{"token", "secret", "signature", "password"}

// RedactHeaders copies h with the values of secret-bearing headers replaced by "[redacted]" (one
// "[redacted]" per value): Authorization, Proxy-Authorization, Cookie, X-Hub-Signature,
// X-Hub-Signature-256, X-Gitlab-Token, X-Codeup-Token, X-Gitea-Signature, X-Gogs-Signature, and
// any header whose name contains "token", "secret", "signature" or "password", all matched
// case-insensitively. Names are kept as they are in h. The copy shares nothing with h; it is
// never nil.
func RedactHeaders(h http.Header) map[string][]string {
	out := make(map[string][]string, len(h))
	for name, values := range h {
		if values == nil {
			out[name] = nil
			continue
		}
		c := make([]string, len(values))
		if isSecretHeader(name) {
			for i := range c {
				c[i] = redacted
			}
		} else {
			copy(c, values)
		}
		out[name] = c
	}
	return out
}

// isSecretHeader reports whether the header called name carries a secret.
func isSecretHeader(name string) bool {
	lower := strings.ToLower(name)
	if secretHeaders[lower] {
		return true
	}
	for _, w := range secretWords {
		if strings.Contains(lower, w) {
			return true
		}
	}
	return false
}
