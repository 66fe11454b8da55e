// Package scheduler turns queued jobs into running processes: it claims ready jobs from the
// store (at most Slots at once across the server), hands each to the executor with the run's
// environment and a log writer, records step and job statuses, and cancels jobs on request or
// at shutdown. It wakes on new work (Wake) and polls as a fallback for work written elsewhere.
//
// What a job runs with (steps, environment, checkout, secrets to mask) is built by package
// jobspec from the claim; the scheduler adds the policy (RequireTrusted). Concurrency groups are
// the store's: JobClaim holds back runs waiting for a slot of their group, and Cancel stops
// runs that RunSupersede superseded as it stops canceled ones.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/flowd/flowd/internal/executor"
	"github.com/flowd/flowd/internal/jobspec"
	"github.com/flowd/flowd/internal/logs"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/secret"
	"github.com/flowd/flowd/internal/store"
)

// Store is what the scheduler needs of the store.
type Store interface {
	JobsClaim(ctx context.Context, p store.JobsClaim) ([]store.Claim, error)
	StepAdvance(ctx context.Context, finished []store.StepResult, startID int64) error
	JobComplete(ctx context.Context, e store.JobEnd) (run.Status, error)
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
	// RequireTrusted is set when the executor runs steps as the server's own OS user: then a
	// job of a pipeline that is not trusted (now, when it is claimed) fails before it starts,
	// whatever let its run be queued.
	RequireTrusted bool
}

// untrustedMessage ends a job of pipeline that RequireTrusted refused.
func untrustedMessage(pipeline string) string {
	return "refused: this server runs steps as its own OS user, and this pipeline is not trusted; " +
		"a global admin can run `flowd pipeline trust " + pipeline + "`, or run flowd as root so each job runs as a user of its own"
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
	// claimEnd is closed when the claim loop's current JobsClaim call returns (nil: nobody
	// waits); see awaitClaim.
	claimEnd chan struct{}
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
//
// Slots bounds the jobs whose steps run. A job gives its slot back as soon as its executor
// returns, and the loop claims the next job at once, before the job's end is written (see
// runJob); at most Slots more jobs may be recording their end meanwhile. When several slots are
// free, one JobsClaim takes a job for each.
func (s *Scheduler) Run(ctx context.Context) error {
	jobsCtx, stopJobs := context.WithCancelCause(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() {
		stopJobs(errShutdown)
		wg.Wait()
	}()
	defer s.claimEnded()
	slots := make(chan struct{}, s.cfg.Slots)
	ending := make(chan struct{}, s.cfg.Slots) // jobs past their executor, not yet recorded
	ticker := time.NewTicker(s.cfg.Poll)
	defer ticker.Stop()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		free := 1
	more:
		for free < s.cfg.Slots {
			select {
			case slots <- struct{}{}:
				free++
			default:
				break more
			}
		}
		claims, err := s.cfg.Store.JobsClaim(ctx, store.JobsClaim{Max: free, StartFirstStep: true})
		s.claimEnded()
		for range free - len(claims) {
			<-slots
		}
		if err != nil {
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
		for _, claim := range claims {
			jobCtx, cancel := context.WithCancelCause(jobsCtx)
			s.track(claim.Run.ID, claim.Job.ID, cancel)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer s.untrack(claim.Run.ID, claim.Job.ID)
				defer cancel(nil)
				var once sync.Once
				release := func() {
					once.Do(func() {
						ending <- struct{}{}
						<-slots
						s.Wake()
					})
				}
				s.runJob(jobCtx, claim, release)
				release()
				<-ending
				s.Wake() // the next stage, or a job waiting for a slot, may be ready
			}()
		}
	}
}

// awaitClaim returns a channel that is closed when the claim loop's JobsClaim call in progress,
// or its next one, returns.
func (s *Scheduler) awaitClaim() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.claimEnd == nil {
		s.claimEnd = make(chan struct{})
	}
	return s.claimEnd
}

// claimEnded wakes the jobs waiting in awaitClaim.
func (s *Scheduler) claimEnded() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.claimEnd != nil {
		close(s.claimEnd)
		s.claimEnd = nil
	}
}

// claimWait bounds how long a finished job waits for the claim of its successor before it
// records its own end.
const claimWait = 5 * time.Millisecond

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

