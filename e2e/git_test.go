package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// gitRepo is a local bare repository with real commits: two on main, one on feature/x, and a
// tag v1.0 at main's first commit.
type gitRepo struct {
	Bare              string
	Main, MainPrev    string
	Feature, TagValue string
}

func newGitRepo(t *testing.T) gitRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	dir := t.TempDir()
	// Checkouts run as the job's step user, who must be able to read the repository, as with
	// a repository on any server's disk.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=Ann Example", "-c", "user.email=ann@example.com",
			"-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)...)
		cmd.Dir = work
		cmd.Env = append(baseEnv(t), "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	var r gitRepo
	git("init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(work, "README"), []byte("one\n"), 0o644)
	git("add", "README")
	git("commit", "-q", "-m", "first")
	r.MainPrev = git("rev-parse", "HEAD")
	git("tag", "v1.0")
	r.TagValue = r.MainPrev
	os.WriteFile(filepath.Join(work, "README"), []byte("two\n"), 0o644)
	git("commit", "-q", "-am", "second")
	r.Main = git("rev-parse", "HEAD")
	git("checkout", "-q", "-b", "feature/x")
	os.WriteFile(filepath.Join(work, "FEATURE"), []byte("x\n"), 0o644)
	git("add", "FEATURE")
	git("commit", "-q", "-m", "feature")
	r.Feature = git("rev-parse", "HEAD")
	r.Bare = filepath.Join(dir, "app.git")
	git("clone", "-q", "--bare", work, r.Bare)
	return r
}

// gitPush describes one push event to build as a host sends it.
type gitPush struct {
	Ref, Before, After string
	Repo               string // the repository URL every URL field of the payload gets
	Deleted            bool
}

const zeroSHA = "0000000000000000000000000000000000000000"

// payload is the body host sends for p, and its event header value.
func (p gitPush) payload(host string) (body []byte, event string) {
	name := strings.TrimPrefix(strings.TrimPrefix(p.Ref, "refs/heads/"), "refs/tags/")
	isTag := strings.HasPrefix(p.Ref, "refs/tags/")
	commit := map[string]any{"id": p.After, "message": "second", "author": map[string]any{"name": "Ann Example"}, "timestamp": "2024-01-02T03:04:05Z"}
	commits := []any{commit}
	var head any = commit
	if p.Deleted {
		commits, head = []any{}, nil
	}
	var v any
	switch host {
	case "github", "gitea", "gogs":
		event = "push"
		v = map[string]any{"ref": p.Ref, "before": p.Before, "after": p.After, "created": false, "deleted": p.Deleted,
			"repository": map[string]any{"full_name": "acme/app", "clone_url": p.Repo, "html_url": p.Repo},
			"pusher":     map[string]any{"name": "ann"}, "head_commit": head, "commits": commits}
	case "gitlab", "codeup":
		event = "Push Hook"
		if isTag {
			event = "Tag Push Hook"
		}
		kind := "push"
		if isTag {
			kind = "tag_push"
		}
		v = map[string]any{"object_kind": kind, "ref": p.Ref, "before": p.Before, "after": p.After, "user_username": "ann",
			"project":    map[string]any{"path_with_namespace": "acme/app", "git_http_url": p.Repo, "web_url": p.Repo},
			"repository": map[string]any{"name": "app", "url": p.Repo, "homepage": p.Repo},
			"commits":    commits, "total_commits_count": len(commits)}
	case "bitbucket":
		event = "repo:push"
		typ := "branch"
		if isTag {
			typ = "tag"
		}
		change := map[string]any{"created": false, "closed": p.Deleted, "truncated": false,
			"old":     map[string]any{"type": typ, "name": name, "target": map[string]any{"hash": p.Before}},
			"commits": []any{map[string]any{"hash": p.After, "message": "second", "author": map[string]any{"raw": "Ann Example <ann@example.com>"}}}}
		if !p.Deleted {
			change["new"] = map[string]any{"type": typ, "name": name,
				"target": map[string]any{"hash": p.After, "message": "second", "author": map[string]any{"raw": "Ann Example <ann@example.com>"}}}
		}
		v = map[string]any{"actor": map[string]any{"nickname": "ann"},
			"repository": map[string]any{"full_name": "acme/app", "links": map[string]any{"html": map[string]any{"href": p.Repo}}},
			"push":       map[string]any{"changes": []any{change}}}
	case "bitbucket-server":
		event = "repo:refs_changed"
		typ := "UPDATE"
		if p.Deleted {
			typ = "DELETE"
		}
		v = map[string]any{"eventKey": event, "actor": map[string]any{"name": "ann"},
			"repository": map[string]any{"slug": "app", "project": map[string]any{"key": "ACME"},
				"links": map[string]any{"clone": []any{map[string]any{"href": p.Repo, "name": "http"}}}},
			"changes": []any{map[string]any{"ref": map[string]any{"id": p.Ref, "displayId": name, "type": "BRANCH"},
				"refId": p.Ref, "fromHash": p.Before, "toHash": p.After, "type": typ}}}
	}
	body, _ = json.Marshal(v)
	return body, event
}

// hostHeaders are the headers host sends with body: its event header, the delivery id (hosts
// that have one) and the secret or signature as the host computes it.
func hostHeaders(host, event, id string, body []byte, secret string) []string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	sum := hex.EncodeToString(mac.Sum(nil))
	switch host {
	case "github":
		return []string{"X-GitHub-Event", event, "X-GitHub-Delivery", id, "X-Hub-Signature-256", "sha256=" + sum}
	case "gitlab":
		return []string{"X-Gitlab-Event", event, "X-Gitlab-Event-UUID", id, "X-Gitlab-Token", secret}
	case "codeup":
		return []string{"Codeup-Event", event, "X-Codeup-Token", secret}
	case "gitea":
		return []string{"X-Gitea-Event", event, "X-Gitea-Delivery", id, "X-Gitea-Signature", sum}
	case "gogs":
		return []string{"X-Gogs-Event", event, "X-Gogs-Delivery", id, "X-Gogs-Signature", sum}
	case "bitbucket":
		return []string{"X-Event-Key", event, "X-Request-UUID", id, "X-Hub-Signature", "sha256=" + sum}
	case "bitbucket-server":
		return []string{"X-Event-Key", event, "X-Request-Id", id, "X-Hub-Signature", "sha256=" + sum}
	}
	return nil
}

