package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/flowd/flowd/internal/client"
	flowrun "github.com/flowd/flowd/internal/run"
)

// varsFlag collects repeated --var KEY=VALUE flags.
type varsFlag map[string]string

func (v varsFlag) String() string {
	keys := slices.Sorted(maps.Keys(v))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + v[k]
	}
	return strings.Join(parts, " ")
}

func (v varsFlag) Set(s string) error {
	k, val, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	if k == "" {
		return fmt.Errorf("empty variable name in %q", s)
	}
	v[k] = val
	return nil
}

func (c *cli) cmdRun(ctx context.Context, args []string) int {
	f := newFlags("run", "flowd run PIPELINE [--var KEY=VALUE …] [--branch B | --tag T] [--commit SHA] [--follow]", `
Start a run of PIPELINE. Each --var overrides the default of a declared variable; keys the
pipeline does not declare are ignored (and named in a warning). With --follow, print the log as
it is written, then the run's final status; the exit status is then 0 only if the run succeeded.

For a pipeline with a Git source, --branch or --tag chooses what to build: the server looks up
its head commit (git ls-remote); --commit builds that exact commit (40 hex digits), alone or
with the branch or tag it belongs to. Without them the run builds the head of the pipeline's
default branch (the first plain name in source.branches, else main).`, 1, 1)
	vars := varsFlag{}
	f.Var(vars, "var", "set variable `KEY=VALUE` (repeatable)")
	var opts client.RunOptions
	f.StringVar(&opts.Branch, "branch", "", "build the head of `BRANCH` (pipelines with a source)")
	f.StringVar(&opts.Tag, "tag", "", "build `TAG` (pipelines with a source)")
	f.StringVar(&opts.Commit, "commit", "", "build exactly commit `SHA` (pipelines with a source)")
	follow := f.followFlags()
	cl, pos, code := c.connectWith(f, args, func([]string) error {
		if opts.Branch != "" && opts.Tag != "" {
			return errors.New("give --branch or --tag, not both")
		}
		return nil
	})
	if code >= 0 {
		return code
	}
	if len(vars) > 0 {
		opts.Variables = vars
	}
	r, ignored, err := cl.RunStart(ctx, pos[0], opts)
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(c.stdout, "run %s %s: %s\n", runName(r), r.Status, dash(r.URL))
	if len(ignored) > 0 {
		c.warn("ignored variables that %s does not declare: %s", pos[0], strings.Join(ignored, ", "))
	}
	if !*follow {
		return 0
	}
	return c.follow(ctx, cl, r.ID, client.LogOptions{})
}

// follow streams the log of run id (as opts ask) to stdout until the run ends, prints its final status on
// stderr, and returns 0 if it succeeded, 1 if not.
func (c *cli) follow(ctx context.Context, cl *client.Client, id int64, opts client.LogOptions) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	opts.Follow = true
	if err := cl.LogText(ctx, id, opts, c.stdout); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(c.stderr, "flowd: stopped following; run %d goes on (stop it with 'flowd cancel %d')\n", id, id)
			return 130
		}
		if errors.As(err, new(*client.Error)) {
			return c.fail(err)
		}
		c.warn("the log stream broke off (%v); waiting for the run to end", err)
	}
	r, err := waitDone(ctx, cl, id)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(c.stderr, "flowd: stopped waiting; run %d goes on (stop it with 'flowd cancel %d')\n", id, id)
			return 130
		}
		return c.fail(err)
	}
	msg := fmt.Sprintf("run %s %s after %s", runName(r), r.Status, fmtDuration(r.Duration(time.Now())))
	if r.Message != "" {
		msg += ": " + r.Message
	}
	fmt.Fprintln(c.stderr, msg)
	if r.Status == flowrun.Success {
		return 0
	}
	return 1
}

// waitDone returns run id once it has a final status. The log stream ends when the run does,
// so this normally answers at once; it polls only if the stream broke off early.
func waitDone(ctx context.Context, cl *client.Client, id int64) (*client.Run, error) {
	for {
		r, err := cl.RunGet(ctx, id)
		if err != nil {
			return nil, err
		}
		if r.Status.Terminal() {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
