// Package webhook reads requests to webhook URLs: it decodes payloads, checks signatures,
// redacts secret headers and rate-limits triggers. It is pure: no database, no HTTP server.
//
// The endpoint's handler (package api) calls these in the order of a delivery's Trace: it
// finds the trigger by token, checks it is enabled, asks a Limiter, checks the signature with
// VerifySignature when the trigger has a secret, checks the owner's permission, decodes the
// body with DecodePayload and hands the variables to package trigger. Every refusal here is an
// *Error whose Code is one of DESIGN.md's "Webhook endpoint" table; the HTTP status that goes
// with a code is chosen at the API edge (package api), never here.
//
// The body size limit (413 payload_too_large) is the handler's job: it reads the body through
// http.MaxBytesReader before calling DecodePayload.
package webhook

import "fmt"

// Error codes of DESIGN.md's webhook table that this package returns.
const (
	CodeInvalidJSON          = "invalid_json"
	CodeInvalidVariables     = "invalid_variables"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeInvalidSignature     = "invalid_signature"
)

// Step is one step of a delivery's decision trace.
type Step struct {
	// Step names the check: "token", "enabled", "rate", "size", "signature", "permission", "payload",
	// "variables" or "run".
	Step   string `json:"step"`
	OK     bool   `json:"ok"`     // whether the delivery passed this step
	Detail string `json:"detail"` // what was found, for a person reading the delivery log
}

// Trace is a delivery's decision, step by step, ending at the step that refused.
type Trace []Step

// Add appends a step whose detail is fmt.Sprintf(format, args...).
func (t *Trace) Add(step string, ok bool, format string, args ...any) {
	*t = append(*t, Step{Step: step, OK: ok, Detail: fmt.Sprintf(format, args...)})
}

// Error is a refusal with DESIGN.md's code and a message a person can act on.
type Error struct {
	Code    string // DESIGN.md's error code, e.g. "invalid_json"
	Message string // what is wrong and what to send instead; safe to show the caller
}

// Error returns "code: message".
func (e *Error) Error() string {
	return e.Code + ": " + e.Message
}

// errorf builds an *Error whose message is fmt.Sprintf(format, args...).
func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
