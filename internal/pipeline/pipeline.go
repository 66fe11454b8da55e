// Package pipeline parses and validates pipeline definitions (YAML) into a Pipeline. It does no I/O.
//
// A definition is one YAML document (see DESIGN.md, "Pipeline YAML"). Parse reports every problem
// it finds at once, each with the 1-based line and column of the offending node, and never
// panics. Decisions this package makes where DESIGN.md is silent:
//
//   - Unknown keys are errors everywhere (typo protection); the message suggests the closest known
//     key.
//   - Any scalar is accepted where a string is expected and kept as its source text (`abc: 123`
//     gives "123", `x: 1.50` gives "1.50"); null counts as absent. Anchors, aliases and merge keys
//     (`<<: *base`) are followed.
//   - Job names are unique across the whole pipeline, not only within a stage: runs, logs, the API
//     and the UI name a job by its name alone.
//   - A variable with options and no default gets its first option as default.
//   - source.events defaults to [push, tag] when omitted; source.branches omitted means every
//     branch, an explicit empty list means none; source.tags omitted means no tag builds.
//   - Every name in webhook.variables must be declared under variables, so a run's variables are
//     always the declared set.
//   - webhook.filter and every webhook.variables expression are compiled and type-checked as CEL
//     (package rules) when the definition is parsed. A problem inside an expression is reported
//     at its own character when the expression is a plain or quoted scalar on one line, or a
//     literal block (|); otherwise (a folded block, a scalar spread over several lines) at the
//     expression, with the position inside the expression in the message. A filter whose type is
//     known not to be bool, or a variable rule known to give a list, map or null, is a problem
//     too; rules typed only at run time (say, `body.status`) are checked when they run.
//   - queue: {max_runs, max_seconds} takes whole numbers from 0 (no bound) to 1,000,000,000;
//     `queue: {}` is no bound.
//   - Reserved names (FLOWD_*, PATH, HOME) are matched case-insensitively, because environments
//     are case-insensitive on Windows agents.
//   - image: at the top is every job's image unless the job names its own; a job without either
//     runs on the host (Job.Container nil). container: and services: exist per job only, and need
//     an image. An image reference is checked as Docker reads one ([REGISTRY/]PATH[:TAG][@DIGEST],
//     lowercase path, digest sha256 or sha512); variables are not expanded in it.
//   - container.user is a uid or uid:gid only (a name would need the image's /etc/passwd);
//     container.network is bridge or none (never host); cpus from 0.01 to 1024; memory from
//     6Mi (Docker's minimum) in bytes or with a unit k/K, M, G, T (1000-based) or Ki, Mi, Gi, Ti
//     (1024-based), Docker's own m and g refused as ambiguous (ParseMemory).
//   - A service given as a string is named as GitLab names it: the last part of its image's path
//     without tag or digest, with characters a host name cannot hold replaced by '-'
//     (registry.example.com/team/postgres:16 is "postgres"). Service names are lowercase DNS
//     labels, unique in their job, never localhost. A string command is split into words as a
//     shell would, without expansions. A service's env is literal: run variables do not reach it.
//   - runs-on: a mapping of label keys to values, each 1 to 100 characters of A-Z a-z 0-9 . _ / -
//     (so `gpu: true` is the text "true"), at most 32 labels; at the top it is every job's, a
//     job's own runs-on adds to it and wins key by key. A job without labels runs anywhere;
//     `runs-on: {}` asks for nothing (it cannot remove the pipeline's labels).
//   - A YAML syntax error is placed at the character a person must fix (yamlerr.go), not at the
//     line the YAML library names (often the one before, counted from 0): a tab at the tab; a
//     quoted string or flow collection that runs on past its line and makes YAML fail later, when
//     closing it on its line mends that, at its opening quote or bracket; a key indented under a
//     plain value (`description: a` then `  b: c`) at the key; a first line indented more than the
//     top level after it at that line; anything else at the token YAML could not accept. The
//     message keeps the library's words and says where YAML failed when that is elsewhere.
//   - Job.Pos records where each job, its image and its container's cpus and memory are, so that
//     a server's Policy, checked when a definition is saved, can point at them.
package pipeline

