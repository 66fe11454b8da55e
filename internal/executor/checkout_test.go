package executor

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// testRepo is a bare repository made by the test, and commits in it.
type testRepo struct {
	root, bare string // a folder of bare repositories, and the one in it
	tip        string // main's head
	recent     string // main~2: in main's last 50 commits, not its tip
	deep       string // main's first commit, more than 50 commits below the tip
	feature    string // the head of branch feature
	tagged     string // a commit only tag v1 reaches
}

// gitOut runs git for the test's own setup with an environment of its own (no user config).
func gitOut(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + dir, "GIT_CONFIG_NOSYSTEM=1", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := gitOut(dir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var (
	repoOnce sync.Once
	repoDir  string // where repoTmpl is; TestMain removes it
	repoTmpl string // a bare repository every test copies, built once
	repoRevs testRepo
	repoErr  error
)

// newRepo returns a fresh copy of a bare repository src.git with: main (a first commit, 55
// more, and two last ones), a branch feature off main, and a tag v1 on a commit of no branch.
func newRepo(t *testing.T) testRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	repoOnce.Do(func() {
		repoDir, repoErr = os.MkdirTemp("", "flowd-executor-repo-")
		if repoErr != nil {
			return
		}
		repoRevs, repoErr = buildRepo(repoDir)
		repoTmpl = filepath.Join(repoDir, "src.git")
	})
	if repoErr != nil {
		t.Fatalf("build the test repository: %v", repoErr)
	}
	r := repoRevs
	r.root = t.TempDir()
	r.bare = filepath.Join(r.root, "src.git")
	if err := os.CopyFS(r.bare, os.DirFS(repoTmpl)); err != nil {
		t.Fatal(err)
	}
	return r
}

// buildRepo makes dir/src.git: pushed from a work clone, as a user would.
func buildRepo(dir string) (testRepo, error) {
	var r testRepo
	var firstErr error
	g := func(dir string, args ...string) string {
		if firstErr != nil {
			return ""
		}
		out, err := gitOut(dir, args...)
		firstErr = err
		return out
	}
	bare := filepath.Join(dir, "src.git")
	work := filepath.Join(dir, "work")
	g(dir, "init", "-q", "--bare", "-b", "main", bare)
	g(dir, "init", "-q", "-b", "main", work)
	commit := func(msg string) string {
		if err := os.WriteFile(filepath.Join(work, "file"), []byte(msg+"\n"), 0o644); err != nil && firstErr == nil {
			firstErr = err
		}
		g(work, "add", "file")
		g(work, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-q", "-m", msg)
		return g(work, "rev-parse", "HEAD")
	}
	r.deep = commit("first")
	for i := range 55 {
		g(work, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-q", "--allow-empty", "-m", fmt.Sprint("filler ", i))
	}
	r.recent = commit("recent")
	commit("middle")
	r.tip = commit("tip")
	g(work, "checkout", "-q", "-b", "feature")
	r.feature = commit("feature")
	g(work, "checkout", "-q", "--detach", "main")
	r.tagged = commit("release")
	g(work, "tag", "v1")
	g(work, "remote", "add", "origin", bare)
	g(work, "push", "-q", "origin", "main", "feature", "v1")
	return r, firstErr
}

// gitWrapper writes a git that logs its arguments, one command a line, to the returned file
// and then runs the real git.
func gitWrapper(t *testing.T) (bin, argvLog string) {
	t.Helper()
	real, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git not installed")
	}
	dir := t.TempDir()
	bin, argvLog = filepath.Join(dir, "git"), filepath.Join(dir, "argv.log")
	script := "#!/bin/sh\necho \"$*\" >> '" + argvLog + "'\nexec '" + real + "' \"$@\"\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, argvLog
}

// checkoutJob is a job at c whose steps print HEAD and whether the clone is shallow.
func checkoutJob(t *testing.T, c Checkout) Job {
	job := newJob(t, "git rev-parse HEAD", "git rev-parse --is-shallow-repository")
	job.Env = append(job.Env, "HOME="+t.TempDir())
	job.Checkout = &c
	return job
}

type checkoutRun struct {
	res    Result
	out    string
	events []string
	argv   []string // the git commands the checkout ran
}

func runCheckout(t *testing.T, ctx context.Context, job Job) checkoutRun {
	t.Helper()
	bin, argvLog := gitWrapper(t)
	l := newLocal(t)
	l.Git = bin
	var out syncBuffer
	rep := &recorder{t: t}
	res := l.Run(ctx, job, &out, rep)
	t.Logf("result %+v\noutput:\n%s", res, out.String())
	b, _ := os.ReadFile(argvLog)
	return checkoutRun{res: res, out: out.String(), events: rep.get(), argv: strings.Split(strings.TrimSpace(string(b)), "\n")}
}

// fetches returns the fetch commands among argv.
func fetches(argv []string) []string {
	var f []string
	for _, a := range argv {
		if strings.HasPrefix(a, "fetch ") {
			f = append(f, a)
		}
	}
	return f
}

// wantCheckedOut checks the job succeeded with HEAD at sha and the clone shallow or not.
func wantCheckedOut(t *testing.T, r checkoutRun, sha string, shallow bool) {
	t.Helper()
	if r.res.Status != run.Success {
		t.Fatalf("result %+v, want success", r.res)
	}
	if got := stepOutput(t, r.out, "s1"); got != sha+"\n" {
		t.Errorf("HEAD in the step is %q, want %s", got, sha)
	}
	want := "false\n"
	if shallow {
		want = "true\n"
	}
	if got := stepOutput(t, r.out, "s2"); got != want {
		t.Errorf("is-shallow-repository %q, want %q", got, want)
	}
	if !strings.Contains(r.out, "▶ checkout ") || !strings.Contains(r.out, " at "+sha[:12]+"\n") || !strings.Contains(r.out, "✔ checkout (") {
		t.Errorf("no checkout header and result lines in %q", r.out)
	}
}

// Every local repository, by file:// URL or by path, serves any commit by SHA (upload-pack
// speaks protocol v2), so even an old commit comes from one shallow fetch.
func TestCheckoutLocal(t *testing.T) {
	t.Parallel()
	repo := newRepo(t)
	tests := []struct {
		name, url, sha, ref string
	}{
		{"main tip by file URL", "file://" + repo.bare, repo.tip, "refs/heads/main"},
		{"older commit by file URL", "file://" + repo.bare, repo.recent, "refs/heads/main"},
		{"deep commit without ref", "file://" + repo.bare, repo.deep, ""},
		{"feature by path", repo.bare, repo.feature, "refs/heads/feature"},
		{"tag", "file://" + repo.bare, repo.tagged, "refs/tags/v1"},
		{"uppercase sha", repo.bare, strings.ToUpper(repo.tip), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCheckout(t, context.Background(), checkoutJob(t, Checkout{URL: tt.url, SHA: tt.sha, Ref: tt.ref}))
			sha := strings.ToLower(tt.sha)
			wantCheckedOut(t, r, sha, true)
			if want := []string{"fetch -q --depth=1 --no-tags origin " + sha}; !slices.Equal(fetches(r.argv), want) {
				t.Errorf("fetches %q, want %q", fetches(r.argv), want)
			}
			if want := []string{"1:running", "1:success:0", "2:running", "2:success:0"}; !slices.Equal(r.events, want) {
				t.Errorf("events %v, want %v", r.events, want)
			}
		})
	}
}

func TestCheckoutFails(t *testing.T) {
	t.Parallel()
	repo := newRepo(t)
	const missing = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name    string
		c       Checkout
		message string // in the failure line and Result.Message
	}{
		{"missing commit with ref", Checkout{URL: "file://" + repo.bare, SHA: missing, Ref: "refs/heads/main"},
			"commit " + missing + " is not in refs/heads/main of file://" + repo.bare},
		{"missing commit without ref", Checkout{URL: repo.bare, SHA: missing},
			"commit " + missing + " is not in every branch and tag of " + repo.bare},
		{"missing ref", Checkout{URL: repo.bare, SHA: missing, Ref: "refs/heads/nope"},
			"couldn't find remote ref refs/heads/nope"},
		{"no repository", Checkout{URL: "file://" + filepath.Join(repo.root, "nope.git"), SHA: repo.tip, Ref: "refs/heads/main"},
			"does not appear to be a git repository"},
		{"connection refused", Checkout{URL: "http://127.0.0.1:1/src.git", SHA: repo.tip, Ref: "refs/heads/main"},
			"unable to access 'http://127.0.0.1:1/src.git/'"},
		{"short sha", Checkout{URL: repo.bare, SHA: repo.tip[:12]}, "is not a full commit SHA"},
		{"hostile ref", Checkout{URL: repo.bare, SHA: repo.tip, Ref: "--upload-pack=touch /tmp/x"}, "is not a Git ref"},
		{"hostile url", Checkout{URL: "--upload-pack=touch /tmp/x", SHA: repo.tip}, "is not a repository URL"},
		{"ext url", Checkout{URL: "ext::sh -c touch% /tmp/pwned", SHA: repo.tip}, "transport 'ext' not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			job := checkoutJob(t, tt.c)
			r := runCheckout(t, context.Background(), job)
			if r.res.Status != run.Failed || !strings.HasPrefix(r.res.Message, "checkout failed: ") || !strings.Contains(r.res.Message, tt.message) {
				t.Errorf("result %+v, want failed: checkout failed: …%s…", r.res, tt.message)
			}
			line := "✖ checkout failed: " + strings.TrimPrefix(r.res.Message, "checkout failed: ") +
				" — is source.url reachable from the flowd server and the commit pushed?\n"
			if !strings.Contains(r.out, line) {
				t.Errorf("output lacks %q", line)
			}
			if want := []string{"1:skipped", "2:skipped"}; !slices.Equal(r.events, want) {
				t.Errorf("events %v, want %v", r.events, want)
			}
			if strings.Contains(r.out, "▶ s1") || !strings.Contains(r.out, "○ s1: skipped\n○ s2: skipped\n") {
				t.Errorf("steps not skipped: %q", r.out)
			}
			if strings.Contains(r.out, "hint:") {
				t.Errorf("a credentials hint without credentials at stake: %q", r.out)
			}
		})
	}
}

