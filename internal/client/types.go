package client

import (
	"encoding/json"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// Node is a server (or, later, an agent) sharing the database, as GET /api/v1/nodes lists it.
type Node struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"` // "server" or "agent"
	Instance string `json:"instance"`
	Version  string `json:"version"`
	Addr     string `json:"addr"`
	// LeaseTTL is the node's --lease-ttl: it is live while its last heartbeat is within it.
	LeaseTTL    float64   `json:"lease_ttl_seconds"`
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
	// HeartbeatAge is how long ago the last heartbeat was, by the database's clock.
	HeartbeatAge float64 `json:"heartbeat_age_seconds"`
	JobsHeld     int     `json:"jobs_held"`
	Live         bool    `json:"live"`
	// Agent is set for a node of kind agent.
	Agent *NodeAgent `json:"agent,omitempty"`
	// Server is set for a node of kind server.
	Server *NodeServer `json:"server,omitempty"`
	// Running are the jobs the node runs now.
	Running []NodeJob `json:"running"`
}

// NodeServer is what a node of kind server adds: its own slots (--executors; 0 runs no job)
// and their labels (--labels), which a job's runs-on must match to run there.
type NodeServer struct {
	Executors int               `json:"executors"`
	Labels    map[string]string `json:"labels"`
}

// NodeAgent is what a node of kind agent adds: its agent's labels, capacity and whether it is
// paused.
type NodeAgent struct {
	ID       int64             `json:"id"`
	Token    string            `json:"token"`
	Labels   map[string]string `json:"labels"`
	Capacity int               `json:"capacity"`
	Paused   bool              `json:"paused"`
}

// NodeJob is a job a node runs: the attempt it holds.
type NodeJob struct {
	RunID     int64  `json:"run_id"`
	RunNumber int64  `json:"run_number"`
	Pipeline  string `json:"pipeline"`
	JobID     int64  `json:"job_id"`
	Stage     string `json:"stage"`
	Job       string `json:"job"`
	Attempt   int    `json:"attempt"`
	Runner    string `json:"runner"`
	State     string `json:"state"`
}

