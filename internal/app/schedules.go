package app

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/trigger"
)

// scheduleClockEnv is a test hook: the path of a file holding an RFC 3339 time, the "now" of
// this server's schedules (read at each tick, ticking every 200 ms), so a test sees minutes of
// fire times without waiting minutes.
const scheduleClockEnv = "FLOWD_TEST_SCHEDULE_CLOCK"

// runSchedules fires the pipelines' cron schedules until ctx ends (see trigger.Schedules).
// Every server runs it; the store makes each fire time one run.
func runSchedules(ctx context.Context, st *store.Store, runs *trigger.Service, logger *slog.Logger) {
	s := &trigger.Schedules{Store: st, Runs: runs, Logger: logger}
	every := time.Duration(0)
	if path := os.Getenv(scheduleClockEnv); path != "" {
		logger.Warn("this server's schedules read their clock from a file, for a test", "file", path)
		s.Now = func() time.Time {
			b, err := os.ReadFile(path)
			if err != nil {
				return time.Now()
			}
			t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(b)))
			if err != nil {
				return time.Now()
			}
			return t
		}
		every = 200 * time.Millisecond
	}
	s.Run(ctx, every)
}
