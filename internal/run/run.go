// Package run holds the run, job and step records of flowd, their status constants and the
// transitions allowed between them. It is pure: no I/O. The store enforces the same transitions
// in SQL (UPDATE … WHERE status = expected), so a status never moves backwards or twice.
package run

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Status is the state of a run, a job or a step.
type Status string

// The statuses. Who moves each one is written beside it.
const (
	// Queued: written when a run is created (by the API, a webhook or a push). Runs and jobs
	// start here; a job of a later stage stays queued until its stage starts.
	Queued Status = "queued"
	// Running: set by the scheduler when it claims a job (job, and its run if still queued),
	// and by the executor for a step it starts.
	Running Status = "running"
	// Success: set by the executor (step), the scheduler (job) and the store's run advance
	// (run) when everything before it succeeded.
	Success Status = "success"
	// Failed: a step exited non-zero, timed out, could not start, or the server stopped while
	// it ran. A failed job fails its run.
	Failed Status = "failed"
	// Canceled: a user canceled the run, or flowd shut down while it ran.
	Canceled Status = "canceled"
	// Skipped: jobs and steps only: never started because something before them failed or
	// the run was canceled.
	Skipped Status = "skipped"
	// Canceling: never stored. The API shows it for a running run whose cancel was requested
	// (Run.CancelRequested) while its jobs' runners stop them, on whichever node they run.
	Canceling Status = "canceling"
)

// Terminal reports whether s is a final status.
func (s Status) Terminal() bool {
	switch s {
	case Success, Failed, Canceled, Skipped:
		return true
	}
	return false
}

// Valid reports whether s is one of the statuses.
func (s Status) Valid() bool {
	switch s {
	case Queued, Running, Success, Failed, Canceled, Skipped:
		return true
	}
	return false
}

// transitions lists, for each status, the statuses it may move to.
var transitions = map[Status][]Status{
	Queued:  {Running, Canceled, Skipped, Failed},
	Running: {Success, Failed, Canceled},
}

// CanTransition reports whether a record may move from one status to another.
func CanTransition(from, to Status) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// From lists the statuses that may move to s; the store uses it in guarded updates.
func From(to Status) []Status {
	var out []Status
	for _, from := range []Status{Queued, Running} {
		if CanTransition(from, to) {
			out = append(out, from)
		}
	}
	return out
}

// Trigger says what started a run.
type Trigger string

// The triggers.
const (
	TriggerManual  Trigger = "manual"
	TriggerWebhook Trigger = "webhook"
	TriggerPush    Trigger = "push"
	TriggerCron    Trigger = "cron" // a pipeline's schedule fired (store.ScheduleFire says which, when)
)

// Run is one execution of a pipeline.
type Run struct {
	ID          int64             `json:"id"`
	PipelineID  int64             `json:"-"`
	Pipeline    string            `json:"pipeline"`
	Number      int64             `json:"number"`
	Revision    int64             `json:"revision"`
	Status      Status            `json:"status"`
	Trigger     Trigger           `json:"trigger"`
	TriggeredBy string            `json:"triggered_by"`
	Variables   map[string]string `json:"variables"` // secret values are never here
	// SecretVariables holds the encrypted values of the run's secret variables (by name).
	SecretVariables []byte `json:"-"`
	// Stage is the index of the stage whose jobs may run now.
	Stage           int        `json:"-"`
	CancelRequested bool       `json:"cancel_requested,omitempty"`
	Message         string     `json:"message,omitempty"` // why it failed or was canceled
	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at"`
	FinishedAt      *time.Time `json:"finished_at"`
	// LogExpiredAt is when the log retention sweep deleted the run's log; nil while it is kept.
	LogExpiredAt *time.Time `json:"log_expired_at,omitempty"`
	// Git is the commit the run builds; nil for pipelines without a source.
	Git *Git `json:"git"`
	// ConcurrencyGroup is the run's group under the pipeline's concurrency option ("" = none);
	// MaxRunning bounds the running runs of the group (0 = no bound).
	ConcurrencyGroup string `json:"concurrency_group,omitempty"`
	MaxRunning       int    `json:"-"`
	Jobs             []Job  `json:"-"`
	// Waiting says, for a queued run that has not started as a whole, why ("waiting for
	// concurrency group "deploy": run #7 holds it"); the API fills it, the store never stores it.
	Waiting string `json:"waiting,omitempty"`
}

