package executor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/flowd/flowd/internal/run"
)

// Docker runs each job in a container of its image, through the Docker Engine API: one
// container per job attempt with an init process (so background children are reaped), the
// job's workspace as a volume of the attempt mounted at /workspace, each step as one exec of
// `sh -e -c SCRIPT` with the job's environment (the script one argument, values only in the
// environment), and the job's services as containers beside it on a network of the attempt,
// reachable by their names.
//
// Every container, network and volume it makes carries the labels LabelInstance, LabelNode,
// LabelAttempt, LabelRun, LabelJob and LabelRole, and a name made of the instance, run, job and
// attempt, so that Cleanup removes them by name and Sweep finds what a killed server left.
//
// The zero value is not ready; use NewDocker.
type Docker struct {
	// Client talks to the daemon (DOCKER_HOST, or the local socket).
	Client *client.Client
	// Node is this server's node name (LabelNode).
	Node string
	// Instance names the flowd installation (servers on one database share it), so that two
	// installations sharing one Docker daemon (tests do) never remove each other's containers.
	Instance string
	// Host runs the checkout of a job with a Git source on this machine, as it would for a
	// job without image (as a step user when the server runs as root); its tree is then
	// copied into the job's volume. nil: jobs with a checkout fail.
	Host *Local
	// KillGrace is how long a canceled step's processes have between SIGTERM and SIGKILL.
	// Default 1s.
	KillGrace time.Duration
	// DaemonWait bounds a job's first call to the daemon, so that a daemon that hangs fails
	// the job instead of holding it until its timeout. Default 30s.
	DaemonWait time.Duration
	// Limits are the server's bounds of every job's container.
	Limits Limits
	// Logger receives errors that do not end the job.
	Logger *slog.Logger
}

// Limits bound the containers of jobs; a job asks for less within them (container: cpus,
// memory). Zero is no bound.
type Limits struct {
	MaxCPUs   float64
	MaxMemory int64 // bytes
	// Pids bounds the processes of one container (a fork bomb ends there). Default 4096.
	Pids int64
}

// The labels of every container, network and volume Docker makes.
const (
	LabelInstance = "io.flowd.instance"
	LabelNode     = "io.flowd.node"
	LabelAttempt  = "io.flowd.attempt"
	LabelRun      = "io.flowd.run"
	LabelJob      = "io.flowd.job"
	LabelRole     = "io.flowd.role" // job, service, workspace or network
)

// Workdir is where a job's workspace is mounted in its container.
const Workdir = "/workspace"

// defaultPids is Limits.Pids when unset.
const defaultPids = 4096

// NewDocker returns a Docker executor on the daemon DOCKER_HOST names (the local socket by
// default). Nothing is asked of the daemon until a job runs: a daemon that is not reachable
// fails those jobs, each with a message saying so.
func NewDocker(logger *slog.Logger, node, instance string, host *Local, limits Limits) (*Docker, error) {
	c, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("executor: docker client: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Docker{Client: c, Node: node, Instance: instance, Host: host, KillGrace: time.Second, Limits: limits, Logger: logger}, nil
}

// InstanceOf names an installation by a value every server of it shares and no other has (its
// secret key): a short hash, which tells nothing of the value.
func InstanceOf(shared []byte) string {
	sum := sha256.Sum256(append([]byte("flowd docker instance\x00"), shared...))
	return hex.EncodeToString(sum[:6])
}

// Close closes the client.
func (d *Docker) Close() error { return d.Client.Close() }

// Ping says whether the daemon answers, and its version.
func (d *Docker) Ping(ctx context.Context) (string, error) {
	res, err := d.Client.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		return "", d.unreachable(err)
	}
	return res.APIVersion, nil
}

var _ Executor = (*Docker)(nil)

// Log lines of a job in a container.
const (
	imagePullFormat    = "⬇ pulling image %s\n"
	imagePulledFormat  = "⬇ pulled image %s (%s)\n"
	containerFormat    = "⬢ container %s ready in %s\n" // image, time from Run to the first step
	containerFailFmt   = "✖ %s\n"
	containerLimitNote = "⬢ note: %s\n"
)

// names is what one attempt's objects are called.
type names struct{ prefix string }

