package agentproto

import (
	"encoding/json"
	"testing"

	"github.com/flowd/flowd/internal/run"
)

// TestWire pins the JSON of every body as the protocol's version 1 sends it
// (docs/agent-protocol.md): names, order, omitted fields, [] and null.
func TestWire(t *testing.T) {
	t.Parallel()
	exit := 2
	zero := int64(0)
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"register request", RegisterRequest{Name: "a1", Instance: "9f0c", Labels: map[string]string{"os": "linux"}, Capacity: 2, Version: "1.0"},
			`{"name":"a1","instance":"9f0c","labels":{"os":"linux"},"capacity":2,"version":"1.0"}`},
		{"register response", RegisterResponse{Agent: Agent{ID: 7, Name: "a1", Labels: map[string]string{}, Capacity: 2, Version: "1.0"},
			LeaseSeconds: 60, HeartbeatSeconds: 1, ClaimWaitSeconds: 30},
			`{"agent":{"id":7,"name":"a1","labels":{},"capacity":2,"version":"1.0","paused":false},"claim_wait_seconds":30,"heartbeat_seconds":1,"lease_seconds":60}`},
		{"claim request", ClaimRequest{AgentID: 7, Instance: "9f0c", Free: 2, WaitSeconds: 30},
			`{"agent_id":7,"instance":"9f0c","free":2,"wait_seconds":30}`},
		{"claim response, no checkout nor container", ClaimResponse{Jobs: []Job{{
			Attempt: AttemptRef{ID: 3, Number: 1, Token: "t", LeaseSeconds: 60}, RunID: 1, RunNumber: 4, JobID: 2,
			Pipeline: "p", Stage: "s", Job: "j", Steps: []Step{{ID: 5, Name: "n", Script: "make"}}, Env: []string{"A=1"},
			Secrets: []string{}, TimeoutSeconds: 3600, CancelGraceSeconds: 10, Workspace: "w"}}},
			`{"jobs":[{"attempt":{"id":3,"number":1,"token":"t","lease_seconds":60},"run_id":1,"run_number":4,"job_id":2,` +
				`"pipeline":"p","stage":"s","job":"j","steps":[{"id":5,"name":"n","script":"make"}],"env":["A=1"],"checkout":null,` +
				`"secrets":[],"timeout_seconds":3600,"cancel_grace_seconds":10,"workspace":"w","container":null}]}`},
		{"checkout", Checkout{URL: "u", SHA: "s", Ref: "r", Username: "x", Password: "y"},
			`{"url":"u","sha":"s","ref":"r","username":"x","password":"y"}`},
		{"heartbeat request", HeartbeatRequest{}, `{}`},
		{"state running", StateResponse{State: "running"}, `{"state":"running"}`},
		{"state canceling", StateResponse{State: "canceling", GraceSeconds: 10}, `{"grace_seconds":10,"state":"canceling"}`},
		{"steps request", StepsRequest{Finished: []StepResult{{StepID: 5, Status: run.Failed, ExitCode: &exit}, {StepID: 6, Status: run.Skipped}}, Start: 0},
			`{"finished":[{"step_id":5,"status":"failed","exit_code":2},{"step_id":6,"status":"skipped","exit_code":null}],"start":0}`},
		{"log response", LogResponse{Length: 12}, `{"length":12}`},
		{"finish request", FinishRequest{Status: run.Success, Message: "", LogLength: 12, LogSHA256: "ab"},
			`{"status":"success","message":"","steps":null,"log_length":12,"log_sha256":"ab"}`},
		{"finish response", FinishResponse{}, `{}`},
		{"attempt gone", ErrorResponse{Error: ErrorDetail{Code: "attempt_gone", Message: "m"}, State: "lost"},
			`{"error":{"code":"attempt_gone","message":"m"},"state":"lost"}`},
		{"log mismatch", ErrorResponse{Error: ErrorDetail{Code: "log_mismatch", Message: "m"}, Length: &zero},
			`{"error":{"code":"log_mismatch","message":"m"},"length":0}`},
	} {
		got, err := json.Marshal(tc.v)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if string(got) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

func TestAttemptPath(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]string{
		HeartbeatPath: "/attempts/42/heartbeat",
		StepsPath:     "/attempts/42/steps",
		LogPath:       "/attempts/42/log",
		FinishPath:    "/attempts/42/finish",
	} {
		if got := AttemptPath(path, 42); got != want {
			t.Errorf("AttemptPath(%q, 42) = %q, want %q", path, got, want)
		}
	}
}
