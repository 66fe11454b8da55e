package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// --- 9: build agents (issue 13) --------------------------------------------------------------

// Agents is a one-step job end to end on the server-local executor (the baseline) and through
// 1, 2 and 4 `flowd agent` processes on this machine against a server that runs no job itself
// (--executors 0), the slots equal, measured in the same rounds; the trigger → step-start
// latency through an agent against the local executor's; and the agent protocol's calls per
// job, counted by a proxy between agent and server, with when each is answered.
type Agents struct {
	Method      string      `json:"method"`
	Slots       int         `json:"slots"` // the baseline's --executors = each set of agents' total --capacity
	Rounds      int         `json:"rounds"`
	RunsPerLoad int         `json:"runs_per_load"` // each load at each concurrency, each round
	Loads       []AgentLoad `json:"loads"`
	// TriggerToStart is the time from the webhook's POST to the step's process running,
	// sequential runs, on the local executor and through one agent.
	TriggerToStart AgentStarts `json:"trigger_to_start"`
	Calls          AgentCalls  `json:"calls"`
	Error          string      `json:"error,omitempty"`
}

// AgentLoad is one load at one concurrency over every round.
type AgentLoad struct {
	Load         string    `json:"load"`     // "local" or "N agents"
	Agents       int       `json:"agents"`   // 0: the server-local executor
	Capacity     int       `json:"capacity"` // each agent's --capacity; the baseline: --executors
	Concurrency  int       `json:"concurrency"`
	Runs         int       `json:"runs"` // measured, over every round
	P50ms        float64   `json:"p50_ms"`
	P95ms        float64   `json:"p95_ms"`
	Maxms        float64   `json:"max_ms"`
	PerSec       float64   `json:"runs_per_s"` // the median of the rounds
	RoundsPerSec []float64 `json:"rounds_runs_per_s"`
	VsLocal      float64   `json:"runs_per_s_vs_local,omitempty"` // PerSec over the baseline's at the same concurrency
	OutputOK     int       `json:"output_ok"`                     // runs whose log held 456
	// ServerCPUms and AgentsCPUms are the CPU time (user + system) of the flowd serve process
	// and of the agents' processes per run during the measured runs; the steps' processes and
	// the step launchers' are not counted (/proc/PID/stat, 10 ms ticks).
	ServerCPUms float64 `json:"server_cpu_ms_per_run"`
	AgentsCPUms float64 `json:"agents_cpu_ms_per_run"`
	Error       string  `json:"error,omitempty"`

	lat          []time.Duration
	serverTicks  int64
	agentsTicks  int64
	measuredRuns int
}

// AgentStarts is trigger → step start, local and through an agent.
type AgentStarts struct {
	Requests    int     `json:"requests"` // each, sequential
	Local       Latency `json:"local"`
	Agent       Latency `json:"agent"`
	TargetP50ms float64 `json:"target_p50_ms"`
	Holds       bool    `json:"target_holds"` // the agent's p50 ≤ the target
	Error       string  `json:"error,omitempty"`
}

// Latency is the quantiles of a set of times.
type Latency struct {
	P50ms float64 `json:"p50_ms"`
	P95ms float64 `json:"p95_ms"`
	P99ms float64 `json:"p99_ms"`
	Maxms float64 `json:"max_ms"`
}

// AgentCalls is what one job costs on the wire between an agent and the server, counted by a
// proxy between them over sequential runs of the trigger-to-start job.
type AgentCalls struct {
	Jobs           int                `json:"jobs"`
	PerJob         map[string]float64 `json:"calls_per_job"` // call (register, claim, steps, log, heartbeat, finish) → calls per job
	Total          float64            `json:"total_calls_per_job"`
	ClaimsEmpty    int                `json:"claims_answered_empty"` // claims answered 204 (their wait over) in all
	LogBytesPerJob float64            `json:"log_bytes_per_job"`
	// CallP50ms is each call's time at the proxy, request read → answer written, p50; a
	// claim's is its long-poll wait and is left out.
	CallP50ms map[string]float64 `json:"call_p50_ms"`
	// Timeline is when each moment of a job comes after the webhook's POST was sent.
	Timeline []AgentMoment `json:"timeline"`
	// Concurrent is the calls per job of the same agent under the e2e load at the highest
	// concurrency, where one claim may bring several jobs.
	Concurrent AgentCallCount `json:"concurrent"`
	Error      string         `json:"error,omitempty"`
}

