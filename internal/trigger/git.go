package trigger

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/flowd/flowd/internal/jobspec"
	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/webhook/githost"
)

// LsRemoteTimeout bounds one `git ls-remote`, which resolves a branch or tag to a commit when a
// run of a pipeline with a source is started without one.
const LsRemoteTimeout = 10 * time.Second

// GitError is a run that cannot be given its commit: a branch or tag that is not in the
// repository, a malformed commit, a repository git cannot read. Code is CodeNoCommit,
// CodeBadRequest or CodeGitError (package api chooses the HTTP status); Message says what to do.
type GitError struct {
	Code    Code
	Message string
}

// Error implements error.
func (e *GitError) Error() string { return e.Message }

// GitRef is what a run of a pipeline with a source should build, when it is started by hand or
// by a payload that names no commit: a branch or a tag (at most one), and/or a commit.
type GitRef struct {
	Branch, Tag string
	Commit      string // 40 (or 64) hex digits; empty = the head of Branch or Tag, resolved
}

// DefaultBranch is the branch a run of src builds when nothing names one: the first entry of
// source.branches that is a plain name (no glob characters), or "main" when source.branches is
// omitted (every branch). plain is false when source.branches lists only globs (or nothing):
// then "main" is only a guess.
func DefaultBranch(src *pipeline.Source) (branch string, plain bool) {
	if src == nil || src.Branches == nil {
		return "main", true
	}
	for _, b := range src.Branches {
		if b != "" && !strings.ContainsAny(b, "*?[\\") {
			return b, true
		}
	}
	return "main", false
}

// resolveGit returns the run.Git of a run of src at ref, asking the repository (git ls-remote)
// for the commit of a branch or tag when ref has none. secrets are the run's secret variables
// (for source.credentials); event is run.Git.Event ("manual", "webhook"). Errors are *GitError.
func resolveGit(ctx context.Context, src *pipeline.Source, ref GitRef, secrets map[string]string, event string) (*run.Git, error) {
	if src == nil {
		return nil, &GitError{Code: CodeBadRequest,
			Message: "this pipeline has no source, so a run of it builds no branch, tag or commit: leave them out, or add a source to the pipeline"}
	}
	if ref.Branch != "" && ref.Tag != "" {
		return nil, &GitError{Code: CodeBadRequest,
			Message: "give a branch or a tag, not both"}
	}
	for what, name := range map[string]string{"branch": ref.Branch, "tag": ref.Tag} {
		if name != "" && !validRefName(name) {
			return nil, &GitError{Code: CodeBadRequest,
				Message: fmt.Sprintf("%s %q is not a valid Git %s name", what, name, what)}
		}
	}
	g := &run.Git{RepoURL: src.URL, Event: event, CredentialsVar: src.Credentials, StatusTokenVar: src.StatusToken}
	commit := strings.ToLower(strings.TrimSpace(ref.Commit))
	if commit != "" && !validSHA(commit) {
		return nil, &GitError{Code: CodeBadRequest,
			Message: fmt.Sprintf("commit %q is not a full commit SHA: give all 40 hex digits (git rev-parse HEAD prints them)", ref.Commit)}
	}
	switch {
	case ref.Tag != "":
		g.Tag, g.Ref = ref.Tag, "refs/tags/"+ref.Tag
	case ref.Branch != "":
		g.Branch, g.Ref = ref.Branch, "refs/heads/"+ref.Branch
	case commit != "":
		// A commit alone: built as it is, on no branch.
	default:
		g.Branch, _ = DefaultBranch(src)
		g.Ref = "refs/heads/" + g.Branch
	}
	if commit != "" {
		g.SHA = commit
		return g, nil
	}
	sha, err := lsRemote(ctx, g, secrets)
	if err != nil {
		return nil, err
	}
	g.SHA = sha
	return g, nil
}

