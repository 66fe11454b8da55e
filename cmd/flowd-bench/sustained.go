package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// --- 7: sustained load (issue 11) ------------------------------------------------------------

// Sustained is flowd on SQLite under a closed loop of keep-alive webhook clients for a while,
// each combination of executors and clients in turn, round after round, with the floors and
// ceilings it is compared with measured in the same rounds.
type Sustained struct {
	Method      string  `json:"method"`
	LoadSeconds float64 `json:"load_seconds"`
	// flowd's backpressure bounds in the combinations (0 = no bound)
	MaxQueuedRuns   int               `json:"max_queued_runs"`
	MaxQueueSeconds int               `json:"max_queue_seconds"`
	Rounds          int               `json:"rounds"`
	Combos          []SustainedCombo  `json:"combinations"`
	Floors          []FloorRounds     `json:"fork_exec_floors"`
	Ingest          SustainedIngest   `json:"ingest"`
	Targets         map[string]string `json:"targets"`
	Error           string            `json:"error,omitempty"`
}

// SustainedCombo is one combination of executors and clients: each round, and the medians.
type SustainedCombo struct {
	Executors int              `json:"executors"`
	Clients   int              `json:"clients"`
	Rounds    []SustainedRound `json:"rounds"`
	Median    SustainedMedian  `json:"median"`
}

// SustainedRound is one load of one combination on a fresh flowd: from the first POST until
// the last accepted run ended.
type SustainedRound struct {
	Answers        Load    `json:"answers"`                 // every answer; accepted = 202s only
	RetryHonoured  int     `json:"retry_after_honoured"`    // 429/503 answers the client waited after
	RetryWaitedSec float64 `json:"retry_after_waited_s"`    // in all, over all clients
	RunsStored     int64   `json:"runs_stored"`             // runs made by the load (202s, and any a timed-out request made)
	Succeeded      int64   `json:"accepted_succeeded"`      // accepted runs whose status is success
	Finished       int64   `json:"accepted_finished"`       // accepted runs in a terminal status
	EveryFinished  bool    `json:"every_accepted_finished"` // Finished == Answers.Accepted
	TotalSeconds   float64 `json:"first_post_to_last_end_s"`
	RunsPerSec     float64 `json:"runs_per_s"` // succeeded / (first POST → last run end)
	DuringRuns     int64   `json:"during_load_runs"`
	DuringPerSec   float64 `json:"during_load_per_s"`
	DrainRuns      int64   `json:"drain_runs"`
	DrainSeconds   float64 `json:"drain_s"` // load end → last run end
	DrainPerSec    float64 `json:"drain_per_s"`
	DuringVsDrain  float64 `json:"during_vs_drain,omitempty"` // 0 when nothing was left to drain
	LagP50ms       float64 `json:"lag_p50_ms"`                // 202 answer → step start
	LagP99ms       float64 `json:"lag_p99_ms"`
	LagMaxms       float64 `json:"lag_max_ms"`
	LagFallbacks   int     `json:"lag_fallbacks,omitempty"` // runs without steps.started_at (jobs' or runs' used)
	QueuedMax      int64   `json:"queued_max"`
	RunningMax     int64   `json:"running_max"`
	Queue          Series  `json:"queue"`
	FloorPerSec    float64 `json:"floor_per_s"` // raw fork/exec at executors, this round
	VsFloor        float64 `json:"ratio_vs_floor"`
	Error          string  `json:"error,omitempty"`
}

// SustainedMedian is the median over the rounds of each figure (the rounds that measured).
type SustainedMedian struct {
	AcceptedPerSec float64 `json:"accepted_per_s"`
	AnswerP99ms    float64 `json:"answer_p99_ms"`
	RunsPerSec     float64 `json:"runs_per_s"`
	VsFloor        float64 `json:"ratio_vs_floor"`
	DuringPerSec   float64 `json:"during_load_per_s"`
	DrainPerSec    float64 `json:"drain_per_s"`
	DuringVsDrain  float64 `json:"during_vs_drain"`
	LagP50ms       float64 `json:"lag_p50_ms"`
	LagP99ms       float64 `json:"lag_p99_ms"`
	LagMaxms       float64 `json:"lag_max_ms"`
	QueuedMax      float64 `json:"queued_max"`
}

// Series is the queue sampled every PeriodMs: queued and running runs, At ms after the first
// POST.
type Series struct {
	PeriodMs int     `json:"period_ms"`
	At       []int64 `json:"at_ms"`
	Queued   []int64 `json:"queued"`
	Running  []int64 `json:"running"`
}

