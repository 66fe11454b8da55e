// Package agent is `flowd agent`: a process on another machine that runs a flowd server's jobs.
// It registers with any server of the installation, claims jobs by long-poll as it has free
// slots, and runs each with the executors the server uses (executor.Local, and
// executor.Docker for jobs with an image when a daemon answers). Per job it posts step
// changes, renews the attempt's lease every heartbeat (which also carries cancel), buffers
// the masked log in a file of its work folder and uploads it by offset, and finishes the job
// with the log's length and SHA-256. The protocol is docs/agent-protocol.md.
//
// The files: agent.go (start, register, the claim loop, drain and stop), job.go (one claimed
// job), buffer.go (the log buffer and the bound of unsent bytes), upload.go (log upload and
// finish), protocol.go (the wire types, calls and retries).
package agent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flowd/flowd/internal/agentproto"
	"github.com/flowd/flowd/internal/executor"
)

// Config is everything `flowd agent` needs to start.
type Config struct {
	// Server is the base URL of any flowd server of the installation.
	Server string
	// Token is the agent token (fat_…). It is never logged.
	Token string
	// Name names this agent (1–100 characters of [A-Za-z0-9._-]); its attempts carry it as
	// their node.
	Name string
	// Labels are the agent's labels; jobs with runs-on go to agents whose labels match.
	Labels map[string]string
	// Capacity is how many jobs run at once (1–256).
	Capacity int
	// WorkDir holds the job workspaces ("workspaces"), the log buffers ("logs") and the
	// records of running steps ("steps"); one agent at a time uses it.
	WorkDir string
	// StepUser is who runs host steps, as flowd serve's --step-user: auto, none or FIRST-LAST.
	StepUser string
	// MaxJobLog bounds one job's log (head and tail kept past it); 0 = 64 MiB.
	MaxJobLog int64
	// LogBuffer bounds the log bytes not yet acknowledged by the server, across jobs; past
	// it jobs' log writes wait. 0 = 256 MiB.
	LogBuffer int64
	// Containers bound every job's container (as flowd serve's --container-* flags).
	Containers executor.Limits
	// Version is the binary's version, sent at register.
	Version string
	// HTTPClient makes the calls; nil = a client of its own.
	HTTPClient *http.Client
}

// retryBase and retryMax bound the backoff of every retried call (docs/agent-protocol.md
// "Retries"); tests shorten them.
var (
	retryBase = 500 * time.Millisecond
	retryMax  = 30 * time.Second
)

// Defaults of Config.
const (
	DefaultMaxJobLog = 64 << 20
	DefaultLogBuffer = 256 << 20
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)