// AgentCallCount is the calls of jobs run at once.
type AgentCallCount struct {
	Concurrency int                `json:"concurrency"`
	Jobs        int                `json:"jobs"`
	PerJob      map[string]float64 `json:"calls_per_job"`
	Total       float64            `json:"total_calls_per_job"`
}

// AgentMoment is one moment of a job's timeline: p50 and p95 after the POST was sent.
type AgentMoment struct {
	Moment string  `json:"moment"`
	P50ms  float64 `json:"p50_ms"`
	P95ms  float64 `json:"p95_ms"`
	Jobs   int     `json:"jobs"` // the jobs in which it was seen
}

// agentsPlan is what the agents section does, from the flags.
type agentsPlan struct {
	runs        int   // each load at each concurrency, each round
	concurrency []int // the closed loop's clients
	slots       int   // the baseline's executors = each set's total capacity
	counts      []int // the numbers of agents
}

const agentsTarget = 10 // ms: the trigger → step start through an agent, on loopback

func agents(ctx context.Context, p plan, ap agentsPlan, progress func(string)) Agents {
	res := Agents{Slots: ap.slots, Rounds: p.rounds, RunsPerLoad: ap.runs, Loads: []AgentLoad{},
		Method: fmt.Sprintf("two servers of the built binary on SQLite: the baseline with --executors %d, and one with --executors 0 whose jobs "+
			"agents run: 1, 2 and 4 `flowd agent` processes of the same binary on this machine, each --capacity %d/N (as root each with a --step-user "+
			"uid range and a --work-dir of its own under /var/tmp), started for their load in each round and stopped after it. Each round, each load "+
			"in turn at each concurrency %v: %d runs of a pipeline of one job of one step `%s` by as many closed-loop clients; a client POSTs the "+
			"webhook {\"abc\":\"%s\"}, follows the run's log to its end and checks it holds %s. Latency = runs.finished_at − the 202 read; runs/s = "+
			"runs / (first POST → last finished_at), the median of the rounds. Trigger → step start: %d sequential runs (after 2 warm-ups) of "+
			"`%s` into a FIFO the tool reads, time = line read − POST sent, on the baseline and through 1 agent of capacity %d. Calls: %d more "+
			"such runs through 1 agent whose server URL is a counting reverse proxy in the tool (its hop adds to those runs' times only), then %d runs "+
			"of the e2e load at concurrency %d through it.",
			ap.slots, ap.slots, ap.concurrency, ap.runs, containerScript, containerValue, containerValue, p.t2sN, markScript, ap.slots, callRuns(p),
			ap.runs, slices.Max(ap.concurrency))}
	root, err := os.MkdirTemp("/var/tmp", "flowd-bench-agents-")
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer os.RemoveAll(root)
	// Step users pass through the work folders' parent to their workspaces.
	if err := os.Chmod(root, 0o711); err != nil {
		res.Error = err.Error()
		return res
	}
	fifo, marks, closeFIFO, err := markFIFO()
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer closeFIFO()
	local, err := newBenchServer(ctx, p, opts{executors: ap.slots}, fifo)
	if err != nil {
		res.Error = "baseline server: " + err.Error()
		return res
	}
	defer local.stop()
	coord, err := newBenchServer(ctx, p, opts{coordinator: true}, fifo)
	if err != nil {
		res.Error = "server of the agents: " + err.Error()
		return res
	}
	defer coord.stop()
	tok, err := coord.in.Client.AgentTokenCreate(ctx, "flowd-bench", nil)
	if err != nil {
		res.Error = "create an agent token: " + err.Error()
		return res
	}
	tokenFile := filepath.Join(root, "token")
	if err := os.WriteFile(tokenFile, []byte(tok.Token+"\n"), 0o600); err != nil {
		res.Error = err.Error()
		return res
	}
	fleet := &agentFleet{bin: p.bin, tokenFile: tokenFile, root: root, uids: map[string]string{}}
	defer fleet.stopAll()

	if err := agentLoads(ctx, p, ap, local, coord, fleet, &res, progress); err != nil {
		res.Error = err.Error()
		return res
	}
	progress(fmt.Sprintf("agents: trigger → step start, %d sequential, local and through 1 agent", p.t2sN))
	res.TriggerToStart = agentStarts(ctx, p, ap, local, coord, fleet, marks)
	progress(fmt.Sprintf("agents: calls per job through a counting proxy, %d sequential", callRuns(p)))
	res.Calls = agentCalls(ctx, p, ap, coord, fleet, marks)
	if err := fleet.stopAll(); err != nil && res.Error == "" {
		res.Error = err.Error()
	}
	return res
}

