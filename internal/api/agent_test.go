package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/api"
	"github.com/flowd/flowd/internal/run"
)

// agentEnv is an API server whose runs wake agents' claims, as app wires it.
func agentEnv(t *testing.T, dialect string) *env {
	t.Helper()
	sig := &api.Signal{}
	return newEnv(t, dialect, func(s *api.Server) {
		s.AgentWork = sig
		s.Triggers.Wake = sig.Wake
		s.LeaseTTL = time.Minute
	})
}

// newAgentToken stores an agent token named name allowing labels and returns its secret.
func (e *env) newAgentToken(name string, labels map[string]string) string {
	e.t.Helper()
	seed := sha256.Sum256([]byte(name))
	secret := "fat_" + hex.EncodeToString(seed[:])
	sum := sha256.Sum256([]byte(secret))
	if _, err := e.st.AgentTokenCreate(e.t.Context(), name, labels, sum[:], "root"); err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// agentCall makes an agent protocol call with the agent token and, unless "", the attempt's.
func (e *env) agentCall(method, path, token, attemptToken string, body any) response {
	e.t.Helper()
	var rd *bytes.Reader
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, e.srv.URL+"/api/agent/v1/"+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if attemptToken != "" {
		req.Header.Set("Flowd-Attempt-Token", attemptToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: buf.Bytes()}
}

type registered struct {
	Agent struct {
		ID       int64             `json:"id"`
		Name     string            `json:"name"`
		Labels   map[string]string `json:"labels"`
		Capacity int               `json:"capacity"`
		Paused   bool              `json:"paused"`
	} `json:"agent"`
	LeaseSeconds     int `json:"lease_seconds"`
	HeartbeatSeconds int `json:"heartbeat_seconds"`
	ClaimWaitSeconds int `json:"claim_wait_seconds"`
}

func (e *env) register(token, name, instance string) registered {
	e.t.Helper()
	r := e.agentCall("POST", "register", token, "", map[string]any{"name": name, "instance": instance,
		"labels": map[string]string{"os": "linux"}, "capacity": 2, "version": "1.0.0"})
	if r.Status != http.StatusOK {
		e.t.Fatalf("register %s: %s", name, r)
	}
	var out registered
	r.json(e.t, &out)
	return out
}

type claimedJob struct {
	Attempt struct {
		ID           int64  `json:"id"`
		Number       int    `json:"number"`
		Token        string `json:"token"`
		LeaseSeconds int    `json:"lease_seconds"`
	} `json:"attempt"`
	RunID, JobID int64
	Pipeline     string `json:"pipeline"`
	Stage, Job   string
	Steps        []struct {
		ID     int64  `json:"id"`
		Name   string `json:"name"`
		Script string `json:"script"`
	} `json:"steps"`
	Env                []string        `json:"env"`
	Secrets            []string        `json:"secrets"`
	Workspace          string          `json:"workspace"`
	CancelGraceSeconds int             `json:"cancel_grace_seconds"`
	Checkout           json.RawMessage `json:"checkout"`
	Container          json.RawMessage `json:"container"`
}

func (e *env) claim(token string, agentID int64, wait float64) (response, []claimedJob) {
	e.t.Helper()
	r := e.agentCall("POST", "claim", token, "", map[string]any{"agent_id": agentID, "free": 2, "wait_seconds": wait})
	var out struct {
		Jobs []struct {
			claimedJob
			RunID int64  `json:"run_id"`
			JobID int64  `json:"job_id"`
			Stage string `json:"stage"`
			Job   string `json:"job"`
		} `json:"jobs"`
	}
	if r.Status == http.StatusOK {
		r.json(e.t, &out)
	}
	jobs := make([]claimedJob, len(out.Jobs))
	for i, j := range out.Jobs {
		jobs[i] = j.claimedJob
		jobs[i].RunID, jobs[i].JobID, jobs[i].Stage, jobs[i].Job = j.RunID, j.JobID, j.Stage, j.Job
	}
	return r, jobs
}

func envValue(env []string, key string) (string, bool) {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v, true
		}
	}
	return "", false
}

