package main

import (
	"context"
)

func (c *cli) cmdLogs(ctx context.Context, args []string) int {
	f := newFlags("logs", "flowd logs RUN [--follow]", `
Print the log of run RUN (its id). With --follow (-f), keep printing as the log is written
until the run ends, then print its final status; the exit status is then 0 only if the run
succeeded. Ctrl-C stops following without stopping the run.`, 1, 1)
	var follow bool
	f.BoolVar(&follow, "follow", false, "follow the log until the run ends")
	f.BoolVar(&follow, "f", false, "short for --follow")
	cn := f.connFlags()
	pos, code := c.parse(f, args)
	if code >= 0 {
		return code
	}
	id, ok := parseRunID(pos[0])
	if !ok {
		return c.usageError(f, "RUN must be a run id (a number), got %q", pos[0])
	}
	cl, err := c.client(cn)
	if err != nil {
		return c.fail(err)
	}
	if follow {
		return c.follow(ctx, cl, id)
	}
	if err := cl.Log(ctx, id, false, c.stdout); err != nil {
		return c.fail(err)
	}
	return 0
}