// gitServer serves the bare repositories under root over HTTP with git http-backend behind
// Basic auth (user, pass). With v0 it hides the client's protocol v2 request, so upload-pack
// speaks protocol v0 and refuses commits no ref points at. With hang it answers nothing until
// the client goes away.
func gitServer(t *testing.T, root, user, pass string, v0, hang bool) *httptest.Server {
	t.Helper()
	execPath := git(t, root, "--exec-path")
	backend := &cgi.Handler{
		Path:   filepath.Join(execPath, "git-http-backend"),
		Dir:    root,
		Env:    []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "HOME=" + root, "GIT_CONFIG_NOSYSTEM=1"},
		Stderr: testLogWriter{t},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang {
			<-r.Context().Done()
			return
		}
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if v0 {
			r.Header.Del("Git-Protocol")
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

const (
	httpUser = "x-access-token"
	httpPass = "s3cr3t/Pa55+word"
)

// leaks lists where the password shows up: in the job's output, its .git folder or the argv
// of any git command.
func leaks(t *testing.T, r checkoutRun, job Job) []string {
	t.Helper()
	var found []string
	for _, secret := range []string{httpPass, "czNjcjN0L1BhNTUrd29yZA"} { // and the start of base64(pass)
		if strings.Contains(r.out, secret) {
			found = append(found, "output")
		}
		if strings.Contains(strings.Join(r.argv, "\n"), secret) {
			found = append(found, "argv")
		}
		filepath.WalkDir(filepath.Join(job.Workspace, ".git"), func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(secret)) {
					found = append(found, path)
				}
			}
			return nil
		})
	}
	return found
}