// FloorRounds is raw fork/exec (rawForkExec's command) at one parallelism, each round.
type FloorRounds struct {
	Parallelism  int       `json:"parallelism"`
	RoundsPerSec []float64 `json:"rounds_per_s"`
	Median       float64   `json:"median_per_s"`
}

// SustainedIngest is flowd's SQLite ingest alone (every executor held, as in section 1) against
// the one-row commit ceilings of SQLite and PostgreSQL, each round.
type SustainedIngest struct {
	Clients         int       `json:"clients"`
	FlowdSQLite     []float64 `json:"flowd_sqlite_rounds_per_s"`
	FlowdMedian     float64   `json:"flowd_sqlite_median_per_s"`
	FlowdEvery      bool      `json:"flowd_sqlite_every_accepted_is_a_run"`
	SQLiteCeiling   []float64 `json:"sqlite_ceiling_rounds_per_s"`
	SQLiteMedian    float64   `json:"sqlite_ceiling_median_per_s"`
	PGCeiling       []float64 `json:"postgres_ceiling_rounds_per_s,omitempty"`
	PGMedian        float64   `json:"postgres_ceiling_median_per_s,omitempty"`
	VsSQLiteCeiling float64   `json:"ratio_vs_sqlite_ceiling"`
	VsPGCeiling     float64   `json:"ratio_vs_postgres_ceiling,omitempty"`
	Method          string    `json:"method"`
	PGSkipped       string    `json:"postgres_skipped,omitempty"`
	Error           string    `json:"error,omitempty"`
}

// sustainedPlan is what the sustained section does, from the flags.
type sustainedPlan struct {
	dur       time.Duration // each combination's load
	maxQueued int           // flowd's --max-queued-runs (0 = no bound)
	maxQueueS int           // flowd's --max-queue-seconds (0 = no bound)
	executors []int
	clients   []int
	drainMax  time.Duration // how long the accepted runs may take to finish after the load
}

const (
	sustainedScript = `echo "abc=$abc"`
	samplePeriod    = 250 * time.Millisecond
	retryCap        = 2 * time.Second // the longest Retry-After a client honours
	retryDefault    = 250 * time.Millisecond
)

func sustained(ctx context.Context, p plan, sp sustainedPlan, progress func(string)) Sustained {
	res := Sustained{LoadSeconds: sp.dur.Seconds(), Rounds: p.rounds, Combos: []SustainedCombo{}, Floors: []FloorRounds{},
		MaxQueuedRuns: sp.maxQueued, MaxQueueSeconds: sp.maxQueueS,
		Method: fmt.Sprintf("each round, in turn: every combination of --executors %v and %v closed-loop keep-alive clients on a fresh in-process flowd "+
			"(SQLite, --webhook-rate 1e9, --max-queued-runs %d, --max-queue-seconds %d), POSTing {\"abc\":\"<n>\"} for %v to a one-step pipeline `%s` after a warm-up whose runs end first; "+
			"a client that gets 429/503 waits its Retry-After (at most %v, %v without one) and goes on. Runs/s = accepted runs that reached success / "+
			"(first POST → the last one's runs.finished_at); during = those finished before the load's end / its length; drain = the rest / "+
			"(load end → last end). Lag = the run's first steps.started_at (written by the claim that starts it, µs) − the client's clock when "+
			"its 202 (which names the run) was read. Queue: queued and running runs counted every %v on a read connection of the tool. "+
			"Floor: raw fork/exec of /bin/sh -c 'echo $abc', output through a pipe, at parallelism = executors, for %v. "+
			"Then the ingest ceilings (see ingest.method).",
			sp.executors, sp.clients, sp.maxQueued, sp.maxQueueS, sp.dur, sustainedScript, retryCap, retryDefault, samplePeriod, p.dur),
		Targets: map[string]string{
			"ratio_vs_floor":           "≥ 0.8",
			"during_vs_drain":          "≥ 0.8",
			"lag_p99_ms":               "≤ 1000 whenever the offered load is below capacity",
			"ingest_vs_sqlite_ceiling": "≥ 0.5",
		}}
	for _, e := range sp.executors {
		for _, c := range sp.clients {
			res.Combos = append(res.Combos, SustainedCombo{Executors: e, Clients: c})
		}
	}
	pars := slices.Compact(slices.Sorted(slices.Values(sp.executors)))
	for _, par := range pars {
		res.Floors = append(res.Floors, FloorRounds{Parallelism: par})
	}
	ing, closeIngest := newSustainedIngest(ctx, p)
	defer closeIngest()

	for r := range p.rounds {
		floorOf := map[int]float64{}
		for i := range res.Floors {
			f := &res.Floors[i]
			progress(fmt.Sprintf("sustained round %d/%d: raw fork/exec, parallelism %d", r+1, p.rounds, f.Parallelism))
			f.RoundsPerSec = append(f.RoundsPerSec, rawForkExecFor(ctx, f.Parallelism, p.dur))
			floorOf[f.Parallelism] = f.RoundsPerSec[r]
		}
		for i := range res.Combos {
			c := &res.Combos[i]
			progress(fmt.Sprintf("sustained round %d/%d: --executors %d, %d clients, %v", r+1, p.rounds, c.Executors, c.Clients, sp.dur))
			sr := sustainedRound(ctx, p, sp, c.Executors, c.Clients)
			sr.FloorPerSec = floorOf[c.Executors]
			sr.VsFloor = ratio(sr.RunsPerSec, sr.FloorPerSec)
			c.Rounds = append(c.Rounds, sr)
			if sr.Error != "" && res.Error == "" {
				res.Error = fmt.Sprintf("--executors %d, %d clients, round %d: %s", c.Executors, c.Clients, r+1, sr.Error)
			}
		}
		progress(fmt.Sprintf("sustained round %d/%d: ingest alone and the one-row commit ceilings", r+1, p.rounds))
		ing.round()
	}
	for i := range res.Floors {
		res.Floors[i].Median = median(res.Floors[i].RoundsPerSec)
	}
	for i := range res.Combos {
		res.Combos[i].Median = medians(res.Combos[i].Rounds)
	}
	res.Ingest = ing.result(ctx)
	if res.Ingest.Error != "" && res.Error == "" {
		res.Error = "ingest: " + res.Ingest.Error
	}
	return res
}

