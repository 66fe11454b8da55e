package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	flowrun "github.com/flowd/flowd/internal/run"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/flowd/flowd/internal/agent"
	"github.com/flowd/flowd/internal/config"
)

const agentUsage = `Usage: flowd agent --server URL --token-file FILE [flags]

Run jobs of a flowd server on this machine: register with the server as an agent, claim jobs
whose runs-on labels this agent's --labels match, up to --capacity at once, and run each with
the executors flowd serve uses (steps as processes, as users of their own when run as root;
jobs with an image in Docker containers when a daemon answers). Logs are kept in --work-dir
until the server has them, so a server away for minutes loses no line.
The agent token comes from --token-file or FLOWD_AGENT_TOKEN (create one with 'flowd
agent-token create'); it is never printed. Every flag can also be set as FLOWD_AGENT_<FLAG>
(e.g. FLOWD_AGENT_SERVER, FLOWD_AGENT_CAPACITY).
SIGTERM or SIGINT drains: no new jobs, the running ones finish, then it exits 0. A second
signal cancels the running jobs (finished as canceled) and exits. A token the server refuses
(revoked) kills the running jobs and exits with status 1.

Flags:
`

// cmdAgent runs `flowd agent`.
func cmdAgent(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	cfg := agent.Config{Capacity: 1, StepUser: "auto", Version: binaryVersion()}
	host, _ := os.Hostname()
	cfg.Name = agentName(host)
	var (
		tokenFile          string
		labels             string
		maxJobLog          = config.Size(agent.DefaultMaxJobLog)
		logBuffer          = config.Size(agent.DefaultLogBuffer)
		containerMaxMemory config.Size
		containerMaxCPUs   float64
		containerPids      int64  = 4096
		logLevel                  = "info"
		workDir            string = ""
	)
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), agentUsage)
		fs.PrintDefaults()
	}
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout)
		}
	}
	fs.StringVar(&cfg.Server, "server", "", "`URL` of a flowd server (FLOWD_AGENT_SERVER)")
	fs.StringVar(&tokenFile, "token-file", "", "`file` holding the agent token (FLOWD_AGENT_TOKEN_FILE); else FLOWD_AGENT_TOKEN holds the token itself")
	fs.StringVar(&cfg.Name, "name", cfg.Name, "`name` of this agent, unique per token: letters, digits and . _ - (FLOWD_AGENT_NAME)")
	fs.StringVar(&labels, "labels", "", "this agent's labels, `k=v,…` (FLOWD_AGENT_LABELS); jobs with runs-on run only where every label matches")
	fs.IntVar(&cfg.Capacity, "capacity", cfg.Capacity, "`jobs` run at once, 1-256 (FLOWD_AGENT_CAPACITY)")
	fs.StringVar(&workDir, "work-dir", "", "`folder` of the job workspaces and log buffers, one agent's alone (FLOWD_AGENT_WORK_DIR); default /var/tmp/flowd-agent-<name>")
	fs.StringVar(&cfg.StepUser, "step-user", cfg.StepUser, "who runs steps on this host: auto, none, or a uid range FIRST-LAST, each job a uid of its own (FLOWD_AGENT_STEP_USER); auto = a range of its own when run as root, else none")
	fs.Var(&maxJobLog, "max-job-log", "largest `size` of one job's log, e.g. 64MiB; past it the first and last halves are kept (FLOWD_AGENT_MAX_JOB_LOG)")
	fs.Var(&logBuffer, "log-buffer", "most log bytes, a `size`, kept that the server has not acknowledged; past it jobs' output waits (FLOWD_AGENT_LOG_BUFFER)")
	fs.Float64Var(&containerMaxCPUs, "container-max-cpus", 0, "most `CPUs` a job's container gets or may ask for; 0 = no bound (FLOWD_AGENT_CONTAINER_MAX_CPUS)")
	fs.Var(&containerMaxMemory, "container-max-memory", "most memory a job's container gets or may ask for, a `size` such as 2GiB; 0 = no bound (FLOWD_AGENT_CONTAINER_MAX_MEMORY)")
	fs.Int64Var(&containerPids, "container-pids", containerPids, "most `processes` in a job's container (FLOWD_AGENT_CONTAINER_PIDS)")
	fs.StringVar(&logLevel, "log-level", logLevel, "`level` of the agent's own log on stderr: debug, info, warn or error (FLOWD_AGENT_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "flowd agent: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var errs []error
	if err := config.EnvApplier(fs, "FLOWD_AGENT_", getenv)(); err != nil {
		errs = append(errs, err)
	}
	var err error
	if cfg.Labels, err = flowrun.ParseLabels(labels); err != nil {
		errs = append(errs, fmt.Errorf("--labels: %w", err))
	}
	switch {
	case tokenFile != "":
		data, err := os.ReadFile(tokenFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("--token-file: %w", err))
		}
		cfg.Token = strings.TrimSpace(string(data))
		if err == nil && cfg.Token == "" {
			errs = append(errs, fmt.Errorf("--token-file %s is empty: put the agent token from 'flowd agent-token create' in it", tokenFile))
		}
	default:
		cfg.Token = strings.TrimSpace(getenv("FLOWD_AGENT_TOKEN"))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		errs = append(errs, fmt.Errorf("--log-level must be debug, info, warn or error, got %q", logLevel))
	}
	if workDir == "" {
		workDir = "/var/tmp/flowd-agent-" + cfg.Name
	}
	cfg.WorkDir = workDir
	cfg.MaxJobLog, cfg.LogBuffer = int64(maxJobLog), int64(logBuffer)
	cfg.Containers.MaxCPUs, cfg.Containers.MaxMemory, cfg.Containers.Pids = containerMaxCPUs, int64(containerMaxMemory), containerPids
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		fmt.Fprintf(stderr, "flowd agent: %v\n", errors.Join(errs...))
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	drain, kill, stop := agent.Signals(ctx, logger)
	defer stop()
	if err := agent.Run(drain, kill, cfg, logger); err != nil {
		logger.Error("flowd agent stopped", "err", err)
		return 1
	}
	return 0
}

// agentName is the default --name: the host name with what a name may not hold replaced.
func agentName(host string) string {
	if host == "" {
		return "agent"
	}
	b := []byte(host)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > 100 {
		b = b[:100]
	}
	return string(b)
}
