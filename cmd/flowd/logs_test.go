package main

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/api"
	"github.com/flowd/flowd/internal/auth"
	flowrun "github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/secret"
	"github.com/flowd/flowd/internal/store/storetest"
	"github.com/flowd/flowd/internal/trigger"
)

// TestLogsCommand drives flowd logs (and show) against a real API server on each database:
// --job picks a job by name out of interleaved chunks, --no-color strips escape sequences,
// --timestamps prefixes each line with its chunk's time, and --follow with them ends with the
// run; show says why a queued run waits.
func TestLogsCommand(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			st := storetest.Open(t, dialect)
			box, err := secret.New(bytes.Repeat([]byte{7}, 32))
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer((&api.Server{Store: st, Box: box, Triggers: &trigger.Service{Store: st, Box: box},
				Logger: storetest.Logger(t), PasswordCost: 4}).Handler())
			t.Cleanup(srv.Close)
			ctx := t.Context()
			hash, err := auth.HashPasswordCost("password-alice", 4)
			if err != nil {
				t.Fatal(err)
			}
			u, err := st.UserCreate(ctx, "alice", hash, false)
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
			def := filepath.Join(t.TempDir(), "pair.yaml")
			if err := os.WriteFile(def, []byte(`name: pair
stages:
  - name: build
    jobs:
      - name: compile
        steps: [{name: one, run: "true"}]
      - name: lint
        steps: [{name: two, run: "true"}]
`), 0o600); err != nil {
				t.Fatal(err)
			}
			if r := runCLI(t, env, "", "pipeline", "apply", "-f", def); r.code != 0 {
				t.Fatalf("pipeline apply: %+v", r)
			}
			if r := runCLI(t, env, "", "run", "pair"); r.code != 0 {
				t.Fatalf("run: %+v", r)
			}
			rn, err := st.RunGet(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			jobs := map[string]int64{}
			for _, j := range rn.Jobs {
				jobs[j.Name] = j.ID
			}
			at := time.Date(2026, 12, 7, 16, 3, 55, 250e6, time.UTC)
			var chunks []flowrun.LogChunk
			for i, c := range []struct {
				job  string
				data string
			}{
				{"compile", "▶ one\n\x1b[1;31mwarning\x1b[0m: x\nhal"},
				{"lint", "\x1b]0;lint\x07▶ two\n"},
				{"compile", "f a line\n"},
				{"lint", "✔ two (0s)\n"},
			} {
				chunks = append(chunks, flowrun.LogChunk{RunID: rn.ID, JobID: jobs[c.job], Data: []byte(c.data), At: at.Add(time.Duration(i) * time.Second)})
			}
			if err := st.LogAppend(ctx, chunks); err != nil {
				t.Fatal(err)
			}

			for _, c := range []struct {
				args []string
				want string
			}{
				{[]string{"pair#1"}, "▶ one\n\x1b[1;31mwarning\x1b[0m: x\nhal\x1b]0;lint\x07▶ two\nf a line\n✔ two (0s)\n"},
				{[]string{"pair#1", "--job", "compile"}, "▶ one\n\x1b[1;31mwarning\x1b[0m: x\nhalf a line\n"},
				{[]string{"pair#1", "--job", "compile", "--no-color"}, "▶ one\nwarning: x\nhalf a line\n"},
				{[]string{"1", "--job", "lint", "--no-color", "--timestamps"}, "2026-12-07T16:03:56.250Z ▶ two\n2026-12-07T16:03:58.250Z ✔ two (0s)\n"},
			} {
				r := runCLI(t, env, "", append([]string{"logs"}, c.args...)...)
				if r.code != 0 || r.stdout != c.want {
					t.Errorf("logs %v: exit %d, stdout %q, want %q", c.args, r.code, r.stdout, c.want)
				}
			}
			if r := runCLI(t, env, "", "logs", "pair#1", "--job", "deploy"); r.code != 1 || !strings.Contains(r.stderr, `run pair#1 (id 1) has no job "deploy"; its jobs: compile, lint`) {
				t.Errorf("logs --job deploy: %+v", r)
			}

			// flowd show says why the queued run waits (this server has no runner).
			if r := runCLI(t, env, "", "show", "pair#1"); r.code != 0 || !strings.Contains(r.stdout, "Waiting:   waiting for an agent; 0 connected\n") {
				t.Errorf("show of a queued run: %+v", r)
			}

			// Once the run has ended, a follow of one job prints its lines and the run's status.
			for range 2 {
				c, err := st.JobClaim(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := st.JobFinish(ctx, c.Attempt.ID, c.Job.ID, flowrun.Success, ""); err != nil {
					t.Fatal(err)
				}
			}
			r := runCLI(t, env, "", "logs", "pair#1", "-f", "--job", "lint", "--no-color")
			if r.code != 0 || r.stdout != "▶ two\n✔ two (0s)\n" || !strings.Contains(r.stderr, "run pair#1 (id 1) success") {
				t.Errorf("logs -f --job lint: %+v", r)
			}
			if r := runCLI(t, env, "", "show", "pair#1"); r.code != 0 || strings.Contains(r.stdout, "Waiting:") {
				t.Errorf("show of an ended run: %+v", r)
			}
		})
	}
}