// medians is the median of each figure over the rounds without an error.
func medians(rounds []SustainedRound) SustainedMedian {
	var ok []SustainedRound
	for _, r := range rounds {
		if r.Error == "" {
			ok = append(ok, r)
		}
	}
	of := func(f func(SustainedRound) float64) float64 {
		v := make([]float64, len(ok))
		for i, r := range ok {
			v[i] = f(r)
		}
		return median(v)
	}
	return SustainedMedian{
		AcceptedPerSec: of(func(r SustainedRound) float64 { return r.Answers.PerSec }),
		AnswerP99ms:    of(func(r SustainedRound) float64 { return r.Answers.P99ms }),
		RunsPerSec:     of(func(r SustainedRound) float64 { return r.RunsPerSec }),
		VsFloor:        of(func(r SustainedRound) float64 { return r.VsFloor }),
		DuringPerSec:   of(func(r SustainedRound) float64 { return r.DuringPerSec }),
		DrainPerSec:    of(func(r SustainedRound) float64 { return r.DrainPerSec }),
		DuringVsDrain:  of(func(r SustainedRound) float64 { return r.DuringVsDrain }),
		LagP50ms:       of(func(r SustainedRound) float64 { return r.LagP50ms }),
		LagP99ms:       of(func(r SustainedRound) float64 { return r.LagP99ms }),
		LagMaxms:       of(func(r SustainedRound) float64 { return r.LagMaxms }),
		QueuedMax:      of(func(r SustainedRound) float64 { return float64(r.QueuedMax) }),
	}
}

// median of v (the mean of the middle two for an even count), rounded to three places; 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + m) / 2
	}
	return ratio(m, 1)
}

// answer is one accepted webhook: its run and when the client had read the 202.
type answer struct {
	run int64
	at  time.Time
}

