package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/flowd/flowd/internal/config"
)

// TwoServers is two `flowd serve` processes (the built binary) on one PostgreSQL database,
// the load spread over both: ingest while every executor is busy, then end to end with every
// job's step appending a line to a marker file, to check that each job ran exactly once.
type TwoServers struct {
	Ingest              Load           `json:"ingest"`
	IngestRunsStored    int64          `json:"ingest_runs_stored"`
	IngestEveryAccepted bool           `json:"ingest_every_accepted_is_a_run"`
	Runs                int            `json:"e2e_runs"`
	Executors           int            `json:"e2e_executors_per_server"`
	PerSec              float64        `json:"e2e_runs_per_s"`
	Succeeded           int64          `json:"e2e_succeeded"`
	MarkerLines         int            `json:"e2e_marker_lines"`
	ExactlyOnce         bool           `json:"e2e_every_job_exactly_once"`
	JobsByServer        map[string]int `json:"e2e_jobs_by_server"` // node name → jobs, from each step's workspace folder
	Method              string         `json:"method"`
	Skipped             string         `json:"skipped,omitempty"`
	Error               string         `json:"error,omitempty"`
}

func twoServers(ctx context.Context, p plan) TwoServers {
	res := TwoServers{Runs: p.twoN, Executors: 4, JobsByServer: map[string]int{},
		Method: fmt.Sprintf("the built binary twice (--node-name bench-a and bench-b, one FLOWD_SECRET_KEY) on a fresh PostgreSQL database; client i posts to server i mod 2. "+
			"Ingest: --executors 1 each, both held by `sleep 600` runs, %d clients for %v after a warm-up. End to end: a fresh database, --executors 4 each, "+
			"4 clients post the runs; the step appends \"$abc $FLOWD_WORKSPACE\" to a marker file; runs/s = runs / (first POST → last run terminal)", p.clients, p.dur)}
	if p.pgDSN == "" {
		res.Skipped = "no PostgreSQL (--pg \"\")"
		return res
	}
	if err := twoServersIngest(ctx, p, &res); err != nil {
		res.Error = "ingest: " + err.Error()
		return res
	}
	if err := twoServersE2E(ctx, p, &res); err != nil {
		res.Error = "end to end: " + err.Error()
	}
	return res
}

// cluster starts two servers of the binary on a fresh database with o (node names a and b, a
// shared secret key), one after the other: the first migrates and creates admin. stop stops
// both and drops the database.
func cluster(ctx context.Context, p plan, o opts) (servers []*instance, dsn string, stop func(), err error) {
	dsn, drop, err := pgDatabase(ctx, p.pgDSN)
	if err != nil {
		return nil, "", nil, err
	}
	key := make([]byte, 32)
	rand.Read(key)
	stop = func() {
		for _, in := range servers {
			in.Stop()
		}
		drop()
	}
	for _, name := range []string{"a", "b"} {
		data, _ := os.MkdirTemp(p.tmp, "flowd-"+name+"-")
		so := o
		so.dsn = dsn
		so.env = []string{"FLOWD_SECRET_KEY=" + hex.EncodeToString(key)}
		so.args = []string{"--node-name", "bench-" + name}
		in, err := startBinary(ctx, p.bin, data, so)
		if err != nil {
			stop()
			return nil, "", nil, fmt.Errorf("server %s: %w", name, err)
		}
		servers = append(servers, in)
	}
	return servers, dsn, stop, nil
}

// webhookURLs creates a pipeline through the first server and returns its webhook's URL on
// each server.
func webhookURLs(ctx context.Context, servers []*instance, name, script string, vars map[string]string) ([]string, error) {
	first, err := servers[0].pipeline(ctx, name, script, vars)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(first)
	if err != nil {
		return nil, err
	}
	var urls []string
	for _, in := range servers {
		urls = append(urls, in.Base+u.Path)
	}
	return urls, nil
}

