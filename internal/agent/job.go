package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/flowd/flowd/internal/agentproto"
	"github.com/flowd/flowd/internal/executor"
	"github.com/flowd/flowd/internal/logs"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/scheduler"
	"github.com/flowd/flowd/internal/store"
)

// Why a job's context was canceled.
var (
	errCancelRequested = errors.New("canceled by request")
	errLost            = errors.New("this attempt was lost: its lease ran out and the job was rescued")
	errAgentStopped    = errors.New("canceled: flowd agent stopped while the job ran")
	errFinishTimeout   = errors.New("the server did not take the job's end within 30 minutes")
)

// defaultCancelGrace is the grace of a claim that gives none.
const defaultCancelGrace = 10 * time.Second

// killedFinishWait bounds the finish of a job canceled because the agent stops.
const killedFinishWait = 30 * time.Second

// job is one claimed attempt run by this agent.
type job struct {
	a    *Agent
	cj   agentproto.Job
	at   attemptConn
	log  *slog.Logger
	exec executor.Job

	run  context.Context // the executor's: canceled on cancel, loss or the agent's stop
	stop context.CancelCauseFunc
	net  context.Context // every call of the attempt: canceled once it is no longer live
	gone context.CancelCauseFunc

	cancelOnce sync.Once
}

// runJob runs one claimed job to its end: the executor runs it, its steps are posted, its log
// is buffered and uploaded, its lease renewed every heartbeat, and its end finished with the
// log's length and checksum. It returns once the job's end is recorded (or given up) and its
// workspace is removed.
func (a *Agent) runJob(cj agentproto.Job) {
	log := a.log.With("run", cj.RunID, "job", cj.JobID, "attempt", cj.Attempt.Number)
	j := &job{a: a, cj: cj, log: log, at: attemptConn{c: a.conn, id: cj.Attempt.ID, token: cj.Attempt.Token}}
	j.run, j.stop = context.WithCancelCause(a.jobs)
	j.net, j.gone = context.WithCancelCause(a.calls)
	defer j.gone(nil)
	defer j.stop(nil)
	j.exec = a.executorJob(cj)

	buf, err := newLogBuffer(filepath.Join(a.logsDir, strconv.FormatInt(cj.Attempt.ID, 10)+".log"), a.pool)
	if err != nil {
		log.Error("cannot buffer the job's log; the job is left to its lease", "err", err)
		return
	}
	defer func() {
		if err := buf.remove(); err != nil {
			log.Warn("remove the job's log buffer", "err", err)
		}
	}()

	beats := make(chan struct{})
	go func() { defer close(beats); j.heartbeat() }()
	// Once nothing more is sent for the job, its log's writes no longer wait for room.
	stopAbandon := context.AfterFunc(j.net, buf.abandon)
	defer stopAbandon()
	uploaded := make(chan error, 1)
	go func() {
		err := upload(j.net, j.at, buf)
		if err != nil && j.net.Err() == nil {
			j.onCallErr(err) // the attempt gone, the token refused
		}
		if err != nil && j.net.Err() == nil {
			// The server refused the log for good: the job cannot be recorded, so it stops.
			log.Error("the server refused the job's log; stopping the job", "err", err)
			j.stop(err)
			j.gone(err)
		}
		uploaded <- err
	}()

	res, steps := j.execute(buf)
	buf.close()

	// The rest of the log and the end are sent for finishRetryFor at most (while the server is
	// away), and for killedFinishWait once the agent is stopping.
	t := time.AfterFunc(finishRetryFor, func() { j.gone(errFinishTimeout) })
	defer t.Stop()
	stopKilled := context.AfterFunc(a.jobs, func() {
		time.AfterFunc(killedFinishWait, func() { j.gone(errAgentStopped) }) // a no-op once the job is done
	})
	defer stopKilled()
	err = <-uploaded
	if err == nil {
		err = finish(j.net, j.at, buf, agentproto.FinishRequest{Status: res.Status, Message: res.Message, Steps: steps}, log)
	}
	switch {
	case err == nil:
		log.Info("job finished", "status", res.Status)
	case j.net.Err() != nil:
		log.Warn("the job's end was not recorded", "why", context.Cause(j.net))
	default:
		j.onCallErr(err)
		log.Error("the job's end was not recorded", "err", err)
	}
	j.gone(nil)
	<-beats
	cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.exec.Cleanup(cctx, j.exec); err != nil {
		log.Warn("clean up workspace", "err", err)
	}
}

// execute runs the job with the executor, its output through a logs.Writer (masking, the
// head and tail limit) into buf, and returns its result and the step results not posted yet.
func (j *job) execute(buf *logBuffer) (executor.Result, []agentproto.StepResult) {
	a, cj := j.a, j.cj
	appender := logs.NewAppender(buf, j.log.With("component", "logs"))
	appender.JobLimit = a.cfg.MaxJobLog
	appender.RetryFor = 365 * 24 * time.Hour // the buffer waits for room; it never gives up
	actx, stopAppender := context.WithCancel(context.Background())
	appended := make(chan struct{})
	go func() { defer close(appended); _ = appender.Run(actx) }()
	defer func() { stopAppender(); <-appended }()

	w := appender.Writer(cj.RunID, cj.JobID, cj.Secrets)
	w.SetAttempt(cj.Attempt.ID, nil)
	if cj.Attempt.Number > 1 {
		fmt.Fprintf(w, "── %s / %s (attempt %d, %s) ──\n", cj.Stage, cj.Job, cj.Attempt.Number, a.cfg.Name)
	} else {
		fmt.Fprintf(w, "── %s / %s ──\n", cj.Stage, cj.Job)
	}
	rep, pending := scheduler.NewStepReporter(stepReport{j}, j.log, len(cj.Steps), j.onCallErr)
	res := a.exec.Run(j.run, j.exec, w, rep)
	if res.Status == run.Canceled {
		res.Message = errCancelRequested.Error()
		switch cause := context.Cause(j.run); {
		case errors.Is(cause, errLost), errors.Is(cause, errAgentStopped):
			res.Message = cause.Error()
		}
		fmt.Fprintf(w, "%s\n", res.Message)
	}
	if err := w.Close(); err != nil {
		j.log.Error("write job log", "err", err)
		if res.Status != run.Canceled {
			res.Status, res.Message = run.Failed, "log write failed: "+err.Error()
		}
	}
	var steps []agentproto.StepResult
	for _, s := range pending() {
		steps = append(steps, agentproto.StepResult{StepID: s.StepID, Status: s.Status, ExitCode: s.ExitCode})
	}
	return res, steps
}

