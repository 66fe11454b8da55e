package trigger_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
	"github.com/flowd/flowd/internal/trigger"
)

const everyMinute = `name: tick
variables:
  abc: "123"
schedules:
  - name: minutely
    cron: "* * * * *"
    variables: {abc: scheduled}
stages:
  - name: s
    jobs:
      - name: j
        steps:
          - run: echo "$abc"
`

// TestDue: the fire times of the last two minutes, or else only the newest missed one.
func TestDue(t *testing.T) {
	t.Parallel()
	p, err := pipeline.Parse([]byte(strings.Replace(everyMinute, `"* * * * *"`, `"0 * * * *"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	hourly := p.Schedules[0]
	since := time.Date(2026, 12, 7, 0, 10, 0, 0, time.UTC)
	fmtAll := func(ts []time.Time) string {
		var s []string
		for _, t := range ts {
			s = append(s, t.Format("15:04"))
		}
		return strings.Join(s, " ")
	}
	for _, c := range []struct {
		now  string
		want string
	}{
		{"00:30", ""},      // nothing since the pipeline was saved
		{"01:00", "01:00"}, // on time
		{"01:01", "01:00"}, // a late tick still catches it
		{"01:05", "01:00"}, // too late for the window: the newest missed
		{"05:01", "05:00"}, // 02:00 to 04:00 missed: only 05:00 (in the window)
		{"05:30", "05:00"}, // newest missed only
		{"00:05", ""},      // before since
	} {
		hm, _ := time.Parse("15:04", c.now)
		now := time.Date(2026, 12, 7, hm.Hour(), hm.Minute(), 0, 0, time.UTC)
		if got := fmtAll(trigger.Due(hourly, since, now)); got != c.want {
			t.Errorf("Due at %s = %q, want %q", c.now, got, c.want)
		}
	}
}

// TestSchedulesFireOnce: two servers on one database tick with the same moved clock: every
// minute's fire time makes exactly one run, with the schedule's variables, as the user who saved
// the pipeline; a restart after hours fires the newest missed time once; a fire whose owner was
// disabled is recorded as refused with the reason and starts nothing.
func TestSchedulesFireOnce(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dsn := storetest.DSN(t, dialect)
			a := storetest.OpenAt(t, dsn)
			b := a // SQLite: one server owns the database
			if dialect == "postgres" {
				b = storetest.OpenAt(t, dsn)
			}
			hash, err := auth.HashPasswordCost("password1", 4)
			if err != nil {
				t.Fatal(err)
			}
			alice, err := a.UserCreate(ctx, "alice", hash, false)
			if err != nil {
				t.Fatal(err)
			}
			p, err := a.PipelineCreate(ctx, "tick", everyMinute, nil, alice.ID)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			now := p.UpdatedAt.Truncate(time.Minute).Add(30 * time.Second)
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			servers := []*trigger.Schedules{
				{Store: a, Runs: &trigger.Service{Store: a, Box: newBox(t)}, Now: clock},
				{Store: b, Runs: &trigger.Service{Store: b, Box: newBox(t)}, Now: clock},
			}
			tickAll := func() {
				var wg sync.WaitGroup
				for _, s := range servers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := s.Tick(ctx); err != nil {
							t.Errorf("Tick: %v", err)
						}
					}()
				}
				wg.Wait()
			}
			advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
			fires := func() []store.ScheduleFire {
				t.Helper()
				list, err := a.ScheduleFireList(ctx, p.ID, 200)
				if err != nil {
					t.Fatal(err)
				}
				return list
			}

			// Five minutes, each ticked twice by both servers.
			for range 5 {
				advance(time.Minute)
				tickAll()
				tickAll()
			}
			list := fires()
			if len(list) != 5 {
				t.Fatalf("after 5 minutes: %d fires, want 5: %+v", len(list), list)
			}
			seen := map[time.Time]bool{}
			for _, f := range list {
				if f.Outcome != store.FireStarted || f.RunID == 0 || f.At.Second() != 0 || seen[f.At] {
					t.Errorf("fire %+v", f)
				}
				seen[f.At] = true
				r, err := a.RunGet(ctx, f.RunID)
				if err != nil || r.Trigger != run.TriggerCron || r.TriggeredBy != "alice" || r.Variables["abc"] != "scheduled" {
					t.Errorf("run of fire %s: %+v, %v", f.At, r, err)
				}
			}
			countRuns := func() int {
				t.Helper()
				runs, err := a.RunList(ctx, p.ID, store.RunListParams{Limit: 200})
				if err != nil {
					t.Fatal(err)
				}
				return len(runs)
			}
			if n := countRuns(); n != 5 {
				t.Errorf("runs = %d; want 5", n)
			}

			// Every server down for three hours: the minutes of the window, none for what
			// was missed before them.
			advance(3 * time.Hour)
			tickAll()
			list = fires()
			if got := len(list) - 5; got != 2 {
				t.Errorf("after 3 hours down: %d new fires, want 2 (the window's): %+v", got, list[:max(got, 0)])
			}

			// The owner is disabled: the next minute is refused, with why and the fix.
			if _, err := a.UserUpdate(ctx, alice.ID, store.UserUpdate{Disabled: new(true)}); err != nil {
				t.Fatal(err)
			}
			advance(time.Minute)
			tickAll()
			list = fires()
			if list[0].Outcome != store.FireRefused || list[0].RunID != 0 ||
				!strings.Contains(list[0].Message, "the schedule's owner alice is disabled; a user who may run tick must save the pipeline again") {
				t.Errorf("fire with a disabled owner: %+v", list[0])
			}
			if n := countRuns(); n != 7 {
				t.Errorf("runs = %d, want 7 (none for the refused fire)", n)
			}
		})
	}
}
