package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/api"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/trigger"
	"github.com/flowd/flowd/internal/webhook"
)

// percentAll encodes every byte of s as %XX, as a hostile sender may.
func percentAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteString("%")
		b.WriteString(strings.ToUpper(string("0123456789abcdef"[s[i]>>4]) + string("0123456789abcdef"[s[i]&15])))
	}
	return b.String()
}

// jsonTexts are the decoded strings and numbers of the JSON text data, as far as it parses.
func jsonTexts(data []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out []string
	for {
		tok, err := dec.Token()
		if err != nil {
			return out
		}
		switch t := tok.(type) {
		case string:
			out = append(out, t)
		case json.Number:
			out = append(out, string(t))
		}
	}
}

// exposes reports whether a stored body shows v: in its bytes, in its JSON strings after
// unescaping, in its form fields after URL-decoding (and the JSON of a payload field).
func exposes(body []byte, v string) bool {
	texts := append([]string{string(body)}, jsonTexts(body)...)
	form, _ := url.ParseQuery(string(body)) // what parses, even when some field does not
	for k, vs := range form {
		texts = append(texts, k)
		for _, fv := range vs {
			texts = append(texts, fv)
			texts = append(texts, jsonTexts([]byte(fv))...)
		}
	}
	for _, s := range texts {
		if strings.Contains(s, v) {
			return true
		}
	}
	return false
}

// runSecret is the value of the secret variable name the run of a webhook answer received.
func (e *env) runSecret(a hookAnswer, name string) string {
	e.t.Helper()
	rn, err := e.st.RunGet(context.Background(), a.Run.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	sec, err := trigger.OpenSecrets(e.box, rn.SecretVariables)
	if err != nil {
		e.t.Fatal(err)
	}
	return sec[name]
}

// TestWebhookRedactsDecodedBodies: whatever encodes the field that sets a secret variable (an
// encoded payload name, GitLab-style or plain form fields, JSON escapes, every byte
// percent-encoded), the run gets the value and the delivery log keeps ***; a secret that a
// webhook.variables rule reads from deep in the body is masked there too.
func TestWebhookRedactsDecodedBodies(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		h := e.newHook("redact", nil)
		const form = "application/x-www-form-urlencoded"
		cases := []struct{ name, contentType, body, value string }{
			{"the issue's body: an encoded payload name", form, `pay%6Coad=%7B%22API_KEY%22%3A%22sk-live-0001%22%7D`, "sk-live-0001"},
			{"a plain form field", form, `abc=2&API_KEY=sk-live-0002`, "sk-live-0002"},
			{"a GitLab-style form field, encoded", form, `variables%5BAPI_KEY%5D=sk-live-0003`, "sk-live-0003"},
			{"every byte percent-encoded", form, percentAll("payload") + "=" + percentAll(`{"API_KEY":"sk-live-0004"}`), "sk-live-0004"},
			{"JSON escapes in key and value", "application/json", `{"API\u005fKEY":"sk-\u006cive-0005"}`, "sk-live-0005"},
			{"JSON sent as a form", form, `{"API_KEY":"sk-live-0006","abc":"7"}`, "sk-live-0006"},
		}
		for _, c := range cases {
			r := e.hook(h.token, c.contentType, c.body)
			if r.Status != http.StatusAccepted {
				t.Fatalf("%s: %s", c.name, r)
			}
			a := r.answer(t)
			if got := e.runSecret(a, "API_KEY"); got != c.value {
				t.Errorf("%s: the run's API_KEY = %q, want %q", c.name, got, c.value)
			}
			g := e.call("GET", "/api/v1/deliveries/"+itoa(a.Delivery), h.owner.Token, nil)
			var d struct {
				Body    string              `json:"body"`
				Headers map[string][]string `json:"headers"`
			}
			g.json(t, &d)
			if g.Status != http.StatusOK || exposes([]byte(d.Body), c.value) || strings.Contains(string(g.Body), c.value) {
				t.Errorf("%s: the delivery log shows the secret: %s", c.name, g)
			}
			vars, err := webhook.DecodePayload(c.contentType, []byte(d.Body))
			if err != nil || string(vars["API_KEY"]) != `"***"` {
				t.Errorf("%s: the stored body %q decodes to API_KEY %s (%v), want \"***\"", c.name, d.Body, vars["API_KEY"], err)
			}
		}

		// A secret set by a rule from deep in the body, percent-encoded in a form.
		owner := e.user("rules-owner", false)
		def := `name: deep
variables:
  TOKEN: {secret: true, default: ""}
webhook:
  variables:
    TOKEN: 'body.nested.token'
stages:
  - name: s
    jobs:
      - name: j
        steps:
          - run: 'true'
`
		if r := e.yaml("POST", "/api/v1/pipelines", owner.Token, def); r.Status != http.StatusCreated {
			t.Fatalf("create: %s", r)
		}
		token := e.enable("deep", owner, nil).token()
		for _, body := range []string{
			"payload=" + percentAll(`{"nested":{"token":"tk-deep-0001"}}`),
			`{"nested":{"token":"tk-\u0064eep-0001"},"echo":"tk-deep-0001"}`,
		} {
			r := e.hook(token, form, body)
			if r.Status != http.StatusAccepted {
				t.Fatalf("deep %s: %s", body, r)
			}
			a := r.answer(t)
			if got := e.runSecret(a, "TOKEN"); got != "tk-deep-0001" {
				t.Errorf("deep: the run's TOKEN = %q", got)
			}
			if d := e.delivery(a.Delivery); exposes(d.Body, "tk-deep-0001") {
				t.Errorf("deep: the stored body %q shows the rule's secret", d.Body)
			}
		}
	})
}

