package e2e

import (
	"regexp"
	"strings"
	"testing"
)

// TestJobLogLimit runs a step that prints 50 MiB under a 1 MiB --max-job-log: the job succeeds,
// and its stored log is the first and last half MiB with the limit's notice and marker between
// them, with a secret printed on both sides of the cut masked.
func TestJobLogLimit(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			data, dsn := newDatabase(t, dialect)
			srv := startServer(t, data, dsn, "--max-job-log", "1MiB")
			tok := srv.token("admin", adminPassword)
			const pipeline = `name: loud
variables:
  TOKEN:
    secret: true
    default: hunter2-s3cr3t
stages:
  - name: build
    jobs:
      - name: print
        steps:
          - name: flood
            run: |
              echo "FIRST-LINE $TOKEN"
              yes "$TOKEN and more" | head -n 2200000  # 50 MiB
              echo "LAST-LINE $TOKEN"
`
			if _, errOut, code := srv.cliIn(tok, pipeline, "pipeline", "apply", "-f", "-"); code != 0 {
				t.Fatalf("apply: %s", errOut)
			}
			out, errOut, code := srv.cli(tok, "run", "loud", "--follow")
			if code != 0 {
				t.Fatalf("run --follow: exit %d\n%.2000s\n%s", code, out, errOut)
			}
			id := runID(t, out)
			if r := srv.run(tok, id); r.Status != "success" || r.Stages[0].Jobs[0].Status != "success" {
				t.Fatalf("a job past its log limit must go on and succeed: %+v", r)
			}
			log := srv.log(tok, id)
			t.Logf("stored log: %d bytes", len(log))
			if len(log) > 1<<20+2048 {
				t.Errorf("the stored log is %d bytes, want at most the 1 MiB limit and its two notes", len(log))
			}
			if i := strings.Index(log, "hunter2"); i >= 0 {
				t.Errorf("the secret is in the log: %q", log[max(0, i-100):min(len(log), i+100)])
			}
			for _, want := range []string{"FIRST-LINE ***", "LAST-LINE ***", "*** and more\n",
				"✂ the job's log reached half its limit of 1 MiB (--max-job-log)"} {
				if !strings.Contains(log, want) {
					t.Errorf("the log lacks %q", want)
				}
			}
			marker := regexp.MustCompile(`\n✂ 2\d MiB of log dropped: the job's log is limited to 1 MiB \(--max-job-log\); the last 5\d\d KiB follow\n`)
			if !marker.MatchString(log) {
				t.Errorf("no marker saying about 26 MiB (50 MiB masked) were dropped in the log's middle:\n%.600s", log[len(log)/2-300:])
			}
			if f, l := strings.Index(log, "FIRST-LINE"), strings.Index(log, "LAST-LINE"); f < 0 || l < f || !strings.Contains(log[l:], "✔") {
				t.Errorf("head, tail and the step's result line are not in order")
			}
		})
	}
}
