package agent

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/flowd/flowd/internal/agentproto"
)

// The agent's side of the wire (docs/agent-protocol.md, version 1): its paths, headers and
// bodies are agentproto's.

// Errors of calls, as the protocol defines them.
var (
	// errUnauthorized is a 401: the agent token is unknown or revoked. The agent stops.
	errUnauthorized = errors.New("the server refused the agent token (unknown or revoked)")
)

// goneError is a 409 of a per-attempt call: the attempt is no longer live (State "lost",
// "canceled" or "finished"), or, for finish, the stored log is not the one announced (Code
// "log_incomplete" or "log_mismatch", Length where to send from).
type goneError struct {
	State  string
	Code   string
	Length int64
}

// attemptGone says whether e says the attempt is no longer live (not a log to send again, nor
// the agent replaced).
func (e *goneError) attemptGone() bool {
	switch e.Code {
	case "log_incomplete", "log_mismatch", "agent_replaced":
		return false
	}
	return true
}

func (e *goneError) Error() string {
	if e.State != "" {
		return fmt.Sprintf("the attempt is no longer live (%s)", e.State)
	}
	if e.Code != "" {
		return fmt.Sprintf("server answered 409 %s (stored log length %d)", e.Code, e.Length)
	}
	return fmt.Sprintf("the attempt is no longer live (%s)", e.State)
}

// gapError is a 416 of a log call: the server has Length bytes, fewer than the offset sent.
type gapError struct{ Length int64 }

func (e *gapError) Error() string {
	return fmt.Sprintf("server answered 416: it has %d bytes", e.Length)
}

// statusError is any other answer that is not 2xx.
type statusError struct {
	Status  int
	Code    string
	Message string
}

func (e *statusError) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("server answered %d %s: %s", e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("server answered %d %s", e.Status, http.StatusText(e.Status))
}

// retryable says whether a call that failed with err is tried again: network errors, 429 and
// 5xx.
func retryable(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.Status == http.StatusTooManyRequests || se.Status >= 500
	}
	var ge *goneError
	var gap *gapError
	return !errors.Is(err, errUnauthorized) && !errors.As(err, &ge) && !errors.As(err, &gap) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// backoff is the pause before each retry: Base, doubling to at most Max, each with ±50 %
// jitter, so many agents reconnecting after a server restart do not arrive at once.
type backoff struct {
	Base, Max time.Duration
	next      time.Duration
}

// pause returns the next pause (jittered) and doubles the one after it.
func (b *backoff) pause() time.Duration {
	if b.next == 0 {
		b.next = b.Base
	}
	d := b.next
	b.next = min(2*b.next, b.Max)
	return time.Duration(float64(d) * (0.5 + rand.Float64()))
}

// reset makes the next pause Base again.
func (b *backoff) reset() { b.next = 0 }

