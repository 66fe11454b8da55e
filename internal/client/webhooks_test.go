package client

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"
)

const triggerJSON = `{"enabled":true,"url":"http://x/pipeline/webhook/tkn","enabled_by":"alice",
"enabled_at":"2026-01-02T03:04:05Z","has_secret":true,"owner_can_run":false,
"owner_problem":"alice is disabled: disable and re-enable the trigger as an authorised user"}`

func TestWebhookRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	secret, empty := "s3", ""
	checkTrigger := func(t *testing.T, tr *WebhookTrigger, err error) error {
		if err == nil && (!tr.Enabled || tr.URL == nil || *tr.URL != "http://x/pipeline/webhook/tkn" || tr.EnabledBy != "alice" ||
			tr.EnabledAt == nil || tr.EnabledAt.Year() != 2026 || !tr.HasSecret || tr.OwnerCanRun || !strings.HasPrefix(tr.OwnerProblem, "alice is disabled")) {
			t.Errorf("trigger = %+v", tr)
		}
		return err
	}
	tests := []struct {
		name   string
		answer string
		call   func(t *testing.T, c *Client) error
		want   seen
	}{
		{"get", triggerJSON, func(t *testing.T, c *Client) error {
			tr, err := c.WebhookGet(ctx, "hello")
			return checkTrigger(t, tr, err)
		}, seen{Method: "GET", Path: "/api/v1/pipelines/hello/triggers/webhook"}},
		{"get never enabled", `{"enabled":false,"url":null,"enabled_by":"","enabled_at":null,"has_secret":false,"owner_can_run":false,"owner_problem":""}`, func(t *testing.T, c *Client) error {
			tr, err := c.WebhookGet(ctx, "hello")
			if err == nil && (tr.Enabled || tr.URL != nil || tr.EnabledAt != nil) {
				t.Errorf("trigger = %+v", tr)
			}
			return err
		}, seen{Method: "GET", Path: "/api/v1/pipelines/hello/triggers/webhook"}},
		{"enable keeps the secret", triggerJSON, func(t *testing.T, c *Client) error {
			tr, err := c.WebhookEnable(ctx, "hello", nil)
			return checkTrigger(t, tr, err)
		}, seen{Method: "POST", Path: "/api/v1/pipelines/hello/triggers/webhook/enable", ContentType: "application/json", Body: `{}`}},
		{"enable sets a secret", triggerJSON, func(t *testing.T, c *Client) error {
			_, err := c.WebhookEnable(ctx, "hello", &secret)
			return err
		}, seen{Method: "POST", Path: "/api/v1/pipelines/hello/triggers/webhook/enable", ContentType: "application/json", Body: `{"secret":"s3"}`}},
		{"enable removes the secret", triggerJSON, func(t *testing.T, c *Client) error {
			_, err := c.WebhookEnable(ctx, "hello", &empty)
			return err
		}, seen{Method: "POST", Path: "/api/v1/pipelines/hello/triggers/webhook/enable", ContentType: "application/json", Body: `{"secret":""}`}},
		{"disable", triggerJSON, func(t *testing.T, c *Client) error {
			_, err := c.WebhookDisable(ctx, "hello")
			return err
		}, seen{Method: "POST", Path: "/api/v1/pipelines/hello/triggers/webhook/disable"}},
		{"rotate escapes", triggerJSON, func(t *testing.T, c *Client) error {
			_, err := c.WebhookRotate(ctx, "a/b")
			return err
		}, seen{Method: "POST", Path: "/api/v1/pipelines/a%2Fb/triggers/webhook/rotate"}},
		{"audit", `{"audit":[{"at":"2026-01-02T03:04:05Z","actor":"alice","action":"enable","detail":"secret set"}]}`, func(t *testing.T, c *Client) error {
			a, err := c.WebhookAudit(ctx, "hello")
			if err == nil && (len(a) != 1 || a[0].Actor != "alice" || a[0].Action != "enable" || a[0].Detail != "secret set" || a[0].At.Year() != 2026) {
				t.Errorf("audit = %+v", a)
			}
			return err
		}, seen{Method: "GET", Path: "/api/v1/pipelines/hello/triggers/webhook/audit"}},
		{"delivery list", `{"deliveries":[{"id":9,"received_at":"2026-01-02T03:04:05Z","remote_addr":"10.0.0.1:5","status_code":202,"error_code":"","run_id":17,"dry_run":false,"redelivery_of":4,"replay_of":null}],"next_before":9}`, func(t *testing.T, c *Client) error {
			pg, err := c.DeliveryList(ctx, "hello", 5, 20)
			if err == nil && (len(pg.Deliveries) != 1 || pg.NextBefore == nil || *pg.NextBefore != 9) {
				t.Errorf("page = %+v", pg)
			} else if d := pg.Deliveries[0]; d.ID != 9 || d.StatusCode != 202 || d.RunID == nil || *d.RunID != 17 ||
				d.RedeliveryOf == nil || *d.RedeliveryOf != 4 || d.ReplayOf != nil || d.RemoteAddr != "10.0.0.1:5" {
				t.Errorf("delivery = %+v", d)
			}
			return err
		}, seen{Method: "GET", Path: "/api/v1/pipelines/hello/deliveries", Query: "before=20&limit=5"}},
		{"delivery list default", `{"deliveries":[],"next_before":null}`, func(t *testing.T, c *Client) error {
			pg, err := c.DeliveryList(ctx, "hello", 0, 0)
			if err == nil && (pg.NextBefore != nil || len(pg.Deliveries) != 0) {
				t.Errorf("page = %+v", pg)
			}
			return err
		}, seen{Method: "GET", Path: "/api/v1/pipelines/hello/deliveries"}},
		{"delivery get", `{"id":9,"received_at":"2026-01-02T03:04:05Z","status_code":422,"error_code":"invalid_variables","run_id":null,
			"headers":{"Content-Type":["application/json"],"X-Hub-Signature-256":"[redacted]"},"body":"{\"abc\":[1]}","body_truncated":true,
			"response":{"error":{"code":"invalid_variables","message":"abc: not an object"}},"trace":[{"step":"token","ok":true,"detail":"known"},{"step":"variables","ok":false,"detail":"abc"}]}`, func(t *testing.T, c *Client) error {
			d, err := c.DeliveryGet(ctx, 9)
			if err != nil {
				return err
			}
			if d.ErrorCode != "invalid_variables" || d.RunID != nil || d.Headers["Content-Type"][0] != "application/json" ||
				d.Headers["X-Hub-Signature-256"][0] != "[redacted]" || d.Body != `{"abc":[1]}` || !d.BodyTruncated ||
				!strings.Contains(string(d.Response), `"invalid_variables"`) || len(d.Trace) != 2 || d.Trace[1].OK || d.Trace[1].Step != "variables" {
				t.Errorf("delivery = %+v", d)
			}
			return nil
		}, seen{Method: "GET", Path: "/api/v1/deliveries/9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, got := fake(t, func(w http.ResponseWriter, r *http.Request) { reply(w, 200, tt.answer) })
			if err := tt.call(t, c); err != nil {
				t.Fatalf("error: %v", err)
			}
			want := tt.want
			want.Auth = "Bearer tok123"
			if len(*got) != 1 || (*got)[0] != want {
				t.Errorf("requests = %+v, want %+v", *got, want)
			}
		})
	}
}