// FuzzWebhookRedaction sends bodies through the real HTTP server and compares what the run
// received with what the delivery log stored: no secret value the run received (at least
// trigger.MinMaskLen long; shorter ones are masked by key only) appears in the stored body or
// headers, decoded in any way the webhook decodes, and the stored body, decoded as the
// webhook decodes it, never gives API_KEY a value other than ***.
// go test ./internal/api -run '^$' -fuzz FuzzWebhookRedaction -fuzztime 1m
func FuzzWebhookRedaction(f *testing.F) {
	seeds := []struct {
		kind uint8 // 0 form, 1 JSON, 2 no Content-Type
		body string
	}{
		{0, `pay%6Coad=%7B%22API_KEY%22%3A%22fz-secret-1%22%7D`},
		{0, `API_KEY=fz-secret-2&abc=1`},
		{0, `variables%5BAPI_KEY%5D=fz-secret-3&variables[abc]=4`},
		{0, `payload=%7B%22API%5Cu005fKEY%22%3A%22fz%5Cu002dsecret-4%22%7D`},
		{1, `{"API\u005fKEY":"fz-\u0073ecret-5","abc":"x"}`},
		{1, `{"API_KEY":"a","API_KEY":"fz-secret-6"}`},
		{2, `  {"API_KEY": 123456789}`},
		{0, `API_KEY=%66z-secret-7&API_KEY=fz+secret+8`},
		{0, `{"API_KEY":"fz-secret-9"}`},
		{0, `API%5FKEY=fz%26secret%3D10&payload2=x`},
		{1, `{"API_KEY":"fz\"secret<11>","abc":"fz\"secret<11>"}`},
	}
	for _, s := range seeds {
		f.Add(s.kind, []byte(s.body))
	}
	st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(f.TempDir(), "flowd.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	base := newEnvWithStore(f, st, func(s *api.Server) { s.Logger = slog.New(slog.DiscardHandler) })
	h := base.newHook("fuzz", nil)
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		e := base.with(t)
		contentType := []string{"application/x-www-form-urlencoded", "application/json", ""}[kind%3]
		r := e.hook(h.token, contentType, string(body))
		if r.Status != http.StatusAccepted {
			return // no run received anything
		}
		a := r.answer(t)
		got := e.runSecret(a, "API_KEY")
		d := e.delivery(a.Delivery)
		if len(got) >= trigger.MinMaskLen {
			if exposes(d.Body, got) {
				t.Errorf("the run got API_KEY %q and the stored body %q shows it", got, d.Body)
			}
			for k, vs := range d.Headers {
				for _, v := range vs {
					if strings.Contains(v, got) {
						t.Errorf("the stored header %s: %q shows API_KEY %q", k, v, got)
					}
				}
			}
		}
		if got != secretValue { // the body set it
			vars, err := webhook.DecodePayload(contentType, d.Body)
			if raw, ok := vars["API_KEY"]; err == nil && ok && string(raw) != `"***"` {
				t.Errorf("the run got API_KEY %q; the stored body %q decodes to %s", got, d.Body, raw)
			}
		}
	})
}

