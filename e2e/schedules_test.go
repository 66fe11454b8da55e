package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scheduleView is what GET /api/v1/pipelines/NAME/schedules answers.
type scheduleView struct {
	Schedules []struct {
		Title string      `json:"title"`
		Next  []time.Time `json:"next"`
	} `json:"schedules"`
	Fires []struct {
		FireAt    time.Time `json:"fire_at"`
		Outcome   string    `json:"outcome"`
		Message   string    `json:"message"`
		RunID     int64     `json:"run_id"`
		RunNumber int64     `json:"run_number"`
	} `json:"fires"`
}

func (s *server) schedules(token, pipeline string) scheduleView {
	s.t.Helper()
	var v scheduleView
	if code := s.api(token, "GET", "/api/v1/pipelines/"+pipeline+"/schedules?limit=200", nil, &v); code != 200 {
		s.t.Fatalf("GET schedules of %s: %d", pipeline, code)
	}
	return v
}

// scheduleClock is the file the servers' schedules read their time from
// (FLOWD_TEST_SCHEDULE_CLOCK), so minutes pass in a moment.
type scheduleClock struct {
	t    *testing.T
	path string
	now  time.Time
}

func newScheduleClock(t *testing.T) *scheduleClock {
	return &scheduleClock{t: t, path: filepath.Join(t.TempDir(), "clock")}
}

func (c *scheduleClock) env() string { return "FLOWD_TEST_SCHEDULE_CLOCK=" + c.path }

func (c *scheduleClock) set(t time.Time) {
	c.now = t
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(t.UTC().Format(time.RFC3339)), 0o644); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		c.t.Fatal(err)
	}
}

// pipelineSaved returns when pipeline's current revision was saved (the schedules' start).
func (s *server) pipelineSaved(token, pipeline string) time.Time {
	s.t.Helper()
	var p struct {
		UpdatedAt time.Time `json:"updated_at"`
	}
	if code := s.api(token, "GET", "/api/v1/pipelines/"+pipeline, nil, &p); code != 200 {
		s.t.Fatalf("GET pipeline %s: %d", pipeline, code)
	}
	return p.UpdatedAt
}

const minutely = `name: minutely
variables:
  WHO: {default: nobody}
schedules:
  - cron: "* * * * *"
    variables: {WHO: cron}
stages:
  - name: s
    jobs:
      - name: j
        steps:
          - run: echo "hello $WHO"
`

// TestSchedulesTwoServers: two servers on one PostgreSQL, their schedules on one moved clock:
// a schedule every minute starts exactly one run per minute (the fire time's unique key, not
// a per-process timer), with the schedule's variables, shown as trigger cron with its fire time.
func TestSchedulesTwoServers(t *testing.T) {
	t.Parallel()
	clock := newScheduleClock(t)
	c := startCluster(t, nodeSpec{Name: "a", Env: []string{clock.env()}}, nodeSpec{Name: "b", Env: []string{clock.env()}})
	a, b := c.Nodes[0], c.Nodes[1]
	a.createPipeline(c.Admin, minutely)
	saved := a.pipelineSaved(c.Admin, "minutely")
	start := saved.Truncate(time.Minute).Add(10 * time.Second)
	clock.set(start)
	time.Sleep(time.Second) // both servers tick several times: nothing is due yet
	if f := a.schedules(c.Admin, "minutely").Fires; len(f) != 0 {
		t.Fatalf("fires before the first fire time: %+v", f)
	}
	for i := 1; i <= 4; i++ {
		clock.set(start.Add(time.Duration(i) * time.Minute))
		waitFor(t, "fire "+strconv.Itoa(i), func() bool { return len(b.schedules(c.Admin, "minutely").Fires) >= i })
		time.Sleep(700 * time.Millisecond) // more ticks of both servers at this minute
	}
	v := b.schedules(c.Admin, "minutely")
	if len(v.Fires) != 4 {
		t.Fatalf("4 minutes on two servers: %d fires, want 4: %+v", len(v.Fires), v.Fires)
	}
	seen := map[int64]bool{}
	for i, f := range v.Fires {
		want := start.Truncate(time.Minute).Add(time.Duration(4-i) * time.Minute)
		if !f.FireAt.Equal(want) || f.Outcome != "started" || f.RunID == 0 || seen[f.RunID] {
			t.Errorf("fire %d = %+v, want %s started with a run of its own", i, f, want)
		}
		seen[f.RunID] = true
	}
	var runs struct {
		Runs []struct{ ID int64 } `json:"runs"`
	}
	if code := a.api(c.Admin, "GET", "/api/v1/pipelines/minutely/runs?trigger=cron", nil, &runs); code != 200 || len(runs.Runs) != 4 {
		t.Fatalf("cron runs = %d (%d), want 4", len(runs.Runs), code)
	}
	id := v.Fires[0].RunID
	waitFor(t, "the newest scheduled run to end", func() bool { return terminal(a.run(c.Admin, id).Status) })
	var rv struct {
		Trigger     string            `json:"trigger"`
		TriggeredBy string            `json:"triggered_by"`
		Variables   map[string]string `json:"variables"`
		Schedule    *struct {
			FireAt time.Time `json:"fire_at"`
		} `json:"schedule"`
	}
	a.api(c.Admin, "GET", "/api/v1/runs/"+strconv.FormatInt(id, 10), nil, &rv)
	if rv.Trigger != "cron" || rv.TriggeredBy != "admin" || rv.Variables["WHO"] != "cron" || rv.Schedule == nil || !rv.Schedule.FireAt.Equal(v.Fires[0].FireAt) {
		t.Errorf("scheduled run = %+v", rv)
	}
	if log := a.log(c.Admin, id); !strings.Contains(log, "hello cron") {
		t.Errorf("log of the scheduled run:\n%s", log)
	}
	out, _, code := a.cli(c.Admin, "pipeline", "schedules", "minutely")
	if code != 0 || !strings.Contains(out, "* * * * * UTC") || !strings.Contains(out, "next: ") || strings.Count(out, " started ") != 4 {
		t.Errorf("flowd pipeline schedules:\n%s", out)
	}
}

