package store_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// groupRun creates a queued run of pipelineID in a concurrency group, with one job per name,
// all in stage 0.
func groupRun(t *testing.T, s *store.Store, pipelineID int64, group string, maxRunning int, jobs ...string) run.Run {
	t.Helper()
	var js []run.Job
	for i, name := range jobs {
		js = append(js, job(0, "build", i, name, "step"))
	}
	r, err := s.RunCreate(t.Context(), store.RunCreate{
		PipelineID: pipelineID, Trigger: run.TriggerPush, TriggeredBy: "alice",
		ConcurrencyGroup: group, MaxRunning: maxRunning, Jobs: js,
	})
	if err != nil {
		t.Fatalf("RunCreate(group %q): %v", group, err)
	}
	return r
}

func TestRunGitRoundTrip(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		plain := mustRun(t, s, p.ID, twoStages())
		if plain.Git != nil || plain.ConcurrencyGroup != "" || plain.MaxRunning != 0 {
			t.Fatalf("run without git = git %+v, group %q, max %d", plain.Git, plain.ConcurrencyGroup, plain.MaxRunning)
		}
		git := &run.Git{
			RepoURL: "https://git.example.com/acme/app.git", SHA: "0123456789abcdef0123456789abcdef01234567",
			Ref: "refs/heads/main", Branch: "main", Event: "push", Provider: "github",
			Message: "fix: it's \"quoted\"\nsecond line", Author: "Ada <ada@example.com>", CredentialsVar: "GIT_TOKEN",
		}
		created, err := s.RunCreate(ctx, store.RunCreate{
			PipelineID: p.ID, Trigger: run.TriggerPush, TriggeredBy: "alice", Git: git,
			ConcurrencyGroup: "deploy-main", MaxRunning: 2, Jobs: twoStages(),
		})
		if err != nil {
			t.Fatal(err)
		}
		check := func(where string, r run.Run) {
			t.Helper()
			if r.Git == nil || *r.Git != *git || r.ConcurrencyGroup != "deploy-main" || r.MaxRunning != 2 {
				t.Errorf("%s: git %+v, group %q, max %d; want %+v, deploy-main, 2", where, r.Git, r.ConcurrencyGroup, r.MaxRunning, git)
			}
		}
		check("RunCreate", created)
		check("RunGet", mustGet(t, s, created.ID))
		list, err := s.RunList(ctx, p.ID, store.RunListParams{})
		if err != nil || len(list) != 2 {
			t.Fatalf("RunList = %d runs, %v", len(list), err)
		}
		check("RunList", list[0])
		if list[1].Git != nil {
			t.Errorf("RunList: run without git has %+v", list[1].Git)
		}
		pipes, err := s.PipelineList(ctx, 0, true)
		if err != nil || len(pipes) != 1 || pipes[0].LastRun == nil {
			t.Fatalf("PipelineList = %+v, %v", pipes, err)
		}
		check("PipelineList", *pipes[0].LastRun)
		// The plain run is older, so it is claimed first; then the git run.
		if c := mustClaim(t, s); c.Run.ID != plain.ID || c.Run.Git != nil {
			t.Fatalf("first claim: run %d git %+v, want run %d without git", c.Run.ID, c.Run.Git, plain.ID)
		}
		c := mustClaim(t, s)
		if c.Run.ID != created.ID {
			t.Fatalf("second claim: run %d, want %d", c.Run.ID, created.ID)
		}
		check("JobClaim", c.Run)
		if _, err := s.RunCreate(ctx, store.RunCreate{PipelineID: p.ID, MaxRunning: -1, Jobs: twoStages()}); err == nil {
			t.Error("RunCreate accepted MaxRunning -1")
		}
	})
}

func TestMaxRunningQueuesGroup(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		other := mustPipeline(t, s, "other", 1)
		a := groupRun(t, s, p.ID, "deploy", 1, "a1", "a2")
		b := groupRun(t, s, p.ID, "deploy", 1, "b")
		c := groupRun(t, s, p.ID, "deploy", 1, "c")
		d := groupRun(t, s, p.ID, "lint", 1, "d")
		e := groupRun(t, s, other.ID, "deploy", 1, "e") // same group name, another pipeline
		f := groupRun(t, s, p.ID, "", 1, "f")           // no group: no bound

		claim := func(want run.Run, name string) store.Claim {
			t.Helper()
			cl := mustClaim(t, s)
			if cl.Run.ID != want.ID || cl.Job.Name != name {
				t.Fatalf("claimed run %d job %q, want run %d job %q", cl.Run.ID, cl.Job.Name, want.ID, name)
			}
			return cl
		}
		a1 := claim(a, "a1")
		// a is running: its second job is not limited, it holds the group's slot.
		a2 := claim(a, "a2")
		// b and c wait for the slot; runs of another group, of another pipeline, and without
		// a group do not.
		claim(d, "d")
		claim(e, "e")
		claim(f, "f")
		wantNoClaim(t, s)
		if n, err := s.JobQueueDepth(ctx); err != nil || n != 0 {
			t.Errorf("JobQueueDepth = %d, %v; want 0 (b and c wait for their group)", n, err)
		}
		if got := mustGet(t, s, b.ID); got.Status != run.Queued {
			t.Fatalf("b is %s, want queued", got.Status)
		}
		mustFinish(t, s, a1.Job.ID, run.Success, "")
		wantNoClaim(t, s) // a still runs a2
		if r := mustFinish(t, s, a2.Job.ID, run.Success, ""); r.Status != run.Success {
			t.Fatalf("a is %s, want success", r.Status)
		}
		// First in, first out: b before c, and c still waits while b runs.
		bc := claim(b, "b")
		wantNoClaim(t, s)
		mustFinish(t, s, bc.Job.ID, run.Failed, "boom")
		claim(c, "c")
		wantNoClaim(t, s)
	})
}