func TestCheckoutHTTP(t *testing.T) {
	t.Parallel()
	repo := newRepo(t)
	v2 := gitServer(t, repo.root, httpUser, httpPass, false, false)
	v0 := gitServer(t, repo.root, httpUser, httpPass, true, false)
	tests := []struct {
		name    string
		url     string
		c       Checkout
		fetches []string // with SHA and REF for the checkout's
		shallow bool
	}{
		{"v2 tip", v2.URL, Checkout{SHA: repo.tip, Ref: "refs/heads/main", Username: httpUser, Password: httpPass},
			[]string{"fetch -q --depth=1 --no-tags origin SHA"}, true},
		{"v2 older commit", v2.URL, Checkout{SHA: repo.recent, Ref: "refs/heads/main", Username: httpUser, Password: httpPass},
			[]string{"fetch -q --depth=1 --no-tags origin SHA"}, true},
		{"v0 tip", v0.URL, Checkout{SHA: repo.tip, Ref: "refs/heads/main", Username: httpUser, Password: httpPass},
			[]string{"fetch -q --depth=1 --no-tags origin SHA"}, true},
		{"v0 older commit", v0.URL, Checkout{SHA: repo.recent, Ref: "refs/heads/main", Username: httpUser, Password: httpPass},
			[]string{"fetch -q --depth=1 --no-tags origin SHA", "fetch -q --depth=50 --no-tags origin REF"}, true},
		{"v0 deep commit", v0.URL, Checkout{SHA: repo.deep, Ref: "refs/heads/main", Username: httpUser, Password: httpPass},
			[]string{"fetch -q --depth=1 --no-tags origin SHA", "fetch -q --depth=50 --no-tags origin REF", "fetch -q --no-tags --unshallow origin REF"}, false},
		{"v0 older commit without ref", v0.URL, Checkout{SHA: repo.recent, Username: httpUser, Password: httpPass},
			[]string{"fetch -q --depth=1 --no-tags origin SHA", "fetch -q --no-tags origin +refs/heads/*:refs/remotes/origin/* +refs/tags/*:refs/tags/*"}, false},
		{"credentials in the URL", strings.Replace(v2.URL, "://", "://"+httpUser+":s3cr3t%2FPa55+word@", 1), Checkout{SHA: repo.tip},
			[]string{"fetch -q --depth=1 --no-tags origin SHA"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := tt.c
			c.URL = tt.url + "/src.git"
			job := checkoutJob(t, c)
			r := runCheckout(t, context.Background(), job)
			wantCheckedOut(t, r, c.SHA, tt.shallow)
			var want []string
			for _, f := range tt.fetches {
				want = append(want, strings.NewReplacer("SHA", c.SHA, "REF", c.Ref).Replace(f))
			}
			if got := fetches(r.argv); !slices.Equal(got, want) {
				t.Errorf("fetches\n%q\nwant\n%q", got, want)
			}
			if l := leaks(t, r, job); len(l) > 0 {
				t.Errorf("the password is in %q", l)
			}
			u, _ := url.Parse(c.URL)
			u.User = nil
			cfg, err := os.ReadFile(filepath.Join(job.Workspace, ".git", "config"))
			if err != nil || !strings.Contains(string(cfg), "\turl = "+u.String()+"\n") || strings.Contains(string(cfg), "@") {
				t.Errorf(".git/config: %v\n%s", err, cfg)
			}
		})
	}
}