// TestWebhookRedactsOwnToken: a GitHub ping carries the webhook's URL (hook.config.url), so
// its token, in the body; a header may carry it too. The delivery log keeps neither, for a
// delivery to the URL and for one sent through the API (a dry run of the same body).
func TestWebhookRedactsOwnToken(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		h := e.newHook("ping", nil)
		ping, err := os.ReadFile(filepath.Join("..", "webhook", "githost", "testdata", "fixtures", "github", "ping.json"))
		if err != nil {
			t.Fatal(err)
		}
		hookURL := "https://ci.example.com/pipeline/webhook/" + h.token
		body := strings.Replace(string(ping), "https://ngrok.io/webhook", hookURL+"?from=github", 1)
		if !strings.Contains(body, h.token) {
			t.Fatal("the ping fixture has no hook.config.url to replace")
		}
		r := e.hook(h.token, "application/json", body, "X-GitHub-Event", "ping", "X-GitHub-Delivery", "d-1", "Referer", hookURL)
		if r.Status != http.StatusOK || r.answer(t).Skipped == nil {
			t.Fatalf("ping: %s; want 200 skipped", r)
		}
		g := e.call("GET", "/api/v1/deliveries/"+itoa(r.answer(t).Delivery), h.owner.Token, nil)
		if g.Status != http.StatusOK || strings.Contains(string(g.Body), h.token) {
			t.Errorf("the delivery log shows the webhook's token: %s", g)
		}
		if !strings.Contains(string(g.Body), `https://ci.example.com/pipeline/webhook/***?from=github`) {
			t.Errorf("the stored ping lost more than the token: %s", g)
		}

		dr := e.do(request{method: "POST", path: "/api/v1/pipelines/ping/triggers/webhook/dry-run", token: h.owner.Token,
			contentType: "application/json", body: strings.NewReader(`{"abc":"1","url":"` + hookURL + `"}`)})
		if dr.Status != http.StatusOK {
			t.Fatalf("dry run: %s", dr)
		}
		if d := e.delivery(dr.answer(t).Delivery); bytes.Contains(d.Body, []byte(h.token)) {
			t.Errorf("the dry run's stored body shows the token: %s", d.Body)
		}
	})
}

// TestWebhookFormVariables: application/x-www-form-urlencoded bodies of fields override
// variables as a JSON object does (GitLab's variables[NAME]=value and plain NAME=value), with
// the same checks: options, reserved names, undeclared keys ignored.
func TestWebhookFormVariables(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		h := e.newHook("formvars", nil)
		const form = "application/x-www-form-urlencoded"
		for _, c := range []struct {
			body    string
			abc     string
			target  string
			ignored []string
		}{
			{`abc=456`, "456", "staging", nil},
			{`variables[abc]=456&variables%5BTARGET%5D=production`, "456", "production", nil},
			{`abc=a+b%26c&nope=1`, "a b&c", "staging", []string{"nope"}},
			{`abc=1&variables[abc]=2`, "2", "staging", nil},
		} {
			r := e.hook(h.token, form, c.body)
			a := r.answer(t)
			if r.Status != http.StatusAccepted || a.Run == nil {
				t.Fatalf("%s: %s", c.body, r)
			}
			rn, err := e.st.RunGet(context.Background(), a.Run.ID)
			if err != nil {
				t.Fatal(err)
			}
			if rn.Variables["abc"] != c.abc || rn.Variables["TARGET"] != c.target || strings.Join(a.Ignored, ",") != strings.Join(c.ignored, ",") {
				t.Errorf("%s: abc=%q TARGET=%q ignored %v", c.body, rn.Variables["abc"], rn.Variables["TARGET"], a.Ignored)
			}
		}
		for _, c := range []struct{ body, key string }{
			{`TARGET=moon`, "TARGET"},
			{`variables[PATH]=/tmp`, "PATH"},
			{`FLOWD_RUN_ID=1`, "FLOWD_RUN_ID"},
		} {
			r := e.hook(h.token, form, c.body)
			a := r.answer(t)
			if r.Status != http.StatusUnprocessableEntity || a.Error == nil || a.Error.Code != "invalid_variables" ||
				len(a.Error.Problems) == 0 || a.Error.Problems[0].Key != c.key {
				t.Errorf("%s: %s; want 422 invalid_variables naming %s", c.body, r, c.key)
			}
		}
		if r := e.hook(h.token, form, `abc=%zz`); r.Status != http.StatusBadRequest || r.errorCode() != "invalid_json" {
			t.Errorf("a broken form: %s", r)
		}
	})
}