// callRuns is how many sequential runs the calls are counted over.
func callRuns(p plan) int { return max(3, p.t2sN/4) }

// agentLoads measures the runs/s loads into res.Loads: the baseline and each number of agents
// in turn, every round.
func agentLoads(ctx context.Context, p plan, ap agentsPlan, local, coord *benchServer, fleet *agentFleet, res *Agents, progress func(string)) error {
	counts := append([]int{0}, ap.counts...)
	byKey := map[[2]int]*AgentLoad{}
	for _, c := range ap.concurrency {
		for _, n := range counts {
			l := AgentLoad{Load: "local", Agents: n, Capacity: ap.slots, Concurrency: c}
			if n > 0 {
				l.Load, l.Capacity = fmt.Sprintf("%d agent%s", n, plural(n)), ap.slots/n
			}
			res.Loads = append(res.Loads, l)
		}
	}
	for i := range res.Loads {
		byKey[[2]int{res.Loads[i].Agents, res.Loads[i].Concurrency}] = &res.Loads[i]
	}
	for r := range p.rounds {
		for _, n := range counts {
			srv, procs := local, []*agentProc(nil)
			if n > 0 {
				srv = coord
				var err error
				if procs, err = fleet.start(ctx, coord.in.Base, n, ap.slots/n); err != nil {
					return err
				}
			}
			// Warm up (the agents' first claims, the page cache), unmeasured.
			if _, _, _, err := srv.loader.load(ctx, srv.e2eURL, ap.slots, ap.slots, io.Discard); err != nil {
				return fmt.Errorf("%d agents, warm-up: %w", n, err)
			}
			for _, c := range ap.concurrency {
				l := byKey[[2]int{n, c}]
				progress(fmt.Sprintf("agents round %d/%d: %s, concurrency %d, %d runs", r+1, p.rounds, l.Load, c, ap.runs))
				s0, a0 := cpuTicks(srv.in.PID), agentsTicks(procs)
				lat, perSec, ok, err := srv.loader.load(ctx, srv.e2eURL, c, ap.runs, io.Discard)
				l.serverTicks += cpuTicks(srv.in.PID) - s0
				l.agentsTicks += agentsTicks(procs) - a0
				l.measuredRuns += len(lat)
				l.lat = append(l.lat, lat...)
				l.RoundsPerSec = append(l.RoundsPerSec, perSec)
				l.OutputOK += ok
				if err != nil {
					l.Error = err.Error()
					if res.Error == "" {
						res.Error = fmt.Sprintf("%s, concurrency %d, round %d: %v", l.Load, c, r+1, err)
					}
				}
			}
			if err := fleet.stop(procs); err != nil {
				return err
			}
		}
	}
	for i := range res.Loads {
		l := &res.Loads[i]
		q := quantiles(l.lat, 0.50, 0.95, 1)
		l.Runs, l.P50ms, l.P95ms, l.Maxms = len(l.lat), q[0], q[1], q[2]
		l.PerSec = median(l.RoundsPerSec)
		if l.measuredRuns > 0 {
			l.ServerCPUms = round3(float64(l.serverTicks) * 1000 / clockTicks / float64(l.measuredRuns))
			l.AgentsCPUms = round3(float64(l.agentsTicks) * 1000 / clockTicks / float64(l.measuredRuns))
		}
		if base := byKey[[2]int{0, l.Concurrency}]; l.Agents > 0 && base.PerSec > 0 {
			l.VsLocal = ratio(l.PerSec, base.PerSec)
		}
	}
	return nil
}

