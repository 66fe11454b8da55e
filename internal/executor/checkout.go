package executor

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/flowd/flowd/internal/logs"
)

// Checkout is the commit a job's workspace is checked out at.
type Checkout struct {
	// URL is the clone URL: https://, http://, ssh://, scp-like git@host:x, file:// or a local
	// path. Credentials in an http(s) URL are taken out of it (and used when Username and
	// Password are empty); git, the log and .git/config only ever see the URL without them.
	URL string
	// SHA is the exact commit, 40 hex digits (64 for a SHA-256 repository); required.
	SHA string
	// Ref ("refs/heads/main", "refs/tags/v1") is what to fetch when the host refuses to serve
	// a bare SHA; "" fetches every branch and tag then.
	Ref string
	// Username and Password (or token) authenticate HTTP(S) clones with Basic auth; both ""
	// means none. "x-access-token" or "oauth2" style names are fine. They reach git only as
	// environment (an http.extraHeader set through GIT_CONFIG_*), never argv or .git/config,
	// and the password is masked in everything git prints. They are ignored for other URLs:
	// ssh uses the keys of the user flowd runs as.
	Username string
	Password string
}

// Checkout log lines.
const (
	checkoutHeaderFormat = "▶ checkout %s at %s\n" // URL without credentials, short SHA
	checkoutDoneFormat   = "✔ checkout (%s)\n"     // duration
	checkoutNoteFormat   = "  %s\n"                // what the checkout does next, when not the obvious
	checkoutFailFormat   = "✖ checkout failed: %s — is source.url reachable from the flowd server and the commit pushed?\n"
	checkoutStopFormat   = "✖ checkout: %s\n" // canceled or timed out
	checkoutAuthHint     = "  hint: check the username and token of the pipeline's source: set, current, and allowed to read the repository\n"
)

// gitProtocols are the transports a checkout may use (GIT_ALLOW_PROTOCOL); ext:: and fd::
// URLs would run commands.
const gitProtocols = "file:git:http:https:ssh"

// gitEnvPassed are the variables of the job's environment that git also gets: where to find
// programs and the user's configuration, and what reaching a host may need (proxies, CAs, the
// ssh agent). Everything else of the job's environment stays out of git's way.
var gitEnvPassed = []string{
	"PATH", "HOME",
	"http_proxy", "https_proxy", "no_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
	"SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH",
	"SSH_AUTH_SOCK", "GIT_SSH_COMMAND",
}

// defaultPath is git's PATH when the job's environment has none.
const defaultPath = "/usr/local/bin:/usr/bin:/bin"

// gitOutputLimit bounds what one git command may write to the job's log.
const gitOutputLimit = 64 << 10

// checkoutError is a checkout that failed for a reason the job's log should show.
type checkoutError struct {
	msg  string // what went wrong, in git's words where it said something
	auth bool   // the host refused the credentials, or wants some
}

func (e *checkoutError) Error() string { return e.msg }