// lsRemote asks g.RepoURL for the commit of g.Ref with `git ls-remote`, within LsRemoteTimeout,
// authenticated as the checkout would be (jobspec.Checkout): the credentials reach git only
// through its environment (GIT_CONFIG_* http.extraHeader), never its arguments. An annotated
// tag gives the commit it points at. Errors are *GitError.
func lsRemote(ctx context.Context, g *run.Git, secrets map[string]string) (string, error) {
	c, err := jobspec.Checkout(g, secrets)
	if err != nil {
		return "", &GitError{Code: CodeNoCommit, Message: err.Error()}
	}
	repo, user, pass := stripCredentials(c.URL)
	if c.Username != "" || c.Password != "" {
		user, pass = c.Username, c.Password
	}
	if repo == "" || strings.HasPrefix(repo, "-") || strings.ContainsFunc(repo, isControl) {
		return "", &GitError{Code: CodeNoCommit,
			Message: fmt.Sprintf("source.url %q is not a repository URL: fix the pipeline's source", repo)}
	}
	env := lsRemoteEnv()
	var secretsOut []string
	if user != "" || pass != "" {
		basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
		secretsOut = append(secretsOut, basic)
		if pass != "" {
			secretsOut = append(secretsOut, pass, url.QueryEscape(pass))
		}
		if isHTTPURL(repo) {
			env = append(env, "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader",
				"GIT_CONFIG_VALUE_0=Authorization: Basic "+basic)
		}
	}
	mask := func(s string) string {
		for _, sec := range secretsOut {
			if sec != "" {
				s = strings.ReplaceAll(s, sec, "***")
			}
		}
		return s
	}

	bin, err := exec.LookPath("git")
	if err != nil {
		return "", &GitError{Code: CodeGitError,
			Message: "git is not installed on the flowd server, so the commit of " + g.Ref + " cannot be looked up: install git, or give the commit"}
	}
	ctx, cancel := context.WithTimeout(ctx, LsRemoteTimeout)
	defer cancel()
	patterns := []string{g.Ref}
	if g.Tag != "" {
		patterns = append(patterns, g.Ref+"^{}")
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"ls-remote", repo}, patterns...)...)
	cmd.Env = env
	cmd.Dir = os.TempDir()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return "", &GitError{Code: CodeGitError,
				Message: fmt.Sprintf("git ls-remote %s did not answer within %v: is source.url reachable from the flowd server? Or give the commit", repo, LsRemoteTimeout)}
		}
		return "", ctx.Err()
	}
	if runErr != nil {
		said := strings.TrimSpace(mask(stderr.String()))
		if said == "" {
			said = runErr.Error()
		}
		if len(said) > 500 {
			said = said[:500] + "…"
		}
		return "", &GitError{Code: CodeGitError,
			Message: fmt.Sprintf("git ls-remote %s failed: %s — check source.url and source.credentials, or give the commit", repo, said)}
	}
	found := map[string]string{}
	for _, line := range strings.Split(stdout.String(), "\n") {
		sha, name, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if ok && validSHA(strings.ToLower(sha)) {
			found[name] = strings.ToLower(sha)
		}
	}
	if sha, ok := found[g.Ref+"^{}"]; ok { // an annotated tag: the commit it points at
		return sha, nil
	}
	if sha, ok := found[g.Ref]; ok {
		return sha, nil
	}
	what := "branch " + g.Branch
	if g.Tag != "" {
		what = "tag " + g.Tag
	}
	return "", &GitError{Code: CodeNoCommit,
		Message: fmt.Sprintf("%s is not in %s: name a branch or tag that exists, or give the commit", what, repo)}
}

// lsRemoteEnv is git's environment for ls-remote: the server's PATH, HOME, proxy, CA and ssh
// agent variables, and guards so that git never prompts.
func lsRemoteEnv() []string {
	var env []string
	for _, k := range []string{
		"PATH", "HOME",
		"http_proxy", "https_proxy", "no_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
		"SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH",
		"SSH_AUTH_SOCK", "GIT_SSH_COMMAND",
	} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	if _, ok := os.LookupEnv("PATH"); !ok {
		env = append(env, "PATH=/usr/local/bin:/usr/bin:/bin")
	}
	if _, ok := os.LookupEnv("GIT_SSH_COMMAND"); !ok {
		env = append(env, "GIT_SSH_COMMAND=ssh -o BatchMode=yes")
	}
	return append(env,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=/bin/false",
		"SSH_ASKPASS=/bin/false",
		"GIT_ALLOW_PROTOCOL=file:git:http:https:ssh",
		"LC_ALL=C",
	)
}

// stripCredentials returns raw without the user info of an http(s) URL, and the user name and
// password it held; other URLs are returned as they are.
func stripCredentials(raw string) (clean, user, pass string) {
	if !isHTTPURL(raw) {
		return raw, "", ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw, "", ""
	}
	user = u.User.Username()
	pass, _ = u.User.Password()
	u.User = nil
	return u.String(), user, pass
}

