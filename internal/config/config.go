// Package config holds the server's Config: its defaults, how flags and FLOWD_* environment
// variables fill it, and its validation, all in one place.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/flowd/flowd/internal/executor"
	"github.com/flowd/flowd/internal/run"
)

// Config is everything `flowd serve` needs to start.
type Config struct {
	Addr string // listen address
	Data string // data folder: SQLite database, secret.key (mode 0700, the server's only)
	// Workspaces is the folder of job workspaces, outside Data; "" = a folder of this server's
	// own under /var/tmp (see Validate).
	Workspaces string
	// StepUser is who runs host steps: "auto" (a uid range of its own when flowd runs as root,
	// else "none"), "none" (the server's own user: trusted pipelines only), or a uid range
	// "FIRST-LAST" (each job a uid of its own).
	StepUser    string
	Database    string // "sqlite:PATH" or "postgres://…"; "" = sqlite in Data
	ExternalURL string // base URL users reach flowd at, for links; "" = http://Addr
	Executors   int    // jobs run at once across the server; 0: none (build agents run them all)
	// Labels are the labels of the server's own slots (--labels k=v,…): a job with runs-on runs
	// here only when they match it (run.LabelsMatch); none: only jobs without runs-on.
	Labels  map[string]string
	MaxBody int64 // webhook and API body limit in bytes
	// WebhookRate and WebhookBurst are each webhook trigger's token bucket: requests per second
	// refilled, and how many may come at once.
	WebhookRate  float64
	WebhookBurst int
	// MaxQueuedRuns bounds the runs waiting to start across the database, as far as webhook
	// deliveries add to them (answered 503 over it); 0 = no bound.
	MaxQueuedRuns int
	// MaxQueueSeconds bounds the seconds of queued work at the recent rate of ended runs, as
	// far as webhook deliveries add to it (answered 503 over it); 0 = no bound.
	MaxQueueSeconds int
	// DeliveryKeep and DeliveryMaxAge bound the delivery log: at most this many per pipeline,
	// none older than this.
	DeliveryKeep   int
	DeliveryMaxAge time.Duration
	// MaxJobLog bounds one job's stored log: past it the head and the tail are kept with a
	// marker between them (see logs.Writer).
	MaxJobLog Size
	// LogRetention is how long the logs of finished runs are kept; 0 keeps them forever.
	LogRetention Age
	// AdminPassword sets the first admin's password on an empty database (FLOWD_ADMIN_PASSWORD);
	// "" = a random one printed once.
	AdminPassword string
	// ResetAdminPassword gives the user admin AdminPassword (or a random one, printed) at this
	// start even when users exist: the way back in when the admin password is lost.
	ResetAdminPassword bool
	// SecretKey is the key for secrets at rest (FLOWD_SECRET_KEY, 64 hex characters);
	// "" = Data/secret.key, generated on first start.
	SecretKey string
	// ShutdownGrace bounds how long a stop may take.
	ShutdownGrace time.Duration
	// MetricsToken is a bearer token that may read /metrics (FLOWD_METRICS_TOKEN); "" = only
	// global admins' API tokens may.
	MetricsToken string
	// MetricsAddr is a listen address of its own for /metrics, open to whoever reaches it (or
	// to MetricsToken when set); "" = none.
	MetricsAddr string
	// NodeName names this server among the servers and agents sharing one database; "" =
	// hostname + "-" + a hash of the data folder (see Validate). Attempts it claims carry it.
	NodeName string
	// LeaseTTL is how long a job attempt's lease lasts without a renewal; runners renew every
	// LeaseTTL/3, and the leader rescues attempts whose lease expired (database time).
	LeaseTTL time.Duration
	// JobExecutor runs jobs without image: "process" (on this host) or "docker" (in a container
	// of DefaultImage, which it needs).
	JobExecutor string
	// DefaultImage is the image of jobs without one; "" = none (they run on this host).
	DefaultImage string
	// AllowHostJobs false refuses, at save time and when a job is claimed, jobs that would
	// run on this host (without image and without DefaultImage).
	AllowHostJobs bool
	// ContainerMaxCPUs and ContainerMaxMemory bound every job's container (and what a job may
	// ask for); 0 = no bound. ContainerPids bounds its processes.
	ContainerMaxCPUs   float64
	ContainerMaxMemory Size
	ContainerPids      int64
	// Version is the version of the flowd binary, set by cmd/flowd (not a flag); the node
	// list shows it. "" = unknown.
	Version string
}