// TestAgentRegisterAndAuth: only agent tokens reach the agent protocol; register is idempotent
// (one row after five) and checks its input and the token's labels.
func TestAgentRegisterAndAuth(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := agentEnv(t, dialect)
		root := e.user("root", true)
		tok := e.newAgentToken("build", map[string]string{"os": "linux", "arch": "amd64"})
		body := map[string]any{"name": "build-1", "instance": strings.Repeat("a", 32), "capacity": 2}

		for _, bad := range []string{"", root.Token, "fat_" + strings.Repeat("0", 64)} {
			if r := e.agentCall("POST", "register", bad, "", body); r.Status != http.StatusUnauthorized || r.errorCode() != "agent_unauthorized" {
				t.Errorf("register with token %q = %s; want 401 agent_unauthorized", bad, r)
			}
		}
		var first int64
		for i := range 5 {
			out := e.register(tok, "build-1", strings.Repeat(string(rune('a'+i)), 32))
			if i == 0 {
				first = out.Agent.ID
			}
			if out.Agent.ID != first || out.Agent.Name != "build-1" || out.Agent.Capacity != 2 || out.LeaseSeconds != 60 ||
				out.HeartbeatSeconds != 1 || out.ClaimWaitSeconds != 30 {
				t.Fatalf("register %d = %+v", i, out)
			}
		}
		if as, err := e.st.AgentList(t.Context()); err != nil || len(as) != 1 {
			t.Fatalf("agents after 5 registers = %+v, %v; want one", as, err)
		}
		for _, c := range []struct {
			body map[string]any
			want string
		}{
			{map[string]any{"name": "bad name", "instance": strings.Repeat("a", 32), "capacity": 1}, "name"},
			{map[string]any{"name": "b", "instance": "x", "capacity": 1}, "instance"},
			{map[string]any{"name": "b", "instance": strings.Repeat("a", 32), "capacity": 0}, "capacity"},
			{map[string]any{"name": "b", "instance": strings.Repeat("a", 32), "capacity": 1, "labels": map[string]string{"o s": "x"}}, "labels"},
		} {
			if r := e.agentCall("POST", "register", tok, "", c.body); r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), c.want) {
				t.Errorf("register %v = %s; want 422 about %s", c.body, r, c.want)
			}
		}
		r := e.agentCall("POST", "register", tok, "", map[string]any{"name": "gpu-1", "instance": strings.Repeat("a", 32), "capacity": 1,
			"labels": map[string]string{"gpu": "true"}})
		if r.Status != http.StatusForbidden || r.errorCode() != "label_not_allowed" || !strings.Contains(string(r.Body), "arch=amd64,os=linux") {
			t.Errorf("register with a label the token does not allow = %s; want 403 label_not_allowed", r)
		}
		other := e.newAgentToken("other", nil)
		if r := e.agentCall("POST", "register", other, "", body); r.Status != http.StatusConflict {
			t.Errorf("register another token's agent name = %s; want 409", r)
		}
	})
}

