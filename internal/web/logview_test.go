package web_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAppJSDuration: durations read as 120 ms, 2.4 s, 3 m 05 s, 1 h 02 m; a run that took
// less than a second is never "0s".
func TestAppJSDuration(t *testing.T) {
	t.Parallel()
	b := runHelpers(t, `
const t0 = '2026-12-07T16:00:00.000Z';
const at = ms => new Date(Date.parse(t0) + ms).toISOString();
process.stdout.write(JSON.stringify([0, 120, 999, 1000, 2449, 2450, 59949, 59950, 185000, 3599499, 3720000, 90061000].map(ms => duration(t0, at(ms)))
  .concat([duration('', at(5)), duration(null, null)])));
`)
	var got []string
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("node printed %s: %v", b, err)
	}
	want := []string{"0 ms", "120 ms", "999 ms", "1.0 s", "2.4 s", "2.5 s", "59.9 s", "1 m 00 s", "3 m 05 s", "59 m 59 s", "1 h 02 m", "25 h 01 m", "", ""}
	if len(got) != len(want) {
		t.Fatalf("duration() = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("duration #%d = %q, want %q", i, got[i], want[i])
		}
	}
}

// TestLogModel runs logview.js's model in Node: chunks of two jobs that end mid-line, step
// headers matched to the job's steps in order (a step printing "▶ x" opens no group, a skipped
// step has its own), lines before the first header in group 0, run-wide line numbers in the
// order lines completed, colour state carried to the next line, progress bars (\r) and CRLF.
func TestLogModel(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join("static", "js", "logview.js"))
	if err != nil {
		t.Fatal(err)
	}
	model := string(src)
	model = model[:strings.Index(model, "// ---- the run page's log: the view")]
	b := runHelpers(t, model+`
const m = logModel();
const a = logJob(m, 7), c = logJob(m, 9);
logSteps(a, ['build', 'test', 'deploy']);
logSteps(c, ['lint']);
const chunks = [
  [7, 'checkout\n▶ bu'], [9, '▶ lint\nlint ok\n'], [7, 'ild\ncompil'], [7, 'ing\n▶ test\r\n'],
  [7, '\x1b[31mred\nstill red\x1b[0m\n'], [7, '▶ deploy-not\n▶ not-a-step\n'], [7, '10%\r50%\r100%\n'],
  [7, '✖ test: exit code 1 (2 s)\n○ deploy: skipped\n'], [0, 'the server stopped\n'], [7, 'tail without newline'],
];
chunks.forEach(([job, data], i) => logFeed(m, { seq: i + 1, job_id: job, at: '2026-12-07T16:00:0' + i + '.000Z', data }));
const before = a.raw.length;
logFinish(m);
const groups = jm => jm.groups.map(g => g.n ? jm.raw.slice(g.from, g.from + g.n) : []);
process.stdout.write(JSON.stringify({
  a: groups(a), c: groups(c), before, zero: m.jobs.get(0).raw,
  at: [a.at[1], a.at[2]],
  st: [a.st.has(4), a.st.has(5) && a.st.get(5).fg, a.st.has(6)],
  run: m.gJob.map((j, n) => j.id + ':' + m.gLine[n]).slice(0, 6),
  group: [logGroupOf(a, 0), logGroupOf(a, 2), logGroupOf(a, 8)],
  found: logSearch([c, a], 'RED').map(([j, i]) => j.id + ':' + i),
  strip: ansiStrip('\x1b[1;32mok\x1b[0m \x1b]0;title\x07done'),
}));
`)
	var out struct {
		A, C   [][]string
		Before int
		Zero   []string
		At     []string
		St     []any
		Run    []string
		Group  []int
		Found  []string
		Strip  string
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("node printed %s: %v", b, err)
	}
	wantA := [][]string{{"checkout"}, {"▶ build", "compiling"},
		{"▶ test", "\x1b[31mred", "still red\x1b[0m", "▶ deploy-not", "▶ not-a-step", "100%", "✖ test: exit code 1 (2 s)"},
		{"○ deploy: skipped", "tail without newline"}}
	if fmt.Sprint(out.A) != fmt.Sprint(wantA) {
		t.Errorf("job 7's groups = %q\nwant %q", out.A, wantA)
	}
	if fmt.Sprint(out.C) != fmt.Sprint([][]string{{}, {"▶ lint", "lint ok"}}) || fmt.Sprint(out.Zero) != "[the server stopped]" {
		t.Errorf("job 9's groups = %q, the run's lines %q", out.C, out.Zero)
	}
	if out.Before != 11 {
		t.Errorf("before the end, job 7 has %d lines; want 11 (the last one is still open)", out.Before)
	}
	if out.At[0] != "2026-12-07T16:00:00.000Z" || out.At[1] != "2026-12-07T16:00:02.000Z" {
		t.Errorf("a line's time is its first chunk's: %q", out.At)
	}
	if fmt.Sprint(out.St) != "[false 31 false]" {
		t.Errorf("colour state at lines 4, 5, 6 = %v; want red carried to line 5 only", out.St)
	}
	if fmt.Sprint(out.Run) != "[7:0 9:0 9:1 7:1 7:2 7:3]" {
		t.Errorf("run-wide lines = %v", out.Run)
	}
	if fmt.Sprint(out.Group) != "[0 1 2]" || fmt.Sprint(out.Found) != "[7:4 7:5]" {
		t.Errorf("logGroupOf = %v, logSearch = %v", out.Group, out.Found)
	}
	if out.Strip != "ok done" {
		t.Errorf("ansiStrip = %q", out.Strip)
	}
}
