package trigger_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/trigger"
)

func TestRedactBody(t *testing.T) {
	t.Parallel()
	secret := map[string]bool{"API_KEY": true, "PIN": true}
	form := func(payload string) string { return "a=1&payload=" + url.QueryEscape(payload) + "&b=2" }
	qe := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "%2A", "*") } // a masked field's encoding
	cases := []struct{ name, in, want string }{
		{"no secret key: byte for byte", "{ \"abc\" : \"1\",\n \"x\":[1,{\"API_KEY\":\"nested\"}] }", "{ \"abc\" : \"1\",\n \"x\":[1,{\"API_KEY\":\"nested\"}] }"},
		{"the secret value only", `{"abc": "1", "API_KEY" :  "hunter2" , "z":true}`, `{"abc": "1", "API_KEY" :  "***" , "z":true}`},
		{"an escaped key", `{"API\u005fKEY":"hunter2"}`, `{"API\u005fKEY":"***"}`},
		{"every repeat and any value", `{"PIN":1234,"API_KEY":{"a":"b"},"PIN":"5678"}`, `{"PIN":"***","API_KEY":"***","PIN":"***"}`},
		{"cut at the limit inside the value", `{"abc":"1","API_KEY":"hunt`, `{"abc":"1","API_KEY":"***"`},
		{"broken after the secret", `{"API_KEY":"hunter2", oops`, `{"API_KEY":"***", oops`},
		{"a secret key as a value is no key", `{"abc":"API_KEY"}`, `{"abc":"API_KEY"}`},
		{"not an object", `["API_KEY","hunter2"]`, `["API_KEY","hunter2"]`},
		{"a form field", `API_KEY=hunter2&abc=1`, `API_KEY=***&abc=1`},
		{"a GitLab-style form field", `variables%5BAPI_KEY%5D=hunter2&abc=1`, `variables%5BAPI_KEY%5D=***&abc=1`},
		{"an encoded payload name", `pay%6Coad=` + url.QueryEscape(`{"API_KEY":"hunter2"}`), `pay%6Coad=` + qe(`{"API_KEY":"***"}`)},
		{"empty", ``, ``},
		{"GitHub's form encoding", form(`{"API_KEY":"hunter2","abc":"1"}`), "a=1&payload=" + qe(`{"API_KEY":"***","abc":"1"}`) + "&b=2"},
		{"a form without secrets", form(`{"abc":"1"}`), form(`{"abc":"1"}`)},
	}
	for _, c := range cases {
		if got := string(trigger.RedactBody([]byte(c.in), secret)); got != c.want {
			t.Errorf("%s: RedactBody(%q) = %q, want %q", c.name, c.in, got, c.want)
		}
	}
	if got := string(trigger.RedactBody([]byte(`{"API_KEY":"x"}`), nil)); got != `{"API_KEY":"x"}` {
		t.Errorf("no secret variables: %q", got)
	}
}

// TestRedactStored: values (secrets a rule read, the trigger's token) are masked wherever they
// are, decoded; values shorter than MinMaskLen only by key.
func TestRedactStored(t *testing.T) {
	t.Parallel()
	secret := map[string]bool{"API_KEY": true}
	values := []string{"tok-abcdef", "deep-secret", "ab"}
	cases := []struct{ name, in, want string }{
		{"a nested JSON string, escaped", `{"a":{"b":"deep\u002dsecret"},"n":1}`, `{"a":{"b":"***"},"n":1}`},
		{"inside a longer string", `{"url":"https://ci/pipeline/webhook/tok-abcdef?x=1"}`, `{"url":"https://ci/pipeline/webhook/***?x=1"}`},
		{"a JSON key", `{"deep-secret":1}`, `{"***":1}`},
		{"a percent-encoded form value", "x=%64eep-secret&y=2", "x=***&y=2"},
		{"inside a payload field's JSON", "payload=" + url.QueryEscape(`{"a":["deep-secret"]}`), "payload=" + strings.ReplaceAll(url.QueryEscape(`{"a":["***"]}`), "%2A", "*")},
		{"a short value stays, unless by key", `{"abc":"ab","API_KEY":"ab"}`, `{"abc":"ab","API_KEY":"***"}`},
		{"raw in a body that is neither", "--deep-secret--", "--***--"},
	}
	for _, c := range cases {
		if got := string(trigger.RedactStored([]byte(c.in), secret, values)); got != c.want {
			t.Errorf("%s: RedactStored(%q) = %q, want %q", c.name, c.in, got, c.want)
		}
	}
}

