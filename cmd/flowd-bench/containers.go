package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/flowd/flowd/internal/dockertest"
	"github.com/flowd/flowd/internal/executor"
)

// --- 8: jobs in containers (issue 12) --------------------------------------------------------

// Containers is a one-step job in a container end to end through flowd, against the floor
// (`docker run --rm` of the same image and command, fork/exec'd by the tool) and the same job
// on the process executor, measured in the same rounds.
type Containers struct {
	Method        string          `json:"method"`
	Image         string          `json:"image"`
	ImageImported bool            `json:"image_imported"` // the tool imported the image first
	Rounds        int             `json:"rounds"`
	RunsPerLoad   int             `json:"runs_per_load"` // each load, each round
	Loads         []ContainerLoad `json:"loads"`
	// Overhead is the container start overhead per job at each concurrency: the job with
	// image: minus the same job on the process executor.
	Overhead []ContainerOverhead `json:"overhead"`
	Skipped  string              `json:"skipped,omitempty"`
	Error    string              `json:"error,omitempty"`
}

// ContainerLoad is one load at one concurrency over every round: each run's latency and each
// round's rate.
type ContainerLoad struct {
	Load         string    `json:"load"` // loadFloor, loadImage or loadProcess
	Concurrency  int       `json:"concurrency"`
	Runs         int       `json:"runs"` // measured, over every round
	P50ms        float64   `json:"p50_ms"`
	P95ms        float64   `json:"p95_ms"`
	Maxms        float64   `json:"max_ms"`
	PerSec       float64   `json:"runs_per_s"` // the median of the rounds
	RoundsPerSec []float64 `json:"rounds_runs_per_s"`
	OutputOK     int       `json:"output_ok"` // runs whose output (the run's log) held 456
	// Containers counts the containers flowd started during this load's rounds (the Docker
	// daemon's start events labelled with the tool's node): one per job with image:.
	Containers int `json:"containers_started,omitempty"`
	// Ready is what the logs of the runs with image: say about each container's start
	// ("⬢ container IMAGE ready in X": the executor's time from the job's start to its first
	// step), when they say it.
	Ready *ContainerReady `json:"container_ready,omitempty"`
	Error string          `json:"error,omitempty"`

	lat   []time.Duration
	ready *readyLog // the runs' logs (image: only)
}

// ContainerOverhead is image: minus process at one concurrency, per job.
type ContainerOverhead struct {
	Concurrency int     `json:"concurrency"`
	P50ms       float64 `json:"p50_ms"`
	P95ms       float64 `json:"p95_ms"`
	// VsFloor is the job with image: over the floor (p50s): what flowd adds to docker run.
	VsFloor float64 `json:"image_p50_vs_floor_p50"`
	// RateVsFloor is the runs per second of the job with image: over the floor's.
	RateVsFloor float64 `json:"image_runs_per_s_vs_floor"`
	// ReadyP50ms and ReadyP95ms are the executor's own "container … ready in" figures (0
	// without them).
	ReadyP50ms float64 `json:"ready_p50_ms,omitempty"`
	ReadyP95ms float64 `json:"ready_p95_ms,omitempty"`
}

// ContainerReady is the "container … ready in X" lines of the measured runs' logs.
type ContainerReady struct {
	Lines int     `json:"lines"`
	P50ms float64 `json:"p50_ms,omitempty"`
	P95ms float64 `json:"p95_ms,omitempty"`
	Note  string  `json:"note,omitempty"`
}

// The loads of the section.
const (
	loadFloor   = "docker run"
	loadImage   = "flowd, image:"
	loadProcess = "flowd, process"
)

// containersPlan is what the containers section does, from the flags.
type containersPlan struct {
	runs        int   // each load, each round
	concurrency []int // the loads' concurrencies
}

const (
	containerScript = `echo $abc`
	containerValue  = "456"
)

