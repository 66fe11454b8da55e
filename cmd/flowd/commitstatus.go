package main

import (
	"context"
	"fmt"
	"strconv"
)

func (c *cli) cmdCommitStatus(ctx context.Context, args []string) int {
	f := newFlags("commit-status", "flowd commit-status RUN", `
Show the commit status run RUN reports to the code host of its commit (viewers of its
pipeline): where it goes, the run's newest state and what became of it (pending: tried again
at the time shown; sent: the host accepted it; failed: the host refused it for good, or gave
no answer within 24 hours), and each attempt's state, time, HTTP status and error. A run
reports one when it builds a commit and its pipeline's source has a status_token.
`+runArgHelp, 1, 1)
	cl, id, code := c.connectRun(ctx, f, args)
	if code >= 0 {
		return code
	}
	s, err := cl.RunCommitStatus(ctx, id)
	if err != nil {
		return c.fail(err)
	}
	if s == nil {
		fmt.Fprintln(c.stdout, "No commit status: the run builds no commit, or its pipeline's source has no status_token.")
		return 0
	}
	fmt.Fprintf(c.stdout, "%s  %s to %s %s@%.12s (context %q, token %s)\n", s.Status, s.State, s.Host, s.Repo, s.SHA, s.Context, s.TokenVariable)
	fmt.Fprintf(c.stdout, "  %s\n  %s\n", s.Description, s.TargetURL)
	if s.SentState != "" && s.SentState != s.State {
		fmt.Fprintf(c.stdout, "  the host shows %s\n", s.SentState)
	}
	if s.NextAttemptAt != nil {
		fmt.Fprintf(c.stdout, "  next attempt %s (gives up %s)\n", fmtTime(s.NextAttemptAt), fmtTime(s.GiveUpAt))
	}
	rows := make([][]string, 0, len(s.History))
	for _, a := range s.History {
		status := "-"
		if a.StatusCode != 0 {
			status = strconv.Itoa(a.StatusCode)
		}
		rows = append(rows, []string{"  " + strconv.Itoa(a.Number), a.State, fmtTime(&a.StartedAt),
			strconv.FormatInt(a.DurationMS, 10) + "ms", status, dash(a.Error)})
	}
	if len(rows) > 0 {
		table(c.stdout, []string{"  ATTEMPT", "STATE", "AT", "TOOK", "HTTP", "ERROR"}, rows)
	}
	return 0
}
