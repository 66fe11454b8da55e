package trigger_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/trigger"
	"github.com/flowd/flowd/internal/webhook/githost"
)

const alertsPipeline = `name: alerts
variables:
  SERVICE: ""
  LEVEL: info
  TOKEN:
    secret: true
    default: ""
webhook:
  filter: 'body.status == "firing"'
  variables:
    SERVICE: 'body.alerts[0].labels.service'
    TOKEN: '"t-" + body.alerts[0].labels.service'
stages:
  - name: s
    jobs:
      - name: j
        steps:
          - run: 'true'
`

// TestRules: webhook.filter and webhook.variables over an Alertmanager payload.
func TestRules(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		svc, _, token := hook(t, st, alertsPipeline, "")
		send := func(body string) (trigger.Code, reply) {
			out, r := deliver(t, svc, trigger.Incoming{Token: token, Headers: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body)})
			return out.Code, r
		}

		// firing: SERVICE comes from the rule, LEVEL from the body, the body's SERVICE loses.
		code, r := send(`{"status":"firing","LEVEL":"page","SERVICE":"ignored","alerts":[{"labels":{"service":"api"}}]}`)
		if code != trigger.CodeStarted || r.Run == nil {
			t.Fatalf("firing: %s %+v", code, r)
		}
		got, err := st.RunGet(ctx, r.Run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Variables["SERVICE"] != "api" || got.Variables["LEVEL"] != "page" || got.Git != nil {
			t.Errorf("variables %v git %v", got.Variables, got.Git)
		}
		secrets, _ := trigger.OpenSecrets(svc.Box, got.SecretVariables)
		if secrets["TOKEN"] != "t-api" {
			t.Errorf("secret TOKEN = %q", secrets["TOKEN"])
		}
		var lines []string
		for _, s := range r.Trace {
			if s.Step == "rules" {
				lines = append(lines, s.Detail)
			}
		}
		want := []string{"webhook.filter = true", `SERVICE = "api"`, "TOKEN = ***", "body keys SERVICE ignored: webhook.variables sets them"}
		if strings.Join(lines, "|") != strings.Join(want, "|") {
			t.Errorf("rules trace %q, want %q", lines, want)
		}

		// resolved: filtered out, recorded, no run.
		code, r = send(`{"status":"resolved","alerts":[{"labels":{"service":"api"}}]}`)
		if code != trigger.CodeSkipped || r.Run != nil || r.Skipped == nil || *r.Skipped != "webhook.filter is false" {
			t.Errorf("resolved: %s %+v", code, r)
		}
		if last := r.Trace[len(r.Trace)-1]; last.Step != "rules" || last.OK || last.Detail != "webhook.filter = false" {
			t.Errorf("resolved: trace ends %+v", last)
		}

		// A missing key: 422 with CEL's words and the rule's name.
		code, r = send(`{"status":"firing"}`)
		if code != trigger.CodeInvalidVariables || r.Error == nil || r.Error.Code != "invalid_variables" ||
			!strings.Contains(r.Error.Message, "webhook.variables.SERVICE") || !strings.Contains(r.Error.Message, "no such key: alerts") {
			t.Errorf("missing key: %s %+v", code, r.Error)
		}
		if r.Error == nil || len(r.Error.Problems) != 2 || r.Error.Problems[0].Key != "SERVICE" || r.Error.Problems[1].Key != "TOKEN" {
			t.Errorf("missing key: problems %+v", r.Error)
		}

		// A body that is not an object is fine for a pipeline with rules.
		code, r = send(`["x"]`)
		if code != trigger.CodeInvalidVariables || r.Error == nil || !strings.Contains(r.Error.Message, "webhook.filter") {
			t.Errorf("array body: %s %+v", code, r.Error)
		}
		if s, ok := step(r.Trace, "payload"); !ok || !s.OK {
			t.Errorf("array body: payload step %+v", s)
		}
	})
}

// TestRulesNonScalar: a rule whose result is a map or list is 422 invalid_variables.
func TestRulesNonScalar(t *testing.T) {
	t.Parallel()
	st := storetestOpen(t)
	svc, _, token := hook(t, st, `name: ns
variables: {LABELS: ""}
webhook:
  variables:
    LABELS: 'body.alerts[0].labels'
stages:
  - name: s
    jobs:
      - name: j
        steps:
          - run: 'true'
`, "")
	out, r := deliver(t, svc, trigger.Incoming{Token: token, Headers: http.Header{}, Body: []byte(`{"alerts":[{"labels":{"service":"api"}}]}`)})
	if out.Code != trigger.CodeInvalidVariables || r.Error == nil || r.Error.Code != "invalid_variables" ||
		!strings.Contains(r.Error.Message, "webhook.variables.LABELS must give a string, number or bool, got map") {
		t.Errorf("got %s %s", out.Code, out.Body)
	}
	if last := r.Trace[len(r.Trace)-1]; last.Step != "rules" || last.OK {
		t.Errorf("trace ends %+v", last)
	}
}

// TestRulesSeeEvent: rules of a pipeline with a source see the Git event and the headers.
func TestRulesSeeEvent(t *testing.T) {
	t.Parallel()
	st := storetestOpen(t)
	body := fixture(t, "github/push.json")
	svc, _, token := hook(t, st, `name: ev
source: {url: "https://github.com/binkkatal/sample_app.git"}
variables: {WHO: "", N: ""}
webhook:
  filter: 'event.kind == "push" && headers["x-github-event"] == "push"'
  variables:
    WHO: 'event.pusher + " on " + event.branch'
    N: 'size(event.commits)'
stages:
  - name: s
    jobs:
      - name: j
        steps:
          - run: 'true'
`, "")
	out, r := deliver(t, svc, trigger.Incoming{Token: token, Headers: hostRequest(githost.GitHub, "push", "", body, ""), Body: body})
	if out.Code != trigger.CodeStarted {
		t.Fatalf("got %s %s", out.Code, out.Body)
	}
	got, _ := st.RunGet(context.Background(), r.Run.ID)
	if got.Variables["WHO"] != "binkkatal on master" || got.Variables["N"] == "" || got.Variables["N"] == "0" {
		t.Errorf("variables %v", got.Variables)
	}
}
