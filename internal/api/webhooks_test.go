package api_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/flowd/flowd/internal/api"
	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// allSteps is the trace of a delivery that started a run.
var allSteps = []string{"token", "enabled", "rate", "size", "signature", "permission", "payload", "variables", "run"}

func sign(secret, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// hookFixture is a pipeline whose webhook a user enabled.
type hookFixture struct {
	pipeline string
	owner    testUser
	token    string
}

// newHook creates a pipeline (created by a separate admin) whose webhook owner enables, owner
// being an admin of it; enableBody is the enable request's body.
func (e *env) newHook(name string, enableBody any) hookFixture {
	e.t.Helper()
	creator := e.user(name+"-creator", false)
	owner := e.user(name+"-owner", false)
	e.createPipeline(name, creator, map[*testUser]auth.Role{&owner: auth.Admin})
	return hookFixture{pipeline: name, owner: owner, token: e.enable(name, owner, enableBody).token()}
}

func (e *env) pipelineID(name string) int64 {
	e.t.Helper()
	p, err := e.st.PipelineGet(context.Background(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	return p.ID
}

func (e *env) runs(pipeline string) []run.Run {
	e.t.Helper()
	rs, err := e.st.RunList(context.Background(), e.pipelineID(pipeline), store.RunListParams{Limit: 200})
	if err != nil {
		e.t.Fatal(err)
	}
	return rs
}

func (e *env) deliveries(pipeline string) []store.Delivery {
	e.t.Helper()
	ds, err := e.st.DeliveryList(context.Background(), e.pipelineID(pipeline), 200, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return ds
}

func (e *env) delivery(id int64) store.Delivery {
	e.t.Helper()
	d, err := e.st.DeliveryGet(context.Background(), id)
	if err != nil {
		e.t.Fatalf("delivery %d: %v", id, err)
	}
	return d
}

// TestWebhookStatusTable drives every row of DESIGN.md's webhook tables over HTTP.
func TestWebhookStatusTable(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		ctx := context.Background()

		type tc struct {
			name        string
			setup       func(e *env) (token string, owner string) // default: a fresh hook
			contentType string
			body        string
			headers     []string
			status      int
			code        string // error code; "" = accepted
			lastStep    string // the trace's last step
			vars        map[string]string
			ignored     []string
			msg         []string // the message contains each
		}
		signed := func(e *env) (string, string) {
			h := e.newHook(strings.ReplaceAll(strings.ToLower(e.t.Name()[strings.LastIndex(e.t.Name(), "/")+1:]), "_", "-"), map[string]string{"secret": "s3cret"})
			return h.token, h.owner.Username
		}
		cases := []tc{
			{name: "empty object", contentType: "application/json", body: `{}`, status: 202,
				vars: map[string]string{"abc": "123", "TARGET": "staging"}, ignored: []string{}},
			{name: "empty body", body: ``, status: 202, vars: map[string]string{"abc": "123", "TARGET": "staging"}, ignored: []string{}},
			{name: "override string", contentType: "application/json", body: `{"abc":"456","TARGET":"production"}`, status: 202,
				vars: map[string]string{"abc": "456", "TARGET": "production"}, ignored: []string{}},
			{name: "override number", contentType: "application/json", body: `{"abc":1.50}`, status: 202,
				vars: map[string]string{"abc": "1.50", "TARGET": "staging"}, ignored: []string{}},
			{name: "override bool", contentType: "application/json", body: `{"abc":true}`, status: 202,
				vars: map[string]string{"abc": "true", "TARGET": "staging"}, ignored: []string{}},
			{name: "ignored keys", contentType: "application/json", body: `{"zeta":1,"abc":"x","alpha":{"deep":[]}}`, status: 202,
				vars: map[string]string{"abc": "x", "TARGET": "staging"}, ignored: []string{"alpha", "zeta"}},
			{name: "curl form default", contentType: "application/x-www-form-urlencoded", body: `{"abc":"456"}`, status: 202,
				vars: map[string]string{"abc": "456", "TARGET": "staging"}, ignored: []string{}},
			{name: "owner demoted to viewer", setup: func(e *env) (string, string) {
				h := e.newHook("demoted", nil)
				if err := e.st.MemberSet(ctx, e.pipelineID(h.pipeline), h.owner.ID, "viewer"); err != nil {
					e.t.Fatal(err)
				}
				return h.token, h.owner.Username
			}, contentType: "application/json", body: `{}`, status: 403, code: "insufficient_permissions", lastStep: "permission",
				msg: []string{"demoted-owner", "only a viewer", "disable the webhook and enable it again as a user who may run demoted, then resend"}},
			{name: "owner removed", setup: func(e *env) (string, string) {
				h := e.newHook("removed", nil)
				if err := e.st.MemberDelete(ctx, e.pipelineID(h.pipeline), h.owner.ID); err != nil {
					e.t.Fatal(err)
				}
				return h.token, h.owner.Username
			}, contentType: "application/json", body: `{}`, status: 403, code: "insufficient_permissions", lastStep: "permission",
				msg: []string{"removed-owner", "no longer a member", "enable it again as a user who may run removed"}},
			{name: "owner disabled", setup: func(e *env) (string, string) {
				h := e.newHook("disabledowner", nil)
				yes := true
				if _, err := e.st.UserUpdate(ctx, h.owner.ID, store.UserUpdate{Disabled: &yes}); err != nil {
					e.t.Fatal(err)
				}
				return h.token, h.owner.Username
			}, contentType: "application/json", body: `{}`, status: 403, code: "insufficient_permissions", lastStep: "permission",
				msg: []string{"disabledowner-owner", "is disabled", "enable it again"}},
			{name: "owner deleted", setup: func(e *env) (string, string) {
				h := e.newHook("deletedowner", nil)
				if err := e.st.UserDelete(ctx, h.owner.ID); err != nil {
					e.t.Fatal(err)
				}
				return h.token, h.owner.Username
			}, contentType: "application/json", body: `{}`, status: 403, code: "insufficient_permissions", lastStep: "permission",
				msg: []string{"deletedowner-owner", "was deleted", "enable it again"}},
			{name: "signature missing", setup: signed, contentType: "application/json", body: `{}`,
				status: 401, code: "invalid_signature", lastStep: "signature"},
			{name: "signature wrong", setup: signed, contentType: "application/json", body: `{}`,
				headers: []string{"X-Hub-Signature-256", sign("other", `{}`)}, status: 401, code: "invalid_signature", lastStep: "signature"},
			{name: "signature right", setup: signed, contentType: "application/json", body: `{"abc":"s"}`,
				headers: []string{"X-Hub-Signature-256", sign("s3cret", `{"abc":"s"}`)}, status: 202,
				vars: map[string]string{"abc": "s", "TARGET": "staging"}, ignored: []string{}},
			{name: "bad json", contentType: "application/json", body: `{"abc":`, status: 400, code: "invalid_json", lastStep: "payload"},
			{name: "object value", contentType: "application/json", body: `{"abc":{"x":1}}`, status: 422, code: "invalid_variables", lastStep: "variables", msg: []string{"abc"}},
			{name: "outside options", contentType: "application/json", body: `{"TARGET":"moon","abc":[1]}`, status: 422, code: "invalid_variables", lastStep: "variables", msg: []string{"TARGET", "abc", "options"}},
			{name: "reserved keys", contentType: "application/json", body: `{"FLOWD_RUN_ID":"1","PATH":"/x","HOME":"/"}`, status: 422, code: "invalid_variables", lastStep: "variables", msg: []string{"FLOWD_RUN_ID", "PATH", "HOME", "reserved"}},
			{name: "null value", contentType: "application/json", body: `{"abc":null}`, status: 422, code: "invalid_variables", lastStep: "variables", msg: []string{"abc"}},
			{name: "not an object", contentType: "application/json", body: `["abc"]`, status: 422, code: "invalid_variables", lastStep: "payload", msg: []string{"object"}},
			{name: "too large", contentType: "application/json", body: `{"abc":"` + strings.Repeat("x", 64<<10) + `"}`, status: 413, code: "payload_too_large", lastStep: "size"},
			{name: "unsupported media type", contentType: "text/csv", body: `abc,1`, status: 415, code: "unsupported_media_type", lastStep: "payload"},
		}
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				e := e.with(t)
				var token, owner string
				if c.setup != nil {
					token, owner = c.setup(e)
				} else {
					h := e.newHook("case"+strconv.Itoa(i), nil)
					token, owner = h.token, h.owner.Username
				}
				r := e.hook(token, c.contentType, c.body, c.headers...)
				a := r.answer(t)
				if r.Status != c.status {
					t.Fatalf("status %s, want %d", r, c.status)
				}
				if ct := r.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
				if a.Delivery == 0 {
					t.Errorf("the answer names no stored delivery: %s", r)
				}
				if c.code != "" {
					if a.Error == nil || a.Error.Code != c.code {
						t.Fatalf("answer %s, want code %s", r, c.code)
					}
					for _, m := range c.msg {
						if !strings.Contains(a.Error.Message, m) {
							t.Errorf("message %q lacks %q", a.Error.Message, m)
						}
					}
					if step, ok := lastStep(a.Trace); step != c.lastStep || ok {
						t.Errorf("trace %v ends at %s (ok %v), want a failed %s", a.Trace, step, ok, c.lastStep)
					}
					d := e.delivery(a.Delivery)
					if d.StatusCode != c.status || d.ErrorCode != c.code || d.RunID != nil {
						t.Errorf("stored delivery: status %d code %q run %v", d.StatusCode, d.ErrorCode, d.RunID)
					}
					return
				}
				if a.Run == nil || a.Run.ID == 0 || a.Run.Number != 1 || a.Run.Status != "queued" ||
					a.Run.URL != "https://ci.example.com/runs/"+itoa(a.Run.ID) || a.Run.APIURL != "https://ci.example.com/api/v1/runs/"+itoa(a.Run.ID) ||
					a.Skipped != nil || a.Error != nil {
					t.Fatalf("answer %s", r)
				}
				if !reflect.DeepEqual(steps(a.Trace), allSteps) {
					t.Errorf("trace steps %v, want %v", steps(a.Trace), allSteps)
				}
				if !reflect.DeepEqual(a.Ignored, c.ignored) {
					t.Errorf("ignored %v, want %v", a.Ignored, c.ignored)
				}
				rn, err := e.st.RunGet(ctx, a.Run.ID)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(rn.Variables, c.vars) || rn.Trigger != run.TriggerWebhook || rn.TriggeredBy != owner {
					t.Errorf("run: variables %v trigger %s by %s; want %v webhook by %s", rn.Variables, rn.Trigger, rn.TriggeredBy, c.vars, owner)
				}
				if d := e.delivery(a.Delivery); d.RunID == nil || *d.RunID != a.Run.ID || d.StatusCode != 202 {
					t.Errorf("stored delivery: %+v", d)
				}
			})
		}

		t.Run("not found", func(t *testing.T) {
			t.Parallel()
			e := e.with(t)
			h := e.newHook("gone", nil)
			if r := e.call("POST", "/api/v1/pipelines/gone/triggers/webhook/disable", h.owner.Token, nil); r.Status != 200 {
				t.Fatalf("disable: %s", r)
			}
			other := "x" // a token that differs from the real one in its first character
			if h.token[0] == 'x' {
				other = "y"
			}
			unknown := e.hook(other+h.token[1:], "application/json", `{}`)
			disabled := e.hook(h.token, "application/json", `{}`)
			if unknown.Status != 404 || unknown.errorCode() != "not_found" {
				t.Fatalf("unknown token: %s", unknown)
			}
			if disabled.Status != 404 || !bytes.Equal(unknown.Body, disabled.Body) {
				t.Errorf("a disabled trigger answers differently from an unknown token:\n%s\n%s", disabled, unknown)
			}
			for _, k := range []string{"Content-Type", "Retry-After", "Cache-Control"} {
				if unknown.Header.Get(k) != disabled.Header.Get(k) {
					t.Errorf("header %s: %q vs %q", k, unknown.Header.Get(k), disabled.Header.Get(k))
				}
			}
			// The disabled one is in the log, with the truth in its trace.
			ds := e.deliveries("gone")
			if len(ds) != 1 || ds[0].StatusCode != 404 || ds[0].ErrorCode != "not_found" {
				t.Fatalf("deliveries %+v, want one 404", ds)
			}
			if tr := string(e.delivery(ds[0].ID).Trace); !strings.Contains(tr, `"step":"enabled","ok":false`) {
				t.Errorf("stored trace %s does not say the trigger is disabled", tr)
			}
		})

		t.Run("rate limited", func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, dialect, func(s *api.Server) { s.WebhookRate, s.WebhookBurst = 0.01, 2 })
			h := e.newHook("limited", nil)
			for i := range 2 {
				if r := e.hook(h.token, "", ""); r.Status != 202 {
					t.Fatalf("request %d within the burst: %s", i, r)
				}
			}
			r := e.hook(h.token, "", "")
			if r.Status != 429 || r.errorCode() != "rate_limited" {
				t.Fatalf("over the rate: %s", r)
			}
			if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 100 {
				t.Errorf("Retry-After %q, want about 100 s", r.Header.Get("Retry-After"))
			}
			a := r.answer(t)
			if step, ok := lastStep(a.Trace); step != "rate" || ok || a.Delivery != 0 {
				t.Errorf("429 answer: trace ends %s %v, delivery %d", step, ok, a.Delivery)
			}
			if n := len(e.deliveries("limited")); n != 2 {
				t.Errorf("%d deliveries stored, want 2 (a 429 is not stored)", n)
			}
			// Another trigger has its own bucket.
			other := e.newHook("unlimited", nil)
			if r := e.hook(other.token, "", ""); r.Status != 202 {
				t.Errorf("another trigger: %s", r)
			}
			m := e.call("GET", "/metrics", testMetricsToken, nil)
			for _, line := range []string{
				`flowd_webhook_deliveries_total{code="rate_limited",pipeline="limited"} 1`,
				`flowd_webhook_deliveries_total{code="started",pipeline="limited"} 2`,
				`flowd_webhook_run_latency_seconds_count 3`,
			} {
				if !strings.Contains(string(m.Body), line) {
					t.Errorf("metrics lack %q", line)
				}
			}
		})

		t.Run("unavailable", func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, dialect)
			h := e.newHook("down", nil)
			if err := e.st.Close(); err != nil {
				t.Fatal(err)
			}
			r := e.hook(h.token, "application/json", `{}`)
			if r.Status != 503 || r.errorCode() != "unavailable" || r.Header.Get("Retry-After") == "" {
				t.Fatalf("closed store: %s (Retry-After %q)", r, r.Header.Get("Retry-After"))
			}
			if !strings.Contains(string(r.Body), "nothing was accepted") {
				t.Errorf("the 503 does not say nothing was accepted: %s", r)
			}
		})
	})
}

