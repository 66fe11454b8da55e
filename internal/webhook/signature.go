package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// signatureHeader is GitHub's signature header, which the general webhook uses too.
const signatureHeader = "X-Hub-Signature-256"

// TimestampHeader carries the Unix time (seconds) a signed request was made at; with it, the
// signature covers the timestamp too, so a captured request cannot be replayed later.
const TimestampHeader = "X-Flowd-Timestamp"

// TimestampTolerance is how far a signed timestamp may be from the server's clock, either way.
const TimestampTolerance = 5 * time.Minute

// VerifySignature checks that h's X-Hub-Signature-256 is "sha256=" and the hex
// HMAC-SHA256(secret, body), as GitHub sends it. Call it only for a trigger that has a secret.
//
// Replay protection: when h has X-Flowd-Timestamp, the signed text is the timestamp, ".", and
// the body (as Stripe and Slack sign), and the timestamp — a Unix time in whole seconds — must be
// within TimestampTolerance of now. Without the header the body alone is signed (GitHub's
// scheme, which cannot send one); requireTimestamp refuses such a request.
//
// The "sha256=" prefix and the hex digits may be in either case: the digits are decoded and the
// 32 bytes compared in constant time (hmac.Equal), so case carries no information. Surrounding
// spaces are ignored; when the header occurs twice, the first one counts.
//
// A missing, malformed (no "sha256=", not hex, not 64 digits) or wrong signature, a malformed
// or stale timestamp, or a missing one that is required, is invalid_signature; the message says
// which, never what the right value would be.
func VerifySignature(h http.Header, body, secret []byte, now time.Time, requireTimestamp bool) error {
	signed := body
	if ts := h.Values(TimestampHeader); len(ts) > 0 {
		at, err := parseTimestamp(ts[0])
		if err != nil {
			return err
		}
		if off := now.Sub(at); off > TimestampTolerance || off < -TimestampTolerance {
			return errorf(CodeInvalidSignature,
				"%s is %v from the server's clock, more than the %v allowed: sign the request again when you send it (and check the sender's clock)",
				TimestampHeader, off.Round(time.Second).Abs(), TimestampTolerance)
		}
		signed = append([]byte(strings.TrimSpace(ts[0])+"."), body...)
	} else if requireTimestamp {
		return errorf(CodeInvalidSignature,
			"this webhook requires %s: send the Unix time in seconds in it and sign the timestamp, \".\" and the body (HMAC-SHA256 with the secret) in %s: sha256=<hex>",
			TimestampHeader, signatureHeader)
	}
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
	return checkHMAC(signatureHeader, got[len(prefix):], signed, secret)
}

// parseTimestamp reads X-Flowd-Timestamp: a Unix time in whole seconds.
func parseTimestamp(v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	secs, err := strconv.ParseInt(v, 10, 64)
	if err != nil || len(v) > 12 || secs < 0 {
		return time.Time{}, errorf(CodeInvalidSignature,
			"%s must be the Unix time in whole seconds (such as date +%%s prints), got %q", TimestampHeader, v)
	}
	return time.Unix(secs, 0), nil
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
