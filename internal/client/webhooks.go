package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// WebhookTrigger is a pipeline's webhook trigger (docs/api.md, "Webhook trigger").
type WebhookTrigger struct {
	Enabled bool `json:"enabled"`
	// URL is the secret URL that starts runs; nil when the trigger was never enabled or the
	// caller is not an admin of the pipeline (only they see it).
	URL       *string    `json:"url"`
	EnabledBy string     `json:"enabled_by"` // the owner: webhook runs run as this user; "" if never enabled
	EnabledAt *time.Time `json:"enabled_at"`
	HasSecret bool       `json:"has_secret"` // callers must sign their requests
	// RequireTimestamp: signed requests must carry a fresh X-Flowd-Timestamp under the signature.
	RequireTimestamp bool   `json:"require_timestamp"`
	OwnerCanRun      bool   `json:"owner_can_run"` // whether the owner may still run the pipeline
	OwnerProblem     string `json:"owner_problem"` // when not: why, and what to do
}

// WebhookAuditEntry is one change to a pipeline's webhook trigger.
type WebhookAuditEntry struct {
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"` // e.g. "enable", "disable", "rotate", "secret"
	Detail string    `json:"detail"`
}

// RunRef is the run a webhook delivery started.
type RunRef struct {
	ID     int64  `json:"id"`
	Number int64  `json:"number"`
	URL    string `json:"url"`     // the run's web page
	APIURL string `json:"api_url"` // the run in the API
	Status string `json:"status"`
}

