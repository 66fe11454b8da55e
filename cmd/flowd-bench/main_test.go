package main

import (
	"bytes"
	"encoding/json"
	"github.com/flowd/flowd/internal/executor"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowd/flowd/internal/store/storetest"
)

// TestQuick runs the tool in --quick mode and checks only that it completes and writes valid
// JSON with every section present: numbers on a shared test machine prove nothing, so none is
// asserted. PostgreSQL is used when FLOWD_TEST_DATABASE_URL names one.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == executor.ShimCommand { // in-process flowd's step shim
		executor.RunShim(os.Args[2:])
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
		"durability", "overload", "trigger_to_start", "end_to_end", "two_servers", "scale", "idle"} {
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
}
