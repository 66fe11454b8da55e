package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/metrics"
	"github.com/flowd/flowd/internal/run"
)

type fakeStore struct {
	counts map[run.Status]int64
	depth  int64
	err    error
}

func (f fakeStore) RunCountsByStatus(ctx context.Context) (map[run.Status]int64, error) {
	return f.counts, f.err
}

func (f fakeStore) JobQueueDepth(ctx context.Context) (int64, error) { return f.depth, f.err }

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: status %d", rec.Code)
	}
	return rec.Body.String()
}

func wantLines(t *testing.T, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(text, "\n"+l+"\n") {
			t.Errorf("metrics lack the line %q", l)
		}
	}
}

func TestMiddlewareLabelsByPattern(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/runs/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "404" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "ok")
	})
	srv := httptest.NewServer(m.Middleware(mux))
	defer srv.Close()
	for _, path := range []string{"/api/v1/runs/1", "/api/v1/runs/2", "/api/v1/runs/404", "/nowhere"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	wantLines(t, scrape(t, m),
		`flowd_http_requests_total{code="200",route="GET /api/v1/runs/{id}"} 2`,
		`flowd_http_requests_total{code="404",route="GET /api/v1/runs/{id}"} 1`,
		`flowd_http_requests_total{code="404",route="unmatched"} 1`,
		`flowd_http_request_duration_seconds_count{route="GET /api/v1/runs/{id}"} 3`,
	)
}

func TestStoreGaugesAndSteps(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	if err := m.WatchStore(fakeStore{counts: map[run.Status]int64{run.Queued: 3, run.Success: 7}, depth: 2}); err != nil {
		t.Fatal(err)
	}
	m.StepDuration(run.Success, 1.5)
	m.StepDuration(run.Failed, 0.2)
	text := scrape(t, m)
	wantLines(t, text,
		`flowd_runs{status="queued"} 3`,
		`flowd_runs{status="success"} 7`,
		`flowd_runs{status="running"} 0`,
		`flowd_job_queue_depth 2`,
		`flowd_store_up 1`,
		`flowd_step_duration_seconds_count{status="success"} 1`,
		`flowd_step_duration_seconds_sum{status="failed"} 0.2`,
	)
	if !strings.Contains(text, "go_goroutines") {
		t.Error("the Go collector is missing")
	}
}

func TestStoreDown(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	if err := m.WatchStore(fakeStore{err: errors.New("down")}); err != nil {
		t.Fatal(err)
	}
	text := scrape(t, m)
	wantLines(t, text, `flowd_store_up 0`)
	if strings.Contains(text, "flowd_runs{") {
		t.Error("run gauges reported although the store is down")
	}
}

func TestNilMetrics(t *testing.T) {
	t.Parallel()
	var m *metrics.Metrics
	m.StepDuration(run.Success, 1)
	m.LeasesRenewed(1)
	m.LeasesExpired(1)
	m.Rescued(1)
	m.AttemptsLost(1)
	if err := m.WatchStore(fakeStore{}); err != nil {
		t.Fatal(err)
	}
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusTeapot {
		t.Fatalf("status %d", rec.Code)
	}
}

func TestLeaseCounters(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	// Every counter is on /metrics at 0 before anything happened, so a rate() has a series.
	wantLines(t, scrape(t, m),
		`flowd_leases_renewed_total 0`,
		`flowd_leases_expired_total 0`,
		`flowd_rescues_total 0`,
		`flowd_attempts_lost_total 0`,
	)
	m.LeasesRenewed(3)
	m.LeasesRenewed(2)
	m.LeasesExpired(1)
	m.Rescued(4)
	m.AttemptsLost(2)
	m.AttemptsLost(0)  // nothing lost: no change
	m.AttemptsLost(-1) // never counts down
	wantLines(t, scrape(t, m),
		`flowd_leases_renewed_total 5`,
		`flowd_leases_expired_total 1`,
		`flowd_rescues_total 4`,
		`flowd_attempts_lost_total 2`,
	)
}
