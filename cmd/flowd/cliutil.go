package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/flowd/flowd/internal/client"
	"github.com/flowd/flowd/internal/pipeline"
)

// defaultServer is the address `flowd serve` listens on by default.
const defaultServer = "http://127.0.0.1:8080"

// cli holds what every command reads and writes; nothing of it is global, so tests can run
// several at once with their own environment.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	hc             *http.Client

	lines *bufio.Reader // stdin read line by line, made on first use
}

// ---- flags and usage ----

// flags is a command's FlagSet with the text of its --help.
type flags struct {
	*flag.FlagSet
	synopsis string // "flowd run PIPELINE [--var K=V …] [--follow]"
	help     string // what the command does
	min, max int    // number of positional arguments allowed
}

// newFlags makes the FlagSet of a command; it prints nothing itself (parse does).
func newFlags(name, synopsis, help string, min, max int) *flags {
	fs := flag.NewFlagSet("flowd "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flags{FlagSet: fs, synopsis: synopsis, help: help, min: min, max: max}
}

func (f *flags) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", f.synopsis, strings.TrimSpace(f.help))
	hasFlags := false
	f.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprint(w, "\nFlags:\n")
		f.SetOutput(w)
		f.PrintDefaults()
		f.SetOutput(io.Discard)
	}
}

// parse parses args, allowing flags after positional arguments (`flowd run hello --follow`);
// "--" ends the flags. It returns the positional arguments, or an exit status ≥ 0 when the
// command should stop: 0 after --help (printed to stdout), 2 after a usage error.
func (c *cli) parse(f *flags, args []string) ([]string, int) {
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				f.usage(c.stdout)
				return nil, 0
			}
			return nil, c.usageError(f, "%v", err)
		}
		rest := f.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := args[:len(args)-len(rest)]; len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case len(pos) < f.min:
		return nil, c.usageError(f, "missing arguments")
	case len(pos) > f.max:
		return nil, c.usageError(f, "unexpected argument %q", pos[f.max])
	}
	return pos, -1
}

// usageError prints a usage problem with the command's synopsis and returns 2.
func (c *cli) usageError(f *flags, format string, a ...any) int {
	fmt.Fprintf(c.stderr, "%s: %s\nUsage: %s\nRun '%s --help' for more.\n", f.Name(), fmt.Sprintf(format, a...), f.synopsis, f.Name())
	return 2
}

// conn holds the --server and --token flags every client command has.
type conn struct{ server, token string }

func (f *flags) connFlags() *conn {
	var cn conn
	f.StringVar(&cn.server, "server", "", "flowd server `URL` (default: FLOWD_SERVER, the saved login, or "+defaultServer+")")
	f.StringVar(&cn.token, "token", "", "API `TOKEN` (default: FLOWD_TOKEN or the saved login)")
	return &cn
}

// followFlags adds --follow and its short form -f.
func (f *flags) followFlags() *bool {
	var follow bool
	f.BoolVar(&follow, "follow", false, "follow the log until the run ends")
	f.BoolVar(&follow, "f", false, "short for --follow")
	return &follow
}

// paging holds the --limit and --before flags of a command that lists one page of things.
type paging struct {
	limit  int
	before int64
}

// pagingFlags adds --limit (at most N of what) and --before, described by beforeUsage.
func (f *flags) pagingFlags(what, beforeUsage string) *paging {
	var pg paging
	f.IntVar(&pg.limit, "limit", 0, "show at most `N` "+what+" (default: the server's, 50)")
	f.Int64Var(&pg.before, "before", 0, beforeUsage)
	return &pg
}

// check is a connectWith check: neither flag may be negative.
func (pg *paging) check([]string) error {
	if pg.limit < 0 || pg.before < 0 {
		return errors.New("--limit and --before must not be negative")
	}
	return nil
}

// connect is the start of every command that talks to the server: it adds --server and
// --token to f, parses args (see parse) and resolves the API client (see client). It returns
// the client and the positional arguments, or an exit status ≥ 0 when the command should stop.
func (c *cli) connect(f *flags, args []string) (*client.Client, []string, int) {
	return c.connectWith(f, args, nil)
}

// connectWith is connect with check, if not nil, run on the positional arguments before the
// client is resolved; an error of check is a usage error (exit status 2).
func (c *cli) connectWith(f *flags, args []string, check func(pos []string) error) (*client.Client, []string, int) {
	cn := f.connFlags()
	pos, code := c.parse(f, args)
	if code >= 0 {
		return nil, nil, code
	}
	if check != nil {
		if err := check(pos); err != nil {
			return nil, nil, c.usageError(f, "%v", err)
		}
	}
	cl, err := c.client(cn)
	if err != nil {
		return nil, nil, c.fail(err)
	}
	return cl, pos, -1
}

