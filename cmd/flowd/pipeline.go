package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/flowd/flowd/internal/client"
)

func pipelineCommands() []command {
	return []command{
		{name: "apply", summary: "create a pipeline from a YAML file, or update it", run: (*cli).cmdPipelineApply},
		{name: "ls", summary: "list the pipelines you can see", run: (*cli).cmdPipelineList},
		{name: "show", summary: "show a pipeline: queue, variables, stages, members and YAML", run: (*cli).cmdPipelineShow},
		{name: "schedules", summary: "list a pipeline's schedules, their next fire times and what each fire started", run: (*cli).cmdPipelineSchedules},
		{name: "history", summary: "list the revisions of a pipeline: who saved each, when", run: (*cli).cmdPipelineHistory},
		{name: "restore", summary: "save an old revision's definition as the newest one", run: (*cli).cmdPipelineRestore},
		{name: "rm", summary: "delete a pipeline and its runs", run: (*cli).cmdPipelineRemove},
		{name: "trust", summary: "let a pipeline run where steps run as the server's own user (global admins)", run: (*cli).cmdPipelineTrust},
		{name: "untrust", summary: "take a pipeline's trusted mark away (global admins)", run: (*cli).cmdPipelineUntrust},
	}
}

func (c *cli) cmdPipelineApply(ctx context.Context, args []string) int {
	f := newFlags("pipeline apply", "flowd pipeline apply -f FILE", `
Create the pipeline defined in FILE, or, if a pipeline of that name exists, replace its
definition (a new revision). -f - reads the definition from stdin. Every problem of an invalid
definition is printed as FILE:LINE:COLUMN: MESSAGE.`, 0, 0)
	file := f.String("f", "", "pipeline definition `FILE` (YAML); - for stdin")
	cn := f.connFlags()
	if _, code := c.parse(f, args); code >= 0 {
		return code
	}
	if *file == "" {
		return c.usageError(f, "-f FILE is required")
	}
	var data []byte
	var err error
	shown := *file
	if *file == "-" {
		shown = "<stdin>"
		data, err = io.ReadAll(c.stdin)
	} else {
		data, err = os.ReadFile(*file)
	}
	if err != nil {
		return c.fail(fmt.Errorf("read pipeline definition: %w", err))
	}
	cl, err := c.client(cn)
	if err != nil {
		return c.fail(err)
	}
	pl, created, err := cl.PipelineApply(ctx, data)
	if err != nil {
		var ae *client.Error
		if errors.As(err, &ae) && len(ae.Problems) > 0 {
			for _, p := range ae.Problems {
				fmt.Fprintf(c.stderr, "%s:%s\n", shown, p)
			}
			fmt.Fprintf(c.stderr, "flowd: %s: %s\n", shown, ae.Message)
			return 1
		}
		return c.fail(err)
	}
	verb := "updated"
	if created {
		verb = "created"
	}
	fmt.Fprintf(c.stdout, "pipeline %s %s (revision %d)\n", pl.Name, verb, pl.Revision)
	return 0
}

func (c *cli) cmdPipelineList(ctx context.Context, args []string) int {
	f := newFlags("pipeline ls", "flowd pipeline ls", "List the pipelines you are a member of (all of them for admins), with your role and the last run.", 0, 0)
	cl, _, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	pls, err := cl.PipelineList(ctx)
	if err != nil {
		return c.fail(err)
	}
	if len(pls) == 0 {
		fmt.Fprintln(c.stderr, "no pipelines yet: create one with 'flowd pipeline apply -f FILE'")
		return 0
	}
	rows := make([][]string, 0, len(pls))
	for _, p := range pls {
		last := "-"
		if p.LastRun != nil {
			last = fmt.Sprintf("#%d %s", p.LastRun.Number, p.LastRun.Status)
		}
		rows = append(rows, []string{p.Name, fmt.Sprint(p.Revision), dash(p.Role), last, fmtTime(p.UpdatedAt), dash(p.Description)})
	}
	table(c.stdout, []string{"NAME", "REVISION", "ROLE", "LAST RUN", "UPDATED", "DESCRIPTION"}, rows)
	return 0
}