// executorJob is the executor's job of a claim: its environment is the claim's with PATH and
// HOME of the agent and FLOWD_WORKSPACE (a job in a container has its own from the server).
func (a *Agent) executorJob(cj agentproto.Job) executor.Job {
	ws := filepath.Join(a.workspaces, filepath.Base(filepath.Clean("/"+cj.Workspace)))
	env := append([]string(nil), cj.Env...)
	if cj.Container == nil {
		path, home := os.Getenv("PATH"), os.Getenv("HOME")
		if path == "" {
			path = "/usr/local/bin:/usr/bin:/bin"
		}
		if home == "" {
			home = ws
		}
		env = append(env, "PATH="+path, "HOME="+home, "FLOWD_WORKSPACE="+ws)
	}
	job := executor.Job{
		RunID: cj.RunID, JobID: cj.JobID, Attempt: cj.Attempt.ID,
		Container: cj.Container, Workspace: ws, Env: env,
		Timeout:   time.Duration(cj.TimeoutSeconds) * time.Second,
		KillGrace: defaultCancelGrace,
	}
	if cj.CancelGraceSeconds > 0 {
		job.KillGrace = time.Duration(cj.CancelGraceSeconds) * time.Second
	}
	if c := cj.Checkout; c != nil {
		job.Checkout = &executor.Checkout{URL: c.URL, SHA: c.SHA, Ref: c.Ref, Username: c.Username, Password: c.Password}
	}
	for _, s := range cj.Steps {
		job.Steps = append(job.Steps, executor.Step{ID: s.ID, Name: s.Name, Script: s.Script})
	}
	return job
}

// heartbeat renews the attempt's lease every heartbeat period until the job's calls end,
// and cancels the job when the server says canceling (or that the attempt is gone).
func (j *job) heartbeat() {
	period := j.a.heartbeatEvery
	b := j.a.conn.backoff()
	b.Max = min(b.Max, max(period, j.a.leaseTTL/4))
	body, _ := jsonBody(agentproto.HeartbeatRequest{}) // {}: it cannot fail
	t := time.NewTimer(period)
	defer t.Stop()
	for {
		select {
		case <-j.net.Done():
			return
		case <-t.C:
		}
		var ans agentproto.StateResponse
		err := j.a.conn.once(j.net, call{method: http.MethodPost, path: j.at.path(agentproto.HeartbeatPath), attempt: j.at.token,
			body: body, json: true}, &ans)
		next := period
		switch {
		case err == nil:
			b.reset()
			j.onState(ans)
		case retryable(err):
			next = b.pause()
			j.log.Debug("heartbeat failed; retrying", "in", next, "err", err)
		default:
			j.onCallErr(err)
		}
		t.Reset(next)
	}
}

// onState acts on the state the server answered: canceling cancels the job.
func (j *job) onState(s agentproto.StateResponse) {
	if s.State == "canceling" {
		j.cancelOnce.Do(func() { j.log.Info("the job was canceled on the server; stopping it") })
		j.stop(errCancelRequested)
	}
}

// onCallErr acts on a per-attempt call that failed for good: an attempt no longer live stops
// the job at once and sends nothing more; a refused token stops the agent.
func (j *job) onCallErr(err error) {
	var gone *goneError
	switch {
	case errors.As(err, &gone) && gone.attemptGone():
		j.log.Warn("the attempt is no longer live; killing the job and sending nothing more", "state", gone.State)
		j.stop(errLost)
		j.gone(errLost)
	case errors.Is(err, errUnauthorized):
		j.a.fatal(err)
	}
}

// stepReport posts the job's step changes (scheduler.Report over HTTP).
type stepReport struct{ j *job }

// StepAdvance posts the finished steps and the start of the next, retried until the server
// answers or the attempt is gone; ctx (a bounded one of the reporter's) is not used, so that a
// server away for minutes loses no step.
func (r stepReport) StepAdvance(_ context.Context, finished []store.StepResult, start int64) error {
	req := agentproto.StepsRequest{Start: start, Finished: []agentproto.StepResult{}}
	for _, s := range finished {
		req.Finished = append(req.Finished, agentproto.StepResult{StepID: s.StepID, Status: s.Status, ExitCode: s.ExitCode})
	}
	var ans agentproto.StateResponse
	if err := r.j.a.conn.postJSON(r.j.net, r.j.at.path(agentproto.StepsPath), r.j.at.token, req, &ans, time.Time{}); err != nil {
		return err
	}
	r.j.onState(ans)
	return nil
}

// Complete is not used: the agent finishes a job with finish.
func (r stepReport) Complete(context.Context, store.JobEnd) error {
	return errors.New("agent: Complete is not used")
}