// sustainedRound measures one combination once on a fresh flowd.
func sustainedRound(ctx context.Context, p plan, sp sustainedPlan, executors, clients int) SustainedRound {
	res := SustainedRound{Queue: Series{PeriodMs: int(samplePeriod / time.Millisecond)}}
	data, _ := os.MkdirTemp(p.tmp, "flowd-sustained-")
	defer os.RemoveAll(data)
	o := opts{executors: executors, maxQueuedRuns: sp.maxQueued, maxQueueSeconds: sp.maxQueueS}
	_, url, db, cleanup, err := pipelineInstance(ctx, data, o, "sustained", sustainedScript, nil)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer cleanup()

	// Warm up (connections, prepared statements, the shim's page cache), then let those runs end.
	warm := closedLoop(ctx, url, clients, time.Minute, int64(clients))
	if n, err := waitCount(ctx, db, terminal, int64(warm.Accepted), sp.drainMax); err != nil || n < int64(warm.Accepted) {
		res.Error = fmt.Sprintf("warm-up: %d of %d runs ended: %v", n, warm.Accepted, err)
		return res
	}
	var base int64
	if err := db.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0) FROM runs").Scan(&base); err != nil {
		res.Error = err.Error()
		return res
	}

	// The queue, on a connection of its own, from the first POST until every run ended.
	conn, err := db.Conn(ctx)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer conn.Close()
	start := time.Now()
	stopSampling := sample(samplePeriod, func() {
		q, r, err := queueDepth(ctx, conn)
		if err != nil {
			return
		}
		res.Queue.At = append(res.Queue.At, time.Since(start).Milliseconds())
		res.Queue.Queued = append(res.Queue.Queued, q)
		res.Queue.Running = append(res.Queue.Running, r)
	})
	answers, retries := sustainedLoad(ctx, url, clients, sp.dur, &res)
	loadEnd := time.Now()
	res.RetryHonoured, res.RetryWaitedSec = retries.n, retries.waited.Seconds()

	// Every run the load made must end: wait until none is queued or running. The times come
	// from the database (runs.finished_at), so this polls gently, not to take the CPU from flowd.
	res.RunsStored, _ = count(ctx, db, "SELECT COUNT(*) FROM runs WHERE id > "+strconv.FormatInt(base, 10))
	left, err := waitDrained(ctx, db, base, sp.drainMax)
	stopSampling()
	for i := range res.Queue.Queued {
		res.QueuedMax = max(res.QueuedMax, res.Queue.Queued[i])
		res.RunningMax = max(res.RunningMax, res.Queue.Running[i])
	}
	errs := []error{}
	if res.Error != "" {
		errs = append(errs, errors.New(res.Error))
	}
	if err != nil || left > 0 {
		errs = append(errs, fmt.Errorf("%d of %d runs still queued or running %v after the load's end: %v", left, res.RunsStored, sp.drainMax, err))
	}
	errs = append(errs, sustainedFigures(ctx, db, base, answers, start, loadEnd, &res))
	if err := errors.Join(errs...); err != nil {
		res.Error = strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	return res
}

// waitDrained polls every 100 ms until no run after base is queued or running, or timeout
// passes; it returns how many still are.
func waitDrained(ctx context.Context, db *sql.DB, base int64, timeout time.Duration) (int64, error) {
	q := "SELECT COUNT(*) FROM runs WHERE status IN ('queued', 'running') AND id > " + strconv.FormatInt(base, 10)
	deadline := time.Now().Add(timeout)
	for {
		n, err := count(ctx, db, q)
		if err != nil || n == 0 || time.Now().After(deadline) {
			return n, err
		}
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// queueDepth counts queued and running runs.
func queueDepth(ctx context.Context, conn *sql.Conn) (queued, running int64, err error) {
	rows, err := conn.QueryContext(ctx, "SELECT status, COUNT(*) FROM runs WHERE status IN ('queued', 'running') GROUP BY status")
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return 0, 0, err
		}
		if st == "queued" {
			queued = n
		} else {
			running = n
		}
	}
	return queued, running, rows.Err()
}

// retryCount is what the clients spent honouring Retry-After.
type retryCount struct {
	mu     sync.Mutex
	n      int
	waited time.Duration
}

