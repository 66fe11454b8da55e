package jobspec

import (
	"crypto/rand"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/executor"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/secret"
	"github.com/flowd/flowd/internal/store"
)

func newBox(t *testing.T) *secret.Box {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	box, err := secret.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return box
}

func seal(t *testing.T, box *secret.Box, vars map[string]string) []byte {
	t.Helper()
	b, err := json.Marshal(vars)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := box.Seal(b)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

func TestBuild(t *testing.T) {
	t.Parallel()
	box := newBox(t)
	const sha = "0123456789abcdef0123456789abcdef01234567"
	c := store.Claim{
		Run: run.Run{ID: 7, Number: 3, Pipeline: "hello", Trigger: run.TriggerWebhook,
			Variables:       map[string]string{"PLAIN": "p"},
			SecretVariables: seal(t, box, map[string]string{"TOKEN": "tok", "API_KEY": "k", "EMPTY": ""}),
			Git: &run.Git{RepoURL: "https://h/a.git", SHA: sha, Ref: "refs/heads/main", Branch: "main",
				Provider: "gitlab", CredentialsVar: "TOKEN"}},
		Job: run.Job{ID: 11, Name: "say", StageName: "build", Timeout: time.Minute,
			Steps: []run.Step{{ID: 21, Name: "one", Script: "echo 1"}, {ID: 22, Name: "two", Script: "echo 2"}}},
	}
	s, err := Build(c, box, "/ws")
	if err != nil {
		t.Fatal(err)
	}
	if s.RunID != 7 || s.JobID != 11 || s.Pipeline != "hello" || s.Stage != "build" || s.Job != "say" ||
		s.Timeout != time.Minute || s.Workspace != "/ws/7-11" {
		t.Errorf("Build = %+v", s)
	}
	wantSteps := []executor.Step{{ID: 21, Name: "one", Script: "echo 1"}, {ID: 22, Name: "two", Script: "echo 2"}}
	if !slices.Equal(s.Steps, wantSteps) {
		t.Errorf("steps = %+v, want %+v", s.Steps, wantSteps)
	}
	wantCheckout := executor.Checkout{URL: "https://h/a.git", SHA: sha, Ref: "refs/heads/main", Username: "oauth2", Password: "tok"}
	if s.Checkout == nil || *s.Checkout != wantCheckout {
		t.Errorf("checkout = %+v, want %+v", s.Checkout, wantCheckout)
	}
	// Every non-empty secret value is masked, the clone password too; an empty one would mask
	// every position of the log.
	for _, v := range []string{"tok", "k"} {
		if !slices.Contains(s.Secrets, v) {
			t.Errorf("secrets to mask %q lack %q", s.Secrets, v)
		}
	}
	if slices.Contains(s.Secrets, "") {
		t.Errorf("secrets to mask %q hold an empty value", s.Secrets)
	}
	for _, kv := range []string{"PLAIN=p", "TOKEN=tok", "API_KEY=k", "EMPTY=", "FLOWD_WORKSPACE=/ws/7-11", "FLOWD_BRANCH=main"} {
		if !slices.Contains(s.Env, kv) {
			t.Errorf("environment lacks %s: %v", kv, s.Env)
		}
	}
	j := s.ExecutorJob()
	if j.RunID != 7 || j.JobID != 11 || j.Workspace != "/ws/7-11" || j.Timeout != time.Minute ||
		j.Checkout != s.Checkout || !slices.Equal(j.Steps, wantSteps) || !slices.Equal(j.Env, s.Env) {
		t.Errorf("ExecutorJob = %+v, want the spec's fields", j)
	}
}

// TestBuildInContainer: a job in a container gets its container and attempt in the executor's
// Job, and an environment for the container: FLOWD_WORKSPACE is /workspace, and the server's
// PATH and HOME are not there (the image's apply); the runner's folder of the job is unchanged.
func TestBuildInContainer(t *testing.T) {
	t.Parallel()
	ctr := &run.Container{Image: "golang:1.26", User: "1000", Memory: 64 << 20,
		Services: []run.Service{{Name: "db", Image: "postgres:16", Env: map[string]string{"A": "b"}}}}
	c := store.Claim{
		Run:     run.Run{ID: 7, Number: 3, Pipeline: "hello", Variables: map[string]string{"abc": "456"}},
		Job:     run.Job{ID: 11, Name: "say", StageName: "build", Container: ctr, Steps: []run.Step{{ID: 21, Name: "one", Script: "echo 1"}}},
		Attempt: store.AttemptRef{ID: 99, Number: 2},
	}
	s, err := Build(c, nil, "/ws")
	if err != nil {
		t.Fatal(err)
	}
	if s.Workspace != "/ws/7-11" || s.Attempt != 99 || !reflect.DeepEqual(s.Container, ctr) {
		t.Errorf("Build = %+v", s)
	}
	for _, kv := range []string{"abc=456", "FLOWD_WORKSPACE=/workspace", "FLOWD_JOB=say"} {
		if !slices.Contains(s.Env, kv) {
			t.Errorf("environment lacks %s: %v", kv, s.Env)
		}
	}
	for _, kv := range s.Env {
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "HOME=") {
			t.Errorf("a container job's environment holds the server's %s", kv)
		}
	}
	j := s.ExecutorJob()
	if j.Attempt != 99 || !reflect.DeepEqual(j.Container, ctr) || j.Workspace != "/ws/7-11" || !slices.Equal(j.Env, s.Env) {
		t.Errorf("ExecutorJob = %+v", j)
	}
	// The spec's container is its own: a runner changing it does not change the claim's.
	s.Container.Services[0].Env["A"] = "changed"
	if ctr.Services[0].Env["A"] != "b" {
		t.Errorf("the spec shares the claim's container")
	}
	// A job on the host has neither.
	c.Job.Container, c.Attempt = nil, store.AttemptRef{ID: 5}
	if s, err = Build(c, nil, "/ws"); err != nil || s.Container != nil || s.ExecutorJob().Container != nil || s.ExecutorJob().Attempt != 5 ||
		!slices.Contains(s.Env, "FLOWD_WORKSPACE=/ws/7-11") {
		t.Errorf("host job: Build = %+v, %v", s, err)
	}
}

