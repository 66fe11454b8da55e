// Package hosttest is a recording test server that answers commit status reports like the
// code hosts do: GitHub, GitLab, Gitea, Bitbucket Cloud, Bitbucket Server and Codeup, all at
// once, each under its own prefix. It checks the path, the auth header, the state and the
// required fields as the host would, answers with the host's status code and body shapes, and
// keeps every report for the test to read.
package hosttest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// Server records the status reports it gets and answers like the hosts do.
type Server struct {
	URL string

	mu       sync.Mutex
	requests []Request
	fail     map[string]failure // by host
	tokens   map[string]string  // by host; "" = any token in the right header
	gitlab   map[string]string  // last state by project, sha and name
	nextID   int
}

type failure struct{ n, code int }

// Request is one report the server got.
type Request struct {
	Host   string // the kind it was sent to
	Method string
	Path   string // escaped, below the host's API base
	Header http.Header
	Body   map[string]any // nil when the body is not a JSON object
	Raw    []byte
	Code   int // the status code it was answered with
}

// host is one code host the server plays.
type host struct {
	kind   string
	prefix string         // below URL: the API base
	route  *regexp.Regexp // the report's path below the prefix
	states map[string]bool
	// required are the body fields the host refuses a report without.
	required []string
	// limits are the body fields' longest accepted length, in characters.
	limits map[string]int
	// ok is the answer to an accepted report.
	ok func(s *Server, r *http.Request, body map[string]any) (int, any)
	// fail is the host's error body for code with message msg.
	fail func(code int, msg string) any
	// authorized reports whether the request carries token (any token when "").
	authorized func(r *http.Request, token string) bool
}

const sha = `([0-9a-f]{40}|[0-9a-f]{64})`

func set(v ...string) map[string]bool {
	m := map[string]bool{}
	for _, s := range v {
		m[s] = true
	}
	return m
}