// sustainedLoad runs the closed loop: clients keep-alive clients POST one webhook after the
// other for dur. Each 202's run and the time it was read are returned; every answer's status
// and time go to res.Answers. A 429 or 503 is answered by waiting its Retry-After (at most
// retryCap, and not past the load's end) before the client's next POST.
func sustainedLoad(ctx context.Context, url string, clients int, dur time.Duration, res *SustainedRound) ([]answer, *retryCount) {
	hc := newHTTPClient(clients, 10*time.Second)
	defer hc.CloseIdleConnections()
	rec := newRecorder()
	retries := &retryCount{}
	var (
		mu       sync.Mutex
		answers  []answer
		badBody  atomic.Int64
		deadline = time.Now().Add(dur)
	)
	// drive's own recorder would count the waits in the answer times: the answers are
	// recorded here instead.
	took := drive(ctx, newRecorder(), clients, dur, 1<<40, func(_ int, n int64) (int, error) {
		t0 := time.Now()
		st, run, wait, err := postRun(ctx, hc, url, abcBody(n))
		at := time.Now()
		rec.add(at.Sub(t0), st, err)
		switch {
		case st == http.StatusAccepted && run > 0:
			mu.Lock()
			answers = append(answers, answer{run: run, at: at})
			mu.Unlock()
		case st == http.StatusAccepted:
			badBody.Add(1)
		case st == http.StatusTooManyRequests || st == http.StatusServiceUnavailable:
			wait = min(wait, retryCap, time.Until(deadline))
			if wait > 0 {
				retries.mu.Lock()
				retries.n++
				retries.waited += wait
				retries.mu.Unlock()
				select {
				case <-time.After(wait):
				case <-ctx.Done():
				}
			}
		}
		return st, err
	})
	res.Answers = rec.result(took)
	res.Answers.Clients = clients
	if b := badBody.Load(); b > 0 {
		res.Error = fmt.Sprintf("%d 202 answers did not name their run", b)
	}
	return answers, retries
}

// postRun POSTs one webhook and returns its status, the run a 202 names and, for any answer,
// how long its Retry-After asks to wait (retryDefault without one).
func postRun(ctx context.Context, hc *http.Client, url string, body []byte) (status int, run int64, retry time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, 0, 0, err
	}
	retry = retryDefault
	if s := resp.Header.Get("Retry-After"); s != "" {
		if secs, err := strconv.Atoi(s); err == nil {
			retry = time.Duration(secs) * time.Second
		} else if t, err := http.ParseTime(s); err == nil {
			retry = time.Until(t)
		}
	}
	if resp.StatusCode == http.StatusAccepted {
		var a struct {
			Run *struct {
				ID int64 `json:"id"`
			} `json:"run"`
		}
		if json.Unmarshal(b, &a) == nil && a.Run != nil {
			run = a.Run.ID
		}
	}
	return resp.StatusCode, run, retry, nil
}

// sustainedFigures reads the load's runs from the database and fills res: which accepted runs
// finished and succeeded, the rates, and the lag of each accepted run.
func sustainedFigures(ctx context.Context, db *sql.DB, base int64, answers []answer, start, loadEnd time.Time, res *SustainedRound) error {
	type runRow struct {
		status   string
		finished sql.NullInt64
		step     sql.NullInt64 // the first step's started_at (unix ns)
		fallback sql.NullInt64 // the job's started_at, else the run's
	}
	rows, err := db.QueryContext(ctx, `SELECT r.id, r.status, r.finished_at,
			(SELECT MIN(s.started_at) FROM steps s JOIN jobs j ON j.id = s.job_id WHERE j.run_id = r.id),
			COALESCE((SELECT MIN(j.started_at) FROM jobs j WHERE j.run_id = r.id), r.started_at)
		FROM runs r WHERE r.id > ?`, base)
	if err != nil {
		return fmt.Errorf("read runs: %w", err)
	}
	runs := map[int64]runRow{}
	for rows.Next() {
		var id int64
		var r runRow
		if err := rows.Scan(&id, &r.status, &r.finished, &r.step, &r.fallback); err != nil {
			rows.Close()
			return fmt.Errorf("read runs: %w", err)
		}
		runs[id] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read runs: %w", err)
	}

	var (
		lags            []time.Duration
		last            = start
		missing, failed []int64
	)
	for _, a := range answers {
		r, ok := runs[a.run]
		if !ok {
			missing = append(missing, a.run)
			continue
		}
		switch r.status {
		case "success":
			res.Succeeded++
			res.Finished++
		case "failed", "canceled":
			res.Finished++
			failed = append(failed, a.run)
			continue
		default:
			missing = append(missing, a.run)
			continue
		}
		end := time.Unix(0, r.finished.Int64)
		if end.After(last) {
			last = end
		}
		if !end.After(loadEnd) {
			res.DuringRuns++
		} else {
			res.DrainRuns++
		}
		switch {
		case r.step.Valid:
			lags = append(lags, time.Unix(0, r.step.Int64).Sub(a.at))
		case r.fallback.Valid:
			res.LagFallbacks++
			lags = append(lags, time.Unix(0, r.fallback.Int64).Sub(a.at))
		}
	}
	res.EveryFinished = res.Finished == int64(res.Answers.Accepted) && len(missing) == 0
	load := loadEnd.Sub(start)
	res.TotalSeconds = last.Sub(start).Seconds()
	if res.TotalSeconds > 0 {
		res.RunsPerSec = ratio(float64(res.Succeeded), res.TotalSeconds)
	}
	res.DuringPerSec = ratio(float64(res.DuringRuns), load.Seconds())
	if last.After(loadEnd) {
		res.DrainSeconds = last.Sub(loadEnd).Seconds()
		res.DrainPerSec = ratio(float64(res.DrainRuns), res.DrainSeconds)
	}
	if res.DrainPerSec > 0 {
		res.DuringVsDrain = ratio(res.DuringPerSec, res.DrainPerSec)
	}
	res.LagP50ms, res.LagP99ms, res.LagMaxms = percentiles(lags)
	var errs []error
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("%d of %d accepted runs did not finish (first: run %d)", len(missing), res.Answers.Accepted, missing[0]))
	}
	if len(failed) > 0 {
		errs = append(errs, fmt.Errorf("%d accepted runs ended without success (first: run %d)", len(failed), failed[0]))
	}
	return errors.Join(errs...)
}

