package trigger_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/trigger"
	"github.com/flowd/flowd/internal/webhook"
	"github.com/flowd/flowd/internal/webhook/githost"
)

// fixtures is the folder of the Git hosts' real payloads (the githost package's copy of
// shared/fixtures/webhooks, so the tests need nothing outside the repository).
const fixtures = "../webhook/githost/testdata/fixtures"

// fixture reads a payload of fixtures.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hostRequest is the headers host sends with body for event (its event header value), signed
// with secret as the host signs ("" = unsigned), with delivery id id ("" = none).
func hostRequest(host githost.Provider, event, id string, body []byte, secret string) http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	sum := hex.EncodeToString(mac.Sum(nil))
	set := func(k, v string) {
		if v != "" {
			h.Set(k, v)
		}
	}
	switch host {
	case githost.GitHub:
		set("X-GitHub-Event", event)
		set("X-GitHub-Delivery", id)
		if secret != "" {
			h.Set("X-Hub-Signature-256", "sha256="+sum)
		}
	case githost.GitLab:
		set("X-Gitlab-Event", event)
		set("X-Gitlab-Event-UUID", id)
		set("X-Gitlab-Token", secret)
	case githost.Codeup:
		set("Codeup-Event", event)
		set("X-Codeup-Token", secret)
	case githost.Gitea:
		set("X-Gitea-Event", event)
		set("X-Gitea-Delivery", id)
		if secret != "" {
			h.Set("X-Gitea-Signature", sum)
		}
	case githost.Gogs:
		set("X-Gogs-Event", event)
		set("X-Gogs-Delivery", id)
		if secret != "" {
			h.Set("X-Gogs-Signature", sum)
		}
	case githost.Bitbucket:
		set("X-Event-Key", event)
		set("X-Request-UUID", id)
		if secret != "" {
			h.Set("X-Hub-Signature", "sha256="+sum)
		}
	case githost.BitbucketServer:
		set("X-Event-Key", event)
		set("X-Request-Id", id)
		if secret != "" {
			h.Set("X-Hub-Signature", "sha256="+sum)
		}
	}
	return h
}

// hook stores a pipeline from yaml (owned by alice, a developer of it through creating it) with
// an enabled webhook trigger whose signature secret is secret ("" = none), and returns the
// delivery service and the trigger's token.
func hook(t *testing.T, st *store.Store, yaml, secret string) (*trigger.Webhooks, store.Pipeline, string) {
	t.Helper()
	ctx := context.Background()
	box := newBox(t)
	svc := &trigger.Webhooks{Store: st, Runs: &trigger.Service{Store: st, Box: box}, Box: box}
	u, err := st.UserGet(ctx, "alice")
	if errors.Is(err, store.ErrNotFound) {
		hash, _ := auth.HashPasswordCost("password1", 4)
		u, err = st.UserCreate(ctx, "alice", hash, false)
	}
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.PipelineCreate(ctx, pipelineName(yaml), yaml, nil, u.ID)
	if err != nil {
		t.Fatalf("create pipeline: %v\n%s", err, yaml)
	}
	token, hash, err := trigger.NewWebhookToken()
	if err != nil {
		t.Fatal(err)
	}
	tokSealed, _ := box.Seal([]byte(token))
	params := store.WebhookEnable{PipelineID: p.ID, OwnerID: u.ID, TokenHash: hash, TokenSealed: tokSealed}
	if secret != "" {
		params.SetSecret = true
		params.SecretSealed, _ = box.Seal([]byte(secret))
	}
	if _, err := st.WebhookEnable(ctx, params); err != nil {
		t.Fatal(err)
	}
	return svc, p, token
}

func pipelineName(yaml string) string {
	for _, line := range strings.Split(yaml, "\n") {
		if v, ok := strings.CutPrefix(line, "name: "); ok {
			return strings.TrimSpace(v)
		}
	}
	return "p"
}