// TestWebhookIdempotency: 50 requests at once with one Idempotency-Key start one run, and all
// answer it.
func TestWebhookIdempotency(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		h := e.newHook("idem", nil)
		const n = 50
		var wg sync.WaitGroup
		answers := make([]response, n)
		for i := range n {
			wg.Go(func() {
				req, _ := http.NewRequest("POST", e.srv.URL+"/pipeline/webhook/"+h.token, strings.NewReader(`{"abc":"once"}`))
				req.Header.Set("Idempotency-Key", "deploy-42")
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				var b bytes.Buffer
				b.ReadFrom(resp.Body)
				answers[i] = response{Status: resp.StatusCode, Body: b.Bytes()}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		var runID, firstDelivery int64
		fresh := 0
		for i, r := range answers {
			a := r.answer(t)
			if r.Status != 202 || a.Run == nil {
				t.Fatalf("answer %d: %s", i, r)
			}
			if runID == 0 {
				runID = a.Run.ID
			}
			if a.Run.ID != runID {
				t.Errorf("answer %d has run %d, another has %d", i, a.Run.ID, runID)
			}
			if !a.Replayed {
				fresh++
				firstDelivery = a.Delivery
			}
		}
		if fresh != 1 {
			t.Errorf("%d answers were not replays, want 1", fresh)
		}
		for i, r := range answers {
			if a := r.answer(t); a.Replayed && a.Delivery != firstDelivery {
				t.Errorf("replay %d names delivery %d, want the first %d", i, a.Delivery, firstDelivery)
			}
		}
		if rs := e.runs("idem"); len(rs) != 1 {
			t.Errorf("%d runs, want exactly 1", len(rs))
		}
		if ds := e.deliveries("idem"); len(ds) != n {
			t.Errorf("%d deliveries stored, want %d (replays are logged too)", len(ds), n)
		}
		// Another key starts another run; a refused request does not take its key.
		if r := e.hook(h.token, "application/json", `{"TARGET":"moon"}`, "Idempotency-Key", "k2"); r.Status != 422 {
			t.Fatalf("bad variables with a key: %s", r)
		}
		if r := e.hook(h.token, "application/json", `{}`, "Idempotency-Key", "k2"); r.Status != 202 || r.answer(t).Replayed {
			t.Errorf("the fixed request with the key of a refused one: %s", r)
		}
		if rs := e.runs("idem"); len(rs) != 2 {
			t.Errorf("%d runs, want 2", len(rs))
		}
	})
}

// TestWebhookEnableDisableRotate: re-enabling keeps the URL and changes the owner; rotate
// retires the old URL; the trigger and its audit log say so.
func TestWebhookEnableDisableRotate(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		alice, bob, dev := e.user("alice", false), e.user("bob", false), e.user("dev", false)
		e.createPipeline("app", alice, map[*testUser]auth.Role{&bob: auth.Admin, &dev: auth.Developer})
		path := "/api/v1/pipelines/app/triggers/webhook"

		var never triggerOut
		e.call("GET", path, alice.Token, nil).json(t, &never)
		if never.Enabled || never.URL != nil || never.EnabledBy != nil || never.HasSecret {
			t.Errorf("never enabled: %+v", never)
		}
		if r := e.call("POST", path+"/rotate", alice.Token, nil); r.Status != 409 {
			t.Errorf("rotate before enable: %s, want 409", r)
		}

		first := e.enable("app", alice, map[string]string{"secret": "abc"})
		if !first.Enabled || *first.EnabledBy != "alice" || !first.HasSecret || !first.OwnerCanRun || first.OwnerProblem != nil {
			t.Errorf("enabled: %+v", first)
		}
		var seen triggerOut
		e.call("GET", path, dev.Token, nil).json(t, &seen)
		if seen.URL != nil || !seen.Enabled {
			t.Errorf("a developer sees the URL: %+v", seen)
		}
		if r := e.call("POST", path+"/disable", bob.Token, nil); r.Status != 200 {
			t.Fatal(r)
		}
		if r := e.hook(first.token(), "", "", "X-Hub-Signature-256", sign("abc", "")); r.Status != 404 {
			t.Errorf("disabled: %s", r)
		}
		second := e.enable("app", bob, nil) // no "secret": kept
		if second.token() != first.token() || *second.EnabledBy != "bob" || !second.HasSecret {
			t.Errorf("re-enabled: %+v; want the same URL, owner bob, secret kept", second)
		}
		r := e.hook(first.token(), "", "", "X-Hub-Signature-256", sign("abc", ""))
		if r.Status != 202 {
			t.Fatalf("after re-enable: %s", r)
		}
		if rn, _ := e.st.RunGet(context.Background(), r.answer(t).Run.ID); rn.TriggeredBy != "bob" {
			t.Errorf("run triggered by %q, want bob", rn.TriggeredBy)
		}
		if third := e.enable("app", bob, map[string]string{"secret": ""}); third.HasSecret {
			t.Error(`"secret": "" kept the secret`)
		}

		var rotated triggerOut
		rr := e.call("POST", path+"/rotate", alice.Token, nil)
		rr.json(t, &rotated)
		if rr.Status != 200 || rotated.token() == "" || rotated.token() == first.token() {
			t.Fatalf("rotate: %s", rr)
		}
		if r := e.hook(first.token(), "", ""); r.Status != 404 {
			t.Errorf("old URL after rotate: %s", r)
		}
		if r := e.hook(rotated.token(), "", ""); r.Status != 202 {
			t.Errorf("new URL after rotate: %s", r)
		}

		// The owner problem shows on the trigger.
		if err := e.st.MemberSet(context.Background(), e.pipelineID("app"), bob.ID, "viewer"); err != nil {
			t.Fatal(err)
		}
		var warned triggerOut
		e.call("GET", path, alice.Token, nil).json(t, &warned)
		if warned.OwnerCanRun || warned.OwnerProblem == nil || !strings.Contains(*warned.OwnerProblem, "bob") {
			t.Errorf("owner problem not shown: %+v", warned)
		}

		var audit struct {
			Audit []struct{ Actor, Action string } `json:"audit"`
		}
		e.call("GET", path+"/audit", alice.Token, nil).json(t, &audit)
		var got []string
		for _, a := range audit.Audit {
			got = append(got, a.Actor+":"+a.Action)
		}
		for _, want := range []string{"alice:rotate", "bob:enable", "bob:disable", "alice:enable"} {
			if !slices.Contains(got, want) {
				t.Errorf("audit %v lacks %s", got, want)
			}
		}
		if len(got) == 0 || got[0] != "alice:rotate" {
			t.Errorf("audit %v is not newest first", got)
		}
	})
}

