package api

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/trigger"
	"github.com/flowd/flowd/internal/webhook"
)

// webhookPath is where webhook URLs live: webhookPath + token.
const webhookPath = "/pipeline/webhook/"

// limiterKeys bounds the rate limiter's memory: one bucket per trigger that was called lately.
const limiterKeys = 10000

// DefaultWebhookBodyTimeout is how long a webhook request may take to send its body.
const DefaultWebhookBodyTimeout = 10 * time.Second

// webhooks returns the delivery service, built once from the Server's fields.
func (s *Server) webhooks() *trigger.Webhooks {
	s.webhooksOnce.Do(func() {
		s.admission = newAdmission(cmp.Or(max(s.MaxWebhooks, 0), DefaultMaxWebhooks))
		lim := s.WebhookLimiter
		if lim == nil && s.WebhookRate > 0 {
			lim = webhook.NewLimiter(s.WebhookRate, max(s.WebhookBurst, 1), limiterKeys)
		}
		s.webhooksSvc = &trigger.Webhooks{
			Store:   s.Store,
			Runs:    s.Triggers,
			Box:     s.Box,
			Limiter: lim,
			Queue:   s.Queue,
			MaxBody: s.maxBody(),
			RunURL:  s.runPageURL,
			APIURL:  s.runAPIURL,
			Status:  outcomeStatus,
			Logger:  s.logger(),
		}
	})
	return s.webhooksSvc
}

func (s *Server) maxBody() int64 {
	if s.MaxBody <= 0 {
		return DefaultMaxBody
	}
	return s.MaxBody
}

// ownBodyLimit reports whether the route reads its body itself (one byte over the limit, to
// tell an oversized body from a full one and record it): the webhook and its dry run; and the
// agent protocol's calls, whose bodies (a log PUT: up to 1 MiB) agentAuth bounds.
func ownBodyLimit(r *http.Request) bool {
	p := r.URL.Path
	return strings.HasPrefix(p, webhookPath) || strings.HasPrefix(p, agentPrefix) ||
		(strings.HasPrefix(p, "/api/v1/pipelines/") && strings.HasSuffix(p, "/triggers/webhook/dry-run"))
}

// logPath is r's path for logs: a webhook URL's token is a secret and never logged.
func logPath(r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, webhookPath) {
		return webhookPath + "{token}"
	}
	return r.URL.Path
}

// readWebhookBody reads up to the limit and one byte more; truncated says the body was longer.
func (s *Server) readWebhookBody(r *http.Request) (body []byte, truncated bool, err error) {
	limit := s.maxBody()
	body, err = io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, false, err
	}
	return body, int64(len(body)) > limit, nil
}

// webhookDeliver: POST /pipeline/webhook/{token} (the token is the credential) → the webhook
// answer of docs/api.md. ?dry_run=1 decides everything and starts nothing.
//
// An unknown token is answered at once; at most MaxWebhooks requests are handled at once, at
// most 1/4 of them for one trigger; see admit.
func (s *Server) webhookDeliver(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	svc := s.webhooks()
	release, ok := s.admit(w, r, start)
	if !ok {
		return
	}
	defer release()
	if s.admitted != nil {
		s.admitted()
	}
	timeout := s.WebhookBodyTimeout
	if timeout <= 0 {
		timeout = DefaultWebhookBodyTimeout
	}
	// A slow sender may not hold a slot: the body must arrive within timeout.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout))
	body, truncated, err := s.readWebhookBody(r)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			writeError(w, http.StatusRequestTimeout, "request_timeout",
				fmt.Sprintf("the request body did not arrive within %v; nothing was accepted — send it again", timeout))
			return
		}
		// The caller went away or sent a broken body; nothing can be decided.
		s.logger().Debug("api: webhook body unreadable", "err", err)
		writeError(w, http.StatusBadRequest, "bad_request", "could not read the request body; send it again")
		return
	}
	dry := false
	switch strings.ToLower(r.URL.Query().Get("dry_run")) {
	case "1", "true", "yes":
		dry = true
	}
	out := svc.Deliver(r.Context(), trigger.Incoming{
		Token:          r.PathValue("token"),
		Headers:        r.Header,
		Body:           body,
		BodyTruncated:  truncated,
		RemoteAddr:     remoteHost(r),
		DryRun:         dry,
		IdempotencyKey: idempotencyKey(r.Header),
		ReceivedAt:     start,
	})
	s.writeOutcome(w, out, start)
}

