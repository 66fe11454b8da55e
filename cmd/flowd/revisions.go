package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/flowd/flowd/internal/client"
)

func (c *cli) cmdPipelineHistory(ctx context.Context, args []string) int {
	f := newFlags("pipeline history", "flowd pipeline history NAME [--limit N]", `
List the revisions of a pipeline, newest first: every saved definition with who saved it and
when. Show one with flowd pipeline show NAME --revision N; bring one back with
flowd pipeline restore NAME N.`, 1, 1)
	limit := f.Int("limit", 50, "show at most `N` revisions (1 to 200)")
	cl, pos, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	page, err := cl.RevisionList(ctx, pos[0], *limit, 0)
	if err != nil {
		return c.fail(err)
	}
	rows := make([][]string, 0, len(page.Revisions))
	for _, r := range page.Revisions {
		cur := ""
		if r.Current {
			cur = "current"
		}
		rows = append(rows, []string{strconv.FormatInt(r.Revision, 10), fmtTime(&r.CreatedAt), r.CreatedBy, cur})
	}
	table(c.stdout, []string{"REVISION", "SAVED", "BY", ""}, rows)
	if page.NextBefore != nil {
		fmt.Fprintf(c.stdout, "(older revisions: --limit %d)\n", min(*limit*2, 200))
	}
	return 0
}

func (c *cli) cmdPipelineRestore(ctx context.Context, args []string) int {
	f := newFlags("pipeline restore", "flowd pipeline restore NAME REVISION", `
Save the definition of an old revision as the pipeline's new revision (pipeline admins). The
runs and history stay. A secret variable keeps its current value when the current revision has
it, and gets the value saved with REVISION otherwise: a restore brings an old definition back,
never a secret value replaced since.`, 2, 2)
	var rev int64
	cl, pos, code := c.connectWith(f, args, func(pos []string) error {
		var err error
		if rev, err = strconv.ParseInt(pos[1], 10, 64); err != nil || rev < 1 {
			return fmt.Errorf("REVISION must be a revision number as flowd pipeline history lists them, got %q", pos[1])
		}
		return nil
	})
	if code >= 0 {
		return code
	}
	pl, err := cl.RevisionRestore(ctx, pos[0], rev)
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(c.stdout, "pipeline %s: revision %d restored as revision %d\n", pl.Name, rev, pl.Revision)
	return 0
}

// printRevision prints revision rev of pipeline name: its YAML alone, ready for apply -f.
func (c *cli) printRevision(ctx context.Context, cl *client.Client, name string, rev int64) int {
	r, err := cl.RevisionGet(ctx, name, rev)
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprint(c.stdout, r.YAML)
	if !strings.HasSuffix(r.YAML, "\n") {
		fmt.Fprintln(c.stdout)
	}
	return 0
}