// wait sleeps the next pause, or returns ctx's error first.
func (b *backoff) wait(ctx context.Context, atLeast time.Duration) error {
	t := time.NewTimer(max(b.pause(), atLeast))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// conn is the agent's HTTP client of one server: its address, the agent token and the
// retry policy. It is safe for concurrent use.
type conn struct {
	base    string
	token   string
	hc      *http.Client
	log     *slog.Logger
	version string
	// retryBase and retryMax are the backoff's bounds (0.5 s and 30 s; tests shorten them).
	retryBase, retryMax time.Duration
	// callTimeout bounds one try of a call that is not a claim.
	callTimeout time.Duration
}

func (c *conn) backoff() *backoff { return &backoff{Base: c.retryBase, Max: c.retryMax} }

// call is one request of the protocol.
type call struct {
	method  string
	path    string // under agentproto.Prefix
	attempt string // the attempt token, for per-attempt calls
	body    []byte
	json    bool          // body is JSON (else raw log bytes)
	timeout time.Duration // of one try; 0: callTimeout
	// until bounds the retries (zero: until ctx ends).
	until time.Time
}

// do sends c, retrying network errors, 429 and 5xx with backoff until ctx ends (or c.until),
// and decodes a 2xx JSON answer into out (nil: discarded). It returns the last error.
func (c *conn) do(ctx context.Context, cl call, out any) error {
	b := c.backoff()
	for try := 1; ; try++ {
		_, retryAfter, err := c.exchange(ctx, cl, out)
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
		if !cl.until.IsZero() && time.Now().After(cl.until) {
			return err
		}
		if try == 1 || try%10 == 0 {
			c.log.Warn("agent call failed; retrying", "call", cl.method+" "+cl.path, "try", try, "err", err)
		}
		if werr := b.wait(ctx, retryAfter); werr != nil {
			return err
		}
	}
}

// once sends c once, without retries.
func (c *conn) once(ctx context.Context, cl call, out any) error {
	_, _, err := c.exchange(ctx, cl, out)
	return err
}

// exchange sends c once and returns the answer's header, and a 429's or 503's Retry-After.
func (c *conn) exchange(ctx context.Context, cl call, out any) (hdr http.Header, retryAfter time.Duration, err error) {
	timeout := cl.timeout
	if timeout == 0 {
		timeout = c.callTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, c.base+agentproto.Prefix+cl.path, body)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if cl.attempt != "" {
		req.Header.Set(agentproto.AttemptTokenHeader, cl.attempt)
	}
	if cl.body != nil {
		if cl.json {
			req.Header.Set("Content-Type", "application/json")
		} else {
			req.Header.Set("Content-Type", "application/octet-stream")
		}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "flowd-agent/"+c.version)
	resp, err := c.hc.Do(req)
	if err != nil {
		// The error names the URL, never the token (it is in a header).
		return nil, 0, fmt.Errorf("cannot reach the flowd server at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, 0, fmt.Errorf("read the answer of %s %s: %w", cl.method, cl.path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out != nil && resp.StatusCode != http.StatusNoContent && len(bytes.TrimSpace(data)) > 0 {
			if err := json.Unmarshal(data, out); err != nil {
				return nil, 0, fmt.Errorf("%s %s: the answer is not the protocol's JSON: %w", cl.method, cl.path, err)
			}
		}
		return nil, 0, nil
	}
	// Errors are {"error":{"code","message"}}; 409s and 416s carry state, code and length at
	// the top or inside "error": both are read.
	type detail struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		State   string `json:"state"`
		Length  *int64 `json:"length"`
	}
	var env struct {
		detail
		Error *detail `json:"error"`
	}
	_ = json.Unmarshal(data, &env)
	d := env.detail
	if e := env.Error; e != nil {
		d.Code, d.Message, d.State = cmp.Or(e.Code, d.Code), cmp.Or(e.Message, d.Message), cmp.Or(e.State, d.State)
		if d.Length == nil {
			d.Length = e.Length
		}
	}
	length := int64(0)
	if d.Length != nil {
		length = *d.Length
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		if d.Message != "" {
			return nil, 0, fmt.Errorf("%w: %s", errUnauthorized, d.Message)
		}
		return nil, 0, errUnauthorized
	case http.StatusConflict:
		return nil, 0, &goneError{State: d.State, Code: d.Code, Length: length}
	case http.StatusRequestedRangeNotSatisfiable:
		if d.Length != nil {
			return nil, 0, &gapError{Length: length}
		}
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			retryAfter = min(time.Duration(s)*time.Second, c.retryMax)
		}
	}
	msg := d.Message
	if msg == "" && d.Code == "" {
		msg = strings.TrimSpace(string(data))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
	}
	return resp.Header, retryAfter, &statusError{Status: resp.StatusCode, Code: d.Code, Message: msg}
}

// jsonBody is v as JSON.
func jsonBody(v any) ([]byte, error) { return json.Marshal(v) }

// postJSON sends a JSON call.
func (c *conn) postJSON(ctx context.Context, path, attempt string, in, out any, until time.Time) error {
	body, err := jsonBody(in)
	if err != nil {
		return err
	}
	return c.do(ctx, call{method: http.MethodPost, path: path, attempt: attempt, body: body, json: true, until: until}, out)
}
