package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/flowd/flowd/internal/executor"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/dockertest"
	"github.com/flowd/flowd/internal/store/storetest"
)

// TestQuick runs the tool in --quick mode and checks only that it completes and writes valid
// JSON with every section present: numbers on a shared test machine prove nothing, so none is
// asserted. PostgreSQL is used when FLOWD_TEST_DATABASE_URL names one.
func TestMain(m *testing.M) {
	if executor.IsHelperCommand(os.Args) { // in-process flowd's step shim
		executor.RunHelperCommand(os.Args)
	}
	os.Exit(m.Run())
}

func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("builds flowd and runs it; skipped with -short")
	}
	out := filepath.Join(t.TempDir(), "results.json")
	var stdout, stderr bytes.Buffer
	args := []string{"--quick", "--out", out, "--pg", os.Getenv(storetest.EnvDatabaseURL)}
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("flowd-bench %v: exit %d\n%s\n%s", args, code, stdout.String(), stderr.String())
	}
	t.Log(stdout.String())
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("results are not JSON: %v\n%s", err, b)
	}
	for _, section := range []string{"machine", "ceilings", "ingest_sqlite", "ingest_postgres", "ceiling_postgres_insert",
		"durability", "overload", "trigger_to_start", "end_to_end", "two_servers", "scale", "idle", "sustained", "containers", "agents"} {
		raw, ok := got[section]
		if !ok || len(raw) == 0 || string(raw) == "null" {
			t.Errorf("section %q is missing", section)
			continue
		}
		var body map[string]any
		if json.Unmarshal(raw, &body) == nil {
			if e, ok := body["error"]; ok {
				t.Errorf("section %q failed: %v", section, e)
			}
		}
	}
	// Two servers: every job ran exactly once (a count of marker lines, not a time).
	var two map[string]any
	if err := json.Unmarshal(got["two_servers"], &two); err == nil && two["skipped"] == nil && two["e2e_every_job_exactly_once"] != true {
		t.Errorf("two_servers: not every job ran exactly once: %s", got["two_servers"])
	}
	var e2e []map[string]any
	if err := json.Unmarshal(got["end_to_end"], &e2e); err != nil || len(e2e) != 2 {
		t.Errorf("end_to_end = %s, want two entries (parallelism 1 and 4)", got["end_to_end"])
	}
	for _, e := range e2e {
		if msg, ok := e["error"]; ok {
			t.Errorf("end_to_end: %v", msg)
		}
	}
	checkSustained(t, got["sustained"])
	checkContainers(t, got["containers"])
	checkAgents(t, got["agents"])
}