// TestDeliveryLog: refusals are stored with their trace and redacted headers; the log pages;
// a redelivery makes a new run.
func TestDeliveryLog(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		h := e.newHook("logged", map[string]string{"secret": "k"})
		dev := e.user("logdev", false)
		if err := e.st.MemberSet(context.Background(), e.pipelineID("logged"), dev.ID, "developer"); err != nil {
			t.Fatal(err)
		}

		bad := e.hook(h.token, "application/json", `{"abc":"1"}`, "X-Hub-Signature-256", "sha256=00", "X-Trace-Id", "t-1")
		if bad.Status != 401 {
			t.Fatal(bad)
		}
		badID := bad.answer(t).Delivery
		body := `{"TARGET":"moon"}`
		invalid := e.hook(h.token, "application/json", body, "X-Hub-Signature-256", sign("k", body))
		if invalid.Status != 422 {
			t.Fatal(invalid)
		}
		good := e.hook(h.token, "application/json", `{"abc":"ok"}`, "X-Hub-Signature-256", sign("k", `{"abc":"ok"}`))
		if good.Status != 202 {
			t.Fatal(good)
		}
		goodAnswer := good.answer(t)

		var d struct {
			ID            int64               `json:"id"`
			StatusCode    int                 `json:"status_code"`
			ErrorCode     *string             `json:"error_code"`
			RunID         *int64              `json:"run_id"`
			RedeliveryOf  *int64              `json:"redelivery_of"`
			Headers       map[string][]string `json:"headers"`
			Body          string              `json:"body"`
			BodyTruncated bool                `json:"body_truncated"`
			Response      hookAnswer          `json:"response"`
			Trace         []traceStep         `json:"trace"`
		}
		r := e.call("GET", "/api/v1/deliveries/"+itoa(badID), dev.Token, nil)
		r.json(t, &d)
		if r.Status != 200 || d.StatusCode != 401 || d.ErrorCode == nil || *d.ErrorCode != "invalid_signature" || d.Body != `{"abc":"1"}` {
			t.Fatalf("the 401 delivery: %s", r)
		}
		if got := d.Headers["X-Hub-Signature-256"]; len(got) != 1 || got[0] != "[redacted]" {
			t.Errorf("signature header stored as %v", got)
		}
		if got := d.Headers["X-Trace-Id"]; len(got) != 1 || got[0] != "t-1" {
			t.Errorf("an ordinary header stored as %v", got)
		}
		if step, ok := lastStep(d.Trace); step != "signature" || ok {
			t.Errorf("stored trace %v does not end at a failed signature", d.Trace)
		}
		if d.Response.Error == nil || d.Response.Error.Code != "invalid_signature" {
			t.Errorf("stored response %+v", d.Response)
		}
		if strings.Contains(string(r.Body), "sha256=00") {
			t.Error("the signature header's value is in the delivery")
		}

		// Listing, newest first, with pages.
		var page struct {
			Deliveries []struct {
				ID         int64   `json:"id"`
				StatusCode int     `json:"status_code"`
				RunID      *int64  `json:"run_id"`
				ErrorCode  *string `json:"error_code"`
			} `json:"deliveries"`
			NextBefore *int64 `json:"next_before"`
		}
		lr := e.call("GET", "/api/v1/pipelines/logged/deliveries?limit=2", dev.Token, nil)
		lr.json(t, &page)
		if len(page.Deliveries) != 2 || page.Deliveries[0].StatusCode != 202 || page.Deliveries[1].StatusCode != 422 || page.NextBefore == nil {
			t.Fatalf("first page: %s", lr)
		}
		if page.Deliveries[0].ErrorCode != nil || page.Deliveries[0].RunID == nil || *page.Deliveries[0].RunID != goodAnswer.Run.ID {
			t.Errorf("the accepted delivery in the list: %s", lr)
		}
		e.call("GET", "/api/v1/pipelines/logged/deliveries?limit=2&before="+itoa(*page.NextBefore), dev.Token, nil).json(t, &page)
		if len(page.Deliveries) != 1 || page.Deliveries[0].ID != badID || page.NextBefore != nil {
			t.Errorf("second page: %+v", page)
		}

		// The unsigned request failed the signature check: it cannot be redelivered.
		rd := e.call("POST", "/api/v1/deliveries/"+itoa(badID)+"/redeliver", dev.Token, nil)
		ra := rd.answer(t)
		if rd.Status != http.StatusConflict || ra.Error == nil || ra.Error.Code != "not_redeliverable" || ra.Run != nil ||
			!strings.Contains(ra.Error.Message, "failed the signature check") {
			t.Fatalf("redeliver of the unsigned request: %s; want 409 not_redeliverable", rd)
		}
		if step, ok := lastStep(ra.Trace); step != "signature" || ok {
			t.Errorf("the refused redelivery's trace ends at %s %v, want a failed signature", step, ok)
		}

		// Redelivering the signed one skips the signature and starts a run.
		rd = e.call("POST", "/api/v1/deliveries/"+itoa(goodAnswer.Delivery)+"/redeliver", dev.Token, nil)
		ra = rd.answer(t)
		if rd.Status != 202 || ra.Run == nil || ra.Run.ID == goodAnswer.Run.ID || ra.Delivery == goodAnswer.Delivery {
			t.Fatalf("redeliver: %s", rd)
		}
		var sig traceStep
		for _, s := range ra.Trace {
			if s.Step == "signature" {
				sig = s
			}
		}
		if !sig.OK || !strings.Contains(sig.Detail, "skipped") {
			t.Errorf("redelivery's signature step: %+v", sig)
		}
		e.call("GET", "/api/v1/deliveries/"+itoa(ra.Delivery), dev.Token, nil).json(t, &d)
		if d.RedeliveryOf == nil || *d.RedeliveryOf != goodAnswer.Delivery || d.RunID == nil || *d.RunID != ra.Run.ID {
			t.Errorf("the redelivery: redelivery_of %v run %v", d.RedeliveryOf, d.RunID)
		}
		if rn, _ := e.st.RunGet(context.Background(), ra.Run.ID); rn.Variables["abc"] != "ok" {
			t.Errorf("redelivered run variables %v", rn.Variables)
		}
		// Redelivering a refusal that still fails answers its status.
		if rd := e.call("POST", "/api/v1/deliveries/"+itoa(invalid.answer(t).Delivery)+"/redeliver", dev.Token, nil); rd.Status != 422 {
			t.Errorf("redeliver of the 422: %s", rd)
		}
		if n := len(e.runs("logged")); n != 2 {
			t.Errorf("%d runs, want 2", n)
		}
	})
}