// TestAgentJobThroughTheProtocol: a claim long-poll answers within a second of a run being
// queued, with the job's spec; heartbeat, steps, log by offset (resend ignored, gap 416) and
// finish (checksum checked, repeated finish 200) record the job; calls after the end get 409.
func TestAgentJobThroughTheProtocol(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := agentEnv(t, dialect)
		root := e.user("root", true)
		e.createPipeline("hello", root, nil)
		tok := e.newAgentToken("build", nil)
		ag := e.register(tok, "build-1", strings.Repeat("a", 32))

		// Nothing queued: 204 after the wait.
		start := time.Now()
		if r, _ := e.claim(tok, ag.Agent.ID, 0.3); r.Status != http.StatusNoContent || time.Since(start) < 300*time.Millisecond {
			t.Fatalf("claim with nothing queued = %s after %v; want 204 after 0.3 s", r, time.Since(start))
		}
		// A run queued while the claim waits: answered at once.
		type result struct {
			r    response
			jobs []claimedJob
			at   time.Time
		}
		done := make(chan result, 1)
		go func() {
			r, jobs := e.claim(tok, ag.Agent.ID, 20)
			done <- result{r, jobs, time.Now()}
		}()
		time.Sleep(300 * time.Millisecond) // the claim is waiting
		queued := time.Now()
		runID := e.startRun("hello", root.Token)
		res := <-done
		if res.r.Status != http.StatusOK || len(res.jobs) != 1 {
			t.Fatalf("claim = %s; want the run's job", res.r)
		}
		if d := res.at.Sub(queued); d > time.Second {
			t.Fatalf("the claim answered %v after the run was queued; want within a second", d)
		}
		j := res.jobs[0]
		if j.RunID != runID || j.Stage != "build" || j.Job != "say" || j.Pipeline != "hello" || len(j.Steps) != 1 ||
			j.Steps[0].Script != `echo "abc=$abc"` || j.Attempt.Number != 1 || len(j.Attempt.Token) != 32 || j.Attempt.LeaseSeconds != 60 ||
			j.CancelGraceSeconds != 10 || j.Workspace != itoa(runID)+"-"+itoa(j.JobID) || string(j.Checkout) != "null" || string(j.Container) != "null" {
			t.Fatalf("claimed job = %+v", j)
		}
		if v, _ := envValue(j.Env, "abc"); v != "123" {
			t.Errorf("env abc = %q; want 123", v)
		}
		if v, _ := envValue(j.Env, "API_KEY"); v != secretValue || !slices.Contains(j.Secrets, secretValue) {
			t.Errorf("the secret variable is not in env and secrets: %v %v", v, j.Secrets)
		}
		for _, k := range []string{"PATH", "HOME", "FLOWD_WORKSPACE"} {
			if _, ok := envValue(j.Env, k); ok {
				t.Errorf("env holds %s; the agent adds it", k)
			}
		}
		rn, err := e.st.RunGet(t.Context(), runID)
		if err != nil || rn.Jobs[0].Attempts[0].Runner != "build-1/1" || rn.Jobs[0].Attempts[0].Node != "build-1" || rn.Jobs[0].Steps[0].Status != run.Queued {
			t.Fatalf("run after the claim = %+v, %v; want attempt of build-1/1, the first step not started", rn.Jobs, err)
		}

		at := "attempts/" + itoa(j.Attempt.ID) + "/"
		// Wrong attempt token, or none: 404.
		for _, bad := range []string{strings.Repeat("0", 32), ""} {
			if r := e.agentCall("POST", at+"heartbeat", tok, bad, map[string]any{}); r.Status != http.StatusNotFound || r.errorCode() != "attempt_not_found" {
				t.Errorf("heartbeat with attempt token %q = %s; want 404", bad, r)
			}
		}
		// Another token's agent: 404.
		other := e.newAgentToken("other", nil)
		if r := e.agentCall("POST", at+"heartbeat", other, j.Attempt.Token, map[string]any{}); r.Status != http.StatusNotFound {
			t.Errorf("heartbeat by another token = %s; want 404", r)
		}
		if r := e.agentCall("POST", at+"heartbeat", tok, j.Attempt.Token, map[string]any{}); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"state":"running"`) {
			t.Fatalf("heartbeat = %s; want 200 running", r)
		}
		if r := e.agentCall("POST", at+"steps", tok, j.Attempt.Token, map[string]any{"start": j.Steps[0].ID}); r.Status != http.StatusOK {
			t.Fatalf("steps start = %s", r)
		}
		if r := e.agentCall("POST", at+"steps", tok, j.Attempt.Token, map[string]any{"start": j.Steps[0].ID}); r.Status != http.StatusOK {
			t.Errorf("the same steps call again (its answer lost) = %s; want 200", r)
		}
		if r := e.agentCall("POST", at+"steps", tok, j.Attempt.Token, map[string]any{"finished": []map[string]any{{"step_id": j.Steps[0].ID, "status": "skipped"}}}); r.Status != http.StatusConflict || strings.Contains(string(r.Body), `"state"`) {
			t.Errorf("skipping a running step = %s; want 409 without a state", r)
		}

		if r := e.agentCall("POST", at+"steps", tok, j.Attempt.Token, map[string]any{"finished": []map[string]any{{"step_id": 999999, "status": "success"}}}); r.Status != http.StatusNotFound || r.errorCode() != "step_not_found" {
			t.Errorf("finishing an unknown step = %s; want 404 step_not_found", r)
		}
		if r := e.agentCall("POST", at+"steps", tok, j.Attempt.Token, map[string]any{"finished": []map[string]any{{"step_id": j.Steps[0].ID, "status": "running"}}}); r.Status != http.StatusUnprocessableEntity {
			t.Errorf("a step finished as running = %s; want 422", r)
		}
		if r := e.agentCall("PUT", at+"log?offset=0", tok, j.Attempt.Token, bytes.Repeat([]byte("x"), 1<<20+1)); r.Status != http.StatusRequestEntityTooLarge {
			t.Errorf("a log PUT over 1 MiB = %s; want 413", r)
		}

		logText := []byte("── build / say ──\nabc=123\n")
		put := func(offset int, data []byte) response {
			return e.agentCall("PUT", at+"log?offset="+itoa(int64(offset)), tok, j.Attempt.Token, data)
		}
		if r := put(0, logText[:10]); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"length":10`) {
			t.Fatalf("log 0..10 = %s", r)
		}
		if r := put(0, logText[:10]); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"length":10`) {
			t.Fatalf("log resend = %s; want 200 length 10", r)
		}
		if r := put(20, logText[20:]); r.Status != http.StatusRequestedRangeNotSatisfiable || !strings.Contains(string(r.Body), `"length":10`) {
			t.Fatalf("log with a gap = %s; want 416 length 10", r)
		}
		if r := put(-1, logText); r.Status != http.StatusUnprocessableEntity {
			t.Errorf("log at offset -1 = %s; want 422", r)
		}
		finish := func(length int, sum [32]byte) response {
			return e.agentCall("POST", at+"finish", tok, j.Attempt.Token, map[string]any{"status": "success",
				"steps":      []map[string]any{{"step_id": j.Steps[0].ID, "status": "success", "exit_code": 0}},
				"log_length": length, "log_sha256": hex.EncodeToString(sum[:])})
		}
		if r := finish(len(logText), sha256.Sum256(logText)); r.Status != http.StatusConflict || r.errorCode() != "log_incomplete" || !strings.Contains(string(r.Body), `"length":10`) {
			t.Fatalf("finish with the log short = %s; want 409 log_incomplete length 10", r)
		}
		if r := put(5, logText[5:]); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"length":`+itoa(int64(len(logText)))) {
			t.Fatalf("log rest = %s", r)
		}
		// A checksum mismatch drops the attempt's log: send it all again.
		if r := finish(len(logText), sha256.Sum256([]byte("something else"))); r.Status != http.StatusConflict || r.errorCode() != "log_mismatch" || !strings.Contains(string(r.Body), `"length":0`) {
			t.Fatalf("finish with a wrong checksum = %s; want 409 log_mismatch length 0", r)
		}
		if chunks, _ := e.st.LogRead(t.Context(), runID, 0, 0); len(chunks) != 0 {
			t.Fatalf("after a mismatch %d chunks are left", len(chunks))
		}
		if r := put(0, logText); r.Status != http.StatusOK {
			t.Fatalf("log again = %s", r)
		}
		if r := finish(len(logText), sha256.Sum256(logText)); r.Status != http.StatusOK {
			t.Fatalf("finish = %s", r)
		}
		if r := finish(len(logText), sha256.Sum256(logText)); r.Status != http.StatusOK {
			t.Fatalf("finish again (answer lost) = %s; want 200", r)
		}
		rn, err = e.st.RunGet(t.Context(), runID)
		if err != nil || rn.Status != run.Success || rn.Jobs[0].Steps[0].Status != run.Success {
			t.Fatalf("run after finish = %s %+v, %v", rn.Status, rn.Jobs, err)
		}
		chunks, _ := e.st.LogRead(t.Context(), runID, 0, 0)
		var stored []byte
		for _, c := range chunks {
			stored = append(stored, c.Data...)
		}
		if !bytes.Equal(stored, logText) {
			t.Fatalf("stored log %q; want %q", stored, logText)
		}
		for _, call := range []struct{ method, path string }{{"POST", "heartbeat"}, {"POST", "steps"}} {
			r := e.agentCall(call.method, at+call.path, tok, j.Attempt.Token, map[string]any{})
			if r.Status != http.StatusConflict || !strings.Contains(string(r.Body), `"state":"finished"`) {
				t.Errorf("%s after the end = %s; want 409 finished", call.path, r)
			}
		}
		if r := put(len(logText), []byte("late\n")); r.Status != http.StatusConflict {
			t.Errorf("log after the end = %s; want 409", r)
		}
	})
}