// User is a flowd user account.
type User struct {
	Username  string    `json:"username"`
	Admin     bool      `json:"admin"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

// NewUser is the body of UserCreate.
type NewUser struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Admin    bool   `json:"admin,omitempty"`
}

// UserChanges is the body of UserUpdate; nil fields are left as they are.
type UserChanges struct {
	Admin    *bool   `json:"admin,omitempty"`
	Disabled *bool   `json:"disabled,omitempty"`
	Password *string `json:"password,omitempty"`
}

// Token describes an API token of the caller (the token itself is shown only when created).
type Token struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// NewToken is the answer of Login: the token itself, shown this once.
type NewToken struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Token    string `json:"token"`
	Username string `json:"username"`
}

// Pipeline is a pipeline as PipelineGet returns it. PipelineList fills only Name, Description,
// Revision, Role, UpdatedAt, LastRun and Queue's bounds.
type Pipeline struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Revision    int64           `json:"revision"`
	YAML        string          `json:"yaml,omitempty"` // secret defaults masked as ***
	Variables   []Variable      `json:"variables,omitempty"`
	Stages      []PipelineStage `json:"stages,omitempty"`
	CreatedBy   string          `json:"created_by,omitempty"`
	Trusted     bool            `json:"trusted"`              // may run where steps run as the server's user
	TrustedBy   string          `json:"trusted_by,omitempty"` // the global admin who marked it
	CreatedAt   *time.Time      `json:"created_at,omitempty"`
	UpdatedAt   *time.Time      `json:"updated_at,omitempty"`
	Role        string          `json:"role"`               // the caller's role on it
	LastRun     *Run            `json:"last_run,omitempty"` // list only; a run summary
	Queue       PipelineQueue   `json:"queue"`
	Schedules   []Schedule      `json:"schedules"`
}

// Schedule is one of a pipeline's cron schedules, with its next three fire times.
type Schedule struct {
	Name      string            `json:"name,omitempty"`
	Title     string            `json:"title"`
	Cron      string            `json:"cron"`
	Timezone  string            `json:"timezone"`
	Branch    string            `json:"branch,omitempty"`
	Variables map[string]string `json:"variables"`
	Next      []time.Time       `json:"next"`
}

// Fire is a schedule's fire time some server acted on: a run started, or why none did.
type Fire struct {
	Schedule   string    `json:"schedule"`
	FireAt     time.Time `json:"fire_at"`
	Outcome    string    `json:"outcome"` // started, refused or failed
	Message    string    `json:"message,omitempty"`
	RunID      int64     `json:"run_id,omitempty"`
	RunNumber  int64     `json:"run_number,omitempty"`
	RecordedAt time.Time `json:"recorded_at"`
}

// PipelineQueue is a pipeline's queue bound (queue: in its YAML) and, from PipelineGet, its queue
// now, as the webhook's bound counts it: over the bound, webhooks that would start a run are
// answered 429 pipeline_queue_full with Retry-After (docs/api.md, "Backpressure").
type PipelineQueue struct {
	MaxRuns    int `json:"max_runs"`    // 0 = no bound
	MaxSeconds int `json:"max_seconds"` // 0 = no bound
	// Queued is how many of its runs wait to start; nil from PipelineList.
	Queued *int64 `json:"queued,omitempty"`
	// Seconds is their work at the rate its runs ended in the last minute; nil when none ended
	// (or from PipelineList).
	Seconds *int64 `json:"seconds,omitempty"`
}

// Variable is a declared pipeline variable. Default is "" for secret variables.
type Variable struct {
	Name        string   `json:"name"`
	Default     string   `json:"default"`
	Secret      bool     `json:"secret"`
	Options     []string `json:"options"`
	Description string   `json:"description"`
}

// PipelineStage is a stage of a pipeline definition.
type PipelineStage struct {
	Name string        `json:"name"`
	Jobs []PipelineJob `json:"jobs"`
}

// PipelineJob is a job of a pipeline definition with the names of its steps.
type PipelineJob struct {
	Name  string    `json:"name"`
	Image string    `json:"image,omitempty"` // its own or the pipeline's image:; "" on the host
	Steps StepNames `json:"steps"`
}

// StepNames are the names of a job's steps. It decodes both ["a","b"] and [{"name":"a"},…].
type StepNames []string

// UnmarshalJSON accepts a list of strings or of objects with a "name".
func (s *StepNames) UnmarshalJSON(data []byte) error {
	var names []string
	if err := json.Unmarshal(data, &names); err == nil {
		*s = names
		return nil
	}
	var objs []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(data, &objs); err != nil {
		return err
	}
	*s = make(StepNames, len(objs))
	for i, o := range objs {
		(*s)[i] = o.Name
	}
	return nil
}

// Member is a user's role on a pipeline: "viewer", "developer" or "admin".
type Member struct {
	Username string `json:"username"`
	Role     string `json:"role"`
}

// Run is one execution of a pipeline. Run summaries (RunList, Pipeline.LastRun) have no Stages.
type Run struct {
	ID              int64             `json:"id"`
	Number          int64             `json:"number"`
	Pipeline        string            `json:"pipeline"`
	Revision        int64             `json:"revision"`
	Status          run.Status        `json:"status"`
	Trigger         run.Trigger       `json:"trigger"`
	TriggeredBy     string            `json:"triggered_by"`
	Variables       map[string]string `json:"variables"` // secret values are absent
	Message         string            `json:"message,omitempty"`
	CancelRequested bool              `json:"cancel_requested,omitempty"`
	// Waiting says why a queued run has not started ("waiting for concurrency group …: run
	// #7 holds it"); "" otherwise.
	Waiting    string     `json:"waiting,omitempty"`
	CreatedAt  *time.Time `json:"created_at"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	URL        string     `json:"url,omitempty"`     // the run's web page
	APIURL     string     `json:"api_url,omitempty"` // the run in the API
	Stages     []Stage    `json:"stages,omitempty"`
	Schedule   *Fire      `json:"schedule,omitempty"` // the fire time that started a cron run
}

// Duration is how long the run has run: until FinishedAt, or until now while it runs; 0 before
// it started.
func (r *Run) Duration(now time.Time) time.Duration {
	return span(r.StartedAt, r.FinishedAt, now)
}

// Stage is a stage of a run; its status is the worst of its jobs'.
type Stage struct {
	Name   string     `json:"name"`
	Status run.Status `json:"status"`
	Jobs   []Job      `json:"jobs"`
}

