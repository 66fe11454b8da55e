package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// plan is how much each section does: full or --quick.
type plan struct {
	quick      bool
	dur        time.Duration // one load measurement
	clients    int
	overload   float64 // multiple of the sustainable rate offered in the overload test
	inFlight   int     // client cap on outstanding requests in the overload test
	t2sN       int
	e2eN       int
	seedRuns   int
	seedLines  int
	bigLogMiB  int
	apiN       int
	idleWarm   time.Duration
	idleWindow time.Duration
	rounds     int    // the ingest section's alternations
	twoN       int    // runs of the two-server end to end
	pgDSN      string // "" = skip PostgreSQL
	bin        string // the built flowd binary
	tmp        string
}

const terminal = "SELECT COUNT(*) FROM runs WHERE status IN ('success', 'failed', 'canceled')"

// --- 1 and 2: ingest and its ceilings -----------------------------------------------------

// Ceilings is the same load against the two servers in this tool.
type Ceilings struct {
	Bare  Load `json:"bare_net_http"`
	Fsync Load `json:"fsync_per_request"`
}

func ceilings(ctx context.Context, p plan) (Ceilings, error) {
	var c Ceilings
	bare, err := startBare(p.tmp, false)
	if err != nil {
		return c, err
	}
	c.Bare = closedLoop(ctx, bare.URL, p.clients, p.dur, 1<<40)
	bare.Close()
	fs, err := startBare(p.tmp, true)
	if err != nil {
		return c, err
	}
	c.Fsync = closedLoop(ctx, fs.URL, p.clients, p.dur, 1<<40)
	fs.Close()
	return c, nil
}

// Ingest is flowd's webhook intake while every executor is busy.
type Ingest struct {
	Database      string    `json:"database"`
	Load          Load      `json:"load"`
	RunsStored    int64     `json:"runs_stored"` // runs made by the load (the holding run not counted)
	EveryAccepted bool      `json:"every_accepted_is_a_run"`
	VsBare        float64   `json:"ratio_vs_bare"`
	VsFsync       float64   `json:"ratio_vs_fsync"`
	ExecutorsBusy bool      `json:"executors_busy"`
	CPUCores      float64   `json:"cpu_cores_used"` // this process (flowd and the load) during the load
	QueuedAfter   int64     `json:"queued_after"`
	RoundsPerSec  []float64 `json:"rounds_accepted_per_s"` // each round's rate, in order
	VsCeiling     float64   `json:"ratio_vs_postgres_ceiling,omitempty"`
	VsSQLite      float64   `json:"ratio_vs_sqlite,omitempty"`
	Skipped       string    `json:"skipped,omitempty"`
	Error         string    `json:"error,omitempty"`
}

// PGCeiling is the tool's own clients committing one-row INSERTs through pgx, each its own
// transaction, on the PostgreSQL server flowd's ingest uses: what the server commits at most
// for the same number of clients.
type PGCeiling struct {
	Load         Load      `json:"load"`
	RoundsPerSec []float64 `json:"rounds_inserts_per_s"`
	CPUCores     float64   `json:"cpu_cores_used"` // this process (the clients) during the load
	Method       string    `json:"method"`
	Skipped      string    `json:"skipped,omitempty"`
	Error        string    `json:"error,omitempty"`
}

// ingestInstance starts flowd (in-process) with one executor held by a long first run; it
// returns the instance, the webhook URL, its database and a cleanup.
func ingestInstance(ctx context.Context, p plan, dsn string, o opts) (*instance, string, *sql.DB, func(), error) {
	o.dsn = dsn
	o.executors = 1
	data, _ := os.MkdirTemp(p.tmp, "flowd-")
	in, url, db, cleanup, err := pipelineInstance(ctx, data, o, "ingest", "sleep 600", nil)
	if err != nil {
		return nil, "", nil, nil, err
	}
	hc := newHTTPClient(1, 10*time.Second)
	if st, err := post(ctx, hc, url, []byte(`{"abc":"hold"}`)); err != nil || st != http.StatusAccepted {
		cleanup()
		return nil, "", nil, nil, fmt.Errorf("holding run: %d %v", st, err)
	}
	if n, err := waitCount(ctx, db, "SELECT COUNT(*) FROM runs WHERE status = 'running'", 1, 30*time.Second); err != nil || n != 1 {
		cleanup()
		return nil, "", nil, nil, fmt.Errorf("holding run did not start: %d %v", n, err)
	}
	return in, url, db, cleanup, nil
}