// hosts are the code hosts the server plays, longest prefix first so /bitbucket_server is not
// taken for /bitbucket.
var hosts = []*host{
	{
		kind: "bitbucket_server", prefix: "/bitbucket_server",
		route:    regexp.MustCompile(`^/rest/api/latest/projects/[^/]+/repos/[^/]+/commits/` + sha + `/builds$`),
		states:   set("INPROGRESS", "SUCCESSFUL", "FAILED", "CANCELLED", "UNKNOWN"),
		required: []string{"key", "state", "url"},
		limits:   map[string]int{"key": 255, "name": 255},
		ok: func(*Server, *http.Request, map[string]any) (int, any) {
			return http.StatusNoContent, nil
		},
		fail: func(_ int, msg string) any {
			return map[string]any{"errors": []any{map[string]any{"context": nil, "message": msg, "exceptionName": nil}}}
		},
		authorized: basicOrBearer,
	},
	{
		kind: "bitbucket", prefix: "/bitbucket/2.0",
		route:    regexp.MustCompile(`^/repositories/[^/]+/[^/]+/commit/` + sha + `/statuses/build/?$`),
		states:   set("INPROGRESS", "SUCCESSFUL", "FAILED", "STOPPED"),
		required: []string{"key", "state", "url"},
		limits:   map[string]int{"key": 40, "name": 255},
		ok: func(s *Server, _ *http.Request, b map[string]any) (int, any) {
			now := s.now()
			return http.StatusCreated, map[string]any{
				"type": "build", "uuid": fmt.Sprintf("{%08d-0000-4000-8000-000000000000}", s.id()),
				"key": b["key"], "state": b["state"], "name": b["name"], "description": b["description"],
				"url": b["url"], "refname": b["refname"], "created_on": now, "updated_on": now,
			}
		},
		fail: func(_ int, msg string) any {
			return map[string]any{"type": "error", "error": map[string]any{"message": msg}}
		},
		authorized: basicOrBearer,
	},
	{
		kind: "github", prefix: "/github",
		route:    regexp.MustCompile(`^/repos/[^/]+/[^/]+/statuses/` + sha + `$`),
		states:   set("error", "failure", "pending", "success"),
		required: []string{"state"},
		limits:   map[string]int{"description": 140},
		ok: func(s *Server, r *http.Request, b map[string]any) (int, any) {
			id, now := s.id(), s.now()
			return http.StatusCreated, map[string]any{
				"url": "https://api.github.com" + r.URL.EscapedPath(), "id": id, "node_id": fmt.Sprintf("SC_%d", id),
				"state": b["state"], "description": b["description"], "target_url": b["target_url"],
				"context": or(b["context"], "default"), "created_at": now, "updated_at": now,
			}
		},
		fail: func(code int, msg string) any {
			return map[string]any{"message": msg, "documentation_url": "https://docs.github.com/rest/commits/statuses#create-a-commit-status", "status": fmt.Sprint(code)}
		},
		authorized: func(r *http.Request, token string) bool {
			return headerToken(r.Header.Get("Authorization"), []string{"Bearer ", "token "}, token)
		},
	},
	{
		kind: "gitlab", prefix: "/gitlab/api/v4",
		route:    regexp.MustCompile(`^/projects/[^/]+/statuses/` + sha + `$`),
		states:   set("pending", "running", "success", "failed", "canceled", "skipped"),
		required: []string{"state"},
		limits:   map[string]int{"description": 255},
		ok:       gitlabOK,
		fail: func(_ int, msg string) any {
			return map[string]any{"message": msg}
		},
		authorized: func(r *http.Request, token string) bool {
			if v := r.Header.Get("PRIVATE-TOKEN"); v != "" {
				return token == "" || v == token
			}
			return headerToken(r.Header.Get("Authorization"), []string{"Bearer "}, token)
		},
	},
	{
		kind: "gitea", prefix: "/gitea/api/v1",
		route:    regexp.MustCompile(`^/repos/[^/]+/[^/]+/statuses/` + sha + `$`),
		states:   set("pending", "success", "error", "failure", "warning"),
		required: []string{"state"},
		ok: func(s *Server, r *http.Request, b map[string]any) (int, any) {
			now := s.now()
			return http.StatusCreated, map[string]any{
				"id": s.id(), "status": b["state"], "target_url": b["target_url"], "description": b["description"],
				"url": "https://gitea.example" + r.URL.EscapedPath(), "context": b["context"], "created_at": now, "updated_at": now,
			}
		},
		fail: func(_ int, msg string) any {
			return map[string]any{"message": msg, "url": "https://gitea.com/api/swagger"}
		},
		authorized: func(r *http.Request, token string) bool {
			return headerToken(r.Header.Get("Authorization"), []string{"token ", "Bearer "}, token)
		},
	},
	{
		kind: "codeup", prefix: "/codeup",
		route:    regexp.MustCompile(`^/oapi/v1/codeup/organizations/[^/]+/repositories/[^/]+/commits/` + sha + `/statuses$`),
		states:   set("error", "failure", "pending", "success"),
		required: []string{"state"},
		limits:   map[string]int{"context": 50, "description": 3000},
		ok: func(s *Server, r *http.Request, b map[string]any) (int, any) {
			now := s.now()
			m := codeupRoute.FindStringSubmatch(r.URL.EscapedPath())
			return http.StatusOK, map[string]any{
				"id": s.id(), "sha": m[1], "context": or(b["context"], "default"), "state": b["state"],
				"description": b["description"], "targetUrl": b["targetUrl"], "createdAt": now, "updatedAt": now,
				"author": map[string]any{"id": "60d54f3daccf2bbd6659f3ad", "name": "flowd", "username": "flowd"},
			}
		},
		fail: func(code int, msg string) any {
			return map[string]any{"errorCode": codeupCodes[code], "errorMessage": msg}
		},
		authorized: func(r *http.Request, token string) bool {
			v := r.Header.Get("x-yunxiao-token")
			return v != "" && (token == "" || v == token)
		},
	},
}

var (
	codeupRoute = regexp.MustCompile(`/commits/` + sha + `/statuses$`)
	gitlabRoute = regexp.MustCompile(`/statuses/` + sha + `$`)
)