func (c *cli) cmdPipelineShow(ctx context.Context, args []string) int {
	f := newFlags("pipeline show", "flowd pipeline show NAME [--yaml | --revision N]", `
Show a pipeline: its revision, its queue (runs waiting to start) and queue bound, variables,
stages, members and YAML definition. Secret defaults are masked as ***; applying the YAML back
keeps their stored values. Over the queue bound (queue: in the YAML), webhooks that would start
a run are answered 429 with Retry-After and nothing is stored. --revision N prints the YAML of
revision N alone (flowd pipeline history lists them).`, 1, 1)
	onlyYAML := f.Bool("yaml", false, "print only the YAML definition")
	revision := f.Int64("revision", 0, "print only the YAML of revision `N`")
	cl, pos, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	if *revision > 0 {
		return c.printRevision(ctx, cl, pos[0], *revision)
	}
	pl, err := cl.PipelineGet(ctx, pos[0])
	if err != nil {
		return c.fail(err)
	}
	w := c.stdout
	if *onlyYAML {
		fmt.Fprint(w, pl.YAML)
		if !strings.HasSuffix(pl.YAML, "\n") {
			fmt.Fprintln(w)
		}
		return 0
	}
	members, err := cl.MemberList(ctx, pl.Name)
	if err != nil && !client.IsStatus(err, http.StatusForbidden) {
		return c.fail(err)
	}
	fmt.Fprintf(w, "Pipeline:    %s\n", pl.Name)
	if pl.Description != "" {
		fmt.Fprintf(w, "Description: %s\n", pl.Description)
	}
	fmt.Fprintf(w, "Revision:    %d\n", pl.Revision)
	fmt.Fprintf(w, "Your role:   %s\n", dash(pl.Role))
	fmt.Fprintf(w, "Created:     %s by %s\n", fmtTime(pl.CreatedAt), dash(pl.CreatedBy))
	fmt.Fprintf(w, "Updated:     %s\n", fmtTime(pl.UpdatedAt))
	if pl.Trusted {
		fmt.Fprintf(w, "Trusted:     yes, by %s\n", pl.TrustedBy)
	} else {
		fmt.Fprintln(w, "Trusted:     no")
	}
	if now := queueNow(pl.Queue); now != "" {
		fmt.Fprintf(w, "Queue:       %s\n", now)
	}
	fmt.Fprintf(w, "Queue bound: %s\n", queueBound(pl.Queue))
	printSchedules(w, pl.Schedules)

	fmt.Fprintln(w, "\nVariables:")
	if len(pl.Variables) == 0 {
		fmt.Fprintln(w, "  (none)")
	} else {
		rows := make([][]string, 0, len(pl.Variables))
		for _, v := range pl.Variables {
			def := fmt.Sprintf("%q", v.Default)
			if v.Secret {
				def = "*** (secret)"
			}
			rows = append(rows, []string{"  " + v.Name, def, dash(strings.Join(v.Options, ",")), dash(v.Description)})
		}
		table(w, []string{"  NAME", "DEFAULT", "OPTIONS", "DESCRIPTION"}, rows)
	}

	fmt.Fprintln(w, "\nStages:")
	for _, st := range pl.Stages {
		fmt.Fprintf(w, "  %s\n", st.Name)
		for _, j := range st.Jobs {
			in := ""
			if j.Image != "" {
				in = " in " + j.Image
			}
			fmt.Fprintf(w, "    %s%s: %s\n", j.Name, in, strings.Join(j.Steps, ", "))
		}
	}

	fmt.Fprintln(w, "\nMembers:")
	for _, m := range members {
		fmt.Fprintf(w, "  %s (%s)\n", m.Username, m.Role)
	}
	if len(members) == 0 {
		fmt.Fprintln(w, "  (none)")
	}

	fmt.Fprintln(w, "\nYAML:")
	for _, line := range strings.Split(strings.TrimRight(pl.YAML, "\n"), "\n") {
		fmt.Fprintf(w, "  %s\n", line)
	}
	return 0
}

// queueNow describes a pipeline's queue as the webhook's bound counts it: "3 runs waiting to
// start, about 12 s of work at the recent rate"; "" when the server did not say (a list).
func queueNow(q client.PipelineQueue) string {
	if q.Queued == nil {
		return ""
	}
	s := plural(*q.Queued, "run") + " waiting to start"
	switch {
	case *q.Queued == 0:
	case q.Seconds != nil:
		s += fmt.Sprintf(", about %d s of work at the recent rate", *q.Seconds)
	default:
		s += " (no run ended in the last minute: how long they take is unknown)"
	}
	return s
}

