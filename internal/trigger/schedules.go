package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// ScheduleStore is what Schedules reads and writes.
type ScheduleStore interface {
	ownerStore
	PipelineList(ctx context.Context, userID int64, all bool) ([]store.PipelineSummary, error)
	PipelineRevisionList(ctx context.Context, pipelineID int64, limit int, before int64) ([]store.PipelineRevisionInfo, error)
	UserGet(ctx context.Context, username string) (store.User, error)
	ScheduleFireExists(ctx context.Context, f store.Fire) (bool, error)
	ScheduleFireRecord(ctx context.Context, f store.Fire, outcome, message string) (bool, error)
}

// Schedules fires the pipelines' cron schedules (pipeline.Schedule). Every server may tick: a
// fire time is stored with its run in one transaction under a unique key (store.Fire), so it
// starts one run however many servers act on it, and a server that restarts does not fire it
// again.
//
// A tick acts on the fire times of the last FireWindow (a late tick still catches them) and,
// when there are none but older ones were missed (every server was down), on the newest
// missed one only, once: a schedule that missed ten nights runs once when a server comes
// back, not ten times. Fire times before the pipeline's current revision was saved are not
// fired.
//
// A fire runs as the user who saved the pipeline's current revision, checked at each fire
// like a webhook's owner; when they may not run it, the fire is recorded as refused with the
// reason and the fix, and no run starts.
type Schedules struct {
	Store  ScheduleStore
	Runs   *Service         // builds and stores runs exactly as manual starts do
	Now    func() time.Time // nil = time.Now; tests move it
	Logger *slog.Logger
}

// FireWindow is how far back a tick acts on every fire time.
const FireWindow = 2 * time.Minute

// Due returns the fire times of sc to act on at now, after since, earliest first: each one in
// (now-FireWindow, now], or when there is none, the newest one before, if any (it stands for
// every fire time missed while no server ticked; a fire in the window already does).
func Due(sc pipeline.Schedule, since, now time.Time) []time.Time {
	edge := now.Add(-FireWindow)
	from := edge
	if since.After(from) {
		from = since
	}
	var out []time.Time
	for t, ok := sc.Cron.Next(from, sc.Location); ok && !t.After(now); t, ok = sc.Cron.Next(t, sc.Location) {
		out = append(out, t)
	}
	if len(out) == 0 {
		if missed, ok := lastFireIn(sc, since, edge); ok {
			out = append(out, missed)
		}
	}
	return out
}

// lastFireIn returns the newest fire time of sc in (since, end], looking back at most a year.
func lastFireIn(sc pipeline.Schedule, since, end time.Time) (time.Time, bool) {
	for _, back := range []time.Duration{time.Hour, 25 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour} {
		from := end.Add(-back)
		if from.Before(since) {
			from = since
		}
		var last time.Time
		for t, ok := sc.Cron.Next(from, sc.Location); ok && !t.After(end); t, ok = sc.Cron.Next(t, sc.Location) {
			last = t
		}
		if !last.IsZero() {
			return last, true
		}
		if !from.After(since) {
			break
		}
	}
	return time.Time{}, false
}

// Tick acts on the fire times due now (see Due) of every pipeline's schedules and returns how
// many runs it started. One pipeline's failure is logged and does not stop the others.
func (s *Schedules) Tick(ctx context.Context) (int, error) {
	now := s.now()
	list, err := s.Store.PipelineList(ctx, 0, true)
	if err != nil {
		return 0, fmt.Errorf("trigger: schedules: %w", err)
	}
	started := 0
	for _, ps := range list {
		if !strings.Contains(ps.Source, "schedules") {
			continue // no need to parse it
		}
		def, err := s.Runs.parsed(ps.Pipeline)
		if err != nil {
			s.logger().Error("schedules: pipeline does not parse", "pipeline", ps.Name, "err", err)
			continue
		}
		for _, sc := range def.Schedules {
			for _, at := range Due(sc, ps.UpdatedAt, now) {
				ok, err := s.fire(ctx, ps.Pipeline, def, sc, at)
				if err != nil {
					if ctx.Err() != nil {
						return started, ctx.Err()
					}
					s.logger().Error("schedules: fire", "pipeline", ps.Name, "schedule", sc.Title(), "at", at, "err", err)
				}
				if ok {
					started++
				}
			}
		}
	}
	return started, nil
}

