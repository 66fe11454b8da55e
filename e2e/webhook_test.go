package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// webhookAnswer is the part of a webhook answer the tests read.
type webhookAnswer struct {
	Run *struct {
		ID     int64  `json:"id"`
		Number int64  `json:"number"`
		URL    string `json:"url"`
		Status string `json:"status"`
	} `json:"run"`
	Ignored  []string `json:"ignored"`
	Skipped  *string  `json:"skipped"`
	Delivery int64    `json:"delivery"`
	Replayed bool     `json:"replayed"`
	Trace    []struct {
		Step   string `json:"step"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	} `json:"trace"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// post sends body to a webhook URL as curl would, with extra headers.
func post(t *testing.T, url, body string, headers ...string) (int, webhookAnswer, http.Header) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var a webhookAnswer
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatalf("webhook answer %d is not JSON: %s", resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, a, resp.Header
}

// user creates a user with a token.
func (s *server) user(adminToken, name string) string {
	s.t.Helper()
	pw := name + "-password"
	if code := s.api(adminToken, "POST", "/api/v1/users", map[string]any{"username": name, "password": pw}, nil); code != 201 {
		s.t.Fatalf("create user %s: %d", name, code)
	}
	return s.token(name, pw)
}

var urlRE = regexp.MustCompile(`https?://\S+/pipeline/webhook/[A-Za-z0-9_-]+`)

// TestWebhookStory is the seed's story over the real binary: alice enables the webhook, `{}`
// runs on the defaults, `{"abc":"456"}` overrides, a hostile value stays data; alice loses her
// role and the webhook answers 403 naming her; bob disables (404), re-enables (same URL) and
// resends, and the run is bob's; rotate retires the old URL.
func TestWebhookStory(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			data, dsn := newDatabase(t, dialect)
			srv := startServer(t, data, dsn)
			admin := srv.token("admin", adminPassword)
			alice := srv.user(admin, "alice")
			bob := srv.user(admin, "bob")
			if _, errOut, code := srv.cli(alice, "pipeline", "apply", "-f", "../examples/hello.yaml"); code != 0 {
				t.Fatalf("apply as alice: %s", errOut)
			}
			if _, errOut, code := srv.cli(alice, "member", "set", "hello", "bob", "admin"); code != 0 {
				t.Fatalf("member set: %s", errOut)
			}

			out, errOut, code := srv.cli(alice, "webhook", "enable", "hello")
			if code != 0 {
				t.Fatalf("webhook enable: %d %s%s", code, out, errOut)
			}
			hook := urlRE.FindString(out)
			if hook == "" || !strings.Contains(out, `--data '{}'`) || !strings.Contains(out, `"abc":"456"`) {
				t.Fatalf("webhook enable printed no URL and curl commands:\n%s", out)
			}

			// The curl commands as printed work as pasted.
			for _, line := range strings.Split(out, "\n") {
				line = strings.TrimSpace(line)
				if !strings.HasPrefix(line, "curl ") {
					continue
				}
				cmdOut, err := runShell(t, line)
				if err != nil || !strings.Contains(cmdOut, `"run"`) {
					t.Fatalf("pasted %q: %v\n%s", line, err, cmdOut)
				}
			}

			status, a, _ := post(t, hook, `{}`)
			if status != 202 || a.Run == nil || a.Run.ID == 0 || a.Run.Number == 0 || a.Run.URL == "" {
				t.Fatalf("{} → %d %+v", status, a)
			}
			waitFor(t, "the {} run", func() bool { return srv.run(admin, a.Run.ID).Status == "success" })
			if log := srv.log(admin, a.Run.ID); !strings.Contains(log, "abc=123") {
				t.Fatalf("{} run log lacks abc=123:\n%s", log)
			}
			r := srv.run(admin, a.Run.ID)
			if r.Trigger != "webhook" || r.TriggeredBy != "alice" {
				t.Fatalf("run trigger %s by %s, want webhook by alice", r.Trigger, r.TriggeredBy)
			}

			status, a, _ = post(t, hook, `{"abc":"456","unknown":1}`)
			if status != 202 || len(a.Ignored) != 1 || a.Ignored[0] != "unknown" {
				t.Fatalf(`{"abc":"456"} → %d %+v`, status, a)
			}
			waitFor(t, "the override run", func() bool { return srv.run(admin, a.Run.ID).Status == "success" })
			if log := srv.log(admin, a.Run.ID); !strings.Contains(log, "abc=456") {
				t.Fatalf("override run log lacks abc=456:\n%s", log)
			}

			marker := filepath.Join(t.TempDir(), "pwned")
			status, a, _ = post(t, hook, fmt.Sprintf(`{"abc":"$(touch %s)"}`, marker))
			if status != 202 {
				t.Fatalf("hostile → %d", status)
			}
			waitFor(t, "the hostile run", func() bool { return srv.run(admin, a.Run.ID).Status == "success" })
			if log := srv.log(admin, a.Run.ID); !strings.Contains(log, "abc=$(touch "+marker+")") {
				t.Fatalf("hostile value not printed literally:\n%s", log)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("a webhook value was executed")
			}

			// alice loses her role: the webhook says so, naming her, and the trigger shows it.
			if code := srv.api(bob, "PUT", "/api/v1/pipelines/hello/members/alice", map[string]string{"role": "viewer"}, nil); code != 200 {
				t.Fatalf("demote alice: %d", code)
			}
			status, a, _ = post(t, hook, `{}`)
			if status != 403 || a.Error == nil || a.Error.Code != "insufficient_permissions" || !strings.Contains(a.Error.Message, "alice") {
				t.Fatalf("after demotion → %d %+v", status, a.Error)
			}
			out, _, _ = srv.cli(bob, "webhook", "show", "hello")
			if !strings.Contains(strings.ToLower(out), "alice") || !strings.Contains(strings.ToUpper(out), "WARNING") {
				t.Errorf("webhook show does not warn that alice can no longer run it:\n%s", out)
			}

			// bob disables: 404; re-enables: same URL, runs as bob.
			if _, errOut, code := srv.cli(bob, "webhook", "disable", "hello"); code != 0 {
				t.Fatalf("disable: %s", errOut)
			}
			if status, _, _ := post(t, hook, `{}`); status != 404 {
				t.Fatalf("disabled webhook → %d, want 404", status)
			}
			out, errOut, code = srv.cli(bob, "webhook", "enable", "hello")
			if code != 0 || urlRE.FindString(out) != hook {
				t.Fatalf("re-enable changed the URL or failed (%d %s):\n%s", code, errOut, out)
			}
			status, a, _ = post(t, hook, `{}`)
			if status != 202 {
				t.Fatalf("resend after re-enable → %d %+v", status, a.Error)
			}
			if r := srv.run(admin, a.Run.ID); r.TriggeredBy != "bob" {
				t.Fatalf("run after re-enable triggered by %s, want bob", r.TriggeredBy)
			}

			// Idempotency: the same key twice → one run, the first answer again.
			status1, a1, _ := post(t, hook, `{}`, "Idempotency-Key", "deploy-42")
			status2, a2, _ := post(t, hook, `{}`, "Idempotency-Key", "deploy-42")
			if status1 != 202 || status2 != 202 || a2.Run == nil || a1.Run.ID != a2.Run.ID || !a2.Replayed {
				t.Fatalf("idempotent resend: %d %+v / %d %+v", status1, a1.Run, status2, a2.Run)
			}

			// Deliveries are listed with their outcomes, and the 403 one says why.
			out, errOut, code = srv.cli(bob, "deliveries", "hello")
			if code != 0 || !strings.Contains(out, "403") || !strings.Contains(out, "202") {
				t.Fatalf("deliveries: %d %s\n%s", code, errOut, out)
			}

			// rotate retires the old URL at once.
			out, errOut, code = srv.cli(bob, "webhook", "rotate", "hello")
			newHook := urlRE.FindString(out)
			if code != 0 || newHook == "" || newHook == hook {
				t.Fatalf("rotate: %d %s\n%s", code, errOut, out)
			}
			if status, _, _ := post(t, hook, `{}`); status != 404 {
				t.Fatalf("old URL after rotate → %d, want 404", status)
			}
			if status, _, _ := post(t, newHook, `{}`); status != 202 {
				t.Fatalf("new URL after rotate → %d, want 202", status)
			}

			// The token never sits in the database in clear.
			if dialect == "sqlite" {
				srv.stop()
				token := newHook[strings.LastIndex(newHook, "/")+1:]
				oldToken := hook[strings.LastIndex(hook, "/")+1:]
				for _, f := range []string{"flowd.db", "flowd.db-wal"} {
					b, err := os.ReadFile(filepath.Join(data, f))
					if err != nil {
						continue
					}
					if bytes.Contains(b, []byte(token)) || bytes.Contains(b, []byte(oldToken)) {
						t.Fatalf("a webhook token is stored in clear in %s", f)
					}
				}
			}
		})
	}
}