// TestWebhookDryRun: a dry run decides everything, starts nothing, and masks secrets.
func TestWebhookDryRun(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		h := e.newHook("dry", nil)
		check := func(r response, wantAbc string) {
			t.Helper()
			a := r.answer(t)
			if r.Status != 200 || !a.DryRun || a.Run != nil || !a.WouldStart || a.Delivery == 0 {
				t.Fatalf("dry run: %s", r)
			}
			want := map[string]string{"abc": wantAbc, "TARGET": "staging", "API_KEY": "***"}
			if !reflect.DeepEqual(a.Variables, want) {
				t.Errorf("variables %v, want %v", a.Variables, want)
			}
			if !reflect.DeepEqual(a.Ignored, []string{"other"}) {
				t.Errorf("ignored %v", a.Ignored)
			}
			if strings.Contains(string(r.Body), secretValue) || strings.Contains(string(r.Body), "mine") {
				t.Error("a secret value is in the dry run's answer")
			}
			if d := e.delivery(a.Delivery); !d.DryRun || d.RunID != nil || d.StatusCode != 200 {
				t.Errorf("stored dry run: %+v", d)
			}
		}
		check(e.hookPath("/pipeline/webhook/"+h.token+"?dry_run=1", "application/json", `{"abc":"7","other":1}`), "7")
		check(e.hookPath("/pipeline/webhook/"+h.token+"?dry_run=1", "application/json", `{"abc":"7","other":1,"API_KEY":"mine"}`), "7")

		rq := request{method: "POST", path: "/api/v1/pipelines/dry/triggers/webhook/dry-run", token: h.owner.Token,
			contentType: "application/json", body: strings.NewReader(`{"abc":"8","other":true}`)}
		r := e.do(rq)
		check(r, "8")
		if d := e.delivery(r.answer(t).Delivery); len(d.Headers["Authorization"]) != 0 {
			t.Errorf("the caller's Authorization header was stored: %v", d.Headers["Authorization"])
		}

		// A refused dry run answers the refusal's status.
		if r := e.hookPath("/pipeline/webhook/"+h.token+"?dry_run=1", "application/json", `{"TARGET":"moon"}`); r.Status != 422 {
			t.Errorf("refused dry run: %s", r)
		}
		big := request{method: "POST", path: "/api/v1/pipelines/dry/triggers/webhook/dry-run", token: h.owner.Token,
			contentType: "application/json", body: strings.NewReader(`{"abc":"` + strings.Repeat("y", 64<<10) + `"}`)}
		if r := e.do(big); r.Status != 413 || r.answer(t).Delivery == 0 {
			t.Errorf("oversized dry run: %s", truncate(r.String(), 200))
		}
		if n := len(e.runs("dry")); n != 0 {
			t.Errorf("dry runs started %d runs", n)
		}
	})
}