// containers measures the section (see Containers): skipped without a Docker daemon, the image
// imported when the daemon lacks it, then p.rounds rounds of every load at every concurrency.
func containers(ctx context.Context, p plan, cp containersPlan, progress func(string)) Containers {
	res := Containers{Image: dockertest.Image, Rounds: p.rounds, RunsPerLoad: cp.runs, Loads: []ContainerLoad{}, Overhead: []ContainerOverhead{},
		Method: fmt.Sprintf("each round, at each concurrency %v, in turn: %d runs of each load, by as many closed-loop clients as the concurrency. "+
			"Floor: `docker run --rm -e abc=%s %s sh -c '%s'` fork/exec'd by the tool (the docker CLI, on the daemon DOCKER_HOST names, the local socket by default); latency = the command's "+
			"start to its exit, output checked. flowd: one in-process server (SQLite, --executors = the highest concurrency) with two pipelines "+
			"of one job of one step `%s`, one with `image: %s`, one without (the process executor); a client POSTs the webhook {\"abc\":\"%s\"}, "+
			"follows the run's log (GET …/log?follow=1, which ends when the run does) and checks it holds %s; latency = the run's runs.finished_at "+
			"− the client's clock when it read the 202. Runs/s = runs / (first start → last end) in each round; p50 and p95 over every round. "+
			"Overhead per job = p50 (p95) of image: − p50 (p95) of process at the same concurrency.",
			cp.concurrency, cp.runs, containerValue, dockertest.Image, containerScript, containerScript, dockertest.Image, containerValue, containerValue)}
	dc, imported, err := dockerReady(ctx)
	if err != nil {
		res.Skipped = err.Error()
		return res
	}
	defer dc.Close()
	res.ImageImported = imported
	loads, node, stop, err := containerLoads(ctx, p, cp)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer stop()
	// Warm up each load once (the image's page cache, flowd's first job), unmeasured.
	for _, l := range loads {
		if _, _, _, err := l.run(1, 1, io.Discard); err != nil {
			res.Error = fmt.Sprintf("%s, warm-up: %v", l.name, err)
			return res
		}
	}
	byKey := map[loadKey]*ContainerLoad{}
	for _, c := range cp.concurrency {
		for _, l := range loads {
			res.Loads = append(res.Loads, ContainerLoad{Load: l.name, Concurrency: c})
		}
	}
	for i := range res.Loads {
		byKey[loadKey{res.Loads[i].Load, res.Loads[i].Concurrency}] = &res.Loads[i]
	}
	for r := range p.rounds {
		for _, c := range cp.concurrency {
			for _, l := range loads {
				cl := byKey[loadKey{l.name, c}]
				if cl.Error != "" {
					continue
				}
				progress(fmt.Sprintf("containers round %d/%d: %s, concurrency %d, %d runs", r+1, p.rounds, l.name, c, cp.runs))
				if err := measureLoad(ctx, dc, l, c, cp.runs, node, cl); err != nil && res.Error == "" {
					res.Error = fmt.Sprintf("%s, concurrency %d, round %d: %v", l.name, c, r+1, err)
				}
			}
		}
	}
	for i := range res.Loads {
		cl := &res.Loads[i]
		q := quantiles(cl.lat, 0.50, 0.95, 1)
		cl.Runs, cl.P50ms, cl.P95ms, cl.Maxms = len(cl.lat), q[0], q[1], q[2]
		cl.PerSec = median(cl.RoundsPerSec)
		if cl.ready != nil {
			r := cl.ready.result()
			cl.Ready = &r
		}
	}
	for _, c := range cp.concurrency {
		img, proc, floor := byKey[loadKey{loadImage, c}], byKey[loadKey{loadProcess, c}], byKey[loadKey{loadFloor, c}]
		if img.Runs == 0 || proc.Runs == 0 {
			continue
		}
		o := ContainerOverhead{Concurrency: c, P50ms: round3(img.P50ms - proc.P50ms), P95ms: round3(img.P95ms - proc.P95ms),
			VsFloor: ratio(img.P50ms, floor.P50ms), RateVsFloor: ratio(img.PerSec, floor.PerSec)}
		if img.Ready != nil {
			o.ReadyP50ms, o.ReadyP95ms = img.Ready.P50ms, img.Ready.P95ms
		}
		res.Overhead = append(res.Overhead, o)
	}
	return res
}

// loadKey names one load at one concurrency.
type loadKey struct {
	load        string
	concurrency int
}

// containerLoad is one of the section's loads: run measures n runs at concurrency conc and
// returns each run's latency, the runs per second, how many printed the value, and the first
// error; the logs of flowd's runs go to logs.
type containerLoad struct {
	name string
	run  func(conc, n int, logs io.Writer) ([]time.Duration, float64, int, error)
}