func isHTTPURL(raw string) bool {
	s := strings.ToLower(raw)
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// validSHA reports whether s is a full lower-case commit SHA: 40 hex digits (64 for SHA-256
// repositories).
func validSHA(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}

// validRefName reports whether a branch or tag name is one git accepts and that is safe to put
// on git's command line (a subset of git check-ref-format).
func validRefName(s string) bool {
	return s != "" && !strings.HasPrefix(s, "-") && !strings.HasPrefix(s, "/") && !strings.HasSuffix(s, "/") &&
		!strings.HasSuffix(s, ".lock") && !strings.HasSuffix(s, ".") &&
		!strings.Contains(s, "..") && !strings.Contains(s, "//") && !strings.Contains(s, "@{") &&
		!strings.ContainsAny(s, " \t:*?[\\^~") && !strings.ContainsFunc(s, isControl)
}

// eventGit is the run.Git of a run started by e, an event githost.Match accepted for src. The
// repository is src.URL, what the pipeline's admin configured and the server can reach (Match
// made sure it is the event's repository); the commit is the pushed one (pull requests: the
// head of the source branch; tags: the tagged commit when the host names it).
func eventGit(src *pipeline.Source, e *githost.Event) *run.Git {
	g := &run.Git{
		RepoURL:        src.URL,
		SHA:            strings.ToLower(strings.TrimSpace(e.After)),
		Ref:            e.Ref,
		Branch:         e.Branch,
		Tag:            e.Tag,
		Event:          string(e.Kind),
		Provider:       string(e.Provider),
		CredentialsVar: src.Credentials,
		StatusTokenVar: src.StatusToken,
	}
	if h := e.HeadCommit; h != nil {
		g.Message, g.Author = h.Message, h.Author
		// An annotated tag's push names the tag object in After and the commit in HeadCommit.
		if id := strings.ToLower(h.ID); e.Kind == githost.KindTag && validSHA(id) {
			g.SHA = id
		}
	}
	if e.Kind == githost.KindPullRequest {
		g.Tag = ""
		if pr := e.PullRequest; pr != nil {
			g.Message = pr.Title
			if sha := strings.ToLower(pr.HeadSHA); validSHA(sha) {
				g.SHA = sha
			}
		}
	}
	return g
}

// eventMap is e as CEL rules see it (the event variable), with snake_case keys.
func eventMap(e *githost.Event) map[string]any {
	if e == nil {
		return nil
	}
	commits := make([]any, 0, len(e.Commits))
	for _, c := range e.Commits {
		commits = append(commits, map[string]any{"id": c.ID, "message": c.Message, "author": c.Author})
	}
	m := map[string]any{
		"provider":  string(e.Provider),
		"kind":      string(e.Kind),
		"raw_event": e.RawEvent,
		"ref":       e.Ref,
		"branch":    e.Branch,
		"tag":       e.Tag,
		"before":    e.Before,
		"after":     e.After,
		"created":   e.Created,
		"deleted":   e.Deleted,
		"repo_name": e.RepoName,
		"repo_url":  e.CloneURL,
		"commits":   commits,
		"pusher":    e.Pusher,
	}
	if pr := e.PullRequest; pr != nil {
		m["pull_request"] = map[string]any{
			"number": int64(pr.Number), "action": pr.Action, "title": pr.Title,
			"source_branch": pr.SourceBranch, "target_branch": pr.TargetBranch,
			"head_sha": pr.HeadSHA, "url": pr.URL,
		}
	} else {
		m["pull_request"] = nil
	}
	return m
}

// gitMap is the event variable of a run that no Git host event started (a manual run, a general
// webhook) of a pipeline with a source: what the run builds, in eventMap's shape.
func gitMap(g *run.Git) map[string]any {
	if g == nil {
		return nil
	}
	return map[string]any{
		"provider": g.Provider, "kind": g.Event, "raw_event": "", "ref": g.Ref, "branch": g.Branch,
		"tag": g.Tag, "before": "", "after": g.SHA, "created": false, "deleted": false,
		"repo_name": "", "repo_url": g.RepoURL, "commits": []any{}, "pusher": "", "pull_request": nil,
	}
}