func TestMaxRunningTwo(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		_, p := fixture(t, s)
		var runs []run.Run
		for range 3 {
			runs = append(runs, groupRun(t, s, p.ID, "deploy", 2, "j"))
		}
		for _, want := range runs[:2] {
			if c := mustClaim(t, s); c.Run.ID != want.ID {
				t.Fatalf("claimed run %d, want %d", c.Run.ID, want.ID)
			}
		}
		wantNoClaim(t, s)
	})
}

// Claims racing for a group with one slot start exactly one run, and the oldest.
func TestMaxRunningConcurrentClaims(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		_, p := fixture(t, s)
		var first run.Run
		for i := range 8 {
			r := groupRun(t, s, p.ID, "deploy", 1, "j")
			if i == 0 {
				first = r
			}
		}
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			claims []store.Claim
		)
		for range 8 {
			wg.Go(func() {
				c, err := s.JobClaim(t.Context())
				if errors.Is(err, store.ErrNotFound) {
					return
				}
				if err != nil {
					t.Errorf("JobClaim: %v", err)
					return
				}
				mu.Lock()
				claims = append(claims, c)
				mu.Unlock()
			})
		}
		wg.Wait()
		if len(claims) != 1 || claims[0].Run.ID != first.ID {
			var got []int64
			for _, c := range claims {
				got = append(got, c.Run.ID)
			}
			t.Fatalf("claimed runs %v, want only %d", got, first.ID)
		}
	})
}

func TestRunSupersede(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		running := groupRun(t, s, p.ID, "deploy", 0, "r1", "r2")
		cl := mustClaim(t, s) // running's first job runs; r2 stays queued
		if cl.Run.ID != running.ID {
			t.Fatalf("claimed run %d, want %d", cl.Run.ID, running.ID)
		}
		done := groupRun(t, s, p.ID, "deploy", 0, "x")
		if _, err := s.RunCancel(ctx, done.ID, "canceled by alice"); err != nil {
			t.Fatal(err)
		}
		queued := groupRun(t, s, p.ID, "deploy", 0, "q")
		otherGroup := groupRun(t, s, p.ID, "lint", 0, "o")
		noGroup := groupRun(t, s, p.ID, "", 0, "n")
		newest := groupRun(t, s, p.ID, "deploy", 0, "new")

		ids, err := s.RunSupersede(ctx, newest.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != 1 || ids[0] != running.ID {
			t.Fatalf("RunSupersede = %v, want [%d]", ids, running.ID)
		}
		msg := fmt.Sprintf("superseded by run #%d", newest.Number)
		q := mustGet(t, s, queued.ID)
		if q.Status != run.Canceled || q.Message != msg || q.FinishedAt == nil {
			t.Errorf("older queued run: %s %q, want canceled %q", q.Status, q.Message, msg)
		}
		wantStatuses(t, q, map[string]run.Status{"q": run.Canceled, "q/step": run.Skipped})
		r := mustGet(t, s, running.ID)
		if r.Status != run.Running || !r.CancelRequested || r.Message != msg {
			t.Errorf("older running run: %s requested=%v %q, want running, cancel requested, %q", r.Status, r.CancelRequested, r.Message, msg)
		}
		if d := mustGet(t, s, done.ID); d.Message != "canceled by alice" {
			t.Errorf("finished run's message became %q", d.Message)
		}
		newer := groupRun(t, s, p.ID, "deploy", 0, "newer") // after newest's supersede: left alone
		for _, id := range []int64{otherGroup.ID, noGroup.ID, newest.ID, newer.ID} {
			if got := mustGet(t, s, id); got.Status != run.Queued || got.Message != "" {
				t.Errorf("run %d: %s %q, want untouched", got.Number, got.Status, got.Message)
			}
		}
		// The running run ends canceled with the message once its job stops.
		if end := mustFinish(t, s, cl.Job.ID, run.Canceled, "job canceled"); end.Status != run.Canceled || end.Message != msg {
			t.Errorf("superseded run ended %s %q, want canceled %q", end.Status, end.Message, msg)
		}

		// A second supersede finds nothing left to cancel; a run without a group supersedes
		// nothing; an unknown run is not found.
		if ids, err := s.RunSupersede(ctx, newest.ID); err != nil || len(ids) != 0 {
			t.Errorf("second RunSupersede = %v, %v; want none", ids, err)
		}
		if ids, err := s.RunSupersede(ctx, noGroup.ID); err != nil || len(ids) != 0 {
			t.Errorf("RunSupersede(no group) = %v, %v; want none", ids, err)
		}
		if got := mustGet(t, s, otherGroup.ID); got.Status != run.Queued {
			t.Errorf("run of another group is %s after supersedes", got.Status)
		}
		if _, err := s.RunSupersede(ctx, 9999); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RunSupersede(9999): %v, want ErrNotFound", err)
		}
		// newer supersedes newest (queued) but not itself.
		if _, err := s.RunSupersede(ctx, newer.ID); err != nil {
			t.Fatal(err)
		}
		if got := mustGet(t, s, newest.ID); got.Status != run.Canceled || got.Message != fmt.Sprintf("superseded by run #%d", newer.Number) {
			t.Errorf("newest after newer's supersede: %s %q", got.Status, got.Message)
		}
		if got := mustGet(t, s, newer.ID); got.Status != run.Queued {
			t.Errorf("newer is %s, want queued", got.Status)
		}
	})
}

