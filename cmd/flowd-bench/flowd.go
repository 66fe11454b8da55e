package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL: fresh database, counts
	_ "modernc.org/sqlite"             // SQLite: counts and seeding

	"github.com/flowd/flowd/internal/app"
	"github.com/flowd/flowd/internal/client"
	"github.com/flowd/flowd/internal/config"
)

const adminPassword = "bench-password-0123456789"

// instance is a flowd under test: in-process (app.Run) or the built binary.
type instance struct {
	Base   string
	DSN    string // the database flowd uses
	Data   string
	Client *client.Client
	PID    int // the binary's process id; 0 in-process
	tok    string

	stop func() error
}

// opts are the serve settings a section needs.
type opts struct {
	dsn         string  // "" = SQLite in the data folder
	executors   int     // 0 = 4
	coordinator bool    // --executors 0: a server that runs no job itself (build agents run them)
	webhookRate float64 // 0 = unlimited (a rate no benchmark reaches)
	burst       int
	// The queue bounds of backpressure (--max-queued-runs, --max-queue-seconds): 0 = no bound,
	// the default here as the rate's is, so that the ingest loads, which queue every run,
	// measure intake; the sustained section passes flowd's own defaults.
	maxQueuedRuns   int
	maxQueueSeconds int
	env             []string // the binary only: more environment
	args            []string // the binary only: more serve flags
	nodeName        string   // in-process only: --node-name ("" = flowd's default)
}

func (o opts) fill() opts {
	switch {
	case o.coordinator:
		o.executors = 0
	case o.executors == 0:
		o.executors = 4
	}
	if o.webhookRate == 0 {
		o.webhookRate, o.burst = 1e9, 1<<30
	}
	return o
}

// startInProcess runs flowd through app.Run in this process, on 127.0.0.1 and a free port.
func startInProcess(ctx context.Context, data string, o opts) (*instance, error) {
	o = o.fill()
	cfg := config.Default()
	cfg.Addr = "127.0.0.1:0"
	cfg.Data = data
	cfg.Database = o.dsn
	cfg.Executors = o.executors
	cfg.WebhookRate, cfg.WebhookBurst = o.webhookRate, o.burst
	cfg.MaxQueuedRuns, cfg.MaxQueueSeconds = o.maxQueuedRuns, o.maxQueueSeconds
	cfg.AdminPassword = adminPassword
	cfg.ShutdownGrace = 5 * time.Second
	cfg.StepUser = stepUser()
	if o.nodeName != "" {
		cfg.NodeName = o.nodeName
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := app.Run(runCtx, cfg, logger, pw)
		pw.CloseWithError(fmt.Errorf("flowd stopped: %v", err))
		done <- err
	}()
	base, err := readAddr(pr)
	go io.Copy(io.Discard, pr)
	if err != nil {
		cancel()
		<-done
		return nil, err
	}
	in := &instance{Base: base, DSN: cfg.Database, Data: cfg.Data}
	in.stop = func() error {
		cancel()
		return <-done
	}
	return in, in.login(ctx)
}

// stepRanges counts the instances started, for their step uid ranges.
var stepRanges atomic.Int32

// stepUser is the --step-user of a new instance: as root a uid range of its own (an instance
// still stopping holds its range's lock), else auto. Ranges are spread by process id too:
// their locks are machine-wide, and another flowd-bench (or test) may run at the same time.
func stepUser() string {
	if os.Geteuid() != 0 {
		return "auto"
	}
	first := 2147600000 + (os.Getpid()%4096)*32*1024 + int(stepRanges.Add(1)%32)*1024
	return fmt.Sprintf("%d-%d", first, first+1023)
}

// startBinary runs the built flowd binary with `serve` on a free port.
func startBinary(ctx context.Context, bin, data string, o opts) (*instance, error) {
	o = o.fill()
	args := []string{"serve", "--addr", "127.0.0.1:0", "--data", data,
		"--executors", fmt.Sprint(o.executors),
		"--webhook-rate", fmt.Sprint(o.webhookRate), "--webhook-burst", fmt.Sprint(o.burst),
		"--max-queued-runs", fmt.Sprint(o.maxQueuedRuns), "--max-queue-seconds", fmt.Sprint(o.maxQueueSeconds)}
	if o.dsn != "" {
		args = append(args, "--database", o.dsn)
	}
	args = append(args, "--step-user", stepUser())
	args = append(args, o.args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), "FLOWD_ADMIN_PASSWORD="+adminPassword), o.env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = nil // the binary logs at info level; not part of the report
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	base, err := readAddr(out)
	go io.Copy(io.Discard, out)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	dsn := o.dsn
	if dsn == "" {
		dsn = "sqlite:" + data + "/flowd.db"
	}
	in := &instance{Base: base, DSN: dsn, Data: data, PID: cmd.Process.Pid}
	in.stop = func() error {
		cmd.Process.Signal(syscall.SIGTERM)
		errc := make(chan error, 1)
		go func() { errc <- cmd.Wait() }()
		select {
		case err := <-errc:
			return err
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			return errors.Join(errors.New("flowd did not stop in 20 s"), <-errc)
		}
	}
	return in, in.login(ctx)
}

