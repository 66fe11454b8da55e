package main

import (
	"context"
	"fmt"
	"strconv"
)

func (c *cli) cmdNotifications(ctx context.Context, args []string) int {
	f := newFlags("notifications", "flowd notifications RUN", `
List the notifications of run RUN (viewers of its pipeline): one per notify target of its
pipeline that wants the run's end, with its status (pending: tried again at the time shown;
delivered: a 2xx answer; failed: no 2xx within 24 hours of the run's end) and each attempt's
time, HTTP status and error.
`+runArgHelp, 1, 1)
	cl, id, code := c.connectRun(ctx, f, args)
	if code >= 0 {
		return code
	}
	list, err := cl.RunNotifications(ctx, id)
	if err != nil {
		return c.fail(err)
	}
	if len(list) == 0 {
		fmt.Fprintln(c.stdout, "No notifications: the run has not ended, or no notify target of its pipeline wants how it ended.")
		return 0
	}
	for i, n := range list {
		if i > 0 {
			fmt.Fprintln(c.stdout)
		}
		signed := "unsigned"
		if n.Signed {
			signed = "signed with " + n.Secret
		}
		fmt.Fprintf(c.stdout, "%s  %s (%s), delivery %s\n", n.Status, n.URL, signed, n.DeliveryID)
		if n.NextAttemptAt != nil {
			fmt.Fprintf(c.stdout, "  next attempt %s (gives up %s)\n", fmtTime(n.NextAttemptAt), fmtTime(&n.GiveUpAt))
		}
		rows := make([][]string, 0, len(n.History))
		for _, a := range n.History {
			status := "-"
			if a.StatusCode != 0 {
				status = strconv.Itoa(a.StatusCode)
			}
			rows = append(rows, []string{"  " + strconv.Itoa(a.Number), fmtTime(&a.StartedAt), strconv.FormatInt(a.DurationMS, 10) + "ms", status, dash(a.Error)})
		}
		if len(rows) > 0 {
			table(c.stdout, []string{"  ATTEMPT", "AT", "TOOK", "HTTP", "ERROR"}, rows)
		}
	}
	return 0
}
