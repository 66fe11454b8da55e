package notify_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/commitstatus/hosttest"
	"github.com/flowd/flowd/internal/notify"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/secret"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
	"github.com/flowd/flowd/internal/trigger"
)

const statusSHA = "0123456789abcdef0123456789abcdef01234567"

// statusSetup stores a pipeline whose source reports commit statuses to hs's GitHub with the
// pipeline's secret GH_TOKEN; it returns the notifier, its clock and a function that creates a
// queued run at statusSHA on main.
func statusSetup(t *testing.T, s *store.Store, hs *hosttest.Server) (*notify.Notifier, *time.Time, func() run.Run) {
	ctx := t.Context()
	box, err := secret.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.UserCreate(ctx, "alice", "x", true)
	if err != nil {
		t.Fatal(err)
	}
	src := "name: app\nvariables:\n  GH_TOKEN: {secret: true}\nsource:\n  url: https://github.com/acme/app.git\n" +
		"  status_token: GH_TOKEN\n  status_api: " + hs.API("github") + "\n" +
		"stages:\n  - name: s\n    jobs:\n      - name: j\n        steps:\n          - run: make\n"
	sealed, err := trigger.SealSecrets(box, map[string]string{"GH_TOKEN": "ghp-right"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.PipelineCreate(ctx, "app", src, sealed, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	newRun := func() run.Run {
		r, err := s.RunCreate(ctx, store.RunCreate{PipelineID: p.ID, Revision: p.Revision, Trigger: run.TriggerWebhook, TriggeredBy: "alice",
			Git: &run.Git{RepoURL: "https://github.com/acme/app.git", SHA: statusSHA, Ref: "refs/heads/main", Branch: "main",
				Event: "push", Provider: "github", StatusTokenVar: "GH_TOKEN"},
			Jobs: []run.Job{{Stage: 0, StageName: "s", Index: 0, Name: "j", Status: run.Queued,
				Steps: []run.Step{{Index: 0, Name: "make", Script: "make", Status: run.Queued}}}}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	clock := time.Now().UTC().Truncate(time.Second)
	n := &notify.Notifier{Store: s, Box: box, ExternalURL: "https://ci.example.com", Version: "v1.2.3",
		Logger: storetest.Logger(t), Now: func() time.Time { return clock }, Backoff: 10 * time.Second, MaxBackoff: time.Minute}
	return n, &clock, newRun
}

// finishJob ends the run's claimed job with st.
func finishJob(t *testing.T, s *store.Store, jobID int64, st run.Status) {
	t.Helper()
	a, err := s.JobAttempt(t.Context(), jobID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.JobFinish(t.Context(), a, jobID, st, ""); err != nil {
		t.Fatal(err)
	}
}

// TestCommitStatusReports: a push run reports queued (pending), then, after a 503 on running,
// its final state as soon as the run ends (not after the backoff), once; the host sees the run
// page, the pipeline name and the token; each attempt is kept. A refusal (a wrong token's 401)
// is final for that state, and the run's next state is tried again.
func TestCommitStatusReports(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		hs := hosttest.New(t)
		hs.SetToken("github", "ghp-right")
		n, clock, newRun := statusSetup(t, s, hs)
		tick := func(d time.Duration, wantReports int) []hosttest.Request {
			t.Helper()
			*clock = clock.Add(d)
			if err := n.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			got := hs.Requests()
			if len(got) != wantReports {
				t.Fatalf("after %s: %d reports, want %d: %s", d, len(got), wantReports, brief(got))
			}
			return got
		}
		r := newRun()
		got := tick(0, 1)
		q := got[0]
		if q.Method != "POST" || q.Path != "/repos/acme/app/statuses/"+statusSHA || q.Header.Get("Authorization") != "Bearer ghp-right" ||
			q.Body["state"] != "pending" || q.Body["context"] != "app" || q.Body["description"] != "Run #1 is queued" ||
			q.Body["target_url"] != "https://ci.example.com/runs/"+strconv.FormatInt(r.ID, 10) || q.Code != 201 ||
			q.Header.Get("User-Agent") != "flowd/v1.2.3" {
			t.Fatalf("queued report = %+v", q)
		}
		tick(time.Hour, 1) // sent: never again

		hs.FailNext("github", 1, 503)
		c, err := s.JobClaim(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = tick(0, 2)
		if got[1].Body["description"] != "Run #1 is running" || got[1].Code != 503 {
			t.Fatalf("running report = %+v", got[1])
		}
		tick(5*time.Second, 2) // the retry is 10 s away
		finishJob(t, s, c.Job.ID, run.Success)
		got = tick(0, 3) // the final state goes at once
		if got[2].Body["state"] != "success" || !strings.HasPrefix(got[2].Body["description"].(string), "Run #1 succeeded in ") {
			t.Fatalf("final report = %+v", got[2])
		}
		tick(time.Hour, 3)
		cs, err := s.RunCommitStatus(ctx, r.ID)
		if err != nil || cs.Status != store.ReportSent || cs.SentState != run.Success || len(cs.History) != 3 ||
			cs.History[1].StatusCode != 503 || !strings.Contains(cs.History[1].Error, "503") || cs.History[1].State != run.Running {
			t.Fatalf("commit status = %+v, %v", cs, err)
		}

		// A wrong token: refused for good, not retried; the next state is tried again.
		hs.SetToken("github", "ghp-other")
		r2 := newRun()
		got = tick(0, 4)
		if got[3].Code != 401 {
			t.Fatalf("report with a wrong token answered %d", got[3].Code)
		}
		tick(time.Hour, 4)
		cs, _ = s.RunCommitStatus(ctx, r2.ID)
		if cs.Status != store.ReportFailed || cs.LastStatusCode != 401 || !strings.Contains(cs.LastError, "github answered 401") ||
			strings.Contains(cs.LastError, "ghp-right") {
			t.Fatalf("refused report = %+v", cs)
		}
		hs.SetToken("github", "ghp-right")
		if _, err := s.RunCancel(ctx, r2.ID, "not needed"); err != nil {
			t.Fatal(err)
		}
		got = tick(0, 5)
		if got[4].Body["state"] != "error" || got[4].Body["description"] != "Run #2 was canceled" || got[4].Code != 201 {
			t.Fatalf("canceled report = %+v", got[4])
		}
	})
}

// TestCommitStatusGivesUp: a host that never answers is tried with the backoff until 24 h
// after the state's first attempt, then the report is failed and no longer tried.
func TestCommitStatusGivesUp(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		hs := hosttest.New(t)
		hs.FailNext("github", 1<<20, 502)
		n, clock, newRun := statusSetup(t, s, hs)
		r := newRun()
		end := clock.Add(24 * time.Hour)
		for clock.Before(end.Add(20 * time.Minute)) {
			if err := n.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			*clock = clock.Add(5 * time.Minute)
		}
		tries := len(hs.Requests())
		// Ticks every 5 min; delays 10 s, 20 s… capped at 1 min: one try a tick for 24 h.
		if tries < 280 || tries > 300 {
			t.Errorf("%d tries in 24 h, want about 289", tries)
		}
		cs, err := s.RunCommitStatus(ctx, r.ID)
		if err != nil || cs.Status != store.ReportFailed || cs.Attempts != tries || cs.LastStatusCode != 502 {
			t.Fatalf("commit status = %+v, %v", cs, err)
		}
	})
}

// brief is each report's state, description and answer, for failure messages.
func brief(rs []hosttest.Request) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "\n  %v %q → %d", r.Body["state"], r.Body["description"], r.Code)
	}
	return b.String()
}