// Validate checks c and fills defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.Server == "" {
		errs = append(errs, errors.New("--server is required: the URL of a flowd server, e.g. https://ci.example.com"))
	} else if !strings.HasPrefix(c.Server, "http://") && !strings.HasPrefix(c.Server, "https://") {
		errs = append(errs, fmt.Errorf("--server must be an http(s) URL, got %q", c.Server))
	}
	c.Server = strings.TrimRight(c.Server, "/")
	if c.Token == "" {
		errs = append(errs, errors.New("no agent token: give --token-file FILE or FLOWD_AGENT_TOKEN (create one with flowd agent-token create)"))
	}
	if !nameRE.MatchString(c.Name) {
		errs = append(errs, fmt.Errorf("--name must be 1-100 characters of letters, digits and . _ -, got %q", c.Name))
	}
	if c.Capacity < 1 || c.Capacity > 256 {
		errs = append(errs, fmt.Errorf("--capacity must be between 1 and 256, got %d", c.Capacity))
	}
	if c.WorkDir == "" {
		errs = append(errs, errors.New("--work-dir must not be empty"))
	} else if abs, err := filepath.Abs(c.WorkDir); err == nil {
		c.WorkDir = abs
	}
	if c.MaxJobLog == 0 {
		c.MaxJobLog = DefaultMaxJobLog
	}
	if c.MaxJobLog < 64<<10 {
		errs = append(errs, fmt.Errorf("--max-job-log must be at least 64KiB, got %d bytes", c.MaxJobLog))
	}
	if c.LogBuffer == 0 {
		c.LogBuffer = DefaultLogBuffer
	}
	if c.LogBuffer < 1<<20 {
		errs = append(errs, fmt.Errorf("--log-buffer must be at least 1MiB, got %d bytes", c.LogBuffer))
	}
	switch c.StepUser {
	case "":
		c.StepUser = "auto"
	case "auto", "none":
	default:
		if _, _, err := executor.ParseUIDRange(c.StepUser); err != nil {
			errs = append(errs, fmt.Errorf("--step-user must be auto, none or a uid range FIRST-LAST: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Agent is one running `flowd agent`.
type Agent struct {
	cfg        Config
	log        *slog.Logger
	conn       *conn
	exec       executor.Executor
	pool       *pool
	workspaces string
	logsDir    string
	instance   string // random per register

	// jobs is the parent of every job's executor context, and calls of every job's calls:
	// the agent's stop (a second signal, a refused token) cancels them.
	jobs, calls              context.Context
	stopJobs, stopCalls      context.CancelCauseFunc
	heartbeatEvery, leaseTTL time.Duration

	fatalOnce sync.Once
	fatalErr  error
	fatalCh   chan struct{}
}

// Run runs the agent until drain is done and its running jobs have ended (their ends
// recorded), then returns nil. When kill is done the running jobs are canceled (and finished as
// canceled) and Run returns. A refused agent token (401) kills the running jobs and returns an
// error saying so.
func Run(drain, kill context.Context, cfg Config, logger *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	a, release, err := start(kill, cfg, logger)
	if err != nil {
		return err
	}
	defer release()
	return a.loop(drain, kill)
}

// start prepares the work folder and the executors.
func start(ctx context.Context, cfg Config, logger *slog.Logger) (*Agent, func(), error) {
	first, last, isolated := executor.StepUIDs(cfg.StepUser, os.Geteuid())
	mode := os.FileMode(0o700)
	if isolated {
		mode = 0o711 // step users pass through it to their workspaces
	}
	if err := os.MkdirAll(cfg.WorkDir, mode); err != nil {
		return nil, nil, fmt.Errorf("agent: work folder: %w", err)
	}
	if err := os.Chmod(cfg.WorkDir, mode); err != nil {
		return nil, nil, fmt.Errorf("agent: work folder: %w", err)
	}
	unlock, err := lockWorkDir(cfg.WorkDir)
	if err != nil {
		return nil, nil, err
	}
	logsDir := filepath.Join(cfg.WorkDir, "logs")
	if err := os.RemoveAll(logsDir); err != nil { // buffers of a killed agent: its attempts are settled at register
		unlock()
		return nil, nil, fmt.Errorf("agent: log buffers: %w", err)
	}
	if err := os.Mkdir(logsDir, 0o700); err != nil {
		unlock()
		return nil, nil, fmt.Errorf("agent: log buffers: %w", err)
	}
	workspaces := filepath.Join(cfg.WorkDir, "workspaces")
	host, releaseHost, err := executor.NewHost(ctx, executor.HostOptions{
		Workspaces: workspaces, WorkspacesFlag: "--work-dir",
		Procs:    filepath.Join(cfg.WorkDir, "steps"),
		StepUser: cfg.StepUser, First: first, Last: last, Isolated: isolated,
		Slots: cfg.Capacity, SlotsFlag: "--capacity",
		OwnUserWarning: "steps run as the agent's own OS user, so every job it runs can read and change what that user can: " +
			"run flowd agent as root (or give --step-user a uid range) to run each job as a user of its own",
	}, logger)
	if err != nil {
		unlock()
		return nil, nil, fmt.Errorf("agent: %w", err)
	}
	host.Logger = logger.With("component", "executor")
	var exec executor.Executor = host
	docker := newContainers(ctx, cfg, host, logger)
	router := executor.Router{Host: host}
	if docker != nil {
		router.Containers = docker
	}
	exec = router
	release := func() {
		releaseHost()
		if docker != nil {
			docker.Close()
		}
		unlock()
	}
	sweepWorkspaces(ctx, exec, workspaces, logger)

	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	a := &Agent{
		cfg: cfg, log: logger, exec: exec, pool: newPool(cfg.LogBuffer),
		workspaces: workspaces, logsDir: logsDir,
		conn: &conn{base: cfg.Server, token: cfg.Token, hc: hc, log: logger, version: cfg.Version,
			retryBase: retryBase, retryMax: retryMax, callTimeout: 30 * time.Second},
		fatalCh: make(chan struct{}),
	}
	return a, release, nil
}

// newContainers builds the Docker executor of jobs with an image as flowd serve does, its
// objects labelled with the agent's name as node, and removes what a killed agent of this name
// left. nil when there is no Docker client; a daemon that does not answer is no error (jobs
// with an image fail, each saying so, until it does).
func newContainers(ctx context.Context, cfg Config, host *executor.Local, logger *slog.Logger) *executor.Docker {
	log := logger.With("component", "docker")
	sum := sha256.Sum256([]byte("flowd agent " + cfg.Token))
	d, err := executor.NewDocker(log, cfg.Name, executor.InstanceOf(sum[:]), host, cfg.Containers)
	if err != nil {
		log.Info("no Docker client: jobs with an image fail on this agent", "err", err)
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	version, err := d.Ping(pctx)
	if err != nil {
		log.Info("Docker does not answer: jobs with an image fail until it does", "err", err)
		return d
	}
	n, err := d.Sweep(ctx, cfg.Name, nil)
	if err != nil {
		log.Warn("remove the containers a previous agent of this name left", "err", err)
	}
	log.Info("jobs with an image run in Docker containers", "api", version, "removed_left_over", n)
	return d
}

// sweepWorkspaces removes every workspace under root: one agent uses a work folder at a time
// (lockWorkDir), so what is there was left by a killed agent.
func sweepWorkspaces(ctx context.Context, exec executor.Executor, root string, logger *slog.Logger) {
	entries, err := os.ReadDir(root)
	if err != nil {
		logger.Warn("sweep workspaces", "err", err)
		return
	}
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue // the executor's own (its kept folders), which it sweeps itself
		}
		ws := filepath.Join(root, strings.TrimSuffix(e.Name(), executor.HomeSuffix))
		if err := exec.Cleanup(ctx, executor.Job{Workspace: ws}); err != nil {
			logger.Warn("remove a workspace a previous agent left", "workspace", ws, "err", err)
			continue
		}
		n++
	}
	if n > 0 {
		logger.Info("removed workspaces a previous agent left", "count", n)
	}
}

// lockWorkDir takes, for the life of the process, a lock in the work folder, so that two
// agents never share one (each would remove the other's workspaces at start).
func lockWorkDir(dir string) (func(), error) {
	path := filepath.Join(dir, "agent.lock")
	fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_CREAT|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent: lock the work folder: %w", err)
	}
	if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("agent: another flowd agent uses the work folder %s: give each agent a --work-dir of its own", dir)
	}
	return func() { syscall.Close(fd) }, nil
}

// fatal stops the agent: its jobs are killed and nothing more is sent (a refused token).
func (a *Agent) fatal(err error) {
	a.fatalOnce.Do(func() {
		a.fatalErr = err
		a.stopJobs(err)
		a.stopCalls(err)
		close(a.fatalCh)
	})
}

// loop registers, then claims and runs jobs until drain (or kill, or a refused token).
func (a *Agent) loop(drain, kill context.Context) error {
	a.jobs, a.stopJobs = context.WithCancelCause(context.Background())
	a.calls, a.stopCalls = context.WithCancelCause(context.Background())
	defer a.stopJobs(nil)
	defer a.stopCalls(nil)
	stopKill := context.AfterFunc(kill, func() { a.stopJobs(errAgentStopped) })
	defer stopKill()

	// Register (retried while the server is away) until drained.
	rctx, cancel := context.WithCancel(drain)
	stopFatal := context.AfterFunc(a.calls, cancel)
	reg, err := a.register(rctx)
	stopFatal()
	cancel()
	if err != nil {
		if err := a.fatalError(); err != nil {
			return err
		}
		if drain.Err() != nil {
			return nil
		}
		return err
	}

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		running int
		ended   = make(chan struct{}, 1)
	)
	b := a.conn.backoff()
	wait := min(max(reg.ClaimWaitSeconds, 1), 30)
	claims, stopClaims := context.WithCancel(drain)
	defer stopClaims()
	context.AfterFunc(a.calls, stopClaims)
	for claims.Err() == nil {
		mu.Lock()
		free := a.cfg.Capacity - running
		mu.Unlock()
		if free == 0 {
			select {
			case <-ended:
			case <-claims.Done():
			}
			continue
		}
		jobs, paused, err := a.claim(claims, reg.Agent.ID, free, wait)
		var gone *goneError
		var se *statusError
		switch {
		case err != nil && claims.Err() != nil:
		case errors.Is(err, errUnauthorized):
			a.fatal(err)
		case errors.As(err, &gone) && gone.Code == "agent_replaced":
			a.fatal(fmt.Errorf("another flowd agent registered with the name %s and this token: two agents must not share a name (give each its own --name)", a.cfg.Name))
		case errors.As(err, &se) && se.Status == http.StatusNotFound:
			// The agent's row is gone (removed by an admin): register again.
			a.log.Warn("the server does not know this agent any more; registering again", "err", err)
			if reg, err = a.register(claims); err != nil {
				continue
			}
		case err != nil:
			a.log.Warn("claim failed; trying again", "err", err)
			_ = b.wait(claims, 0)
			continue
		case paused:
			a.log.Debug("the agent is paused on the server: no jobs")
			t := time.NewTimer(time.Duration(wait) * time.Second)
			select {
			case <-t.C:
			case <-claims.Done():
			}
			t.Stop()
		}
		b.reset()
		for _, cj := range jobs {
			mu.Lock()
			running++
			mu.Unlock()
			wg.Add(1)
			a.log.Info("claimed a job", "pipeline", cj.Pipeline, "run", cj.RunNumber, "job", cj.Stage+"/"+cj.Job, "attempt", cj.Attempt.Number)
			go func() {
				defer wg.Done()
				a.runJob(cj)
				mu.Lock()
				running--
				mu.Unlock()
				select { // wakes the loop if it waits for a free slot
				case ended <- struct{}{}:
				default:
				}
			}()
		}
	}
	if a.fatalError() == nil {
		mu.Lock()
		n := running
		mu.Unlock()
		if n > 0 {
			a.log.Info("draining: no new jobs; waiting for the running ones to end (a second signal cancels them)", "running", n)
		}
	}
	wg.Wait()
	return a.fatalError()
}

