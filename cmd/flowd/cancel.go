package main

import (
	"context"
	"fmt"
)

func (c *cli) cmdCancel(ctx context.Context, args []string) int {
	f := newFlags("cancel", "flowd cancel RUN", `
Cancel run RUN (its id) if it is queued or running (developers of its pipeline). It returns once
the run has stopped: at once for a queued run, when its processes are gone for a running one.`, 1, 1)
	cl, id, code := c.connectID(f, args, "RUN", "run")
	if code >= 0 {
		return code
	}
	r, err := cl.RunCancel(ctx, id)
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(c.stdout, "run %d %s\n", id, r.Status)
	return 0
}
