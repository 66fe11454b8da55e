package api_test

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/api"
)

// TestWebhookAdmission: with every webhook slot taken and the waiting line full, a webhook is
// answered 503 unavailable with Retry-After: 1 at once; one that waits in line is answered the
// same after about a second; neither stores anything, and the request holding the slot still
// becomes a run once it goes on.
func TestWebhookAdmission(t *testing.T) {
	t.Parallel()
	entered, unblock := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	e := newEnv(t, "sqlite", func(s *api.Server) {
		s.MaxWebhooks = 1
		s.SetAdmittedHookForTest(func() {
			if calls.Add(1) == 1 { // the first request keeps the only slot until unblock
				close(entered)
				<-unblock
			}
		})
	})
	h := e.newHook("busy", nil)
	pid := e.pipelineID(h.pipeline)

	type result struct {
		status     int
		retryAfter string
		body       string
		took       time.Duration
		err        error
	}
	send := func() <-chan result {
		ch := make(chan result, 1)
		go func() {
			start := time.Now()
			resp, err := http.Post(e.srv.URL+"/pipeline/webhook/"+h.token, "application/json", strings.NewReader(`{"abc":"x"}`))
			if err != nil {
				ch <- result{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			ch <- result{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(b),
				took: time.Since(start), err: err}
		}()
		return ch
	}

	first := send()
	select {
	case <-entered:
	case r := <-first:
		t.Fatalf("the first webhook was answered before it reached the hook: %+v", r)
	}
	// Two more: one waits in line (capacity 1) and gives up after a second, the other finds the
	// line full and is refused at once. Which is which is up to the scheduler.
	a, b := send(), send()
	var took []time.Duration
	for _, ch := range []<-chan result{a, b} {
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.status != http.StatusServiceUnavailable || r.retryAfter != "1" ||
			!strings.Contains(r.body, `"code":"unavailable"`) || !strings.Contains(r.body, "nothing was accepted") {
			t.Errorf("busy answer = %d Retry-After %q %s; want 503 unavailable, Retry-After 1", r.status, r.retryAfter, r.body)
		}
		took = append(took, r.took)
	}
	// Only the server's own wait is asserted (a lower bound, which load cannot break): the
	// request that waited in line was refused after about 1 s, the other one before it.
	if fast, slow := min(took[0], took[1]), max(took[0], took[1]); slow < 900*time.Millisecond || fast >= slow {
		t.Errorf("refusals took %v and %v; want one at once and one after about 1 s", fast, slow)
	}
	if n := countStored(t, e, pid); n != 0 {
		t.Errorf("%d deliveries stored while busy, want 0", n)
	}

	close(unblock)
	if r := <-first; r.err != nil || r.status != http.StatusAccepted {
		t.Fatalf("the admitted webhook = %+v, want 202", r)
	}
	if n := countStored(t, e, pid); n != 1 {
		t.Errorf("%d deliveries stored, want 1 (the admitted one)", n)
	}
	if rs := e.runs(h.pipeline); len(rs) != 1 {
		t.Errorf("%d runs, want 1", len(rs))
	}
	// A free slot admits again.
	if r := <-send(); r.status != http.StatusAccepted {
		t.Errorf("after the slot was freed: %d %s, want 202", r.status, r.body)
	}
	m := e.call("GET", "/metrics", "", nil)
	if want := `flowd_webhook_deliveries_total{code="unavailable",pipeline=""} 2`; !strings.Contains(string(m.Body), want) {
		t.Errorf("metrics lack %s", want)
	}
	if want := `code="503"`; !strings.Contains(string(m.Body), want) {
		t.Errorf("metrics lack a request counted %s", want)
	}
}

func countStored(t *testing.T, e *env, pipelineID int64) int {
	t.Helper()
	ds, err := e.st.DeliveryList(t.Context(), pipelineID, 200, 0)
	if err != nil {
		t.Fatal(err)
	}
	return len(ds)
}
