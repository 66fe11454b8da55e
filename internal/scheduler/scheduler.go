// Package scheduler turns queued jobs into running processes. It has two halves. The
// dispatcher (this file) claims ready jobs from the store as attempts with leases (at most
// Slots at once across the server), renews the leases of the attempts it holds, watches them
// for cancel requests made on any server, and cancels jobs on request or at shutdown; it wakes
// on new work (Wake) and polls as a fallback for work written elsewhere. The runner
// (runner.go) runs one attempt: it builds the job's spec, hands it to the executor with a log
// writer, and records step and job statuses through a Report, fenced to the attempt. The
// Rescuer (rescuer.go) settles the attempts whose runners were lost.
//
// What a job runs with (steps, environment, checkout, secrets to mask) is built by package
// jobspec from the claim; the scheduler adds the policy (RequireTrusted). Concurrency groups are
// the store's: JobClaim holds back runs waiting for a slot of their group, and Cancel stops
// runs that RunSupersede superseded as it stops canceled ones.
package scheduler

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
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
	JobsClaim(ctx context.Context, p store.JobsClaim) ([]store.Claim, error)
	StepAdvance(ctx context.Context, attempt int64, finished []store.StepResult, startID int64) error
	JobComplete(ctx context.Context, e store.JobEnd) (run.Status, error)
	JobFinish(ctx context.Context, attempt, jobID int64, status run.Status, message string) (run.Run, error)
	AttemptsRenew(ctx context.Context, ids []int64, ttl time.Duration) ([]store.LiveAttempt, error)
	AttemptStates(ctx context.Context, ids []int64) ([]store.LiveAttempt, error)
}

// StepObserver records step durations and lease renewals (the metrics package implements it).
type StepObserver interface {
	StepDuration(status run.Status, seconds float64)
	LeasesRenewed(n int)
	LeasesExpired(n int)
}

// Config is what a Scheduler is built from.
type Config struct {
	Store    Store
	Executor executor.Executor
	Logs     *logs.Appender
	Box      *secret.Box
	Slots    int // jobs at once; 0 claims none (a server that leaves every job to agents)
	// Labels are the slots' labels (flowd serve --labels): a job with runs-on is claimed only
	// when they match it (run.LabelsMatch); none takes only jobs without runs-on.
	Labels    map[string]string
	Workspace string // root folder of job workspaces
	Metrics   StepObserver
	Logger    *slog.Logger
	// Poll is how often the scheduler looks for work nobody woke it for; default 1s.
	Poll time.Duration
	// Holder is this node and process: the attempts it claims carry it, their runners are
	// "<node>/<slot>".
	Holder store.Holder
	// TTL is each attempt's lease (default store.DefaultLeaseTTL); the scheduler renews the
	// leases of its jobs every TTL/3.
	TTL time.Duration
	// WakeOthers, when set, tells the other servers on the database that work may be ready:
	// called when a job's end was recorded, since the next stage's jobs (or a run waiting for
	// its concurrency group) may now be claimable there too.
	WakeOthers func()
	// CancelPoll is how often, while it runs jobs, the scheduler looks for cancel requests
	// made on any server (AttemptStates); default 1s. CancelCheck looks at once.
	CancelPoll time.Duration
	// RequireTrusted is set when the executor runs steps as the server's own OS user: then a
	// job of a pipeline that is not trusted (now, when it is claimed) fails before it starts,
	// whatever let its run be queued.
	RequireTrusted bool
	// DefaultImage, when set, runs the jobs without image in a container of it
	// (--executor docker --default-image).
	DefaultImage string
	// RequireImage fails the jobs that would run on this host (no image, no DefaultImage)
	// before they start (--allow-host-jobs=false): a pipeline saved before the flag was set.
	RequireImage bool
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
	// errLost: the job's attempt is no longer live (its lease ran out and the rescuer took
	// it, e.g. while this process was stopped): its processes are killed and nothing more of
	// it is written.
	errLost = errors.New("this attempt was lost: its lease ran out and the job was rescued")
)