// Default returns the zero-config settings.
func Default() Config {
	return Config{
		Addr:           "127.0.0.1:8080",
		Data:           "./flowd-data",
		StepUser:       "auto",
		Executors:      4,
		MaxBody:        1 << 20,
		WebhookRate:    20,
		WebhookBurst:   100,
		MaxQueuedRuns:  10000,
		DeliveryKeep:   1000,
		DeliveryMaxAge: 30 * 24 * time.Hour,
		MaxJobLog:      64 << 20,
		LogRetention:   Age(90 * 24 * time.Hour),
		ShutdownGrace:  10 * time.Second,
		LeaseTTL:       60 * time.Second,
		JobExecutor:    "process",
		AllowHostJobs:  true,
		ContainerPids:  4096,
	}
}

// Flags registers the serve flags on fs, with defaults taken from c, and returns a function that,
// after fs.Parse, applies FLOWD_<FLAG> environment variables for flags not given on the command
// line (getenv is os.Getenv in production).
func (c *Config) Flags(fs *flag.FlagSet, getenv func(string) string) func() error {
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen `address` (FLOWD_ADDR)")
	fs.StringVar(&c.Data, "data", c.Data, "data `folder`: SQLite database and secret.key, private to the server (FLOWD_DATA)")
	fs.StringVar(&c.Workspaces, "workspaces", c.Workspaces, "`folder` of job workspaces, outside the data folder (FLOWD_WORKSPACES); default /var/tmp/flowd-workspaces-<hash of the data folder>")
	fs.StringVar(&c.StepUser, "step-user", c.StepUser, "who runs steps on this host: auto, none, or a uid range FIRST-LAST, each job a uid of its own (FLOWD_STEP_USER); auto = "+executor.DefaultStepUIDs+" when flowd runs as root, else none (then only pipelines a global admin marked trusted run)")
	fs.StringVar(&c.Database, "database", c.Database, "database `DSN`: sqlite:PATH or postgres://… (FLOWD_DATABASE); default sqlite in the data folder")
	fs.StringVar(&c.ExternalURL, "external-url", c.ExternalURL, "`URL` users reach flowd at, used in links and webhook URLs (FLOWD_EXTERNAL_URL)")
	fs.IntVar(&c.Executors, "executors", c.Executors, "`jobs` run at once across the server; 0 runs none, leaving every job to build agents (FLOWD_EXECUTORS)")
	fs.Func("labels", "`k=v,…` labels of this server's slots: a job with runs-on runs here only when they hold its every label; none runs only jobs without runs-on (FLOWD_LABELS)", func(s string) error {
		labels, err := run.ParseLabels(s)
		c.Labels = labels
		return err
	})
	fs.Int64Var(&c.MaxBody, "max-body", c.MaxBody, "largest request body in `bytes` (FLOWD_MAX_BODY)")
	fs.Float64Var(&c.WebhookRate, "webhook-rate", c.WebhookRate, "webhook `requests` per second each trigger accepts on average (FLOWD_WEBHOOK_RATE)")
	fs.IntVar(&c.WebhookBurst, "webhook-burst", c.WebhookBurst, "webhook `requests` each trigger accepts at once before the rate applies (FLOWD_WEBHOOK_BURST)")
	fs.IntVar(&c.MaxQueuedRuns, "max-queued-runs", c.MaxQueuedRuns, "queued `runs` (across every server on the database) over which webhooks are answered 503 with Retry-After; 0 = no bound (FLOWD_MAX_QUEUED_RUNS)")
	fs.IntVar(&c.MaxQueueSeconds, "max-queue-seconds", c.MaxQueueSeconds, "`seconds` of queued work, at the rate runs ended in the last minute, over which webhooks are answered 503 with Retry-After; 0 = no bound (FLOWD_MAX_QUEUE_SECONDS)")
	fs.IntVar(&c.DeliveryKeep, "delivery-keep", c.DeliveryKeep, "webhook `deliveries` kept per pipeline (FLOWD_DELIVERY_KEEP)")
	fs.BoolVar(&c.ResetAdminPassword, "reset-admin-password", c.ResetAdminPassword, "at this start, set the password of the user admin to FLOWD_ADMIN_PASSWORD, or a random one printed once, and make it an enabled global admin (FLOWD_RESET_ADMIN_PASSWORD)")
	fs.DurationVar(&c.DeliveryMaxAge, "delivery-max-age", c.DeliveryMaxAge, "how long webhook deliveries are kept, e.g. 720h (FLOWD_DELIVERY_MAX_AGE)")
	fs.StringVar(&c.MetricsToken, "metrics-token", c.MetricsToken, "bearer `token` that may read /metrics besides global admins' API tokens; prefer FLOWD_METRICS_TOKEN, which ps does not show")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "listen `address` serving only /metrics, to whoever reaches it (with --metrics-token: only to that token) (FLOWD_METRICS_ADDR)")
	fs.Var(&c.MaxJobLog, "max-job-log", "largest `size` of one job's log, e.g. 64MiB; past it the first and last halves are kept (FLOWD_MAX_JOB_LOG)")
	fs.Var(&c.LogRetention, "log-retention", "how long the logs of finished runs are kept: a `duration` such as 90d or 720h; 0 keeps them forever (FLOWD_LOG_RETENTION)")
	fs.StringVar(&c.NodeName, "node-name", c.NodeName, "`name` of this server among those sharing one database (FLOWD_NODE_NAME); default hostname-<hash of the data folder>")
	fs.DurationVar(&c.LeaseTTL, "lease-ttl", c.LeaseTTL, "how long a running job's lease lasts without a heartbeat before it is rescued, e.g. 60s (FLOWD_LEASE_TTL)")
	fs.StringVar(&c.JobExecutor, "executor", c.JobExecutor, "how jobs without image: run: process (on this host) or docker (in a container of --default-image) (FLOWD_EXECUTOR)")
	fs.StringVar(&c.DefaultImage, "default-image", c.DefaultImage, "`image` of jobs without image: (needed by --executor docker) (FLOWD_DEFAULT_IMAGE)")
	fs.BoolVar(&c.AllowHostJobs, "allow-host-jobs", c.AllowHostJobs, "run jobs without image: (and without --default-image) on this host; false refuses them when a pipeline is saved (FLOWD_ALLOW_HOST_JOBS)")
	fs.Float64Var(&c.ContainerMaxCPUs, "container-max-cpus", c.ContainerMaxCPUs, "most `CPUs` a job's container gets or may ask for (container: cpus); 0 = no bound (FLOWD_CONTAINER_MAX_CPUS)")
	fs.Var(&c.ContainerMaxMemory, "container-max-memory", "most memory a job's container gets or may ask for (container: memory), a `size` such as 2GiB; 0 = no bound (FLOWD_CONTAINER_MAX_MEMORY)")
	fs.Int64Var(&c.ContainerPids, "container-pids", c.ContainerPids, "most `processes` in a job's container (FLOWD_CONTAINER_PIDS)")
	applyEnv := EnvApplier(fs, "FLOWD_", getenv)
	return func() error {
		err := applyEnv()
		c.AdminPassword = getenv("FLOWD_ADMIN_PASSWORD")
		c.SecretKey = getenv("FLOWD_SECRET_KEY")
		return err
	}
}