import (
	"fmt"
	"github.com/flowd/flowd/internal/commitstatus"
	"maps"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/flowd/flowd/internal/run"
)

// DefaultJobTimeout is a job's timeout when its definition gives none.
const DefaultJobTimeout = 60 * time.Minute

// MaxRetries bounds a job's retry max.
const MaxRetries = 3

// MaxCancelGrace is the longest cancel_grace a job may ask for.
const MaxCancelGrace = 10 * time.Minute

// MaxJobTimeout is the longest timeout a job may ask for.
const MaxJobTimeout = 24 * time.Hour

// Pipeline is a parsed and validated pipeline definition.
type Pipeline struct {
	Name        string
	Description string
	Image       string // every job's image unless it has its own; "" = none
	// RunsOn is the pipeline's runs-on: labels every job asks for (Job.RunsOn has them).
	RunsOn      map[string]string
	Variables   []Variable   // declaration order
	Source      *Source      // nil when absent
	Webhook     *Webhook     // nil when absent
	Concurrency *Concurrency // nil when absent
	Queue       *Queue       // nil when absent
	Schedules   []Schedule   // cron triggers; nil when absent
	Notify      []Notify     // where to POST when a run ends; nil when absent
	Stages      []Stage
}

// Variable is a declared variable. Values are strings; Default is "" when not given (or the first
// option when Options is set).
type Variable struct {
	Name, Default, Description string
	Options                    []string // allowed values; empty = any
	Secret                     bool     // encrypted at rest, masked in logs, never returned by the API
}

// Source is the optional Git source of a pipeline: which repository, and which of its events start
// a run.
type Source struct {
	URL         string
	Branches    []string // globs; nil = every branch, empty non-nil = no branch builds
	Tags        []string // globs; nil = no tag builds
	Paths       []string // optional path globs: only when a changed file matches
	Events      []string // "push", "tag", "pull_request"; [push, tag] when omitted
	Credentials string   // optional: name of a declared secret variable
	// StatusToken names the declared secret variable whose value reports each run's states to
	// the code host as a commit status; "" = no commit statuses. Status is where they go,
	// resolved at parse time from URL and the optional keys status_host, status_api and
	// status_repo; set only with StatusToken.
	StatusToken string
	Status      *commitstatus.Target
}

// Webhook holds the optional rules applied to payloads of other systems.
type Webhook struct {
	Filter    string            // CEL expression source, "" = none (checked at parse time; compile with package rules)
	Variables []WebhookVariable // declaration order
}

// WebhookVariable sets the declared variable Name to the result of the CEL expression Expr.
type WebhookVariable struct{ Name, Expr string }

// Concurrency limits how many runs of the pipeline run at once (YAML keys group,
// cancel_previous, max_running).
type Concurrency struct {
	Group          string // required, non-empty
	CancelPrevious bool   // cancel older queued or running runs of the group when a new one starts
	MaxRunning     int    // 0 = no limit
}

// Queue bounds the pipeline's queued runs (YAML keys max_runs, max_seconds): a webhook
// delivery that would start a run while the pipeline is over a bound is refused (429 with
// Retry-After) and nothing is stored. 0 = no bound.
type Queue struct {
	MaxRuns    int // runs waiting to start
	MaxSeconds int // seconds of work: queued runs at the pipeline's recent completion rate
}

// Stage is a named set of jobs that run in parallel; stages run in order.
type Stage struct {
	Name string
	Jobs []Job
}

// Job is a named list of steps run in order in one workspace.
type Job struct {
	Name    string
	Timeout time.Duration // DefaultJobTimeout when omitted; at most MaxJobTimeout
	// CancelGrace is how long a canceled or timed-out step's processes have between SIGTERM
	// and SIGKILL (cancel_grace); 0 when omitted: the runner's own. At most MaxCancelGrace.
	CancelGrace time.Duration
	Env         map[string]string
	// RetryRunnerLost is how many more attempts the job gets when its runner is lost
	// (retry: {when: [runner_lost], max: N}); 0 = none, at most MaxRetries.
	RetryRunnerLost int
	// Container is how the job runs in a container: its image (its own or the pipeline's)
	// with its container: options and services:; nil runs it on the host.
	Container *run.Container
	// RunsOn are the labels a runner (an agent, a server's slots) must have to take the job:
	// the pipeline's runs-on with the job's own over it, key by key; nil: any runner.
	RunsOn map[string]string
	Steps  []Step
	// Pos is where the job and its parts are in the definition.
	Pos JobPos
}

