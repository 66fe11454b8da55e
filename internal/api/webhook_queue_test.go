package api_test

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/api"
	"github.com/flowd/flowd/internal/trigger"
)

// withBacklog gives the server a queue bound of maxRuns queued runs (0 = none), counted again
// every `every`.
func withBacklog(maxRuns int, every time.Duration) func(*api.Server) {
	return func(s *api.Server) {
		s.Queue = &trigger.Backlog{Store: s.Store, MaxRuns: maxRuns, Every: every, Logger: s.Logger}
	}
}

// setYAML replaces the definition of h's pipeline with testDefinition plus extra top-level
// YAML.
func (e *env) setYAML(h hookFixture, extra string) {
	e.t.Helper()
	if r := e.yaml("PUT", "/api/v1/pipelines/"+h.pipeline, h.owner.Token, testDefinition(h.pipeline)+extra); r.Status != http.StatusOK {
		e.t.Fatalf("PUT %s with %q: %s", h.pipeline, extra, r)
	}
}

// queueAnswer is the error and queue of a queue-full answer.
type queueFull struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Delivery int64 `json:"delivery"`
	Queue    *struct {
		Scope      string `json:"scope"`
		Queued     int64  `json:"queued"`
		Seconds    *int64 `json:"seconds"`
		MaxRuns    int    `json:"max_runs"`
		MaxSeconds int    `json:"max_seconds"`
	} `json:"queue"`
}

// wantQueueFull checks that r is a queue-full refusal of status and code, with a Retry-After
// of retry seconds (0 = any from 1 to 60), a message holding each of says, and nothing stored.
func wantQueueFull(t *testing.T, what string, r response, status int, code string, retry int, says ...string) queueFull {
	t.Helper()
	var a queueFull
	r.json(t, &a)
	if r.Status != status || a.Error.Code != code || a.Queue == nil {
		t.Fatalf("%s: %s; want %d %s with a queue", what, r, status, code)
	}
	ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 60 || (retry != 0 && ra != retry) {
		t.Errorf("%s: Retry-After %q, want %d (1 to 60 s)", what, r.Header.Get("Retry-After"), retry)
	}
	if want := "send again after " + strconv.Itoa(ra) + " s (Retry-After)"; !strings.Contains(a.Error.Message, want) {
		t.Errorf("%s: message %q does not say %q", what, a.Error.Message, want)
	}
	for _, s := range append(says, "nothing was stored") {
		if !strings.Contains(a.Error.Message, s) {
			t.Errorf("%s: message %q does not say %q", what, a.Error.Message, s)
		}
	}
	if a.Delivery != 0 {
		t.Errorf("%s: the refusal names delivery %d; nothing should be stored", what, a.Delivery)
	}
	return a
}