// TestDeliverMasksSecretValues: a body that sets a secret variable is stored with the value
// masked, on every path (started, refused before the pipeline is read, refused by the variables
// step); the value is in no trace or answer; a redelivery of the masked body runs with the
// secret's default and says so.
func TestDeliverMasksSecretValues(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		box := newBox(t)
		svc := &trigger.Webhooks{Store: st, Runs: &trigger.Service{Store: st, Box: box}, Box: box}
		p, _, token := hookSetup(t, st, svc)
		const value = "hunter2-value"
		body := `{"abc":"7","API_KEY":"` + value + `"}`
		signed := http.Header{"Content-Type": {"application/json"}, "X-Hub-Signature-256": {sign("k", body)}}

		checkStored := func(what string, id int64) store.Delivery {
			t.Helper()
			d, err := st.DeliveryGet(ctx, id)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if want := `{"abc":"7","API_KEY":"***"}`; string(d.Body) != want {
				t.Errorf("%s: stored body %s, want %s", what, d.Body, want)
			}
			for name, b := range map[string][]byte{"trace": d.Trace, "response": d.Response} {
				if strings.Contains(string(b), value) || strings.Contains(string(b), "s3cr3t-value") {
					t.Errorf("%s: the stored %s shows a secret: %s", what, name, b)
				}
			}
			return d
		}

		out := svc.Deliver(ctx, trigger.Incoming{Token: token, Headers: signed, Body: []byte(body)})
		if out.Code != trigger.CodeStarted || strings.Contains(string(out.Body), value) {
			t.Fatalf("signed delivery: %s %s", out.Code, out.Body)
		}
		checkStored("started", out.DeliveryID)
		r, err := st.RunGet(ctx, out.RunID)
		if err != nil {
			t.Fatal(err)
		}
		if secrets, err := trigger.OpenSecrets(box, r.SecretVariables); err != nil || secrets["API_KEY"] != value {
			t.Errorf("the run's API_KEY = %q (%v), want the body's value", secrets["API_KEY"], err)
		}

		// Refused at the signature step, before the pipeline is read: masked all the same.
		bad := svc.Deliver(ctx, trigger.Incoming{Token: token, Headers: http.Header{"X-Hub-Signature-256": {"sha256=00"}}, Body: []byte(body)})
		if bad.Code != trigger.CodeInvalidSignature {
			t.Fatalf("bad signature: %s %s", bad.Code, bad.Body)
		}
		checkStored("bad signature", bad.DeliveryID)

		// A redelivery sees "***": the default is used, and the trace says why.
		re := svc.Deliver(ctx, trigger.Incoming{PipelineID: p.ID, Headers: http.Header{"Content-Type": {"application/json"}},
			Body: []byte(`{"abc":"7","API_KEY":"***"}`), RedeliveryOf: out.DeliveryID, Signature: store.SignaturePassed, SkipSignature: true, Actor: "alice"})
		if re.Code != trigger.CodeStarted {
			t.Fatalf("redelivery: %s %s", re.Code, re.Body)
		}
		if !strings.Contains(string(re.Body), "API_KEY: the stored value was masked; the default is used") {
			t.Errorf("redelivery trace does not say the default is used: %s", re.Body)
		}
		r, err = st.RunGet(ctx, re.RunID)
		if err != nil {
			t.Fatal(err)
		}
		if secrets, err := trigger.OpenSecrets(box, r.SecretVariables); err != nil || secrets["API_KEY"] != "s3cr3t-value" {
			t.Errorf("the redelivered run's API_KEY = %q (%v), want the default", secrets["API_KEY"], err)
		}
		if r.Variables["abc"] != "7" {
			t.Errorf("the redelivered run's abc = %q, want 7", r.Variables["abc"])
		}

		// The URL takes "***" as a value like any other (only stored bodies are masked).
		lit := `{"API_KEY":"***"}`
		direct := svc.Deliver(ctx, trigger.Incoming{Token: token, Headers: http.Header{"X-Hub-Signature-256": {sign("k", lit)}}, Body: []byte(lit)})
		if direct.Code != trigger.CodeStarted || strings.Contains(string(direct.Body), "masked") {
			t.Errorf("URL delivery of ***: %s %s", direct.Code, direct.Body)
		}
	})
}

// TestDeliverSecretValueNotInProblems: a secret with options refuses a value outside them
// without quoting it, in the answer, the stored trace and the stored answer.
func TestDeliverSecretValueNotInProblems(t *testing.T) {
	t.Parallel()
	st := storetestOpen(t)
	ctx := context.Background()
	box := newBox(t)
	svc := &trigger.Webhooks{Store: st, Runs: &trigger.Service{Store: st, Box: box}, Box: box}
	hash, _ := auth.HashPasswordCost("password1", 4)
	u, err := st.UserCreate(ctx, "alice", hash, false)
	if err != nil {
		t.Fatal(err)
	}
	const def = `name: pins
variables:
  PIN:
    secret: true
    default: ""
    options: ["", "1111", "2222"]
stages:
  - name: s
    jobs:
      - name: j
        steps:
          - run: "true"
`
	p, err := st.PipelineCreate(ctx, "pins", def, nil, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	token, tokHash, _ := trigger.NewWebhookToken()
	sealed, _ := box.Seal([]byte(token))
	if _, err := st.WebhookEnable(ctx, store.WebhookEnable{PipelineID: p.ID, OwnerID: u.ID, TokenHash: tokHash, TokenSealed: sealed}); err != nil {
		t.Fatal(err)
	}
	for _, dry := range []bool{false, true} {
		out := svc.Deliver(ctx, trigger.Incoming{Token: token, Headers: http.Header{}, Body: []byte(`{"PIN":"9876-guess"}`), DryRun: dry})
		if out.Code != trigger.CodeInvalidVariables || !strings.Contains(string(out.Body), "PIN") {
			t.Fatalf("bad PIN (dry %v): %s %s", dry, out.Code, out.Body)
		}
		d, err := st.DeliveryGet(ctx, out.DeliveryID)
		if err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string][]byte{"answer": out.Body, "stored trace": d.Trace, "stored answer": d.Response, "stored body": d.Body} {
			if strings.Contains(string(b), "9876-guess") {
				t.Errorf("dry %v: the %s shows the secret value: %s", dry, name, b)
			}
		}
	}
}
