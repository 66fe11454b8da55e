package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/flowd/flowd/internal/client"
	flowrun "github.com/flowd/flowd/internal/run"
)

func (c *cli) cmdShow(ctx context.Context, args []string) int {
	f := newFlags("show", "flowd show RUN", `
Show run RUN: status, trigger, variables, and its stages, jobs and steps with their statuses,
exit codes and durations.
`+runArgHelp, 1, 1)
	cl, id, code := c.connectRun(ctx, f, args)
	if code >= 0 {
		return code
	}
	r, err := cl.RunGet(ctx, id)
	if err != nil {
		return c.fail(err)
	}
	printRun(c, r, time.Now())
	return 0
}

func printRun(c *cli, r *client.Run, now time.Time) {
	w := c.stdout
	fmt.Fprintf(w, "Run:       %s\n", runName(r))
	fmt.Fprintf(w, "Status:    %s\n", r.Status)
	if r.Message != "" {
		fmt.Fprintf(w, "Message:   %s\n", r.Message)
	}
	if r.Waiting != "" {
		fmt.Fprintf(w, "Waiting:   %s\n", r.Waiting)
	}
	fmt.Fprintf(w, "Trigger:   %s by %s\n", r.Trigger, dash(r.TriggeredBy))
	if f := r.Schedule; f != nil {
		fmt.Fprintf(w, "Schedule:  %s, fired for %s\n", f.Schedule, fmtTime(&f.FireAt))
	}
	fmt.Fprintf(w, "Revision:  %d\n", r.Revision)
	fmt.Fprintf(w, "Created:   %s\n", fmtTime(r.CreatedAt))
	fmt.Fprintf(w, "Started:   %s\n", fmtTime(r.StartedAt))
	fmt.Fprintf(w, "Finished:  %s\n", fmtTime(r.FinishedAt))
	fmt.Fprintf(w, "Duration:  %s\n", fmtDuration(r.Duration(now)))
	if r.URL != "" {
		fmt.Fprintf(w, "URL:       %s\n", r.URL)
	}
	if r.APIURL != "" {
		fmt.Fprintf(w, "API URL:   %s\n", r.APIURL)
	}
	if len(r.Variables) > 0 {
		fmt.Fprintln(w, "Variables:")
		for _, k := range slices.Sorted(maps.Keys(r.Variables)) {
			fmt.Fprintf(w, "  %s=%s\n", k, r.Variables[k])
		}
	}
	if len(r.Stages) == 0 {
		return
	}
	fmt.Fprintln(w)
	var rows [][]string
	for _, st := range r.Stages {
		rows = append(rows, []string{"stage " + st.Name, string(st.Status), "", ""})
		for _, j := range st.Jobs {
			name := "  job " + j.Name
			if j.Container != nil {
				name += " in " + j.Container.Image
			}
			if len(j.RunsOn) > 0 {
				name += " on " + flowrun.FormatLabels(j.RunsOn)
			}
			rows = append(rows, []string{name, string(j.Status), "", fmtDuration(j.Duration(now))})
			if j.Waiting != "" {
				rows = append(rows, []string{"    " + j.Waiting, "", "", ""})
			}
			// A job that ran more than once, or whose runner was lost, shows who held each attempt.
			if len(j.Attempts) > 1 || len(j.Attempts) == 1 && j.Attempts[0].State == "lost" {
				for _, a := range j.Attempts {
					rows = append(rows, []string{fmt.Sprintf("    attempt %d on %s", a.Number, a.Runner), string(a.State), "", ""})
				}
			}
			for _, s := range j.Steps {
				exit := ""
				if s.ExitCode != nil {
					exit = "exit " + strconv.Itoa(*s.ExitCode)
				}
				rows = append(rows, []string{"    step " + s.Name, string(s.Status), exit, fmtDuration(s.Duration(now))})
			}
		}
	}
	table(w, []string{"NAME", "STATUS", "EXIT", "DURATION"}, rows)
}