// containerLoads starts the in-process flowd (node is its --node-name) with the pipeline with
// image: and the one without, and returns the three loads in the order they alternate; stop
// stops flowd.
func containerLoads(ctx context.Context, p plan, cp containersPlan) (loads []containerLoad, node string, stop func(), err error) {
	data, err := os.MkdirTemp(p.tmp, "flowd-containers-")
	if err != nil {
		return nil, "", nil, err
	}
	node = fmt.Sprintf("flowd-bench-%d", os.Getpid())
	in, url, db, cleanup, err := pipelineInstance(ctx, data, opts{executors: slices.Max(cp.concurrency), nodeName: node}, "process", containerScript, nil)
	if err != nil {
		return nil, "", nil, err
	}
	imageURL, err := in.pipelineImage(ctx, "image", dockertest.Image, containerScript, nil)
	if err != nil {
		cleanup()
		return nil, "", nil, err
	}
	f := &flowdLoader{in: in, db: db, hc: newHTTPClient(slices.Max(cp.concurrency), 30*time.Second)}
	loads = []containerLoad{
		{loadFloor, func(conc, n int, _ io.Writer) ([]time.Duration, float64, int, error) {
			return dockerRunLoad(ctx, conc, n)
		}},
		{loadImage, func(conc, n int, logs io.Writer) ([]time.Duration, float64, int, error) {
			return f.load(ctx, imageURL, conc, n, logs)
		}},
		{loadProcess, func(conc, n int, logs io.Writer) ([]time.Duration, float64, int, error) {
			return f.load(ctx, url, conc, n, logs)
		}},
	}
	return loads, node, func() { f.hc.CloseIdleConnections(); cleanup() }, nil
}

// measureLoad runs one round of l at concurrency conc and adds it to cl; for the load with
// image:, it also counts the containers the daemon dc started for node meanwhile, which must be
// one per job at least. It returns the round's error, which is also cl's.
func measureLoad(ctx context.Context, dc *client.Client, l containerLoad, conc, n int, node string, cl *ContainerLoad) error {
	var started func(want int) (int, error)
	logs := io.Discard
	if l.name == loadImage {
		started = watchStarts(ctx, dc, node)
		if cl.ready == nil {
			cl.ready = &readyLog{}
		}
		logs = cl.ready
	}
	lat, perSec, ok, err := l.run(conc, n, logs)
	if started != nil {
		m, werr := started(n)
		cl.Containers += m
		switch {
		case err != nil:
		case werr != nil:
			err = werr
		case m < n:
			err = fmt.Errorf("%d containers started for %d jobs with image: (did the jobs run on the host?)", m, n)
		}
	}
	cl.lat = append(cl.lat, lat...)
	cl.RoundsPerSec = append(cl.RoundsPerSec, perSec)
	cl.OutputOK += ok
	if err != nil {
		cl.Error = err.Error()
	}
	return err
}

// dockerReady checks that a Docker daemon answers and the docker command is there (the floor
// runs it), and imports the test image when the daemon lacks it; it returns a client of the
// daemon and says whether it imported the image. Its error is why the section is skipped,
// with what to do.
func dockerReady(ctx context.Context) (c *client.Client, imported bool, err error) {
	if !dockertest.Available() {
		return nil, false, errors.New("no Docker daemon answers (DOCKER_HOST or the default socket): install Debian's docker.io and start dockerd, as `bash .ci/docker.sh` does")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		return nil, false, errors.New("the docker command is missing (the floor runs it): install Debian's docker.io")
	}
	c, err = client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, false, fmt.Errorf("docker client: %w", err)
	}
	ictx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := c.ImageInspect(ictx, dockertest.Image); err == nil {
		return c, false, nil
	}
	if err := dockertest.EnsureImage(ictx, c); err != nil {
		c.Close()
		return nil, false, fmt.Errorf("the image %s is missing and could not be imported (%v): run `bash .ci/docker.sh`", dockertest.Image, err)
	}
	return c, true, nil
}

// nodeLabel is the label flowd's container executor puts on each of its containers, naming the
// server (--node-name) that started it.
const nodeLabel = executor.LabelNode