// agentStarts measures trigger → step start on the baseline and through one agent.
func agentStarts(ctx context.Context, p plan, ap agentsPlan, local, coord *benchServer, fleet *agentFleet, marks <-chan mark) AgentStarts {
	res := AgentStarts{Requests: p.t2sN, TargetP50ms: agentsTarget}
	latency := func(s []runStart) Latency {
		var d []time.Duration
		for _, r := range s {
			d = append(d, r.marked.Sub(r.sent))
		}
		q := quantiles(d, 0.50, 0.95, 0.99, 1)
		return Latency{P50ms: q[0], P95ms: q[1], P99ms: q[2], Maxms: q[3]}
	}
	s, err := sequentialStarts(ctx, local.t2sURL, local.db, p.t2sN, marks)
	if err != nil {
		res.Error = "local: " + err.Error()
		return res
	}
	res.Local = latency(s)
	procs, err := fleet.start(ctx, coord.in.Base, 1, ap.slots)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	s, err = sequentialStarts(ctx, coord.t2sURL, coord.db, p.t2sN, marks)
	if stopErr := fleet.stop(procs); err == nil {
		err = stopErr
	}
	if err != nil {
		res.Error = "through an agent: " + err.Error()
		return res
	}
	res.Agent = latency(s)
	res.Holds = res.Agent.P50ms <= agentsTarget
	return res
}

// agentCalls counts the calls of sequential jobs through one agent whose server is a counting
// proxy, and places each job's calls on its timeline.
func agentCalls(ctx context.Context, p plan, ap agentsPlan, coord *benchServer, fleet *agentFleet, marks <-chan mark) AgentCalls {
	res := AgentCalls{PerJob: map[string]float64{}, CallP50ms: map[string]float64{}, Timeline: []AgentMoment{}}
	proxy, err := startCallProxy(coord.in.Base)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer proxy.close()
	procs, err := fleet.start(ctx, proxy.url, 1, ap.slots)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	starts, err := sequentialStarts(ctx, coord.t2sURL, coord.db, callRuns(p), marks)
	time.Sleep(100 * time.Millisecond) // the last job's cleanup and next claim
	calls := proxy.snapshot()
	if err == nil {
		conc := slices.Max(ap.concurrency)
		res.Concurrent = AgentCallCount{Concurrency: conc, PerJob: map[string]float64{}}
		var lat []time.Duration
		lat, _, _, err = coord.loader.load(ctx, coord.e2eURL, conc, ap.runs, io.Discard)
		time.Sleep(100 * time.Millisecond)
		res.Concurrent.Jobs = len(lat)
		for _, c := range proxy.snapshot()[len(calls):] {
			res.Concurrent.PerJob[c.kind]++
		}
		for k, v := range res.Concurrent.PerJob {
			res.Concurrent.PerJob[k] = round3(v / float64(max(1, len(lat))))
			res.Concurrent.Total += res.Concurrent.PerJob[k]
		}
		res.Concurrent.Total = round3(res.Concurrent.Total)
	}
	if stopErr := fleet.stop(procs); err == nil {
		err = stopErr
	}
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Jobs = len(starts)
	type moments struct{ answered, claimed, stepsSent, stepsAnswered, marked, lastLog, finished time.Duration }
	var each []moments
	took := map[string][]time.Duration{}
	var logBytes int64
	for i, s := range starts {
		end := time.Now().Add(time.Hour)
		if i+1 < len(starts) {
			end = starts[i+1].sent
		}
		m := moments{answered: s.answered.Sub(s.sent), marked: s.marked.Sub(s.sent)}
		for _, c := range calls {
			// A job's claim began before its POST (a long-poll) and is answered after it; its
			// other calls begin after its POST, and its finish may be answered after the next
			// POST (the tool sends that once it sees the run over).
			at := c.start
			if c.kind == "claim" {
				at = c.end
			}
			if at.Before(s.sent) || !at.Before(end) {
				continue
			}
			res.PerJob[c.kind]++
			if c.kind != "claim" {
				took[c.kind] = append(took[c.kind], c.end.Sub(c.start))
			}
			after := c.end.Sub(s.sent) // when it was answered
			switch c.kind {
			case "claim":
				if c.status == http.StatusOK && m.claimed == 0 {
					m.claimed = after
				}
				if c.status == http.StatusNoContent {
					res.ClaimsEmpty++
				}
			case "steps":
				if m.stepsSent == 0 {
					m.stepsSent, m.stepsAnswered = c.start.Sub(s.sent), after
				}
			case "log":
				m.lastLog = max(m.lastLog, after)
				logBytes += c.bytes
			case "finish":
				m.finished = max(m.finished, after)
			}
		}
		each = append(each, m)
	}
	if res.Jobs == 0 {
		res.Error = "no job measured"
		return res
	}
	for k, v := range res.PerJob {
		res.PerJob[k] = round3(v / float64(res.Jobs))
		res.Total += res.PerJob[k]
	}
	res.Total = round3(res.Total)
	res.LogBytesPerJob = round3(float64(logBytes) / float64(res.Jobs))
	for k, d := range took {
		res.CallP50ms[k] = quantiles(d, 0.5)[0]
	}
	moment := func(name string, f func(moments) time.Duration) {
		var d []time.Duration
		for _, m := range each {
			if v := f(m); v > 0 {
				d = append(d, v)
			}
		}
		q := quantiles(d, 0.50, 0.95)
		res.Timeline = append(res.Timeline, AgentMoment{Moment: name, P50ms: q[0], P95ms: q[1], Jobs: len(d)})
	}
	moment("webhook answered 202", func(m moments) time.Duration { return m.answered })
	moment("claim answered with the job", func(m moments) time.Duration { return m.claimed })
	moment("steps call sent (step start)", func(m moments) time.Duration { return m.stepsSent })
	moment("steps call answered", func(m moments) time.Duration { return m.stepsAnswered })
	moment("step wrote the FIFO", func(m moments) time.Duration { return m.marked })
	moment("last log PUT answered", func(m moments) time.Duration { return m.lastLog })
	moment("finish answered", func(m moments) time.Duration { return m.finished })
	return res
}

