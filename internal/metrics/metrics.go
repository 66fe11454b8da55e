// Package metrics holds flowd's Prometheus metrics in one registry owned by a Metrics value (no
// global registry, no package state): HTTP requests by route pattern, step durations reported
// by the scheduler, and, read from the store at scrape time, runs by status and the job queue
// depth; the queue the webhook's bounds see and their refusals (see WatchQueue); the leases,
// rescues and lost attempts of jobs (see LeasesRenewed); plus the Go runtime and process
// collectors.
//
// Every method is safe on a nil *Metrics and then does nothing, so metrics may be left out of
// tests and tools.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flowd/flowd/internal/commitstatus"
	"github.com/flowd/flowd/internal/run"
)

// Metrics is flowd's set of metrics and the registry that serves them.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	steps    *prometheus.HistogramVec
	// deliveries counts webhook deliveries by pipeline and outcome code; runLatency times a
	// delivery from its request to its committed run.
	deliveries *prometheus.CounterVec
	runLatency prometheus.Histogram
	// queueRefusals counts webhook deliveries refused by a queue bound, by scope (server,
	// pipeline); see WatchQueue for the queue itself.
	queueRefusals *prometheus.CounterVec
	// Job attempt leases (see LeasesRenewed): counters without labels, so each series exists,
	// at 0, from the start and an alert on its rate needs no absent().
	leasesRenewed prometheus.Counter
	leasesExpired prometheus.Counter
	rescues       prometheus.Counter
	attemptsLost  prometheus.Counter
	// commitStatuses counts attempts to report a run's state to its code host, by host kind
	// and result (sent, retry, failed).
	commitStatuses *prometheus.CounterVec
}

// CommitStatusResults are the results CommitStatusReport counts: sent (the host accepted
// it), retry (no answer, or one that may change: tried again later), failed (the host refused
// it for good, or it was given up).
var CommitStatusResults = []string{"sent", "retry", "failed"}

// New returns the metrics with the Go and process collectors registered.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowd_http_requests_total",
			Help: "HTTP requests answered, by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flowd_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern (log follows last as long as the run).",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flowd_step_duration_seconds",
			Help:    "Run time of finished steps, by final status.",
			Buckets: []float64{0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600},
		}, []string{"status"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowd_webhook_deliveries_total",
			Help: "Webhook deliveries answered, by pipeline (empty for unknown tokens) and outcome code (started, dry_run, replayed, or the error code).",
		}, []string{"pipeline", "code"}),
		runLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "flowd_webhook_run_latency_seconds",
			Help:    "Time from a webhook request's arrival to its run being committed to the database.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}),
		queueRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowd_queue_refusals_total",
			Help: "Webhook deliveries refused because queued work was over a bound, by scope: server (503, --max-queued-runs, --max-queue-seconds) or pipeline (429, queue: in its YAML). Nothing was stored for them.",
		}, []string{"scope"}),
		leasesRenewed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowd_leases_renewed_total",
			Help: "Job attempt leases this server renewed (one per attempt per heartbeat).",
		}),
		leasesExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowd_leases_expired_total",
			Help: "Job attempt leases this server's rescuer found expired (their runner stopped renewing them).",
		}),
		rescues: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowd_rescues_total",
			Help: "Job attempts this server rescued: expired leases swept as leader, and its previous instance's attempts at start.",
		}),
		attemptsLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowd_attempts_lost_total",
			Help: "Job attempts this server marked lost (the job then failed with runner_lost, was retried, or ended canceled).",
		}),
		commitStatuses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowd_commit_status_reports_total",
			Help: "Attempts to report a run's state to the code host of its commit, by host kind and result: sent, retry (tried again later) or failed (refused for good, or given up after 24 hours).",
		}, []string{"host", "result"}),
	}
	m.reg.MustRegister(
		m.requests, m.duration, m.steps, m.deliveries, m.runLatency, m.queueRefusals,
		m.leasesRenewed, m.leasesExpired, m.rescues, m.attemptsLost, m.commitStatuses,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	for _, scope := range []string{"server", "pipeline"} { // each series exists, at 0, from the start
		m.queueRefusals.WithLabelValues(scope)
	}
	for _, host := range commitstatus.Hosts {
		for _, result := range CommitStatusResults {
			m.commitStatuses.WithLabelValues(host, result)
		}
	}
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Unmatched is the route label of requests no route pattern matched.
const Unmatched = "unmatched"

// Middleware counts and times the requests next answers, labelled by the pattern of the
// http.ServeMux route that served them. next must be (or end in) the ServeMux, called with the
// same *http.Request: the mux sets r.Pattern on it while routing, and it is read afterwards.
// Panics must be recovered inside next (and answered 500) to be counted.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			route := r.Pattern
			if route == "" {
				route = Unmatched
			}
			code := sw.status
			if code == 0 {
				code = http.StatusOK
			}
			m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
			m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(sw, r)
	})
}