// TestWebhookQueueBounds: over the pipeline's queue.max_runs a delivery is answered 429
// pipeline_queue_full, over the server's --max-queued-runs 503 server_queue_full, each with
// Retry-After and a message saying how far behind flowd is; nothing is stored for it, and
// every 202 is a run. Dry runs and skipped deliveries are not refused; redeliveries are. The
// bound lifts once the queue drains.
func TestWebhookQueueBounds(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, withBacklog(5, time.Nanosecond)) // counted at every delivery
		p := e.newHook("qp", nil)
		e.setYAML(p, "queue: {max_runs: 3}\n")
		accepted := map[int64]bool{}
		accept := func(h hookFixture, body string) hookAnswer {
			t.Helper()
			r := e.hook(h.token, "application/json", body)
			a := r.answer(t)
			if r.Status != http.StatusAccepted || a.Run == nil {
				t.Fatalf("%s: %s; want 202 and a run", h.pipeline, r)
			}
			accepted[a.Run.ID] = true
			return a
		}
		first := accept(p, `{"abc":"1"}`)
		accept(p, `{"abc":"2"}`)
		if tr := first.Trace; len(tr) < 2 || tr[len(tr)-2].Step != "queue" || !tr[len(tr)-2].OK ||
			!strings.Contains(tr[len(tr)-2].Detail, "queued for this pipeline (bound 3 runs)") {
			t.Errorf("an accepted delivery's queue step: %+v", tr)
		}
		accept(p, `{"abc":"3"}`)
		deliveries, runs := len(e.deliveries("qp")), len(e.runs("qp"))

		// The pipeline's queue holds 3 runs: its bound.
		r := e.hook(p.token, "application/json", `{"abc":"4"}`)
		q := wantQueueFull(t, "over queue.max_runs", r, http.StatusTooManyRequests, "pipeline_queue_full", 60,
			"pipeline qp is 3 runs (no run ended in the last minute", "over its bound of 3 queued runs (queue.max_runs in the pipeline's YAML)")
		if q.Queue.Scope != "pipeline" || q.Queue.Queued != 3 || q.Queue.MaxRuns != 3 || q.Queue.Seconds != nil {
			t.Errorf("queue = %+v", *q.Queue)
		}
		// The pipeline's JSON shows the bound and the queue.
		var pj struct {
			Queue struct {
				MaxRuns    int    `json:"max_runs"`
				MaxSeconds int    `json:"max_seconds"`
				Queued     *int64 `json:"queued"`
				Seconds    *int64 `json:"seconds"`
			} `json:"queue"`
		}
		e.call("GET", "/api/v1/pipelines/qp", p.owner.Token, nil).json(t, &pj)
		if q := pj.Queue; q.MaxRuns != 3 || q.MaxSeconds != 0 || q.Queued == nil || *q.Queued != 3 || q.Seconds != nil {
			t.Errorf("the pipeline's queue = %+v; want max_runs 3, queued 3, no seconds", q)
		}
		// A redelivery starts a run, so it is bounded too.
		r = e.call("POST", "/api/v1/deliveries/"+itoa(e.deliveries("qp")[0].ID)+"/redeliver", p.owner.Token, nil)
		wantQueueFull(t, "a redelivery", r, http.StatusTooManyRequests, "pipeline_queue_full", 60)
		// A dry run starts nothing: not bounded.
		if r := e.hookPath("/pipeline/webhook/"+p.token+"?dry_run=1", "application/json", `{}`); r.Status != http.StatusOK || !r.answer(t).WouldStart {
			t.Errorf("a dry run over the bound: %s; want 200 would_start", r)
		}
		if got := len(e.deliveries("qp")); got != deliveries+1 { // the dry run
			t.Errorf("%d deliveries after two refusals and a dry run, want %d", got, deliveries+1)
		}
		if got := len(e.runs("qp")); got != runs {
			t.Errorf("%d runs after the refusals, want %d", got, runs)
		}

		// A pipeline with a filter: a skipped delivery starts nothing, so it is not refused even
		// with the server full.
		f := e.newHook("qf", nil)
		e.setYAML(f, "webhook: {filter: 'body.go == true'}\n")
		accept(f, `{"go":true}`)
		accept(f, `{"go":true}`) // 5 queued on the server: its bound
		if r := e.hook(f.token, "application/json", `{"go":false}`); r.Status != http.StatusOK || r.answer(t).Skipped == nil {
			t.Errorf("a skipped delivery with the server full: %s; want 200 skipped", r)
		}
		before := len(e.deliveries("qf"))
		r = e.hook(f.token, "application/json", `{"go":true}`)
		q = wantQueueFull(t, "over --max-queued-runs", r, http.StatusServiceUnavailable, "server_queue_full", 60,
			"flowd is 5 runs", "over this server's bound of 5 queued runs (--max-queued-runs)")
		if q.Queue.Scope != "server" || q.Queue.Queued != 5 || q.Queue.MaxRuns != 5 {
			t.Errorf("queue = %+v", *q.Queue)
		}
		if got := len(e.deliveries("qf")); got != before {
			t.Errorf("%d deliveries after the 503, want %d", got, before)
		}

		// Every 202 is a run, and only those.
		for _, name := range []string{"qp", "qf"} {
			for _, run := range e.runs(name) {
				if !accepted[run.ID] {
					t.Errorf("run %d of %s was not answered 202", run.ID, name)
				}
				delete(accepted, run.ID)
			}
		}
		if len(accepted) > 0 {
			t.Errorf("runs answered 202 but not stored: %v", accepted)
		}

		// The queue drains (two runs of qp end): the bounds lift, and the refusal now says how
		// long the queue takes at the rate runs ended.
		for _, run := range e.runs("qp")[:2] {
			if r := e.call("POST", "/api/v1/runs/"+itoa(run.ID)+"/cancel", p.owner.Token, nil); r.Status != http.StatusOK {
				t.Fatalf("cancel run %d: %s", run.ID, r)
			}
		}
		accept(p, `{"abc":"5"}`) // 2 in qp, 4 on the server
		accept(f, `{"go":true}`) // 5 on the server
		r = e.hook(p.token, "application/json", `{"abc":"6"}`)
		q = wantQueueFull(t, "full again", r, http.StatusServiceUnavailable, "server_queue_full", 0,
			"flowd is 5 runs (about ", " s of work) behind")
		if q.Queue.Seconds == nil || *q.Queue.Seconds < 1 {
			t.Errorf("queue = %+v; want seconds of work once runs ended", *q.Queue)
		}

		m := e.call("GET", "/metrics", testMetricsToken, nil)
		for _, want := range []string{
			`flowd_queue_refusals_total{scope="pipeline"} 2`,
			`flowd_queue_refusals_total{scope="server"} 2`,
			`flowd_webhook_deliveries_total{code="pipeline_queue_full",pipeline="qp"} 2`,
		} {
			if !strings.Contains(string(m.Body), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

// TestWebhookQueueSeconds: a pipeline's queue.max_seconds refuses once its queue is that many
// seconds of work at the rate its runs ended; with no run ended it does not refuse.
func TestWebhookQueueSeconds(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, withBacklog(0, time.Nanosecond))
		h := e.newHook("qsec", nil)
		e.setYAML(h, "queue: {max_seconds: 1}\n")
		for i := range 3 { // nothing ended: the seconds cannot be estimated, so no refusal
			if r := e.hook(h.token, "application/json", `{}`); r.Status != http.StatusAccepted {
				t.Fatalf("delivery %d with nothing ended: %s; want 202", i, r)
			}
		}
		// One run ends: the rate is at most a run a second, so the 2 queued are 2 s or more.
		if r := e.call("POST", "/api/v1/runs/"+itoa(e.runs("qsec")[0].ID)+"/cancel", h.owner.Token, nil); r.Status != http.StatusOK {
			t.Fatal(r)
		}
		r := e.hook(h.token, "application/json", `{}`)
		q := wantQueueFull(t, "over queue.max_seconds", r, http.StatusTooManyRequests, "pipeline_queue_full", 0,
			"pipeline qsec is 2 runs (about ", "over its bound of 1 s of queued work (queue.max_seconds in the pipeline's YAML)")
		if q.Queue.Seconds == nil || *q.Queue.Seconds < 2 || q.Queue.MaxSeconds != 1 {
			t.Errorf("queue = %+v", *q.Queue)
		}
	})
}