func TestCheckoutHTTPRefused(t *testing.T) {
	t.Parallel()
	repo := newRepo(t)
	srv := gitServer(t, repo.root, httpUser, httpPass, false, false)
	for name, c := range map[string]Checkout{
		"wrong password": {Username: httpUser, Password: httpPass + "-wrong"},
		"no credentials": {},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c.URL, c.SHA, c.Ref = srv.URL+"/src.git", repo.tip, "refs/heads/main"
			job := checkoutJob(t, c)
			r := runCheckout(t, context.Background(), job)
			if r.res.Status != run.Failed || !strings.HasPrefix(r.res.Message, "checkout failed: ") {
				t.Errorf("result %+v, want checkout failed", r.res)
			}
			if !strings.Contains(r.out, "✖ checkout failed: ") || !strings.Contains(r.out, checkoutAuthHint) {
				t.Errorf("no failure line with a credentials hint in %q", r.out)
			}
			if want := []string{"1:skipped", "2:skipped"}; !slices.Equal(r.events, want) {
				t.Errorf("events %v, want %v", r.events, want)
			}
			if len(fetches(r.argv)) != 1 {
				t.Errorf("fetches %q, want one: refused credentials need no fallback", fetches(r.argv))
			}
			for _, secret := range []string{httpPass, c.Password} {
				if secret != "" && strings.Contains(r.out, secret) {
					t.Errorf("the password is in the output")
				}
			}
			if l := leaks(t, r, job); len(l) > 0 {
				t.Errorf("the password is in %q", l)
			}
		})
	}
}

// What git prints of the password is masked, in the log and in the job's message.
func TestCheckoutMasksWhatGitEchoes(t *testing.T) {
	t.Parallel()
	repo := newRepo(t)
	srv := gitServer(t, repo.root, httpUser, httpPass, true, false)
	// A v0 host refuses the commit by SHA; git then names the ref, which holds the password.
	job := checkoutJob(t, Checkout{URL: srv.URL + "/src.git", SHA: repo.recent, Ref: "refs/heads/" + httpPass, Username: httpUser, Password: httpPass})
	r := runCheckout(t, context.Background(), job)
	if r.res.Status != run.Failed || !strings.Contains(r.res.Message, "couldn't find remote ref refs/heads/***") {
		t.Errorf("result %+v, want failed: couldn't find remote ref refs/heads/***", r.res)
	}
	if !strings.Contains(r.out, "fatal: couldn't find remote ref refs/heads/***\n") {
		t.Errorf("git's message not in the output, masked: %q", r.out)
	}
	if strings.Contains(r.out, httpPass) || strings.Contains(r.res.Message, httpPass) {
		t.Errorf("the password is in the output or the message")
	}
}

