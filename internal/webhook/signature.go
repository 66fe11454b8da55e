package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
)

// signatureHeader is GitHub's signature header, which the general webhook uses too.
const signatureHeader = "X-Hub-Signature-256"

// VerifySignature checks that h's X-Hub-Signature-256 is "sha256=" and the hex
// HMAC-SHA256(secret, body), as GitHub sends it. Call it only for a trigger that has a secret.
//
// The "sha256=" prefix and the hex digits may be in either case: the digits are decoded and the
// 32 bytes compared in constant time (hmac.Equal), so case carries no information. Surrounding
// spaces are ignored; when the header occurs twice, the first one counts.
//
// A missing, malformed (no "sha256=", not hex, not 64 digits) or wrong signature is 401
// invalid_signature; the message says which, never what the right value would be.
func VerifySignature(h http.Header, body, secret []byte) error {
	got := strings.TrimSpace(h.Get(signatureHeader))
	if got == "" {
		return errorf(CodeInvalidSignature,
			"this webhook has a secret: sign the body with HMAC-SHA256 using the secret and send it as %s: sha256=<hex>", signatureHeader)
	}
	const prefix = "sha256="
	if len(got) < len(prefix) || !strings.EqualFold(got[:len(prefix)], prefix) {
		return errorf(CodeInvalidSignature,
			"%s is malformed: it must start with sha256= followed by the hex HMAC-SHA256 of the body", signatureHeader)
	}
	return checkHMAC(signatureHeader, got[len(prefix):], body, secret)
}

// checkHMAC compares the hex digest hexSum, read from header, with HMAC-SHA256(secret, body).
// Gitea's, Gogs' and Bitbucket's signatures carry the same digest under other headers.
func checkHMAC(header, hexSum string, body, secret []byte) error {
	sum, err := hex.DecodeString(hexSum)
	if err != nil {
		return errorf(CodeInvalidSignature,
			"%s is malformed: the digest is not hexadecimal; send the hex HMAC-SHA256 of the body", header)
	}
	if len(sum) != sha256.Size {
		return errorf(CodeInvalidSignature,
			"%s is malformed: the digest has %d hex digits, an HMAC-SHA256 has %d", header, len(hexSum), 2*sha256.Size)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(sum, mac.Sum(nil)) {
		return errorf(CodeInvalidSignature,
			"%s does not match the body: sign the exact bytes sent, with this webhook's secret", header)
	}
	return nil
}
