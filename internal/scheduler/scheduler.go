// Package scheduler turns queued jobs into running processes: it claims ready jobs from the
// store (at most Slots at once across the server), hands each to the executor with the run's
// environment and a log writer, records step and job statuses, and cancels jobs on request or
// at shutdown. It wakes on new work (Wake) and polls as a fallback for work written elsewhere.
//
// A job of a run with Git gets an executor.Checkout of the run's commit (see Checkout for the
// clone credentials) and the FLOWD_* Git variables (see Environment). Concurrency groups are
// the store's: JobClaim holds back runs waiting for a slot of their group, and Cancel stops
// runs that RunSupersede superseded as it stops canceled ones.
package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flowd/flowd/internal/executor"
	"github.com/flowd/flowd/internal/logs"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/secret"
	"github.com/flowd/flowd/internal/store"
)

// Store is what the scheduler needs of the store.
type Store interface {
	JobClaim(ctx context.Context) (store.Claim, error)
	StepStart(ctx context.Context, stepID int64) error
	StepFinish(ctx context.Context, stepID int64, status run.Status, exitCode *int) error
	JobFinish(ctx context.Context, jobID int64, status run.Status, message string) (run.Run, error)
	RecoverInterrupted(ctx context.Context, message string) ([]int64, error)
}

// StepObserver records step durations (the metrics package implements it).
type StepObserver interface {
	StepDuration(status run.Status, seconds float64)
}

// Config is what a Scheduler is built from.
type Config struct {
	Store     Store
	Executor  executor.Executor
	Logs      *logs.Appender
	Box       *secret.Box
	Slots     int    // jobs at once
	Workspace string // root folder of job workspaces
	Metrics   StepObserver
	Logger    *slog.Logger
	// Poll is how often the scheduler looks for work nobody woke it for; default 1s.
	Poll time.Duration
}

// Why a job's context was canceled.
var (
	errCanceledByUser = errors.New("canceled")
	errShutdown       = errors.New("flowd is shutting down")
)

// RecoverMessage is written to runs that were running when the server stopped.
const RecoverMessage = "flowd stopped while this run was running; it was marked failed when flowd started again"

// Scheduler claims and runs jobs. Build it with New, call Recover once, then Run.
type Scheduler struct {
	cfg  Config
	wake chan struct{}

	mu      sync.Mutex
	running map[int64]map[int64]context.CancelCauseFunc // run id → job id → cancel
	// canceled remembers recent Cancel calls, so a job claimed just before its run's cancel
	// request (and not yet tracked when Cancel came) is stopped as soon as it is tracked.
	canceled map[int64]time.Time
}

// cancelMemory is how long Cancel is remembered for jobs not tracked yet.
const cancelMemory = time.Minute

