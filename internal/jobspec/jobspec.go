// Package jobspec builds the self-contained description of one job attempt that a runner
// executes: its steps, its complete environment, the checkout of its commit, the secret values
// to mask in its log, its timeout and its workspace. Build makes one from a store.Claim; after
// that a runner needs neither the store nor the secret key, so the same Spec can be run by the
// server's own scheduler or, later, sent to a remote agent.
//
// The pieces are here, not in the scheduler, because the trigger package needs them too: it
// resolves a branch with `git ls-remote` authenticated exactly as the checkout (Checkout).
package jobspec

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/flowd/flowd/internal/executor"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/secret"
	"github.com/flowd/flowd/internal/store"
)

// Spec is one job attempt as a runner needs it.
type Spec struct {
	RunID, JobID int64
	Pipeline     string
	Stage, Job   string // the stage's and the job's names, for the log's first line
	Steps        []executor.Step
	// Env is the complete environment of every step (see Environment).
	Env []string
	// Checkout is the commit the workspace is cloned at before the first step; nil: none.
	Checkout *executor.Checkout
	// Secrets are the values a log writer masks: the run's non-empty secret variables and the
	// clone password.
	Secrets []string
	// Timeout bounds the whole job; 0 means none.
	Timeout time.Duration
	// KillGrace is the job's cancel_grace: how long a canceled step's processes have between
	// SIGTERM and SIGKILL; 0 is the runner's own.
	KillGrace time.Duration
	// Workspace is the job's folder: the runner's workspace root joined with WorkspaceName.
	Workspace string
	// Attempt is the id of the job's attempt (store.Claim.Attempt.ID).
	Attempt int64
	// Container, when set, runs the job in a container (its image, options and services);
	// Env is then built for it (see Environment). nil runs it on the runner's host.
	Container *run.Container
}

// Build makes the Spec of claim c: it decrypts the run's secret variables with box, and
// builds the checkout, the environment and the values to mask, with the job's workspace
// under workspaceRoot. An error's message says what is wrong in words for the job's log and
// failure message (a secret the run cannot decrypt, a source.credentials variable it lacks).
func Build(c store.Claim, box *secret.Box, workspaceRoot string) (Spec, error) {
	secrets, err := secretVariables(box, c.Run)
	if err != nil {
		return Spec{}, fmt.Errorf("cannot decrypt the run's secret variables: %w", err)
	}
	checkout, err := Checkout(c.Run.Git, secrets)
	if err != nil {
		return Spec{}, err
	}
	s := Spec{
		RunID:     c.Run.ID,
		JobID:     c.Job.ID,
		Pipeline:  c.Run.Pipeline,
		Stage:     c.Job.StageName,
		Job:       c.Job.Name,
		Checkout:  checkout,
		Timeout:   c.Job.Timeout,
		KillGrace: c.Job.CancelGrace,
		Workspace: filepath.Join(workspaceRoot, WorkspaceName(c.Run.ID, c.Job.ID)),
		Attempt:   c.Attempt.ID,
		Container: c.Job.Container.Clone(),
	}
	for _, v := range secrets {
		if v != "" {
			s.Secrets = append(s.Secrets, v)
		}
	}
	if checkout != nil && checkout.Password != "" {
		s.Secrets = append(s.Secrets, checkout.Password) // a secret variable already; kept explicit
	}
	s.Env = Environment(c.Run, c.Job, secrets, s.Workspace)
	for _, st := range c.Job.Steps {
		s.Steps = append(s.Steps, executor.Step{ID: st.ID, Name: st.Name, Script: st.Script})
	}
	return s, nil
}

// BuildRemote is Build for a runner on another machine (a flowd agent): Workspace is only
// WorkspaceName (the agent joins it to its own work folder), and the Env of a job on the host
// holds neither PATH, HOME nor FLOWD_WORKSPACE, which the agent adds from its own machine (a
// PATH or HOME the job's env sets stays). A job in a container gets its Env as from Build.
func BuildRemote(c store.Claim, box *secret.Box) (Spec, error) {
	s, err := Build(c, box, "")
	if err != nil {
		return Spec{}, err
	}
	if c.Job.Container == nil {
		secrets, err := secretVariables(box, c.Run)
		if err != nil {
			return Spec{}, fmt.Errorf("cannot decrypt the run's secret variables: %w", err)
		}
		s.Env = environment(c.Run, c.Job, secrets, "", true)
	}
	return s, nil
}

// ExecutorJob is the job the executor runs for s.
func (s Spec) ExecutorJob() executor.Job {
	return executor.Job{
		RunID:     s.RunID,
		JobID:     s.JobID,
		Attempt:   s.Attempt,
		Container: s.Container,
		Workspace: s.Workspace,
		Env:       s.Env,
		Checkout:  s.Checkout,
		Steps:     s.Steps,
		Timeout:   s.Timeout,
		KillGrace: s.KillGrace,
	}
}

// WorkspaceName is the folder of job jobID of run runID under a workspace root: one level,
// "<run>-<job>", so that creating it costs one mkdir (the executor's MkdirAll; the root exists
// after the first job) and removing it (Cleanup) leaves nothing behind. A folder per run
// holding its jobs' folders cost a second mkdir per job and stayed behind, empty, after its
// jobs were cleaned up.
func WorkspaceName(runID, jobID int64) string {
	return strconv.FormatInt(runID, 10) + "-" + strconv.FormatInt(jobID, 10)
}

// secretVariables are the run's secret variables, decrypted; nil when it has none (then box
// may be nil).
func secretVariables(box *secret.Box, r run.Run) (map[string]string, error) {
	if len(r.SecretVariables) == 0 {
		return nil, nil
	}
	plain, err := box.Open(r.SecretVariables)
	if err != nil {
		return nil, err
	}
	var m map[string]string
	if err := json.Unmarshal(plain, &m); err != nil {
		return nil, fmt.Errorf("jobspec: secret variables: %w", err)
	}
	return m, nil
}