// runJob runs one claimed job to its end and records it. release gives the job's executor
// slot back; runJob calls it as soon as the executor returns.
//
// The job's end is one store write (JobComplete): the results of steps not recorded yet, the
// log output not committed yet and the job's status, so that a follower never sees the job
// final without its last lines. It is written after the claim loop has claimed the job that
// takes the slot (bounded by claimWait), so that claim, which a step waits for, is not queued
// behind this write; then the workspace is removed.
func (s *Scheduler) runJob(ctx context.Context, c store.Claim, release func()) {
	log := s.cfg.Logger.With("run", c.Run.ID, "job", c.Job.ID)
	end := store.JobEnd{JobID: c.Job.ID, Status: run.Failed}
	rep := newReporter(s.cfg.Store, s.cfg.Metrics, log, c.Job)
	var (
		w   *logs.Writer
		job executor.Job
	)
	defer func() {
		claimed := s.awaitClaim()
		release()
		end.Steps = rep.finish() // every earlier step report is committed
		if w != nil {
			var err error
			if end.Logs, err = w.Detach(); err != nil {
				log.Error("write job log", "err", err)
				if end.Status != run.Canceled {
					end.Status, end.Message = run.Failed, logFailure(err)
				}
			}
		}
		t := time.NewTimer(claimWait)
		select {
		case <-claimed:
		case <-t.C:
		}
		t.Stop()
		s.complete(log, end)
		s.cfg.Logs.Notify(c.Run.ID) // followers see the end without waiting for their poll
		if job.Workspace != "" {
			cctx, cancel := finalCtx()
			defer cancel()
			if err := s.cfg.Executor.Cleanup(cctx, job); err != nil {
				log.Warn("clean up workspace", "err", err)
			}
		}
	}()

	if s.cfg.RequireTrusted && !c.Trusted {
		end.Message = untrustedMessage(c.Run.Pipeline)
		s.line(c, end.Message)
		return
	}
	spec, err := jobspec.Build(c, s.cfg.Box, s.cfg.Workspace)
	if err != nil {
		end.Message = err.Error()
		s.line(c, end.Message)
		return
	}
	job = spec.ExecutorJob()

	w = s.cfg.Logs.Writer(c.Run.ID, c.Job.ID, spec.Secrets)
	fmt.Fprintf(w, "── %s / %s ──\n", spec.Stage, spec.Job)
	res := s.cfg.Executor.Run(ctx, job, w, rep)
	release()
	end.Status, end.Message = res.Status, res.Message
	if end.Status == run.Canceled {
		end.Message = "canceled by request"
		if errors.Is(context.Cause(ctx), errShutdown) {
			end.Message = "canceled: flowd shut down while the job ran"
		}
		fmt.Fprintf(w, "%s\n", end.Message)
	}
}

// logFailure is the message of a job whose log could not be stored: its output stopped being
// taken (Writer.Write failed), so whatever the step did after that is unknown.
func logFailure(err error) string {
	if errors.Is(err, store.ErrFull) {
		return "log write failed: disk full (the database or its disk is full; free space, then run it again)"
	}
	return "log write failed: " + err.Error()
}

// complete writes a job's end with JobComplete. Should that fail (a step report the store
// refuses, say), the last log chunks are committed on their own and the job is finished with
// JobFinish, which settles its steps, so the run still ends.
func (s *Scheduler) complete(log *slog.Logger, end store.JobEnd) {
	ctx, cancel := finalCtx()
	defer cancel()
	_, err := s.cfg.Store.JobComplete(ctx, end)
	if err == nil {
		return
	}
	log.Error("record job end", "err", err)
	if err := s.cfg.Logs.Append(ctx, end.Logs); err != nil {
		log.Error("write job log", "err", err)
	}
	if _, err := s.cfg.Store.JobFinish(ctx, end.JobID, end.Status, end.Message); err != nil {
		log.Error("record job end", "err", err)
		if errors.Is(err, store.ErrUnavailable) { // down, or full: it may come back
			s.finishLater(log, end)
		}
	}
}

// finishRetryFor is how long finishLater keeps trying to record a job's end.
const finishRetryFor = 2 * time.Minute