// benchServer is a flowd serve of the built binary with the section's two pipelines: e2e
// (`echo $abc`) and t2s (the FIFO mark).
type benchServer struct {
	in             *instance
	db             *sql.DB
	loader         *flowdLoader
	e2eURL, t2sURL string
}

func newBenchServer(ctx context.Context, p plan, o opts, fifo string) (*benchServer, error) {
	data, err := os.MkdirTemp(p.tmp, "flowd-agents-")
	if err != nil {
		return nil, err
	}
	in, err := startBinary(ctx, p.bin, data, o)
	if err != nil {
		return nil, err
	}
	s := &benchServer{in: in}
	if s.e2eURL, err = in.pipeline(ctx, "e2e", containerScript, nil); err == nil {
		if s.t2sURL, err = in.pipeline(ctx, "t2s", markScript, map[string]string{"MARK": fifo}); err == nil {
			s.db, err = openDB(in.DSN)
		}
	}
	if err != nil {
		in.Stop()
		return nil, err
	}
	s.loader = &flowdLoader{in: in, db: s.db, hc: newHTTPClient(64, 30*time.Second)}
	return s, nil
}

func (s *benchServer) stop() {
	s.loader.hc.CloseIdleConnections()
	s.db.Close()
	s.in.Stop()
}

// agentFleet starts and stops the section's `flowd agent` processes: each agent name has a work
// folder under root and a step uid range of its own, kept across its restarts.
type agentFleet struct {
	bin, tokenFile, root string
	uids                 map[string]string // agent name → --step-user

	mu      sync.Mutex
	running map[*agentProc]bool
}

// agentProc is one running `flowd agent`.
type agentProc struct {
	name string
	cmd  *exec.Cmd
	out  *agentOutput
	done chan struct{} // closed once it exited; err is then its exit
	err  error
}

// start starts n agents of capacity each against server and waits until each has registered.
func (f *agentFleet) start(ctx context.Context, server string, n, capacity int) ([]*agentProc, error) {
	var procs []*agentProc
	for i := range n {
		name := fmt.Sprintf("bench-%dx%d-%d", n, capacity, i+1)
		uids, ok := f.uids[name]
		if !ok {
			uids = stepUser()
			f.uids[name] = uids
		}
		cmd := exec.Command(f.bin, "agent", "--server", server, "--token-file", f.tokenFile, "--name", name,
			"--capacity", fmt.Sprint(capacity), "--work-dir", filepath.Join(f.root, name), "--step-user", uids)
		cmd.Env = os.Environ()
		out := &agentOutput{registered: make(chan struct{})}
		cmd.Stderr = out
		// The agents die with the tool, so none is left running and holding its uid range.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			f.stop(procs)
			return nil, fmt.Errorf("start agent %s: %w", name, err)
		}
		ap := &agentProc{name: name, cmd: cmd, out: out, done: make(chan struct{})}
		go func() { ap.err = cmd.Wait(); close(ap.done) }()
		f.mu.Lock()
		if f.running == nil {
			f.running = map[*agentProc]bool{}
		}
		f.running[ap] = true
		f.mu.Unlock()
		procs = append(procs, ap)
	}
	for _, ap := range procs {
		select {
		case <-ap.out.registered:
		case <-ap.done:
			f.stop(procs)
			return nil, fmt.Errorf("agent %s exited before it registered (%v): %s", ap.name, ap.err, ap.out.tail())
		case <-time.After(30 * time.Second):
			f.stop(procs)
			return nil, fmt.Errorf("agent %s did not register in 30 s: %s", ap.name, ap.out.tail())
		case <-ctx.Done():
			f.stop(procs)
			return nil, ctx.Err()
		}
	}
	return procs, nil
}

