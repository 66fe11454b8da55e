// Command flowd-bench measures flowd against ceilings it runs in the same process and the same
// run: webhook intake (SQLite and PostgreSQL) against a bare net/http server and a server that
// fsyncs each request, trigger-to-start latency, end-to-end runs per second against raw
// fork/exec, the API over 100,000 runs and a 200 MB log, an idle server's footprint,
// sustained load (closed-loop webhooks for seconds against the fork/exec floor and the one-row
// commit ceilings), jobs in containers (a job with image: against `docker run --rm` of the
// same image and against the same job on the process executor), and build agents (the same job
// through 1, 2 and 4 `flowd agent` processes against the server-local executor, and trigger →
// step start through an agent). It binds only 127.0.0.1,
// bounds every loop in time and count, prints its tables and writes the numbers as JSON. See
// BENCHMARKS.md.
//
//	go build -o /tmp/flowd ./cmd/flowd && go run ./cmd/flowd-bench --flowd /tmp/flowd
//	make bench
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/flowd/flowd/internal/config"
	"github.com/flowd/flowd/internal/executor"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"
)

// Results is the JSON the tool writes; every section is always present (with "error" or
// "skipped" when it could not be measured).
type Results struct {
	Machine         Machine        `json:"machine"`
	Quick           bool           `json:"quick"`
	Only            string         `json:"only,omitempty"` // the one section run (--only)
	Ceilings        Ceilings       `json:"ceilings"`
	IngestSQLite    Ingest         `json:"ingest_sqlite"`
	IngestPostgres  Ingest         `json:"ingest_postgres"`
	CeilingPostgres PGCeiling      `json:"ceiling_postgres_insert"`
	Durability      Durability     `json:"durability"`
	Overload        Overload       `json:"overload"`
	TriggerToStart  TriggerToStart `json:"trigger_to_start"`
	EndToEnd        []EndToEnd     `json:"end_to_end"`
	TwoServers      TwoServers     `json:"two_servers"`
	Scale           Scale          `json:"scale"`
	Idle            Idle           `json:"idle"`
	Sustained       Sustained      `json:"sustained"`
	Containers      Containers     `json:"containers"`
	Agents          Agents         `json:"agents"`
	Seconds         float64        `json:"seconds"`
}

// Durability is flowd on SQLite against the fsync-per-request server.
type Durability struct {
	FlowdPerSec float64 `json:"flowd_sqlite_accepted_per_s"`
	FsyncPerSec float64 `json:"fsync_per_request_per_s"`
	Ratio       float64 `json:"ratio"`
}

const usage = `Usage: flowd-bench [flags]

Measures flowd on this machine (127.0.0.1 only) with each figure's ceiling in the same run, prints
its tables and writes JSON. A full run takes ten minutes or more (the sustained section most of
it); --quick takes seconds and only proves the tool works.

Flags:
`