// New returns a Scheduler.
func New(cfg Config) *Scheduler {
	if cfg.Slots < 1 {
		cfg.Slots = 1
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{
		cfg:      cfg,
		wake:     make(chan struct{}, 1),
		running:  map[int64]map[int64]context.CancelCauseFunc{},
		canceled: map[int64]time.Time{},
	}
}

// Recover finishes jobs a previous server left running (they are failed, with a log line) so
// that their runs do not stay running forever. Queued runs are left to run.
func (s *Scheduler) Recover(ctx context.Context) error {
	ids, err := s.cfg.Store.RecoverInterrupted(ctx, RecoverMessage)
	if err != nil {
		return fmt.Errorf("scheduler: recover: %w", err)
	}
	if len(ids) > 0 {
		s.cfg.Logger.Warn("failed runs interrupted by a stop", "runs", ids)
	}
	return nil
}

// Wake tells the scheduler that work may be ready. It never blocks.
func (s *Scheduler) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Cancel stops the running jobs of a run; their executor kills their processes. The store
// already holds the cancel request, so jobs of the run not yet started will not start.
func (s *Scheduler) Cancel(runID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for id, at := range s.canceled {
		if now.Sub(at) > cancelMemory {
			delete(s.canceled, id)
		}
	}
	s.canceled[runID] = now
	for _, cancel := range s.running[runID] {
		cancel(errCanceledByUser)
	}
}

// Run claims and runs jobs until ctx is done; then it cancels the running jobs, waits for their
// statuses to be written, and returns.
func (s *Scheduler) Run(ctx context.Context) error {
	jobsCtx, stopJobs := context.WithCancelCause(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() {
		stopJobs(errShutdown)
		wg.Wait()
	}()
	slots := make(chan struct{}, s.cfg.Slots)
	ticker := time.NewTicker(s.cfg.Poll)
	defer ticker.Stop()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		claim, err := s.cfg.Store.JobClaim(ctx)
		if err != nil {
			<-slots
			if ctx.Err() != nil {
				return nil
			}
			if !errors.Is(err, store.ErrNotFound) {
				s.cfg.Logger.Error("claim job", "err", err)
			}
			select {
			case <-s.wake:
			case <-ticker.C:
			case <-ctx.Done():
				return nil
			}
			continue
		}
		jobCtx, cancel := context.WithCancelCause(jobsCtx)
		s.track(claim.Run.ID, claim.Job.ID, cancel)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			defer s.untrack(claim.Run.ID, claim.Job.ID)
			defer cancel(nil)
			s.runJob(jobCtx, claim)
			s.Wake() // the next stage, or a job waiting for a slot, may be ready
		}()
	}
}

func (s *Scheduler) track(runID, jobID int64, cancel context.CancelCauseFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[runID] == nil {
		s.running[runID] = map[int64]context.CancelCauseFunc{}
	}
	s.running[runID][jobID] = cancel
	if _, ok := s.canceled[runID]; ok {
		cancel(errCanceledByUser)
	}
}

func (s *Scheduler) untrack(runID, jobID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.running[runID], jobID)
	if len(s.running[runID]) == 0 {
		delete(s.running, runID)
	}
}

// finalCtx bounds the writes that record how a job ended; they must happen even when the job's
// own context is canceled (cancel, shutdown).
func finalCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 15*time.Second)
}

// runJob runs one claimed job to its end and records it.
func (s *Scheduler) runJob(ctx context.Context, c store.Claim) {
	log := s.cfg.Logger.With("run", c.Run.ID, "job", c.Job.ID)
	status, message := run.Failed, ""
	defer func() {
		fctx, cancel := finalCtx()
		defer cancel()
		if _, err := s.cfg.Store.JobFinish(fctx, c.Job.ID, status, message); err != nil {
			log.Error("record job end", "err", err)
		}
		s.cfg.Logs.Notify(c.Run.ID) // followers see the end without waiting for their poll
	}()

	secrets, err := s.secretVariables(c.Run)
	if err != nil {
		message = "cannot decrypt the run's secret variables: " + err.Error()
		s.line(c, message)
		return
	}
	var secretValues []string
	for _, v := range secrets {
		if v != "" {
			secretValues = append(secretValues, v)
		}
	}
	checkout, err := Checkout(c.Run.Git, secrets)
	if err != nil {
		message = err.Error()
		s.line(c, message)
		return
	}
	if checkout != nil && checkout.Password != "" {
		secretValues = append(secretValues, checkout.Password) // a secret variable already; kept explicit
	}
	job := executor.Job{
		RunID:     c.Run.ID,
		JobID:     c.Job.ID,
		Workspace: filepath.Join(s.cfg.Workspace, strconv.FormatInt(c.Run.ID, 10), strconv.FormatInt(c.Job.ID, 10)),
		Timeout:   c.Job.Timeout,
		Checkout:  checkout,
	}
	job.Env = Environment(c.Run, c.Job, secrets, job.Workspace)
	for _, st := range c.Job.Steps {
		job.Steps = append(job.Steps, executor.Step{ID: st.ID, Name: st.Name, Script: st.Script})
	}

	w := s.cfg.Logs.Writer(c.Run.ID, c.Job.ID, secretValues)
	fmt.Fprintf(w, "── %s / %s ──\n", c.Job.StageName, c.Job.Name)
	rep := &reporter{store: s.cfg.Store, metrics: s.cfg.Metrics, started: map[int64]time.Time{}}
	res := s.cfg.Executor.Run(ctx, job, w, rep)
	status, message = res.Status, res.Message
	if status == run.Canceled {
		message = "canceled by request"
		if errors.Is(context.Cause(ctx), errShutdown) {
			message = "canceled: flowd shut down while the job ran"
		}
		fmt.Fprintf(w, "%s\n", message)
	}
	if err := w.Close(); err != nil {
		log.Error("write job log", "err", err)
	}
	cctx, cancel := finalCtx()
	defer cancel()
	if err := s.cfg.Executor.Cleanup(cctx, job); err != nil {
		log.Warn("clean up workspace", "err", err)
	}
}