// fatalError is the error that stopped the agent, or nil.
func (a *Agent) fatalError() error {
	select {
	case <-a.fatalCh:
		return a.fatalErr
	default:
		return nil
	}
}

// register registers the agent with a new instance, retried while the server is away.
func (a *Agent) register(ctx context.Context) (agentproto.RegisterResponse, error) {
	inst := make([]byte, 16)
	rand.Read(inst)
	a.instance = hex.EncodeToString(inst)
	req := agentproto.RegisterRequest{Name: a.cfg.Name, Instance: a.instance, Labels: a.cfg.Labels,
		Capacity: a.cfg.Capacity, Version: a.cfg.Version}
	if req.Labels == nil {
		req.Labels = map[string]string{}
	}
	var ans agentproto.RegisterResponse
	if err := a.conn.postJSON(ctx, agentproto.RegisterPath, "", req, &ans, time.Time{}); err != nil {
		if errors.Is(err, errUnauthorized) {
			a.fatal(err)
			return ans, err
		}
		return ans, fmt.Errorf("agent: register with %s: %w", a.cfg.Server, err)
	}
	if a.heartbeatEvery == 0 { // set once, before any job reads them
		a.heartbeatEvery = time.Duration(max(ans.HeartbeatSeconds, 1)) * time.Second
		a.leaseTTL = time.Duration(max(ans.LeaseSeconds, 2)) * time.Second
	}
	a.log.Info("registered", "server", a.cfg.Server, "agent_id", ans.Agent.ID, "name", a.cfg.Name,
		"capacity", a.cfg.Capacity, "labels", a.cfg.Labels, "lease", a.leaseTTL)
	return ans, nil
}