// TestSchedulesMissedAfterRestart: a server that was down at fire times fires the newest missed
// one once when it starts again, not one per missed time; later fire times fire as usual.
func TestSchedulesMissedAfterRestart(t *testing.T) {
	t.Parallel()
	clock := newScheduleClock(t)
	data, dsn := newDatabase(t, "sqlite")
	s := startServerEnv(t, data, dsn, []string{clock.env()})
	tok := s.token("admin", adminPassword)
	s.createPipeline(tok, strings.Replace(strings.Replace(minutely, `"* * * * *"`, `"0 * * * *"`, 1), "name: minutely", "name: hourly", 1))
	saved := s.pipelineSaved(tok, "hourly")
	hour := saved.Truncate(time.Hour)
	clock.set(hour.Add(30 * time.Minute))
	time.Sleep(time.Second)
	s.stop()

	// Five hours later (between fire times): the newest missed one, once.
	clock.set(hour.Add(5*time.Hour + 30*time.Minute))
	s = startServerEnv(t, data, dsn, []string{clock.env()})
	waitFor(t, "the missed fire", func() bool { return len(s.schedules(tok, "hourly").Fires) >= 1 })
	time.Sleep(time.Second)
	v := s.schedules(tok, "hourly")
	if len(v.Fires) != 1 || !v.Fires[0].FireAt.Equal(hour.Add(5*time.Hour)) || v.Fires[0].Outcome != "started" {
		t.Fatalf("after 5 hours down: %+v, want one fire for %s", v.Fires, hour.Add(5*time.Hour))
	}
	if len(v.Schedules) != 1 || len(v.Schedules[0].Next) != 3 {
		t.Errorf("schedules = %+v, want one with its next three fire times", v.Schedules)
	}

	// The next hour fires on time.
	clock.set(hour.Add(6*time.Hour + 30*time.Second))
	waitFor(t, "the next fire", func() bool { return len(s.schedules(tok, "hourly").Fires) >= 2 })
	if v := s.schedules(tok, "hourly"); !v.Fires[0].FireAt.Equal(hour.Add(6 * time.Hour)) {
		t.Errorf("fires = %+v", v.Fires)
	}
}

// TestUISchedules: the pipeline page's Runs tab lists the schedules with their next fire times
// and what each fire started (a link to the run as #N); the run page says the run was scheduled,
// by which schedule, for when; the run history filters by schedule. SQLite and PostgreSQL.
func TestUISchedules(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			clock := newScheduleClock(t)
			data, dsn := newDatabase(t, dialect)
			s := startServerEnv(t, data, dsn, []string{clock.env()})
			tok := s.token("admin", adminPassword)
			s.createPipeline(tok, strings.Replace(minutely, "  - cron:", "  - name: nightly\n    timezone: Europe/Berlin\n    cron:", 1))
			saved := s.pipelineSaved(tok, "minutely")
			clock.set(saved.Truncate(time.Minute).Add(time.Minute + 10*time.Second))
			waitFor(t, "the fire", func() bool { return len(s.schedules(tok, "minutely").Fires) == 1 })
			fire := s.schedules(tok, "minutely").Fires[0]

			b := newBrowser(t, s.URL)
			b.signIn("admin", adminPassword)
			b.open("/pipelines/minutely")
			b.waitJS("the schedule and its fire", `document.querySelector('#fire-list a[href="/runs/`+strconv.FormatInt(fire.RunID, 10)+`"]')?.textContent === '#`+strconv.FormatInt(fire.RunNumber, 10)+`'`)
			list := b.str(`document.querySelector('#schedule-list').textContent`)
			if !strings.Contains(list, "nightly") || !strings.Contains(list, "* * * * *") || !strings.Contains(list, "Europe/Berlin") || strings.Count(list, " · ") != 2 {
				t.Errorf("#schedule-list = %q: want the schedule's name, cron, zone and three next fire times", list)
			}
			if got := b.str(`document.querySelector('#fire-list tbody tr').textContent`); !strings.Contains(got, "nightly") || !strings.Contains(got, "started") {
				t.Errorf("fire row = %q", got)
			}
			if dir := os.Getenv("FLOWD_UI_SCREENSHOTS"); dir != "" {
				b.screenshot(dir, "schedules-"+dialect+"-laptop", 1280, 800)
				b.screenshot(dir, "schedules-"+dialect+"-phone", 390, 844)
			}

			b.open("/runs/" + strconv.FormatInt(fire.RunID, 10))
			b.waitJS("the run's trigger", `(document.querySelector('#run-trigger')?.textContent || '').includes('scheduled (nightly, for ')`)

			b.open("/pipelines/minutely?trigger=cron")
			b.waitJS("the cron filter", `document.querySelector('#run-filters [name=trigger]').value === 'cron' && document.querySelectorAll('#run-list tbody a[href^="/runs/"]').length >= 1`)
		})
	}
}
