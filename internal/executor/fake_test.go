package executor

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
)

func TestFake(t *testing.T) {
	t.Parallel()
	steps := func(scripts ...string) []Step {
		var s []Step
		for i, sc := range scripts {
			s = append(s, Step{ID: int64(i + 1), Name: sc, Script: sc})
		}
		return s
	}
	tests := []struct {
		name    string
		job     Job
		cancel  bool
		status  run.Status
		out     string
		events  []string
		message string
	}{
		{"success", Job{Steps: steps("echo a", "sleep 1ms")}, false, run.Success,
			"echo a\nsleep 1ms\n", []string{"1:running", "1:success:0", "2:running", "2:success:0"}, ""},
		{"checkout", Job{Checkout: &Checkout{URL: "https://git.example/x.git", SHA: "0123456789abcdef0123456789abcdef01234567"}, Steps: steps("echo a")}, false, run.Success,
			"checkout 0123456789abcdef0123456789abcdef01234567\necho a\n", []string{"1:running", "1:success:0"}, ""},
		{"false fails", Job{Steps: steps("false", "echo b")}, false, run.Failed,
			"false\n", []string{"1:running", "1:failed:1", "2:skipped"}, `step "false" failed: exit code 1`},
		// The timeout leaves the first step time to start on a loaded machine (with 10 ms it
		// sometimes ran out before, and both steps were skipped).
		{"timeout", Job{Steps: steps("sleep 600", "echo b"), Timeout: 500 * time.Millisecond}, false, run.Failed,
			"sleep 600\n", []string{"1:running", "1:failed", "2:skipped"}, "job timed out after 500ms"},
		{"cancel", Job{Steps: steps("sleep 10m", "echo b")}, true, run.Canceled,
			"sleep 10m\n", []string{"1:running", "1:canceled", "2:skipped"}, "job canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out syncBuffer
			rep := &recorder{t: t}
			if tt.cancel {
				go func() {
					// cancel once the sleeping step has started
					for len(rep.get()) == 0 {
						time.Sleep(time.Millisecond)
					}
					cancel()
				}()
			}
			var f Fake
			res := f.Run(ctx, tt.job, &out, rep)
			if res.Status != tt.status || res.Message != tt.message {
				t.Errorf("result %+v, want %s %q", res, tt.status, tt.message)
			}
			if out.String() != tt.out {
				t.Errorf("output %q, want %q", out.String(), tt.out)
			}
			if got := rep.get(); !slices.Equal(got, tt.events) {
				t.Errorf("events %v, want %v", got, tt.events)
			}
			f.Cleanup(ctx, Job{JobID: 7})
			f.Cleanup(ctx, Job{JobID: 7})
			if f.Cleaned(7) != 2 || f.Cleaned(8) != 0 {
				t.Errorf("cleaned %d %d", f.Cleaned(7), f.Cleaned(8))
			}
		})
	}
}