// TestWebhookAnswers checks that dry runs and redeliveries hand back the webhook's answer
// whatever its status, and the API's own refusals (no trace) as *Error.
func TestWebhookAnswers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name   string
		status int
		answer string
		check  func(t *testing.T, a *WebhookAnswer)
		err    int // the *Error status wanted; 0: an answer
	}{
		{"dry run would start", 200, `{"dry_run":true,"run":null,"would_start":true,"variables":{"abc":"456","KEY":"***"},"ignored":["x"],"delivery":12,
			"trace":[{"step":"token","ok":true,"detail":"dry run"},{"step":"run","ok":true,"detail":"would start"}]}`, func(t *testing.T, a *WebhookAnswer) {
			if !a.DryRun || !a.WouldStart || a.Run != nil || a.Variables["abc"] != "456" || a.Variables["KEY"] != "***" ||
				a.Delivery != 12 || len(a.Ignored) != 1 || len(a.Trace) != 2 || !a.Trace[1].OK || a.Error != nil {
				t.Errorf("answer = %+v", a)
			}
		}, 0},
		{"started", 202, `{"run":{"id":17,"number":3,"url":"http://x/runs/17","api_url":"http://x/api/v1/runs/17","status":"queued"},"ignored":[],"skipped":null,"delivery":13,"trace":[{"step":"run","ok":true,"detail":"run 17"}]}`,
			func(t *testing.T, a *WebhookAnswer) {
				if a.Run == nil || a.Run.ID != 17 || a.Run.Number != 3 || a.Run.Status != "queued" || a.Run.URL != "http://x/runs/17" || a.Run.APIURL != "http://x/api/v1/runs/17" || a.Skipped != nil || a.Delivery != 13 {
					t.Errorf("answer = %+v", a)
				}
			}, 0},
		{"skipped", 200, `{"run":null,"ignored":[],"skipped":"filter is false","delivery":14,"trace":[]}`, func(t *testing.T, a *WebhookAnswer) {
			if a.Run != nil || a.Skipped == nil || *a.Skipped != "filter is false" {
				t.Errorf("answer = %+v", a)
			}
		}, 0},
		{"replayed", 202, `{"run":{"id":17},"replayed":true,"delivery":15,"trace":[]}`, func(t *testing.T, a *WebhookAnswer) {
			if !a.Replayed {
				t.Errorf("answer = %+v", a)
			}
		}, 0},
		{"webhook refusal", 403, `{"error":{"code":"insufficient_permissions","message":"alice may no longer run hello"},"delivery":16,
			"trace":[{"step":"token","ok":true,"detail":""},{"step":"permission","ok":false,"detail":"alice is disabled"}]}`, func(t *testing.T, a *WebhookAnswer) {
			if a.Error == nil || a.Error.Code != "insufficient_permissions" || a.Delivery != 16 || len(a.Trace) != 2 || a.Trace[1].OK {
				t.Errorf("answer = %+v", a)
			}
		}, 0},
		{"invalid variables", 422, `{"error":{"code":"invalid_variables","message":"abc: must be one of 123, 456"},"delivery":17,"trace":[{"step":"variables","ok":false,"detail":"abc"}]}`,
			func(t *testing.T, a *WebhookAnswer) {
				if a.Error == nil || a.Error.Code != "invalid_variables" {
					t.Errorf("answer = %+v", a)
				}
			}, 0},
		{"api not found", 404, `{"error":{"code":"not_found","message":"no pipeline \"hello\""}}`, nil, 404},
		{"api forbidden", 403, `{"error":{"code":"forbidden","message":"developers only"}}`, nil, 403},
		{"api unauthorized", 401, `{"error":{"code":"unauthorized","message":"unknown token"}}`, nil, 401},
		{"trace null", 500, `{"error":{"code":"internal","message":"bug"},"trace":null}`, nil, 500},
		{"not json", 502, `<html>bad gateway</html>`, nil, 502},
	}
	for _, tt := range tests {
		for _, call := range []string{"dry run", "redeliver"} {
			t.Run(tt.name+" "+call, func(t *testing.T) {
				t.Parallel()
				c, got := fake(t, func(w http.ResponseWriter, r *http.Request) { reply(w, tt.status, tt.answer) })
				var status int
				var a *WebhookAnswer
				var err error
				var want seen
				if call == "dry run" {
					status, a, err = c.WebhookDryRun(ctx, "hello", "application/json", []byte(`{"abc":"456"}`))
					want = seen{Method: "POST", Path: "/api/v1/pipelines/hello/triggers/webhook/dry-run", Auth: "Bearer tok123", ContentType: "application/json", Body: `{"abc":"456"}`}
				} else {
					status, a, err = c.DeliveryRedeliver(ctx, 9)
					want = seen{Method: "POST", Path: "/api/v1/deliveries/9/redeliver", Auth: "Bearer tok123"}
				}
				if len(*got) != 1 || (*got)[0] != want {
					t.Errorf("requests = %+v, want %+v", *got, want)
				}
				if tt.err != 0 {
					var e *Error
					if !IsStatus(err, tt.err) || a != nil || status != 0 {
						t.Fatalf("= %d, %+v, %v; want *Error %d", status, a, err, tt.err)
					}
					if errors.As(err, &e) && json.Valid([]byte(tt.answer)) && e.Code == "" {
						t.Errorf("error lost its code: %#v", err)
					}
					return
				}
				if err != nil || status != tt.status {
					t.Fatalf("= %d, %v; want status %d", status, err, tt.status)
				}
				tt.check(t, a)
			})
		}
	}
}