// Position is a 1-based line and column in a definition; the zero Position is unknown.
type Position struct{ Line, Column int }

// posOf is where n is; the zero Position for nil.
func posOf(n *yaml.Node) Position {
	if n == nil {
		return Position{}
	}
	return Position{Line: n.Line, Column: n.Column}
}

// JobPos is where a job's parts are in its definition: the job (its name), its image (its own
// image: or the pipeline's, zero when none) and its container's cpus and memory (zero when not
// given).
type JobPos struct {
	Job, Image, CPUs, Memory Position
}

// Step is one shell command of a job. Name defaults to the first non-blank line of Run, trimmed and
// cut to 40 characters.
type Step struct{ Name, Run string }

// Problem is one thing wrong with a definition, at a 1-based line and column (0,0 when unknown).
type Problem struct {
	Line, Column int
	Message      string
}

// String returns "line:col: message".
func (p Problem) String() string {
	return fmt.Sprintf("%d:%d: %s", p.Line, p.Column, p.Message)
}

// Error lists every problem of a definition; Error() is one "line:col: message" per line.
type Error struct {
	Problems []Problem
}

// Error implements error.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Variable returns the declared variable called name.
func (p *Pipeline) Variable(name string) (Variable, bool) {
	for _, v := range p.Variables {
		if v.Name == name {
			return v, true
		}
	}
	return Variable{}, false
}

// SecretValues returns the non-empty defaults of the secret variables, in declaration order: the
// strings a log must mask.
func (p *Pipeline) SecretValues() []string {
	var out []string
	for _, v := range p.Variables {
		if v.Secret && v.Default != "" {
			out = append(out, v.Default)
		}
	}
	return out
}

// clone returns a deep copy of p.
func (p *Pipeline) clone() *Pipeline {
	c := *p
	c.RunsOn = maps.Clone(p.RunsOn)
	c.Variables = slices.Clone(p.Variables)
	for i := range c.Variables {
		c.Variables[i].Options = slices.Clone(c.Variables[i].Options)
	}
	if p.Source != nil {
		s := *p.Source
		s.Branches = slices.Clone(s.Branches)
		s.Tags = slices.Clone(s.Tags)
		s.Paths = slices.Clone(s.Paths)
		s.Events = slices.Clone(s.Events)
		if s.Status != nil {
			t := *s.Status
			s.Status = &t
		}
		c.Source = &s
	}
	if p.Webhook != nil {
		w := *p.Webhook
		w.Variables = slices.Clone(w.Variables)
		c.Webhook = &w
	}
	c.Notify = slices.Clone(p.Notify)
	for i := range c.Notify {
		c.Notify[i].On = slices.Clone(c.Notify[i].On)
	}
	c.Schedules = slices.Clone(p.Schedules)
	for i := range c.Schedules {
		c.Schedules[i].Variables = maps.Clone(c.Schedules[i].Variables)
	}
	if p.Concurrency != nil {
		cc := *p.Concurrency
		c.Concurrency = &cc
	}
	if p.Queue != nil {
		q := *p.Queue
		c.Queue = &q
	}
	c.Stages = slices.Clone(p.Stages)
	for i := range c.Stages {
		jobs := slices.Clone(c.Stages[i].Jobs)
		for j := range jobs {
			if jobs[j].Env != nil {
				jobs[j].Env = maps.Clone(jobs[j].Env)
			}
			jobs[j].Container = jobs[j].Container.Clone()
			jobs[j].RunsOn = maps.Clone(jobs[j].RunsOn)
			jobs[j].Steps = slices.Clone(jobs[j].Steps)
		}
		c.Stages[i].Jobs = jobs
	}
	return &c
}