// reply is a webhook answer as the tests read it.
type reply struct {
	Run *struct {
		ID     int64 `json:"id"`
		Number int64 `json:"number"`
	} `json:"run"`
	Skipped *string `json:"skipped"`
	Error   *struct {
		Code, Message string
		Problems      []struct{ Key, Message string }
	} `json:"error"`
	Trace webhook.Trace     `json:"trace"`
	Git   *run.Git          `json:"git"`
	Vars  map[string]string `json:"variables"`
}

func deliver(t *testing.T, svc *trigger.Webhooks, in trigger.Incoming) (trigger.Outcome, reply) {
	t.Helper()
	out := svc.Deliver(context.Background(), in)
	var r reply
	if err := json.Unmarshal(out.Body, &r); err != nil {
		t.Fatalf("answer %s %s: %v", out.Code, out.Body, err)
	}
	return out, r
}

// step returns the trace's last step called name.
func step(tr webhook.Trace, name string) (webhook.Step, bool) {
	for i := len(tr) - 1; i >= 0; i-- {
		if tr[i].Step == name {
			return tr[i], true
		}
	}
	return webhook.Step{}, false
}

// repo is a local bare Git repository with real commits.
type repo struct {
	Bare           string
	Main, MainPrev string // main's head and its parent
	Feature        string // head of feature/x
	Tag            string // the commit tag v1.0 points at (annotated)
}

// newRepo makes a bare repository with two commits on main, one on feature/x and an annotated
// tag v1.0 at main's first commit.
func newRepo(t *testing.T) repo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	dir := t.TempDir()
	work, bare := filepath.Join(dir, "work"), filepath.Join(dir, "app.git")
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=Test", "-c", "user.email=test@example.com",
			"-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	var r repo
	git("init", "-q", "-b", "main")
	git("commit", "-q", "--allow-empty", "-m", "first")
	r.MainPrev = git("rev-parse", "HEAD")
	git("tag", "-a", "v1.0", "-m", "release 1.0")
	r.Tag = r.MainPrev
	git("commit", "-q", "--allow-empty", "-m", "second")
	r.Main = git("rev-parse", "HEAD")
	git("checkout", "-q", "-b", "feature/x")
	git("commit", "-q", "--allow-empty", "-m", "feature")
	r.Feature = git("rev-parse", "HEAD")
	git("clone", "-q", "--bare", work, bare)
	r.Bare = bare
	return r
}