func (d *Docker) names(job Job) names {
	return names{prefix: fmt.Sprintf("flowd-%s-%d-%d-%d", d.Instance, job.RunID, job.JobID, job.Attempt)}
}
func (n names) job() string                { return n.prefix }
func (n names) volume() string             { return n.prefix }
func (n names) network() string            { return n.prefix }
func (n names) service(name string) string { return n.prefix + "-" + name }
func (d *Docker) labels(job Job, role string) map[string]string {
	return map[string]string{
		LabelInstance: d.Instance,
		LabelNode:     d.Node,
		LabelAttempt:  strconv.FormatInt(job.Attempt, 10),
		LabelRun:      strconv.FormatInt(job.RunID, 10),
		LabelJob:      strconv.FormatInt(job.JobID, 10),
		LabelRole:     role,
	}
}

// dockerRun is one Run.
type dockerRun struct {
	d      *Docker
	job    Job
	out    *lineWriter
	rep    Reporter
	logger *slog.Logger
	base   context.Context
	names  names
	id     string       // the job's container
	user   string       // the steps' user ("" the image's)
	ooms   atomic.Int32 // OOM kills seen in the job's container
	memory int64        // the job's memory limit, for the OOM message
}

// Run runs job in a container; see Executor and Docker. Before the first step it makes sure
// the image is there (container: pull), makes the volume, the network and the services, makes
// the job's container and copies the workspace into the volume (the checkout, when the job
// has one, made on this host first). A failure of any of that fails the job with one sentence
// saying what to do, and skips every step.
//
// A canceled or timed-out step's processes, and everything else running in the container but
// its init, get SIGTERM, then after KillGrace the container is killed.
func (d *Docker) Run(ctx context.Context, job Job, out io.Writer, rep Reporter) Result {
	logger := d.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &dockerRun{d: d, job: job, out: &lineWriter{w: out}, rep: rep, base: ctx, names: d.names(job),
		logger: logger.With("run_id", job.RunID, "job_id", job.JobID, "attempt", job.Attempt)}
	r.lr().out = r.out

	jobCtx := ctx
	if job.Timeout > 0 {
		var cancel context.CancelFunc
		jobCtx, cancel = context.WithTimeoutCause(ctx, job.Timeout, errJobTimeout)
		defer cancel()
	}
	if job.Container == nil || job.Container.Image == "" {
		return r.fail("this job has no image to run in")
	}
	begin := time.Now()
	watch, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatch()
	if err := r.prepare(jobCtx, watch); err != nil {
		if jobCtx.Err() != nil {
			r.say(failFormat, "container", r.stopReason(jobCtx))
			r.lr().skip(0)
			return r.lr().stopped(jobCtx)
		}
		var ce *checkoutError
		if errors.As(err, &ce) {
			r.lr().skip(0)
			return Result{Status: run.Failed, Message: "checkout failed: " + ce.msg}
		}
		return r.fail(err.Error())
	}
	r.say(containerFormat, job.Container.Image, formatDuration(time.Since(begin)))

	for i, step := range job.Steps {
		if jobCtx.Err() != nil {
			r.lr().skip(i)
			return r.lr().stopped(jobCtx)
		}
		status, code, reason := r.step(jobCtx, step)
		r.lr().finished(step.ID, status, code)
		switch status {
		case run.Success:
			continue
		case run.Canceled:
			r.lr().skip(i + 1)
			return r.lr().stopped(jobCtx)
		default:
			r.lr().skip(i + 1)
			if context.Cause(jobCtx) == errJobTimeout {
				return r.lr().stopped(jobCtx)
			}
			return Result{Status: run.Failed, Message: fmt.Sprintf("step %q failed: %s", step.Name, reason)}
		}
	}
	return Result{Status: run.Success}
}

// lr is a localRun sharing this run's job, output and reporter, for the report and skip
// helpers both executors use.
func (r *dockerRun) lr() *localRun {
	return &localRun{job: r.job, out: r.out, rep: r.rep, logger: r.logger, base: r.base}
}

func (r *dockerRun) say(format string, args ...any) { r.out.line(fmt.Sprintf(format, args...)) }