// pipelineInstance starts flowd (in-process) in data with one pipeline, name, whose step runs
// script with vars; it returns the instance, the pipeline's webhook URL, its database and a
// cleanup that closes the database and stops flowd.
func pipelineInstance(ctx context.Context, data string, o opts, name, script string, vars map[string]string) (*instance, string, *sql.DB, func(), error) {
	in, err := startInProcess(ctx, data, o)
	if err != nil {
		return nil, "", nil, nil, err
	}
	url, err := in.pipeline(ctx, name, script, vars)
	if err != nil {
		in.Stop()
		return nil, "", nil, nil, err
	}
	db, err := openDB(in.DSN)
	if err != nil {
		in.Stop()
		return nil, "", nil, nil, err
	}
	return in, url, db, func() { db.Close(); in.Stop() }, nil
}

// sample calls f now and then every period until the returned stop is called; stop returns
// once f has run for the last time.
func sample(period time.Duration, f func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			f()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// ingestLoad is one of the loads the ingest section alternates.
type ingestLoad struct {
	rec    *recorder
	took   time.Duration
	cpu    time.Duration
	rounds []float64
	run    func(rec *recorder) time.Duration // one round
}

// round runs one round of l and adds it to l's totals.
func (l *ingestLoad) round() {
	c0, before := selfCPU(), l.rec.acceptedSoFar()
	took := l.run(l.rec)
	l.took += took
	l.cpu += selfCPU() - c0
	l.rounds = append(l.rounds, float64(int(float64(l.rec.acceptedSoFar()-before)/took.Seconds())))
}

// result is the load's Load and CPU cores over all its rounds.
func (l *ingestLoad) result(clients int) (Load, float64) {
	res := l.rec.result(l.took)
	res.Clients = clients
	return res, float64(int(l.cpu.Seconds()/l.took.Seconds()*100)) / 100
}

// ingestBoth measures flowd's ingest on SQLite and on PostgreSQL (without withPG: SQLite only)
// and the PostgreSQL ceiling (PGCeiling), in p.rounds rounds of p.dur each that alternate them
// — SQLite, ceiling, PostgreSQL, SQLite, … — so that the load of others sharing the machine
// falls on all three alike. Both flowd instances run at once, each with its one executor held
// by a long run, so every webhook run queues.
func ingestBoth(ctx context.Context, p plan, c Ceilings, withPG bool) (sqlite, pg Ingest, ceiling PGCeiling) {
	sqlite, pg = Ingest{Database: "sqlite"}, Ingest{Database: "postgres"}
	ceiling.Method = fmt.Sprintf("%d clients of the tool, one connection each, each committing an INSERT of one row "+
		"(a webhook-sized body) into a scratch table through pgx, a transaction per row, on flowd's PostgreSQL ingest database", p.clients)
	var (
		defers []func()
		loads  []*ingestLoad // in the order they alternate
	)
	defer func() {
		for _, f := range slices.Backward(defers) {
			f()
		}
	}()
	// flowd adds a flowd instance on dsn ("" = SQLite) whose results go to res.
	type flowdLoad struct {
		res    *Ingest
		load   *ingestLoad
		db     *sql.DB
		before int64
	}
	var flowds []*flowdLoad
	flowd := func(res *Ingest, dsn string) {
		_, url, db, cleanup, err := ingestInstance(ctx, p, dsn, opts{})
		if err != nil {
			res.Error = err.Error()
			return
		}
		defers = append(defers, cleanup)
		closedLoop(ctx, url, p.clients, p.dur/5, 1<<40) // warm up: connections, caches
		f := &flowdLoad{res: res, db: db, load: &ingestLoad{rec: newRecorder(), run: func(rec *recorder) time.Duration {
			return closedLoopInto(ctx, rec, []string{url}, p.clients, p.dur, 1<<40)
		}}}
		f.before, _ = count(ctx, db, "SELECT COUNT(*) FROM runs")
		flowds, loads = append(flowds, f), append(loads, f.load)
	}
	flowd(&sqlite, "")
	var ceil *ingestLoad
	switch {
	case !withPG:
	case p.pgDSN == "":
		pg.Skipped, ceiling.Skipped = "no PostgreSQL (--pg \"\")", "no PostgreSQL (--pg \"\")"
	default:
		dsn, drop, err := pgDatabase(ctx, p.pgDSN)
		if err != nil {
			pg.Skipped, ceiling.Skipped = "PostgreSQL unreachable: "+err.Error(), "PostgreSQL unreachable"
			break
		}
		defers = append(defers, drop)
		run, closeCeiling, err := pgInsertLoad(ctx, dsn, p.clients, p.dur)
		if err != nil {
			ceiling.Error = err.Error()
		} else {
			defers = append(defers, closeCeiling)
			run(newRecorder()) // warm up
			ceil = &ingestLoad{rec: newRecorder(), run: run}
			loads = append(loads, ceil)
		}
		flowd(&pg, dsn)
	}
	for range p.rounds {
		for _, l := range loads {
			l.round()
		}
	}
	for _, f := range flowds {
		res := f.res
		res.Load, res.CPUCores = f.load.result(p.clients)
		res.RoundsPerSec = f.load.rounds
		after, _ := count(ctx, f.db, "SELECT COUNT(*) FROM runs")
		res.RunsStored = after - f.before
		res.EveryAccepted = res.RunsStored >= int64(res.Load.Accepted)
		running, _ := count(ctx, f.db, "SELECT COUNT(*) FROM runs WHERE status = 'running'")
		res.ExecutorsBusy = running == 1
		res.QueuedAfter, _ = count(ctx, f.db, "SELECT COUNT(*) FROM runs WHERE status = 'queued'")
		res.VsBare = ratio(res.Load.PerSec, c.Bare.PerSec)
		res.VsFsync = ratio(res.Load.PerSec, c.Fsync.PerSec)
	}
	if ceil != nil {
		ceiling.Load, ceiling.CPUCores = ceil.result(p.clients)
		ceiling.RoundsPerSec = ceil.rounds
		pg.VsCeiling = ratio(pg.Load.PerSec, ceiling.Load.PerSec)
	}
	if pg.Load.PerSec > 0 {
		pg.VsSQLite = ratio(pg.Load.PerSec, sqlite.Load.PerSec)
	}
	return sqlite, pg, ceiling
}

// pgInsertLoad prepares the PostgreSQL ceiling on dsn: a scratch table and clients
// connections. run measures one round of dur: clients goroutines, each committing one-row
// INSERTs one after the other (each a transaction of its own; a success counts as a 202).
func pgInsertLoad(ctx context.Context, dsn string, clients int, dur time.Duration) (run func(*recorder) time.Duration, closeDB func(), err error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, nil, err
	}
	db.SetMaxOpenConns(clients)
	db.SetMaxIdleConns(clients)
	if _, err := db.ExecContext(ctx, `CREATE TABLE bench_ceiling (
		id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, received_at TIMESTAMPTZ NOT NULL DEFAULT now(), body TEXT NOT NULL)`); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("scratch table: %w", err)
	}
	run = func(rec *recorder) time.Duration {
		return drive(ctx, rec, clients, dur, 1<<40, func(_ int, n int64) (int, error) {
			if _, err := db.ExecContext(ctx, "INSERT INTO bench_ceiling (body) VALUES ($1)", string(abcBody(n))); err != nil {
				return 0, err
			}
			return http.StatusAccepted, nil
		})
	}
	return run, func() { db.Close() }, nil
}