// TestGitHostFixtures: each host's real payload, sent with its headers, starts a push run at
// its commit or is skipped with the reason naming the rule.
func TestGitHostFixtures(t *testing.T) {
	t.Parallel()
	type want struct {
		sha, branch, tag, event string
		skipped                 string // substring of the reason; "" = a run starts
	}
	cases := []struct {
		name     string
		host     githost.Provider
		event    string
		file     string
		source   string // YAML under source: besides url
		otherURL bool   // the pipeline's source is another repository
		want     want
	}{
		{"github push", githost.GitHub, "push", "github/push.json", "branches: [master]",
			false, want{sha: "fd489864e7642b48eaad6e3f155c10e46810ec72", branch: "master", event: "push"}},
		{"github push other branch", githost.GitHub, "push", "github/push.json", "branches: [main]",
			false, want{skipped: `branch "master" matches none of source.branches [main]`}},
		{"github push other repository", githost.GitHub, "push", "github/push.json", "branches: [master]",
			true, want{skipped: "is not source.url"}},
		{"github ping", githost.GitHub, "ping", "github/ping.json", "branches: [master]",
			false, want{skipped: "ping event"}},
		{"github pull request off", githost.GitHub, "pull_request", "github/pull-request.json", "branches: [master]",
			false, want{skipped: "pull_request events are off: add pull_request to source.events"}},
		{"github pull request on", githost.GitHub, "pull_request", "github/pull-request.json", "{branches: [master], events: [push, pull_request]}",
			false, want{sha: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", branch: "changes", event: "pull_request"}},
		{"gitlab push", githost.GitLab, "Push Hook", "gitlab/push-event.json", "branches: [master]",
			false, want{sha: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", branch: "master", event: "push"}},
		{"gitlab tag", githost.GitLab, "Tag Push Hook", "gitlab/tag-event.json", `tags: ["v*"]`,
			false, want{sha: "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7", tag: "v1.0.0", event: "tag"}},
		{"gitlab tag off", githost.GitLab, "Tag Push Hook", "gitlab/tag-event.json", "branches: [master]",
			false, want{skipped: "tag builds are off: source.tags is not set"}},
		{"gitlab merge request", githost.GitLab, "Merge Request Hook", "gitlab/merge-request-event.json", "events: [pull_request]",
			false, want{sha: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", branch: "ms-viewport", event: "pull_request"}},
		{"codeup push", githost.Codeup, "Push Hook", "codeup/push-event.json", "branches: [master]",
			false, want{sha: "eb63d0277e64684236ebf8394b919230c4b8a286", branch: "master", event: "push"}},
		{"gitea push", githost.Gitea, "push", "gitea/push-event.json", "branches: [master]",
			false, want{sha: "67b56589a45103f891bdee7c0546e5d40bc02001", branch: "master", event: "push"}},
		{"gogs push", githost.Gogs, "push", "gogs/push-event.json", "branches: [develop]",
			false, want{sha: "bffeb74224043ba2feb48d137756c8a9331c449a", branch: "develop", event: "push"}},
		{"gogs push other branch", githost.Gogs, "push", "gogs/push-event.json", "branches: [master]",
			false, want{skipped: "matches none of source.branches"}},
		{"bitbucket push", githost.Bitbucket, "repo:push", "bitbucket/repo-push.json", "{}",
			false, want{sha: "709d658dc5b6d6afcd46049c2f332ee3f515a67d", branch: "name-of-branch", event: "push"}},
		{"bitbucket server branch deleted", githost.BitbucketServer, "repo:refs_changed", "bitbucket-server/repo-refs-changed.json", "{}",
			false, want{skipped: `branch "feature/wip" was deleted`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			body := fixture(t, c.file)
			const secret = "hook-secret"
			h := hostRequest(c.host, c.event, "", body, secret)
			e, err := githost.Parse(c.host, h, body)
			if err != nil {
				t.Fatal(err)
			}
			url := e.CloneURL
			if c.otherURL || url == "" {
				url = "https://git.example.com/someone/else.git"
			}
			st := storetestOpen(t)
			src := "{url: " + url + ", " + strings.Trim(c.source, "{}") + "}"
			svc, p, token := hook(t, st, "name: app\nsource: "+src+"\nstages:\n  - name: s\n    jobs:\n      - name: j\n        steps:\n          - run: 'true'\n", secret)
			out, r := deliver(t, svc, trigger.Incoming{Token: token, Headers: h, Body: body})
			if c.want.skipped != "" {
				if out.Code != trigger.CodeSkipped || r.Run != nil || r.Skipped == nil || !strings.Contains(*r.Skipped, c.want.skipped) {
					t.Fatalf("got %s %s, want skipped %q", out.Code, out.Body, c.want.skipped)
				}
				last := r.Trace[len(r.Trace)-1]
				if last.Step != "source" || last.OK || last.Detail != *r.Skipped {
					t.Errorf("trace ends %+v, want the failed source step", last)
				}
				d, err := st.DeliveryGet(context.Background(), out.DeliveryID)
				if err != nil || d.ErrorCode != "" || d.RunID != nil || !strings.Contains(string(d.Trace), `"step":"source","ok":false`) {
					t.Errorf("stored delivery %+v %v", d, err)
				}
				return
			}
			if out.Code != trigger.CodeStarted || r.Run == nil {
				t.Fatalf("got %s %s, want 202 and a run", out.Code, out.Body)
			}
			got, err := st.RunGet(context.Background(), r.Run.ID)
			if err != nil {
				t.Fatal(err)
			}
			g := got.Git
			if got.Trigger != run.TriggerPush || got.TriggeredBy != "alice" || got.PipelineID != p.ID || g == nil {
				t.Fatalf("run %+v", got)
			}
			if g.SHA != c.want.sha || g.Branch != c.want.branch || g.Tag != c.want.tag || g.Event != c.want.event ||
				g.Provider != string(c.host) || g.RepoURL != url {
				t.Errorf("git = %+v, want %+v at %s", *g, c.want, url)
			}
			if s, ok := step(r.Trace, "source"); !ok || !s.OK || !strings.Contains(s.Detail, c.want.sha) {
				t.Errorf("source step %+v", s)
			}
		})
	}
}

// TestGitHostSignature: each host's way of signing is checked when the trigger has a secret;
// a wrong or missing one is 401 invalid_signature naming the host's header.
func TestGitHostSignature(t *testing.T) {
	t.Parallel()
	st := storetestOpen(t)
	svc, _, token := hook(t, st, "name: app\nsource: {url: https://git.example.com/acme/app.git}\nstages:\n  - name: s\n    jobs:\n      - name: j\n        steps:\n          - run: 'true'\n", "right")
	hosts := []struct {
		host          githost.Provider
		event, file   string
		header        string
		signatureLine string
	}{
		{githost.GitHub, "push", "github/push.json", "X-Hub-Signature-256", "github: X-Hub-Signature-256 matches"},
		{githost.GitLab, "Push Hook", "gitlab/push-event.json", "X-Gitlab-Token", "gitlab: X-Gitlab-Token matches"},
		{githost.Codeup, "Push Hook", "codeup/push-event.json", "X-Codeup-Token", "codeup: X-Codeup-Token matches"},
		{githost.Gitea, "push", "gitea/push-event.json", "X-Gitea-Signature", "gitea: X-Gitea-Signature"},
		{githost.Gogs, "push", "gogs/push-event.json", "X-Gogs-Signature", "gogs: X-Gogs-Signature matches"},
		{githost.Bitbucket, "repo:push", "bitbucket/repo-push.json", "X-Hub-Signature", "bitbucket: X-Hub-Signature matches"},
		{githost.BitbucketServer, "repo:refs_changed", "bitbucket-server/repo-refs-changed.json", "X-Hub-Signature", "bitbucket-server: X-Hub-Signature matches"},
	}
	for _, hc := range hosts {
		body := fixture(t, hc.file)
		// Right: past the signature (then skipped: another repository).
		out, r := deliver(t, svc, trigger.Incoming{Token: token, Headers: hostRequest(hc.host, hc.event, "", body, "right"), Body: body})
		if s, ok := step(r.Trace, "signature"); out.Code != trigger.CodeSkipped || !ok || !s.OK || !strings.Contains(s.Detail, hc.signatureLine) {
			t.Errorf("%s signed right: %s %s", hc.host, out.Code, out.Body)
		}
		for _, bad := range []string{"wrong", ""} {
			out, r = deliver(t, svc, trigger.Incoming{Token: token, Headers: hostRequest(hc.host, hc.event, "", body, bad), Body: body})
			if out.Code != trigger.CodeInvalidSignature || r.Error == nil || r.Error.Code != "invalid_signature" || !strings.Contains(r.Error.Message, hc.header) {
				t.Errorf("%s signed %q: %s %s", hc.host, bad, out.Code, out.Body)
			}
			if last := r.Trace[len(r.Trace)-1]; last.Step != "signature" || last.OK {
				t.Errorf("%s signed %q: trace ends %+v", hc.host, bad, last)
			}
		}
	}
	// The generic signature is not enough for a host that signs otherwise.
	body := fixture(t, "gitea/push-event.json")
	h := hostRequest(githost.Gitea, "push", "", body, "")
	h.Set("X-Hub-Signature-256", sign("right", string(body)))
	if out, _ := deliver(t, svc, trigger.Incoming{Token: token, Headers: h, Body: body}); out.Code != trigger.CodeInvalidSignature {
		t.Errorf("gitea with a GitHub signature: %s %s", out.Code, out.Body)
	}
}

// TestGitHostDeduplication: the host's delivery id, or for Codeup (which sends none) the
// pushed ref and commit, makes a repeat answer the first answer without a second run.
func TestGitHostDeduplication(t *testing.T) {
	t.Parallel()
	st := storetestOpen(t)
	cases := []struct {
		host        githost.Provider
		event, file string
		id          string
	}{
		{githost.GitHub, "push", "github/push.json", "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
		{githost.GitLab, "Push Hook", "gitlab/push-event.json", "6f1a"},
		{githost.Gitea, "push", "gitea/push-event.json", "f6266f16-1bf3-46a5-9ea4-602e06ead473"},
		{githost.Gogs, "push", "gogs/push-event.json", "d1a7c5f0"},
		{githost.Bitbucket, "repo:push", "bitbucket/repo-push.json", "{c1f2}"},
		{githost.Codeup, "Push Hook", "codeup/push-event.json", ""},
	}
	for i, c := range cases {
		body := fixture(t, c.file)
		h := hostRequest(c.host, c.event, c.id, body, "")
		e, err := githost.Parse(c.host, h, body)
		if err != nil {
			t.Fatal(err)
		}
		name := "app" + string(rune('a'+i))
		svc, p, token := hook(t, st, "name: "+name+"\nsource: {url: "+e.CloneURL+"}\nstages:\n  - name: s\n    jobs:\n      - name: j\n        steps:\n          - run: 'true'\n", "")
		in := trigger.Incoming{Token: token, Headers: h, Body: body}
		if c.host == githost.GitHub || c.host == githost.GitLab || c.host == githost.Gitea || c.host == githost.Gogs {
			in.IdempotencyKey = "api-derived:" + c.id // as the API derives it from the header
		}
		first, _ := deliver(t, svc, in)
		second, r := deliver(t, svc, in)
		if first.Code != trigger.CodeStarted || second.Code != trigger.CodeReplayed || !second.Replayed || second.RunID != first.RunID || r.Run == nil {
			t.Errorf("%s: first %s %s, second %s %s", c.host, first.Code, first.Body, second.Code, second.Body)
		}
		runs, err := st.RunList(context.Background(), p.ID, store.RunListParams{})
		if err != nil || len(runs) != 1 {
			t.Errorf("%s: %d runs (%v), want 1", c.host, len(runs), err)
		}
	}
}

// TestSourceWithoutEvent: a payload that is not a Git host event, sent to a pipeline with a
// source, builds the head of its default branch; manual runs choose a branch, tag or commit.
func TestSourceWithoutEvent(t *testing.T) {
	t.Parallel()
	rp := newRepo(t)
	st := storetestOpen(t)
	ctx := context.Background()
	def := "name: app\nsource: {url: " + rp.Bare + ", branches: [main, 'release/*'], tags: ['v*']}\nvariables: {abc: '1'}\nstages:\n  - name: s\n    jobs:\n      - name: j\n        steps:\n          - run: 'true'\n"
	svc, p, token := hook(t, st, def, "")

	out, r := deliver(t, svc, trigger.Incoming{Token: token, Headers: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"abc":"2"}`)})
	if out.Code != trigger.CodeStarted {
		t.Fatalf("general webhook: %s %s", out.Code, out.Body)
	}
	got, _ := st.RunGet(ctx, r.Run.ID)
	if got.Trigger != run.TriggerWebhook || got.Git == nil || got.Git.SHA != rp.Main || got.Git.Branch != "main" ||
		got.Git.Event != "webhook" || got.Git.Ref != "refs/heads/main" || got.Variables["abc"] != "2" {
		t.Errorf("general webhook run: %+v git %+v", got, got.Git)
	}
	if s, ok := step(r.Trace, "git"); !ok || !s.OK || !strings.Contains(s.Detail, rp.Main) {
		t.Errorf("git step %+v", s)
	}

	// Manual runs.
	for _, c := range []struct {
		name string
		ref  trigger.GitRef
		sha  string
		tag  string
	}{
		{"default", trigger.GitRef{}, rp.Main, ""},
		{"branch", trigger.GitRef{Branch: "feature/x"}, rp.Feature, ""},
		{"annotated tag", trigger.GitRef{Tag: "v1.0"}, rp.Tag, "v1.0"},
		{"commit", trigger.GitRef{Commit: strings.ToUpper(rp.MainPrev)}, rp.MainPrev, ""},
		{"branch at commit", trigger.GitRef{Branch: "main", Commit: rp.MainPrev}, rp.MainPrev, ""},
	} {
		r, _, err := svc.Runs.StartAt(ctx, p, run.TriggerManual, "alice", nil, c.ref)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if r.Git == nil || r.Git.SHA != c.sha || r.Git.Tag != c.tag || r.Git.Event != "manual" || r.Git.RepoURL != rp.Bare {
			t.Errorf("%s: git %+v, want %s", c.name, r.Git, c.sha)
		}
	}
	for _, c := range []struct {
		ref  trigger.GitRef
		code trigger.Code
		says string
	}{
		{trigger.GitRef{Branch: "nope"}, "no_commit", "branch nope is not in"},
		{trigger.GitRef{Tag: "v9"}, "no_commit", "tag v9 is not in"},
		{trigger.GitRef{Branch: "main", Tag: "v1.0"}, "bad_request", "not both"},
		{trigger.GitRef{Commit: "abc123"}, "bad_request", "not a full commit SHA"},
		{trigger.GitRef{Branch: "--upload-pack=touch /tmp/x"}, "bad_request", "not a valid Git branch name"},
	} {
		_, _, err := svc.Runs.StartAt(ctx, p, run.TriggerManual, "alice", nil, c.ref)
		var gerr *trigger.GitError
		if !errors.As(err, &gerr) || gerr.Code != c.code || !strings.Contains(gerr.Message, c.says) {
			t.Errorf("%+v: %v, want %s %q", c.ref, err, c.code, c.says)
		}
	}

	// A source whose branches are all globs names no commit for a general webhook.
	svc2, _, token2 := hook(t, st, strings.Replace(strings.Replace(def, "name: app", "name: app2", 1), "[main, 'release/*']", "['release/*']", 1), "")
	out, r = deliver(t, svc2, trigger.Incoming{Token: token2, Headers: http.Header{}, Body: []byte(`{}`)})
	if out.Code != trigger.CodeNoCommit || r.Error == nil || r.Error.Code != "no_commit" || !strings.Contains(r.Error.Message, "names no commit") {
		t.Errorf("glob-only branches: %s %s", out.Code, out.Body)
	}
	// An unreachable repository: 502 git_error with git's words.
	svc3, _, token3 := hook(t, st, strings.Replace(strings.Replace(def, "name: app", "name: app3", 1), rp.Bare, rp.Bare+"-missing", 1), "")
	out, r = deliver(t, svc3, trigger.Incoming{Token: token3, Headers: http.Header{}, Body: []byte(`{}`)})
	if out.Code != trigger.CodeGitError || r.Error == nil || r.Error.Code != "git_error" || !strings.Contains(r.Error.Message, "git ls-remote") {
		t.Errorf("missing repository: %s %s", out.Code, out.Body)
	}

	// A pipeline without a source takes no branch.
	svc4, plain, _ := hook(t, st, "name: plain\nstages:\n  - name: s\n    jobs:\n      - name: j\n        steps:\n          - run: 'true'\n", "")
	if _, _, err := svc4.Runs.StartAt(ctx, plain, run.TriggerManual, "alice", nil, trigger.GitRef{Branch: "main"}); err == nil ||
		!strings.Contains(err.Error(), "has no source") {
		t.Errorf("no source: %v", err)
	}
}