// fail ends a job that could not start: one line saying why, every step skipped.
func (r *dockerRun) fail(msg string) Result {
	r.say(containerFailFmt, msg)
	r.lr().skip(0)
	return Result{Status: run.Failed, Message: msg}
}

func (r *dockerRun) stopReason(ctx context.Context) string {
	if context.Cause(ctx) == errJobTimeout {
		return fmt.Sprintf(timeoutReason, r.job.Timeout)
	}
	return canceledReason
}

// call is the context of one daemon call made for cleanup or after the job's context ended.
func (r *dockerRun) call() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.base), reportTimeout)
}

// prepare makes everything the first step needs; see Run.
// The OOM watch lives as long as watch.
func (r *dockerRun) prepare(ctx, watch context.Context) error {
	d, job, c := r.d, r.job, r.job.Container
	if err := r.image(ctx, c.Image, c.Pull); err != nil {
		return err
	}
	for _, s := range c.Services {
		if s.Image != c.Image {
			if err := r.image(ctx, s.Image, c.Pull); err != nil {
				return fmt.Errorf("service %s: %w", s.Name, err)
			}
		}
	}
	hc, notes := d.hostConfig(c.CPUs, c.Memory)
	for _, n := range notes {
		r.say(containerLimitNote, n)
	}
	r.memory = hc.Memory
	if _, err := d.Client.VolumeCreate(ctx, client.VolumeCreateOptions{Name: r.names.volume(), Labels: d.labels(job, "workspace")}); err != nil {
		return d.failed("create the job's volume", err)
	}
	hc.Mounts = []mount.Mount{{Type: mount.TypeVolume, Source: r.names.volume(), Target: Workdir}}
	switch {
	case c.Network == run.NetworkNone:
		hc.NetworkMode = "none"
	case len(c.Services) > 0:
		if _, err := d.Client.NetworkCreate(ctx, r.names.network(), client.NetworkCreateOptions{Driver: "bridge", Labels: d.labels(job, "network")}); err != nil {
			return d.failed("create the job's network", err)
		}
		hc.NetworkMode = container.NetworkMode(r.names.network())
		if err := r.services(ctx); err != nil {
			return err
		}
	}
	// The container's own process only waits (as long as the job may take, so that a
	// container whose server was killed ends by itself), and ignores SIGTERM, so that a
	// canceled step's `kill -TERM -1` spares it.
	wait := int64(24 * time.Hour / time.Second)
	if job.Timeout > 0 {
		wait = int64((job.Timeout + time.Minute) / time.Second)
	}
	created, err := d.Client.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: r.names.job(),
		Config: &container.Config{
			Image:      c.Image,
			User:       c.User,
			Entrypoint: []string{"sh", "-c", "trap '' TERM INT; exec sleep " + strconv.FormatInt(wait, 10)},
			Cmd:        []string{},
			WorkingDir: Workdir,
			Labels:     d.labels(job, "job"),
		},
		HostConfig: hc,
	})
	if err != nil {
		return d.failed("create the job's container from "+c.Image, err)
	}
	r.id = created.ID
	r.watchOOM(watch)
	if err := r.workspace(ctx); err != nil {
		return err
	}
	if _, err := d.Client.ContainerStart(ctx, r.id, client.ContainerStartOptions{}); err != nil {
		return d.failed("start the job's container", err)
	}
	return r.servicesUp(ctx)
}

// hostConfig is the container's resources and safety: the job's CPUs and memory within the
// server's maxima (a note for each value cut to its maximum), the pids limit, an init
// process, never privileged, no host mount or device.
func (d *Docker) hostConfig(cpus float64, memory int64) (*container.HostConfig, []string) {
	var notes []string
	l := d.Limits
	if l.MaxCPUs > 0 && (cpus == 0 || cpus > l.MaxCPUs) {
		if cpus > l.MaxCPUs {
			notes = append(notes, fmt.Sprintf("cpus %g is over this server's maximum; the job gets %g", cpus, l.MaxCPUs))
		}
		cpus = l.MaxCPUs
	}
	if l.MaxMemory > 0 && (memory == 0 || memory > l.MaxMemory) {
		if memory > l.MaxMemory {
			notes = append(notes, fmt.Sprintf("memory %s is over this server's maximum; the job gets %s", formatBytes(memory), formatBytes(l.MaxMemory)))
		}
		memory = l.MaxMemory
	}
	pids := l.Pids
	if pids <= 0 {
		pids = defaultPids
	}
	init := true
	hc := &container.HostConfig{
		Init:       &init,
		Privileged: false,
		Resources: container.Resources{
			NanoCPUs:  int64(cpus * 1e9),
			Memory:    memory,
			PidsLimit: &pids,
		},
	}
	if memory > 0 {
		hc.MemorySwap = memory // no swap beyond the limit: a job over it is OOM-killed, not slowed
	}
	return hc, notes
}