// writeOutcome sends a delivery's answer with the status of its code (outcomeStatus) and counts it.
func (s *Server) writeOutcome(w http.ResponseWriter, out trigger.Outcome, start time.Time) {
	s.Metrics.WebhookDelivery(out.Pipeline, string(out.Code))
	switch out.Code {
	case trigger.CodeServerQueueFull:
		s.Metrics.QueueRefused("server")
	case trigger.CodePipelineQueueFull:
		s.Metrics.QueueRefused("pipeline")
	}
	if out.Code == trigger.CodeStarted {
		s.Metrics.WebhookRunLatency(time.Since(start))
	}
	h := w.Header()
	if out.RetryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((out.RetryAfter+time.Second-1)/time.Second), 10))
	}
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(outcomeStatus(out.Code))
	_, _ = w.Write(append(out.Body, '\n'))
}

// remoteHost is the caller's address without the port.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// deliveryIDHeaders are the Git hosts' delivery id headers, which DESIGN.md treats like an
// Idempotency-Key (a host's "redeliver" button sends the same id again).
var deliveryIDHeaders = []string{"X-GitHub-Delivery", "X-Gitlab-Event-UUID", "X-Gitea-Delivery", "X-Gogs-Delivery"}

// maxKeyLen is the longest idempotency key kept as sent; longer ones are kept as their hash.
const maxKeyLen = 200

// idempotencyKey is the request's Idempotency-Key, else a Git host's delivery id; "" = none.
func idempotencyKey(h http.Header) string {
	key := strings.TrimSpace(h.Get("Idempotency-Key"))
	if key == "" {
		for _, name := range deliveryIDHeaders {
			if v := strings.TrimSpace(h.Get(name)); v != "" {
				key = strings.ToLower(name) + ":" + v
				break
			}
		}
	}
	if len(key) > maxKeyLen {
		sum := sha256.Sum256([]byte(key))
		key = "sha256:" + hex.EncodeToString(sum[:])
	}
	return key
}

// triggerJSON is a webhook trigger as the API shows it.
type triggerJSON struct {
	Enabled   bool       `json:"enabled"`
	URL       *string    `json:"url"` // pipeline admins only
	EnabledBy *string    `json:"enabled_by"`
	EnabledAt *time.Time `json:"enabled_at"`
	HasSecret bool       `json:"has_secret"`
	// RequireTimestamp: signed requests must carry a fresh X-Flowd-Timestamp (replay protection).
	RequireTimestamp bool    `json:"require_timestamp"`
	OwnerCanRun      bool    `json:"owner_can_run"`
	OwnerProblem     *string `json:"owner_problem"`
}

// writeTrigger answers t (the zero value: never enabled) as seen by a caller with role.
func (s *Server) writeTrigger(w http.ResponseWriter, r *http.Request, t store.WebhookTrigger, role auth.Role) {
	out := triggerJSON{Enabled: t.Enabled, EnabledAt: t.EnabledAt, HasSecret: len(t.SecretSealed) > 0, RequireTimestamp: t.RequireTimestamp}
	if t.PipelineID == 0 { // never enabled
		writeJSON(w, http.StatusOK, out)
		return
	}
	if t.Owner != "" {
		owner := t.Owner
		out.EnabledBy = &owner
	}
	if role.AtLeast(auth.Admin) && len(t.TokenSealed) > 0 {
		if s.Box == nil {
			s.internalError(w, r, errors.New("api: webhook token stored but no secret key is loaded"))
			return
		}
		token, err := s.Box.Open(t.TokenSealed)
		if err != nil {
			s.internalError(w, r, fmt.Errorf("api: open the webhook token of %s: %w", t.Pipeline, err))
			return
		}
		u := s.ExternalURL + webhookPath + string(token)
		out.URL = &u
	}
	canRun, problem, err := s.webhooks().OwnerStatus(r.Context(), t)
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	out.OwnerCanRun = canRun
	if problem != "" {
		out.OwnerProblem = &problem
	}
	writeJSON(w, http.StatusOK, out)
}

