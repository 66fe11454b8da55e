package api_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/trigger"
)

// TestDeliverySecretValuesMasked: a body that sets a secret variable is kept with the value as
// ***: GET delivery shows no value; a redelivery (and a dry run of the stored body) runs with
// the secret's default and says so in its trace.
func TestDeliverySecretValuesMasked(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		h := e.newHook("masked", map[string]string{"secret": "k"})
		const value = "hunter2-in-the-body"
		body := `{"abc":"1","API_KEY":"` + value + `"}`
		r := e.hook(h.token, "application/json", body, "X-Hub-Signature-256", sign("k", body))
		if r.Status != http.StatusAccepted || strings.Contains(string(r.Body), value) {
			t.Fatalf("delivery: %s", r)
		}
		first := r.answer(t)
		rn, err := e.st.RunGet(context.Background(), first.Run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if sec, err := trigger.OpenSecrets(e.box, rn.SecretVariables); err != nil || sec["API_KEY"] != value {
			t.Errorf("the run's API_KEY = %q (%v), want the body's value", sec["API_KEY"], err)
		}

		var d struct {
			Body     string      `json:"body"`
			Response hookAnswer  `json:"response"`
			Trace    []traceStep `json:"trace"`
		}
		g := e.call("GET", "/api/v1/deliveries/"+itoa(first.Delivery), h.owner.Token, nil)
		g.json(t, &d)
		if g.Status != 200 || d.Body != `{"abc":"1","API_KEY":"***"}` {
			t.Fatalf("GET delivery: %s", g)
		}
		if strings.Contains(string(g.Body), value) || strings.Contains(string(g.Body), secretValue) {
			t.Errorf("GET delivery shows a secret value: %s", g)
		}

		const maskedLine = "API_KEY: the stored value was masked; the default is used"
		hasLine := func(tr []traceStep) bool {
			for _, s := range tr {
				if s.Step == "variables" && s.OK && s.Detail == maskedLine {
					return true
				}
			}
			return false
		}
		rd := e.call("POST", "/api/v1/deliveries/"+itoa(first.Delivery)+"/redeliver", h.owner.Token, nil)
		ra := rd.answer(t)
		if rd.Status != http.StatusAccepted || ra.Run == nil || !hasLine(ra.Trace) {
			t.Fatalf("redeliver: %s", rd)
		}
		rn, err = e.st.RunGet(context.Background(), ra.Run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if sec, err := trigger.OpenSecrets(e.box, rn.SecretVariables); err != nil || sec["API_KEY"] != secretValue {
			t.Errorf("the redelivered run's API_KEY = %q (%v), want the default", sec["API_KEY"], err)
		}
		if rn.Variables["abc"] != "1" {
			t.Errorf("the redelivered run's abc = %q", rn.Variables["abc"])
		}
		if strings.Contains(string(rd.Body), secretValue) || strings.Contains(string(e.delivery(ra.Delivery).Trace), secretValue) {
			t.Errorf("the redelivery shows the secret's default: %s", rd)
		}

		// The UI's dry run of the stored delivery: its body, no signature header.
		dr := e.do(request{method: "POST", path: "/api/v1/pipelines/masked/triggers/webhook/dry-run", token: h.owner.Token,
			contentType: "application/json", body: strings.NewReader(d.Body)})
		da := dr.answer(t)
		if dr.Status != 200 || !da.WouldStart || !hasLine(da.Trace) || da.Variables["API_KEY"] != "***" {
			t.Errorf("dry run of the stored body: %s", dr)
		}
	})
}

// TestWebhookDryRunSignature: the dry-run route skips the signature step when the request
// carries no signature or token header (the caller is signed in), and checks one it carries.
func TestWebhookDryRunSignature(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		h := e.newHook("dsig", map[string]string{"secret": "k"})
		body := `{"abc":"5"}`
		dry := func(headers ...string) response {
			t.Helper()
			req, err := http.NewRequest("POST", e.srv.URL+"/api/v1/pipelines/dsig/triggers/webhook/dry-run", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+h.owner.Token)
			req.Header.Set("Content-Type", "application/json")
			for i := 0; i+1 < len(headers); i += 2 {
				req.Header.Set(headers[i], headers[i+1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
		}
		sigStep := func(a hookAnswer) traceStep {
			for _, s := range a.Trace {
				if s.Step == "signature" {
					return s
				}
			}
			return traceStep{}
		}

		r := dry()
		a := r.answer(t)
		want := "not checked: a dry run by " + h.owner.Username + " without a signature header"
		if r.Status != 200 || !a.WouldStart || sigStep(a).Detail != want || !sigStep(a).OK {
			t.Errorf("unsigned dry run: %s; want 200 with the signature step %q", r, want)
		}
		if d := e.delivery(a.Delivery); !d.DryRun {
			t.Errorf("the unsigned dry run is not stored as a dry run: %+v", d)
		}

		r = dry("X-Hub-Signature-256", sign("k", body))
		if s := sigStep(r.answer(t)); r.Status != 200 || !s.OK || !strings.Contains(s.Detail, "matches") {
			t.Errorf("signed dry run: %s", r)
		}
		// Any signature or token header present is checked, as at the URL: a wrong one is 401.
		for _, hdr := range [][]string{
			{"X-Hub-Signature-256", "sha256=00"},
			{"X-Hub-Signature", "sha1=00"},
			{"X-Gitlab-Token", "wrong", "X-Gitlab-Event", "Push Hook"},
			{"X-Codeup-Token", "wrong"},
			{"X-Gitea-Signature", "00"},
			{"X-Forgejo-Signature", "00"},
			{"X-Gogs-Signature", "00"},
			{"X-Hub-Signature-256", ""},
		} {
			r := dry(hdr...)
			if r.Status != http.StatusUnauthorized || r.answer(t).Error == nil || r.answer(t).Error.Code != "invalid_signature" {
				t.Errorf("dry run with %v: %s, want 401 invalid_signature", hdr, r)
			}
		}
		if n := len(e.runs("dsig")); n != 0 {
			t.Errorf("dry runs started %d runs", n)
		}
	})
}