// EnvApplier returns a function that, after fs.Parse, sets each flag not given on the command
// line from the environment variable prefix + its name in capitals, dashes as underscores
// (FLOWD_MAX_JOB_LOG for --max-job-log), and says which values it could not take.
func EnvApplier(fs *flag.FlagSet, prefix string, getenv func(string) string) func() error {
	return func() error {
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		var errs []error
		fs.VisitAll(func(f *flag.Flag) {
			if given[f.Name] {
				return
			}
			env := prefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
			if v := getenv(env); v != "" {
				if err := f.Value.Set(v); err != nil {
					errs = append(errs, fmt.Errorf("%s=%q: %w", env, v, err))
				}
			}
		})
		return errors.Join(errs...)
	}
}

// Validate checks c and fills derived defaults (Database, ExternalURL).
func (c *Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("--addr must not be empty"))
	}
	if c.Data == "" {
		errs = append(errs, errors.New("--data must not be empty"))
	} else if abs, err := filepath.Abs(c.Data); err == nil {
		c.Data = abs
	}
	if c.Executors < 0 || c.Executors > 1024 {
		errs = append(errs, fmt.Errorf("--executors must be between 0 (a server that runs no job itself: agents run them all) and 1024, got %d", c.Executors))
	}
	if c.MaxBody < 1024 {
		errs = append(errs, fmt.Errorf("--max-body must be at least 1024 bytes, got %d", c.MaxBody))
	}
	if c.WebhookRate <= 0 || c.WebhookBurst < 1 {
		errs = append(errs, fmt.Errorf("--webhook-rate must be above 0 and --webhook-burst at least 1, got %g and %d", c.WebhookRate, c.WebhookBurst))
	}
	if c.MaxQueuedRuns < 0 || c.MaxQueueSeconds < 0 {
		errs = append(errs, fmt.Errorf("--max-queued-runs and --max-queue-seconds must be 0 (no bound) or more, got %d and %d", c.MaxQueuedRuns, c.MaxQueueSeconds))
	}
	if c.DeliveryKeep < 1 || c.DeliveryMaxAge < time.Minute {
		errs = append(errs, fmt.Errorf("--delivery-keep must be at least 1 and --delivery-max-age at least 1m, got %d and %v", c.DeliveryKeep, c.DeliveryMaxAge))
	}
	if c.MaxJobLog < 64<<10 {
		errs = append(errs, fmt.Errorf("--max-job-log must be at least 64KiB, got %v", c.MaxJobLog))
	}
	switch c.StepUser {
	case "auto", "none":
	default:
		if _, _, err := executor.ParseUIDRange(c.StepUser); err != nil {
			errs = append(errs, fmt.Errorf("--step-user must be auto, none or a uid range FIRST-LAST: %w", err))
		}
	}
	if c.Workspaces == "" && c.Data != "" {
		sum := sha256.Sum256([]byte(c.Data))
		c.Workspaces = filepath.Join("/var/tmp", "flowd-workspaces-"+hex.EncodeToString(sum[:6]))
	} else if c.Workspaces != "" {
		if abs, err := filepath.Abs(c.Workspaces); err == nil {
			c.Workspaces = abs
		}
		if c.Data != "" && (c.Workspaces == c.Data || strings.HasPrefix(c.Workspaces, c.Data+string(filepath.Separator))) {
			errs = append(errs, fmt.Errorf("--workspaces must be outside the data folder %s (steps must never reach it), got %s", c.Data, c.Workspaces))
		}
	}
	if c.MetricsToken != "" && len(c.MetricsToken) < 16 {
		errs = append(errs, fmt.Errorf("--metrics-token must be at least 16 characters, got %d; e.g. openssl rand -hex 32", len(c.MetricsToken)))
	}
	if c.MetricsAddr != "" && c.MetricsAddr == c.Addr && !strings.HasSuffix(c.Addr, ":0") { // :0 = any free port
		errs = append(errs, fmt.Errorf("--metrics-addr must differ from --addr (both %s)", c.Addr))
	}
	if c.LogRetention != 0 && time.Duration(c.LogRetention) < time.Hour {
		errs = append(errs, fmt.Errorf("--log-retention must be 0 (keep forever) or at least 1h, got %v", c.LogRetention))
	}
	switch c.JobExecutor {
	case "process":
	case "docker":
		if c.DefaultImage == "" {
			errs = append(errs, errors.New("--executor docker runs jobs without image: in a container of --default-image: give one, such as --default-image debian:12"))
		}
	default:
		errs = append(errs, fmt.Errorf("--executor must be process or docker, got %q", c.JobExecutor))
	}
	if c.DefaultImage != "" && strings.ContainsAny(c.DefaultImage, " \t\n") {
		errs = append(errs, fmt.Errorf("--default-image must be an image reference such as debian:12, got %q", c.DefaultImage))
	}
	if c.ContainerMaxCPUs < 0 || c.ContainerMaxMemory < 0 || c.ContainerPids < 16 {
		errs = append(errs, fmt.Errorf("--container-max-cpus and --container-max-memory must be 0 (no bound) or more, and --container-pids at least 16, got %g, %v and %d", c.ContainerMaxCPUs, c.ContainerMaxMemory, c.ContainerPids))
	}
	if c.Database == "" {
		c.Database = "sqlite:" + filepath.Join(c.Data, "flowd.db")
	} else if !strings.HasPrefix(c.Database, "sqlite:") && !strings.HasPrefix(c.Database, "postgres://") && !strings.HasPrefix(c.Database, "postgresql://") {
		errs = append(errs, fmt.Errorf("--database must be sqlite:PATH or a postgres:// URL, got %q", c.Database))
	}
	if c.ExternalURL == "" {
		c.ExternalURL = "http://" + c.Addr
	} else if u, err := url.Parse(c.ExternalURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("--external-url must be an http(s) URL, got %q", c.ExternalURL))
	}
	c.ExternalURL = strings.TrimRight(c.ExternalURL, "/")
	if c.LeaseTTL < time.Second || c.LeaseTTL > time.Hour {
		errs = append(errs, fmt.Errorf("--lease-ttl must be between 1s and 1h, got %v", c.LeaseTTL))
	}
	if c.NodeName == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "flowd"
		}
		sum := sha256.Sum256([]byte(c.Data))
		c.NodeName = host + "-" + hex.EncodeToString(sum[:3])
	} else if len(c.NodeName) > 100 || strings.ContainsAny(c.NodeName, "/ \t\n") {
		errs = append(errs, fmt.Errorf("--node-name must be at most 100 characters with no '/' or spaces, got %q", c.NodeName))
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	return errors.Join(errs...)
}

// StepUIDs resolves StepUser for a server whose effective uid is euid: the uid range steps run
// as, or ok false when steps run as the server's own user.
func (c *Config) StepUIDs(euid int) (first, last uint32, ok bool) {
	return executor.StepUIDs(c.StepUser, euid)
}