// claim asks for up to free jobs, waiting up to wait seconds. paused: the agent is paused.
func (a *Agent) claim(ctx context.Context, agentID int64, free, wait int) ([]agentproto.Job, bool, error) {
	req := agentproto.ClaimRequest{AgentID: agentID, Instance: a.instance, Free: free, WaitSeconds: float64(wait)}
	body, err := jsonBody(req)
	if err != nil {
		return nil, false, err
	}
	var ans agentproto.ClaimResponse
	hdr, _, err := a.conn.exchange(ctx, call{method: http.MethodPost, path: agentproto.ClaimPath, body: body, json: true,
		timeout: time.Duration(wait)*time.Second + 30*time.Second}, &ans)
	if err != nil {
		return nil, false, err
	}
	return ans.Jobs, hdr.Get(agentproto.AgentPausedHeader) == "1", nil
}

// Signals returns the contexts of Run for a process: drain is done at the first SIGTERM or
// SIGINT, kill at the second (or when parent is done). stop releases the signals.
func Signals(parent context.Context, logger *slog.Logger) (drain, kill context.Context, stop func()) {
	drain, drained := context.WithCancel(parent)
	kill, killed := context.WithCancel(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGTERM, os.Interrupt)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case sig := <-ch:
				n++
				if n == 1 {
					logger.Info("draining: no new jobs; running jobs finish (send the signal again to cancel them)", "signal", sig.String())
					drained()
					continue
				}
				logger.Info("stopping: canceling the running jobs", "signal", sig.String())
				killed()
				return
			case <-done:
				return
			}
		}
	}()
	return drain, kill, func() {
		signal.Stop(ch)
		close(done)
		drained()
		killed()
	}
}