// watchStarts follows the daemon's events from now on and counts the containers labelled with
// node that it starts (live: the daemon keeps only its last events for a later query, fewer
// than a round's jobs make). started stops following, after waiting up to 5 s for the count to
// reach want (an event may still be on its way), and returns the count.
func watchStarts(ctx context.Context, dc *client.Client, node string) (started func(want int) (int, error)) {
	wctx, cancel := context.WithCancel(ctx)
	ev := dc.Events(wctx, client.EventsListOptions{Filters: make(client.Filters).
		Add("type", "container").Add("event", "start").Add("label", nodeLabel+"="+node)})
	var (
		mu   sync.Mutex
		n    int
		werr error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			select {
			case <-ev.Messages:
				mu.Lock()
				n++
				mu.Unlock()
			case err := <-ev.Err:
				if wctx.Err() == nil {
					mu.Lock()
					werr = fmt.Errorf("follow the daemon's events: %w", err)
					mu.Unlock()
				}
				return
			}
		}
	}()
	return func(want int) (int, error) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			m, err := n, werr
			mu.Unlock()
			if m >= want || err != nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return n, werr
	}
}

// dockerRunLoad runs the floor n times on conc workers: each run's time, runs per second, and
// how many printed the value.
func dockerRunLoad(ctx context.Context, conc, n int) ([]time.Duration, float64, int, error) {
	var (
		mu   sync.Mutex
		lat  []time.Duration
		ok   int
		errs []error
	)
	took := drive(ctx, newRecorder(), conc, 10*time.Minute, int64(n), func(int, int64) (int, error) {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(rctx, "docker", "run", "--rm", "-e", "abc="+containerValue, dockertest.Image, "sh", "-c", containerScript)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		t0 := time.Now()
		err := cmd.Run()
		d := time.Since(t0)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("docker run: %w: %s", err, bytes.TrimSpace(out.Bytes())))
			return 0, err
		}
		lat = append(lat, d)
		if out.String() == containerValue+"\n" {
			ok++
		} else {
			errs = append(errs, fmt.Errorf("docker run printed %q, want %q", out.String(), containerValue+"\n"))
		}
		return http.StatusAccepted, nil
	})
	return lat, ratio(float64(len(lat)), took.Seconds()), ok, firstErr(errs)
}

// flowdLoader runs webhooks of one pipeline of the in-process flowd through to their runs' end.
type flowdLoader struct {
	in *instance
	db *sql.DB
	hc *http.Client
}

// load POSTs {"abc":"456"} n times to url from conc closed-loop clients, each following its
// run's log to the end before the next: each run's 202 → runs.finished_at, runs per second
// (first POST → last finished_at), and how many logs held the value. Each run's log goes to
// logs once the run ended.
func (f *flowdLoader) load(ctx context.Context, url string, conc, n int, logs io.Writer) ([]time.Duration, float64, int, error) {
	var (
		mu    sync.Mutex
		lat   []time.Duration
		ok    int
		errs  []error
		first = time.Now()
		last  time.Time
	)
	fail := func(err error) (int, error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		return 0, err
	}
	body := []byte(`{"abc":"` + containerValue + `"}`)
	drive(ctx, newRecorder(), conc, 10*time.Minute, int64(n), func(int, int64) (int, error) {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		st, run, _, err := postRun(rctx, f.hc, url, body)
		answered := time.Now()
		if err != nil || st != http.StatusAccepted || run == 0 {
			return fail(fmt.Errorf("webhook: status %d, run %d: %v", st, run, err))
		}
		var log bytes.Buffer
		if err := f.in.Client.Log(rctx, run, true, &log); err != nil {
			return fail(fmt.Errorf("follow the log of run %d: %w", run, err))
		}
		var status string
		var finished sql.NullInt64
		if err := f.db.QueryRowContext(rctx, "SELECT status, finished_at FROM runs WHERE id = ?", run).Scan(&status, &finished); err != nil {
			return fail(fmt.Errorf("read run %d: %w", run, err))
		}
		if status != "success" || !finished.Valid {
			return fail(fmt.Errorf("run %d ended %s; its log:\n%s", run, status, tail(log.String(), 2000)))
		}
		end := time.Unix(0, finished.Int64)
		mu.Lock()
		defer mu.Unlock()
		logs.Write(log.Bytes())
		lat = append(lat, end.Sub(answered))
		last = later(last, end)
		if strings.Contains(log.String(), "\n"+containerValue+"\n") {
			ok++
		} else {
			errs = append(errs, fmt.Errorf("the log of run %d does not hold %s:\n%s", run, containerValue, tail(log.String(), 2000)))
		}
		return http.StatusAccepted, nil
	})
	var perSec float64
	if len(lat) > 0 {
		perSec = ratio(float64(len(lat)), last.Sub(first).Seconds())
	}
	return lat, perSec, ok, firstErr(errs)
}