func twoServersIngest(ctx context.Context, p plan, res *TwoServers) error {
	servers, dsn, stop, err := cluster(ctx, p, opts{executors: 1})
	if err != nil {
		return err
	}
	defer stop()
	db, err := openDB(dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	hold, err := webhookURLs(ctx, servers, "hold", "sleep 600", nil)
	if err != nil {
		return err
	}
	hc := newHTTPClient(1, 10*time.Second)
	for _, u := range hold {
		if st, err := post(ctx, hc, u, []byte(`{"abc":"hold"}`)); err != nil || st != http.StatusAccepted {
			return fmt.Errorf("holding run: %d %v", st, err)
		}
	}
	if n, err := waitCount(ctx, db, "SELECT COUNT(*) FROM runs WHERE status = 'running'", 2, 30*time.Second); err != nil || n != 2 {
		return fmt.Errorf("holding runs did not both start: %d running, %v", n, err)
	}
	urls, err := webhookURLs(ctx, servers, "ingest", "true", nil)
	if err != nil {
		return err
	}
	closedLoopURLs(ctx, urls, p.clients, p.dur/5, 1<<40) // warm up
	before, _ := count(ctx, db, "SELECT COUNT(*) FROM runs")
	res.Ingest = closedLoopURLs(ctx, urls, p.clients, p.dur, 1<<40)
	after, _ := count(ctx, db, "SELECT COUNT(*) FROM runs")
	res.IngestRunsStored = after - before
	res.IngestEveryAccepted = res.IngestRunsStored >= int64(res.Ingest.Accepted)
	return nil
}

func twoServersE2E(ctx context.Context, p plan, res *TwoServers) error {
	// Steps run as users of their own (flowd as root): the marker lives in a folder of /tmp
	// anyone may pass through, and anyone may append to it.
	markDir, err := os.MkdirTemp("", "flowd-bench-mark-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(markDir)
	os.Chmod(markDir, 0o755)
	mark := filepath.Join(markDir, "mark")
	if err := os.WriteFile(mark, nil, 0o600); err != nil {
		return err
	}
	os.Chmod(mark, 0o666)

	servers, dsn, stop, err := cluster(ctx, p, opts{executors: res.Executors})
	if err != nil {
		return err
	}
	defer stop()
	// A server's workspaces are in a folder named after its data folder (config's default).
	nodeOf := map[string]string{}
	for i, in := range servers {
		cfg := config.Default()
		cfg.Data = in.Data
		cfg.Validate()
		nodeOf[cfg.Workspaces] = "bench-" + string(rune('a'+i))
	}
	db, err := openDB(dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	urls, err := webhookURLs(ctx, servers, "e2e", `echo "$abc $FLOWD_WORKSPACE" >> "$MARK"`, map[string]string{"MARK": mark})
	if err != nil {
		return err
	}
	t0 := time.Now()
	l := closedLoopURLs(ctx, urls, 4, 5*time.Minute, int64(p.twoN))
	if l.Accepted != p.twoN {
		return fmt.Errorf("%d of %d webhooks accepted: %v", l.Accepted, p.twoN, l.Statuses)
	}
	n, err := waitCount(ctx, db, terminal, int64(p.twoN), 10*time.Minute)
	elapsed := time.Since(t0)
	if err != nil || n < int64(p.twoN) {
		return fmt.Errorf("%d of %d runs ended: %v", n, p.twoN, err)
	}
	res.PerSec = float64(p.twoN) / elapsed.Seconds()
	res.Succeeded, _ = count(ctx, db, "SELECT COUNT(*) FROM runs WHERE status = 'success'")

	// Each value 1..twoN once; the workspace folder names the server (its default is a hash
	// of the server's data folder).
	f, err := os.Open(mark)
	if err != nil {
		return err
	}
	defer f.Close()
	seen := map[int]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		res.MarkerLines++
		v, ws, _ := strings.Cut(sc.Text(), " ")
		i, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("marker line %q", sc.Text())
		}
		seen[i]++
		node := nodeOf[filepath.Dir(ws)]
		if node == "" {
			node = filepath.Dir(ws)
		}
		res.JobsByServer[node]++
	}
	if err := sc.Err(); err != nil {
		return err
	}
	res.ExactlyOnce = res.MarkerLines == p.twoN && len(seen) == p.twoN
	for i := 1; i <= p.twoN; i++ {
		if seen[i] != 1 {
			res.ExactlyOnce = false
		}
	}
	return nil
}