// TestAgentLostPausedRevoked: an attempt of an agent that restarted is lost (409 lost); a paused
// agent is answered 204 at once; revoking the token cancels its agents' attempts and its next
// call gets 401.
func TestAgentLostPausedRevoked(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := agentEnv(t, dialect)
		root := e.user("root", true)
		e.createPipeline("hello", root, nil)
		tok := e.newAgentToken("build", nil)
		ag := e.register(tok, "build-1", strings.Repeat("a", 32))

		run1 := e.startRun("hello", root.Token)
		_, jobs := e.claim(tok, ag.Agent.ID, 5)
		if len(jobs) != 1 || jobs[0].RunID != run1 {
			t.Fatalf("claimed %+v", jobs)
		}
		j := jobs[0]
		// The agent restarts (a new instance registers): the old instance's attempt is lost.
		if again := e.register(tok, "build-1", strings.Repeat("b", 32)); again.Agent.ID != ag.Agent.ID {
			t.Fatalf("register again = %+v", again)
		}
		if rn, err := e.st.RunGet(t.Context(), run1); err != nil || rn.Jobs[0].Status != run.Failed || !strings.Contains(rn.Jobs[0].Message, "runner_lost") {
			t.Fatalf("job after the agent restarted = %+v, %v; want failed runner_lost", rn.Jobs, err)
		}
		r := e.agentCall("POST", "attempts/"+itoa(j.Attempt.ID)+"/heartbeat", tok, j.Attempt.Token, map[string]any{})
		if r.Status != http.StatusConflict || r.errorCode() != "attempt_gone" || !strings.Contains(string(r.Body), `"state":"lost"`) {
			t.Fatalf("heartbeat of a lost attempt = %s; want 409 lost", r)
		}

		if err := e.st.AgentPause(t.Context(), "build-1", true); err != nil {
			t.Fatal(err)
		}
		e.startRun("hello", root.Token)
		start := time.Now()
		r, _ = e.claim(tok, ag.Agent.ID, 10)
		if r.Status != http.StatusNoContent || r.Header.Get("Flowd-Agent-Paused") != "1" || time.Since(start) > 2*time.Second {
			t.Fatalf("claim of a paused agent = %s %v after %v; want 204 at once", r, r.Header, time.Since(start))
		}
		if err := e.st.AgentPause(t.Context(), "build-1", false); err != nil {
			t.Fatal(err)
		}
		_, jobs = e.claim(tok, ag.Agent.ID, 5)
		if len(jobs) != 1 {
			t.Fatalf("claim after resume = %+v", jobs)
		}
		j = jobs[0]
		if _, rescued, err := e.st.AgentTokenRevoke(t.Context(), "build"); err != nil || len(rescued) != 1 {
			t.Fatalf("revoke = %+v, %v", rescued, err)
		}
		r = e.agentCall("POST", "attempts/"+itoa(j.Attempt.ID)+"/heartbeat", tok, j.Attempt.Token, map[string]any{})
		if r.Status != http.StatusUnauthorized || !strings.Contains(string(r.Body), "revoked") {
			t.Fatalf("heartbeat after revoke = %s; want 401 saying revoked", r)
		}
		rn, err := e.st.RunGet(t.Context(), j.RunID)
		if err != nil || rn.Jobs[0].Status != run.Canceled {
			t.Fatalf("job after revoke = %+v, %v; want canceled", rn.Jobs, err)
		}
		if r, _ := e.claim(tok, ag.Agent.ID, 1); r.Status != http.StatusUnauthorized {
			t.Fatalf("claim after revoke = %s; want 401", r)
		}
	})
}