func TestWebhookDryRunContentType(t *testing.T) {
	t.Parallel()
	c, got := fake(t, func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, `{"dry_run":true,"would_start":true,"trace":[]}`)
	})
	if _, _, err := c.WebhookDryRun(context.Background(), "hello", "application/x-www-form-urlencoded", []byte("payload=%7B%7D")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.WebhookDryRun(context.Background(), "hello", "", nil); err != nil {
		t.Fatal(err)
	}
	if r := (*got)[0]; r.ContentType != "application/x-www-form-urlencoded" || r.Body != "payload=%7B%7D" {
		t.Errorf("request = %+v", r)
	}
	if r := (*got)[1]; r.ContentType != "" || r.Body != "" {
		t.Errorf("request without body = %+v", r)
	}
}

func TestHeadersDecode(t *testing.T) {
	t.Parallel()
	var h Headers
	if err := json.Unmarshal([]byte(`{"A":["1","2"],"B":"3"}`), &h); err != nil || len(h["A"]) != 2 || h["B"][0] != "3" {
		t.Errorf("Headers = %v, %v", h, err)
	}
	if err := json.Unmarshal([]byte(`{"A":5}`), &h); err == nil {
		t.Error("a number was accepted as a header value")
	}
}

func TestWebhookDryRunHeaders(t *testing.T) {
	t.Parallel()
	var got http.Header
	c, _ := fake(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		reply(w, 401, `{"error":{"code":"invalid_signature","message":"wrong signature"},"delivery":3,"trace":[{"step":"signature","ok":false,"detail":"wrong"}]}`)
	})
	h := http.Header{"X-Hub-Signature-256": {"sha256=ab"}, "X-Github-Event": {"push"}, "Content-Type": {"application/json"}, "Authorization": {"Bearer other"}}
	status, a, err := c.WebhookDryRunHeaders(context.Background(), "hello", h, []byte("{}"))
	if err != nil || status != 401 || a.Error == nil || a.Error.Code != "invalid_signature" {
		t.Fatalf("= %d, %+v, %v", status, a, err)
	}
	if got.Get("X-Hub-Signature-256") != "sha256=ab" || got.Get("X-Github-Event") != "push" || got.Get("Content-Type") != "application/json" ||
		got.Values("Authorization")[0] != "Bearer tok123" || len(got.Values("Authorization")) != 1 {
		t.Errorf("headers = %v", got)
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"12", 12 * time.Second},
		{" 60 ", time.Minute},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{"99999999999999999", math.MaxInt64 / time.Second * time.Second},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Second).Format(http.TimeFormat), 0},
	} {
		if got := retryAfter(tt.header, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v; want %v", tt.header, got, tt.want)
		}
	}
}

// A redelivery refused over a queue bound: the answer's queue and its Retry-After.
func TestWebhookQueueFull(t *testing.T) {
	t.Parallel()
	c, _ := fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "12")
		reply(w, 429, `{"error":{"code":"pipeline_queue_full","message":"pipeline hello is 3 runs (about 40 s of work) behind"},
"trace":[{"step":"queue","ok":false,"detail":"pipeline hello is 3 runs behind"}],
"queue":{"scope":"pipeline","queued":3,"seconds":40,"max_runs":2,"max_seconds":0}}`)
	})
	status, a, err := c.DeliveryRedeliver(context.Background(), 9)
	if err != nil || status != 429 {
		t.Fatalf("= %d, %v; want 429", status, err)
	}
	q := a.Queue
	if a.RetryAfter != 12*time.Second || a.Error == nil || a.Error.Code != "pipeline_queue_full" || a.Delivery != 0 ||
		q == nil || q.Scope != "pipeline" || q.Queued != 3 || q.Seconds == nil || *q.Seconds != 40 || q.MaxRuns != 2 || q.MaxSeconds != 0 {
		t.Errorf("answer = %+v, queue %+v", a, q)
	}
}
