package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/flowd/flowd/internal/client"
)

func (c *cli) cmdLogs(ctx context.Context, args []string) int {
	f := newFlags("logs", "flowd logs RUN [--follow] [--job NAME] [--timestamps] [--no-color]", `
Print the log of run RUN. With --follow (-f), keep printing as the log is written until the
run ends, then print its final status; the exit status is then 0 only if the run succeeded.
Ctrl-C stops following without stopping the run. --job NAME prints only that job's lines (the
jobs of a stage run at once, so their lines mix in the run's log); --timestamps starts each line
with the time it was written (UTC); --no-color leaves out colours and other escape sequences.
`+runArgHelp, 1, 1)
	follow := f.followFlags()
	var opts client.LogOptions
	var job string
	f.StringVar(&job, "job", "", "print only the lines of the job `NAME`")
	f.BoolVar(&opts.Timestamps, "timestamps", false, "start each line with the time it was written")
	f.BoolVar(&opts.StripANSI, "no-color", false, "leave out colours and other terminal escape sequences")
	cl, id, code := c.connectRun(ctx, f, args)
	if code >= 0 {
		return code
	}
	if job != "" {
		var err error
		if opts.Job, err = jobID(ctx, cl, id, job); err != nil {
			return c.fail(err)
		}
	}
	if *follow {
		return c.follow(ctx, cl, id, opts)
	}
	if err := cl.LogText(ctx, id, opts, c.stdout); err != nil {
		return c.fail(err)
	}
	return 0
}

// jobID returns the id of run id's job called name.
func jobID(ctx context.Context, cl *client.Client, id int64, name string) (int64, error) {
	r, err := cl.RunGet(ctx, id)
	if err != nil {
		return 0, err
	}
	var names []string
	for _, st := range r.Stages {
		for _, j := range st.Jobs {
			if j.Name == name {
				return j.ID, nil
			}
			names = append(names, j.Name)
		}
	}
	return 0, fmt.Errorf("run %s has no job %q; its jobs: %s", runName(r), name, strings.Join(names, ", "))
}