// TestWebhookSignature: with a secret, only correctly signed requests run.
func TestWebhookSignature(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	srv := startServer(t, data, dsn)
	admin := srv.token("admin", adminPassword)
	if _, errOut, code := srv.cli(admin, "pipeline", "apply", "-f", "../examples/hello.yaml"); code != 0 {
		t.Fatalf("apply: %s", errOut)
	}
	out, errOut, code := srv.cliIn(admin, "s3cret-signing-key\n", "webhook", "enable", "hello", "--secret-stdin")
	if code != 0 {
		t.Fatalf("enable with secret: %s%s", out, errOut)
	}
	hook := urlRE.FindString(out)
	body := `{"abc":"789"}`
	mac := hmac.New(sha256.New, []byte("s3cret-signing-key"))
	mac.Write([]byte(body))
	good := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if status, a, _ := post(t, hook, body); status != 401 || a.Error == nil || a.Error.Code != "invalid_signature" {
		t.Fatalf("unsigned → %d %+v", status, a.Error)
	}
	if status, _, _ := post(t, hook, body, "X-Hub-Signature-256", "sha256=00"+good[9:]); status != 401 {
		t.Fatalf("wrongly signed → %d", status)
	}
	if status, a, _ := post(t, hook, body, "X-Hub-Signature-256", good); status != 202 {
		t.Fatalf("signed → %d %+v", status, a.Error)
	}
}
