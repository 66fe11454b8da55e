package api_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/api"
)

// TestWebhookIdempotencyKeyMismatch: an Idempotency-Key sent again with another body is refused
// 422 idempotency_key_mismatch and starts nothing; with the same body it still answers the
// first answer; the refusal does not take the key from the first body.
func TestWebhookIdempotencyKeyMismatch(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		h := e.newHook("mismatch", nil)
		first := e.hook(h.token, "application/json", `{"abc":"1"}`, "Idempotency-Key", "deploy-7")
		fa := first.answer(t)
		if first.Status != http.StatusAccepted || fa.Run == nil {
			t.Fatalf("first: %s", first)
		}
		other := e.hook(h.token, "application/json", `{"abc":"2"}`, "Idempotency-Key", "deploy-7")
		oa := other.answer(t)
		if other.Status != http.StatusUnprocessableEntity || oa.Error == nil || oa.Error.Code != "idempotency_key_mismatch" ||
			oa.Run != nil || !strings.Contains(oa.Error.Message, "deploy-7") || !strings.Contains(oa.Error.Message, "different body") {
			t.Fatalf("same key, another body: %s; want 422 idempotency_key_mismatch", other)
		}
		if d := e.delivery(oa.Delivery); d.StatusCode != 422 || d.ErrorCode != "idempotency_key_mismatch" || d.RunID != nil || d.IdempotencyKey != "" {
			t.Errorf("the refused delivery is stored as %d %s run %v key %q", d.StatusCode, d.ErrorCode, d.RunID, d.IdempotencyKey)
		}
		again := e.hook(h.token, "application/json", `{"abc":"1"}`, "Idempotency-Key", "deploy-7")
		if aa := again.answer(t); again.Status != http.StatusAccepted || !aa.Replayed || aa.Run == nil || aa.Run.ID != fa.Run.ID {
			t.Errorf("same key, same body after the refusal: %s; want the first answer", again)
		}
		if rs := e.runs("mismatch"); len(rs) != 1 {
			t.Errorf("%d runs, want 1", len(rs))
		}
		// A Git host's delivery id is a key too: the same id with another body is refused.
		if r := e.hook(h.token, "application/json", `{"abc":"3"}`, "X-Gitlab-Event-UUID", "u-1"); r.Status != http.StatusAccepted {
			t.Fatalf("first with a delivery id: %s", r)
		}
		if r := e.hook(h.token, "application/json", `{"abc":"4"}`, "X-Gitlab-Event-UUID", "u-1"); r.Status != http.StatusUnprocessableEntity ||
			r.errorCode() != "idempotency_key_mismatch" {
			t.Errorf("a delivery id with another body: %s", r)
		}
	})
}

