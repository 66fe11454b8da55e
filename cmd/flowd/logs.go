package main

import (
	"context"
)

func (c *cli) cmdLogs(ctx context.Context, args []string) int {
	f := newFlags("logs", "flowd logs RUN [--follow]", `
Print the log of run RUN. With --follow (-f), keep printing as the log is written until the
run ends, then print its final status; the exit status is then 0 only if the run succeeded.
Ctrl-C stops following without stopping the run.
`+runArgHelp, 1, 1)
	follow := f.followFlags()
	cl, id, code := c.connectRun(ctx, f, args)
	if code >= 0 {
		return code
	}
	if *follow {
		return c.follow(ctx, cl, id)
	}
	if err := cl.Log(ctx, id, false, c.stdout); err != nil {
		return c.fail(err)
	}
	return 0
}
