package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	flowrun "github.com/flowd/flowd/internal/run"
)

// The administration of build agents: `flowd agent-token …` and `flowd agents …`. (`flowd
// agent` itself runs an agent: agent.go.)

func agentTokenCommands() []command {
	return []command{
		{name: "create", summary: "create an agent token (shown once)", run: (*cli).cmdAgentTokenCreate},
		{name: "list", summary: "list the agent tokens", run: (*cli).cmdAgentTokenList},
		{name: "revoke", summary: "revoke an agent token; its agents' running jobs are canceled", run: (*cli).cmdAgentTokenRevoke},
	}
}

func (c *cli) cmdAgentTokenCreate(ctx context.Context, args []string) int {
	f := newFlags("agent-token create", "flowd agent-token create --name NAME [--labels k=v,…]", `
Create an agent token (global admins only): the secret a build agent authenticates with
('flowd agent --token-file FILE'). It is printed only this once: keep it in a file readable only
by the agent's user. With --labels, its agents may only give those labels (each key with that
value); without, any.`, 0, 0)
	var name, labels string
	f.StringVar(&name, "name", "", "the token's `NAME` (letters, digits and . _ -), e.g. the agent's host")
	f.StringVar(&labels, "labels", "", "the `k=v,…` labels its agents may give")
	var lm map[string]string
	cl, _, code := c.connectWith(f, args, func([]string) error {
		if name == "" {
			return fmt.Errorf("--name is required")
		}
		var err error
		lm, err = flowrun.ParseLabels(labels)
		return err
	})
	if code >= 0 {
		return code
	}
	t, err := cl.AgentTokenCreate(ctx, name, lm)
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintln(c.stdout, t.Token)
	fmt.Fprintf(c.stderr, "created the agent token %s; it is shown only this once. Start an agent with it:\n"+
		"  flowd agent --server URL --token-file FILE --name %s\n", t.Name, t.Name)
	return 0
}

func (c *cli) cmdAgentTokenList(ctx context.Context, args []string) int {
	f := newFlags("agent-token list", "flowd agent-token list", "List the agent tokens, revoked ones too (global admins only).", 0, 0)
	cl, _, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	toks, err := cl.AgentTokenList(ctx)
	if err != nil {
		return c.fail(err)
	}
	rows := make([][]string, 0, len(toks))
	for _, t := range toks {
		rows = append(rows, []string{t.Name, dash(flowrun.FormatLabels(t.Labels)), strconv.Itoa(t.Agents), dash(t.CreatedBy),
			fmtTime(&t.CreatedAt), fmtTime(t.RevokedAt)})
	}
	table(c.stdout, []string{"NAME", "LABELS", "AGENTS", "CREATED BY", "CREATED", "REVOKED"}, rows)
	return 0
}

func (c *cli) cmdAgentTokenRevoke(ctx context.Context, args []string) int {
	f := newFlags("agent-token revoke", "flowd agent-token revoke NAME", `
Revoke the agent token NAME (global admins only): its agents' next calls are refused and they
stop, and the jobs they run are canceled at once.`, 1, 1)
	cl, pos, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	out, err := cl.AgentTokenRevoke(ctx, pos[0])
	if err != nil {
		return c.fail(err)
	}
	return c.done(nil, "agent token %s revoked; %d running job(s) of its agents canceled", out.AgentToken.Name, out.JobsCanceled)
}

func agentsCommands() []command {
	return []command{
		{name: "list", summary: "list the registered agents (the default)", run: (*cli).cmdAgentsList},
		{name: "pause", summary: "pause an agent: it claims no new job", run: agentsPause(true)},
		{name: "resume", summary: "resume a paused agent", run: agentsPause(false)},
	}
}

// runAgents is `flowd agents`: the list without a subcommand (or with only flags), else the
// subcommand.
func runAgents(c *cli, ctx context.Context, args []string) int {
	if len(args) == 0 || (strings.HasPrefix(args[0], "-") && !slices.Contains([]string{"-h", "-help", "--help"}, args[0])) {
		return c.cmdAgentsList(ctx, args)
	}
	return nounRunner("agents", agentsCommands)(c, ctx, args)
}

func (c *cli) cmdAgentsList(ctx context.Context, args []string) int {
	f := newFlags("agents", "flowd agents list (or flowd agents)", `
List the registered build agents (global admins only): each one's token, labels, capacity,
version and whether it is paused. 'flowd nodes' shows their heartbeats and running jobs.`, 0, 0)
	cl, _, code := c.connect(f, args)
	if code >= 0 {
		return code
	}
	as, err := cl.AgentList(ctx)
	if err != nil {
		return c.fail(err)
	}
	rows := make([][]string, 0, len(as))
	for _, a := range as {
		rows = append(rows, []string{a.Name, a.Token, dash(flowrun.FormatLabels(a.Labels)), strconv.Itoa(a.Capacity), dash(a.Version), yesNo(a.Paused)})
	}
	table(c.stdout, []string{"NAME", "TOKEN", "LABELS", "CAPACITY", "VERSION", "PAUSED"}, rows)
	return 0
}

func agentsPause(paused bool) func(c *cli, ctx context.Context, args []string) int {
	verb, help := "resume", "Resume the agent NAME (global admins only): it claims jobs again."
	if paused {
		verb, help = "pause", "Pause the agent NAME (global admins only): it claims no new job; the jobs it runs go on."
	}
	return func(c *cli, ctx context.Context, args []string) int {
		f := newFlags("agents "+verb, "flowd agents "+verb+" NAME", help, 1, 1)
		cl, pos, code := c.connect(f, args)
		if code >= 0 {
			return code
		}
		_, err := cl.AgentPause(ctx, pos[0], paused)
		return c.done(err, "agent %s %sd", pos[0], verb)
	}
}
