package main

import (
	"context"
	"fmt"
)

func (c *cli) cmdCancel(ctx context.Context, args []string) int {
	f := newFlags("cancel", "flowd cancel RUN", `
Cancel run RUN if it is queued or running (developers of its pipeline). It returns once the run
has stopped: at once for a queued run, when its processes are gone for a running one.
`+runArgHelp, 1, 1)
	cl, id, code := c.connectRun(ctx, f, args)
	if code >= 0 {
		return code
	}
	r, err := cl.RunCancel(ctx, id)
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(c.stdout, "run %s %s\n", runName(r), r.Status)
	return 0
}