// codeupCodes are the Yunxiao OpenAPI's error codes by HTTP status (its error code centre).
var codeupCodes = map[int]string{
	400: "BadRequest", 401: "InvalidTokenError", 403: "Forbidden", 404: "NotFound",
	429: "TooManyRequests", 500: "InternalServerError", 502: "InternalServerError", 503: "InternalServerError",
}

// messages are the hosts' words for the errors the server gives, by host and status.
var messages = map[string]map[int]string{
	"github":           {401: "Bad credentials", 404: "Not Found", 422: "Validation Failed"},
	"gitlab":           {401: "401 Unauthorized", 404: "404 Not Found"},
	"gitea":            {401: "token is required", 404: "Not Found"},
	"bitbucket":        {401: "Unauthorized", 404: "Resource not found"},
	"bitbucket_server": {401: "Authentication failed. Please check your credentials and try again.", 404: "Not Found"},
	"codeup":           {401: "Token is invalid", 404: "Not Found", 429: "Too many requests", 500: "An internal error occurs"},
}

func messageFor(kind string, code int) string {
	if m := messages[kind][code]; m != "" {
		return m
	}
	return http.StatusText(code)
}

// New starts a Server; it is closed at t's cleanup.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{fail: map[string]failure{}, tokens: map[string]string{}, gitlab: map[string]string{}}
	ts := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(ts.Close)
	s.URL = ts.URL
	return s
}

// API is the API base URL of host, as Target.API takes it; "" for an unknown host.
func (s *Server) API(kind string) string {
	for _, h := range hosts {
		if h.kind == kind {
			return s.URL + h.prefix
		}
	}
	return ""
}

// Requests returns a copy of the reports got so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Header = r.Header.Clone()
		r.Raw = append([]byte(nil), r.Raw...)
		out[i] = r
	}
	return out
}

// FailNext makes the next n reports to host get code, with the host's error body for it.
func (s *Server) FailNext(kind string, n, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		delete(s.fail, kind)
		return
	}
	s.fail[kind] = failure{n: n, code: code}
}