var deliveryCounter atomic.Int64

// send builds host's payload for p, signs it with secret and posts it to hook.
func send(t *testing.T, hook, host string, p gitPush, secret string) (int, webhookAnswer) {
	t.Helper()
	body, event := p.payload(host)
	id := fmt.Sprintf("delivery-%d", deliveryCounter.Add(1))
	status, a, _ := post(t, hook, string(body), hostHeaders(host, event, id, body, secret)...)
	return status, a
}

// gitRunView is a run's git part.
type gitRunView struct {
	Status  string `json:"status"`
	Trigger string `json:"trigger"`
	Message string `json:"message"`
	Git     *struct {
		SHA      string `json:"commit_sha"`
		Branch   string `json:"branch"`
		Tag      string `json:"tag"`
		Event    string `json:"event"`
		Provider string `json:"provider"`
	} `json:"git"`
	ConcurrencyGroup string `json:"concurrency_group"`
}

func (s *server) gitRun(token string, id int64) gitRunView {
	s.t.Helper()
	var v gitRunView
	if code := s.api(token, "GET", fmt.Sprintf("/api/v1/runs/%d", id), nil, &v); code != 200 {
		s.t.Fatalf("GET run %d: %d", id, code)
	}
	return v
}

// waitLog waits for run id to succeed and returns its log.
func (s *server) waitLog(token string, id int64) string {
	s.t.Helper()
	waitFor(s.t, fmt.Sprintf("run %d to end", id), func() bool {
		st := s.gitRun(token, id).Status
		return st == "success" || st == "failed" || st == "canceled"
	})
	log := s.log(token, id)
	if st := s.gitRun(token, id).Status; st != "success" {
		s.t.Fatalf("run %d ended %s:\n%s", id, st, log)
	}
	return log
}

// gitPipeline is the pipeline whose step prints what it checked out.
func gitPipeline(name, repoURL, extra, script string) string {
	return `name: ` + name + `
source:
  url: ` + repoURL + `
  branches: [main]
  tags: ["v*"]
` + extra + `stages:
  - name: build
    jobs:
      - name: show
        steps:
          - run: |
` + script
}

const showScript = `              echo "HEAD=$(git rev-parse HEAD)"
              echo "GIT=$FLOWD_COMMIT_SHA $FLOWD_BRANCH$FLOWD_TAG $FLOWD_EVENT"
`