// formatBytes shows a memory size: 512MiB, 1.5GiB.
func formatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%dMiB", n>>20)
	default:
		return fmt.Sprintf("%dB", n)
	}
}

// image makes sure ref is on the daemon, as pull says.
func (r *dockerRun) image(ctx context.Context, ref, pull string) error {
	d := r.d
	wait := d.DaemonWait
	if wait <= 0 {
		wait = defaultDaemonWait
	}
	ictx, cancel := context.WithTimeoutCause(ctx, wait, errDaemonSilent)
	_, err := d.Client.ImageInspect(ictx, ref)
	cancel()
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(ictx), errDaemonSilent) {
		return fmt.Errorf("Docker at %s did not answer in %s: check that its daemon runs and is not stuck (docker info)", d.Client.DaemonHost(), wait)
	}
	switch {
	case err == nil && pull != run.PullAlways:
		return nil
	case err != nil && !cerrdefs.IsNotFound(err):
		return d.failed("look up image "+ref, err)
	case err != nil && pull == run.PullNever:
		return fmt.Errorf("image %s is not on this Docker host and pull: never forbids pulling it: load it there (docker pull or docker load), or remove pull: never", ref)
	}
	r.say(imagePullFormat, ref)
	begin := time.Now()
	res, err := d.Client.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err == nil {
		err = res.Wait(ctx)
		res.Close()
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if client.IsErrConnectionFailed(err) {
			return d.unreachable(err)
		}
		return fmt.Errorf("cannot pull image %s (%s): check the name and that this Docker host reaches its registry, or load the image there and set pull: never", ref, oneLine(err))
	}
	r.say(imagePulledFormat, ref, formatDuration(time.Since(begin)))
	return nil
}

// defaultDaemonWait is Docker.DaemonWait when unset.
const defaultDaemonWait = 30 * time.Second

var errDaemonSilent = errors.New("the Docker daemon did not answer")

// failed is the error of a daemon call that failed while preparing a job.
func (d *Docker) failed(what string, err error) error {
	if client.IsErrConnectionFailed(err) {
		return d.unreachable(err)
	}
	return fmt.Errorf("cannot %s: %s", what, oneLine(err))
}

// unreachable is the error of a job whose daemon does not answer.
func (d *Docker) unreachable(err error) error {
	host := d.Client.DaemonHost()
	why := oneLine(err)
	if op := (*net.OpError)(nil); errors.As(err, &op) {
		why = oneLine(op.Err)
	}
	return fmt.Errorf("cannot reach Docker at %s (%s): start the Docker daemon on this server (dockerd), or point DOCKER_HOST at one", host, why)
}

// oneLine is err's message on one line, without the client's "Error response from daemon: ".
func oneLine(err error) string {
	s := strings.TrimPrefix(err.Error(), "Error response from daemon: ")
	return strings.Join(strings.Fields(s), " ")
}

// watchOOM counts the OOM kills in the job's container, which the daemon reports as events
// (the container's own state says OOMKilled only when its init was the one killed).
func (r *dockerRun) watchOOM(ctx context.Context) {
	f := client.Filters{}.Add("type", "container").Add("container", r.id).Add("event", "oom")
	ev := r.d.Client.Events(ctx, client.EventsListOptions{Filters: f})
	go func() {
		for {
			select {
			case _, ok := <-ev.Messages:
				if !ok {
					return
				}
				r.ooms.Add(1)
			case <-ev.Err:
				return
			}
		}
	}()
}