// StepDuration records a finished step: its final status and how long it ran. The scheduler or
// executor calls it when a step ends.
func (m *Metrics) StepDuration(status run.Status, seconds float64) {
	if m == nil {
		return
	}
	m.steps.WithLabelValues(string(status)).Observe(seconds)
}

// WebhookDelivery counts a webhook delivery of pipeline ("" when the token is unknown) by its
// outcome code: "started", "dry_run", "replayed", or the error code it was refused with.
func (m *Metrics) WebhookDelivery(pipeline, code string) {
	if m == nil {
		return
	}
	m.deliveries.WithLabelValues(pipeline, code).Inc()
}

// CommitStatusReport counts an attempt to report a commit status to a host of kind host
// (commitstatus.GitHub, …) with result, one of CommitStatusResults.
func (m *Metrics) CommitStatusReport(host, result string) {
	if m != nil {
		m.commitStatuses.WithLabelValues(host, result).Inc()
	}
}

// QueueRefused counts a webhook delivery refused by a queue bound of scope ("server" or
// "pipeline").
func (m *Metrics) QueueRefused(scope string) {
	if m == nil {
		return
	}
	m.queueRefusals.WithLabelValues(scope).Inc()
}

// WebhookRunLatency records how long a delivery took from its request to its committed run.
func (m *Metrics) WebhookRunLatency(d time.Duration) {
	if m == nil {
		return
	}
	m.runLatency.Observe(d.Seconds())
}

// LeasesRenewed counts n job attempt leases renewed by one heartbeat of this server's runners.
func (m *Metrics) LeasesRenewed(n int) {
	if m != nil {
		addCount(m.leasesRenewed, n)
	}
}

// LeasesExpired counts n attempts whose lease the rescuer found expired.
func (m *Metrics) LeasesExpired(n int) {
	if m != nil {
		addCount(m.leasesExpired, n)
	}
}

// Rescued counts n attempts rescued: by the leader's sweep of expired leases, or at start, the
// attempts this node's previous instance left.
func (m *Metrics) Rescued(n int) {
	if m != nil {
		addCount(m.rescues, n)
	}
}

// AttemptsLost counts n attempts marked lost.
func (m *Metrics) AttemptsLost(n int) {
	if m != nil {
		addCount(m.attemptsLost, n)
	}
}

// addCount adds n to c when it is positive: a counter only goes up.
func addCount(c prometheus.Counter, n int) {
	if n > 0 {
		c.Add(float64(n))
	}
}

// Store is what the metrics read from the store at scrape time.
type Store interface {
	RunCountsByStatus(ctx context.Context) (map[run.Status]int64, error)
	JobQueueDepth(ctx context.Context) (int64, error)
}

// ScrapeTimeout bounds the store queries of one scrape.
const ScrapeTimeout = 2 * time.Second

// WatchStore adds the store's gauges (runs by status, queued jobs ready to run) to the metrics;
// they are read at each scrape. Call it once.
func (m *Metrics) WatchStore(s Store) error {
	if m == nil {
		return nil
	}
	return m.reg.Register(&storeCollector{store: s, timeout: ScrapeTimeout})
}