// The job's timeout stops a fetch that hangs, and the job fails like a step that timed out.
func TestCheckoutTimeout(t *testing.T) {
	t.Parallel()
	repo := newRepo(t)
	srv := gitServer(t, repo.root, httpUser, httpPass, false, true)
	job := checkoutJob(t, Checkout{URL: srv.URL + "/src.git", SHA: repo.tip, Ref: "refs/heads/main"})
	job.Timeout = 500 * time.Millisecond
	begin := time.Now()
	r := runCheckout(t, context.Background(), job)
	if d := time.Since(begin); d > 20*time.Second { // a bound against hanging, not a speed test
		t.Errorf("Run took %v", d)
	}
	if r.res.Status != run.Failed || r.res.Message != "job timed out after 500ms" {
		t.Errorf("result %+v, want failed: job timed out after 500ms", r.res)
	}
	if !strings.Contains(r.out, "✖ checkout: timed out after 500ms\n") {
		t.Errorf("output %q", r.out)
	}
	if want := []string{"1:skipped", "2:skipped"}; !slices.Equal(r.events, want) {
		t.Errorf("events %v, want %v", r.events, want)
	}
}

func TestCheckoutCanceled(t *testing.T) {
	t.Parallel()
	repo := newRepo(t)
	srv := gitServer(t, repo.root, httpUser, httpPass, false, true)
	job := checkoutJob(t, Checkout{URL: srv.URL + "/src.git", SHA: repo.tip})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	r := runCheckout(t, ctx, job)
	if r.res.Status != run.Canceled {
		t.Errorf("result %+v, want canceled", r.res)
	}
	if want := []string{"1:skipped", "2:skipped"}; !slices.Equal(r.events, want) {
		t.Errorf("events %v, want %v", r.events, want)
	}
}

func TestGitEnv(t *testing.T) {
	t.Parallel()
	env := gitEnv([]string{"PATH=/opt/bin", "HOME=/home/ci", "SECRET=x", "GIT_DIR=/etc", "GIT_CONFIG_COUNT=5", "HTTPS_PROXY=http://p:3128"}, "Authorization: Basic abc")
	want := []string{
		"PATH=/opt/bin", "HOME=/home/ci", "HTTPS_PROXY=http://p:3128", "GIT_SSH_COMMAND=ssh -o BatchMode=yes",
		"GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=/bin/false", "SSH_ASKPASS=/bin/false", "GIT_ALLOW_PROTOCOL=" + gitProtocols, "LC_ALL=C",
		"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader", "GIT_CONFIG_VALUE_0=Authorization: Basic abc",
	}
	if !slices.Equal(env, want) {
		t.Errorf("gitEnv\n%q\nwant\n%q", env, want)
	}
	if env := gitEnv(nil, ""); envValue(env, "PATH") != defaultPath || envValue(env, "GIT_CONFIG_COUNT") != "" {
		t.Errorf("gitEnv without PATH or credentials: %q", env)
	}
}

func TestSplitCredentials(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, clean, user, pass string }{
		{"https://u:p%40ss@git.example/x.git", "https://git.example/x.git", "u", "p@ss"},
		{"http://tok@git.example/x.git", "http://git.example/x.git", "tok", ""},
		{"https://git.example/x.git", "https://git.example/x.git", "", ""},
		{"ssh://git:pw@git.example/x.git", "ssh://git@git.example/x.git", "", ""},
		{"git@git.example:x.git", "git@git.example:x.git", "", ""},
		{"/srv/git/x.git", "/srv/git/x.git", "", ""},
		{"file:///srv/git/x.git", "file:///srv/git/x.git", "", ""},
	} {
		clean, user, pass := splitCredentials(tt.in)
		if clean != tt.clean || user != tt.user || pass != tt.pass {
			t.Errorf("splitCredentials(%q) = %q %q %q, want %q %q %q", tt.in, clean, user, pass, tt.clean, tt.user, tt.pass)
		}
	}
}