// Overload is 5 × the sustainable rate, open loop, with the limiter off; then with it on.
type Overload struct {
	Load            Load    `json:"load"`
	RunsStored      int64   `json:"runs_stored"`
	EveryAccepted   bool    `json:"every_accepted_is_a_run"`
	PeakRSSMiB      float64 `json:"peak_rss_mib"` // of this process: flowd in-process plus the load generator
	StartRSSMiB     float64 `json:"start_rss_mib"`
	PeakChildren    int     `json:"peak_child_processes"`
	RateLimited     Load    `json:"rate_limiter_on"` // default --webhook-rate 20 --webhook-burst 100
	RateLimiterNote string  `json:"rate_limiter_note"`
	Error           string  `json:"error,omitempty"`
}

func overload(ctx context.Context, p plan, sustainable float64) Overload {
	var res Overload
	_, url, db, cleanup, err := ingestInstance(ctx, p, "", opts{})
	if err != nil {
		res.Error = err.Error()
		return res
	}
	rate := max(100, p.overload*sustainable)
	pid := os.Getpid()
	res.StartRSSMiB = rssMiB(pid)
	var peakRSS atomic.Uint64
	var peakKids atomic.Int64
	stop := sample(20*time.Millisecond, func() {
		if r := uint64(rssMiB(pid) * 1024); r > peakRSS.Load() {
			peakRSS.Store(r)
		}
		if k := int64(children(pid)); k > peakKids.Load() {
			peakKids.Store(k)
		}
	})
	before, _ := count(ctx, db, "SELECT COUNT(*) FROM runs")
	res.Load = openLoop(ctx, url, rate, p.dur, p.inFlight, 2*time.Second)
	stop()
	// 202 means committed; a request the client gave up on may still have made a run.
	after, _ := count(ctx, db, "SELECT COUNT(*) FROM runs")
	res.RunsStored = after - before
	res.EveryAccepted = res.RunsStored >= int64(res.Load.Accepted)
	res.PeakRSSMiB = float64(peakRSS.Load()) / 1024
	res.PeakChildren = int(peakKids.Load())
	cleanup()

	// The per-trigger limiter on (the defaults): the same closed loop gets 429s.
	_, url, _, cleanup, err = ingestInstance(ctx, p, "", opts{webhookRate: 20, burst: 100})
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer cleanup()
	res.RateLimited = closedLoop(ctx, url, p.clients, p.dur, 1<<40)
	res.RateLimiterNote = "--webhook-rate 20 --webhook-burst 100 (the defaults); the holding run took one token"
	return res
}