// rawForkExecFor is rawForkExec's command on par workers for dur: commands per second.
func rawForkExecFor(ctx context.Context, par int, dur time.Duration) float64 {
	rec := newRecorder()
	took := forkExecLoad(ctx, rec, par, dur, 1<<40)
	return ratio(float64(rec.acceptedSoFar()), took.Seconds())
}

// sustainedIngest alternates, once a round, flowd's SQLite ingest alone (every executor held,
// as in section 1) with the SQLite and PostgreSQL one-row commit ceilings.
type sustainedIngest struct {
	res    SustainedIngest
	flowd  *ingestLoad
	sqlite *ingestLoad
	pg     *ingestLoad
	db     *sql.DB // flowd's
	before int64
}

func newSustainedIngest(ctx context.Context, p plan) (*sustainedIngest, func()) {
	s := &sustainedIngest{res: SustainedIngest{Clients: p.clients,
		Method: fmt.Sprintf("%d clients for %v each round, alternating: flowd's SQLite ingest alone (--executors 1 held by a `sleep 600` run, "+
			"so every run queues; as section 1), then the SQLite ceiling: %d goroutines committing one-row INSERTs of a webhook-sized body, each its own "+
			"transaction, through one connection (flowd's writer is one connection) to a fresh file in the same folder opened with flowd's writer pragmas "+
			"(journal_mode=WAL, synchronous=FULL, busy_timeout=10000, foreign_keys, temp_store=MEMORY, _txlock=immediate), then the PostgreSQL ceiling "+
			"(as section 1: %d pgx connections on a fresh database). Ratio = medians.", p.clients, p.dur, p.clients, p.clients)}}
	var defers []func()
	closeAll := func() {
		for _, f := range slices.Backward(defers) {
			f()
		}
	}
	_, url, db, cleanup, err := ingestInstance(ctx, p, "", opts{})
	if err != nil {
		s.res.Error = "flowd: " + err.Error()
		return s, closeAll
	}
	defers = append(defers, cleanup)
	s.db = db
	closedLoop(ctx, url, p.clients, p.dur/5, 1<<40) // warm up
	s.before, _ = count(ctx, db, "SELECT COUNT(*) FROM runs")
	s.flowd = &ingestLoad{rec: newRecorder(), run: func(rec *recorder) time.Duration {
		return closedLoopInto(ctx, rec, []string{url}, p.clients, p.dur, 1<<40)
	}}
	run, closeSQLite, err := sqliteInsertLoad(ctx, filepath.Join(p.tmp, "ceiling.db"), p.clients, p.dur)
	if err != nil {
		s.res.Error = "SQLite ceiling: " + err.Error()
		return s, closeAll
	}
	defers = append(defers, closeSQLite)
	run(newRecorder()) // warm up: the WAL file, the page cache
	s.sqlite = &ingestLoad{rec: newRecorder(), run: run}
	if p.pgDSN == "" {
		s.res.PGSkipped = "no PostgreSQL (--pg \"\")"
		return s, closeAll
	}
	dsn, drop, err := pgDatabase(ctx, p.pgDSN)
	if err != nil {
		s.res.PGSkipped = "PostgreSQL unreachable: " + err.Error()
		return s, closeAll
	}
	defers = append(defers, drop)
	run, closePG, err := pgInsertLoad(ctx, dsn, p.clients, p.dur)
	if err != nil {
		s.res.Error = "PostgreSQL ceiling: " + err.Error()
		return s, closeAll
	}
	defers = append(defers, closePG)
	run(newRecorder()) // warm up
	s.pg = &ingestLoad{rec: newRecorder(), run: run}
	return s, closeAll
}