// TestAgentAdministration: global admins create (the token shown once works), list and revoke
// agent tokens, pause and resume agents; GET /api/v1/nodes shows an agent with its labels and
// running jobs; a revoke cancels its agents' running jobs.
func TestAgentAdministration(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := agentEnv(t, dialect)
		root, alice := e.user("root", true), e.user("alice", false)
		e.createPipeline("hello", root, nil)
		body := map[string]any{"name": "build-1", "labels": map[string]string{"os": "linux"}}
		if r := e.call("POST", "/api/v1/agent-tokens", alice.Token, body); r.Status != http.StatusForbidden {
			t.Errorf("create as a user = %s; want 403", r)
		}
		if r := e.call("POST", "/api/v1/agent-tokens", root.Token, map[string]any{"name": "bad name"}); r.Status != http.StatusUnprocessableEntity {
			t.Errorf("create with a bad name = %s; want 422", r)
		}
		r := e.call("POST", "/api/v1/agent-tokens", root.Token, body)
		var created struct {
			ID        int64             `json:"id"`
			Name      string            `json:"name"`
			Labels    map[string]string `json:"labels"`
			CreatedBy string            `json:"created_by"`
			Token     string            `json:"token"`
		}
		r.json(t, &created)
		if r.Status != http.StatusCreated || created.Name != "build-1" || created.CreatedBy != "root" || created.Labels["os"] != "linux" ||
			!strings.HasPrefix(created.Token, "fat_") || len(created.Token) != 68 {
			t.Fatalf("create = %s", r)
		}
		if r := e.call("POST", "/api/v1/agent-tokens", root.Token, body); r.Status != http.StatusConflict {
			t.Errorf("create the same name = %s; want 409", r)
		}
		r = e.call("GET", "/api/v1/agent-tokens", root.Token, nil)
		if r.Status != http.StatusOK || strings.Contains(string(r.Body), created.Token) || !strings.Contains(string(r.Body), `"revoked_at":null`) {
			t.Fatalf("list = %s; want the token without its secret", r)
		}
		ag := e.register(created.Token, "build-1", strings.Repeat("a", 32))
		runID := e.startRun("hello", root.Token)
		if _, jobs := e.claim(created.Token, ag.Agent.ID, 5); len(jobs) != 1 {
			t.Fatalf("claim = %+v", jobs)
		}
		r = e.call("GET", "/api/v1/nodes", root.Token, nil)
		var nodes struct {
			Nodes []struct {
				Name  string `json:"name"`
				Kind  string `json:"kind"`
				Live  bool   `json:"live"`
				Agent *struct {
					Labels   map[string]string `json:"labels"`
					Capacity int               `json:"capacity"`
					Paused   bool              `json:"paused"`
				} `json:"agent"`
				Running []struct {
					RunID  int64  `json:"run_id"`
					Job    string `json:"job"`
					Runner string `json:"runner"`
				} `json:"running"`
			} `json:"nodes"`
		}
		r.json(t, &nodes)
		if len(nodes.Nodes) != 1 {
			t.Fatalf("nodes = %s", r)
		}
		n := nodes.Nodes[0]
		if n.Name != "build-1" || n.Kind != "agent" || !n.Live || n.Agent == nil || n.Agent.Labels["os"] != "linux" || n.Agent.Capacity != 2 ||
			len(n.Running) != 1 || n.Running[0].RunID != runID || n.Running[0].Job != "say" || n.Running[0].Runner != "build-1/1" {
			t.Fatalf("nodes = %s", r)
		}
		if r := e.call("POST", "/api/v1/agents/build-1/pause", alice.Token, nil); r.Status != http.StatusForbidden {
			t.Errorf("pause as a user = %s; want 403", r)
		}
		if r := e.call("POST", "/api/v1/agents/build-1/pause", root.Token, nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"paused":true`) {
			t.Errorf("pause = %s", r)
		}
		if r := e.call("POST", "/api/v1/agents/nobody/resume", root.Token, nil); r.Status != http.StatusNotFound {
			t.Errorf("resume nobody = %s; want 404", r)
		}
		if r := e.call("GET", "/api/v1/agents", root.Token, nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"token":"build-1"`) {
			t.Errorf("agents = %s", r)
		}
		r = e.call("DELETE", "/api/v1/agent-tokens/build-1", root.Token, nil)
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"jobs_canceled":1`) {
			t.Fatalf("revoke = %s; want one job canceled", r)
		}
		if rn, err := e.st.RunGet(t.Context(), runID); err != nil || rn.Status != run.Canceled {
			t.Fatalf("run after revoke = %+v, %v; want canceled", rn.Status, err)
		}
		if r := e.agentCall("POST", "register", created.Token, "", map[string]any{"name": "build-1", "instance": strings.Repeat("a", 32), "capacity": 1}); r.Status != http.StatusUnauthorized {
			t.Errorf("register after revoke = %s; want 401", r)
		}
		if r := e.call("DELETE", "/api/v1/agent-tokens/nobody", root.Token, nil); r.Status != http.StatusNotFound {
			t.Errorf("revoke nobody = %s; want 404", r)
		}
	})
}
