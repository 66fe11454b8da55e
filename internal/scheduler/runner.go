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
	"github.com/flowd/flowd/internal/store"
)

// The runner: one claimed job attempt from its spec to its recorded end. The dispatcher
// (scheduler.go) claims attempts, holds their leases and hands each to runJob.

// runJob runs one claimed job to its end and records it. release gives the job's executor
// slot back; runJob calls it as soon as the executor returns. recorded says the job's end is
// written (or given up): runJob calls it before it removes the workspace, so the next stage
// of the run is claimed without waiting for that.
//
// The job's end is one store write (JobComplete): the results of steps not recorded yet, the
// log output not committed yet and the job's status, so that a follower never sees the job
// final without its last lines. It is written after the claim loop has claimed the job that
// takes the slot (bounded by claimWait), so that claim, which a step waits for, is not queued
// behind this write; then the workspace is removed.
//
// Every write names the claim's attempt; the first the store refuses as fenced (the attempt
// was lost: its lease ran out and the rescuer took the job) stops the job through stop, and
// its end is not written: the rescuer settled it.
func (s *Scheduler) runJob(ctx context.Context, c store.Claim, release, recorded func(), stop context.CancelCauseFunc) {
	log := s.cfg.Logger.With("run", c.Run.ID, "job", c.Job.ID, "attempt", c.Attempt.Number)
	end := store.JobEnd{Attempt: c.Attempt.ID, JobID: c.Job.ID, RunID: c.Run.ID, Status: run.Failed}
	onWriteErr := func(err error) {
		if errors.Is(err, store.ErrFenced) {
			stop(errLost)
		}
	}
	report := &storeReport{store: s.cfg.Store, logs: s.cfg.Logs, log: log, attempt: c.Attempt.ID}
	rep := newReporter(report, s.cfg.Metrics, log, c, onWriteErr)
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
		cctx, cancel := finalCtx() // the job's own context may be canceled: its end is written anyway
		if err := report.Complete(cctx, end); err != nil {
			log.Warn("the job's end was not recorded", "err", err)
		}
		cancel()
		s.cfg.Logs.Notify(c.Run.ID) // followers see the end without waiting for their poll
		recorded()
		if job.Workspace != "" {
			cctx, cancel := finalCtx()
			defer cancel()
			if err := s.cfg.Executor.Cleanup(cctx, job); err != nil {
				log.Warn("clean up workspace", "err", err)
			}
		}
	}()

	if c.Job.Container == nil && s.cfg.DefaultImage != "" {
		c.Job.Container = &run.Container{Image: s.cfg.DefaultImage}
	}
	if c.Job.Container == nil && s.cfg.RequireImage {
		end.Message = hostRefusedMessage(c.Job.Name)
		s.line(c, end.Message)
		return
	}
	// A job in a container runs outside the server's trust, whoever runs the server.
	if s.cfg.RequireTrusted && !c.Trusted && c.Job.Container == nil {
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
	w.SetAttempt(c.Attempt.ID, onWriteErr)
	if c.Attempt.Number > 1 {
		fmt.Fprintf(w, "── %s / %s (attempt %d, %s) ──\n", c.Job.StageName, c.Job.Name, c.Attempt.Number, s.cfg.Holder.Node)
	} else {
		fmt.Fprintf(w, "── %s / %s ──\n", c.Job.StageName, c.Job.Name)
	}
	res := s.cfg.Executor.Run(ctx, job, w, rep)
	release()
	end.Status, end.Message = res.Status, res.Message
	if end.Status == run.Canceled {
		end.Message = "canceled by request"
		switch cause := context.Cause(ctx); {
		case errors.Is(cause, errShutdown):
			end.Message = "canceled: flowd shut down while the job ran"
		case errors.Is(cause, errLost):
			end.Message = errLost.Error()
		}
		fmt.Fprintf(w, "%s\n", end.Message)
	}
}

// hostRefusedMessage ends a job without image on a server that runs jobs only in containers.
func hostRefusedMessage(job string) string {
	return fmt.Sprintf("refused: this server runs jobs only in containers (--allow-host-jobs=false), and job %q has no image: "+
		"give it image: (or the pipeline one) and run the pipeline again", job)
}

// logFailure is the message of a job whose log could not be stored: its output stopped being
// taken (Writer.Write failed), so whatever the step did after that is unknown.
func logFailure(err error) string {
	if errors.Is(err, store.ErrFull) {
		return "log write failed: disk full (the database or its disk is full; free space, then run it again)"
	}
	return "log write failed: " + err.Error()
}