// --- 3: trigger to start --------------------------------------------------------------------

// TriggerToStart is the time from sending the POST to the first step's process running.
type TriggerToStart struct {
	Requests int     `json:"requests"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	Maxms    float64 `json:"max_ms"`
	Answer   Load    `json:"webhook_answer"`
	Method   string  `json:"method"`
	Error    string  `json:"error,omitempty"`
}

func triggerToStart(ctx context.Context, p plan) TriggerToStart {
	res := TriggerToStart{Method: "the step is `echo \"$abc\" > \"$MARK\"` (shell builtin, no fork beyond the step's own /bin/sh) into a FIFO the tool reads; time = line read − POST sent"}
	data, _ := os.MkdirTemp(p.tmp, "flowd-")
	fifo, marks, closeFIFO, err := markFIFO()
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer closeFIFO()
	_, url, db, cleanup, err := pipelineInstance(ctx, data, opts{executors: 4}, "t2s", markScript, map[string]string{"MARK": fifo})
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer cleanup()
	starts, err := sequentialStarts(ctx, url, db, p.t2sN, marks)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	ans, lat := newRecorder(), []time.Duration(nil)
	for _, s := range starts {
		lat = append(lat, s.marked.Sub(s.sent))
		ans.add(s.answered.Sub(s.sent), http.StatusAccepted, nil)
	}
	res.Requests = len(lat)
	res.P50ms, res.P99ms, res.Maxms = percentiles(lat)
	res.Answer = ans.result(time.Second)
	res.Answer.PerSec = 0
	return res
}

// markScript is the step of the trigger-to-start measurements: it writes the run's value into
// the FIFO $MARK (a shell builtin: no fork beyond the step's own /bin/sh).
const markScript = `echo "$abc" > "$MARK"`

// mark is a line read from the FIFO of markFIFO and when it was read.
type mark struct {
	v  string
	at time.Time
}