// Git is the commit a run of a pipeline with a source checks out, and where it came from.
type Git struct {
	RepoURL  string `json:"repo_url"` // without credentials
	SHA      string `json:"commit_sha"`
	Ref      string `json:"ref"` // refs/heads/main, refs/tags/v1
	Branch   string `json:"branch,omitempty"`
	Tag      string `json:"tag,omitempty"`
	Event    string `json:"event"`              // push, tag, pull_request, manual
	Provider string `json:"provider,omitempty"` // github, gitlab, … ("" for manual runs)
	Message  string `json:"commit_message,omitempty"`
	Author   string `json:"commit_author,omitempty"`
	// CredentialsVar names the secret variable whose value is the token or password for HTTP
	// clones (the pipeline's source.credentials); "" = none.
	CredentialsVar string `json:"-"`
	// StatusTokenVar names the secret variable whose value is the token that reports the run's
	// states to the code host (the pipeline's source.status_token); "" = no commit statuses.
	StatusTokenVar string `json:"-"`
}

// Job is one job of a run; the jobs of a stage run in parallel.
type Job struct {
	ID        int64             `json:"id"`
	RunID     int64             `json:"-"`
	Stage     int               `json:"-"`
	StageName string            `json:"-"`
	Index     int               `json:"-"`
	Name      string            `json:"name"`
	Status    Status            `json:"status"`
	Timeout   time.Duration     `json:"-"`
	Env       map[string]string `json:"-"`
	// RetryLost is how many more attempts the job gets when its runner is lost.
	RetryLost int `json:"-"`
	// CancelGrace is how long a canceled (or timed-out) step's processes have between SIGTERM
	// and SIGKILL (YAML cancel_grace); 0 is the runner's own (a server's 1 s, an agent's 10 s).
	CancelGrace time.Duration `json:"-"`
	// Container, when set, runs the job's steps in a container of its image (the job's or the
	// pipeline's image:); nil runs them as processes on the runner's host.
	Container *Container `json:"container,omitempty"`
	// RunsOn are the labels a runner must have to take the job (YAML runs-on; see
	// LabelsMatch); nil: any runner.
	RunsOn map[string]string `json:"runs_on,omitempty"`
	// Waiting says, for a queued job no live runner can take now, why it waits ("waiting for
	// an agent with gpu=true; 0 connected"); the API fills it, the store never stores it.
	Waiting    string     `json:"waiting,omitempty"`
	Message    string     `json:"message,omitempty"` // why it failed or was canceled
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	// Attempt is the number of the job's current attempt (0 while it never started).
	Attempt  int       `json:"attempt"`
	Attempts []Attempt `json:"attempts,omitempty"`
	Steps    []Step    `json:"steps"`
}

// Container is how a job runs in a container (YAML image:, container: and services:). A job's
// is fixed when its run is created, as its steps are.
type Container struct {
	// Image is the image reference the job's container starts from, such as "golang:1.26".
	Image string `json:"image"`
	// User runs the steps as a uid or uid:gid ("1000", "1000:1000"); "" is the image's user.
	User string `json:"user,omitempty"`
	// Network is NetworkBridge (also for "") or NetworkNone.
	Network string `json:"network,omitempty"`
	// CPUs bounds the CPUs the job may use (1.5: one and a half); 0 is the server's maximum.
	CPUs float64 `json:"cpus,omitempty"`
	// Memory bounds the job's memory in bytes; 0 is the server's maximum.
	Memory int64 `json:"memory,omitempty"`
	// Pull is when the image is pulled: PullIfNotPresent (also for ""), PullNever or PullAlways.
	Pull string `json:"pull,omitempty"`
	// Services are the sidecar containers started before the job's first step, reachable from
	// the job by their names, removed with the job.
	Services []Service `json:"services,omitempty"`
}

// Clone returns a deep copy of c (nil for nil).
func (c *Container) Clone() *Container {
	if c == nil {
		return nil
	}
	out := *c
	out.Services = slices.Clone(c.Services)
	for i, svc := range out.Services {
		out.Services[i].Env = maps.Clone(svc.Env)
		out.Services[i].Command = slices.Clone(svc.Command)
	}
	return &out
}

// Container network modes and pull policies.
const (
	NetworkBridge    = "bridge"
	NetworkNone      = "none"
	PullIfNotPresent = "if-not-present"
	PullNever        = "never"
	PullAlways       = "always"
)

// Service is one sidecar container of a job.
type Service struct {
	// Name is the host name the job reaches the service by ("postgres", "db").
	Name  string `json:"name"`
	Image string `json:"image"`
	// Env is the service container's environment (such as POSTGRES_PASSWORD).
	Env map[string]string `json:"env,omitempty"`
	// Command replaces the image's command (CMD), not its entrypoint; empty keeps it.
	Command []string `json:"command,omitempty"`
}