// line writes one line of flowd's own into a job's log.
func (s *Scheduler) line(c store.Claim, text string) {
	ctx, cancel := finalCtx()
	defer cancel()
	if err := s.cfg.Logs.Line(ctx, c.Run.ID, c.Job.ID, text); err != nil {
		s.cfg.Logger.Error("write log line", "run", c.Run.ID, "err", err)
	}
}

func (s *Scheduler) secretVariables(r run.Run) (map[string]string, error) {
	if len(r.SecretVariables) == 0 {
		return nil, nil
	}
	plain, err := s.cfg.Box.Open(r.SecretVariables)
	if err != nil {
		return nil, err
	}
	var m map[string]string
	if err := json.Unmarshal(plain, &m); err != nil {
		return nil, fmt.Errorf("scheduler: secret variables: %w", err)
	}
	return m, nil
}

// Clone user names for token credentials, by Git host (run.Git.Provider). A host reads the
// token from the password and ignores or requires a particular user name: GitHub takes
// "x-access-token" (installation and personal tokens alike), GitLab and Codeup "oauth2"
// (personal, project and OAuth tokens), Bitbucket Cloud "x-token-auth" (repository and
// workspace access tokens). Every other host, and runs with no provider (manual runs), get
// "flowd": Gitea, Gogs and Forgejo accept a token with any user name. A host that insists on
// the token owner's own user name cannot be served by source.credentials alone.
const (
	userGitHub    = "x-access-token"
	userGitLab    = "oauth2"
	userBitbucket = "x-token-auth"
	userDefault   = "flowd"
)

// cloneUser is the user name a checkout sends with the token of a run of provider.
func cloneUser(provider string) string {
	switch provider {
	case "github":
		return userGitHub
	case "gitlab", "codeup":
		return userGitLab
	case "bitbucket":
		return userBitbucket
	}
	return userDefault
}

// Checkout is the checkout of a job of a run with Git g (nil for a run without Git: no
// checkout). URL, SHA and Ref come from g. When g.CredentialsVar names a variable, the
// checkout authenticates with its value from secrets (the run's decrypted secret variables) as
// the password and cloneUser(g.Provider) as the user name; an empty value means no credentials
// (a public repository). A CredentialsVar missing from secrets is an error whose message says
// what to fix: the job fails before anything runs.
func Checkout(g *run.Git, secrets map[string]string) (*executor.Checkout, error) {
	if g == nil {
		return nil, nil
	}
	c := &executor.Checkout{URL: g.RepoURL, SHA: g.SHA, Ref: g.Ref}
	if g.CredentialsVar == "" {
		return c, nil
	}
	token, ok := secrets[g.CredentialsVar]
	if !ok {
		return nil, fmt.Errorf("source.credentials names %q, which this run has no secret value for: "+
			"declare it under variables with secret: true and give it the token", g.CredentialsVar)
	}
	if token != "" {
		c.Username, c.Password = cloneUser(g.Provider), token
	}
	return c, nil
}

