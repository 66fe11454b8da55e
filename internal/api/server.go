// Package api serves flowd's REST API v1 (docs/api.md is its contract) with the standard
// library's http.ServeMux: every route is listed in Server.Handler, and every handler is a
// method of Server, which holds the dependencies.
//
// Every endpoint authenticates (Bearer API token; HTTP Basic only to create a token) and checks
// the caller's role on the pipeline it touches through pipelineAccess or runAccess: 401 for no
// or a bad token, 404 for a pipeline the caller is no member of, 403 for a role too low.
// Errors are JSON {"error":{"code","message"}} with a message a person can act on; store
// failures never leak their internals.
//
// The one route without sign-in is the webhook, POST /pipeline/webhook/{token}: the token is
// the credential, and trigger.Webhooks decides the delivery. Its path is never logged with the
// token in it (logPath).
package api

import (
	"errors"
	"fmt"
	"github.com/flowd/flowd/internal/auth"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/flowd/flowd/internal/metrics"
	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/secret"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/trigger"
)

// DefaultMaxBody is the body limit when Server.MaxBody is 0.
const DefaultMaxBody = 1 << 20

// Canceler stops the processes of a running run; the scheduler implements it.
type Canceler interface {
	Cancel(runID int64)
}

// Server is the API. Its fields are set once before Handler is called and not changed after.
type Server struct {
	Store    *store.Store
	Triggers *trigger.Service
	Box      *secret.Box // seals pipeline secrets
	// LogChanged returns a channel closed when the run's log or status changes next; nil makes
	// followers poll the store every second.
	LogChanged func(runID int64) <-chan struct{}
	Canceler   Canceler         // nil: the scheduler notices cancel_requested by itself
	Metrics    *metrics.Metrics // nil: no /metrics and no request metrics
	// MetricsToken, when set, is a bearer token that may read /metrics (as may a global
	// admin's API token); see metrics and MetricsHandler.
	MetricsToken string
	// ExternalURL is the base URL users reach flowd at, without a trailing slash, for links.
	ExternalURL string
	MaxBody     int64 // request body limit in bytes; 0 = DefaultMaxBody
	Logger      *slog.Logger
	// PasswordCost is the bcrypt cost of passwords set through the API; 0 = auth.BcryptCost.
	// Tests lower it.
	PasswordCost int
	// WebhookRate and WebhookBurst are each webhook trigger's token bucket for requests to its
	// URL: requests per second refilled, and how many may come at once. WebhookRate 0 = no
	// limit.
	WebhookRate  float64
	WebhookBurst int
	// WebhookLimiter, when set, is the per-trigger rate instead of buckets in this process
	// built from WebhookRate and WebhookBurst: trigger.SharedLimiter when servers share the
	// database.
	WebhookLimiter trigger.RateLimiter
	// Queue bounds the queued runs a webhook delivery may add to (the server's and each
	// pipeline's); nil = unbounded. The pipeline JSON shows the pipeline's queue from it.
	Queue *trigger.Backlog
	// MaxWebhooks bounds the webhook requests handled at once (0 = DefaultMaxWebhooks), 1/4 of
	// them for one trigger; as many more may wait up to a second for a slot. Others are
	// answered 503 with Retry-After: 1 before anything is read or stored. Unknown tokens are
	// answered 404 without a slot.
	MaxWebhooks int
	// SignIn throttles password guessing on POST /api/v1/tokens and bounds the password checks
	// running at once (shared with the web sign-in); nil = no throttle, no bound.
	SignIn *auth.Throttle
	// WebhookBodyTimeout bounds how long a webhook request may take to send its body once it
	// has a slot (0 = DefaultWebhookBodyTimeout), so a slow sender cannot hold a slot.
	WebhookBodyTimeout time.Duration
	// RequireTrusted is set when steps run as the server's own OS user (no step users): then
	// only trusted pipelines may be saved by non-admins or run (see trust.go).
	RequireTrusted bool
	// Policy is what this server allows of the pipelines saved on it (--allow-host-jobs,
	// --default-image, --container-max-cpus, --container-max-memory): a create, an update or a
	// validate of a definition it refuses is answered 422 invalid_pipeline with each problem at
	// its line and column. The zero Policy allows everything.
	Policy pipeline.Policy

	// AgentWork wakes the claims of agents waiting here (see Signal): whatever wakes the
	// scheduler must wake it too. nil: a waiting claim looks for work every few seconds.
	AgentWork *Signal
	// WorkDone, when set, is called when an agent's job ended (or a job an agent claimed could
	// not be handed out): it wakes this server's scheduler, AgentWork and the other servers,
	// since the next stage may be ready. nil wakes AgentWork only.
	WorkDone func()
	// LogNotify, when set, is called when an agent's call changed a run's log or status, to
	// wake its followers here and on the other servers (logs.Appender.Notify).
	LogNotify func(runID int64)
	// LeaseTTL is the lease of the attempts agents claim; 0 = store.DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Stopping, when set, is closed as the server begins to stop: claims waiting for work
	// answer 204 at once instead of holding the shutdown up for their wait.
	Stopping <-chan struct{}

	webhooksOnce sync.Once
	webhooksSvc  *trigger.Webhooks // see webhooks()
	admission    *admission        // webhook slots, built with webhooksSvc
	admitted     func()            // tests: called once a webhook has its slot

	liveOnce sync.Once
	liveHub  *liveHub // see live()
}

