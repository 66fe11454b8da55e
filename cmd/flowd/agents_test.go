package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/api"
	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/store/storetest"
)

// TestAgentAdminCommands drives flowd agent-token and flowd agents against a real API server on
// a real store: create (the token shown once works for the agent protocol), list, pause and
// resume, nodes, and revoke (the agent's next call is refused).
func TestAgentAdminCommands(t *testing.T) {
	t.Parallel()
	st := storetest.Open(t, "sqlite")
	srv := httptest.NewServer((&api.Server{Store: st, Logger: storetest.Logger(t)}).Handler())
	t.Cleanup(srv.Close)
	ctx := t.Context()
	hash, err := auth.HashPasswordCost("password-root", 4)
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.UserCreate(ctx, "root", hash, true)
	if err != nil {
		t.Fatal(err)
	}
	token, th, err := auth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.TokenCreate(ctx, u.ID, "test", th); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"FLOWD_SERVER": srv.URL, "FLOWD_TOKEN": token, "XDG_CONFIG_HOME": t.TempDir()}

	if r := runCLI(t, env, "", "agent-token", "create"); r.code != 2 || !strings.Contains(r.stderr, "--name is required") {
		t.Errorf("create without --name: %+v", r)
	}
	if r := runCLI(t, env, "", "agent-token", "create", "--name", "b1", "--labels", "os"); r.code != 2 || !strings.Contains(r.stderr, "key=value") {
		t.Errorf("create with a bad label: %+v", r)
	}
	r := runCLI(t, env, "", "agent-token", "create", "--name", "build-1", "--labels", "os=linux,arch=amd64")
	secret := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(secret, "fat_") || len(secret) != 68 || !strings.Contains(r.stderr, "shown only this once") {
		t.Fatalf("agent-token create: %+v", r)
	}
	if r := runCLI(t, env, "", "agent-token", "create", "--name", "build-1"); r.code != 1 || !strings.Contains(r.stderr, "exists already") {
		t.Errorf("create a taken name: %+v", r)
	}
	register := func() int {
		body := `{"name":"build-1","instance":"` + strings.Repeat("a", 32) + `","labels":{"os":"linux"},"capacity":2,"version":"1.0.0"}`
		req, _ := http.NewRequest("POST", srv.URL+"/api/agent/v1/register", bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := register(); code != http.StatusOK {
		t.Fatalf("register with the new token: %d", code)
	}
	if r := runCLI(t, env, "", "agent-token", "list"); r.code != 0 || !strings.Contains(r.stdout, "build-1") || !strings.Contains(r.stdout, "arch=amd64,os=linux") {
		t.Errorf("agent-token list: %+v", r)
	}
	if r := runCLI(t, env, "", "agents"); r.code != 0 || !strings.Contains(r.stdout, "build-1") || !strings.Contains(r.stdout, "1.0.0") {
		t.Errorf("agents: %+v", r)
	}
	if r := runCLI(t, env, "", "agents", "pause", "build-1"); r.code != 0 || !strings.Contains(r.stdout, "agent build-1 paused") {
		t.Errorf("agents pause: %+v", r)
	}
	if r := runCLI(t, env, "", "nodes"); r.code != 0 || !strings.Contains(r.stdout, "agent") || !strings.Contains(r.stdout, "os=linux") {
		t.Errorf("nodes: %+v", r)
	}
	if as, err := st.AgentList(ctx); err != nil || len(as) != 1 || !as[0].Paused {
		t.Fatalf("agents after pause: %+v, %v", as, err)
	}
	if r := runCLI(t, env, "", "agents", "resume", "build-1"); r.code != 0 || !strings.Contains(r.stdout, "resumed") {
		t.Errorf("agents resume: %+v", r)
	}
	if r := runCLI(t, env, "", "agents", "pause", "nobody"); r.code != 1 || !strings.Contains(r.stderr, "no agent is named") {
		t.Errorf("agents pause nobody: %+v", r)
	}
	if r := runCLI(t, env, "", "agent-token", "revoke", "build-1"); r.code != 0 || !strings.Contains(r.stdout, "revoked; 0 running job(s)") {
		t.Errorf("agent-token revoke: %+v", r)
	}
	if code := register(); code != http.StatusUnauthorized {
		t.Errorf("register with the revoked token: %d, want 401", code)
	}
}
