package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hardenedPipeline prints the length of its secret variable, so a test can tell which value a
// run received without the value ever reaching a log.
const hardenedPipeline = `name: hardened
variables:
  abc: "123"
  API_KEY:
    secret: true
    default: "dflt"
stages:
  - name: build
    jobs:
      - name: say
        steps:
          - run: echo "abc=$abc key-length=${#API_KEY}"
`

// TestWebhookHardening drives issue 9's webhook findings through the real binary: the printed
// (timestamped, signed) curl command starts a run on a trigger that requires the timestamp; a
// form body with an encoded payload name gives the run its secret and the delivery log (read
// with 'flowd delivery') keeps ***; 'flowd redeliver' of a request that failed the signature
// check is refused and starts nothing; a NUL byte or a 131,100-byte value is refused 422
// before any run; a reused Idempotency-Key with another body is 422. SQLite only: the API tests
// run each of these on both stores, and the e2e package is near go test's 10-minute limit.
func TestWebhookHardening(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite"} {
		t.Run(dialect, func(t *testing.T) {
			data, dsn := newDatabase(t, dialect)
			srv := startServer(t, data, dsn)
			admin := srv.token("admin", adminPassword)
			def := filepath.Join(t.TempDir(), "hardened.yaml")
			if err := os.WriteFile(def, []byte(hardenedPipeline), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, errOut, code := srv.cli(admin, "pipeline", "apply", "-f", def); code != 0 {
				t.Fatalf("apply: %s", errOut)
			}
			const secret = "e2e 'signing' key"
			out, errOut, code := srv.cliIn(admin, secret+"\n", "webhook", "enable", "hardened", "--secret-stdin", "--require-timestamp")
			if code != 0 {
				t.Fatalf("enable: %s%s", out, errOut)
			}
			hook := urlRE.FindString(out)
			var curl string
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "ts=$(date +%s)") && strings.Contains(line, "'{}'") {
					curl = strings.TrimSpace(line)
				}
			}
			if hook == "" || curl == "" {
				t.Fatalf("enable printed no URL or timestamped curl command:\n%s", out)
			}

			// The printed command, pasted into a shell with the secret exported.
			got, err := runShell(t, "export FLOWD_WEBHOOK_SECRET='e2e '\\''signing'\\'' key'; "+curl+" --silent --show-error --write-out ' %{http_code}'")
			if err != nil || !strings.HasSuffix(strings.TrimSpace(got), " 202") {
				t.Fatalf("the printed curl command: %v\n%s", err, got)
			}
			signed := func(body, contentType string, headers ...string) (int, webhookAnswer) {
				t.Helper()
				ts := strconv.FormatInt(time.Now().Unix(), 10)
				mac := hmac.New(sha256.New, []byte(secret))
				mac.Write([]byte(ts + "." + body))
				status, a, _ := post(t, hook, body, append([]string{"Content-Type", contentType, "X-Flowd-Timestamp", ts,
					"X-Hub-Signature-256", "sha256=" + hex.EncodeToString(mac.Sum(nil))}, headers...)...)
				return status, a
			}

			// The body: an encoded payload name.
			const value = "sk-live-e2e-0001-xyz"
			status, a := signed(`pay%6Coad=%7B%22API_KEY%22%3A%22`+value+`%22%7D`, "application/x-www-form-urlencoded")
			if status != 202 || a.Run == nil {
				t.Fatalf("form body: %d %+v", status, a.Error)
			}
			waitFor(t, "the form run", func() bool { return srv.run(admin, a.Run.ID).Status == "success" })
			if log := srv.log(admin, a.Run.ID); !strings.Contains(log, fmt.Sprintf("key-length=%d", len(value))) {
				t.Errorf("the run did not get the body's API_KEY:\n%s", log)
			}
			shown, errOut, code := srv.cli(admin, "delivery", strconv.FormatInt(a.Delivery, 10))
			if code != 0 || strings.Contains(shown, value) || !strings.Contains(shown, "%2A%2A%2A") && !strings.Contains(shown, "***") {
				t.Errorf("flowd delivery %d (exit %d) shows the secret or no mask:\n%s%s", a.Delivery, code, shown, errOut)
			}

			// A body-only signature is refused (the trigger requires the timestamp), and its
			// redelivery is refused too: it failed the check.
			mac := hmac.New(sha256.New, []byte(secret))
			mac.Write([]byte(`{"abc":"x"}`))
			status, bad, _ := post(t, hook, `{"abc":"x"}`, "X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
			if status != 401 || bad.Error == nil || !strings.Contains(bad.Error.Message, "X-Flowd-Timestamp") {
				t.Fatalf("body-only signature: %d %+v", status, bad.Error)
			}
			before := srv.runCount(admin, "hardened")
			out, errOut, code = srv.cli(admin, "redeliver", strconv.FormatInt(bad.Delivery, 10))
			if code != 1 || !strings.Contains(out, "409 Conflict") || !strings.Contains(out, "failed the signature check") {
				t.Errorf("flowd redeliver of the refused request: exit %d\n%s%s", code, out, errOut)
			}
			if n := srv.runCount(admin, "hardened"); n != before {
				t.Errorf("the refused redelivery started a run: %d runs, had %d", n, before)
			}

			// Values no process can be given: 422 naming the variable, no run.
			for _, body := range []string{`{"abc":"a\u0000b"}`, `{"abc":"` + strings.Repeat("v", 131100) + `"}`} {
				status, a := signed(body, "application/json")
				if status != 422 || a.Error == nil || a.Error.Code != "invalid_variables" || !strings.Contains(a.Error.Message, "abc") {
					t.Errorf("%.40s…: %d %+v", body, status, a.Error)
				}
			}
			if n := srv.runCount(admin, "hardened"); n != before {
				t.Errorf("refused values started runs: %d runs, had %d", n, before)
			}

			// One Idempotency-Key, two bodies.
			if status, _ := signed(`{"abc":"1"}`, "application/json", "Idempotency-Key", "e2e-k"); status != 202 {
				t.Fatalf("first with a key: %d", status)
			}
			if status, a := signed(`{"abc":"2"}`, "application/json", "Idempotency-Key", "e2e-k"); status != 422 || a.Error == nil || a.Error.Code != "idempotency_key_mismatch" {
				t.Errorf("the key with another body: %d %+v", status, a.Error)
			}
			if status, a := signed(`{"abc":"1"}`, "application/json", "Idempotency-Key", "e2e-k"); status != 202 || !a.Replayed {
				t.Errorf("the key with its body again: %d replayed=%v", status, a.Replayed)
			}
		})
	}
}

// runCount is how many runs pipeline has.
func (s *server) runCount(token, pipeline string) int {
	s.t.Helper()
	var out struct {
		Runs []struct{} `json:"runs"`
	}
	if code := s.api(token, http.MethodGet, "/api/v1/pipelines/"+pipeline+"/runs?limit=200", nil, &out); code != 200 {
		s.t.Fatalf("list runs of %s: %d", pipeline, code)
	}
	return len(out.Runs)
}