// markFIFO makes a FIFO that steps running as users of their own (flowd as root) may write:
// it lives in a folder of /tmp anyone may pass through, and anyone may write it. The lines
// written to it arrive on marks with the time each was read; closeFIFO removes it.
func markFIFO() (fifo string, marks <-chan mark, closeFIFO func(), err error) {
	markDir, err := os.MkdirTemp("", "flowd-bench-mark-")
	if err != nil {
		return "", nil, nil, err
	}
	os.Chmod(markDir, 0o755)
	fifo = filepath.Join(markDir, "mark.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		os.RemoveAll(markDir)
		return "", nil, nil, err
	}
	os.Chmod(fifo, 0o622)
	f, err := os.OpenFile(fifo, os.O_RDWR, 0) // RDWR: never EOF, writers never block on open
	if err != nil {
		os.RemoveAll(markDir)
		return "", nil, nil, err
	}
	ch := make(chan mark, 16)
	go func() {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			ch <- mark{sc.Text(), time.Now()}
		}
	}()
	return fifo, ch, func() { f.Close(); os.RemoveAll(markDir) }, nil
}

// runStart is one run of sequentialStarts: when its POST was sent, its 202 read and its step's
// mark read.
type runStart struct {
	sent, answered, marked time.Time
}

// sequentialStarts posts n+2 webhooks {"abc":"i"} to url, each once the run before ended (the
// runs of db that are over grow by one), and waits for each run's step to write i to marks.
// The first two warm up and are not returned.
func sequentialStarts(ctx context.Context, url string, db *sql.DB, n int, marks <-chan mark) ([]runStart, error) {
	base, err := count(ctx, db, terminal)
	if err != nil {
		return nil, err
	}
	hc := newHTTPClient(1, 10*time.Second)
	defer hc.CloseIdleConnections()
	var out []runStart
	for i := range n + 2 { // the first two warm up
		s := runStart{sent: time.Now()}
		st, err := post(ctx, hc, url, abcBody(int64(i)))
		s.answered = time.Now()
		if err != nil || st != http.StatusAccepted {
			return nil, fmt.Errorf("request %d: %d %v", i, st, err)
		}
		select {
		case m := <-marks:
			if m.v != strconv.Itoa(i) {
				return nil, fmt.Errorf("mark %q, want %d", m.v, i)
			}
			s.marked = m.at
		case <-time.After(30 * time.Second):
			return nil, fmt.Errorf("run %d did not start in 30 s", i)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if i >= 2 {
			out = append(out, s)
		}
		// Light load: the next request once this run is over.
		if m, err := waitCount(ctx, db, terminal, base+int64(i+1), 30*time.Second); err != nil || m < base+int64(i+1) {
			return nil, fmt.Errorf("run %d did not end: %v", i, err)
		}
	}
	return out, nil
}

// --- 4: end to end --------------------------------------------------------------------------

// EndToEnd is runs completed per second against raw fork/exec at the same parallelism.
type EndToEnd struct {
	Parallelism int     `json:"parallelism"`
	Runs        int     `json:"runs"`
	FlowdPerSec float64 `json:"flowd_runs_per_s"`
	RawPerSec   float64 `json:"raw_fork_exec_per_s"`
	Ratio       float64 `json:"ratio"`
	Succeeded   int64   `json:"succeeded"`
	LogChecked  bool    `json:"log_checked"`
	Error       string  `json:"error,omitempty"`
}

func endToEnd(ctx context.Context, p plan, par int) EndToEnd {
	res := EndToEnd{Parallelism: par, Runs: p.e2eN}
	data, _ := os.MkdirTemp(p.tmp, "flowd-")
	in, url, db, cleanup, err := pipelineInstance(ctx, data, opts{executors: par}, "e2e", `echo "$abc"`, nil)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer cleanup()
	t0 := time.Now()
	l := closedLoop(ctx, url, 4, 5*time.Minute, int64(p.e2eN))
	if l.Accepted != p.e2eN {
		res.Error = fmt.Sprintf("%d of %d webhooks accepted: %v", l.Accepted, p.e2eN, l.Statuses)
		return res
	}
	n, err := waitCount(ctx, db, terminal, int64(p.e2eN), 10*time.Minute)
	elapsed := time.Since(t0)
	if err != nil || n < int64(p.e2eN) {
		res.Error = fmt.Sprintf("%d of %d runs ended: %v", n, p.e2eN, err)
		return res
	}
	res.FlowdPerSec = float64(p.e2eN) / elapsed.Seconds()
	res.Succeeded, _ = count(ctx, db, "SELECT COUNT(*) FROM runs WHERE status = 'success'")
	// Logs stored: the last run's log holds its value.
	var id int64
	var vars string
	if err := db.QueryRowContext(ctx, "SELECT id, variables FROM runs ORDER BY id DESC LIMIT 1").Scan(&id, &vars); err == nil {
		var buf bytes.Buffer
		if err := in.Client.Log(ctx, id, false, &buf); err == nil {
			i := strings.Index(vars, `"abc":"`)
			if i >= 0 {
				v, _, _ := strings.Cut(vars[i+7:], `"`)
				res.LogChecked = strings.Contains(buf.String(), "\n"+v+"\n")
			}
		}
	}
	res.RawPerSec = rawForkExec(ctx, par, p.e2eN)
	res.Ratio = ratio(res.FlowdPerSec, res.RawPerSec)
	return res
}

// rawForkExec runs /bin/sh -c 'echo $abc' n times on par workers, output through a pipe as
// flowd's is, and returns runs per second.
func rawForkExec(ctx context.Context, par, n int) float64 {
	took := forkExecLoad(ctx, newRecorder(), par, 24*time.Hour, int64(n))
	return float64(n) / took.Seconds()
}

// forkExecLoad is drive with rawForkExec's command as its call: par workers fork/exec one
// command after the other until dur has passed or n were started; each that ran counts as a
// 202 in rec.
func forkExecLoad(ctx context.Context, rec *recorder, par int, dur time.Duration, n int64) time.Duration {
	return drive(ctx, rec, par, dur, n, func(_ int, i int64) (int, error) {
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", "echo $abc")
		cmd.Env = []string{"abc=" + strconv.FormatInt(i, 10), "PATH=/usr/bin:/bin"}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return 0, err
		}
		return http.StatusAccepted, nil
	})
}

