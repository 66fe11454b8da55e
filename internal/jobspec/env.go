package jobspec

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/flowd/flowd/internal/executor"
	"github.com/flowd/flowd/internal/run"
)

// Clone user names for token credentials, by Git host (run.Git.Provider). A host reads the
// token from the password and ignores or requires a particular user name: GitHub takes
// "x-access-token" (installation and personal tokens alike), GitLab and Codeup "oauth2"
// (personal, project and OAuth tokens), Bitbucket Cloud "x-token-auth" (repository and
// workspace access tokens). Every other host, and runs with no provider (manual runs), get
// "flowd": Gitea, Gogs and Forgejo accept a token with any user name. A host that insists on
// the token owner's own user name cannot be served by source.credentials alone.
const (
	userGitHub    = "x-access-token"
	userGitLab    = "oauth2"
	userBitbucket = "x-token-auth"
	userDefault   = "flowd"
)

// cloneUser is the user name a checkout sends with the token of a run of provider.
func cloneUser(provider string) string {
	switch provider {
	case "github":
		return userGitHub
	case "gitlab", "codeup":
		return userGitLab
	case "bitbucket":
		return userBitbucket
	}
	return userDefault
}

// Checkout is the checkout of a job of a run with Git g (nil for a run without Git: no
// checkout). URL, SHA and Ref come from g. When g.CredentialsVar names a variable, the
// checkout authenticates with its value from secrets (the run's decrypted secret variables) as
// the password and cloneUser(g.Provider) as the user name; an empty value means no credentials
// (a public repository). A CredentialsVar missing from secrets is an error whose message says
// what to fix: the job fails before anything runs.
func Checkout(g *run.Git, secrets map[string]string) (*executor.Checkout, error) {
	if g == nil {
		return nil, nil
	}
	c := &executor.Checkout{URL: g.RepoURL, SHA: g.SHA, Ref: g.Ref}
	if g.CredentialsVar == "" {
		return c, nil
	}
	token, ok := secrets[g.CredentialsVar]
	if !ok {
		return nil, fmt.Errorf("source.credentials names %q, which this run has no secret value for: "+
			"declare it under variables with secret: true and give it the token", g.CredentialsVar)
	}
	if token != "" {
		c.Username, c.Password = cloneUser(g.Provider), token
	}
	return c, nil
}

// Environment is the complete environment of a job's steps, as DESIGN.md's "Run environment":
// PATH and HOME of the server, the job's env, the run's variables (secret ones included), and
// the FLOWD_* built-ins, which nothing may override. Nothing else of the server's environment
// (such as FLOWD_SECRET_KEY) reaches a step.
//
// A job in a container (j.Container set) gets neither PATH nor HOME: the image's apply (Docker
// sets them in the container). Its FLOWD_WORKSPACE is the container's executor.Workdir, where
// its workspace is mounted, whatever workspace (the runner's folder of the job) is.
//
// A run with Git also gets FLOWD_REPO_URL (without credentials), FLOWD_COMMIT_SHA,
// FLOWD_BRANCH (branch runs) or FLOWD_TAG (tag runs), FLOWD_EVENT, FLOWD_COMMIT_MESSAGE and
// FLOWD_COMMIT_AUTHOR. The clone token is not added: the variable source.credentials names is
// a secret variable the user declared, so it is in the environment as every secret variable
// is, under its own name, and nowhere else.
func Environment(r run.Run, j run.Job, secrets map[string]string, workspace string) []string {
	return environment(r, j, secrets, workspace, false)
}

// environment is Environment; remote leaves out, for a job on the host, what the host of an
// agent adds: PATH, HOME and FLOWD_WORKSPACE (see BuildRemote).
func environment(r run.Run, j run.Job, secrets map[string]string, workspace string, remote bool) []string {
	env := map[string]string{}
	switch {
	case j.Container != nil:
		workspace = executor.Workdir
	case remote:
	default:
		env["PATH"], env["HOME"] = os.Getenv("PATH"), os.Getenv("HOME")
		if env["PATH"] == "" {
			env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
		}
		if env["HOME"] == "" {
			env["HOME"] = workspace
		}
	}
	for k, v := range j.Env {
		env[k] = v
	}
	for k, v := range r.Variables {
		env[k] = v
	}
	for k, v := range secrets {
		env[k] = v
	}
	env["FLOWD_RUN_ID"] = strconv.FormatInt(r.ID, 10)
	env["FLOWD_RUN_NUMBER"] = strconv.FormatInt(r.Number, 10)
	env["FLOWD_PIPELINE"] = r.Pipeline
	env["FLOWD_TRIGGER"] = string(r.Trigger)
	env["FLOWD_TRIGGERED_BY"] = r.TriggeredBy
	if !remote || j.Container != nil {
		env["FLOWD_WORKSPACE"] = workspace
	}
	env["FLOWD_JOB"] = j.Name
	env["FLOWD_STAGE"] = j.StageName
	if g := r.Git; g != nil {
		env["FLOWD_REPO_URL"] = withoutCredentials(g.RepoURL)
		env["FLOWD_COMMIT_SHA"] = g.SHA
		if g.Tag != "" {
			env["FLOWD_TAG"] = g.Tag
		} else if g.Branch != "" {
			env["FLOWD_BRANCH"] = g.Branch
		}
		env["FLOWD_EVENT"] = g.Event
		env["FLOWD_COMMIT_MESSAGE"] = g.Message
		env["FLOWD_COMMIT_AUTHOR"] = g.Author
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// withoutCredentials is a repository URL without a password, and for http(s) without any user
// name either (as the executor's checkout shows it). run.Git.RepoURL holds none already; this
// keeps a mistake upstream from putting a token in every step's environment.
func withoutCredentials(raw string) string {
	if !strings.Contains(raw, "://") {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if s := strings.ToLower(u.Scheme); s == "http" || s == "https" {
		u.User = nil
	} else {
		u.User = url.User(u.User.Username())
	}
	return u.String()
}