// queueBound describes a pipeline's queue bound (queue: in its YAML) and what a webhook over it
// is answered.
func queueBound(q client.PipelineQueue) string {
	var bounds []string
	if q.MaxRuns > 0 {
		bounds = append(bounds, plural(int64(q.MaxRuns), "run"))
	}
	if q.MaxSeconds > 0 {
		bounds = append(bounds, fmt.Sprintf("%d s of work", q.MaxSeconds))
	}
	if len(bounds) == 0 {
		return "none of its own (queue: in the YAML); the server's (--max-queued-runs) still applies: 503"
	}
	return strings.Join(bounds, " or ") + " (queue: in the YAML); webhooks over it get 429 + Retry-After"
}

// plural is "1 run", "2 runs".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func (c *cli) cmdPipelineRemove(ctx context.Context, args []string) int {
	f := newFlags("pipeline rm", "flowd pipeline rm NAME", "Delete a pipeline with its runs, logs and triggers (pipeline admins).", 1, 1)
	cl, pos, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	return c.done(cl.PipelineDelete(ctx, pos[0]), "pipeline %s deleted", pos[0])
}

const trustHelp = `
A server that cannot run steps as users of their own (it does not run as root, or --step-user
is none) runs only trusted pipelines: their steps run as the server's own OS user and could read
its data folder, secret key and database, so trust a pipeline only if you trust everyone who can
change what its steps run (its admins and, with a Git source, everyone who can push). A pipeline
a global admin creates is trusted; a change saved by anyone else takes the mark away. On a
server whose steps run as users of their own, the mark changes nothing. Global admins only.`

func (c *cli) cmdPipelineTrust(ctx context.Context, args []string) int {
	return c.pipelineTrust(ctx, args, true, "pipeline trust", "flowd pipeline trust NAME", "Mark a pipeline trusted."+trustHelp)
}

func (c *cli) cmdPipelineUntrust(ctx context.Context, args []string) int {
	return c.pipelineTrust(ctx, args, false, "pipeline untrust", "flowd pipeline untrust NAME", "Take a pipeline's trusted mark away."+trustHelp)
}

func (c *cli) pipelineTrust(ctx context.Context, args []string, trusted bool, name, usage, help string) int {
	f := newFlags(name, usage, help, 1, 1)
	cl, pos, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	pl, err := cl.PipelineTrust(ctx, pos[0], trusted)
	if err != nil {
		return c.fail(err)
	}
	if pl.Trusted {
		fmt.Fprintf(c.stdout, "pipeline %s is trusted (by %s)\n", pl.Name, pl.TrustedBy)
	} else {
		fmt.Fprintf(c.stdout, "pipeline %s is no longer trusted\n", pl.Name)
	}
	return 0
}

// printSchedules lists a pipeline's schedules with their next fire times (nothing when it has
// none).
func printSchedules(w io.Writer, list []client.Schedule) {
	if len(list) == 0 {
		return
	}
	fmt.Fprintln(w, "\nSchedules (runs as the user who saved the current revision):")
	for _, sc := range list {
		line := "  " + sc.Cron + " " + sc.Timezone
		if sc.Name != "" {
			line = "  " + sc.Name + ": " + sc.Cron + " " + sc.Timezone
		}
		if sc.Branch != "" {
			line += ", branch " + sc.Branch
		}
		if len(sc.Variables) > 0 {
			keys := slices.Sorted(maps.Keys(sc.Variables))
			var kv []string
			for _, k := range keys {
				kv = append(kv, k+"="+sc.Variables[k])
			}
			line += ", " + strings.Join(kv, " ")
		}
		fmt.Fprintln(w, line)
		loc, err := time.LoadLocation(sc.Timezone)
		if err != nil {
			loc = time.UTC
		}
		var next []string
		for _, t := range sc.Next {
			next = append(next, t.In(loc).Format("2006-01-02 15:04 MST"))
		}
		fmt.Fprintf(w, "    next: %s\n", dash(strings.Join(next, ", ")))
	}
}