// Scheduler claims and runs jobs. Build it with New, then Run.
type Scheduler struct {
	cfg         Config
	wake        chan struct{}
	cancelCheck chan struct{}

	mu       sync.Mutex
	running  map[int64]map[int64]context.CancelCauseFunc // run id → job id → cancel
	attempts map[int64]context.CancelCauseFunc           // attempt id → cancel of its job
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
	cfg.Slots = max(cfg.Slots, 0)
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.TTL <= 0 {
		cfg.TTL = store.DefaultLeaseTTL
	}
	if cfg.CancelPoll <= 0 {
		cfg.CancelPoll = time.Second
	}
	if cfg.Holder.Node == "" {
		cfg.Holder.Node = "local"
	}
	return &Scheduler{
		cfg:         cfg,
		wake:        make(chan struct{}, 1),
		cancelCheck: make(chan struct{}, 1),
		running:     map[int64]map[int64]context.CancelCauseFunc{},
		attempts:    map[int64]context.CancelCauseFunc{},
		canceled:    map[int64]time.Time{},
	}
}

// CancelCheck tells the scheduler that a cancel may have been requested on some server for a
// job it runs: it looks at its attempts' states at once. It never blocks.
func (s *Scheduler) CancelCheck() {
	select {
	case s.cancelCheck <- struct{}{}:
	default:
	}
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
// runJob); at most Slots more jobs may be recording their end meanwhile, and at most Slots
// more removing their workspace after that (a job waits for a place there before it gives up
// its place among those recording, so neither stage piles up). When several slots are free,
// one JobsClaim takes a job for each.
func (s *Scheduler) Run(ctx context.Context) error {
	if s.cfg.Slots == 0 { // --executors 0: this server runs no job; agents claim them
		<-ctx.Done()
		return nil
	}
	jobsCtx, stopJobs := context.WithCancelCause(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	// The leases are renewed until the last job has recorded its end: a job that takes its
	// grace to stop at shutdown must not be rescued meanwhile by another server.
	leasesDone := make(chan struct{})
	leasesCtx, stopLeases := context.WithCancel(context.WithoutCancel(ctx))
	go func() { defer close(leasesDone); s.watchLeases(leasesCtx) }()
	defer func() {
		stopJobs(errShutdown)
		wg.Wait()
		stopLeases()
		<-leasesDone
	}()
	defer s.claimEnded()
	// free holds the numbers of the free slots, which name the runners: "<node>/<slot>".
	var (
		freeMu sync.Mutex
		free   []int
	)
	for i := s.cfg.Slots; i >= 1; i-- {
		free = append(free, i)
	}
	slots := make(chan struct{}, s.cfg.Slots)
	ending := make(chan struct{}, s.cfg.Slots)   // jobs past their executor, not yet recorded
	cleaning := make(chan struct{}, s.cfg.Slots) // jobs recorded, removing their workspace
	ticker := time.NewTicker(s.cfg.Poll)
	defer ticker.Stop()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		n := 1
	more:
		for n < s.cfg.Slots {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		freeMu.Lock()
		runners := make([]string, 0, n)
		for i := range n {
			runners = append(runners, s.cfg.Holder.Node+"/"+strconv.Itoa(free[len(free)-1-i]))
		}
		freeMu.Unlock()
		// A claim, once begun, is seen through even when ctx ends meanwhile: a claim committed in
		// the database whose answer a canceled context threw away would leave its jobs running
		// with nobody to run them (until the rescuer takes them). Jobs claimed as the server
		// stops start and are canceled at once, and recorded so.
		cctx, cancelClaim := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
		claims, err := s.cfg.Store.JobsClaim(cctx, store.JobsClaim{Max: n, StartFirstStep: true,
			Holder: s.cfg.Holder, Runners: runners, TTL: s.cfg.TTL, Labels: s.cfg.Labels})
		cancelClaim()
		s.claimEnded()
		for range n - len(claims) {
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
		freeMu.Lock()
		taken := slices.Clone(free[len(free)-len(claims):])
		free = free[:len(free)-len(claims)]
		freeMu.Unlock()
		for i, claim := range claims {
			slot := taken[len(taken)-1-i]
			jobCtx, cancel := context.WithCancelCause(jobsCtx)
			s.track(claim, cancel)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer s.untrack(claim)
				defer cancel(nil)
				var released, ended sync.Once
				release := func() {
					released.Do(func() {
						ending <- struct{}{}
						freeMu.Lock()
						free = append(free, slot)
						freeMu.Unlock()
						<-slots
						s.Wake()
					})
				}
				recorded := func() {
					ended.Do(func() {
						s.Wake() // the next stage, or a job waiting for a slot, may be ready
						if s.cfg.WakeOthers != nil {
							s.cfg.WakeOthers()
						}
						cleaning <- struct{}{}
						<-ending
					})
				}
				s.runJob(jobCtx, claim, release, recorded, cancel)
				release()
				recorded()
				<-cleaning
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

// claimTimeout bounds one JobsClaim call.
const claimTimeout = 30 * time.Second

// claimWait bounds how long a finished job waits for the claim of its successor before it
// records its own end.
const claimWait = 5 * time.Millisecond

func (s *Scheduler) track(c store.Claim, cancel context.CancelCauseFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	runID := c.Run.ID
	if s.running[runID] == nil {
		s.running[runID] = map[int64]context.CancelCauseFunc{}
	}
	s.running[runID][c.Job.ID] = cancel
	s.attempts[c.Attempt.ID] = cancel
	if _, ok := s.canceled[runID]; ok {
		cancel(errCanceledByUser)
	}
}

func (s *Scheduler) untrack(c store.Claim) {
	s.mu.Lock()
	defer s.mu.Unlock()
	runID := c.Run.ID
	delete(s.running[runID], c.Job.ID)
	if len(s.running[runID]) == 0 {
		delete(s.running, runID)
	}
	delete(s.attempts, c.Attempt.ID)
}

// held returns the ids of the attempts whose jobs run here now.
func (s *Scheduler) held() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]int64, 0, len(s.attempts))
	for id := range s.attempts {
		ids = append(ids, id)
	}
	return ids
}

// watchLeases renews the leases of the attempts running here every TTL/3 and, every
// CancelPoll while any runs (or at once on CancelCheck), looks for cancel requests made on any
// server. An attempt found canceling is canceled (its executor stops the processes); one no
// longer live (the rescuer took it after its lease ran out, e.g. while this process was
// stopped) is stopped at once, and nothing more of it is written (fencing refuses it anyway).
func (s *Scheduler) watchLeases(ctx context.Context) {
	renew := time.NewTicker(s.cfg.TTL / 3)
	defer renew.Stop()
	poll := time.NewTicker(s.cfg.CancelPoll)
	defer poll.Stop()
	for {
		renewing := false
		select {
		case <-ctx.Done():
			return
		case <-renew.C:
			renewing = true
		case <-poll.C:
		case <-s.cancelCheck:
		}
		ids := s.held()
		if len(ids) == 0 {
			continue
		}
		var (
			live []store.LiveAttempt
			err  error
		)
		cctx, cancel := context.WithTimeout(ctx, max(s.cfg.TTL/3, time.Second))
		if renewing {
			live, err = s.cfg.Store.AttemptsRenew(cctx, ids, s.cfg.TTL)
		} else {
			live, err = s.cfg.Store.AttemptStates(cctx, ids)
		}
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.cfg.Logger.Warn("look at job leases", "renew", renewing, "err", err)
			}
			continue
		}
		s.applyStates(ids, live, renewing)
	}
}

// applyStates cancels the jobs of attempts asked for (ids) that are canceling or no longer
// live (missing from live).
func (s *Scheduler) applyStates(ids []int64, live []store.LiveAttempt, renewed bool) {
	state := make(map[int64]run.AttemptState, len(live))
	for _, a := range live {
		state[a.ID] = a.State
	}
	lost := 0
	s.mu.Lock()
	for _, id := range ids {
		cancel, ok := s.attempts[id]
		if !ok {
			continue // ended meanwhile
		}
		switch st, live := state[id]; {
		case !live:
			lost++
			cancel(errLost)
		case st == run.AttemptCanceling:
			cancel(errCanceledByUser)
		}
	}
	s.mu.Unlock()
	if s.cfg.Metrics != nil {
		if renewed {
			s.cfg.Metrics.LeasesRenewed(len(live))
		}
		if lost > 0 {
			s.cfg.Metrics.LeasesExpired(lost)
		}
	}
	if lost > 0 {
		s.cfg.Logger.Warn("stopped jobs whose attempts were lost (their leases ran out and they were rescued)", "count", lost)
	}
}

// finalCtx bounds the writes that record how a job ended; they must happen even when the job's
// own context is canceled (cancel, shutdown).
func finalCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 15*time.Second)
}