// checkout makes the job's workspace a clone of c's repository at exactly c.SHA: init, remote,
// a shallow fetch of the SHA, falling back to the Ref (shallow, then full) when the host
// refuses a bare SHA, a detached checkout and a check of HEAD. It returns nil, a
// *checkoutError, or ctx's error when the job was canceled or timed out meanwhile.
func (r *localRun) checkout(ctx context.Context, c Checkout, gitBin string, grace time.Duration) (err error) {
	clean, user, pass := splitCredentials(c.URL)
	if c.Username != "" || c.Password != "" {
		user, pass = c.Username, c.Password
	}
	g := &gitRunner{dir: r.job.Workspace, grace: grace, cred: r.cred, procs: r.procs, logger: r.logger}
	if pass != "" {
		g.secrets = []string{pass, url.QueryEscape(pass), url.PathEscape(pass), url.UserPassword(user, pass).String()}
	}
	if user != "" || pass != "" {
		basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
		g.secrets = append(g.secrets, basic)
		if isHTTP(clean) {
			g.header = "Authorization: Basic " + basic
		}
	}
	// Everything the checkout writes or returns is masked, its own lines included: a URL or a
	// ref may hold the password too.
	say := func(format string, args ...any) {
		r.out.line(g.mask(fmt.Sprintf(format, args...)))
	}
	defer func() {
		if ce, ok := err.(*checkoutError); ok {
			ce.msg = g.mask(ce.msg)
		}
	}()

	sha := strings.ToLower(c.SHA)
	short := sha
	if len(short) > 12 {
		short = short[:12]
	}
	say(checkoutHeaderFormat, clean, short)
	begin := time.Now()
	if err := (Checkout{URL: clean, SHA: c.SHA, Ref: c.Ref}).validate(); err != nil {
		return &checkoutError{msg: err.Error()}
	}
	if (user != "" || pass != "") && !isHTTP(clean) {
		say(checkoutNoteFormat, "the username and password are for http(s) URLs only; this one uses its own authentication")
	}
	g.env = gitEnv(r.job.Env, g.header)
	if r.cred != nil {
		// The checkout runs as the job's own uid, which owns no repository on this machine:
		// without safe.directory, git refuses a source.url that is a path on the server
		// ("dubious ownership"). It must be in a global config file (git drops GIT_CONFIG_* for
		// the upload-pack of a local repository). What such a repository's config could do, it
		// does as the job's uid.
		conf := filepath.Join(homeOf(r.job.Workspace), ".flowd-checkout.gitconfig")
		if err := os.WriteFile(conf, []byte("[safe]\n\tdirectory = *\n"), 0o644); err != nil {
			return &checkoutError{msg: fmt.Sprintf("cannot write the checkout's git config: %v", err)}
		}
		defer os.Remove(conf)
		g.env = append(g.env, "GIT_CONFIG_GLOBAL="+conf)
	}
	g.bin = gitBin
	if g.bin == "" {
		bin, err := lookPathIn("git", envValue(g.env, "PATH"))
		if err != nil {
			return &checkoutError{msg: "git not found in the job's PATH; install git on the machine that runs the job"}
		}
		g.bin = bin
	}

	// step runs one git command whose output belongs in the log.
	step := func(args ...string) (string, error) {
		out, err := g.run(ctx, args...)
		r.out.Write([]byte(out))
		return out, err
	}
	fail := func(out string, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		said := gitSaid(out, err)
		switch {
		case !authFailure(out):
			return &checkoutError{msg: said}
		case g.header != "":
			return &checkoutError{msg: "the Git host refused the username and password given (git: " + said + ")", auth: true}
		default:
			return &checkoutError{msg: "the Git host wants credentials and none were given (git: " + said + ")", auth: true}
		}
	}

	if out, err := step("init", "-q"); err != nil {
		return fail(out, err)
	}
	if out, err := step("remote", "add", "origin", clean); err != nil {
		return fail(out, err)
	}

	// The SHA itself, one commit deep: what hosts serving protocol v2 (and any SHA) allow.
	out, err := step("fetch", "-q", "--depth=1", "--no-tags", "origin", sha)
	if err != nil {
		if ctx.Err() != nil || !refusedSHA(out) {
			return fail(out, err)
		}
		say(checkoutNoteFormat, "the host refused to serve the commit by SHA")
		found, next := false, "fetching every branch and tag"
		if c.Ref != "" {
			say(checkoutNoteFormat, fmt.Sprintf("fetching %s, 50 commits deep", c.Ref))
			out, err := step("fetch", "-q", "--depth=50", "--no-tags", "origin", c.Ref)
			if err != nil && (ctx.Err() != nil || !refusedSHA(out)) {
				return fail(out, err)
			}
			found = err == nil && g.hasCommit(ctx, sha)
			next = fmt.Sprintf("commit %s is not in the last 50 commits of %s; fetching all of its history", short, c.Ref)
			if err != nil {
				next = fmt.Sprintf("fetching all of %s's history", c.Ref)
			}
		}
		if !found {
			say(checkoutNoteFormat, next)
			args := []string{"fetch", "-q", "--no-tags"}
			if _, err := os.Stat(filepath.Join(r.job.Workspace, ".git", "shallow")); err == nil {
				args = append(args, "--unshallow")
			}
			args = append(args, "origin")
			what := c.Ref
			if c.Ref == "" {
				what = "every branch and tag"
				args = append(args, "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")
			} else {
				args = append(args, c.Ref)
			}
			if out, err := step(args...); err != nil {
				return fail(out, err)
			}
			if !g.hasCommit(ctx, sha) {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return &checkoutError{msg: fmt.Sprintf("commit %s is not in %s of %s", sha, what, clean)}
			}
		}
	}

	if out, err := step("checkout", "-q", "--detach", sha); err != nil {
		return fail(out, err)
	}
	head, err := g.run(ctx, "rev-parse", "HEAD")
	if err != nil {
		return fail(head, err)
	}
	if head = strings.TrimSpace(head); head != sha {
		return &checkoutError{msg: fmt.Sprintf("HEAD is %s after the checkout, want %s", head, sha)}
	}
	say(checkoutDoneFormat, formatDuration(time.Since(begin)))
	return nil
}

