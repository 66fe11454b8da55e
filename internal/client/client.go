// Package client is a small typed Go client for flowd's REST API v1 (docs/api.md). The CLI uses
// it, and so will the remote agent. Every method takes a context first and returns *Error for an
// answer the server gave as an error, so callers can branch on Status or Code.
//
//	c := client.New("http://127.0.0.1:8080", token, nil)
//	r, ignored, err := c.RunCreate(ctx, "hello", map[string]string{"abc": "456"})
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Client talks to one flowd server with one API token. It holds no per-call state and is safe
// for concurrent use.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// New returns a Client for the server at baseURL (e.g. "http://127.0.0.1:8080"; a trailing slash
// is ignored) that authenticates with token (may be "" for Login only). hc nil means
// http.DefaultClient; it should have no overall Timeout, or following a log would be cut off.
func New(baseURL, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, hc: hc}
}

// BaseURL returns the server address the client was made with, without a trailing slash.
func (c *Client) BaseURL() string { return c.base }

// Problem is one problem of a pipeline definition (Line and Column set) or of run variables
// (Key set).
type Problem struct {
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Key     string `json:"key,omitempty"`
	Message string `json:"message"`
}

// String formats p as "line:col: message", "key: message" or just the message.
func (p Problem) String() string {
	switch {
	case p.Line > 0 && p.Column > 0:
		return fmt.Sprintf("%d:%d: %s", p.Line, p.Column, p.Message)
	case p.Line > 0:
		return fmt.Sprintf("%d: %s", p.Line, p.Message)
	case p.Key != "":
		return fmt.Sprintf("%s: %s", p.Key, p.Message)
	}
	return p.Message
}

// Error is an error answer of the server: {"error": {"code", "message", "problems"?}}, or any
// other non-2xx answer (then Code is "" and Message describes what came back).
type Error struct {
	Status   int       // HTTP status code
	Code     string    // e.g. "not_found", "invalid_pipeline"; "" if the body was not flowd's
	Message  string    // the server's message, meant for a person
	Problems []Problem // for invalid_pipeline and invalid_variables
}

// Error returns the server's message followed by one line per problem.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Message != "" {
		b.WriteString(e.Message)
	} else {
		fmt.Fprintf(&b, "server answered %d %s", e.Status, http.StatusText(e.Status))
	}
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// IsStatus reports whether err is (or wraps) an *Error with the given HTTP status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// request is one API call.
type request struct {
	method      string
	path        string      // already escaped, starting with /
	query       url.Values  // optional
	header      http.Header // optional; Accept, User-Agent and Authorization stay the client's
	body        io.Reader   // optional
	contentType string      // for body; "" leaves Content-Type to header
	basicUser   string      // set: HTTP Basic instead of the bearer token
	basicPass   string
}

// newRequest builds the HTTP request of r: its URL, the caller's headers, then the client's
// own Content-Type, Accept, User-Agent and credentials.
func (c *Client) newRequest(ctx context.Context, r request) (*http.Request, error) {
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, r.body)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", r.method, r.path, err)
	}
	for k, vs := range r.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "flowd-client")
	switch {
	case r.basicUser != "":
		req.SetBasicAuth(r.basicUser, r.basicPass)
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// sendAny performs r and returns the response whatever its status; the caller closes its body.
func (c *Client) sendAny(ctx context.Context, r request) (*http.Response, error) {
	req, err := c.newRequest(ctx, r)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the flowd server at %s: %w", c.base, err)
	}
	return resp, nil
}

// send performs r and returns the response if its status is 2xx; otherwise it reads the body
// into an *Error and closes it. The caller closes a returned response's body.
func (c *Client) send(ctx context.Context, r request) (*http.Response, error) {
	resp, err := c.sendAny(ctx, r)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, decodeError(resp)
}

// decodeError turns a non-2xx response into an *Error.
func decodeError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var env struct {
		Error *struct {
			Code     string    `json:"code"`
			Message  string    `json:"message"`
			Problems []Problem `json:"problems"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &env) == nil && env.Error != nil && (env.Error.Code != "" || env.Error.Message != "") {
		return &Error{Status: resp.StatusCode, Code: env.Error.Code, Message: env.Error.Message, Problems: env.Error.Problems}
	}
	// Not flowd's error shape: a proxy, a wrong URL, another service.
	msg := fmt.Sprintf("server answered %s", resp.Status)
	if text := strings.TrimSpace(string(data)); text != "" {
		if len(text) > 200 {
			text = text[:200] + "…"
		}
		msg += ": " + text
	}
	msg += " (is --server the address of a flowd server?)"
	return &Error{Status: resp.StatusCode, Message: msg}
}

// do sends r and decodes a JSON answer into out (out nil: the body is discarded).
func (c *Client) do(ctx context.Context, r request, out any) error {
	resp, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("client: %s %s: decode answer: %w", r.method, r.path, err)
	}
	return nil
}

// doJSON sends in as a JSON body (in nil: no body) and decodes the answer into out.
func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) error {
	r := request{method: method, path: path}
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("client: %s %s: encode: %w", method, path, err)
		}
		r.body = bytes.NewReader(data)
		r.contentType = "application/json"
	}
	return c.do(ctx, r, out)
}

// call is doJSON for an answer that is one object: it returns the answer as a new T.
func call[T any](ctx context.Context, c *Client, method, path string, in any) (*T, error) {
	var out T
	if err := c.doJSON(ctx, method, path, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// pageQuery is the query of one page of a list: at most limit items (0: the server's default)
// before the cursor before (0: from the newest).
func pageQuery(limit int, before int64) url.Values {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if before > 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	return q
}

// p builds an API path from literal segments and escaped values: p("pipelines", name, "runs").
// Every argument is path-escaped, so a name cannot reach another route.
func p(segments ...string) string {
	var b strings.Builder
	b.WriteString("/api/v1")
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}