// TraceStep is one step of a webhook's decision: "token", "enabled", "signature",
// "permission", "variables", "run". A trace ends at the step that refused.
type TraceStep struct {
	Step   string `json:"step"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// ErrorBody is the "error" of a webhook answer that refused the delivery.
type ErrorBody struct {
	Code     string    `json:"code"`
	Message  string    `json:"message"`
	Problems []Problem `json:"problems,omitempty"`
}

// WebhookAnswer is the JSON answer of the webhook (POST /pipeline/webhook/{token}), of a
// redelivery or of a dry run. Exactly one of Run, Skipped, Error or WouldStart/DryRun tells the
// outcome; Trace tells how it was reached.
type WebhookAnswer struct {
	Run        *RunRef           `json:"run"`
	Ignored    []string          `json:"ignored"` // keys the pipeline does not declare
	Skipped    *string           `json:"skipped"` // why no run was started (ping, filter, ref)
	Delivery   int64             `json:"delivery"`
	Trace      []TraceStep       `json:"trace"`
	DryRun     bool              `json:"dry_run"`
	WouldStart bool              `json:"would_start"`
	Variables  map[string]string `json:"variables"` // dry run: the run's variables, secrets as ***
	Replayed   bool              `json:"replayed"`  // an Idempotency-Key repeated the first answer
	Error      *ErrorBody        `json:"error"`
	// Queue is how far behind flowd is, in a 429 pipeline_queue_full or 503 server_queue_full.
	Queue *QueueAnswer `json:"queue,omitempty"`
	// RetryAfter is the answer's Retry-After (a refusal over a queue bound or a rate); 0 if none.
	RetryAfter time.Duration `json:"-"`
}

// QueueAnswer is the "queue" of a webhook answer refused over a queue bound: the queue and the
// bound it is over (docs/api.md, "Backpressure").
type QueueAnswer struct {
	Scope      string `json:"scope"`   // "pipeline" (429) or "server" (503)
	Queued     int64  `json:"queued"`  // runs waiting to start
	Seconds    *int64 `json:"seconds"` // their work at the recent rate; nil when no run ended lately
	MaxRuns    int    `json:"max_runs"`
	MaxSeconds int    `json:"max_seconds"`
}

// WebhookGet returns the webhook trigger of a pipeline; one never enabled has Enabled false
// and EnabledBy "".
func (c *Client) WebhookGet(ctx context.Context, pipeline string) (*WebhookTrigger, error) {
	return c.webhookDo(ctx, http.MethodGet, "", pipeline, nil)
}

// WebhookEnable enables the webhook trigger of a pipeline and makes the caller its owner. secret
// nil keeps the signature secret as it is, "" removes it, anything else replaces it.
// Re-enabling keeps the URL.
func (c *Client) WebhookEnable(ctx context.Context, pipeline string, secret *string) (*WebhookTrigger, error) {
	return c.WebhookEnableWith(ctx, pipeline, WebhookSettings{Secret: secret})
}

// WebhookSettings are what enabling a webhook trigger may change; nil fields keep the setting.
type WebhookSettings struct {
	Secret           *string `json:"secret,omitempty"`            // "" removes the secret
	RequireTimestamp *bool   `json:"require_timestamp,omitempty"` // signed requests need X-Flowd-Timestamp
}

// WebhookEnableWith is WebhookEnable with every setting.
func (c *Client) WebhookEnableWith(ctx context.Context, pipeline string, s WebhookSettings) (*WebhookTrigger, error) {
	return c.webhookDo(ctx, http.MethodPost, "enable", pipeline, s)
}

// WebhookDisable disables the webhook trigger; its URL answers 404 until it is enabled again.
func (c *Client) WebhookDisable(ctx context.Context, pipeline string) (*WebhookTrigger, error) {
	return c.webhookDo(ctx, http.MethodPost, "disable", pipeline, nil)
}

// WebhookRotate gives the webhook trigger a new URL; the old one stops working at once. A
// trigger never enabled is a 409 *Error.
func (c *Client) WebhookRotate(ctx context.Context, pipeline string) (*WebhookTrigger, error) {
	return c.webhookDo(ctx, http.MethodPost, "rotate", pipeline, nil)
}

func (c *Client) webhookDo(ctx context.Context, method, action, pipeline string, in any) (*WebhookTrigger, error) {
	path := p("pipelines", pipeline, "triggers", "webhook")
	if action != "" {
		path = p("pipelines", pipeline, "triggers", "webhook", action)
	}
	return call[WebhookTrigger](ctx, c, method, path, in)
}

// WebhookAudit returns the changes to a pipeline's webhook trigger, newest first.
func (c *Client) WebhookAudit(ctx context.Context, pipeline string) ([]WebhookAuditEntry, error) {
	var out struct {
		Audit []WebhookAuditEntry `json:"audit"`
	}
	if err := c.doJSON(ctx, http.MethodGet, p("pipelines", pipeline, "triggers", "webhook", "audit"), nil, &out); err != nil {
		return nil, err
	}
	return out.Audit, nil
}

// WebhookDryRun sends body (with contentType; "" sends none) through the pipeline's webhook as
// a caller would, without starting anything, and returns the HTTP status and the answer: on
// success WouldStart and Variables; when the webhook would refuse, its error status (e.g. 422)
// with Error and the Trace up to the refusing step. Only failures of the API call itself (no
// such pipeline, not allowed, unreachable) are errors. The webhook checks the signature if the
// trigger has a secret: use WebhookDryRunHeaders to send one.
func (c *Client) WebhookDryRun(ctx context.Context, pipeline, contentType string, body []byte) (int, *WebhookAnswer, error) {
	h := http.Header{}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return c.WebhookDryRunHeaders(ctx, pipeline, h, body)
}

// WebhookDryRunHeaders is WebhookDryRun with the caller's headers, e.g. Content-Type,
// X-Hub-Signature-256 or a Git host's event header. Authorization is the client's own.
func (c *Client) WebhookDryRunHeaders(ctx context.Context, pipeline string, header http.Header, body []byte) (int, *WebhookAnswer, error) {
	r := request{method: http.MethodPost, path: p("pipelines", pipeline, "triggers", "webhook", "dry-run"), header: header, body: bytes.NewReader(body)}
	return c.webhookAnswer(ctx, r)
}

// webhookAnswer sends r and decodes a webhook answer of any status. A non-2xx answer without a
// "trace" did not come from the webhook's decision (the API's own 401/403/404, a proxy…) and is
// returned as *Error.
func (c *Client) webhookAnswer(ctx context.Context, r request) (int, *WebhookAnswer, error) {
	resp, err := c.sendAny(ctx, r)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("client: %s %s: read answer: %w", r.method, r.path, err)
	}
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	var probe struct {
		Trace json.RawMessage `json:"trace"`
	}
	if !ok && (json.Unmarshal(data, &probe) != nil || len(probe.Trace) == 0 || string(probe.Trace) == "null") {
		resp.Body = io.NopCloser(bytes.NewReader(data))
		return 0, nil, decodeError(resp)
	}
	var out WebhookAnswer
	if err := json.Unmarshal(data, &out); err != nil {
		return 0, nil, fmt.Errorf("client: %s %s: decode answer: %w", r.method, r.path, err)
	}
	out.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	return resp.StatusCode, &out, nil
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date (then the time from now until
// it). 0 when it is absent, unreadable or already past.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, math.MaxInt64/int64(time.Second))) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}