// TestWebhookTokenNeverInClear: after enable, deliveries and rotate, no token is in the SQLite
// files or the server's log.
func TestWebhookTokenNeverInClear(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	dsn := storetestDSN(t)
	st := openStoreLogging(t, dsn, &logs)
	e := newEnvWithStore(t, st, func(s *api.Server) { s.Logger = newLogger(&logs); s.WebhookRate, s.WebhookBurst = 1000, 5 })
	h := e.newHook("secretive", map[string]string{"secret": "k"})
	tokens := []string{h.token}
	e.hook(h.token, "application/json", `{}`)
	e.hook(h.token, "application/json", `{}`, "X-Hub-Signature-256", sign("k", `{}`))
	e.hook(h.token, "text/csv", `x`, "X-Hub-Signature-256", sign("k", `x`))
	for range 10 { // some are rate limited
		e.hook(h.token, "application/json", `{}`, "X-Hub-Signature-256", sign("k", `{}`))
	}
	e.hook(h.token+"x", "application/json", `{}`)
	e.do(request{method: "GET", path: "/pipeline/webhook/" + h.token})
	var rotated triggerOut
	e.call("POST", "/api/v1/pipelines/secretive/triggers/webhook/rotate", h.owner.Token, nil).json(t, &rotated)
	tokens = append(tokens, rotated.token())
	e.hook(rotated.token(), "application/json", `{}`)
	e.call("POST", "/api/v1/pipelines/secretive/triggers/webhook/disable", h.owner.Token, nil)
	e.hook(rotated.token(), "application/json", `{}`)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// A webhook call against the closed store logs too.
	e.hook(rotated.token(), "application/json", `{}`)

	files := sqliteFiles(t, dsn)
	if len(files) == 0 {
		t.Fatal("found no SQLite files to search")
	}
	for _, tok := range tokens {
		if tok == "" {
			t.Fatal("no token")
		}
		for name, b := range files {
			if bytes.Contains(b, []byte(tok)) {
				t.Errorf("a webhook token is stored in clear in %s", name)
			}
		}
		if strings.Contains(logs.String(), tok) {
			t.Errorf("a webhook token is in the server's log")
		}
	}
	if !strings.Contains(logs.String(), "database unavailable") {
		t.Errorf("the log has nothing from the closed store; was it captured?\n%s", logs.String())
	}
}

// lockedBuffer is a log sink for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