// readyLog reads the logs of runs (an io.Writer fed each run's log): it keeps the duration of
// each line in which the container executor says how long the job's container took to be
// ready, "⬢ container IMAGE ready in 312ms", and drops the rest.
type readyLog struct {
	mu      sync.Mutex
	partial []byte
	took    []time.Duration
	bad     int // "container … ready in" lines without a duration the tool could read
}

var readyLine = regexp.MustCompile(`container (?:\S+ )?ready in (\S+)`)

func (l *readyLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	return len(b), nil
}

func (l *readyLog) line(s string) {
	m := readyLine.FindStringSubmatch(s)
	if m == nil {
		return
	}
	if d, err := time.ParseDuration(m[1]); err == nil {
		l.took = append(l.took, d)
	} else {
		l.bad++
	}
}

func (l *readyLog) result() ContainerReady {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := ContainerReady{Lines: len(l.took)}
	switch {
	case len(l.took) > 0:
		q := quantiles(l.took, 0.50, 0.95)
		r.P50ms, r.P95ms = q[0], q[1]
	case l.bad > 0:
		r.Note = fmt.Sprintf("%d \"container … ready in\" lines of the runs' logs without a duration the tool could read", l.bad)
	default:
		r.Note = "the runs' logs have no \"container … ready in X\" line"
	}
	return r
}

// printContainers prints the containers section as a table of its own.
func printContainers(w io.Writer, c Containers) {
	fmt.Fprintf(w, "\nJobs in containers (issue 12): one step `%s`, {\"abc\":\"%s\"}, image %s; %d round(s) × %d runs per load\n\n",
		containerScript, containerValue, c.Image, c.Rounds, c.RunsPerLoad)
	switch {
	case c.Skipped != "":
		fmt.Fprintf(w, "skipped: %s\n", c.Skipped)
		return
	case c.ImageImported:
		fmt.Fprintf(w, "(the tool imported %s first)\n\n", c.Image)
	}
	fmt.Fprintf(w, "| %-34s | %-11s | %-11s | %-11s | %-28s | %-9s |\n", "load, concurrency", "p50", "p95", "max", "runs/s [rounds]", "output ok")
	fmt.Fprintf(w, "|%s|%s|%s|%s|%s|%s|\n", dash(36), dash(13), dash(13), dash(13), dash(30), dash(11))
	for _, l := range c.Loads {
		name := fmt.Sprintf("%s, %d", l.Load, l.Concurrency)
		if l.Error != "" {
			fmt.Fprintf(w, "| %-34s | error: %s\n", name, strings.ReplaceAll(l.Error, "\n", " "))
			continue
		}
		okText := fmt.Sprintf("%d/%d", l.OutputOK, l.Runs)
		fmt.Fprintf(w, "| %-34s | %8.1f ms | %8.1f ms | %8.1f ms | %-28s | %-9s |\n", name, l.P50ms, l.P95ms, l.Maxms,
			fmt.Sprintf("%.1f %s", l.PerSec, roundsPrec(l.RoundsPerSec, 1)), okText)
	}
	fmt.Fprintln(w)
	for _, o := range c.Overhead {
		fmt.Fprintf(w, "concurrency %d: container start overhead per job p50 %+.1f ms, p95 %+.1f ms (image: − process); image: vs docker run: p50 × %.2f, runs/s × %.2f",
			o.Concurrency, o.P50ms, o.P95ms, o.VsFloor, o.RateVsFloor)
		if o.ReadyP50ms > 0 {
			fmt.Fprintf(w, "; the executor's \"container … ready in\" p50 %.1f, p95 %.1f ms", o.ReadyP50ms, o.ReadyP95ms)
		}
		fmt.Fprintln(w)
	}
	for _, l := range c.Loads {
		if r := l.Ready; r != nil && r.Lines == 0 && r.Note != "" {
			fmt.Fprintf(w, "%s, %d: %s\n", l.Load, l.Concurrency, r.Note)
		}
	}
	if c.Error != "" {
		fmt.Fprintf(w, "error: %s\n", c.Error)
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func round3(v float64) float64 { return ratio(v, 1) }

func firstErr(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return fmt.Errorf("%w (and %d more)", errs[0], len(errs)-1)
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