// AttemptState is where one attempt of a job is. A claim creates it running; a cancel moves
// it to canceling; the runner's end of the job moves it to finished; the rescuer moves an
// attempt whose lease expired to lost.
type AttemptState string

// The attempt states.
const (
	AttemptRunning   AttemptState = "running"
	AttemptCanceling AttemptState = "canceling"
	AttemptFinished  AttemptState = "finished"
	AttemptLost      AttemptState = "lost"
)

// Attempt is one claim of a job by a runner: who held it and its lease.
type Attempt struct {
	ID          int64        `json:"-"`
	Number      int          `json:"number"`
	Runner      string       `json:"runner"` // "<node>/<slot>" for a server's slot
	Node        string       `json:"node"`
	State       AttemptState `json:"state"`
	Reason      string       `json:"reason,omitempty"`
	StartedAt   time.Time    `json:"started_at"`
	HeartbeatAt time.Time    `json:"heartbeat_at"`
	ExpiresAt   time.Time    `json:"expires_at"`
	FinishedAt  *time.Time   `json:"finished_at,omitempty"`
}

// Step is one command of a job.
type Step struct {
	ID         int64      `json:"id"`
	JobID      int64      `json:"-"`
	Index      int        `json:"-"`
	Name       string     `json:"name"`
	Script     string     `json:"-"`
	Status     Status     `json:"status"`
	ExitCode   *int       `json:"exit_code"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

// LogChunk is a piece of a run's log: whole lines of one job, already masked.
type LogChunk struct {
	RunID int64
	JobID int64 // 0 for lines of the run itself (e.g. "the server stopped")
	// Attempt is the id of the job attempt whose runner wrote the chunk: the store refuses it
	// unless that attempt is still the job's live one (fencing). 0 for flowd's own lines.
	Attempt int64
	Seq     int64 // 1, 2, 3… per run, in the order written
	Data    []byte
	At      time.Time
}

// SplitLog cuts log bytes into the Data of chunks of at most size bytes each, each ending
// after a newline where one falls within it.
func SplitLog(data []byte, size int) [][]byte {
	var out [][]byte
	for len(data) > size {
		cut := size
		if i := bytes.LastIndexByte(data[:size], '\n'); i >= 0 {
			cut = i + 1
		}
		out = append(out, data[:cut])
		data = data[cut:]
	}
	return append(out, data)
}

// StageView is a run's stage with its jobs, as the API shows it.
type StageView struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Jobs   []Job  `json:"jobs"`
}

// Stages groups r.Jobs by stage, in order. A stage's status is the worst of its jobs'.
func (r *Run) Stages() []StageView {
	var out []StageView
	for _, j := range r.Jobs {
		if len(out) == 0 || out[len(out)-1].Name != j.StageName || j.Stage != len(out)-1 {
			out = append(out, StageView{Name: j.StageName})
		}
		st := &out[len(out)-1]
		st.Jobs = append(st.Jobs, j)
	}
	for i := range out {
		out[i].Status = stageStatus(out[i].Jobs)
	}
	return out
}

func stageStatus(jobs []Job) Status {
	rank := map[Status]int{Skipped: 0, Success: 1, Queued: 2, Running: 3, Canceled: 4, Failed: 5}
	best := Skipped
	allSkipped := true
	for _, j := range jobs {
		if j.Status != Skipped {
			allSkipped = false
		}
		if rank[j.Status] > rank[best] {
			best = j.Status
		}
	}
	if allSkipped {
		return Skipped
	}
	return best
}

// MarshalJSON shows a run with its stages, as DESIGN.md's GET /api/v1/runs/{id}.
func (r Run) MarshalJSON() ([]byte, error) {
	type plain Run
	vars := r.Variables
	if vars == nil {
		vars = map[string]string{}
	}
	p := plain(r)
	p.Variables = vars
	stages := r.Stages()
	if stages == nil {
		stages = []StageView{}
	}
	return json.Marshal(struct {
		plain
		Stages []StageView `json:"stages"`
	}{p, stages})
}

// ErrTransition is returned when a record is not in a status that may move to the wanted one.
type ErrTransition struct {
	What     string // "run", "job", "step"
	ID       int64
	From, To Status
}

func (e *ErrTransition) Error() string {
	return fmt.Sprintf("%s %d: cannot move from %s to %s", e.What, e.ID, e.From, e.To)
}