// fire acts on one fire time: nothing when it is recorded already, else a run, or a record of
// why none started. It reports whether it started a run.
func (s *Schedules) fire(ctx context.Context, p store.Pipeline, def *pipeline.Pipeline, sc pipeline.Schedule, at time.Time) (bool, error) {
	f := store.Fire{PipelineID: p.ID, Key: sc.Key(), Title: sc.Title(), At: at}
	if done, err := s.Store.ScheduleFireExists(ctx, f); err != nil || done {
		return false, err
	}
	owner, problem, err := s.owner(ctx, p)
	if err != nil {
		return false, err
	}
	if problem != "" {
		return false, s.refuse(ctx, f, store.FireRefused, problem)
	}
	overrides := map[string]json.RawMessage{}
	for k, v := range sc.Variables {
		b, _ := json.Marshal(v)
		overrides[k] = b
	}
	var ref GitRef
	if def.Source != nil {
		ref.Branch = sc.Branch
		if ref.Branch == "" {
			ref.Branch, _ = DefaultBranch(def.Source)
		}
	}
	r, _, err := s.Runs.start(ctx, p, run.TriggerCron, owner, overrides, ref, &f)
	var (
		untrusted *UntrustedError
		gitErr    *GitError
		varErr    *pipeline.VariableError
	)
	switch {
	case err == nil:
		s.logger().Info("schedule fired", "pipeline", p.Name, "schedule", sc.Title(), "at", at.UTC().Format(time.RFC3339), "run", r.Number)
		return true, nil
	case errors.Is(err, store.ErrFireTaken):
		return false, nil // another server fired it
	case errors.As(err, &untrusted):
		return false, s.refuse(ctx, f, store.FireRefused, untrusted.Advice())
	case errors.As(err, &gitErr):
		return false, s.refuse(ctx, f, store.FireFailed, gitErr.Message)
	case errors.As(err, &varErr):
		return false, s.refuse(ctx, f, store.FireFailed, varErr.Error())
	}
	return false, err
}

// owner returns the user a fire of p runs as (who saved its current revision) and, when they
// may not run p, what is wrong and the fix.
func (s *Schedules) owner(ctx context.Context, p store.Pipeline) (name, problem string, err error) {
	revs, err := s.Store.PipelineRevisionList(ctx, p.ID, 1, 0)
	if err != nil {
		return "", "", fmt.Errorf("trigger: schedule owner of %s: %w", p.Name, err)
	}
	if len(revs) == 0 {
		return "", "", fmt.Errorf("trigger: pipeline %s has no revision", p.Name)
	}
	name = revs[0].CreatedBy
	var id int64
	switch u, err := s.Store.UserGet(ctx, name); {
	case err == nil:
		id = u.ID
	case !errors.Is(err, store.ErrNotFound):
		return "", "", fmt.Errorf("trigger: schedule owner of %s: %w", p.Name, err)
	}
	c, err := checkRunner(ctx, s.Store, runner{
		what: "the schedule's owner", id: id, name: name, pipelineID: p.ID, pipeline: p.Name,
		fix: fmt.Sprintf("a user who may run %s must save the pipeline again (schedules run as the user who saved the current revision)", p.Name),
	})
	if err != nil {
		return "", "", err
	}
	return name, c.Problem, nil
}

// refuse records a fire time that started no run, and logs it.
func (s *Schedules) refuse(ctx context.Context, f store.Fire, outcome, why string) error {
	recorded, err := s.Store.ScheduleFireRecord(ctx, f, outcome, why)
	if recorded {
		s.logger().Warn("schedule did not start a run", "pipeline_id", f.PipelineID, "schedule", f.Title, "at", f.At.UTC().Format(time.RFC3339), "outcome", outcome, "why", why)
	}
	return err
}

// Run ticks until ctx ends: just after each minute starts, or every `every` when it is not 0
// (tests with a moved clock).
func (s *Schedules) Run(ctx context.Context, every time.Duration) {
	for {
		if _, err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.logger().Error("schedules: tick", "err", err)
		}
		wait := every
		if wait <= 0 {
			now := time.Now()
			wait = now.Truncate(time.Minute).Add(time.Minute + time.Second).Sub(now)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (s *Schedules) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Schedules) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}