func main() {
	if executor.IsHelperCommand(os.Args) {
		executor.RunHelperCommand(os.Args) // in-process flowd starts its steps through this binary
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("flowd-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	quick := fs.Bool("quick", false, "smoke mode: tiny loads, a few seconds in all")
	out := fs.String("out", "bench-results.json", "write the results as JSON to `file`")
	pg := fs.String("pg", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"PostgreSQL server `DSN` for the PostgreSQL ingest (a fresh database is created and dropped); \"\" skips it")
	bin := fs.String("flowd", "", "the built flowd `binary` (two, scale, idle and agents sections); \"\" builds one with go build")
	clients := fs.Int("clients", 32, "concurrent clients of the ingest loads")
	dur := fs.Duration("duration", 5*time.Second, "length of each load measurement")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run (flowd in-process included) to `file`")
	only := fs.String("only", "", "run only this section: ingest, overload, t2s, e2e, two, scale, idle, sustained, containers, agents (for profiling)")
	rounds := fs.Int("rounds", 3, "alternations of the ingest and sustained sections (--quick: 1)")
	susDur := fs.Duration("sustained-duration", 10*time.Second, "sustained: length of each combination's load (--quick: 1s)")
	susExec := fs.String("sustained-executors", "2,4", "sustained: the --executors values, comma-separated (--quick: 2)")
	susClients := fs.String("sustained-clients", "8,32", "sustained: the closed loop's client counts, comma-separated (--quick: 2)")
	defaults := config.Default()
	susQueued := fs.Int("sustained-max-queued-runs", defaults.MaxQueuedRuns, "sustained: flowd's --max-queued-runs (0 = no bound; the other sections: none)")
	susQueueS := fs.Int("sustained-max-queue-seconds", defaults.MaxQueueSeconds, "sustained: flowd's --max-queue-seconds (0 = no bound)")
	ctrRuns := fs.Int("containers-runs", 20, "containers: runs of each load (docker run, flowd with image:, flowd without) at each concurrency, each round (--quick: 2)")
	ctrConc := fs.String("containers-concurrency", "1,4", "containers: the loads' concurrencies, comma-separated (--quick: 1,2)")
	agRuns := fs.Int("agents-runs", 200, "agents: runs of each load (local, 1, 2 and 4 agents) at each concurrency, each round (--quick: 4)")
	agConc := fs.String("agents-concurrency", "1,4,8", "agents: the closed loop's client counts, comma-separated (--quick: 1,2)")
	agSlots := fs.Int("agents-slots", 4, "agents: the baseline's --executors and each set of agents' total --capacity, a multiple of 4")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	p := plan{dur: *dur, clients: *clients, overload: 5, inFlight: 1024, t2sN: 200, e2eN: 500,
		seedRuns: 100_000, seedLines: 1_000_000, bigLogMiB: 200, apiN: 300,
		idleWarm: 3 * time.Second, idleWindow: 10 * time.Second, pgDSN: *pg, bin: *bin, quick: *quick,
		rounds: *rounds, twoN: 500}
	sp := sustainedPlan{dur: *susDur, maxQueued: *susQueued, maxQueueS: *susQueueS, drainMax: 10 * time.Minute}
	var err error
	if sp.executors, err = intList(*susExec); err == nil {
		sp.clients, err = intList(*susClients)
	}
	cp := containersPlan{runs: *ctrRuns}
	if err == nil {
		cp.concurrency, err = intList(*ctrConc)
	}
	ap := agentsPlan{runs: *agRuns, slots: *agSlots, counts: []int{1, 2, 4}}
	if err == nil {
		ap.concurrency, err = intList(*agConc)
	}
	if err != nil || p.rounds < 1 || cp.runs < 1 || ap.runs < 1 || ap.slots < 4 || ap.slots%4 != 0 {
		fmt.Fprintln(stderr, "flowd-bench: --rounds, --containers-runs and --agents-runs must be ≥ 1, --agents-slots a multiple of 4, and --sustained-executors, --sustained-clients, --containers-concurrency, --agents-concurrency lists of positive numbers:", err)
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *quick {
		p.dur, p.clients, p.inFlight = 300*time.Millisecond, min(p.clients, 8), 64
		p.t2sN, p.e2eN = 5, 10
		p.seedRuns, p.seedLines, p.bigLogMiB, p.apiN = 500, 5000, 2, 10
		p.idleWarm, p.idleWindow = 200*time.Millisecond, 300*time.Millisecond
		p.twoN = 10
		quickDefault := func(name string, f func()) {
			if !set[name] {
				f()
			}
		}
		quickDefault("rounds", func() { p.rounds = 1 })
		quickDefault("sustained-duration", func() { sp.dur = time.Second })
		quickDefault("sustained-executors", func() { sp.executors = []int{2} })
		quickDefault("sustained-clients", func() { sp.clients = []int{2} })
		quickDefault("containers-runs", func() { cp.runs = 2 })
		quickDefault("containers-concurrency", func() { cp.concurrency = []int{1, 2} })
		quickDefault("agents-runs", func() { ap.runs = 4 })
		quickDefault("agents-concurrency", func() { ap.concurrency = []int{1, 2} })
		sp.drainMax = 2 * time.Minute
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tmp, err := os.MkdirTemp("", "flowd-bench-")
	if err != nil {
		fmt.Fprintln(stderr, "flowd-bench:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	p.tmp = tmp
	if p.bin == "" && (*only == "" || *only == "scale" || *only == "idle" || *only == "two" || *only == "agents") {
		p.bin = filepath.Join(tmp, "flowd")
		fmt.Fprintln(stderr, "building flowd …")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", p.bin, "github.com/flowd/flowd/cmd/flowd")
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(stderr, "flowd-bench: build flowd:", err)
			return 1
		}
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(stderr, "flowd-bench:", err)
			return 1
		}
		pprof.StartCPUProfile(f)
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}

	start := time.Now()
	res := Results{Machine: machine(), Quick: *quick, Only: *only, EndToEnd: []EndToEnd{}}
	want := func(s string) bool { return *only == "" || *only == s }
	step := func(name string) { fmt.Fprintf(stderr, "%6.1fs  %s …\n", time.Since(start).Seconds(), name) }
	if want("ingest") || want("overload") {
		step("ceilings: bare net/http, fsync per request")
		if res.Ceilings, err = ceilings(ctx, p); err != nil {
			fmt.Fprintln(stderr, "flowd-bench: ceilings:", err)
			return 1
		}
	}
	if want("ingest") || want("overload") {
		step(fmt.Sprintf("ingest: SQLite, the PostgreSQL ceiling, PostgreSQL; %d rounds, alternating", p.rounds))
		res.IngestSQLite, res.IngestPostgres, res.CeilingPostgres = ingestBoth(ctx, p, res.Ceilings, want("ingest"))
	}
	res.Durability = Durability{FlowdPerSec: res.IngestSQLite.Load.PerSec, FsyncPerSec: res.Ceilings.Fsync.PerSec,
		Ratio: ratio(res.IngestSQLite.Load.PerSec, res.Ceilings.Fsync.PerSec)}
	if want("overload") {
		step(fmt.Sprintf("overload at %g × %.0f/s", p.overload, res.IngestSQLite.Load.PerSec))
		res.Overload = overload(ctx, p, res.IngestSQLite.Load.PerSec)
	}
	if want("t2s") {
		step("trigger to start")
		res.TriggerToStart = triggerToStart(ctx, p)
	}
	if want("e2e") {
		for _, par := range []int{1, 4} {
			step(fmt.Sprintf("end to end, parallelism %d", par))
			res.EndToEnd = append(res.EndToEnd, endToEnd(ctx, p, par))
		}
	}
	if want("two") {
		step("two servers on one PostgreSQL database: ingest, end to end")
		res.TwoServers = twoServers(ctx, p)
	}
	if want("scale") {
		step("scale: seed, API, 200 MB log")
		res.Scale = scale(ctx, p)
	}
	if want("idle") {
		step("idle footprint")
		res.Idle = idle(ctx, p)
	}
	if want("sustained") {
		res.Sustained = sustained(ctx, p, sp, step)
	}
	if want("containers") {
		step("jobs in containers: docker run, flowd with image:, flowd without")
		res.Containers = containers(ctx, p, cp, step)
	}
	if want("agents") {
		step("build agents: local executor, 1, 2 and 4 agents; trigger to start through an agent")
		res.Agents = agents(ctx, p, ap, step)
	}
	res.Seconds = time.Since(start).Seconds()

	b, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		fmt.Fprintln(stderr, "flowd-bench:", err)
		return 1
	}
	printTable(stdout, res)
	fmt.Fprintf(stdout, "\nJSON: %s\n", *out)
	return 0
}

func printTable(w io.Writer, r Results) {
	m := r.Machine
	fmt.Fprintf(w, "machine: %d × %s, %d MiB, Linux %s, %s, %s, load average %s at the start\n", m.NProc, m.CPU, m.MemoryMiB, m.Kernel, m.Go, m.Date, m.LoadAverage)
	switch r.Only {
	case "sustained":
		printSustained(w, r.Sustained)
		return
	case "containers":
		printContainers(w, r.Containers)
		return
	case "agents":
		printAgents(w, r.Agents)
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| %-44s | %-34s | %-30s | %-7s |\n", "measure", "flowd", "ceiling / floor", "ratio")
	fmt.Fprintf(w, "|%s|%s|%s|%s|\n", dash(46), dash(36), dash(32), dash(9))
	row := func(name, a, b string, ratio float64) {
		rs := ""
		if ratio != 0 {
			rs = fmt.Sprintf("%.2f", ratio)
		}
		fmt.Fprintf(w, "| %-44s | %-34s | %-30s | %-7s |\n", name, a, b, rs)
	}
	load := func(l Load) string {
		return fmt.Sprintf("%.0f/s p50 %.1f p99 %.1f ms", l.PerSec, l.P50ms, l.P99ms)
	}
	ing := func(name string, in Ingest) {
		switch {
		case in.Skipped != "":
			row(name, "skipped", in.Skipped, 0)
		case in.Error != "":
			row(name, "error: "+in.Error, "", 0)
		default:
			row(name, load(in.Load), "bare "+load(r.Ceilings.Bare), in.VsBare)
		}
	}
	ing(fmt.Sprintf("1. ingest, %d clients, SQLite", r.Ceilings.Bare.Clients), r.IngestSQLite)
	ing(fmt.Sprintf("1. ingest, %d clients, PostgreSQL", r.Ceilings.Bare.Clients), r.IngestPostgres)
	// unmeasured prints a section that was skipped or failed and says whether it did.
	unmeasured := func(name, skipped, err string) bool {
		switch {
		case skipped != "":
			row(name, "skipped", skipped, 0)
		case err != "":
			row(name, "error: "+err, "", 0)
		default:
			return false
		}
		return true
	}
	if pc := r.CeilingPostgres; !unmeasured("1. PostgreSQL ceiling: one-row INSERTs", pc.Skipped, pc.Error) {
		row(fmt.Sprintf("1. PostgreSQL ingest vs %d pgx clients' INSERTs", pc.Load.Clients), fmt.Sprintf("%.0f/s", r.IngestPostgres.Load.PerSec),
			"INSERTs "+load(pc.Load), r.IngestPostgres.VsCeiling)
		row("1. PostgreSQL ingest vs SQLite ingest", fmt.Sprintf("%.0f/s", r.IngestPostgres.Load.PerSec),
			fmt.Sprintf("SQLite %.0f/s", r.IngestSQLite.Load.PerSec), r.IngestPostgres.VsSQLite)
		row("   rounds (alternating): SQLite, ceiling, PostgreSQL", fmt.Sprintf("%v; %v", r.IngestSQLite.RoundsPerSec, r.IngestPostgres.RoundsPerSec),
			fmt.Sprintf("%v", pc.RoundsPerSec), 0)
	}
	row("2. durability: SQLite vs fsync per request", fmt.Sprintf("%.0f/s", r.Durability.FlowdPerSec),
		"fsync "+load(r.Ceilings.Fsync), r.Durability.Ratio)
	o := r.Overload
	row(fmt.Sprintf("   overload: %.0f/s offered, 2 s timeout", o.Load.OfferedPS), fmt.Sprintf("%v", o.Load.Statuses),
		fmt.Sprintf("runs %d ≥ 202s %d: %v", o.RunsStored, o.Load.Accepted, o.EveryAccepted), 0)
	row("   overload: peak RSS (tool+flowd), children", fmt.Sprintf("%.0f MiB (from %.0f), %d children", o.PeakRSSMiB, o.StartRSSMiB, o.PeakChildren), "", 0)
	row("   rate limiter on (20/s, burst 100)", fmt.Sprintf("%v", o.RateLimited.Statuses), "", 0)
	t := r.TriggerToStart
	row(fmt.Sprintf("3. trigger → step start, %d sequential", t.Requests), fmt.Sprintf("p50 %.1f p99 %.1f ms", t.P50ms, t.P99ms),
		fmt.Sprintf("(202 answer p50 %.1f p99 %.1f ms)", t.Answer.P50ms, t.Answer.P99ms), 0)
	for _, e := range r.EndToEnd {
		if e.Error != "" {
			row(fmt.Sprintf("4. end to end, parallelism %d", e.Parallelism), "error: "+e.Error, "", 0)
			continue
		}
		row(fmt.Sprintf("4. end to end, parallelism %d, %d runs", e.Parallelism, e.Runs), fmt.Sprintf("%.1f runs/s", e.FlowdPerSec),
			fmt.Sprintf("raw fork/exec %.1f/s", e.RawPerSec), e.Ratio)
	}
	if ts := r.TwoServers; !unmeasured("4. two servers, one PostgreSQL", ts.Skipped, ts.Error) {
		row(fmt.Sprintf("4. two servers: ingest, %d clients over both", ts.Ingest.Clients), load(ts.Ingest),
			fmt.Sprintf("runs %d ≥ 202s %d: %v", ts.IngestRunsStored, ts.Ingest.Accepted, ts.IngestEveryAccepted), 0)
		row(fmt.Sprintf("4. two servers: end to end, %d runs", ts.Runs), fmt.Sprintf("%.1f runs/s, %d succeeded", ts.PerSec, ts.Succeeded),
			fmt.Sprintf("exactly once: %v (%d lines)", ts.ExactlyOnce, ts.MarkerLines), 0)
		row("   jobs by server (workspace folder)", fmt.Sprintf("%v", ts.JobsByServer), "", 0)
	}
	s := r.Scale
	if s.Error != "" {
		row("5. scale", "error: "+s.Error, "", 0)
	}
	row(fmt.Sprintf("5. run history page (%d runs)", s.Runs), fmt.Sprintf("p50 %.1f p99 %.1f ms", s.RunHistory.P50ms, s.RunHistory.P99ms), "target p99 < 50 ms", 0)
	row("5. run history, deep page (before=N/2)", fmt.Sprintf("p50 %.1f p99 %.1f ms", s.RunHistoryOld.P50ms, s.RunHistoryOld.P99ms), "target p99 < 50 ms", 0)
	row(fmt.Sprintf("5. pipelines list (%d, %d log lines in db)", s.Pipelines50, s.LogLines), fmt.Sprintf("p50 %.1f p99 %.1f ms", s.Pipelines.P50ms, s.Pipelines.P99ms), "target p99 < 50 ms", 0)
	row(fmt.Sprintf("5. stream a %.0f MiB log", s.LogMiB), fmt.Sprintf("%.0f MiB/s, RSS %.0f→%.0f MiB peak", s.LogMiBPerSec, s.RSSBeforeMiB, s.RSSPeakMiB), "flat memory", 0)
	i := r.Idle
	row("6. idle flowd serve", fmt.Sprintf("RSS %.1f MiB, CPU %.2f %%", i.RSSMiB, i.CPUPercent), "target RSS ≤ 40 MB", 0)
	if r.Sustained.Method != "" {
		printSustained(w, r.Sustained)
	}
	if r.Containers.Method != "" {
		printContainers(w, r.Containers)
	}
	if r.Agents.Method != "" {
		printAgents(w, r.Agents)
	}
}

func dash(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = '-'
	}
	return string(b)
}