// validate checks what would otherwise reach git's command line.
func (c Checkout) validate() error {
	switch {
	case c.URL == "":
		return errors.New("the repository URL is empty")
	case strings.HasPrefix(c.URL, "-") || strings.ContainsFunc(c.URL, isControl):
		return fmt.Errorf("%q is not a repository URL", c.URL)
	case !isHex(c.SHA) || (len(c.SHA) != 40 && len(c.SHA) != 64):
		return fmt.Errorf("%q is not a full commit SHA (40 hex digits)", c.SHA)
	case c.Ref != "" && (strings.HasPrefix(c.Ref, "-") || strings.HasPrefix(c.Ref, "+") ||
		strings.ContainsAny(c.Ref, ": \t*?[\\^~") || strings.Contains(c.Ref, "..") || strings.ContainsFunc(c.Ref, isControl)):
		return fmt.Errorf("%q is not a Git ref", c.Ref)
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func isHex(s string) bool {
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F') {
			return false
		}
	}
	return s != ""
}

// splitCredentials returns raw without credentials, and the user name and password it held.
// An http(s) URL loses its whole user info; any other URL with a scheme keeps its user name
// (ssh://git@host needs it) and loses only a password; scp-like addresses and paths are kept.
func splitCredentials(raw string) (clean, user, pass string) {
	if !strings.Contains(raw, "://") {
		return raw, "", ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw, "", ""
	}
	user = u.User.Username()
	pass, _ = u.User.Password()
	if isHTTP(raw) {
		u.User = nil
		return u.String(), user, pass
	}
	u.User = url.User(user)
	return u.String(), "", ""
}