// stop drains procs (SIGTERM) and waits for them, killing any that has not exited in 20 s; an
// agent that exits other than 0 is an error.
func (f *agentFleet) stop(procs []*agentProc) error {
	for _, ap := range procs {
		ap.cmd.Process.Signal(syscall.SIGTERM)
	}
	var errs []error
	for _, ap := range procs {
		select {
		case <-ap.done:
			if ap.err != nil {
				errs = append(errs, fmt.Errorf("agent %s: %v: %s", ap.name, ap.err, ap.out.tail()))
			}
		case <-time.After(20 * time.Second):
			ap.cmd.Process.Kill()
			<-ap.done
			errs = append(errs, fmt.Errorf("agent %s did not stop in 20 s after SIGTERM: %s", ap.name, ap.out.tail()))
		}
		f.mu.Lock()
		delete(f.running, ap)
		f.mu.Unlock()
	}
	return errors.Join(errs...)
}

// stopAll stops the agents still running (on a failure).
func (f *agentFleet) stopAll() error {
	f.mu.Lock()
	var procs []*agentProc
	for ap := range f.running {
		procs = append(procs, ap)
	}
	f.mu.Unlock()
	return f.stop(procs)
}

// agentsTicks is the CPU ticks of procs' processes.
func agentsTicks(procs []*agentProc) int64 {
	var n int64
	for _, ap := range procs {
		n += cpuTicks(ap.cmd.Process.Pid)
	}
	return n
}

// agentOutput keeps the last 8 KiB of an agent's log and closes registered at its
// "registered" line.
type agentOutput struct {
	mu         sync.Mutex
	buf        []byte
	registered chan struct{}
	seen       bool
}

func (o *agentOutput) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.seen && bytes.Contains(b, []byte("msg=registered")) {
		o.seen = true
		close(o.registered)
	}
	o.buf = append(o.buf, b...)
	if len(o.buf) > 8<<10 {
		o.buf = slices.Clone(o.buf[len(o.buf)-8<<10:])
	}
	return len(b), nil
}

func (o *agentOutput) tail() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.TrimSpace(string(o.buf))
}

// callProxy is a reverse proxy in front of a server that records each agent call: which, when
// it came and when it was answered, its status and its body's size.
type callProxy struct {
	url   string
	srv   *http.Server
	mu    sync.Mutex
	calls []agentCall
}

type agentCall struct {
	kind       string // register, claim, heartbeat, steps, log, finish, other
	start, end time.Time
	status     int
	bytes      int64
}

func startCallProxy(target string) (*callProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	// A claim waiting when its agent stops ends with an error here: not worth a line.
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(u) }, ErrorLog: log.New(io.Discard, "", 0)}
	cp := &callProxy{url: "http://" + ln.Addr().String()}
	cp.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := agentCall{kind: callKind(r.URL.Path), start: time.Now(), bytes: max(r.ContentLength, 0)}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		rp.ServeHTTP(sw, r)
		c.end, c.status = time.Now(), sw.status
		cp.mu.Lock()
		cp.calls = append(cp.calls, c)
		cp.mu.Unlock()
	})}
	go cp.srv.Serve(ln)
	return cp, nil
}

func (cp *callProxy) snapshot() []agentCall {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return slices.Clone(cp.calls)
}

func (cp *callProxy) close() { cp.srv.Close() }