var (
	runsDesc = prometheus.NewDesc("flowd_runs",
		"Runs in the database, by status.", []string{"status"}, nil)
	queueDesc = prometheus.NewDesc("flowd_job_queue_depth",
		"Queued jobs whose stage may run now (waiting for an executor).", nil, nil)
	upDesc = prometheus.NewDesc("flowd_store_up",
		"1 when the last scrape could read the database, else 0.", nil, nil)
)

// storeCollector reads the store's gauges at scrape time.
type storeCollector struct {
	store   Store
	timeout time.Duration
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- runsDesc
	ch <- queueDesc
	ch <- upDesc
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	up := 1.0
	counts, err := c.store.RunCountsByStatus(ctx)
	if err != nil {
		up = 0
	} else {
		// Every status is reported, 0 included, so a series does not vanish when it empties.
		for _, s := range []run.Status{run.Queued, run.Running, run.Success, run.Failed, run.Canceled} {
			ch <- prometheus.MustNewConstMetric(runsDesc, prometheus.GaugeValue, float64(counts[s]), string(s))
		}
	}
	depth, err := c.store.JobQueueDepth(ctx)
	if err != nil {
		up = 0
	} else {
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(depth))
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up)
}

// Queue is the server's queue of runs as the webhook's bounds see it (trigger.Backlog).
type Queue struct {
	Queued int64 // runs waiting to start, across every server on the database
	// Seconds is the queued work at the rate runs ended lately; unknown (not reported) when
	// SecondsKnown is false: no run ended within the last minute.
	Seconds      float64
	SecondsKnown bool
	MaxRuns      int // --max-queued-runs; 0 = no bound
	MaxSeconds   int // --max-queue-seconds; 0 = no bound
}

// WatchQueue adds the gauges of the server's queue and its bounds, read from queue at each
// scrape. Call it once.
func (m *Metrics) WatchQueue(queue func(ctx context.Context) Queue) error {
	if m == nil {
		return nil
	}
	return m.reg.Register(&queueCollector{queue: queue, timeout: ScrapeTimeout})
}

var (
	queuedDesc = prometheus.NewDesc("flowd_queue_runs",
		"Runs waiting to start across every server on the database, as the webhook's queue bounds count them (refreshed at most every 250 ms, plus this server's intake since).", nil, nil)
	queueSecondsDesc = prometheus.NewDesc("flowd_queue_seconds",
		"Seconds of queued work at the rate runs ended in the last minute; absent when none ended.", nil, nil)
	queueMaxRunsDesc = prometheus.NewDesc("flowd_queue_max_runs",
		"The server's bound on queued runs (--max-queued-runs); 0 = no bound.", nil, nil)
	queueMaxSecondsDesc = prometheus.NewDesc("flowd_queue_max_seconds",
		"The server's bound on seconds of queued work (--max-queue-seconds); 0 = no bound.", nil, nil)
)

// queueCollector reads the queue's gauges at scrape time.
type queueCollector struct {
	queue   func(ctx context.Context) Queue
	timeout time.Duration
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queuedDesc
	ch <- queueSecondsDesc
	ch <- queueMaxRunsDesc
	ch <- queueMaxSecondsDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	q := c.queue(ctx)
	ch <- prometheus.MustNewConstMetric(queuedDesc, prometheus.GaugeValue, float64(q.Queued))
	if q.SecondsKnown {
		ch <- prometheus.MustNewConstMetric(queueSecondsDesc, prometheus.GaugeValue, q.Seconds)
	}
	ch <- prometheus.MustNewConstMetric(queueMaxRunsDesc, prometheus.GaugeValue, float64(q.MaxRuns))
	ch <- prometheus.MustNewConstMetric(queueMaxSecondsDesc, prometheus.GaugeValue, float64(q.MaxSeconds))
}

// statusWriter remembers the status code written. Unwrap lets http.ResponseController reach
// the underlying writer (Flush, deadlines) through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