// round runs each load once, in turn.
func (s *sustainedIngest) round() {
	for _, l := range []*ingestLoad{s.flowd, s.sqlite, s.pg} {
		if l != nil {
			l.round()
		}
	}
}

func (s *sustainedIngest) result(ctx context.Context) SustainedIngest {
	res := s.res
	if s.flowd != nil {
		res.FlowdSQLite, res.FlowdMedian = s.flowd.rounds, median(s.flowd.rounds)
		after, _ := count(ctx, s.db, "SELECT COUNT(*) FROM runs")
		res.FlowdEvery = after-s.before >= int64(s.flowd.rec.acceptedSoFar())
		if !res.FlowdEvery && res.Error == "" {
			res.Error = fmt.Sprintf("flowd ingest: %d runs stored for %d 202s", after-s.before, s.flowd.rec.acceptedSoFar())
		}
	}
	if s.sqlite != nil {
		res.SQLiteCeiling, res.SQLiteMedian = s.sqlite.rounds, median(s.sqlite.rounds)
		res.VsSQLiteCeiling = ratio(res.FlowdMedian, res.SQLiteMedian)
	}
	if s.pg != nil {
		res.PGCeiling, res.PGMedian = s.pg.rounds, median(s.pg.rounds)
		res.VsPGCeiling = ratio(res.FlowdMedian, res.PGMedian)
	}
	return res
}

