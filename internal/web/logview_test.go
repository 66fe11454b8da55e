package web_test

import (
	"encoding/json"
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