// TestWebhookQueueNoBound: bounds of 0 are no bounds: nothing is counted or refused.
func TestWebhookQueueNoBound(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, withBacklog(0, time.Nanosecond))
		h := e.newHook("qnone", nil)
		e.setYAML(h, "queue: {max_runs: 0, max_seconds: 0}\n")
		for i := range 4 {
			r := e.hook(h.token, "application/json", `{}`)
			a := r.answer(t)
			if r.Status != http.StatusAccepted {
				t.Fatalf("delivery %d: %s; want 202", i, r)
			}
			if st := a.Trace[len(a.Trace)-2]; st.Step != "queue" || st.Detail != "no queue bound is set" {
				t.Fatalf("delivery %d: queue step %+v", i, st)
			}
		}
	})
}

// TestWebhookQueueBetweenCounts: between two counts of the database, the runs this server
// accepted count too, so a burst cannot run past the bound before the next count.
func TestWebhookQueueBetweenCounts(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, withBacklog(0, time.Hour)) // counted at the first delivery only
		h := e.newHook("qsoft", nil)
		e.setYAML(h, "queue: {max_runs: 2}\n")
		var status []int
		for range 4 {
			status = append(status, e.hook(h.token, "application/json", `{}`).Status)
		}
		if want := []int{202, 202, 429, 429}; !slices.Equal(status, want) || len(e.runs("qsoft")) != 2 {
			t.Fatalf("statuses %v, %d runs; want %v and 2 runs", status, len(e.runs("qsoft")), want)
		}
	})
}