// enableHook creates the pipeline and enables its webhook with secret; it returns the URL.
func (s *server) enableHook(token, yaml, name, secret string) string {
	s.t.Helper()
	if code := s.api(token, "POST", "/api/v1/pipelines", yaml, nil); code != 201 {
		s.t.Fatalf("create pipeline %s: %d", name, code)
	}
	var trig struct {
		URL *string `json:"url"`
	}
	if code := s.api(token, "POST", "/api/v1/pipelines/"+name+"/triggers/webhook/enable", map[string]any{"secret": secret}, &trig); code != 200 || trig.URL == nil {
		s.t.Fatalf("enable webhook of %s: %d", name, code)
	}
	return *trig.URL
}

// TestGitSourceWebhook: every host's push, signed as the host signs it, starts a run that
// checks out exactly the pushed commit of a real local repository.
func TestGitSourceWebhook(t *testing.T) {
	t.Parallel()
	rp := newGitRepo(t)
	const secret = "s3cret-hook"
	hosts := []string{"github", "gitlab", "gitea", "gogs", "bitbucket", "bitbucket-server", "codeup"}

	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			data, dsn := newDatabase(t, dialect)
			srv := startServer(t, data, dsn)
			admin := srv.token("admin", adminPassword)
			hook := srv.enableHook(admin, gitPipeline("app", rp.Bare, "", showScript), "app", secret)
			mainPush := gitPush{Ref: "refs/heads/main", Before: rp.MainPrev, After: rp.Main, Repo: rp.Bare}

			check := func(host string, p gitPush, want string) {
				t.Helper()
				status, a := send(t, hook, host, p, secret)
				if status != 202 || a.Run == nil {
					t.Fatalf("%s push %s: %d %+v", host, p.After, status, a)
				}
				log := srv.waitLog(admin, a.Run.ID)
				if !strings.Contains(log, "HEAD="+p.After+"\n") || !strings.Contains(log, "GIT="+p.After+" "+want+"\n") {
					t.Fatalf("%s: run %d log lacks HEAD=%s and GIT=%s %s:\n%s", host, a.Run.ID, p.After, p.After, want, log)
				}
				v := srv.gitRun(admin, a.Run.ID)
				if v.Trigger != "push" || v.Git == nil || v.Git.Provider != host {
					t.Fatalf("%s: run %+v", host, v)
				}
			}

			if dialect != "sqlite" {
				check("github", mainPush, "main push") // the GitHub path on PostgreSQL
				return
			}
			for _, host := range hosts {
				check(host, mainPush, "main push")
			}
			// An older commit of main lands exactly; so does a tag.
			check("github", gitPush{Ref: "refs/heads/main", Before: rp.Main, After: rp.MainPrev, Repo: rp.Bare}, "main push")
			check("gitlab", gitPush{Ref: "refs/tags/v1.0", Before: zeroSHA, After: rp.TagValue, Repo: rp.Bare}, "v1.0 tag")

			// A wrong signature, per host.
			for _, host := range hosts {
				if status, a := send(t, hook, host, mainPush, "wrong"); status != 401 || a.Error == nil || a.Error.Code != "invalid_signature" {
					t.Errorf("%s wrong secret: %d %+v", host, status, a.Error)
				}
			}
			// Another branch, a deleted branch: 200, no run, the reason names the rule.
			status, a := send(t, hook, "gitea", gitPush{Ref: "refs/heads/feature/x", Before: rp.Main, After: rp.Feature, Repo: rp.Bare}, secret)
			if status != 200 || a.Run != nil || a.Skipped == nil || !strings.Contains(*a.Skipped, "source.branches") {
				t.Errorf("feature/x: %d %+v", status, a)
			}
			for _, host := range []string{"github", "bitbucket-server"} {
				status, a = send(t, hook, host, gitPush{Ref: "refs/heads/main", Before: rp.Main, After: zeroSHA, Repo: rp.Bare, Deleted: true}, secret)
				if status != 200 || a.Run != nil || a.Skipped == nil || !strings.Contains(*a.Skipped, `branch "main" was deleted`) {
					t.Errorf("%s deleted main: %d %+v", host, status, a)
				}
			}
			// A ping.
			ping := `{"zen":"Keep it logically awesome.","hook_id":1,"repository":{"full_name":"acme/app","clone_url":"` + rp.Bare + `"}}`
			status, a, _ = post(t, hook, ping, hostHeaders("github", "ping", "ping-1", []byte(ping), secret)...)
			if status != 200 || a.Run != nil || a.Skipped == nil || !strings.HasPrefix(*a.Skipped, "ping event") {
				t.Errorf("ping: %d %+v", status, a)
			}

			// The same delivery id twice: one run.
			body, event := mainPush.payload("gitlab")
			headers := hostHeaders("gitlab", event, "same-uuid", body, secret)
			s1, a1, _ := post(t, hook, string(body), headers...)
			s2, a2, _ := post(t, hook, string(body), headers...)
			if s1 != 202 || s2 != 202 || a1.Run == nil || a2.Run == nil || a2.Run.ID != a1.Run.ID || !a2.Replayed {
				t.Errorf("same delivery twice: %d %+v / %d %+v", s1, a1.Run, s2, a2)
			}
			srv.waitLog(admin, a1.Run.ID)

			// A manual run of a tag, through the CLI.
			out, errOut, code := srv.cli(admin, "run", "app", "--tag", "v1.0", "--follow")
			if code != 0 || !strings.Contains(out, "HEAD="+rp.TagValue) || !strings.Contains(out, "GIT="+rp.TagValue+" v1.0 manual") {
				t.Errorf("flowd run --tag: %d\n%s%s", code, out, errOut)
			}
			if _, errOut, code := srv.cli(admin, "run", "app", "--branch", "nope"); code == 0 || !strings.Contains(errOut, "branch nope is not in") {
				t.Errorf("flowd run --branch nope: %d %s", code, errOut)
			}
		})
	}
}