// sqliteInsertLoad prepares the SQLite ceiling in a new file at path, opened as flowd opens its
// writer (internal/store openSQLite: one connection, the same pragmas). run measures one round
// of dur: clients goroutines, each committing one-row INSERTs one after the other (each its own
// transaction; a success counts as a 202).
func sqliteInsertLoad(ctx context.Context, path string, clients int, dur time.Duration) (run func(*recorder) time.Duration, closeDB func(), err error) {
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate&_pragma=temp_store(MEMORY)")
	if err != nil {
		return nil, nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE bench_ceiling (
		id INTEGER PRIMARY KEY, received_at INTEGER NOT NULL, body TEXT NOT NULL)`); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("scratch table: %w", err)
	}
	run = func(rec *recorder) time.Duration {
		return drive(ctx, rec, clients, dur, 1<<40, func(_ int, n int64) (int, error) {
			if _, err := db.ExecContext(ctx, "INSERT INTO bench_ceiling (received_at, body) VALUES (?, ?)",
				time.Now().UnixNano(), string(abcBody(n))); err != nil {
				return 0, err
			}
			return http.StatusAccepted, nil
		})
	}
	return run, func() { db.Close(); os.Remove(path); os.Remove(path + "-wal"); os.Remove(path + "-shm") }, nil
}

// intList parses "2,4" into [2 4]; every number must be positive.
func intList(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a list of positive numbers", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// printSustained prints the sustained section as a table of its own: each figure's median
// over the rounds, the rounds in brackets, its target and whether the median meets it.
func printSustained(w io.Writer, s Sustained) {
	fmt.Fprintf(w, "\nSustained load (issue 11): SQLite, closed loop for %gs, `%s`, --max-queued-runs %d --max-queue-seconds %d; median of %d round(s) [each round]\n\n",
		s.LoadSeconds, sustainedScript, s.MaxQueuedRuns, s.MaxQueueSeconds, s.Rounds)
	fmt.Fprintf(w, "| %-42s | %-62s | %-14s | %-5s |\n", "measure", "median [rounds]", "target", "holds")
	fmt.Fprintf(w, "|%s|%s|%s|%s|\n", dash(44), dash(64), dash(16), dash(7))
	row := func(name, value, target, holds string) {
		fmt.Fprintf(w, "| %-42s | %-62s | %-14s | %-5s |\n", name, value, target, holds)
	}
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "no"
	}
	each := func(rounds []SustainedRound, f func(SustainedRound) string) string {
		var parts []string
		for _, r := range rounds {
			if r.Error != "" {
				parts = append(parts, "error")
				continue
			}
			parts = append(parts, f(r))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	if s.Error != "" {
		row("error", s.Error, "", "")
	}
	for _, f := range s.Floors {
		row(fmt.Sprintf("raw fork/exec floor, parallelism %d", f.Parallelism),
			fmt.Sprintf("%.0f/s %s", f.Median, roundsOf(f.RoundsPerSec)), "", "")
	}
	for _, c := range s.Combos {
		m := c.Median
		name := fmt.Sprintf("%d executors, %d clients: ", c.Executors, c.Clients)
		row(name+"runs/s", fmt.Sprintf("%.0f/s %s; accepted %.0f/s", m.RunsPerSec,
			each(c.Rounds, func(r SustainedRound) string { return fmt.Sprintf("%.0f", r.RunsPerSec) }), m.AcceptedPerSec), "", "")
		row("  vs fork/exec floor", fmt.Sprintf("%s %s", num(m.VsFloor),
			each(c.Rounds, func(r SustainedRound) string { return num(r.VsFloor) })), "≥ 0.8", yes(m.VsFloor >= 0.8))
		row("  done during load / after it (drain)", fmt.Sprintf("%.0f/s / %.0f/s = %s %s", m.DuringPerSec, m.DrainPerSec, num(m.DuringVsDrain),
			each(c.Rounds, func(r SustainedRound) string {
				if r.DrainRuns == 0 {
					return "no drain"
				}
				return num(r.DuringVsDrain)
			})), "≥ 0.8", yes(m.DuringVsDrain >= 0.8 || m.DrainPerSec == 0))
		lagHolds := yes(m.LagP99ms <= 1000)
		if m.AcceptedPerSec > 1.1*m.DuringPerSec {
			lagHolds = "n/a" // accepted faster than done: over capacity, the queue grows
		}
		row("  lag 202 → step start p50, p99, max", fmt.Sprintf("%.1f, %.1f, %.1f ms; p99 %s", m.LagP50ms, m.LagP99ms, m.LagMaxms,
			each(c.Rounds, func(r SustainedRound) string { return fmt.Sprintf("%.1f", r.LagP99ms) })), "p99 ≤ 1000 ms*", lagHolds)
		row("  queued max; drain", fmt.Sprintf("%.0f %s; %s s", m.QueuedMax,
			each(c.Rounds, func(r SustainedRound) string { return strconv.FormatInt(r.QueuedMax, 10) }),
			each(c.Rounds, func(r SustainedRound) string { return fmt.Sprintf("%.1f", r.DrainSeconds) })), "", "")
		row("  answers: p99; statuses", fmt.Sprintf("%.1f ms; ", m.AnswerP99ms)+each(c.Rounds, func(r SustainedRound) string {
			st := statusList(r.Answers.Statuses)
			if r.RetryHonoured > 0 {
				st += fmt.Sprintf(" waited %d × %.1fs", r.RetryHonoured, r.RetryWaitedSec)
			}
			return st
		}), "", "")
		all, fin, acc := true, int64(0), 0
		for _, r := range c.Rounds {
			all = all && r.EveryFinished
			fin += r.Finished
			acc += r.Answers.Accepted
		}
		row("  every accepted run finished", fmt.Sprintf("%d of %d", fin, acc), "all", yes(all))
	}
	in := s.Ingest
	switch {
	case in.Error != "":
		row("ingest vs one-row commit ceilings", "error: "+in.Error, "", "")
	default:
		row(fmt.Sprintf("ingest alone, SQLite, %d clients", in.Clients), fmt.Sprintf("%.0f/s %s", in.FlowdMedian, roundsOf(in.FlowdSQLite)), "", "")
		row("  vs SQLite one-row commits", fmt.Sprintf("%.0f/s %s: %s", in.SQLiteMedian, roundsOf(in.SQLiteCeiling), num(in.VsSQLiteCeiling)),
			"≥ 0.5", yes(in.VsSQLiteCeiling >= 0.5))
		if in.PGSkipped != "" {
			row("  vs PostgreSQL one-row commits", "skipped: "+in.PGSkipped, "", "")
		} else {
			row("  vs PostgreSQL one-row commits", fmt.Sprintf("%.0f/s %s: %s", in.PGMedian, roundsOf(in.PGCeiling), num(in.VsPGCeiling)), "", "")
		}
	}
	fmt.Fprintln(w, "\n* lag: only when the offered load is below capacity; n/a when 202s came faster than runs were done.")
}

// roundsOf prints per-round rates as [a, b, c].
func roundsOf(v []float64) string { return roundsPrec(v, 0) }

// roundsPrec prints per-round rates with prec decimals as [a, b, c].
func roundsPrec(v []float64, prec int) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.FormatFloat(x, 'f', prec, 64)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// statusList prints answers by status as "202 × 2892, 503 × 4", in the statuses' order.
func statusList(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s × %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