// readAddr reads flowd's output until it says where it listens.
func readAddr(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	found := make(chan string, 1)
	go func() {
		defer close(found)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "flowd is listening on "); ok {
				found <- strings.TrimSpace(rest)
				return
			}
		}
	}()
	select {
	case base, ok := <-found:
		if !ok {
			return "", fmt.Errorf("flowd stopped before listening: %v", sc.Err())
		}
		return base, nil
	case <-time.After(60 * time.Second):
		return "", errors.New("flowd did not start listening in 60 s")
	}
}

func (in *instance) login(ctx context.Context) error {
	c := client.New(in.Base, "", &http.Client{Timeout: 30 * time.Second})
	tok, err := c.Login(ctx, "admin", adminPassword, "bench")
	if err != nil {
		in.stop()
		return fmt.Errorf("login: %w", err)
	}
	in.tok = tok.Token
	in.Client = client.New(in.Base, tok.Token, &http.Client{Timeout: 60 * time.Second})
	return nil
}

// Stop stops flowd and waits for it.
func (in *instance) Stop() error { return in.stop() }

// pipeline creates a pipeline with one job of one step and enables its webhook; it returns
// the webhook URL.
func (in *instance) pipeline(ctx context.Context, name, script string, vars map[string]string) (string, error) {
	return in.pipelineImage(ctx, name, "", script, vars)
}

// pipelineImage is pipeline with the job's image: ("" = none: the process executor).
func (in *instance) pipelineImage(ctx context.Context, name, image, script string, vars map[string]string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nvariables:\n  abc: \"0\"\n", name)
	for k, v := range vars {
		fmt.Fprintf(&b, "  %s: %q\n", k, v)
	}
	fmt.Fprintf(&b, "stages:\n  - name: s\n    jobs:\n      - name: j\n")
	if image != "" {
		fmt.Fprintf(&b, "        image: %q\n", image)
	}
	fmt.Fprintf(&b, "        steps:\n          - name: step\n            run: %q\n", script)
	if _, err := in.Client.PipelineCreate(ctx, []byte(b.String())); err != nil {
		return "", fmt.Errorf("create pipeline %s: %w", name, err)
	}
	wt, err := in.Client.WebhookEnable(ctx, name, nil)
	if err != nil {
		return "", fmt.Errorf("enable webhook of %s: %w", name, err)
	}
	if wt.URL == nil {
		return "", fmt.Errorf("webhook of %s has no URL", name)
	}
	return *wt.URL, nil
}

// openDB opens the instance's database for the tool's own counting queries.
func openDB(dsn string) (*sql.DB, error) {
	if p, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		return sql.Open("sqlite", p+"?_pragma=busy_timeout(10000)")
	}
	return sql.Open("pgx", dsn)
}

func count(ctx context.Context, db *sql.DB, query string) (int64, error) {
	var n int64
	err := db.QueryRowContext(ctx, query).Scan(&n)
	return n, err
}

// waitCount polls query until it reaches want or timeout passes; it returns the last count.
func waitCount(ctx context.Context, db *sql.DB, query string, want int64, timeout time.Duration) (int64, error) {
	deadline := time.Now().Add(timeout)
	for {
		n, err := count(ctx, db, query)
		if err != nil || n >= want || time.Now().After(deadline) {
			return n, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pgDatabase creates a fresh database on the server of adminDSN and returns its DSN and a
// function that drops it.
func pgDatabase(ctx context.Context, adminDSN string) (string, func(), error) {
	admin, err := sql.Open("pgx", adminDSN)
	if err != nil {
		return "", nil, err
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "flowd_bench_" + hex.EncodeToString(b)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(cctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		return "", nil, err
	}
	u, err := url.Parse(adminDSN)
	if err != nil {
		admin.Close()
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin.ExecContext(dctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		admin.Close()
	}
	return u.String(), drop, nil
}

func (in *instance) token() string { return in.tok }