// --- 5: scale -------------------------------------------------------------------------------

// Scale is the API over a big history and a big log, on the built binary.
type Scale struct {
	Runs          int64   `json:"runs"`
	LogLines      int64   `json:"log_lines"`
	SeedSeconds   float64 `json:"seed_seconds"`
	RunHistory    Load    `json:"run_history_first_page"`
	RunHistoryOld Load    `json:"run_history_deep_page"`
	Pipelines     Load    `json:"pipelines_list"`
	Pipelines50   int     `json:"pipelines"`
	LogMiB        float64 `json:"log_mib"`
	LogSeconds    float64 `json:"log_stream_seconds"`
	LogMiBPerSec  float64 `json:"log_stream_mib_per_s"`
	RSSBeforeMiB  float64 `json:"rss_before_stream_mib"`
	RSSPeakMiB    float64 `json:"rss_peak_during_stream_mib"`
	RSSAfterMiB   float64 `json:"rss_after_stream_mib"`
	HWMMiB        float64 `json:"vm_hwm_mib"`
	Error         string  `json:"error,omitempty"`
}

func scale(ctx context.Context, p plan) Scale {
	var res Scale
	data, _ := os.MkdirTemp(p.tmp, "flowd-")
	in, err := startBinary(ctx, p.bin, data, opts{})
	if err != nil {
		res.Error = err.Error()
		return res
	}
	url, err := in.pipeline(ctx, "history", `echo "$abc"`, nil)
	if err == nil {
		const others = 49
		for i := range others {
			if _, err = in.pipeline(ctx, fmt.Sprintf("p%02d", i), "true", nil); err != nil {
				break
			}
		}
		res.Pipelines50 = others + 1
	}
	if err == nil {
		var st int
		st, err = post(ctx, newHTTPClient(1, 10*time.Second), url, []byte(`{"abc":"template"}`))
		if err == nil && st != http.StatusAccepted {
			err = fmt.Errorf("template run: %d", st)
		}
	}
	var db *sql.DB
	if err == nil {
		db, err = openDB(in.DSN)
	}
	if err == nil {
		var n int64
		n, err = waitCount(ctx, db, terminal, 1, 30*time.Second)
		if err == nil && n != 1 {
			err = errors.New("template run did not end")
		}
	}
	if stopErr := in.Stop(); err == nil && stopErr != nil {
		err = stopErr
	}
	if err != nil {
		res.Error = err.Error()
		return res
	}
	t0 := time.Now()
	bigRun, err := seed(ctx, db, p.seedRuns, p.seedLines, p.bigLogMiB)
	db.Close()
	res.SeedSeconds = time.Since(t0).Seconds()
	if err != nil {
		res.Error = "seed: " + err.Error()
		return res
	}
	in, err = startBinary(ctx, p.bin, data, opts{})
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer in.Stop()
	db, err = openDB(in.DSN)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Runs, _ = count(ctx, db, "SELECT COUNT(*) FROM runs")
	res.LogLines, _ = count(ctx, db, "SELECT COUNT(*) FROM log_chunks WHERE run_id <> "+strconv.FormatInt(bigRun, 10))
	db.Close()

	get := func(path string) Load {
		return apiLoop(ctx, in, path, p.apiN)
	}
	get("/api/v1/pipelines") // warm up
	res.RunHistory = get("/api/v1/pipelines/history/runs")
	res.RunHistoryOld = get(fmt.Sprintf("/api/v1/pipelines/history/runs?before=%d", p.seedRuns/2))
	res.Pipelines = get("/api/v1/pipelines")

	// The big log, streamed while /proc of the server is sampled.
	res.RSSBeforeMiB = rssMiB(in.PID)
	var peak atomic.Uint64
	stop := sample(10*time.Millisecond, func() {
		if r := uint64(rssMiB(in.PID) * 1024); r > peak.Load() {
			peak.Store(r)
		}
	})
	t1 := time.Now()
	cw := &countWriter{}
	err = in.Client.Log(ctx, bigRun, false, cw)
	res.LogSeconds = time.Since(t1).Seconds()
	stop()
	if err != nil {
		res.Error = "stream log: " + err.Error()
	}
	res.LogMiB = float64(cw.n) / (1 << 20)
	res.LogMiBPerSec = res.LogMiB / res.LogSeconds
	res.RSSPeakMiB = float64(peak.Load()) / 1024
	res.RSSAfterMiB = rssMiB(in.PID)
	res.HWMMiB = hwmMiB(in.PID)
	return res
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(b []byte) (int, error) { w.n += int64(len(b)); return len(b), nil }

// apiLoop GETs path n times, one after the other, with the instance's token.
func apiLoop(ctx context.Context, in *instance, path string, n int) Load {
	hc := newHTTPClient(1, 30*time.Second)
	rec := newRecorder()
	start := time.Now()
	for range n {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, in.Base+path, nil)
		req.Header.Set("Authorization", "Bearer "+in.token())
		t0 := time.Now()
		resp, err := hc.Do(req)
		st := 0
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			st = resp.StatusCode
		}
		rec.add(time.Since(t0), st, err)
	}
	l := rec.result(time.Since(start))
	l.Accepted, l.PerSec = 0, 0
	l.Clients = 1
	return l
}