// A run without secret variables needs no key (a server without one runs it), and masks nothing.
func TestBuildWithoutSecrets(t *testing.T) {
	t.Parallel()
	s, err := Build(store.Claim{Run: run.Run{ID: 1}, Job: run.Job{ID: 2}}, nil, "/ws")
	if err != nil {
		t.Fatal(err)
	}
	if s.Checkout != nil || len(s.Secrets) != 0 || s.Workspace != "/ws/1-2" {
		t.Errorf("Build = %+v, want no checkout, nothing to mask", s)
	}
}

// Build's errors are the job's failure message: they say what is wrong.
func TestBuildFails(t *testing.T) {
	t.Parallel()
	box := newBox(t)
	cases := []struct {
		name string
		r    run.Run
		want string
	}{
		{"another key", run.Run{SecretVariables: seal(t, newBox(t), map[string]string{"A": "b"})},
			"cannot decrypt the run's secret variables: "},
		{"credentials not declared", run.Run{SecretVariables: seal(t, box, map[string]string{"A": "b"}),
			Git: &run.Git{RepoURL: "https://h/a.git", CredentialsVar: "GIT_TOKEN"}},
			`source.credentials names "GIT_TOKEN", which this run has no secret value for: declare it under variables with secret: true and give it the token`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Build(store.Claim{Run: c.r}, box, "/ws")
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("Build error = %v, want one starting %q", err, c.want)
			}
		})
	}
}