// TestGitSourceSupersede: with concurrency {group: branch, cancel_previous: true}, a second
// push to a branch cancels the first run, still running, with "superseded by run #2".
func TestGitSourceSupersede(t *testing.T) {
	t.Parallel()
	rp := newGitRepo(t)
	data, dsn := newDatabase(t, "sqlite")
	srv := startServer(t, data, dsn)
	admin := srv.token("admin", adminPassword)
	marker := fmt.Sprintf("flowd-e2e-supersede-%d", os.Getpid())
	t.Cleanup(func() { killProcesses(marker) })
	yaml := gitPipeline("slow", rp.Bare, "concurrency: {group: branch, cancel_previous: true}\n",
		`              echo "HEAD=$(git rev-parse HEAD)"
              sleep 30 # `+marker+`
`)
	hook := srv.enableHook(admin, yaml, "slow", "k")

	status, first := send(t, hook, "github", gitPush{Ref: "refs/heads/main", Before: rp.MainPrev, After: rp.Main, Repo: rp.Bare}, "k")
	if status != 202 || first.Run == nil {
		t.Fatalf("first push: %d %+v", status, first)
	}
	waitFor(t, "the first run's step to run", func() bool {
		return strings.Contains(srv.log(admin, first.Run.ID), "HEAD=")
	})
	pushed := time.Now()
	status, second := send(t, hook, "github", gitPush{Ref: "refs/heads/main", Before: rp.Main, After: rp.MainPrev, Repo: rp.Bare}, "k")
	if status != 202 || second.Run == nil || second.Run.Number != 2 {
		t.Fatalf("second push: %d %+v", status, second)
	}
	superseded := false
	for _, s := range second.Trace {
		if s.Step == "concurrency" && strings.Contains(s.Detail, "superseded runs #1") {
			superseded = true
		}
	}
	if !superseded {
		t.Errorf("second push's trace names no superseded run: %+v", second.Trace)
	}
	waitFor(t, "the first run to be canceled", func() bool { return srv.gitRun(admin, first.Run.ID).Status == "canceled" })
	if took := time.Since(pushed); took > 10*time.Second { // its step sleeps 30 s: it was stopped, not waited for
		t.Errorf("the first run took %v to stop after the second push", took)
	}
	if v := srv.gitRun(admin, first.Run.ID); !strings.Contains(v.Message, "superseded by run #2") || v.ConcurrencyGroup != "main" {
		t.Errorf("first run: %+v", v)
	}
	waitFor(t, "the second run's step to run", func() bool {
		return strings.Contains(srv.log(admin, second.Run.ID), "HEAD="+rp.MainPrev)
	})
	var canceled gitRunView
	if code := srv.api(admin, "POST", fmt.Sprintf("/api/v1/runs/%d/cancel", second.Run.ID), nil, &canceled); code != 202 || canceled.Status != "canceling" {
		t.Errorf("cancel the second run: %d %+v; want 202 canceling", code, canceled)
	}
	waitFor(t, "the second run to end canceled", func() bool { return srv.gitRun(admin, second.Run.ID).Status == "canceled" })
}
