package main

import (
	"context"
	"fmt"
	"time"

	"github.com/flowd/flowd/internal/client"
)

func (c *cli) cmdRuns(ctx context.Context, args []string) int {
	f := newFlags("runs", "flowd runs PIPELINE [--status S] [--trigger T] [--limit N] [--before NUMBER]", `
List the runs of PIPELINE, newest first. When there are more, the last line tells the
--before value that shows the next page.`, 1, 1)
	status := f.String("status", "", "only runs with this `status`: queued, running, success, failed, canceled")
	trigger := f.String("trigger", "", "only runs started by this `trigger`: manual, webhook, push or cron")
	pg := f.pagingFlags("runs", "only runs numbered below `NUMBER`")
	cl, pos, code := c.connectWith(f, args, pg.check)
	if code >= 0 {
		return code
	}
	page, err := cl.RunList(ctx, pos[0], client.RunListParams{Limit: pg.limit, Before: pg.before, Status: *status, Trigger: *trigger})
	if err != nil {
		return c.fail(err)
	}
	if len(page.Runs) == 0 {
		fmt.Fprintf(c.stderr, "no runs of %s match\n", pos[0])
		return 0
	}
	now := time.Now()
	rows := make([][]string, 0, len(page.Runs))
	for _, r := range page.Runs {
		rows = append(rows, []string{
			fmt.Sprintf("#%d", r.Number), fmt.Sprint(r.ID), string(r.Status), string(r.Trigger),
			dash(r.TriggeredBy), fmtTime(r.CreatedAt), fmtDuration(r.Duration(now)),
		})
	}
	table(c.stdout, []string{"NUMBER", "ID", "STATUS", "TRIGGER", "BY", "CREATED", "DURATION"}, rows)
	if page.NextBefore != nil {
		fmt.Fprintf(c.stderr, "more: flowd runs %s --before %d\n", pos[0], *page.NextBefore)
	}
	return 0
}
