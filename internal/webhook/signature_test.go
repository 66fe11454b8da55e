package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestVerifySignature(t *testing.T) {
	t.Parallel()
	secret := []byte("It's a Secret to Everybody")
	body := []byte("Hello, World!")
	// GitHub's documented example for this secret and body.
	const good = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if got := hex.EncodeToString(mac.Sum(nil)); got != good {
		t.Fatalf("test vector: HMAC = %s, want %s", got, good)
	}
	flipped := []byte(good)
	flipped[10] ^= 1 // '0' <-> '1': still hex, now wrong

	tests := []struct {
		name    string
		header  []string // X-Hub-Signature-256 values; nil = none
		body    []byte
		message string // substring of the refusal; "" = accepted
	}{
		{name: "right", header: []string{"sha256=" + good}, body: body},
		{name: "upper case hex", header: []string{"sha256=" + strings.ToUpper(good)}, body: body},
		{name: "upper case prefix", header: []string{"SHA256=" + good}, body: body},
		{name: "surrounding spaces", header: []string{" sha256=" + good + " "}, body: body},
		{name: "first of two counts", header: []string{"sha256=" + good, "sha256=00"}, body: body},
		{name: "wrong digest", header: []string{"sha256=" + string(flipped)}, body: body, message: "does not match the body"},
		{name: "other body", header: []string{"sha256=" + good}, body: []byte("Hello, World?"), message: "does not match the body"},
		{name: "missing", body: body, message: "this webhook has a secret: sign the body"},
		{name: "empty", header: []string{""}, body: body, message: "X-Hub-Signature-256: sha256=<hex>"},
		{name: "no prefix", header: []string{good}, body: body, message: "must start with sha256="},
		{name: "sha1 prefix", header: []string{"sha1=" + good[:40]}, body: body, message: "must start with sha256="},
		{name: "short", header: []string{"sha2"}, body: body, message: "must start with sha256="},
		{name: "not hex", header: []string{"sha256=" + strings.Repeat("zz", 32)}, body: body, message: "not hexadecimal"},
		{name: "odd length", header: []string{"sha256=" + good[:63]}, body: body, message: "not hexadecimal"},
		{name: "too short", header: []string{"sha256=" + good[:62]}, body: body, message: "has 62 hex digits, an HMAC-SHA256 has 64"},
		{name: "too long", header: []string{"sha256=" + good + "00"}, body: body, message: "has 66 hex digits"},
		{name: "prefix only", header: []string{"sha256="}, body: body, message: "has 0 hex digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			for _, v := range tt.header {
				h.Add("X-Hub-Signature-256", v)
			}
			err := VerifySignature(h, tt.body, secret, time.Now(), false)
			if tt.message == "" {
				if err != nil {
					t.Fatalf("VerifySignature = %v, want nil", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("VerifySignature = %v, want an *Error", err)
			}
			if e.Code != CodeInvalidSignature {
				t.Errorf("error code = %s, want invalid_signature", e.Code)
			}
			if !strings.Contains(e.Message, tt.message) {
				t.Errorf("message %q does not contain %q", e.Message, tt.message)
			}
			if strings.Contains(strings.ToLower(e.Message), good) {
				t.Errorf("message %q leaks the expected signature", e.Message)
			}
		})
	}
}

// TestVerifySignatureTimestamp: with X-Flowd-Timestamp the signature covers "timestamp." and
// the body and the timestamp must be within TimestampTolerance of now, either way; a trigger
// that requires it refuses a request without it; without it, GitHub's scheme is unchanged.
func TestVerifySignatureTimestamp(t *testing.T) {
	t.Parallel()
	secret, body := []byte("k"), []byte(`{"abc":"1"}`)
	now := time.Unix(1_800_000_000, 0)
	sign := func(text string) string {
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(text))
		return "sha256=" + hex.EncodeToString(mac.Sum(nil))
	}
	at := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	tests := []struct {
		name    string
		ts      string // X-Flowd-Timestamp; "" = none
		sig     string
		require bool
		message string // "" = accepted
	}{
		{name: "timestamped", ts: at(0), sig: sign(at(0) + "." + string(body))},
		{name: "at the tolerance, behind", ts: at(-TimestampTolerance), sig: sign(at(-TimestampTolerance) + "." + string(body))},
		{name: "at the tolerance, ahead", ts: at(TimestampTolerance), sig: sign(at(TimestampTolerance) + "." + string(body))},
		{name: "required and given", ts: at(0), sig: sign(at(0) + "." + string(body)), require: true},
		{name: "no timestamp: GitHub's scheme", sig: sign(string(body))},
		{name: "a second too old", ts: at(-TimestampTolerance - time.Second), sig: sign(at(-TimestampTolerance-time.Second) + "." + string(body)), message: "5m1s from the server's clock"},
		{name: "a second too new", ts: at(TimestampTolerance + time.Second), sig: sign(at(TimestampTolerance+time.Second) + "." + string(body)), message: "more than the 5m0s allowed"},
		{name: "body-only signature with a timestamp", ts: at(0), sig: sign(string(body)), message: "does not match"},
		{name: "timestamp changed after signing", ts: at(1 * time.Second), sig: sign(at(0) + "." + string(body)), message: "does not match"},
		{name: "not a number", ts: "yesterday", sig: sign("yesterday." + string(body)), message: "Unix time in whole seconds"},
		{name: "milliseconds", ts: at(0) + "000", sig: sign(at(0) + "000." + string(body)), message: "Unix time in whole seconds"},
		{name: "required, missing", sig: sign(string(body)), require: true, message: "this webhook requires X-Flowd-Timestamp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{"X-Hub-Signature-256": {tt.sig}}
			if tt.ts != "" {
				h.Set(TimestampHeader, tt.ts)
			}
			err := VerifySignature(h, body, secret, now, tt.require)
			var e *Error
			switch {
			case tt.message == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.message != "" && (!errors.As(err, &e) || e.Code != CodeInvalidSignature || !strings.Contains(e.Message, tt.message)):
				t.Errorf("got %v, want invalid_signature saying %q", err, tt.message)
			}
		})
	}
}
