package pipeline

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// designExample is the example of DESIGN.md's "Pipeline YAML" section, verbatim.
const designExample = `name: hello                      # [a-z0-9][a-z0-9-]{0,62}, unique
description: Say hello
variables:                       # defaults; values are strings
  abc: "123"
  TARGET:
    default: staging
    options: [staging, production]   # optional: allowed values
    description: Where to deploy
  API_KEY:
    secret: true                 # encrypted at rest, masked in logs, never returned by the API
    default: ""
source:                          # optional Git source (pipeline source webhook)
  url: https://git.example.com/acme/app.git
  branches: ["main", "release/*"]    # globs; omitted = every branch
  tags: ["v*"]                       # globs; omitted = no tag builds
  paths: ["src/**"]                  # optional: only when a changed file matches
webhook:                         # optional rules for payloads of other systems
  filter: 'body.status == "firing"'          # CEL; false → delivery skipped, no run
  variables:
    SERVICE: 'body.alerts[0].labels.service' # CEL; result becomes the variable's value
stages:
  - name: build
    jobs:
      - name: say
        timeout: 10m
        env: {GREETING: hi}
        steps:
          - name: echo
            run: echo "abc=$abc"
`

// designExampleDeclared is designExample with SERVICE declared, as webhook.variables requires.
var designExampleDeclared = strings.Replace(designExample, "    default: \"\"\n", "    default: \"\"\n  SERVICE: \"\"\n", 1)

// problems returns err's problems as "line:col: message" strings, failing t when err is not an
// *Error.
func problems(t *testing.T, err error) []string {
	t.Helper()
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("error = %v (%T), want *Error", err, err)
	}
	out := make([]string, len(perr.Problems))
	for i, p := range perr.Problems {
		out[i] = p.String()
	}
	return out
}

