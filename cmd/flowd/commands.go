package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// command is one entry of a dispatch table: `flowd NAME …` or `flowd NOUN NAME …`.
type command struct {
	name    string
	group   string // heading in the overview; "" for subcommands of a noun
	summary string
	run     func(c *cli, ctx context.Context, args []string) int
}

// commands is the top-level dispatch table, in the order of `flowd --help`. New commands
// (`flowd webhook …`, `flowd deliveries`, `flowd agent`) are one line here and one file each.
func commands() []command {
	return []command{
		{"serve", "Server", "run the flowd server (API, web UI, scheduler, executor)", func(c *cli, ctx context.Context, args []string) int {
			return cmdServe(ctx, args, c.stdout, c.stderr)
		}},
		{"agent", "Server", "run jobs of a server on this machine (a build agent)", func(c *cli, ctx context.Context, args []string) int {
			return cmdAgent(ctx, args, c.stdout, c.stderr, c.getenv)
		}},

		{"login", "Session", "sign in to a server and save an API token", (*cli).cmdLogin},
		{"logout", "Session", "forget the saved server and token", (*cli).cmdLogout},
		{"whoami", "Session", "show the signed-in user", (*cli).cmdWhoami},
		{"passwd", "Session", "change your own password", (*cli).cmdPasswd},

		{"pipeline", "Pipelines", "create, update, list, show and delete pipelines", nounRunner("pipeline", pipelineCommands)},
		{"member", "Pipelines", "set, list and remove the members of a pipeline", nounRunner("member", memberCommands)},

		{"run", "Runs", "start a run of a pipeline, optionally following its log", (*cli).cmdRun},
		{"runs", "Runs", "list the runs of a pipeline", (*cli).cmdRuns},
		{"show", "Runs", "show a run with its stages, jobs and steps", (*cli).cmdShow},
		{"logs", "Runs", "print or follow the log of a run", (*cli).cmdLogs},
		{"cancel", "Runs", "cancel a queued or running run", (*cli).cmdCancel},
		{"notifications", "Runs", "list the notifications of a run and their attempts", (*cli).cmdNotifications},
		{"commit-status", "Runs", "show the commit status a run reports to its code host", (*cli).cmdCommitStatus},

		{"webhook", "Webhooks", "enable, disable, rotate, show and dry-run the webhook of a pipeline", nounRunner("webhook", webhookCommands)},
		{"deliveries", "Webhooks", "list the requests received on the webhook of a pipeline", (*cli).cmdDeliveries},
		{"delivery", "Webhooks", "show a webhook delivery in full, or send it again", (*cli).cmdDelivery},
		{"redeliver", "Webhooks", "send a stored webhook delivery again", (*cli).cmdRedeliver},

		{"user", "Administration", "add, list, disable, enable and remove users (admins)", nounRunner("user", userCommands)},
		{"token", "Administration", "list and revoke your API tokens", nounRunner("token", tokenCommands)},
		{"nodes", "Administration", "list the servers and agents sharing the database, with their heartbeats (admins)", (*cli).cmdNodes},
		{"agent-token", "Administration", "create, list and revoke agent tokens (admins)", nounRunner("agent-token", agentTokenCommands)},
		{"agents", "Administration", "list, pause and resume build agents (admins)", runAgents},

		{"version", "Other", "print the version of flowd", (*cli).cmdVersion},
		{"help", "Other", "explain a command: flowd help COMMAND", nil}, // handled in dispatch
	}
}

const overviewHead = `flowd is a self-hosted CI/CD server whose pipelines any system can start with one HTTP request.

Usage: flowd COMMAND [ARGUMENTS] [FLAGS]
`

const overviewTail = `
Client commands talk to a server: --server and --token on any of them, else FLOWD_SERVER and
FLOWD_TOKEN, else what 'flowd login' saved. Run 'flowd COMMAND --help' for a command's flags.
Exit status: 0 success, 1 an error (or a followed run that did not succeed), 2 a usage error.
`

// run is the whole CLI: it dispatches args to a command and returns the exit status. It reads
// the environment through os.Getenv; tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv, hc: http.DefaultClient}
	return c.dispatch(ctx, args)
}

func (c *cli) dispatch(ctx context.Context, args []string) int {
	if len(args) == 0 {
		c.overview(c.stderr)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help":
		c.overview(c.stdout)
		return 0
	case "help":
		if len(rest) == 0 {
			c.overview(c.stdout)
			return 0
		}
		return c.dispatch(ctx, append(rest, "--help"))
	case "-v", "--version":
		return c.cmdVersion(ctx, nil)
	}
	cmds := commands()
	for _, cmd := range cmds {
		if cmd.name == name && cmd.run != nil {
			return cmd.run(c, ctx, rest)
		}
	}
	return c.unknown("", name, cmds)
}

func (c *cli) overview(w io.Writer) {
	fmt.Fprint(w, overviewHead)
	group := ""
	for _, cmd := range commands() {
		if cmd.group != group {
			group = cmd.group
			fmt.Fprintf(w, "\n%s:\n", group)
		}
		fmt.Fprintf(w, "  %-10s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprint(w, overviewTail)
}

// unknown reports an unknown (sub)command with a suggestion and returns the usage status.
func (c *cli) unknown(noun, name string, cmds []command) int {
	prefix, help := "flowd", "flowd --help"
	if noun != "" {
		prefix, help = "flowd "+noun, "flowd "+noun+" --help"
	}
	if strings.HasPrefix(name, "-") {
		fmt.Fprintf(c.stderr, "%s: unknown flag %q before a command\n", prefix, name)
	} else {
		fmt.Fprintf(c.stderr, "%s: unknown command %q\n", prefix, name)
	}
	best, bestDist := "", 3
	for _, cmd := range cmds {
		if d := distance(name, cmd.name); d < bestDist && cmd.run != nil {
			best, bestDist = cmd.name, d
		}
	}
	if best != "" {
		fmt.Fprintf(c.stderr, "Did you mean '%s %s'?\n", prefix, best)
	}
	fmt.Fprintf(c.stderr, "Run '%s' to see the commands.\n", help)
	return 2
}

// nounRunner returns the runner of a noun with subcommands, e.g. `flowd pipeline apply`.
func nounRunner(noun string, table func() []command) func(*cli, context.Context, []string) int {
	return func(c *cli, ctx context.Context, args []string) int {
		cmds := table()
		usage := func(w io.Writer) {
			fmt.Fprintf(w, "Usage: flowd %s COMMAND [ARGUMENTS] [FLAGS]\n\nCommands:\n", noun)
			for _, cmd := range cmds {
				fmt.Fprintf(w, "  %-8s %s\n", cmd.name, cmd.summary)
			}
			fmt.Fprintf(w, "\nRun 'flowd %s COMMAND --help' for a command's flags.\n", noun)
		}
		if len(args) == 0 {
			fmt.Fprintf(c.stderr, "flowd %s: missing command\n\n", noun)
			usage(c.stderr)
			return 2
		}
		switch args[0] {
		case "-h", "-help", "--help", "help":
			usage(c.stdout)
			return 0
		}
		for _, cmd := range cmds {
			if cmd.name == args[0] {
				return cmd.run(c, ctx, args[1:])
			}
		}
		return c.unknown(noun, args[0], cmds)
	}
}

// distance is the Levenshtein distance of a and b, for "did you mean".
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
