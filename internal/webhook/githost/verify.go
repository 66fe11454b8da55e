package githost

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
)

// SignatureError is a request whose secret token or signature is missing or wrong. Message
// says which header was expected and, when it is missing, where to set the secret on the host;
// it never reveals the right value.
type SignatureError struct {
	Message string
}

// Error implements error.
func (e *SignatureError) Error() string { return e.Message }

// sigErr builds a *SignatureError whose message is fmt.Sprintf(format, args...).
func sigErr(format string, args ...any) *SignatureError {
	return &SignatureError{Message: fmt.Sprintf(format, args...)}
}

// secretHome says where each host keeps a webhook's secret.
var secretHome = map[Provider]string{
	GitHub:          "on GitHub, in the repository's Settings → Webhooks → Edit → Secret",
	GitLab:          "on GitLab, in the project's Settings → Webhooks → Edit → Secret token",
	Codeup:          "on Codeup, in the repository's Settings → Webhooks → Secret Token",
	Gitea:           "on Gitea or Forgejo, in the repository's Settings → Webhooks → Edit → Secret",
	Gogs:            "on Gogs, in the repository's Settings → Webhooks → Edit → Secret",
	Bitbucket:       "on Bitbucket, in the repository's Repository settings → Webhooks → Edit → Secret",
	BitbucketServer: "on Bitbucket Server, in the repository's Repository settings → Webhooks → Edit → Secret",
}

// Verify checks the secret of a request from host p against the trigger's secret:
//
//   - github: X-Hub-Signature-256 is "sha256=" and the hex HMAC-SHA256(secret, body);
//   - gitlab: X-Gitlab-Token is the secret itself; codeup: X-Codeup-Token likewise;
//   - gitea: X-Forgejo-Signature (Forgejo) or X-Gitea-Signature is the hex HMAC-SHA256;
//   - gogs: X-Gogs-Signature is the hex HMAC-SHA256;
//   - bitbucket, bitbucket-server: X-Hub-Signature is "sha256=" and the hex HMAC-SHA256.
//
// Every comparison takes constant time (hmac.Equal, and subtle.ConstantTimeCompare over
// SHA-256 digests for plain tokens, so not even the token's length leaks). Hex digits and the
// "sha256=" prefix may be in either case. Call Verify only for a trigger that has a secret: an
// empty secret is refused. Every error is a *SignatureError.
func Verify(p Provider, h http.Header, body, secret []byte) error {
	home, ok := secretHome[p]
	if !ok {
		return sigErr("cannot check the signature of provider %q: it is not a known Git host", p)
	}
	if len(secret) == 0 {
		return sigErr("this webhook has no secret to check %s requests against", p)
	}
	switch p {
	case GitLab:
		return checkToken(h, "X-Gitlab-Token", home, secret)
	case Codeup:
		return checkToken(h, "X-Codeup-Token", home, secret)
	case GitHub:
		return checkPrefixedHMAC(h, "X-Hub-Signature-256", home, body, secret)
	case Bitbucket, BitbucketServer:
		return checkPrefixedHMAC(h, "X-Hub-Signature", home, body, secret)
	case Gitea:
		header := "X-Gitea-Signature"
		if h.Get("X-Forgejo-Signature") != "" {
			header = "X-Forgejo-Signature"
		}
		return checkHexHMAC(h, header, home, body, secret)
	default: // Gogs
		return checkHexHMAC(h, "X-Gogs-Signature", home, body, secret)
	}
}

// missing is the error for a request without its secret header.
func missing(header, home string) *SignatureError {
	return sigErr("the request has no %s header, but this webhook has a secret: set the same secret %s", header, home)
}

// checkToken compares the plain token in header with secret.
func checkToken(h http.Header, header, home string, secret []byte) error {
	got := strings.TrimSpace(h.Get(header))
	if got == "" {
		return missing(header, home)
	}
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256(secret)
	if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
		return sigErr("%s does not match this webhook's secret: set the same secret %s", header, home)
	}
	return nil
}

// checkPrefixedHMAC checks a "sha256=<hex>" signature in header.
func checkPrefixedHMAC(h http.Header, header, home string, body, secret []byte) error {
	got := strings.TrimSpace(h.Get(header))
	if got == "" {
		return missing(header, home)
	}
	const prefix = "sha256="
	if len(got) < len(prefix) || !strings.EqualFold(got[:len(prefix)], prefix) {
		return sigErr("%s is malformed: it must be sha256= followed by the hex HMAC-SHA256 of the body (an older sha1 signature is not accepted)", header)
	}
	return checkHMAC(header, got[len(prefix):], body, secret)
}

// checkHexHMAC checks a bare hex signature in header.
func checkHexHMAC(h http.Header, header, home string, body, secret []byte) error {
	got := strings.TrimSpace(h.Get(header))
	if got == "" {
		return missing(header, home)
	}
	return checkHMAC(header, got, body, secret)
}

// checkHMAC compares hexSum, read from header, with HMAC-SHA256(secret, body).
func checkHMAC(header, hexSum string, body, secret []byte) error {
	sum, err := hex.DecodeString(hexSum)
	if err != nil || len(sum) != sha256.Size {
		return sigErr("%s is malformed: it must hold the %d hex digits of the HMAC-SHA256 of the body", header, 2*sha256.Size)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(sum, mac.Sum(nil)) {
		return sigErr("%s does not match the body: the host must sign the exact bytes it sends with this webhook's secret", header)
	}
	return nil
}