// pipelineRole authenticates the caller and checks want on the pipeline {name}, returning the
// caller's effective role too.
func (s *Server) pipelineRole(w http.ResponseWriter, r *http.Request, want auth.Role) (store.Pipeline, store.User, auth.Role, bool) {
	u, ok := s.authenticate(w, r)
	if !ok {
		return store.Pipeline{}, store.User{}, auth.None, false
	}
	name := r.PathValue("name")
	p, role, ok := s.authorize(w, r, u, name, want, fmt.Sprintf("pipeline %q not found (or you are not one of its members)", name))
	return p, u, role, ok
}

// webhookGet: GET /api/v1/pipelines/{name}/triggers/webhook (viewer) → trigger; url for admins.
func (s *Server) webhookGet(w http.ResponseWriter, r *http.Request) {
	p, _, role, ok := s.pipelineRole(w, r, auth.Viewer)
	if !ok {
		return
	}
	t, err := s.Store.WebhookGet(r.Context(), p.ID)
	s.writeTriggerOrNever(w, r, t, err, role)
}

// writeTriggerOrNever answers the trigger a store call returned: t, or a trigger never
// enabled when there is none, or the store's error.
func (s *Server) writeTriggerOrNever(w http.ResponseWriter, r *http.Request, t store.WebhookTrigger, err error, role auth.Role) {
	if errors.Is(err, store.ErrNotFound) {
		s.writeTrigger(w, r, store.WebhookTrigger{}, role)
		return
	}
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	s.writeTrigger(w, r, t, role)
}

// webhookEnable: POST …/triggers/webhook/enable (admin) {"secret"?, "require_timestamp"?} →
// trigger. The first enable makes the URL; later ones keep it. The caller becomes the owner.
// "secret" absent keeps the signature secret, "" removes it, any other value sets it;
// "require_timestamp" absent keeps the setting.
func (s *Server) webhookEnable(w http.ResponseWriter, r *http.Request) {
	p, u, role, ok := s.pipelineRole(w, r, auth.Admin)
	if !ok {
		return
	}
	var in struct {
		Secret           *string `json:"secret"`
		RequireTimestamp *bool   `json:"require_timestamp"`
	}
	if !decodeJSON(w, r, &in, true) {
		return
	}
	hash, sealed, ok := s.newWebhookToken(w, r, "enable")
	if !ok {
		return
	}
	params := store.WebhookEnable{PipelineID: p.ID, OwnerID: u.ID, TokenHash: hash, TokenSealed: sealed,
		RequireTimestamp: in.RequireTimestamp}
	if in.Secret != nil {
		params.SetSecret = true
		if *in.Secret != "" {
			var err error
			if params.SecretSealed, err = s.Box.Seal([]byte(*in.Secret)); err != nil {
				s.internalError(w, r, fmt.Errorf("api: seal webhook secret: %w", err))
				return
			}
		}
	}
	t, err := s.Store.WebhookEnable(r.Context(), params)
	if err != nil {
		s.storeError(w, r, err, fmt.Sprintf("pipeline %q not found", p.Name), "")
		return
	}
	s.writeTrigger(w, r, t, role)
}

// newWebhookToken makes a webhook URL token and returns its hash and its sealed value, or
// answers 500 and returns false; verb names the action for the log ("enable", "rotate").
func (s *Server) newWebhookToken(w http.ResponseWriter, r *http.Request, verb string) (hash, sealed []byte, ok bool) {
	if s.Box == nil {
		s.internalError(w, r, errors.New("api: "+verb+" webhook: no secret key is loaded"))
		return nil, nil, false
	}
	token, hash, err := trigger.NewWebhookToken()
	if err != nil {
		s.internalError(w, r, err)
		return nil, nil, false
	}
	sealed, err = s.Box.Seal([]byte(token))
	if err != nil {
		s.internalError(w, r, fmt.Errorf("api: seal webhook token: %w", err))
		return nil, nil, false
	}
	return hash, sealed, true
}

// webhookDisable: POST …/triggers/webhook/disable (admin) → trigger; the URL answers 404 until
// the trigger is enabled again. A trigger never enabled is answered as it is.
func (s *Server) webhookDisable(w http.ResponseWriter, r *http.Request) {
	p, u, role, ok := s.pipelineRole(w, r, auth.Admin)
	if !ok {
		return
	}
	t, err := s.Store.WebhookDisable(r.Context(), p.ID, u.ID)
	s.writeTriggerOrNever(w, r, t, err, role)
}