// SetToken makes reports to host without token, in the host's auth header, get the host's
// 401 answer. Until it is called any token in the right header is accepted. Bitbucket's
// user:password tokens are compared after Basic decoding.
func (s *Server) SetToken(kind, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[kind] = token
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	p := r.URL.EscapedPath()
	var h *host
	for _, c := range hosts {
		if strings.HasPrefix(p, c.prefix+"/") {
			h = c
			break
		}
	}
	if h == nil {
		http.NotFound(w, r)
		return
	}
	rec := Request{Host: h.kind, Method: r.Method, Path: strings.TrimPrefix(p, h.prefix), Header: r.Header.Clone(), Raw: raw}
	_ = json.Unmarshal(raw, &rec.Body)
	code, body := s.answer(h, r, rec)
	rec.Code = code

	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.mu.Unlock()

	if code == http.StatusNoContent {
		w.WriteHeader(code)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

// answer decides the host's answer to one report: its status code and body.
func (s *Server) answer(h *host, r *http.Request, rec Request) (int, any) {
	if r.Method != http.MethodPost || !h.route.MatchString(rec.Path) {
		return http.StatusNotFound, h.fail(http.StatusNotFound, messageFor(h.kind, http.StatusNotFound))
	}
	s.mu.Lock()
	f, failing := s.fail[h.kind]
	if failing {
		if f.n--; f.n > 0 {
			s.fail[h.kind] = f
		} else {
			delete(s.fail, h.kind)
		}
	}
	token := s.tokens[h.kind]
	s.mu.Unlock()
	if failing {
		return f.code, h.fail(f.code, messageFor(h.kind, f.code))
	}
	if !h.authorized(r, token) {
		return http.StatusUnauthorized, h.fail(http.StatusUnauthorized, messageFor(h.kind, http.StatusUnauthorized))
	}
	if msg := h.invalid(rec.Body); msg != "" {
		code := http.StatusBadRequest
		if h.kind == "github" || h.kind == "gitea" {
			code = http.StatusUnprocessableEntity
		}
		if h.kind == "github" {
			return code, map[string]any{
				"message": "Validation Failed", "documentation_url": "https://docs.github.com/rest/commits/statuses#create-a-commit-status",
				"errors": []any{map[string]any{"resource": "Status", "code": "custom", "message": msg}},
			}
		}
		if h.kind == "gitlab" {
			return code, map[string]any{"error": msg}
		}
		return code, h.fail(code, msg)
	}
	return h.ok(s, r, rec.Body)
}

// invalid is the host's complaint about a report's body, "" when it takes it.
func (h *host) invalid(b map[string]any) string {
	if b == nil {
		return "the body is not a JSON object"
	}
	for _, f := range h.required {
		if v, _ := b[f].(string); v == "" {
			return f + " is missing"
		}
	}
	if st, _ := b["state"].(string); !h.states[st] {
		return fmt.Sprintf("state %q is not valid", st)
	}
	for f, n := range h.limits {
		if v, _ := b[f].(string); utf8.RuneCountInString(v) > n {
			return fmt.Sprintf("%s: Ensure this value has at most %d characters (it has %d).", f, n, utf8.RuneCountInString(v))
		}
		if v, _ := b[f].(string); !utf8.ValidString(v) {
			return f + " is not valid UTF-8"
		}
	}
	return ""
}

// gitlabOK keeps the last state of each status and, like GitLab, refuses to move a pending or
// running status to the state it already has.
func gitlabOK(s *Server, r *http.Request, b map[string]any) (int, any) {
	state, _ := b["state"].(string)
	name, _ := b["name"].(string)
	if name == "" {
		name, _ = b["context"].(string)
	}
	if name == "" {
		name = "default"
	}
	key := r.URL.EscapedPath() + " " + name
	s.mu.Lock()
	last := s.gitlab[key]
	if !(last == state && (state == "pending" || state == "running")) {
		s.gitlab[key] = state
	}
	s.mu.Unlock()
	switch {
	case last == "running" && state == "running":
		return http.StatusBadRequest, map[string]any{"message": `Cannot transition status via :run from :running (Reason(s): Status cannot transition via "run".)`}
	case last == "pending" && state == "pending":
		return http.StatusBadRequest, map[string]any{"message": `Cannot transition status via :enqueue from :pending (Reason(s): Status cannot transition via "enqueue".)`}
	}
	m := gitlabRoute.FindStringSubmatch(r.URL.EscapedPath())
	now := s.now()
	return http.StatusCreated, map[string]any{
		"id": s.id(), "sha": m[1], "ref": b["ref"], "status": state, "name": name,
		"target_url": b["target_url"], "description": b["description"], "created_at": now,
		"started_at": nil, "finished_at": nil, "allow_failure": false, "coverage": nil,
		"author": map[string]any{"id": 1, "username": "flowd", "name": "flowd", "state": "active"},
	}
}

func (s *Server) id() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	return s.nextID
}

func (s *Server) now() string { return time.Now().UTC().Format(time.RFC3339) }

func or(v any, def string) any {
	if str, _ := v.(string); str != "" {
		return str
	}
	return def
}

// headerToken reports whether an Authorization value has one of schemes and token (any token
// when "").
func headerToken(v string, schemes []string, token string) bool {
	for _, sc := range schemes {
		if rest, ok := strings.CutPrefix(v, sc); ok && rest != "" {
			return token == "" || rest == token
		}
	}
	return false
}

// basicOrBearer is Bitbucket's auth: Basic user:password or a Bearer access token.
func basicOrBearer(r *http.Request, token string) bool {
	v := r.Header.Get("Authorization")
	if rest, ok := strings.CutPrefix(v, "Basic "); ok {
		dec, err := base64.StdEncoding.DecodeString(rest)
		return err == nil && strings.Contains(string(dec), ":") && (token == "" || string(dec) == token)
	}
	// a user:password token is only ever sent as Basic
	return !strings.Contains(token, ":") && headerToken(v, []string{"Bearer "}, token)
}