// TestRedeliverNeedsAPassedSignature: only a delivery that passed the signature check, or
// needed none, is redelivered; one that failed it, never reached it (a disabled trigger) or was an unchecked
// dry run is refused 409 not_redeliverable, starts nothing and is logged with its reason; a
// redelivery of a redelivery of a signed delivery is fine.
func TestRedeliverNeedsAPassedSignature(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		h := e.newHook("redel", map[string]string{"secret": "k"})
		redeliver := func(id int64) response {
			t.Helper()
			return e.call("POST", "/api/v1/deliveries/"+itoa(id)+"/redeliver", h.owner.Token, nil)
		}
		refused := func(what string, id int64, says string) {
			t.Helper()
			r := redeliver(id)
			a := r.answer(t)
			if r.Status != http.StatusConflict || a.Error == nil || a.Error.Code != "not_redeliverable" || a.Run != nil ||
				!strings.Contains(a.Error.Message, says) {
				t.Errorf("redeliver %s: %s; want 409 not_redeliverable saying %q", what, r, says)
			}
			if a.Delivery == 0 || e.delivery(a.Delivery).ErrorCode != "not_redeliverable" {
				t.Errorf("redeliver %s: the refusal is not in the delivery log: %s", what, r)
			}
		}
		unsigned := e.hook(h.token, "application/json", `{"abc":"1"}`)
		refused("of an unsigned request", unsigned.answer(t).Delivery, "failed the signature check")
		wrong := e.hook(h.token, "application/json", `{"abc":"1"}`, "X-Hub-Signature-256", sign("not-k", `{"abc":"1"}`))
		refused("of a wrongly signed request", wrong.answer(t).Delivery, "failed the signature check")
		e.call("POST", "/api/v1/pipelines/redel/triggers/webhook/disable", h.owner.Token, nil)
		e.hook(h.token, "application/json", `{"abc":"1"}`) // stored, answered as an unknown URL
		e.enable("redel", h.owner, nil)
		ds := e.deliveries("redel")
		refused("of a request refused before the check", ds[0].ID, "never passed a signature check")
		dry := e.do(request{method: "POST", path: "/api/v1/pipelines/redel/triggers/webhook/dry-run", token: h.owner.Token,
			contentType: "application/json", body: strings.NewReader(`{"abc":"1"}`)})
		refused("of an unchecked dry run", dry.answer(t).Delivery, "not checked")
		if rs := e.runs("redel"); len(rs) != 0 {
			t.Fatalf("%d runs started by refused redeliveries", len(rs))
		}

		good := e.hook(h.token, "application/json", `{"abc":"1"}`, "X-Hub-Signature-256", sign("k", `{"abc":"1"}`))
		r1 := redeliver(good.answer(t).Delivery)
		if r1.Status != http.StatusAccepted {
			t.Fatalf("redeliver of a signed delivery: %s", r1)
		}
		if r2 := redeliver(r1.answer(t).Delivery); r2.Status != http.StatusAccepted {
			t.Errorf("redeliver of that redelivery: %s", r2)
		}
		open := e.newHook("open", nil)
		plain := e.hook(open.token, "application/json", `{}`)
		if r := e.call("POST", "/api/v1/deliveries/"+itoa(plain.answer(t).Delivery)+"/redeliver", open.owner.Token, nil); r.Status != http.StatusAccepted {
			t.Errorf("redeliver of a delivery to a trigger without a secret: %s", r)
		}
		openDry := e.do(request{method: "POST", path: "/api/v1/pipelines/open/triggers/webhook/dry-run", token: open.owner.Token,
			contentType: "application/json", body: strings.NewReader(`{}`)})
		if r := e.call("POST", "/api/v1/deliveries/"+itoa(openDry.answer(t).Delivery)+"/redeliver", open.owner.Token, nil); r.Status != http.StatusAccepted {
			t.Errorf("redeliver of a dry run to a trigger without a secret (nothing to check): %s", r)
		}
	})
}

// TestValuesThatCannotRun: a NUL byte or an environment entry over Linux's MAX_ARG_STRLEN is
// refused 422 invalid_variables naming the variable, at the webhook (JSON and form bodies) and
// at a manual run, and no run is stored (before the fix the webhook answered 202 and the run
// failed with "argument list too long").
func TestValuesThatCannotRun(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, func(s *api.Server) { s.MaxBody = 1 << 20 })
		h := e.newHook("envlimit", nil)
		long := strings.Repeat("v", 131100)
		for _, c := range []struct{ name, contentType, body, says string }{
			{"NUL in JSON", "application/json", `{"abc":"a\u0000b"}`, "NUL byte"},
			{"NUL in a form field", "application/x-www-form-urlencoded", `abc=a%00b`, "NUL byte"},
			{"131,100 bytes", "application/json", `{"abc":"` + long + `"}`, "MAX_ARG_STRLEN"},
		} {
			r := e.hook(h.token, c.contentType, c.body)
			a := r.answer(t)
			if r.Status != http.StatusUnprocessableEntity || a.Error == nil || a.Error.Code != "invalid_variables" ||
				len(a.Error.Problems) != 1 || a.Error.Problems[0].Key != "abc" || !strings.Contains(a.Error.Problems[0].Message, c.says) {
				t.Errorf("%s: %.300s; want 422 invalid_variables naming abc", c.name, r)
			}
		}
		manual := e.call("POST", "/api/v1/pipelines/envlimit/runs", h.owner.Token, map[string]any{"variables": map[string]string{"abc": long}})
		if manual.Status != http.StatusUnprocessableEntity || manual.errorCode() != "invalid_variables" || !strings.Contains(string(manual.Body), `"key":"abc"`) {
			t.Errorf("manual run: %.300s", manual)
		}
		if rs := e.runs("envlimit"); len(rs) != 0 {
			t.Errorf("%d runs stored", len(rs))
		}
	})
}