// Handler returns the API's routes, each with the request metrics, body limit and panic
// recovery around it.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()

	mux.HandleFunc("POST /api/v1/tokens", s.tokenCreate)
	mux.HandleFunc("GET /api/v1/tokens", s.tokenList)
	mux.HandleFunc("DELETE /api/v1/tokens/{id}", s.tokenDelete)

	mux.HandleFunc("GET /api/v1/user", s.userMe)
	mux.HandleFunc("PUT /api/v1/user/password", s.userPassword)
	mux.HandleFunc("GET /api/v1/users", s.userList)
	mux.HandleFunc("POST /api/v1/users", s.userCreate)
	mux.HandleFunc("PATCH /api/v1/users/{name}", s.userUpdate)
	mux.HandleFunc("DELETE /api/v1/users/{name}", s.userDelete)

	mux.HandleFunc("GET /api/v1/nodes", s.nodeList)
	mux.HandleFunc("GET /api/v1/events", s.events)

	mux.HandleFunc("GET /api/v1/pipelines", s.pipelineList)
	mux.HandleFunc("POST /api/v1/pipelines", s.pipelineCreate)
	mux.HandleFunc("POST /api/v1/pipelines/validate", s.pipelineValidate)
	mux.HandleFunc("GET /api/v1/pipelines/{name}", s.pipelineGet)
	mux.HandleFunc("PUT /api/v1/pipelines/{name}", s.pipelineUpdate)
	mux.HandleFunc("DELETE /api/v1/pipelines/{name}", s.pipelineDelete)
	mux.HandleFunc("POST /api/v1/pipelines/{name}/trust", s.pipelineTrust(true))
	mux.HandleFunc("POST /api/v1/pipelines/{name}/untrust", s.pipelineTrust(false))
	mux.HandleFunc("GET /api/v1/pipelines/{name}/revisions", s.revisionList)
	mux.HandleFunc("GET /api/v1/pipelines/{name}/revisions/{rev}", s.revisionGet)
	mux.HandleFunc("POST /api/v1/pipelines/{name}/revisions/{rev}/restore", s.revisionRestore)

	mux.HandleFunc("GET /api/v1/pipelines/{name}/members", s.memberList)
	mux.HandleFunc("PUT /api/v1/pipelines/{name}/members/{user}", s.memberSet)
	mux.HandleFunc("DELETE /api/v1/pipelines/{name}/members/{user}", s.memberDelete)

	mux.HandleFunc("POST /api/v1/pipelines/{name}/runs", s.runCreate)
	mux.HandleFunc("GET /api/v1/pipelines/{name}/runs", s.runList)
	mux.HandleFunc("GET /api/v1/pipelines/{name}/schedules", s.scheduleList)
	mux.HandleFunc("GET /api/v1/runs/{id}", s.runGet)
	mux.HandleFunc("GET /api/v1/runs/{id}/log", s.runLog)
	mux.HandleFunc("GET /api/v1/runs/{id}/notifications", s.runNotifications)
	mux.HandleFunc("GET /api/v1/runs/{id}/commit-status", s.runCommitStatus)
	mux.HandleFunc("POST /api/v1/runs/{id}/cancel", s.runCancel)

	mux.HandleFunc("GET /api/v1/pipelines/{name}/triggers/webhook", s.webhookGet)
	mux.HandleFunc("POST /api/v1/pipelines/{name}/triggers/webhook/enable", s.webhookEnable)
	mux.HandleFunc("POST /api/v1/pipelines/{name}/triggers/webhook/disable", s.webhookDisable)
	mux.HandleFunc("POST /api/v1/pipelines/{name}/triggers/webhook/rotate", s.webhookRotate)
	mux.HandleFunc("GET /api/v1/pipelines/{name}/triggers/webhook/audit", s.webhookAudit)
	mux.HandleFunc("POST /api/v1/pipelines/{name}/triggers/webhook/dry-run", s.webhookDryRun)
	mux.HandleFunc("GET /api/v1/pipelines/{name}/deliveries", s.deliveryList)
	mux.HandleFunc("GET /api/v1/deliveries/{id}", s.deliveryGet)
	mux.HandleFunc("POST /api/v1/deliveries/{id}/redeliver", s.deliveryRedeliver)
	mux.HandleFunc("POST /pipeline/webhook/{token}", s.webhookDeliver)

	s.agentRoutes(mux)

	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /metrics", s.metrics)

	var h http.Handler = s.unmatched(mux)
	h = s.limitBody(h)
	h = s.recoverPanics(h)
	return s.Metrics.Middleware(h)
}

