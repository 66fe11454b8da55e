package trigger

import (
	"context"
	"fmt"
	"math"
	"time"
)

// queueAnswer is the "queue" of a queue-full answer: how far behind flowd is, for programs.
type queueAnswer struct {
	Scope  string `json:"scope"` // "server" or "pipeline"
	Queued int64  `json:"queued"`
	// Seconds is the queued work at the recent rate; null when no run ended lately.
	Seconds    *int64 `json:"seconds"`
	MaxRuns    int    `json:"max_runs"`    // 0 = no bound
	MaxSeconds int    `json:"max_seconds"` // 0 = no bound
}

// queue refuses a delivery that would start a run while the pipeline's queue (queue: in its
// YAML; 429) or the server's (--max-queued-runs, --max-queue-seconds; 503) is over its bound.
// Such a delivery is not stored, like one over the rate limit: a flood that flowd cannot run
// does not fill the delivery log either. It is the last check before the run step stores the
// delivery, so only deliveries that would start a run meet it: skipped ones, refused ones
// and dry runs never do. Redeliveries do: they start runs like the deliveries they repeat.
func (w *Webhooks) queue(ctx context.Context, d *delivery) *Outcome {
	switch {
	case w.Queue == nil:
		return nil
	case d.in.DryRun:
		d.trace.Add("queue", true, "not bounded: a dry run starts nothing")
		return nil
	}
	server, pipe := w.Queue.Check(ctx, d.pipe.ID, d.def.Queue)
	if !server.Bounded() && !pipe.Bounded() {
		d.trace.Add("queue", true, "no queue bound is set")
		return nil
	}
	for _, q := range []Queue{pipe, server} {
		if over, wait := q.Over(); over {
			return w.queueFull(d, q, wait)
		}
	}
	d.trace.Add("queue", true, "%s runs queued for this pipeline (%s), %s on the server (%s)",
		count(pipe.Queued), bound(pipe), count(server.Queued), bound(server))
	return nil
}

// queueFull answers a delivery refused by q's bound, without storing it.
func (w *Webhooks) queueFull(d *delivery, q Queue, wait time.Duration) *Outcome {
	secs := int64(wait / time.Second)
	who, whose, code := "flowd", "this server's", CodeServerQueueFull
	if q.Scope == "pipeline" {
		who, whose, code = "pipeline "+d.pipe.Name, "its", CodePipelineQueueFull
	}
	msg := fmt.Sprintf("%s is %s behind, over %s bound of %s; nothing was stored: send again after %d s (Retry-After)",
		who, q.behind(), whose, overBound(q), secs)
	d.trace.Add("queue", false, "%s", msg)
	out := w.answerError(d, code, msg, nil)
	a := queueAnswer{Scope: q.Scope, Queued: q.Queued, MaxRuns: q.MaxRuns, MaxSeconds: q.MaxSeconds}
	if s, ok := q.Seconds(); ok {
		n := int64(math.Ceil(s))
		a.Seconds = &n
	}
	out.Body = withFields(out.Body, "queue", a)
	out.RetryAfter = wait
	return out
}

// overBound names the bound q is over, and where it is set.
func overBound(q Queue) string {
	where := map[string][2]string{
		"server":   {"--max-queued-runs", "--max-queue-seconds"},
		"pipeline": {"queue.max_runs in the pipeline's YAML", "queue.max_seconds in the pipeline's YAML"},
	}[q.Scope]
	if q.MaxRuns > 0 && q.Queued >= int64(q.MaxRuns) {
		return fmt.Sprintf("%s queued runs (%s)", count(int64(q.MaxRuns)), where[0])
	}
	return fmt.Sprintf("%s s of queued work (%s)", count(int64(q.MaxSeconds)), where[1])
}

// bound describes q's bounds for the trace: "bound 500 runs", "no bound".
func bound(q Queue) string {
	switch {
	case q.MaxRuns > 0 && q.MaxSeconds > 0:
		return fmt.Sprintf("bound %s runs or %s s of work", count(int64(q.MaxRuns)), count(int64(q.MaxSeconds)))
	case q.MaxRuns > 0:
		return fmt.Sprintf("bound %s runs", count(int64(q.MaxRuns)))
	case q.MaxSeconds > 0:
		return fmt.Sprintf("bound %s s of work", count(int64(q.MaxSeconds)))
	}
	return "no bound"
}