// connectID is connect for a command whose one argument is a run or delivery id (see parseID):
// arg is its name in the synopsis and kind what it identifies, for the usage error
// "RUN must be a run id (a number), got …".
func (c *cli) connectID(f *flags, args []string, arg, kind string) (*client.Client, int64, int) {
	var id int64
	cl, _, code := c.connectWith(f, args, func(pos []string) error {
		var ok bool
		if id, ok = parseID(pos[0]); !ok {
			return fmt.Errorf("%s must be a %s id (a number), got %q", arg, kind, pos[0])
		}
		return nil
	})
	return cl, id, code
}

// runArgHelp explains the RUN argument of the commands that take one.
const runArgHelp = `RUN is the run's id, or PIPELINE#NUMBER (e.g. hello#3; PIPELINE/NUMBER works too), as
'flowd run' and 'flowd runs' print them.`

// connectRun is connect for a command whose one argument is a run (see runArgHelp): it returns
// the run's id, looked up by number when the argument names the pipeline.
func (c *cli) connectRun(ctx context.Context, f *flags, args []string) (*client.Client, int64, int) {
	var (
		id, number int64
		pipe       string
	)
	cl, _, code := c.connectWith(f, args, func(pos []string) error {
		var ok bool
		if id, pipe, number, ok = parseRun(pos[0]); !ok {
			return fmt.Errorf("RUN must be a run id (a number) or PIPELINE#NUMBER, got %q", pos[0])
		}
		return nil
	})
	if code >= 0 || pipe == "" {
		return cl, id, code
	}
	r, err := cl.RunByNumber(ctx, pipe, number)
	if err != nil {
		return nil, 0, c.fail(err)
	}
	return cl, r.ID, -1
}

// parseRun reads a run argument: an id ("17", "#17"), or a pipeline and a run number
// ("hello#3", "hello/3").
func parseRun(s string) (id int64, pipe string, number int64, ok bool) {
	if id, ok := parseID(s); ok {
		return id, "", 0, true
	}
	i := strings.LastIndexAny(s, "#/")
	if i <= 0 || !pipeline.ValidName(s[:i]) {
		return 0, "", 0, false
	}
	n, err := strconv.ParseInt(s[i+1:], 10, 64)
	if err != nil || n <= 0 {
		return 0, "", 0, false
	}
	return 0, s[:i], n, true
}

// runName is how the CLI names a run to a person: "hello#3 (id 17)"; both forms work as RUN.
func runName(r *client.Run) string {
	return fmt.Sprintf("%s#%d (id %d)", r.Pipeline, r.Number, r.ID)
}

// parseID reads a run or delivery id argument ("17"; "#17" is taken too).
func parseID(s string) (int64, bool) {
	id, err := strconv.ParseInt(strings.TrimPrefix(s, "#"), 10, 64)
	return id, err == nil && id > 0
}

// errNotLoggedIn is returned by client when no token is known.
var errNotLoggedIn = errors.New("not logged in: run `flowd login` (or set FLOWD_TOKEN, or pass --token)")

// client resolves the server and token — flag, then FLOWD_SERVER / FLOWD_TOKEN, then the saved
// login — and returns an API client. The saved token is only sent to the server it was issued by.
func (c *cli) client(cn *conn) (*client.Client, error) {
	server := firstOf(cn.server, c.getenv("FLOWD_SERVER"))
	token := firstOf(cn.token, c.getenv("FLOWD_TOKEN"))
	if server == "" || token == "" {
		saved, err := c.loadConfig()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if saved != nil {
			if server == "" {
				server = saved.Server
			}
			if token == "" && sameServer(server, saved.Server) {
				token = saved.Token
			}
		}
	}
	server = normalizeServer(firstOf(server, defaultServer))
	if token == "" {
		if server != defaultServer {
			return nil, fmt.Errorf("not logged in to %s: run `flowd login --server %s` (or set FLOWD_TOKEN, or pass --token)", server, server)
		}
		return nil, errNotLoggedIn
	}
	return client.New(server, token, c.hc), nil
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// normalizeServer adds http:// to a bare host:port and drops a trailing slash.
func normalizeServer(s string) string {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	return strings.TrimRight(s, "/")
}

func sameServer(a, b string) bool { return normalizeServer(a) == normalizeServer(b) }

// ---- the saved login ----

// savedLogin is the config file written by `flowd login`.
type savedLogin struct {
	Server   string `json:"server"`
	Token    string `json:"token"`
	Username string `json:"username"`
}

// configPath is $FLOWD_CONFIG if set, else <user config dir>/flowd/config.json, where the user
// config dir is $XDG_CONFIG_HOME if set, else os.UserConfigDir (~/.config on Linux).
func (c *cli) configPath() (string, error) {
	if p := c.getenv("FLOWD_CONFIG"); p != "" {
		return p, nil
	}
	dir := c.getenv("XDG_CONFIG_HOME")
	if dir == "" {
		d, err := os.UserConfigDir()
		if err != nil {
			return "", fmt.Errorf("find the config folder: %w (set FLOWD_CONFIG to a file path)", err)
		}
		dir = d
	}
	return filepath.Join(dir, "flowd", "config.json"), nil
}

// loadConfig reads the saved login; an error wrapping fs.ErrNotExist if there is none.
func (c *cli) loadConfig() (*savedLogin, error) {
	path, err := c.configPath()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s savedLogin
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("read %s: %w (delete it or run `flowd login` again)", path, err)
	}
	return &s, nil
}