// webhookRotate: POST …/triggers/webhook/rotate (admin) → trigger with a new URL; the old one
// stops at once. 409 when the trigger was never enabled.
func (s *Server) webhookRotate(w http.ResponseWriter, r *http.Request) {
	p, u, role, ok := s.pipelineRole(w, r, auth.Admin)
	if !ok {
		return
	}
	hash, sealed, ok := s.newWebhookToken(w, r, "rotate")
	if !ok {
		return
	}
	t, err := s.Store.WebhookRotate(r.Context(), p.ID, u.ID, hash, sealed)
	if errors.Is(err, store.ErrNotFound) {
		conflict(w, fmt.Sprintf("the webhook trigger of pipeline %q was never enabled, so it has no URL to rotate: enable it with POST /api/v1/pipelines/%s/triggers/webhook/enable", p.Name, p.Name))
		return
	}
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	s.writeTrigger(w, r, t, role)
}

// maxAuditPage is the largest page of the audit log.
const maxAuditPage = 500

// webhookAudit: GET …/triggers/webhook/audit?limit= (admin) → {"audit":[…]} newest first.
func (s *Server) webhookAudit(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.pipelineAccess(w, r, r.PathValue("name"), auth.Admin)
	if !ok {
		return
	}
	limit, ok := queryLimit(w, r, 100, maxAuditPage)
	if !ok {
		return
	}
	entries, err := s.Store.AuditList(r.Context(), p.ID, limit)
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	type entryJSON struct {
		At     time.Time `json:"at"`
		Actor  string    `json:"actor"`
		Action string    `json:"action"`
		Detail string    `json:"detail"`
	}
	out := make([]entryJSON, len(entries))
	for i, e := range entries {
		out[i] = entryJSON{At: e.At, Actor: e.Actor, Action: e.Action, Detail: e.Detail}
	}
	writeJSON(w, http.StatusOK, map[string]any{"audit": out})
}

// webhookDryRun: POST …/triggers/webhook/dry-run (developer), any body as a caller would send
// it (with its Content-Type and signature header) → the webhook's dry-run answer; nothing
// starts. The delivery is recorded as a dry run. Without any signature or token header the
// signature step is skipped (the caller is signed in); with one, it is checked as at the URL.
func (s *Server) webhookDryRun(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	p, u, ok := s.pipelineAccess(w, r, r.PathValue("name"), auth.Developer)
	if !ok {
		return
	}
	body, truncated, err := s.readWebhookBody(r)
	if err != nil {
		badRequest(w, "could not read the request body: "+err.Error())
		return
	}
	in := trigger.Incoming{
		PipelineID:    p.ID,
		Headers:       callerHeaders(r.Header),
		Body:          body,
		BodyTruncated: truncated,
		RemoteAddr:    remoteHost(r),
		DryRun:        true,
		Actor:         u.Username,
		ReceivedAt:    start,
	}
	if !hasSignatureHeader(r.Header) {
		// A signed-in developer trying a body (such as a stored delivery's, whose signature
		// header was redacted): nothing to check. A request that carries a signature or token
		// header has it checked, as the URL would (flowd webhook dry-run --sign).
		in.SkipSignature = true
		in.SkipSignatureWhy = "not checked: a dry run by " + u.Username + " without a signature header"
	}
	out := s.webhooks().Deliver(r.Context(), in)
	s.writeOutcome(w, out, start)
}

// signatureHeaders are the headers that sign a webhook request or carry its token: flowd's and
// GitHub's, and each Git host's own (docs/git-hosts.md).
var signatureHeaders = []string{
	"X-Hub-Signature-256", "X-Hub-Signature", "X-Gitlab-Token", "X-Codeup-Token",
	"X-Gitea-Signature", "X-Forgejo-Signature", "X-Gogs-Signature",
}

// hasSignatureHeader reports whether h carries any signature or token header, even an empty one.
func hasSignatureHeader(h http.Header) bool {
	for _, name := range signatureHeaders {
		if len(h.Values(name)) > 0 {
			return true
		}
	}
	return false
}

// callerHeaders are the headers of an API request without the caller's own credentials.
func callerHeaders(h http.Header) http.Header {
	c := h.Clone()
	c.Del("Authorization")
	c.Del("Cookie")
	return c
}
