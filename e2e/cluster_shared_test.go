package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestSecondServerOnSQLite: a second `flowd serve` on the SQLite database a running server uses
// (with another data folder or the same one, another port) refuses to start, saying what is wrong and what to do,
// and changes nothing: the first server keeps answering. Once the first has stopped, the
// second starts.
func TestSecondServerOnSQLite(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	first := startServer(t, data, dsn)
	admin := first.token("admin", adminPassword)

	// Another data folder on the same database file, and the same data folder (the usual
	// mistake: a second copy of the same command).
	other := t.TempDir()
	for _, folder := range []string{other, data} {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, flowdBin, "serve", "--addr", "127.0.0.1:0", "--data", folder,
			"--database", dsn, "--step-user", stepUIDs(folder))
		cmd.Env = append(baseEnv(t), "FLOWD_ADMIN_PASSWORD="+adminPassword)
		out, err := cmd.CombinedOutput()
		if err == nil || cmd.ProcessState.ExitCode() != 1 {
			t.Fatalf("a second server on the same SQLite database (--data %s): %v (want exit status 1)\n%s", folder, err, out)
		}
		for _, want := range []string{
			"another flowd server (pid ", "is using the SQLite database " + strings.TrimPrefix(dsn, "sqlite:"),
			"a SQLite database serves one server at a time", "Stop the other server first", "PostgreSQL",
		} {
			if !strings.Contains(string(out), want) {
				t.Errorf("the refusal (--data %s) does not say %q:\n%s", folder, want, out)
			}
		}
		if strings.Contains(string(out), "listening on") {
			t.Errorf("the second server listened before refusing:\n%s", out)
		}
	}
	if code := first.api(admin, "GET", "/api/v1/pipelines", nil, nil); code != 200 {
		t.Errorf("the first server answers %d after the refusal, want 200", code)
	}

	first.stop()
	second := startServer(t, other, dsn)
	second.token("admin", adminPassword)
	second.stop()
}

// TestLimitsHoldAcrossServers: on two servers of one PostgreSQL database, a webhook trigger's
// rate limit and the sign-in throttle are one limit for both, not one per server.
func TestLimitsHoldAcrossServers(t *testing.T) {
	t.Parallel()
	// 5 requests at once and then one per 1,000 s: no token comes back during the test.
	rate := []string{"--webhook-rate", "0.001", "--webhook-burst", "5"}
	c := startCluster(t, nodeSpec{Name: "node-a", Args: rate}, nodeSpec{Name: "node-b", Args: rate})
	t.Run("webhook rate", func(t *testing.T) { webhookRateAcross(t, c.forTest(t)) })
	t.Run("sign-in throttle", func(t *testing.T) { signInThrottleAcross(t, c.forTest(t)) })
}

// webhookRateAcross: 10 deliveries to one webhook URL, alternately through each server: the
// trigger's burst of 5 is accepted (202) between them, the other 5 are refused 429 with
// Retry-After and the message of a single server.
func webhookRateAcross(t *testing.T, c *cluster) {
	a, b := c.Nodes[0], c.Nodes[1]
	hook := a.enableHook(c.Admin, "name: limited\nstages:\n  - name: s\n    jobs:\n      - name: j\n        steps:\n          - name: ok\n            run: \"true\"\n", "limited", "")
	path := strings.TrimPrefix(hook, a.URL)
	got := map[int]int{}
	for i := range 10 {
		s := []*node{a, b}[i%2]
		code, ans, h := post(t, s.URL+path, `{}`)
		got[code]++
		if code == 429 {
			if h.Get("Retry-After") == "" || ans.Error == nil || !strings.Contains(ans.Error.Message, "too many requests to this webhook") {
				t.Errorf("delivery %d through %s: 429 without Retry-After or the message: %s %+v", i+1, s.Name, h.Get("Retry-After"), ans.Error)
			}
		}
	}
	if got[202] != 5 || got[429] != 5 {
		t.Errorf("10 deliveries through two servers: %v (status: count); want 5 accepted (202), the burst, and 5 refused (429)", got)
	}
}

// signInThrottleAcross: wrong passwords for one user from one address, alternately through
// each server: 10 are checked (401) between them, then both servers refuse (429, Retry-After),
// even the right password.
func signInThrottleAcross(t *testing.T, c *cluster) {
	a, b := c.Nodes[0], c.Nodes[1]
	if code := a.api(c.Admin, "POST", "/api/v1/users", map[string]any{"username": "erin", "password": "erin-password-1"}, nil); code != 201 {
		t.Fatalf("create user erin: %d", code)
	}
	got := map[int]int{}
	for i := range 12 {
		s := []*node{a, b}[i%2]
		code, retry, err := signIn(t.Context(), http.DefaultClient, s.URL, "erin", fmt.Sprint("wrong-", i))
		if err != nil {
			t.Fatal(err)
		}
		got[code]++
		if code == 429 && retry == "" {
			t.Errorf("attempt %d through %s: 429 without Retry-After", i+1, s.Name)
		}
	}
	if got[401] != 10 || got[429] != 2 {
		t.Errorf("12 wrong passwords through two servers: %v (status: count); want 10 checked (401) and 2 refused (429)", got)
	}
	for _, s := range []*node{a, b} {
		if code, retry, _ := signIn(t.Context(), http.DefaultClient, s.URL, "erin", "erin-password-1"); code != 429 || retry == "" {
			t.Errorf("the right password through %s after 10 wrong ones: %d (Retry-After %q); want 429", s.Name, code, retry)
		}
	}
}