// saveConfig writes the saved login atomically: the folder 0700, the file 0600.
func (c *cli) saveConfig(s savedLogin) (string, error) {
	path, err := c.configPath()
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("save login: %w", err)
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".config-*.json") // created 0600
	if err != nil {
		return "", fmt.Errorf("save login: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", fmt.Errorf("save login: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return "", fmt.Errorf("save login: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("save login: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("save login: %w", err)
	}
	return path, nil
}

// ---- input ----

// readLine prints prompt on stderr and reads one line of stdin, without its line ending.
func (c *cli) readLine(prompt string) (string, error) {
	if c.lines == nil {
		c.lines = bufio.NewReader(c.stdin)
	}
	fmt.Fprint(c.stderr, prompt)
	line, err := c.lines.ReadString('\n')
	if err != nil && (!errors.Is(err, io.EOF) || line == "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("no input on stdin")
		}
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// readSecret prints prompt on stderr and reads a line of stdin; when stdin is a terminal, with
// its echo off, so what is typed does not show.
func (c *cli) readSecret(prompt string) (string, error) {
	f, ok := c.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return c.readLine(prompt)
	}
	fmt.Fprint(c.stderr, prompt)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(c.stderr) // the Enter that was not echoed
	if err != nil {
		return "", fmt.Errorf("read the terminal: %w", err)
	}
	return string(b), nil
}

// readAllStdin reads a secret piped to stdin, without a trailing line ending.
func (c *cli) readAllStdin() (string, error) {
	r := c.stdin
	if c.lines != nil {
		r = c.lines
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("read stdin: %w", err)
	}
	return strings.TrimRight(string(data), "\r\n"), nil
}

// password returns a password from stdin (fromStdin), else the environment variable env, else a
// prompt: at a terminal what is typed is not echoed; from a pipe it is one line of stdin.
func (c *cli) password(fromStdin bool, env, prompt string) (string, error) {
	var pw string
	var err error
	switch {
	case fromStdin:
		pw, err = c.readAllStdin()
	case c.getenv(env) != "":
		pw = c.getenv(env)
	default:
		pw, err = c.readSecret(prompt)
	}
	if err != nil {
		return "", err
	}
	if pw == "" {
		return "", errors.New("empty password")
	}
	return pw, nil
}

// ---- output ----

// fail prints err as `flowd: <message>` on stderr, with a hint for the errors a person can fix
// by signing in again, and returns 1.
func (c *cli) fail(err error) int {
	msg := err.Error()
	var ae *client.Error
	if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
		msg += "\n(the token is missing, revoked or expired: run `flowd login` again)"
	}
	fmt.Fprintf(c.stderr, "flowd: %s\n", msg)
	return 1
}

// done ends a command whose last call returned err: it fails with err, or prints the line
// format on stdout and returns 0.
func (c *cli) done(err error, format string, a ...any) int {
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(c.stdout, format+"\n", a...)
	return 0
}

// warn prints a warning on stderr.
func (c *cli) warn(format string, a ...any) {
	fmt.Fprintf(c.stderr, "flowd: warning: "+format+"\n", a...)
}

// table prints rows under a header, in aligned columns.
func table(w io.Writer, header []string, rows [][]string) {
	var buf strings.Builder
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		if line != "" {
			fmt.Fprintln(w, strings.TrimRight(line, " \n"))
		}
	}
}

// fmtTime shows a time in local time to the second, "-" for none.
func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// fmtDuration shows a duration to the second (or the millisecond under one), "-" for zero.
func fmtDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