func TestEnvironmentIsExact(t *testing.T) {
	t.Setenv("FLOWD_SECRET_KEY_TEST_LEAK", "x") // must not reach a step
	base := map[string]string{"abc": "456", "GREETING": "from-run", "ONLY_JOB": "1", "API_KEY": "k",
		"FLOWD_RUN_ID": "7", "FLOWD_RUN_NUMBER": "3", "FLOWD_PIPELINE": "hello", "FLOWD_TRIGGER": "webhook",
		"FLOWD_TRIGGERED_BY": "alice", "FLOWD_WORKSPACE": "/ws", "FLOWD_JOB": "say", "FLOWD_STAGE": "build"}
	with := func(extra map[string]string) map[string]string {
		out := maps.Clone(base)
		maps.Copy(out, extra)
		return out
	}
	const sha = "0123456789abcdef0123456789abcdef01234567"
	inContainer := maps.Clone(base)
	inContainer["FLOWD_WORKSPACE"] = "/workspace"
	cases := []struct {
		name      string
		git       *run.Git
		container *run.Container
		want      map[string]string
	}{
		{"no git", nil, nil, base},
		{"in a container: no PATH or HOME", nil, &run.Container{Image: "alpine"}, inContainer},
		{"branch push", &run.Git{RepoURL: "https://git.example.com/acme/app.git", SHA: sha, Ref: "refs/heads/main",
			Branch: "main", Event: "push", Provider: "github", Message: "fix it\n\nbody", Author: "Ada <ada@example.com>",
			CredentialsVar: "API_KEY"}, nil,
			with(map[string]string{"FLOWD_REPO_URL": "https://git.example.com/acme/app.git", "FLOWD_COMMIT_SHA": sha,
				"FLOWD_BRANCH": "main", "FLOWD_EVENT": "push", "FLOWD_COMMIT_MESSAGE": "fix it\n\nbody",
				"FLOWD_COMMIT_AUTHOR": "Ada <ada@example.com>"})},
		{"tag, credentials in the URL", &run.Git{RepoURL: "https://bot:hunter2@git.example.com/app.git", SHA: sha,
			Ref: "refs/tags/v1", Tag: "v1", Event: "tag"}, nil,
			with(map[string]string{"FLOWD_REPO_URL": "https://git.example.com/app.git", "FLOWD_COMMIT_SHA": sha,
				"FLOWD_TAG": "v1", "FLOWD_EVENT": "tag", "FLOWD_COMMIT_MESSAGE": "", "FLOWD_COMMIT_AUTHOR": ""})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := run.Run{ID: 7, Number: 3, Pipeline: "hello", Trigger: run.TriggerWebhook, TriggeredBy: "alice",
				Variables: map[string]string{"abc": "456", "GREETING": "from-run"}, Git: c.git}
			j := run.Job{Name: "say", StageName: "build", Env: map[string]string{"GREETING": "hi", "ONLY_JOB": "1"}, Container: c.container}
			env := Environment(r, j, map[string]string{"API_KEY": "k"}, "/ws")
			got := map[string]string{}
			for _, kv := range env {
				k, v, _ := strings.Cut(kv, "=")
				if _, dup := got[k]; dup {
					t.Errorf("%s set twice", k)
				}
				got[k] = v
			}
			for k, v := range c.want {
				if gv, ok := got[k]; !ok || gv != v {
					t.Errorf("%s = %q (set: %v), want %q", k, gv, ok, v)
				}
			}
			for k := range got {
				if _, ok := c.want[k]; !ok && (c.container != nil || k != "PATH" && k != "HOME") {
					t.Errorf("unexpected variable %s in a step's environment", k)
				}
			}
			if _, ok := got["PATH"]; ok == (c.container != nil) {
				t.Errorf("PATH set: %v, in a container: %v", ok, c.container != nil)
			}
		})
	}
}

