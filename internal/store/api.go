package store

// This file is the store's contract: its types and the signatures of its methods. The bodies
// live in the other files of the package, one file per noun.

import (
	"errors"
	"fmt"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// Sentinel errors; wrap them, test with errors.Is.
var (
	// ErrNotFound: no such row.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique name is taken, or a row is not in the state the change needs.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the database cannot be reached; nothing was written.
	ErrUnavailable = errors.New("database unavailable")
	// ErrFull: the database or the disk under it is full (SQLite's SQLITE_FULL, PostgreSQL's
	// disk_full); nothing was written and the database is intact. It is an ErrUnavailable too:
	// a write may succeed once space is freed.
	ErrFull = fmt.Errorf("%w: the database or its disk is full", ErrUnavailable)
	// ErrKeyMismatch: an idempotency key seen within IdempotencyWindow came with another body;
	// nothing was written.
	ErrKeyMismatch = errors.New("idempotency key used with another body")
	// ErrStale: a delivery's WebhookBasis no longer holds (the trigger, its owner's standing or
	// the pipeline changed since it was read); nothing was written.
	ErrStale = errors.New("the webhook trigger, its owner or the pipeline changed")
)

// User is an account.
type User struct {
	ID           int64
	Username     string
	PasswordHash string
	Admin        bool
	Disabled     bool
	CreatedAt    time.Time
}

// UserUpdate changes the fields that are not nil.
type UserUpdate struct {
	PasswordHash *string
	Admin        *bool
	Disabled     *bool
}

// Token is an API token; only its hash is stored.
type Token struct {
	ID         int64
	UserID     int64
	Name       string
	CreatedAt  time.Time
	LastUsedAt *time.Time
}

// Pipeline is a pipeline at one revision.
type Pipeline struct {
	ID        int64
	Name      string
	Revision  int64
	Source    string // YAML with secret values masked as ***
	Secrets   []byte // encrypted JSON object of secret values by variable name; nil when none
	CreatedBy string
	CreatedAt time.Time
	UpdatedAt time.Time // when Revision was written
	// TrustedBy names the global admin who marked the pipeline trusted; "" = not trusted. Only
	// trusted pipelines run on a server whose steps run as its own user (DESIGN.md "Isolation").
	TrustedBy string
}

// PipelineSummary is a pipeline with its newest run (nil when it has none), for lists.
type PipelineSummary struct {
	Pipeline
	LastRun *run.Run // without Jobs
	// Running are the pipeline's running runs, newest first, at most MaxListedRunning of
	// them (without Jobs); RunningCount and QueuedCount count all of its running and queued
	// runs. The newest run may have ended while an older one still runs: Running shows it.
	Running                   []run.Run
	RunningCount, QueuedCount int
}

// Member is a user's role on a pipeline: "viewer", "developer" or "admin".
type Member struct {
	UserID   int64
	Username string
	Role     string
}

// RunCreate is what a new run is made of. Jobs carry Stage, StageName, Index, Name, Timeout,
// Env and Steps (Index, Name, Script); every job and step starts queued.
type RunCreate struct {
	PipelineID      int64
	Revision        int64
	Trigger         run.Trigger
	TriggeredBy     string
	Variables       map[string]string
	SecretVariables []byte
	// Git is the commit the run builds; nil for a run without a Git source. Its CredentialsVar
	// (a variable name, not a secret) is stored with it.
	Git *run.Git
	// ConcurrencyGroup is the run's group under the pipeline's concurrency option, already
	// expanded; "" = none. MaxRunning (0 = no bound, never negative) bounds how many runs of
	// the pipeline's group run at once: JobClaim starts a queued run of the group only while
	// fewer run, oldest first. RunSupersede applies cancel_previous.
	ConcurrencyGroup string
	MaxRunning       int
	Jobs             []run.Job
	// Fire is the schedule's fire time that starts the run; nil for other triggers. It is
	// recorded with the run, once: a second RunCreate with the same fire is ErrFireTaken.
	Fire *Fire
}

// RunListParams selects a page of a pipeline's runs, newest first.
type RunListParams struct {
	Limit   int         // 1..200; 0 means 50
	Before  int64       // only runs with a number below this; 0 = from the newest
	Status  run.Status  // "" = any
	Trigger run.Trigger // "" = any
}

// Claim is a job the scheduler took, with its run (Run.Jobs empty).
type Claim struct {
	// Job is the claimed job with its steps; its Attempts list is not filled (Attempt is).
	Job run.Job
	Run run.Run
	// Attempt is the attempt the claim created: every write for the job names its ID.
	Attempt AttemptRef
	// Trusted tells whether the run's pipeline is trusted now (see Pipeline.TrustedBy).
	Trusted bool
}