func isHTTP(rawURL string) bool {
	s := strings.ToLower(rawURL)
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// gitEnv is the environment of every git command of a checkout: gitEnvPassed from the job's
// environment and guards so that git never prompts and only reads credentials from header.
func gitEnv(jobEnv []string, header string) []string {
	vals := make(map[string]string)
	for _, kv := range jobEnv {
		k, v, _ := strings.Cut(kv, "=")
		vals[k] = v // the last one wins, as in a process's environment
	}
	var env []string
	for _, k := range gitEnvPassed {
		if v, ok := vals[k]; ok {
			env = append(env, k+"="+v)
		}
	}
	if _, ok := vals["PATH"]; !ok {
		env = append(env, "PATH="+defaultPath)
	}
	if _, ok := vals["GIT_SSH_COMMAND"]; !ok {
		env = append(env, "GIT_SSH_COMMAND=ssh -o BatchMode=yes")
	}
	env = append(env,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=/bin/false",
		"SSH_ASKPASS=/bin/false",
		"GIT_ALLOW_PROTOCOL="+gitProtocols,
		"LC_ALL=C", // git's messages in English, so authFailure and refusedSHA can read them
	)
	if header != "" {
		env = append(env, "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader", "GIT_CONFIG_VALUE_0="+header)
	}
	return env
}

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// lookPathIn finds an executable name in the folders of path, the way a shell would.
func lookPathIn(name, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in %q", name, path)
}

// refusedSHA reports whether git's output says the host refused or lacks an object or ref (so
// fetching something else may still work), rather than that the host cannot be reached or
// refused the credentials. Unknown messages count as refusals: trying more costs little.
func refusedSHA(out string) bool {
	s := strings.ToLower(out)
	for _, p := range []string{"not our ref", "unadvertised object", "couldn't find remote ref", "no such remote ref", "not found in upstream"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	if authFailure(out) {
		return false
	}
	for _, p := range []string{
		"could not resolve", "failed to connect", "connection refused", "connection timed out",
		"unable to access", "does not appear to be a git repository", "could not read from remote repository",
		"host key verification failed", "not a git repository", "ssl", "certificate",
		"transport '", "not allowed", "unsupported",
	} {
		if strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// authFailure reports whether git's output says the host wants credentials or refused them.
func authFailure(out string) bool {
	s := strings.ToLower(out)
	for _, p := range []string{
		"authentication failed", "could not read username", "could not read password",
		"terminal prompts disabled", "error: 401", "error: 403", " 401 ", " 403 ",
		"permission denied", "access denied", "invalid username or password", "repository not found",
	} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// gitSaid is what git's output says about why it failed: its "fatal:" lines (else its "error:"
// lines, else its last line) joined by "; ", or else how it exited.
func gitSaid(out string, err error) string {
	var fatal, errs []string
	last := ""
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		last = line
		if rest, ok := strings.CutPrefix(line, "fatal: "); ok && !slices.Contains(fatal, rest) {
			fatal = append(fatal, rest)
		} else if rest, ok := strings.CutPrefix(line, "error: "); ok && !slices.Contains(errs, rest) {
			errs = append(errs, rest)
		}
	}
	switch {
	case len(fatal) > 0:
		return strings.Join(fatal, "; ")
	case len(errs) > 0:
		return strings.Join(errs, "; ")
	case last != "":
		return last
	default:
		return fmt.Sprintf("git: %v", err)
	}
}

// gitRunner runs the git commands of one checkout.
type gitRunner struct {
	bin     string   // the git executable
	dir     string   // the workspace
	env     []string // gitEnv
	header  string   // the Authorization header, "" without credentials
	secrets []string // what to mask in git's output
	grace   time.Duration
	cred    *syscall.Credential // the job's uid, nil for the server's own
	procs   string              // see Local.Procs
	logger  *slog.Logger
}

// run runs git with args in the workspace, in a session (and process group) of its own with
// no terminal, and returns its stdout and stderr, masked and bounded. When ctx ends, the group
// gets SIGTERM, then SIGKILL after the grace; nothing of it outlives the call. The group is
// recorded in procs while it runs, as a step's is, so that a fetch that hangs on after a
// `kill -9` of the server is killed when the server starts again.
func (g *gitRunner) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, g.bin, args...)
	cmd.Dir = g.dir
	cmd.Env = g.env
	var buf cappedBuffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: g.cred}
	var termAt time.Time
	cmd.Cancel = func() error {
		termAt = time.Now()
		return killGroup(cmd.Process.Pid, syscall.SIGTERM)
	}
	cmd.WaitDelay = g.grace
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start git: %w", err)
	}
	pgid := cmd.Process.Pid
	if g.procs != "" {
		if remove, err := recordStep(g.procs, pgid); err != nil {
			g.logger.Warn("record the checkout's process group", "err", err)
		} else {
			defer remove()
		}
	}
	err := cmd.Wait()
	if !termAt.IsZero() {
		waitGroupGone(pgid, termAt.Add(g.grace))
	}
	killGroup(pgid, syscall.SIGKILL)

	out := logs.Mask(buf.Bytes(), g.secrets) // before the cut, so no part of a secret is left
	if len(out) > gitOutputLimit {
		out = append(out[:gitOutputLimit:gitOutputLimit], "\n… (git output cut)\n"...)
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return string(out), err
}

// mask replaces the secrets of the checkout in s by "***".
func (g *gitRunner) mask(s string) string {
	return string(logs.Mask([]byte(s), g.secrets))
}

// hasCommit reports whether the workspace's repository holds commit sha.
func (g *gitRunner) hasCommit(ctx context.Context, sha string) bool {
	_, err := g.run(ctx, "cat-file", "-e", sha+"^{commit}")
	return err == nil
}

// cappedBuffer keeps the first 1 MiB written to it and drops the rest. Masking happens on what
// it kept, before the log's shorter limit cuts it, so no part of a secret is cut off and shown.
type cappedBuffer struct{ bytes.Buffer }

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := 1<<20 - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
