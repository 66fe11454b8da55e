package main

import (
	"context"
	"fmt"
	"strconv"
)

func (c *cli) cmdPipelineSchedules(ctx context.Context, args []string) int {
	f := newFlags("pipeline schedules", "flowd pipeline schedules NAME [--limit N]", `
List a pipeline's schedules (schedules: in its YAML) with their next fire times, then the
newest fire times some server acted on: the run each started, or why none started (refused:
the user who saved the current revision may not run the pipeline; failed: its branch or
variables could not be resolved). Each fire time starts at most one run, however many
servers share the database.`, 1, 1)
	limit := f.Int("limit", 20, "show at most `N` fire times (1 to 200)")
	cl, pos, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	out, err := cl.ScheduleList(ctx, pos[0], *limit)
	if err != nil {
		return c.fail(err)
	}
	if len(out.Schedules) == 0 {
		fmt.Fprintln(c.stdout, "No schedules: add schedules: [{cron: \"0 3 * * *\"}] to the pipeline's YAML.")
	} else {
		printSchedules(c.stdout, out.Schedules)
	}
	fmt.Fprintln(c.stdout, "\nFired:")
	if len(out.Fires) == 0 {
		fmt.Fprintln(c.stdout, "  (nothing yet)")
		return 0
	}
	rows := make([][]string, 0, len(out.Fires))
	for _, f := range out.Fires {
		runCol := "-"
		if f.RunNumber > 0 {
			runCol = "#" + strconv.FormatInt(f.RunNumber, 10)
		}
		rows = append(rows, []string{"  " + fmtTime(&f.FireAt), f.Schedule, f.Outcome, runCol, f.Message})
	}
	table(c.stdout, []string{"  FIRE TIME", "SCHEDULE", "OUTCOME", "RUN", "WHY"}, rows)
	return 0
}