func TestCheckout(t *testing.T) {
	t.Parallel()
	const sha = "0123456789abcdef0123456789abcdef01234567"
	secrets := map[string]string{"TOKEN": "tok", "EMPTY": ""}
	git := func(provider, credVar string) *run.Git {
		return &run.Git{RepoURL: "https://h/a.git", SHA: sha, Ref: "refs/heads/main", Provider: provider, CredentialsVar: credVar}
	}
	cases := []struct {
		name       string
		git        *run.Git
		user, pass string
	}{
		{"github", git("github", "TOKEN"), "x-access-token", "tok"},
		{"gitlab", git("gitlab", "TOKEN"), "oauth2", "tok"},
		{"codeup", git("codeup", "TOKEN"), "oauth2", "tok"},
		{"bitbucket", git("bitbucket", "TOKEN"), "x-token-auth", "tok"},
		{"gitea", git("gitea", "TOKEN"), "flowd", "tok"},
		{"manual run", git("", "TOKEN"), "flowd", "tok"},
		{"no credentials", git("github", ""), "", ""},
		{"empty token", git("github", "EMPTY"), "", ""},
	}
	for _, c := range cases {
		co, err := Checkout(c.git, secrets)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		want := executor.Checkout{URL: "https://h/a.git", SHA: sha, Ref: "refs/heads/main", Username: c.user, Password: c.pass}
		if co == nil || *co != want {
			t.Errorf("%s: Checkout = %+v, want %+v", c.name, co, want)
		}
	}
	if co, err := Checkout(nil, secrets); co != nil || err != nil {
		t.Errorf("Checkout(nil) = %+v, %v; want no checkout", co, err)
	}
	if _, err := Checkout(git("github", "MISSING"), secrets); err == nil || !strings.Contains(err.Error(), `"MISSING"`) {
		t.Errorf("Checkout(missing variable) error = %v, want one naming MISSING", err)
	}
}

// TestBuildRemote: an agent's spec names only the workspace's folder, and a job on the host
// gets neither the server's PATH and HOME nor FLOWD_WORKSPACE (the agent adds its own), while
// a PATH the job's env sets stays; a job in a container gets its environment as from Build.
func TestBuildRemote(t *testing.T) {
	t.Parallel()
	box := newBox(t)
	c := store.Claim{
		Run: run.Run{ID: 7, Number: 3, Pipeline: "hello", Variables: map[string]string{"abc": "456"},
			SecretVariables: seal(t, box, map[string]string{"API_KEY": "k"})},
		Job: run.Job{ID: 11, Name: "say", StageName: "build", Steps: []run.Step{{ID: 21, Name: "one", Script: "echo 1"}}},
	}
	s, err := BuildRemote(c, box)
	if err != nil {
		t.Fatal(err)
	}
	if s.Workspace != "7-11" || !slices.Contains(s.Secrets, "k") {
		t.Errorf("BuildRemote = %+v", s)
	}
	for _, kv := range []string{"abc=456", "API_KEY=k", "FLOWD_JOB=say", "FLOWD_RUN_ID=7"} {
		if !slices.Contains(s.Env, kv) {
			t.Errorf("environment lacks %s: %v", kv, s.Env)
		}
	}
	for _, kv := range s.Env {
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "FLOWD_WORKSPACE=") {
			t.Errorf("an agent's host job's environment holds %s", kv)
		}
	}
	c.Job.Env = map[string]string{"PATH": "/opt/tool/bin:/usr/bin"}
	if s, err = BuildRemote(c, box); err != nil || !slices.Contains(s.Env, "PATH=/opt/tool/bin:/usr/bin") {
		t.Errorf("the job's own PATH is lost: %v, %v", s.Env, err)
	}
	c.Job.Container = &run.Container{Image: "alpine:3"}
	if s, err = BuildRemote(c, box); err != nil || !slices.Contains(s.Env, "FLOWD_WORKSPACE=/workspace") || s.Container == nil {
		t.Errorf("container job: %+v, %v", s, err)
	}
}