// seed copies the one finished run of the database into runs more runs of the same pipeline,
// with their jobs and steps, gives them lines log lines in all (one line per chunk), and adds
// one more run with a log of logMiB in 64 KiB chunks. It returns that run's id.
func seed(ctx context.Context, db *sql.DB, runs, lines, logMiB int) (int64, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = OFF"); err != nil {
		return 0, err
	}
	cols := func(table string) ([]string, error) {
		rows, err := conn.QueryContext(ctx, "SELECT name FROM pragma_table_info('"+table+"') ORDER BY cid")
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				return nil, err
			}
			if c != "id" {
				out = append(out, c)
			}
		}
		return out, rows.Err()
	}
	copyCols := func(table, alias string, replace map[string]string) (string, string, error) {
		cs, err := cols(table)
		if err != nil {
			return "", "", err
		}
		sel := make([]string, len(cs))
		for i, c := range cs {
			sel[i] = alias + "." + c
			if r, ok := replace[c]; ok {
				sel[i] = r
			}
		}
		return strings.Join(cs, ", "), strings.Join(sel, ", "), nil
	}
	var tRun, tJob, maxJob int64
	if err := conn.QueryRowContext(ctx, "SELECT MIN(id), MAX(id) FROM runs").Scan(&tRun, new(int64)); err != nil {
		return 0, err
	}
	if err := conn.QueryRowContext(ctx, "SELECT MIN(id), MAX(id) FROM jobs WHERE run_id = ?", tRun).Scan(&tJob, &maxJob); err != nil {
		return 0, err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	rc, rs, err := copyCols("runs", "t", map[string]string{
		"number":     "t.number + c.n",
		"created_at": "t.created_at + c.n * 1000000",
	})
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ?)
		INSERT INTO runs (`+rc+`) SELECT `+rs+` FROM runs t, c WHERE t.id = ?`, runs, tRun); err != nil {
		return 0, fmt.Errorf("runs: %w", err)
	}
	jc, js, err := copyCols("jobs", "j", map[string]string{"run_id": "r.id"})
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO jobs (`+jc+`) SELECT `+js+` FROM runs r, jobs j
		WHERE j.run_id = ? AND r.id > ? ORDER BY r.id, j.id`, tRun, tRun); err != nil {
		return 0, fmt.Errorf("jobs: %w", err)
	}
	var tStep int64
	if err := tx.QueryRowContext(ctx, "SELECT MIN(id) FROM steps WHERE job_id = ?", tJob).Scan(&tStep); err != nil {
		return 0, err
	}
	sc, ss, err := copyCols("steps", "s", map[string]string{"job_id": "j.id"})
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO steps (`+sc+`) SELECT `+ss+` FROM jobs j, steps s
		WHERE s.job_id = ? AND j.id > ? ORDER BY j.id, s.id`, tJob, maxJob); err != nil {
		return 0, fmt.Errorf("steps: %w", err)
	}
	perRun := max(1, lines/runs)
	if _, err := tx.ExecContext(ctx, `WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?)
		INSERT INTO log_chunks (run_id, seq, job_id, data, at)
		SELECT r.id, s.n, NULL, CAST('line ' || s.n || ' of run ' || r.number || char(10) AS BLOB), r.created_at
		FROM runs r, s WHERE r.id > ? ORDER BY r.id, s.n`, perRun, tRun); err != nil {
		return 0, fmt.Errorf("log lines: %w", err)
	}
	// The big log's run: one more copy of the template.
	rc2, rs2, _ := copyCols("runs", "t", map[string]string{"number": "t.number + ?"})
	var big int64
	if err := tx.QueryRowContext(ctx, `INSERT INTO runs (`+rc2+`) SELECT `+rs2+` FROM runs t WHERE t.id = ? RETURNING id`,
		runs+1, tRun).Scan(&big); err != nil {
		return 0, fmt.Errorf("big run: %w", err)
	}
	chunk := make([]byte, 0, 64<<10)
	for i := 0; len(chunk)+100 <= cap(chunk); i++ {
		line := fmt.Sprintf("%-98s\n", fmt.Sprintf("line %d of a long log, padded to one hundred bytes", i))
		chunk = append(chunk, line...)
	}
	stmt, err := tx.PrepareContext(ctx, "INSERT INTO log_chunks (run_id, seq, job_id, data, at) VALUES (?, ?, NULL, ?, ?)")
	if err != nil {
		return 0, err
	}
	defer stmt.Close()
	at := time.Now().UnixNano()
	for seq := 1; int64(seq-1)*int64(len(chunk)) < int64(logMiB)<<20; seq++ {
		if _, err := stmt.ExecContext(ctx, big, seq, chunk, at); err != nil {
			return 0, fmt.Errorf("big log: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	_, err = conn.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	return big, err
}

// --- 6: idle --------------------------------------------------------------------------------

// Idle is an idle `flowd serve` seen from /proc.
type Idle struct {
	RSSMiB     float64 `json:"rss_mib"`
	HWMMiB     float64 `json:"vm_hwm_mib"`
	CPUPercent float64 `json:"cpu_percent"`
	Window     float64 `json:"window_seconds"`
	Error      string  `json:"error,omitempty"`
}

func idle(ctx context.Context, p plan) Idle {
	var res Idle
	data, _ := os.MkdirTemp(p.tmp, "flowd-")
	in, err := startBinary(ctx, p.bin, data, opts{})
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer in.Stop()
	time.Sleep(p.idleWarm)
	t0, c0 := time.Now(), cpuTicks(in.PID)
	time.Sleep(p.idleWindow)
	c1, el := cpuTicks(in.PID), time.Since(t0)
	res.Window = el.Seconds()
	res.CPUPercent = float64(c1-c0) / clockTicks / el.Seconds() * 100
	res.RSSMiB = rssMiB(in.PID)
	res.HWMMiB = hwmMiB(in.PID)
	return res
}