// TestRunSupersedeLateOlder: a run whose supersede finds a newer run of its group and revision
// (the newer one committed and superseded before this one was visible, as happens when numbers
// are taken before COMMIT) supersedes itself as well as the older ones; a newer run of another
// revision (another definition, perhaps without cancel_previous) does not count.
func TestRunSupersedeLateOlder(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		older := groupRun(t, s, p.ID, "g", 0, "o")
		late := groupRun(t, s, p.ID, "g", 0, "l")
		newer := groupRun(t, s, p.ID, "g", 0, "n")
		otherRevision, err := s.RunCreate(ctx, store.RunCreate{PipelineID: p.ID, Revision: 99, Trigger: run.TriggerPush,
			ConcurrencyGroup: "g", Jobs: []run.Job{job(0, "build", 0, "x", "step")}})
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []int64{older.ID, late.ID} {
			if c := mustClaim(t, s); c.Run.ID != want {
				t.Fatalf("claimed run %d, want %d", c.Run.ID, want)
			}
		}
		ids, err := s.RunSupersede(ctx, late.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := []int64{older.ID, late.ID}; !slices.Equal(ids, want) {
			t.Errorf("RunSupersede(late) = %v, want %v (both running)", ids, want)
		}
		for id, msg := range map[int64]string{
			older.ID: fmt.Sprintf("superseded by run #%d", late.Number),
			late.ID:  fmt.Sprintf("superseded by run #%d", newer.Number),
		} {
			if got := mustGet(t, s, id); got.Status != run.Running || !got.CancelRequested || got.Message != msg {
				t.Errorf("run #%d: %s requested=%v %q; want running, cancel requested, %q", got.Number, got.Status, got.CancelRequested, got.Message, msg)
			}
		}
		// newer's supersede: only a run of another revision is newer, so newer stays.
		if _, err := s.RunSupersede(ctx, newer.ID); err != nil {
			t.Fatal(err)
		}
		for _, id := range []int64{newer.ID, otherRevision.ID} {
			if got := mustGet(t, s, id); got.Status != run.Queued || got.Message != "" {
				t.Errorf("run #%d: %s %q, want queued, untouched", got.Number, got.Status, got.Message)
			}
		}
	})
}

// A running run with no job running (between stages) is canceled at once, and still reported.
func TestRunSupersedeBetweenStages(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		old, err := s.RunCreate(ctx, store.RunCreate{PipelineID: p.ID, Trigger: run.TriggerPush, TriggeredBy: "alice",
			ConcurrencyGroup: "g", Jobs: twoStages()})
		if err != nil {
			t.Fatal(err)
		}
		c := mustClaim(t, s)
		mustFinish(t, s, c.Job.ID, run.Success, "") // stage 1 opens; nothing runs
		newer := groupRun(t, s, p.ID, "g", 0, "n")
		ids, err := s.RunSupersede(ctx, newer.ID)
		if err != nil || len(ids) != 1 || ids[0] != old.ID {
			t.Fatalf("RunSupersede = %v, %v; want [%d]", ids, err, old.ID)
		}
		got := mustGet(t, s, old.ID)
		if got.Status != run.Canceled || got.Message != fmt.Sprintf("superseded by run #%d", newer.Number) {
			t.Fatalf("old run: %s %q", got.Status, got.Message)
		}
		wantStatuses(t, got, map[string]run.Status{"compile": run.Success, "unit": run.Skipped, "lint": run.Skipped})
	})
}