// Job is a job of a run.
type Job struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Status     run.Status `json:"status"`
	Message    string     `json:"message,omitempty"` // why it failed or was canceled (runner_lost: …)
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	// Attempt is the number of the job's current attempt; Attempts lists them all.
	Attempt  int           `json:"attempt"`
	Attempts []run.Attempt `json:"attempts,omitempty"`
	// Container is how the job runs in a container (its image, options and services); nil on
	// the host.
	Container *run.Container `json:"container,omitempty"`
	// RunsOn are the labels a runner must have to take the job (YAML runs-on); nil: any.
	RunsOn map[string]string `json:"runs_on,omitempty"`
	// Waiting says why a queued job no live runner can take now waits ("waiting for an agent
	// with gpu=true; 0 connected"); "" otherwise.
	Waiting string `json:"waiting,omitempty"`
	Steps   []Step `json:"steps"`
}

// Duration is how long the job has run (see Run.Duration).
func (j *Job) Duration(now time.Time) time.Duration { return span(j.StartedAt, j.FinishedAt, now) }

// Step is a step of a job. ExitCode is nil until the step's process ended.
type Step struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Status     run.Status `json:"status"`
	ExitCode   *int       `json:"exit_code"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

// Duration is how long the step has run (see Run.Duration).
func (s *Step) Duration(now time.Time) time.Duration { return span(s.StartedAt, s.FinishedAt, now) }

func span(start, end *time.Time, now time.Time) time.Duration {
	if start == nil {
		return 0
	}
	if end != nil {
		return end.Sub(*start)
	}
	return now.Sub(*start)
}

// RunListParams filters and pages RunList; zero fields are not sent.
type RunListParams struct {
	Limit   int    // at most this many (the server's default is 50)
	Before  int64  // runs numbered below this (from RunPage.NextBefore)
	Status  string // e.g. "failed"
	Trigger string // e.g. "webhook"
}

// RunPage is one page of a pipeline's runs, newest first.
type RunPage struct {
	Runs       []Run  `json:"runs"`
	NextBefore *int64 `json:"next_before"` // nil on the last page
}

// Notification is a run's notification to one notify target (GET /api/v1/runs/{id}/notifications).
type Notification struct {
	ID             int64                 `json:"id"`
	Target         int                   `json:"target"`
	URL            string                `json:"url"`
	Signed         bool                  `json:"signed"`
	Secret         string                `json:"secret,omitempty"`
	DeliveryID     string                `json:"delivery_id"`
	Status         string                `json:"status"` // pending, delivered, failed
	Attempts       int                   `json:"attempts"`
	NextAttemptAt  *time.Time            `json:"next_attempt_at,omitempty"`
	GiveUpAt       time.Time             `json:"give_up_at"`
	LastStatusCode int                   `json:"last_status_code,omitempty"`
	LastError      string                `json:"last_error,omitempty"`
	CreatedAt      time.Time             `json:"created_at"`
	FinishedAt     *time.Time            `json:"finished_at"`
	History        []NotificationAttempt `json:"history"`
}

// NotificationAttempt is one POST of a notification.
type NotificationAttempt struct {
	Number     int       `json:"number"`
	StartedAt  time.Time `json:"started_at"`
	DurationMS int64     `json:"duration_ms"`
	StatusCode int       `json:"status_code,omitempty"` // 0 = no HTTP answer
	Error      string    `json:"error,omitempty"`
}

// CommitStatus is what a run reports to the code host of its commit (GET
// /api/v1/runs/{id}/commit-status).
type CommitStatus struct {
	Host           string                `json:"host"`
	APIURL         string                `json:"api_url"`
	Repo           string                `json:"repo"`
	SHA            string                `json:"sha"`
	Context        string                `json:"context"`
	TargetURL      string                `json:"target_url"`
	TokenVariable  string                `json:"token_variable"`
	State          string                `json:"state"` // the run's newest state, the one to report
	Description    string                `json:"description"`
	Status         string                `json:"status"` // pending, sent, failed
	SentState      string                `json:"sent_state,omitempty"`
	Attempts       int                   `json:"attempts"`
	NextAttemptAt  *time.Time            `json:"next_attempt_at,omitempty"`
	GiveUpAt       *time.Time            `json:"give_up_at,omitempty"`
	LastStatusCode int                   `json:"last_status_code,omitempty"`
	LastError      string                `json:"last_error,omitempty"`
	ChangedAt      time.Time             `json:"changed_at"`
	History        []CommitStatusAttempt `json:"history"`
}

// CommitStatusAttempt is one request that reported State.
type CommitStatusAttempt struct {
	Number     int       `json:"number"`
	State      string    `json:"state"`
	StartedAt  time.Time `json:"started_at"`
	DurationMS int64     `json:"duration_ms"`
	StatusCode int       `json:"status_code,omitempty"` // 0 = no HTTP answer
	Error      string    `json:"error,omitempty"`
}