// Environment is the complete environment of a job's steps, as DESIGN.md's "Run environment":
// PATH and HOME of the server, the job's env, the run's variables (secret ones included), and
// the FLOWD_* built-ins, which nothing may override. Nothing else of the server's environment
// (such as FLOWD_SECRET_KEY) reaches a step.
//
// A run with Git also gets FLOWD_REPO_URL (without credentials), FLOWD_COMMIT_SHA,
// FLOWD_BRANCH (branch runs) or FLOWD_TAG (tag runs), FLOWD_EVENT, FLOWD_COMMIT_MESSAGE and
// FLOWD_COMMIT_AUTHOR. The clone token is not added: the variable source.credentials names is
// a secret variable the user declared, so it is in the environment as every secret variable
// is, under its own name, and nowhere else.
func Environment(r run.Run, j run.Job, secrets map[string]string, workspace string) []string {
	env := map[string]string{
		"PATH": os.Getenv("PATH"),
		"HOME": os.Getenv("HOME"),
	}
	if env["PATH"] == "" {
		env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
	}
	if env["HOME"] == "" {
		env["HOME"] = workspace
	}
	for k, v := range j.Env {
		env[k] = v
	}
	for k, v := range r.Variables {
		env[k] = v
	}
	for k, v := range secrets {
		env[k] = v
	}
	env["FLOWD_RUN_ID"] = strconv.FormatInt(r.ID, 10)
	env["FLOWD_RUN_NUMBER"] = strconv.FormatInt(r.Number, 10)
	env["FLOWD_PIPELINE"] = r.Pipeline
	env["FLOWD_TRIGGER"] = string(r.Trigger)
	env["FLOWD_TRIGGERED_BY"] = r.TriggeredBy
	env["FLOWD_WORKSPACE"] = workspace
	env["FLOWD_JOB"] = j.Name
	env["FLOWD_STAGE"] = j.StageName
	if g := r.Git; g != nil {
		env["FLOWD_REPO_URL"] = withoutCredentials(g.RepoURL)
		env["FLOWD_COMMIT_SHA"] = g.SHA
		if g.Tag != "" {
			env["FLOWD_TAG"] = g.Tag
		} else if g.Branch != "" {
			env["FLOWD_BRANCH"] = g.Branch
		}
		env["FLOWD_EVENT"] = g.Event
		env["FLOWD_COMMIT_MESSAGE"] = g.Message
		env["FLOWD_COMMIT_AUTHOR"] = g.Author
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// withoutCredentials is a repository URL without a password, and for http(s) without any user
// name either (as the executor's checkout shows it). run.Git.RepoURL holds none already; this
// keeps a mistake upstream from putting a token in every step's environment.
func withoutCredentials(raw string) string {
	if !strings.Contains(raw, "://") {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if s := strings.ToLower(u.Scheme); s == "http" || s == "https" {
		u.User = nil
	} else {
		u.User = url.User(u.User.Username())
	}
	return u.String()
}

// reporter writes step statuses to the store as the executor reports them.
type reporter struct {
	store   Store
	metrics StepObserver
	mu      sync.Mutex
	started map[int64]time.Time
}

func (r *reporter) StepStarted(ctx context.Context, stepID int64) error {
	r.mu.Lock()
	r.started[stepID] = time.Now()
	r.mu.Unlock()
	return r.store.StepStart(ctx, stepID)
}

func (r *reporter) StepFinished(ctx context.Context, stepID int64, status run.Status, exitCode *int) error {
	r.mu.Lock()
	start, ok := r.started[stepID]
	r.mu.Unlock()
	if ok && r.metrics != nil {
		r.metrics.StepDuration(status, time.Since(start).Seconds())
	}
	return r.store.StepFinish(ctx, stepID, status, exitCode)
}