// TestWebhookTimestampedSignature: a signed X-Flowd-Timestamp is accepted when present; a
// trigger that requires it refuses body-only signatures and stale or altered timestamps, and
// still takes a Git host's own signature (GitHub cannot send the header).
func TestWebhookTimestampedSignature(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		h := e.newHook("stamped", map[string]any{"secret": "k"})
		body := `{"abc":"1"}`
		now := strconv.FormatInt(time.Now().Unix(), 10)
		stale := strconv.FormatInt(time.Now().Add(-6*time.Minute).Unix(), 10)
		stamped := func(ts string) response {
			return e.hook(h.token, "application/json", body, "X-Flowd-Timestamp", ts, "X-Hub-Signature-256", sign("k", ts+"."+body))
		}
		if r := stamped(now); r.Status != http.StatusAccepted {
			t.Errorf("timestamped, not required: %s", r)
		}
		if r := e.hook(h.token, "application/json", body, "X-Hub-Signature-256", sign("k", body)); r.Status != http.StatusAccepted {
			t.Errorf("body-only, not required: %s", r)
		}

		tr := e.enable("stamped", h.owner, map[string]any{"require_timestamp": true})
		if !tr.RequireTimestamp {
			t.Fatalf("enable with require_timestamp answered %+v", tr)
		}
		if r := stamped(now); r.Status != http.StatusAccepted {
			t.Errorf("timestamped, required: %s", r)
		}
		for _, c := range []struct {
			name string
			r    response
			says string
		}{
			{"body-only", e.hook(h.token, "application/json", body, "X-Hub-Signature-256", sign("k", body)), "requires X-Flowd-Timestamp"},
			{"stale", stamped(stale), "more than the 5m0s allowed"},
			{"timestamp swapped", e.hook(h.token, "application/json", body, "X-Flowd-Timestamp", now, "X-Hub-Signature-256", sign("k", stale+"."+body)), "does not match"},
		} {
			a := c.r.answer(t)
			if c.r.Status != http.StatusUnauthorized || a.Error == nil || a.Error.Code != "invalid_signature" || !strings.Contains(a.Error.Message, c.says) {
				t.Errorf("%s, required: %s; want 401 saying %q", c.name, c.r, c.says)
			}
		}
		// A Git host's request signs its own way; requiring the timestamp does not apply to it.
		ping := `{"zen":"hi","hook_id":1}`
		if r := e.hook(h.token, "application/json", ping, "X-GitHub-Event", "ping", "X-Hub-Signature-256", sign("k", ping)); r.Status != http.StatusOK {
			t.Errorf("GitHub's ping, timestamp required: %s", r)
		}
		if n := len(e.runs("stamped")); n != 3 {
			t.Errorf("%d runs, want 3", n)
		}
		var audit struct {
			Audit []struct{ Action, Detail string } `json:"audit"`
		}
		e.call("GET", "/api/v1/pipelines/stamped/triggers/webhook/audit", h.owner.Token, nil).json(t, &audit)
		if len(audit.Audit) == 0 || audit.Audit[0].Action != "timestamp" || audit.Audit[0].Detail != "X-Flowd-Timestamp required" {
			t.Errorf("audit: %+v", audit.Audit)
		}
	})
}