// TestQuickAgents runs only the agents section and checks that every load measured each of its
// runs and saw the value in each log, that the trigger-to-start and the calls were measured,
// and that no agent process or work folder is left; never a time or a rate.
func TestQuickAgents(t *testing.T) {
	if testing.Short() {
		t.Skip("builds flowd and runs it with agents; skipped with -short")
	}
	before := agentLeftovers(t)
	out := filepath.Join(t.TempDir(), "results.json")
	var stdout, stderr bytes.Buffer
	args := []string{"--quick", "--only", "agents", "--out", out}
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("flowd-bench %v: exit %d\n%s\n%s", args, code, stdout.String(), stderr.String())
	}
	t.Log(stdout.String())
	if !strings.Contains(stdout.String(), "Build agents (issue 13)") {
		t.Errorf("the table has no agents block:\n%s", stdout.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Agents json.RawMessage `json:"agents"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("results are not JSON: %v\n%s", err, b)
	}
	checkAgents(t, got.Agents)
	if after := agentLeftovers(t); len(after) > len(before) {
		t.Errorf("left behind: %v (before the run: %v)", after, before)
	}
}

// checkAgents checks the agents section of the results: no error; the baseline and 1, 2 and 4
// agents each measured at each concurrency, every run of every round, each log holding the
// value; trigger to start measured both ways; the calls counted with one finish per job.
func checkAgents(t *testing.T, raw json.RawMessage) {
	t.Helper()
	var a Agents
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("agents: %v\n%s", err, raw)
	}
	if a.Error != "" {
		t.Errorf("agents: %s", a.Error)
	}
	byAgents := map[int]int{}
	for _, l := range a.Loads {
		byAgents[l.Agents]++
		want := a.Rounds * a.RunsPerLoad
		if l.Runs != want || l.OutputOK != want {
			t.Errorf("agents %s, concurrency %d: %d runs measured, %d with the value in their log; want %d", l.Load, l.Concurrency, l.Runs, l.OutputOK, want)
		}
		if l.Agents > 0 && (l.Capacity*l.Agents != a.Slots || l.VsLocal == 0) {
			t.Errorf("agents %s, concurrency %d: capacity %d each of %d slots, vs local %v", l.Load, l.Concurrency, l.Capacity, a.Slots, l.VsLocal)
		}
	}
	for _, n := range []int{0, 1, 2, 4} {
		if byAgents[n] != 2 {
			t.Errorf("agents: %d agents measured at %d concurrencies, want 2 (1 and 2): %s", n, byAgents[n], raw)
		}
	}
	s := a.TriggerToStart
	if s.Error != "" || s.Requests == 0 || s.Local.P50ms <= 0 || s.Agent.P50ms <= 0 {
		t.Errorf("agents trigger to start: %+v", s)
	}
	c := a.Calls
	if c.Error != "" || c.Jobs == 0 || c.PerJob["finish"] != 1 || c.PerJob["claim"] < 1 || c.PerJob["steps"] < 1 || c.PerJob["log"] < 1 {
		t.Errorf("agents calls: %+v", c)
	}
	if cc := c.Concurrent; cc.Jobs != a.RunsPerLoad || cc.PerJob["finish"] != 1 || cc.PerJob["claim"] == 0 {
		t.Errorf("agents calls at concurrency: %+v, want %d jobs, one finish each", cc, a.RunsPerLoad)
	}
}

// agentLeftovers lists the agents section's work folders under /var/tmp and the processes
// whose command line names one.
func agentLeftovers(t *testing.T) []string {
	t.Helper()
	dirs, _ := filepath.Glob("/var/tmp/flowd-bench-agents-*")
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range cmdlines {
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte("/var/tmp/flowd-bench-agents-")) {
			dirs = append(dirs, p+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return dirs
}

// TestQuickSustained runs only the sustained section, profiled (as one profiles it), and checks
// that it completes and that every accepted run finished; never a time or a rate.
func TestQuickSustained(t *testing.T) {
	if testing.Short() {
		t.Skip("runs flowd under load; skipped with -short")
	}
	dir := t.TempDir()
	out, prof := filepath.Join(dir, "results.json"), filepath.Join(dir, "cpu.prof")
	var stdout, stderr bytes.Buffer
	args := []string{"--quick", "--only", "sustained", "--cpuprofile", prof, "--out", out, "--pg", os.Getenv(storetest.EnvDatabaseURL)}
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("flowd-bench %v: exit %d\n%s\n%s", args, code, stdout.String(), stderr.String())
	}
	t.Log(stdout.String())
	if !strings.Contains(stdout.String(), "Sustained load") {
		t.Errorf("the table has no sustained block:\n%s", stdout.String())
	}
	if fi, err := os.Stat(prof); err != nil || fi.Size() == 0 {
		t.Errorf("no CPU profile written: %v", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Sustained json.RawMessage `json:"sustained"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("results are not JSON: %v\n%s", err, b)
	}
	checkSustained(t, got.Sustained)
}