// callKind names an agent call by its path (docs/agent-protocol.md).
func callKind(path string) string {
	rest, ok := strings.CutPrefix(path, "/api/agent/v1/")
	if !ok {
		return "other"
	}
	if rest == "register" || rest == "claim" {
		return rest
	}
	parts := strings.Split(rest, "/")
	if len(parts) == 3 && parts[0] == "attempts" {
		return parts[2]
	}
	return "other"
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// callList prints calls per job by kind, "claim 1.00, steps 1.00 (p50 1.40 ms), …", with each
// kind's p50 time when p50 has it.
func callList(perJob, p50 map[string]float64) string {
	var parts []string
	for _, k := range []string{"claim", "steps", "log", "heartbeat", "finish", "register", "other"} {
		if v, ok := perJob[k]; ok {
			s := fmt.Sprintf("%s %.2f", k, v)
			if p, ok := p50[k]; ok {
				s += fmt.Sprintf(" (p50 %.2f ms)", p)
			}
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ", ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// printAgents prints the agents section as a table of its own.
func printAgents(w io.Writer, a Agents) {
	fmt.Fprintf(w, "\nBuild agents (issue 13): one step `%s`, {\"abc\":\"%s\"}; %d slots (the baseline's --executors, the agents' total --capacity); %d round(s) × %d runs per load\n\n",
		containerScript, containerValue, a.Slots, a.Rounds, a.RunsPerLoad)
	fmt.Fprintf(w, "| %-26s | %-9s | %-9s | %-9s | %-28s | %-8s | %-20s | %-9s |\n", "load, concurrency", "p50", "p95", "max", "runs/s [rounds]", "vs local", "CPU ms/run srv+agts", "output ok")
	fmt.Fprintf(w, "|%s|%s|%s|%s|%s|%s|%s|%s|\n", dash(28), dash(11), dash(11), dash(11), dash(30), dash(10), dash(22), dash(11))
	for _, l := range a.Loads {
		name := fmt.Sprintf("%s × %d, %d", l.Load, l.Capacity, l.Concurrency)
		if l.Error != "" {
			fmt.Fprintf(w, "| %-26s | error: %s\n", name, strings.ReplaceAll(l.Error, "\n", " "))
			continue
		}
		vs := ""
		if l.VsLocal > 0 {
			vs = fmt.Sprintf("%.2f", l.VsLocal)
		}
		fmt.Fprintf(w, "| %-26s | %6.1f ms | %6.1f ms | %6.1f ms | %-28s | %-8s | %-20s | %-9s |\n", name, l.P50ms, l.P95ms, l.Maxms,
			fmt.Sprintf("%.1f %s", l.PerSec, roundsPrec(l.RoundsPerSec, 1)), vs,
			fmt.Sprintf("%.1f + %.1f", l.ServerCPUms, l.AgentsCPUms), fmt.Sprintf("%d/%d", l.OutputOK, l.Runs))
	}
	t := a.TriggerToStart
	fmt.Fprintln(w)
	if t.Error != "" {
		fmt.Fprintf(w, "trigger → step start: error: %s\n", t.Error)
	} else {
		lat := func(l Latency) string {
			return fmt.Sprintf("p50 %.1f, p95 %.1f, p99 %.1f, max %.1f ms", l.P50ms, l.P95ms, l.P99ms, l.Maxms)
		}
		holds := "holds"
		if !t.Holds {
			holds = "does not hold"
		}
		fmt.Fprintf(w, "trigger → step start, %d sequential: local %s; through an agent %s (target p50 ≤ %.0f ms: %s)\n",
			t.Requests, lat(t.Local), lat(t.Agent), t.TargetP50ms, holds)
	}
	c := a.Calls
	if c.Error != "" {
		fmt.Fprintf(w, "calls per job: error: %s\n", c.Error)
	} else {
		fmt.Fprintf(w, "calls per job through a counting proxy, %d sequential jobs: %.2f in all: %s; log %.0f bytes per job\n",
			c.Jobs, c.Total, callList(c.PerJob, c.CallP50ms), c.LogBytesPerJob)
		for _, m := range c.Timeline {
			fmt.Fprintf(w, "  %-30s p50 %6.2f ms, p95 %6.2f ms after the POST (%d jobs)\n", m.Moment, m.P50ms, m.P95ms, m.Jobs)
		}
		if cc := c.Concurrent; cc.Jobs > 0 {
			fmt.Fprintf(w, "calls per job, %d jobs at concurrency %d through the same agent: %.2f in all: %s\n", cc.Jobs, cc.Concurrency, cc.Total, callList(cc.PerJob, nil))
		}
	}
	if a.Error != "" {
		fmt.Fprintf(w, "error: %s\n", a.Error)
	}
}