// Report is how a runner reports the job attempt it runs: the one small interface between
// running a job (runJob, the executor) and recording it. Every call names the attempt and is
// fenced to it: a call the store refuses returns an error wrapping store.ErrFenced, and the
// runner then stops the job at once. Log output goes through a logs.Writer whose chunks carry
// the attempt (Writer.SetAttempt), and the dispatcher renews every lease it holds in one call
// (watchLeases). storeReport writes to the store of this process; a remote agent's Report
// will make the same calls over HTTP.
type Report interface {
	// StepAdvance records, in order, the steps that finished, then the start of step start
	// (0: none).
	StepAdvance(ctx context.Context, finished []store.StepResult, start int64) error
	// Complete records the job's end: the steps not reported yet, its last log chunks and its
	// status, in one write. It is called once, after the executor returned.
	Complete(ctx context.Context, end store.JobEnd) error
}

// storeReport is the Report of a job run in this process: straight to the store.
type storeReport struct {
	store   Store
	logs    *logs.Appender
	log     *slog.Logger
	attempt int64
}

func (r *storeReport) StepAdvance(ctx context.Context, finished []store.StepResult, start int64) error {
	return r.store.StepAdvance(ctx, r.attempt, finished, start)
}

// Complete writes a job's end with JobComplete (runJob gives it a fresh bounded context: a
// canceled job's end must still be written). Should that fail (a step report the store refuses, say), the
// last log chunks are committed on their own and the job is finished with JobFinish, which
// settles its steps, so the run still ends. A fenced end is dropped: the rescuer settled the
// job.
func (r *storeReport) Complete(ctx context.Context, end store.JobEnd) error {
	log := r.log
	_, err := r.store.JobComplete(ctx, end)
	if err == nil {
		return nil
	}
	if errors.Is(err, store.ErrFenced) {
		// The attempt was lost and the rescuer settled the job: this runner's end is stale.
		log.Warn("the job's end was refused: its attempt was lost and the job rescued", "err", err)
		return err
	}
	log.Error("record job end", "err", err)
	if err := r.logs.Append(ctx, end.Logs); err != nil {
		log.Error("write job log", "err", err)
	}
	if _, err := r.store.JobFinish(ctx, end.Attempt, end.JobID, end.Status, end.Message); err != nil {
		log.Error("record job end", "err", err)
		if errors.Is(err, store.ErrUnavailable) { // down, or full: it may come back
			finishLater(r.store, log, end)
		}
		return err
	}
	return nil
}

// finishRetryFor is how long finishLater keeps trying to record a job's end.
const finishRetryFor = 2 * time.Minute

// finishLater retries JobFinish while the store is unavailable or full, for finishRetryFor,
// so that a job whose end could not be written (its disk full, say) is finished once there
// is room again rather than at the next start. Until then it holds its goroutine (and a stop).
func finishLater(st Store, log *slog.Logger, end store.JobEnd) {
	deadline := time.Now().Add(finishRetryFor)
	for pause := time.Second; time.Now().Before(deadline); pause = min(2*pause, 5*time.Second) {
		time.Sleep(pause)
		ctx, cancel := finalCtx()
		_, err := st.JobFinish(ctx, end.Attempt, end.JobID, end.Status, end.Message)
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
	log.Error("the job's end could not be recorded; its lease runs out and the rescuer fails it (runner_lost)")
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
	report     Report
	metrics    StepObserver
	log        *slog.Logger
	onWriteErr func(error) // told of each failed write (ErrFenced stops the job)
	queued     int         // capacity of queue: one batch per step at most

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

func newReporter(report Report, metrics StepObserver, log *slog.Logger, c store.Claim, onWriteErr func(error)) *reporter {
	j := c.Job
	r := &reporter{report: report, metrics: metrics, log: log, onWriteErr: onWriteErr,
		queued: len(j.Steps) + 1, started: map[int64]time.Time{}}
	if len(j.Steps) > 0 && j.Steps[0].Status == run.Running {
		r.begun = j.Steps[0].ID
	}
	return r
}

// NewStepReporter returns the executor.Reporter of a job run elsewhere than this process's
// scheduler (flowd agent), which reports its steps through report as runJob's do: a finished
// step's result waits for the next step's start and goes with it in one StepAdvance, written
// in order by a goroutine of the reporter. No step is started by the claim. finish waits until
// every StepAdvance is written and returns the results not written yet, for the job's end; call
// it once, after the executor returned. onWriteErr is told of each failed StepAdvance.
func NewStepReporter(report Report, log *slog.Logger, steps int, onWriteErr func(error)) (rep executor.Reporter, finish func() []store.StepResult) {
	r := &reporter{report: report, log: log, onWriteErr: onWriteErr, queued: steps + 1, started: map[int64]time.Time{}}
	return r, r.finish
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
		if err := r.report.StepAdvance(ctx, b.finished, b.start); err != nil {
			r.log.Error("record step status", "step", b.start, "err", err)
			r.onWriteErr(err)
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