// checkSustained checks the sustained section of the results: no error, each combination
// measured in every round, some webhooks accepted, and every accepted run finished (counted
// in flowd's database by the tool).
func checkSustained(t *testing.T, raw json.RawMessage) {
	t.Helper()
	var s Sustained
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("sustained: %v\n%s", err, raw)
	}
	if s.Error != "" {
		t.Errorf("sustained: %s", s.Error)
	}
	if len(s.Combos) == 0 || s.Rounds < 1 {
		t.Fatalf("sustained: no combination measured: %s", raw)
	}
	for _, c := range s.Combos {
		if len(c.Rounds) != s.Rounds {
			t.Errorf("sustained %d executors, %d clients: %d rounds, want %d", c.Executors, c.Clients, len(c.Rounds), s.Rounds)
		}
		for i, r := range c.Rounds {
			name := fmt.Sprintf("sustained %d executors, %d clients, round %d", c.Executors, c.Clients, i+1)
			if r.Error != "" {
				t.Errorf("%s: %s", name, r.Error)
			}
			if r.Answers.Accepted == 0 {
				t.Errorf("%s: no webhook accepted: %v", name, r.Answers.Statuses)
			}
			if !r.EveryFinished || r.Finished != int64(r.Answers.Accepted) || r.Succeeded != int64(r.Answers.Accepted) {
				t.Errorf("%s: %d accepted, %d finished, %d succeeded", name, r.Answers.Accepted, r.Finished, r.Succeeded)
			}
		}
	}
	if !s.Ingest.FlowdEvery {
		t.Errorf("sustained ingest: not every 202 is a run: %+v", s.Ingest)
	}
}

// checkContainers checks the containers section of the results: skipped only without a Docker
// daemon (and then failed under FLOWD_TEST_REQUIRE_ALL=1), else every load at every concurrency
// measured each of its runs and saw the value in each run's output, every job with image: ran
// in a container of its own, and the overhead is reported; never a time.
func checkContainers(t *testing.T, raw json.RawMessage) {
	t.Helper()
	var c Containers
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("containers: %v\n%s", err, raw)
	}
	if c.Skipped != "" {
		if os.Getenv(dockertest.EnvRequireAll) == "1" {
			t.Errorf("containers skipped (%s=1): %s", dockertest.EnvRequireAll, c.Skipped)
		} else {
			t.Logf("containers skipped: %s", c.Skipped)
		}
		return
	}
	if c.Error != "" {
		t.Errorf("containers: %s", c.Error)
	}
	loads := map[string]int{}
	for _, l := range c.Loads {
		loads[l.Load]++
		want := c.Rounds * c.RunsPerLoad
		if l.Runs != want || l.OutputOK != want {
			t.Errorf("containers %s, concurrency %d: %d runs measured, %d with the value in their output; want %d", l.Load, l.Concurrency, l.Runs, l.OutputOK, want)
		}
		if l.Load == loadImage && l.Containers < want {
			t.Errorf("containers %s, concurrency %d: %d containers started for %d jobs", l.Load, l.Concurrency, l.Containers, want)
		}
	}
	for _, name := range []string{loadFloor, loadImage, loadProcess} {
		if loads[name] != 2 {
			t.Errorf("containers: load %q measured at %d concurrencies, want 2 (1 and 2): %s", name, loads[name], raw)
		}
	}
	if len(c.Overhead) != 2 {
		t.Errorf("containers: overhead at %d concurrencies, want 2: %s", len(c.Overhead), raw)
	}
}

// TestReadyLog: the durations of the container executor's "container IMAGE ready in X" lines
// are read from the runs' logs however the writes split the lines; other lines are not.
func TestReadyLog(t *testing.T) {
	l := &readyLog{}
	log := "⬢ container flowd-test/busybox:1 ready in 312ms\n456\n" +
		"✔ step took 3s\n" +
		"⬢ container golang:1.26 ready in 1.3s\n" +
		"⬢ container x ready in soon\n"
	for i := 0; i < len(log); i += 7 { // lines split across writes, runes too
		l.Write([]byte(log[i:min(i+7, len(log))]))
	}
	r := l.result()
	if r.Lines != 2 || r.P50ms != 312 || r.P95ms != 1300 {
		t.Errorf("ready = %+v, want 2 lines, p50 312 ms, p95 1300 ms", r)
	}
	if l.bad != 1 {
		t.Errorf("lines without a duration = %d, want 1", l.bad)
	}
	if none := (&readyLog{}).result(); none.Lines != 0 || none.Note == "" {
		t.Errorf("no lines: %+v, want a note", none)
	}
}