// finishLater retries JobFinish while the store is unavailable or full, for finishRetryFor,
// so that a job whose end could not be written (its disk full, say) is finished once there
// is room again rather than at the next start. Until then it holds its goroutine (and a stop).
func (s *Scheduler) finishLater(log *slog.Logger, end store.JobEnd) {
	deadline := time.Now().Add(finishRetryFor)
	for pause := time.Second; time.Now().Before(deadline); pause = min(2*pause, 5*time.Second) {
		time.Sleep(pause)
		ctx, cancel := finalCtx()
		_, err := s.cfg.Store.JobFinish(ctx, end.JobID, end.Status, end.Message)
		cancel()
		if err == nil {
			log.Info("recorded the job's end after retrying")
			return
		}
		if !errors.Is(err, store.ErrUnavailable) {
			log.Error("record job end", "err", err)
			return
		}
	}
	log.Error("the job's end could not be recorded; it is marked failed when flowd starts again")
}

// line writes one line of flowd's own into a job's log.
func (s *Scheduler) line(c store.Claim, text string) {
	ctx, cancel := finalCtx()
	defer cancel()
	if err := s.cfg.Logs.Line(ctx, c.Run.ID, c.Job.ID, text); err != nil {
		s.cfg.Logger.Error("write log line", "run", c.Run.ID, "err", err)
	}
}

// reporter writes step statuses to the store as the executor reports them, without making the
// executor wait for a commit. A finished step's result waits for the next step's start and is
// written with it in one StepAdvance, by a goroutine of the reporter, in order; the results
// left at the job's end go into its JobComplete (finish). The first step, which JobsClaim
// started already when the job has no checkout, costs no write at all.
type reporter struct {
	store   Store
	metrics StepObserver
	log     *slog.Logger
	queued  int // capacity of queue: one batch per step at most

	mu      sync.Mutex
	begun   int64 // the step JobsClaim started (0: none)
	started map[int64]time.Time
	pending []store.StepResult // finished, not handed to the goroutine yet
	queue   chan stepBatch     // to the goroutine; nil until the first batch
	done    chan struct{}      // closed when the goroutine has written every batch
}

// stepBatch is one StepAdvance: the steps that finished, then the one that starts.
type stepBatch struct {
	finished []store.StepResult
	start    int64
}

func newReporter(st Store, metrics StepObserver, log *slog.Logger, j run.Job) *reporter {
	r := &reporter{store: st, metrics: metrics, log: log, queued: len(j.Steps) + 1, started: map[int64]time.Time{}}
	if len(j.Steps) > 0 && j.Steps[0].Status == run.Running {
		r.begun = j.Steps[0].ID
	}
	return r
}

func (r *reporter) StepStarted(ctx context.Context, stepID int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started[stepID] = time.Now()
	if stepID == r.begun && len(r.pending) == 0 {
		return nil // JobsClaim started it
	}
	if r.queue == nil {
		r.queue = make(chan stepBatch, r.queued)
		r.done = make(chan struct{})
		go r.write(r.queue, r.done)
	}
	select {
	case r.queue <- stepBatch{finished: r.pending, start: stepID}:
	default: // more starts than steps: not from an executor that keeps the contract
		return fmt.Errorf("scheduler: step %d reported started twice", stepID)
	}
	r.pending = nil
	return nil
}

func (r *reporter) StepFinished(ctx context.Context, stepID int64, status run.Status, exitCode *int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	start, ok := r.started[stepID]
	if ok && r.metrics != nil {
		r.metrics.StepDuration(status, time.Since(start).Seconds())
	}
	if stepID == r.begun && !ok && status == run.Skipped {
		// Started by the claim but never run (the job stopped before its first step): left
		// running, so the job's end gives it the job's status.
		return nil
	}
	r.pending = append(r.pending, store.StepResult{StepID: stepID, Status: status, ExitCode: exitCode})
	return nil
}

// write is the reporter's goroutine: one StepAdvance per batch, in order.
func (r *reporter) write(queue <-chan stepBatch, done chan<- struct{}) {
	defer close(done)
	for b := range queue {
		ctx, cancel := finalCtx()
		if err := r.store.StepAdvance(ctx, b.finished, b.start); err != nil {
			r.log.Error("record step status", "step", b.start, "err", err)
		}
		cancel()
	}
}

// finish waits until every batch is written and returns the results not written yet, for the
// job's JobComplete. The executor must have returned.
func (r *reporter) finish() []store.StepResult {
	r.mu.Lock()
	queue, done, pending := r.queue, r.done, r.pending
	r.queue, r.pending = nil, nil
	r.mu.Unlock()
	if queue != nil {
		close(queue)
		<-done
	}
	return pending
}