func TestParseDesignExample(t *testing.T) {
	t.Parallel()
	got, err := Parse([]byte(designExampleDeclared))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &Pipeline{
		Name:        "hello",
		Description: "Say hello",
		Variables: []Variable{
			{Name: "abc", Default: "123"},
			{Name: "TARGET", Default: "staging", Options: []string{"staging", "production"}, Description: "Where to deploy"},
			{Name: "API_KEY", Secret: true},
			{Name: "SERVICE"},
		},
		Source: &Source{
			URL:      "https://git.example.com/acme/app.git",
			Branches: []string{"main", "release/*"},
			Tags:     []string{"v*"},
			Paths:    []string{"src/**"},
			Events:   []string{"push", "tag"},
		},
		Webhook: &Webhook{
			Filter:    `body.status == "firing"`,
			Variables: []WebhookVariable{{Name: "SERVICE", Expr: "body.alerts[0].labels.service"}},
		},
		Stages: []Stage{{
			Name: "build",
			Jobs: []Job{{
				Name:    "say",
				Timeout: 10 * time.Minute,
				Env:     map[string]string{"GREETING": "hi"},
				Steps:   []Step{{Name: "echo", Run: `echo "abc=$abc"`}},
				Pos:     JobPos{Job: Position{Line: 25, Column: 15}},
			}},
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse =\n%#v\nwant\n%#v", got, want)
	}
}

// TestParseDesignExampleVerbatim pins the one rule DESIGN.md's example breaks: SERVICE is set by
// webhook.variables without being declared.
func TestParseDesignExampleVerbatim(t *testing.T) {
	t.Parallel()
	p, err := Parse([]byte(designExample))
	if p != nil {
		t.Errorf("Parse returned a pipeline with an error")
	}
	got := problems(t, err)
	want := []string{`20:5: webhook.variables.SERVICE: "SERVICE" is not a declared variable: declare it under variables`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems = %q, want %q", got, want)
	}
}

// minimal is the smallest valid definition; tests append to it.
const minimal = "name: x\nstages:\n  - name: s\n    jobs:\n      - name: j\n        steps:\n          - run: make\n"

func TestParseValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		src   string
		check func(t *testing.T, p *Pipeline)
	}{
		{"defaults", minimal, func(t *testing.T, p *Pipeline) {
			want := &Pipeline{Name: "x", Stages: []Stage{{Name: "s", Jobs: []Job{{Name: "j", Timeout: DefaultJobTimeout, Steps: []Step{{Name: "make", Run: "make"}}, Pos: JobPos{Job: Position{Line: 5, Column: 15}}}}}}}
			if !reflect.DeepEqual(p, want) {
				t.Errorf("got %#v, want %#v", p, want)
			}
		}},
		{"scalar variables keep their text", "variables:\n  a: 123\n  b: true\n  c: 1.50\n  d: 0x1F\n  e:\n  f: ~\n  g: {default: 7}\n" + minimal, func(t *testing.T, p *Pipeline) {
			want := []Variable{{Name: "a", Default: "123"}, {Name: "b", Default: "true"}, {Name: "c", Default: "1.50"}, {Name: "d", Default: "0x1F"}, {Name: "e"}, {Name: "f"}, {Name: "g", Default: "7"}}
			if !reflect.DeepEqual(p.Variables, want) {
				t.Errorf("variables = %#v, want %#v", p.Variables, want)
			}
		}},
		{"options without default take the first", "variables:\n  T: {options: [a, b]}\n" + minimal, func(t *testing.T, p *Pipeline) {
			if v, _ := p.Variable("T"); v.Default != "a" {
				t.Errorf("default = %q, want a", v.Default)
			}
		}},
		{"step name from first line of run, cut to 40", strings.Replace(minimal, "run: make", "run: |\n\n              echo 0123456789012345678901234567890123456789xyz\n              echo two", 1), func(t *testing.T, p *Pipeline) {
			if got := p.Stages[0].Jobs[0].Steps[0].Name; got != "echo 01234567890123456789012345678901234" {
				t.Errorf("step name = %q", got)
			}
		}},
		{"retry when the runner is lost", strings.Replace(minimal, "        steps:", "        retry: {when: [runner_lost], max: 2}\n        steps:", 1), func(t *testing.T, p *Pipeline) {
			if got := p.Stages[0].Jobs[0].RetryRunnerLost; got != 2 {
				t.Errorf("RetryRunnerLost = %d, want 2", got)
			}
		}},
		{"cancel_grace", strings.Replace(minimal, "        steps:", "        cancel_grace: 30s\n        steps:", 1), func(t *testing.T, p *Pipeline) {
			if g := p.Stages[0].Jobs[0].CancelGrace; g != 30*time.Second {
				t.Errorf("cancel_grace = %v, want 30s", g)
			}
		}},
		{"timeout and env", strings.Replace(minimal, "        steps:", "        timeout: 24h\n        env: {A: 1, B: x}\n        steps:", 1), func(t *testing.T, p *Pipeline) {
			j := p.Stages[0].Jobs[0]
			if j.Timeout != 24*time.Hour || !reflect.DeepEqual(j.Env, map[string]string{"A": "1", "B": "x"}) {
				t.Errorf("job = %#v", j)
			}
		}},
		{"source events, credentials, empty branches", "variables:\n  TOKEN: {secret: true, default: s3}\nsource:\n  url: u\n  branches: []\n  events: [pull_request]\n  credentials: TOKEN\n" + minimal, func(t *testing.T, p *Pipeline) {
			want := &Source{URL: "u", Branches: []string{}, Events: []string{"pull_request"}, Credentials: "TOKEN"}
			if !reflect.DeepEqual(p.Source, want) {
				t.Errorf("source = %#v, want %#v", p.Source, want)
			}
			if got := p.SecretValues(); !reflect.DeepEqual(got, []string{"s3"}) {
				t.Errorf("SecretValues = %q", got)
			}
		}},
		{"concurrency", "concurrency: {group: deploy, cancel_previous: true, max_running: 2}\n" + minimal, func(t *testing.T, p *Pipeline) {
			want := &Concurrency{Group: "deploy", CancelPrevious: true, MaxRunning: 2}
			if !reflect.DeepEqual(p.Concurrency, want) {
				t.Errorf("concurrency = %#v, want %#v", p.Concurrency, want)
			}
		}},
		{"queue", "queue: {max_runs: 500, max_seconds: 30}\n" + minimal, func(t *testing.T, p *Pipeline) {
			if want := (&Queue{MaxRuns: 500, MaxSeconds: 30}); !reflect.DeepEqual(p.Queue, want) {
				t.Errorf("queue = %#v, want %#v", p.Queue, want)
			}
			if c := p.clone(); c.Queue == p.Queue || *c.Queue != *p.Queue {
				t.Errorf("clone shares or changes the queue: %#v", c.Queue)
			}
		}},
		{"queue of zeros and null", "queue: {max_runs: 0, max_seconds: ~}\n" + minimal, func(t *testing.T, p *Pipeline) {
			if want := (&Queue{}); !reflect.DeepEqual(p.Queue, want) {
				t.Errorf("queue = %#v, want %#v", p.Queue, want)
			}
		}},
		{"anchors, aliases and merge keys", "name: x\nstages:\n  - name: s\n    jobs:\n      - &base\n        name: a\n        timeout: 5m\n        steps: [{run: make}]\n      - <<: *base\n        name: b\n", func(t *testing.T, p *Pipeline) {
			jobs := p.Stages[0].Jobs
			if len(jobs) != 2 || jobs[1].Name != "b" || jobs[1].Timeout != 5*time.Minute || jobs[1].Steps[0].Run != "make" {
				t.Errorf("jobs = %#v", jobs)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := Parse([]byte(tt.src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, p)
		})
	}
}

func TestParseInvalid(t *testing.T) {
	t.Parallel()
	job := func(extra string) string {
		return "name: x\nstages:\n  - name: s\n    jobs:\n      - name: j\n" + extra
	}
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"empty", "", []string{"0:0: definition is empty"}},
		{"only a comment", "# nothing\n", []string{"0:0: definition is empty"}},
		{"null document", "~\n", []string{"1:1: definition is empty"}},
		{"not a mapping", "- a\n- b\n", []string{"1:1: definition must be a mapping, not a sequence"}},
		{"scalar document", "hello\n", []string{"1:1: definition must be a mapping, not a value"}},
		{"malformed", "name: x\nstages: [\n", []string{"2:9: invalid YAML: did not find expected node content (the '[' here is never closed)"}},
		{"bad indentation", "name: x\n  stages: 1\n", []string{"2:3: invalid YAML: mapping values are not allowed in this context (this line is indented more than line 1, so it continues line 1's value)"}},
		{"two documents", minimal + "---\nname: y\n", []string{"8:1: only one YAML document is allowed"}},
		{"missing name and stages", "description: d\n", []string{"1:1: name: is required", "1:1: stages: at least one stage is required"}},
		{"empty name", "name: ''\n" + minimal[8:], []string{"1:1: name: is required"}},
		{"invalid name", "name: Hello_World\n" + minimal[8:], []string{`1:7: name: "Hello_World" is not a valid pipeline name: use 1 to 63 lowercase letters, digits and '-', starting with a letter or digit`}},
		{"name of wrong type", "name: [a]\n" + minimal[8:], []string{"1:7: name: must be a string, not a sequence"}},
		{"unknown top-level key with suggestion", "nmae: x\n" + minimal, []string{`1:1: nmae: unknown key (did you mean "name"?)`}},
		{"unknown key without suggestion", minimal + "foo: 1\n", []string{"8:1: foo: unknown key (known keys: name, description, image, runs-on, variables, source, webhook, concurrency, queue, schedules, notify, stages)"}},
		{"duplicate key", minimal + "name: y\n", []string{"8:1: name: duplicate key (first at line 1)"}},
		{"unknown job key", job("        step: []\n        steps: [{run: a}]\n"), []string{`6:9: stages[0].jobs[0].step: unknown key (did you mean "steps"?)`}},
		{"variables not a mapping", "variables: [a]\n" + minimal, []string{"1:12: variables: must be a mapping, not a sequence"}},
		{"invalid variable name", "variables: {1a: x}\n" + minimal, []string{"1:13: variables.1a: invalid variable name: use letters, digits and '_', not starting with a digit"}},
		{"reserved variable names", "variables:\n  FLOWD_X: 1\n  flowd_y: 2\n  PATH: 3\n  HOME: 4\n" + minimal, []string{
			"2:3: variables.FLOWD_X: reserved name: FLOWD_*, PATH and HOME are set by flowd",
			"3:3: variables.flowd_y: reserved name: FLOWD_*, PATH and HOME are set by flowd",
			"4:3: variables.PATH: reserved name: FLOWD_*, PATH and HOME are set by flowd",
			"5:3: variables.HOME: reserved name: FLOWD_*, PATH and HOME are set by flowd",
		}},
		{"duplicate variable", "variables:\n  a: 1\n  a: 2\n" + minimal, []string{"3:3: variables.a: duplicate key (first at line 2)"}},
		{"default not in options", "variables:\n  T:\n    default: dev\n    options: [staging, production]\n" + minimal, []string{`3:14: variables.T.default: "dev" is not one of the options (staging, production)`}},
		{"empty options", "variables:\n  T: {options: []}\n" + minimal, []string{"2:16: variables.T.options: must list at least one value (omit it to allow any value)"}},
		{"duplicate option", "variables:\n  T: {options: [a, a]}\n" + minimal, []string{`2:20: variables.T.options[1]: duplicate option "a"`}},
		{"unknown variable key", "variables:\n  T: {defualt: a}\n" + minimal, []string{`2:7: variables.T.defualt: unknown key (did you mean "default"?)`}},
		{"variable of wrong type", "variables:\n  T: [a]\n" + minimal, []string{"2:6: variables.T: must be a value or a mapping with default, options, description and secret, not a sequence"}},
		{"secret not a bool", "variables:\n  T: {secret: yes}\n" + minimal, []string{"2:15: variables.T.secret: must be true or false"}},
		{"no stages", "name: x\nstages: []\n", []string{"2:9: stages: at least one stage is required"}},
		{"null stages", "name: x\nstages:\n", []string{"2:1: stages: at least one stage is required"}},
		{"stages not a sequence", "name: x\nstages: {a: 1}\n", []string{"2:9: stages: must be a sequence, not a mapping"}},
		{"stage without name and jobs", "name: x\nstages:\n  - {}\n", []string{"3:5: stages[0].name: is required", "3:5: stages[0].jobs: at least one job is required"}},
		{"null stage item (fuzz)", "name: 0\nstages:\n-", []string{"3:2: stages[0]: must be a mapping, not null"}},
		{"null job and step items", "name: x\nstages:\n  - name: s\n    jobs: [~]\n  - name: t\n    jobs: [{name: j, steps: [null]}]\n", []string{
			"4:12: stages[0].jobs[0]: must be a mapping, not null",
			"6:30: stages[1].jobs[0].steps[0]: must be a mapping, not null",
		}},
		{"stage with empty jobs", "name: x\nstages:\n  - name: s\n    jobs: []\n", []string{"4:11: stages[0].jobs: at least one job is required"}},
		{"stage not a mapping", "name: x\nstages:\n  - build\n", []string{"3:5: stages[0]: must be a mapping, not a value"}},
		{"duplicate stage", minimal + "  - name: s\n    jobs: [{name: k, steps: [{run: a}]}]\n", []string{`8:11: stages[1].name: duplicate stage name "s" (first at line 3)`}},
		{"duplicate job in stage", job("        steps: [{run: a}]\n      - name: j\n        steps: [{run: b}]\n"), []string{`7:15: stages[0].jobs[1].name: duplicate job name "j" (first at line 5)`}},
		{"duplicate job across stages", minimal + "  - name: t\n    jobs: [{name: j, steps: [{run: a}]}]\n", []string{`9:19: stages[1].jobs[0].name: duplicate job name "j" (first at line 5)`}},
		{"job without steps", job(""), []string{"5:9: stages[0].jobs[0].steps: at least one step is required"}},
		{"job with empty steps", job("        steps: []\n"), []string{"6:16: stages[0].jobs[0].steps: at least one step is required"}},
		{"job without name", "name: x\nstages:\n  - name: s\n    jobs:\n      - steps: [{run: a}]\n", []string{"5:9: stages[0].jobs[0].name: is required"}},
		{"step without run", job("        steps:\n          - name: n\n"), []string{"7:13: stages[0].jobs[0].steps[0].run: is required"}},
		{"step with blank run", job("        steps:\n          - run: '  '\n"), []string{"7:18: stages[0].jobs[0].steps[0].run: is required"}},
		{"step run of wrong type", job("        steps:\n          - run: [a]\n"), []string{"7:18: stages[0].jobs[0].steps[0].run: must be a string, not a sequence"}},
		{"bad timeout", job("        timeout: soon\n        steps: [{run: a}]\n"), []string{`6:18: stages[0].jobs[0].timeout: invalid duration "soon": use a number and a unit, e.g. 90s, 10m or 1h30m`}},
		{"timeout without unit", job("        timeout: 10\n        steps: [{run: a}]\n"), []string{`6:18: stages[0].jobs[0].timeout: invalid duration "10": use a number and a unit, e.g. 90s, 10m or 1h30m`}},
		{"retry on a failed step", job("        retry: {when: [failure], max: 1}\n        steps: [{run: a}]\n"), []string{`6:24: stages[0].jobs[0].retry.when[0]: unknown condition "failure": the only one is runner_lost (the job's runner stopped renewing its lease: a server or agent died)`}},
		{"retry too often", job("        retry: {when: [runner_lost], max: 4}\n        steps: [{run: a}]\n"), []string{`6:43: stages[0].jobs[0].retry.max: must be a whole number from 1 to 3, got "4"`}},
		{"retry without when", job("        retry: {max: 1}\n        steps: [{run: a}]\n"), []string{"6:16: stages[0].jobs[0].retry: needs when: [runner_lost]"}},
		{"zero timeout", job("        timeout: 0s\n        steps: [{run: a}]\n"), []string{"6:18: stages[0].jobs[0].timeout: must be more than 0"}},
		{"timeout over 24h", job("        timeout: 24h1s\n        steps: [{run: a}]\n"), []string{"6:18: stages[0].jobs[0].timeout: must be at most 24h"}},
		{"bad cancel_grace", job("        cancel_grace: later\n        steps: [{run: a}]\n"), []string{`6:23: stages[0].jobs[0].cancel_grace: invalid duration "later": use a number and a unit, e.g. 10s or 1m`}},
		{"cancel_grace under 1s", job("        cancel_grace: 500ms\n        steps: [{run: a}]\n"), []string{"6:23: stages[0].jobs[0].cancel_grace: must be at least 1s (the time a canceled step has between SIGTERM and SIGKILL)"}},
		{"cancel_grace over 10m", job("        cancel_grace: 11m\n        steps: [{run: a}]\n"), []string{"6:23: stages[0].jobs[0].cancel_grace: must be at most 10m0s"}},
		{"env keys", job("        env: {PATH: /x, 9A: b, FLOWD_RUN_ID: 1, OK: [a]}\n        steps: [{run: a}]\n"), []string{
			"6:15: stages[0].jobs[0].env.PATH: reserved name: FLOWD_*, PATH and HOME are set by flowd",
			"6:25: stages[0].jobs[0].env.9A: invalid variable name: use letters, digits and '_', not starting with a digit",
			"6:32: stages[0].jobs[0].env.FLOWD_RUN_ID: reserved name: FLOWD_*, PATH and HOME are set by flowd",
			"6:53: stages[0].jobs[0].env.OK: must be a string, not a sequence",
		}},
		{"source without url", "source: {branches: [main]}\n" + minimal, []string{"1:9: source.url: is required"}},
		{"source with empty url", "source: {url: ''}\n" + minimal, []string{"1:10: source.url: is required"}},
		{"source bad glob and event", "source:\n  url: u\n  branches: ['[']\n  events: [push, commit, push]\n" + minimal, []string{
			`3:14: source.branches[0]: invalid glob "[": syntax error in pattern`,
			`4:18: source.events[1]: unknown event "commit": use push, tag or pull_request`,
			`4:26: source.events[2]: duplicate event "push"`,
		}},
		{"credentials undeclared", "source: {url: u, credentials: TOKEN}\n" + minimal, []string{`1:31: source.credentials: "TOKEN" is not a declared variable`}},
		{"credentials not secret", "variables: {TOKEN: t}\nsource: {url: u, credentials: TOKEN}\n" + minimal, []string{`2:31: source.credentials: variable "TOKEN" must be secret (secret: true)`}},
		{"webhook variable undeclared and empty", "webhook:\n  variables:\n    SERVICE: ''\n" + minimal, []string{
			`3:5: webhook.variables.SERVICE: "SERVICE" is not a declared variable: declare it under variables`,
			"3:5: webhook.variables.SERVICE: expression is required",
		}},
		{"webhook unknown key", "webhook: {filtre: x}\n" + minimal, []string{`1:11: webhook.filtre: unknown key (did you mean "filter"?)`}},
		{"concurrency", "concurrency: {group: '', max_running: -1, cancel_previous: 1}\n" + minimal, []string{
			"1:15: concurrency.group: is required",
			"1:39: concurrency.max_running: must be 0 (no limit) or more",
			"1:60: concurrency.cancel_previous: must be true or false",
		}},
		{"concurrency without group", "concurrency: {max_running: x}\n" + minimal, []string{
			"1:14: concurrency.group: is required",
			"1:28: concurrency.max_running: must be a whole number",
		}},
		{"queue bounds", "queue:\n  max_runs: -5\n  max_seconds: 1.5\n" + minimal, []string{
			"2:13: queue.max_runs: must be 0 (no bound) or more queued runs, got -5",
			`3:16: queue.max_seconds: must be a whole number of seconds of work (0 = no bound), got "1.5"`,
		}},
		{"queue unknown key and text", "queue: {max_run: 5, max_seconds: soon}\n" + minimal, []string{
			`1:9: queue.max_run: unknown key (did you mean "max_runs"?)`,
			`1:34: queue.max_seconds: must be a whole number of seconds of work (0 = no bound), got "soon"`,
		}},
		{"queue not a mapping", "queue: 100\n" + minimal, []string{"1:8: queue: must be a mapping, not a value"}},
		{"queue too large", "queue: {max_runs: 99999999999}\n" + minimal, []string{"1:19: queue.max_runs: must be at most 1000000000, got 99999999999; use 0 for no bound"}},
		{"unknown alias", "name: *nope\n" + minimal[8:], []string{"1:7: invalid YAML: unknown anchor 'nope' referenced"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := Parse([]byte(tt.src))
			if p != nil {
				t.Errorf("Parse returned a pipeline with an error")
			}
			if got := problems(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestParseYAMLSyntaxErrors: every syntax error is placed at the token that broke the document
// (the YAML library gives a line only, often the one before), or at the quote or bracket that is
// never closed.
func TestParseYAMLSyntaxErrors(t *testing.T) {
	t.Parallel()
	steps := "name: x\nstages:\n  - name: a\n    jobs:\n      - name: j\n        steps:\n"
	tests := []struct {
		name, src, want string
	}{
		{"key indented less than its siblings", "name: x\nstages:\n  - name: a\n   jobs: []\n",
			"4:4: invalid YAML: did not find expected '-' indicator"},
		{"key at the indentation of a sequence", "name: x\nstages:\n  - a\n  b: 1\n",
			"4:3: invalid YAML: did not find expected '-' indicator"},
		{"key between two levels", "name: x\nvariables:\n  a: 1\n b: 2\n",
			"4:2: invalid YAML: did not find expected key"},
		{"text after a block scalar", "name: x\ndescription: |\n  ok\n bad\n",
			"4:2: invalid YAML: did not find expected key"},
		{"colon in a plain value", steps + "          - run: echo a: b\n",
			"7:24: invalid YAML: mapping values are not allowed in this context"},
		{"colon in a plain value, CRLF line ends", "name: x\r\ndescription: a: b\r\n",
			"2:15: invalid YAML: mapping values are not allowed in this context"},
		{"indented key", "name: x\n  bad: 1\n",
			"2:3: invalid YAML: mapping values are not allowed in this context (this line is indented more than line 1, so it continues line 1's value)"},
		{"indented key under a plain value", "name: x\ndescription: a\n  b: c\n",
			"3:3: invalid YAML: mapping values are not allowed in this context (this line is indented more than line 2, so it continues line 2's value)"},
		{"indented first line", " name: x\nstages: []\n",
			"1:1: invalid YAML: the document's first line is indented, so the top level must be indented as much (so YAML fails later, at 2:1: did not find expected <document start>)"},
		{"tab as indentation", "name: x\nstages:\n\t- a\n",
			"3:1: invalid YAML: found character that cannot start any token"},
		{"tab as indentation of a key", "name: x\nstages:\n  - name: a\n\tjobs: []\n",
			"4:1: invalid YAML: found a tab character that violates indentation"},
		{"tab after spaces", "name: x\nstages:\n  - name: a\n    jobs:\n  \t- name: b\n",
			"5:3: invalid YAML: found character that cannot start any token"},
		{"tab first in the document", "\tname: x\n",
			"1:1: invalid YAML: found character that cannot start any token"},
		{"tab in a block scalar's indentation", "name: x\ndescription: >\n  ok\n\tbad\n",
			"4:1: invalid YAML: found a tab character where an indentation space is expected"},
		{"reserved character", "name: x\ndescription: @me\n",
			"2:14: invalid YAML: found character that cannot start any token"},
		{"after a multi-byte character", "description: héllo\nname: @x\n",
			"2:7: invalid YAML: found character that cannot start any token"},
		{"unclosed double quote", "name: x\ndescription: \"abc\nstages: []\n",
			"2:14: invalid YAML: found unexpected end of stream (the quoted string that starts here is never closed)"},
		{"unclosed single quote", steps + "          - run: 'echo it''s\n",
			"7:18: invalid YAML: found unexpected end of stream (the quoted string that starts here is never closed)"},
		{"double quote closed on a later line", "name: \"x\nstages: []\ndescription: \"y\"\n",
			"1:7: invalid YAML: the quoted string that starts here is not closed on its line (so YAML fails later, at 3:15: did not find expected key)"},
		{"single quote closed on a later line", "name: x\nstages:\n  - name: 'a\n    jobs: []\n  - name: 'b'\n",
			"3:11: invalid YAML: the quoted string that starts here is not closed on its line (so YAML fails later, at 5:12: did not find expected key)"},
		{"text after a quoted string", steps + "          - run: \"echo \"hi\" there\n",
			"7:25: invalid YAML: did not find expected key"},
		{"document marker in a quoted string", "name: x\ndescription: \"a\n---\nb\"\n",
			"3:1: invalid YAML: found unexpected document indicator"},
		{"unknown escape", "name: x\ndescription: \"a \\q b\"\n",
			"2:17: invalid YAML: found unknown escape character"},
		{"bad hex escape", "name: x\ndescription: \"a \\xZZ\"\n",
			"2:18: invalid YAML: did not find expected hexdecimal number"},
		{"bad unicode escape", "name: x\ndescription: \"a \\uD800\"\n",
			"2:17: invalid YAML: found invalid Unicode character escape code"},
		{"unclosed flow sequence", "name: x\nstages: [\n",
			"2:9: invalid YAML: did not find expected node content (the '[' here is never closed)"},
		{"unclosed flow sequence after a plain value with a bracket", "description: echo it's [x\nstages: [a, b\n",
			"2:9: invalid YAML: did not find expected ',' or ']' (the '[' here is never closed)"},
		{"unclosed flow mapping", "name: x\nvariables: {a: 1, b\n",
			"2:12: invalid YAML: did not find expected ',' or '}' (the '{' here is never closed)"},
		{"missing comma in a flow sequence", "name: x\nstages: [a, \"b\" c]\n",
			"2:17: invalid YAML: did not find expected ',' or ']' (in the '[' at 2:9)"},
		{"flow sequence running into the next key", "name: x\nstages: [a, b\nfoo: 1\n",
			"2:9: invalid YAML: the '[' here is not closed on its line (so YAML fails later, at 3:1: did not find expected ',' or ']')"},
		{"flow sequence with a comment running into the next key", "name: x\nstages: [a, b   # c\nfoo: 1\n",
			"2:9: invalid YAML: the '[' here is not closed on its line (so YAML fails later, at 3:1: did not find expected ',' or ']')"},
		{"flow sequence running into another", "name: x\nsource:\n  url: [https://x\n  branches: [\"main\"]\n",
			"3:8: invalid YAML: the '[' here is not closed on its line (so YAML fails later, at 4:19: did not find expected ',' or ']')"},
		{"flow mapping running into the next key", "name: x\nvariables: {a: 1\nfoo: 1\n",
			"2:12: invalid YAML: the '{' here is not closed on its line (so YAML fails later, at 3:1: did not find expected ',' or '}')"},
		{"missing comma on a later line of a flow sequence", "name: x\nstages: [a,\n  \"b\" c]\n",
			"3:7: invalid YAML: did not find expected ',' or ']' (in the '[' at 2:9)"},
		{"empty entry in a flow sequence", "name: x\nstages: [,]\n",
			"2:10: invalid YAML: did not find expected node content"},
		{"closing bracket too many", "name: x\nstages: [a]]\n",
			"2:12: invalid YAML: did not find expected key"},
		{"key without a colon", "name: x\nfoo\nbar: 1\n",
			"2:1: invalid YAML: could not find expected ':'"},
		{"sequence after a key on its line", "name: x\nstages: - a\n",
			"2:9: invalid YAML: block sequence entries are not allowed in this context"},
		{"explicit key as a value", "name: x\ndescription: ? a\n",
			"2:14: invalid YAML: mapping keys are not allowed in this context"},
		{"sequence at the top level after a key", "name: x\n- a\n",
			"2:1: invalid YAML: did not find expected key"},
		{"empty anchor", "name: & x\n",
			"1:7: invalid YAML: did not find expected alphabetic or numeric character"},
		{"block scalar indentation 0", "name: x\ndescription: |0\n  a\n",
			"2:15: invalid YAML: found an indentation indicator equal to 0"},
		{"text after a block scalar indicator", "name: x\ndescription: |x\n  a\n",
			"2:15: invalid YAML: did not find expected comment or line break"},
		{"control character", "name: x\ndescription: a\x01b\n",
			"2:15: invalid YAML: control characters are not allowed"},
		{"invalid UTF-8", "name: x\ndescription: a\xffb\n",
			"2:15: invalid YAML: invalid leading UTF-8 octet"},
		{"unsupported YAML version", "%YAML 1.3\n---\nname: x\n",
			"1:7: invalid YAML: found incompatible YAML document"},
		{"%YAML twice", "%YAML 1.1\n%YAML 1.1\n---\nname: x\n",
			"2:1: invalid YAML: found duplicate %YAML directive"},
		{"%TAG twice", "%TAG ! !a\n%TAG ! !b\n---\nname: x\n",
			"2:1: invalid YAML: found duplicate %TAG directive"},
		{"unknown alias", "name: x\ndescription: *nope\n",
			"2:14: invalid YAML: unknown anchor 'nope' referenced"},
		{"in a second document", minimal + "---\nx: [\n",
			"9:4: invalid YAML: did not find expected node content (the '[' here is never closed)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.src))
			if got := problems(t, err); len(got) != 1 || got[0] != tt.want {
				t.Errorf("problems = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseReportsAllProblems(t *testing.T) {
	t.Parallel()
	src := "name: Bad Name\nvariables:\n  HOME: x\nstages:\n  - name: s\n    jobs:\n      - name: j\n        timeout: forever\n        steps: [{run: a}]\n"
	_, err := Parse([]byte(src))
	want := []string{
		`1:7: name: "Bad Name" is not a valid pipeline name: use 1 to 63 lowercase letters, digits and '-', starting with a letter or digit`,
		"3:3: variables.HOME: reserved name: FLOWD_*, PATH and HOME are set by flowd",
		`8:18: stages[0].jobs[0].timeout: invalid duration "forever": use a number and a unit, e.g. 90s, 10m or 1h30m`,
	}
	if got := problems(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("problems =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got, wantText := err.Error(), strings.Join(want, "\n"); got != wantText {
		t.Errorf("Error() =\n%s\nwant\n%s", got, wantText)
	}
}

func TestParseAliasBomb(t *testing.T) {
	t.Parallel()
	// A stage list of 2000 aliases to a job list of 2000 aliases to a step list of 100 aliases.
	var bomb strings.Builder
	bomb.WriteString("name: x\nvariables:\n  S: &s {run: a}\n  J: &j {name: j, steps: [")
	bomb.WriteString(strings.TrimSuffix(strings.Repeat("*s, ", 100), ", "))
	bomb.WriteString("]}\n  L: &l [")
	bomb.WriteString(strings.TrimSuffix(strings.Repeat("*j, ", 2000), ", "))
	bomb.WriteString("]\nstages:\n")
	for range 2000 {
		bomb.WriteString("  - {name: s, jobs: *l}\n")
	}
	start := time.Now()
	_, err := Parse([]byte(bomb.String()))
	if err == nil {
		t.Fatal("Parse accepted an alias bomb")
	}
	if got := problems(t, err); len(got) != 1 || !strings.Contains(got[0], "definition is too large") {
		t.Errorf("error = %.500s…, want it to say the definition is too large", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Parse took %v", d)
	}
}

func TestValidName(t *testing.T) {
	t.Parallel()
	tests := map[string]bool{
		"a": true, "hello": true, "0-build": true, "a-": true, strings.Repeat("a", 63): true,
		"": false, "-a": false, "Hello": false, "a_b": false, "a.b": false, "a b": false, strings.Repeat("a", 64): false, "é": false,
	}
	for s, want := range tests {
		if got := ValidName(s); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestValidVariableName(t *testing.T) {
	t.Parallel()
	tests := map[string]bool{
		"a": true, "_": true, "A_1": true, "abc": true, "FLOWDX": true, "PATHS": true,
		"": false, "1a": false, "a-b": false, "a b": false, "FLOWD_X": false, "flowd_x": false, "FLOWD_": false,
		"PATH": false, "HOME": false, "path": false, "Home": false, "é": false,
	}
	for s, want := range tests {
		if got := ValidVariableName(s); got != want {
			t.Errorf("ValidVariableName(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestReserved(t *testing.T) {
	t.Parallel()
	tests := map[string]bool{
		"FLOWD_RUN_ID": true, "flowd_x": true, "Flowd_": true, "PATH": true, "HOME": true, "home": true,
		"FLOWD": false, "FLOWDX": false, "PATH_X": false, "MYHOME": false, "": false,
	}
	for s, want := range tests {
		if got := Reserved(s); got != want {
			t.Errorf("Reserved(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestPipelineVariable(t *testing.T) {
	t.Parallel()
	p, err := Parse([]byte(designExampleDeclared))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := p.Variable("TARGET"); !ok || v.Default != "staging" {
		t.Errorf("Variable(TARGET) = %#v, %v", v, ok)
	}
	if _, ok := p.Variable("target"); ok {
		t.Errorf("Variable(target) found a variable; names are case-sensitive")
	}
}