// unmatched answers requests no route takes with a JSON 404 or 405 instead of the mux's text.
func (s *Server) unmatched(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		probe := &statusProbe{header: w.Header()}
		h.ServeHTTP(probe, r) // sets Allow for a 405
		if probe.status == http.StatusMethodNotAllowed {
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
				fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, w.Header().Get("Allow")))
			return
		}
		writeError(w, http.StatusNotFound, "not_found",
			fmt.Sprintf("no such endpoint: %s %s (see docs/api.md)", r.Method, r.URL.Path))
	})
}

// statusProbe records the status a handler writes and discards its body.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header { return p.header }
func (p *statusProbe) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }

// limitBody caps every request body at MaxBody; reading past it fails with *http.MaxBytesError,
// which readBody turns into 413. The webhook routes read their bodies themselves (ownBodyLimit),
// since an oversized delivery is recorded, not just refused.
func (s *Server) limitBody(next http.Handler) http.Handler {
	limit := s.maxBody()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ownBodyLimit(r) {
			next.ServeHTTP(w, r)
			return
		}
		if r.ContentLength > limit {
			writeError(w, http.StatusRequestEntityTooLarge, "payload_too_large",
				fmt.Sprintf("the body is %d bytes, over the limit of %d bytes (--max-body)", r.ContentLength, limit))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

// recoverPanics logs a handler's panic with its stack and answers 500 if nothing was sent yet.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &trackingWriter{ResponseWriter: w}
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if err, ok := p.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(p)
			}
			s.logger().Error("api: handler panicked", "method", r.Method, "path", logPath(r),
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if !tw.wrote {
				writeError(w, http.StatusInternalServerError, "internal",
					"the server failed to answer this request; it was logged — try again or tell the administrator")
			}
		}()
		next.ServeHTTP(tw, r)
	})
}

// trackingWriter remembers whether anything was sent. Unwrap lets http.ResponseController
// reach the connection (Flush, deadlines) through it.
type trackingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *trackingWriter) WriteHeader(code int) {
	if code >= 200 {
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *trackingWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *trackingWriter) Flush() {
	w.wrote = true
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *trackingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}
