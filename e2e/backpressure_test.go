package e2e

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestBackpressure over the real binary: with one executor busy, a pipeline at its queue bound
// (queue: {max_runs: 1}) answers 429 and the server at --max-queued-runs 503, each with
// Retry-After and a message saying how far behind flowd is; nothing is stored for them; the
// CLI shows the queue and bound (flowd pipeline show) and a refused redelivery with its
// Retry-After (flowd redeliver); once the queue drains, webhooks are accepted again; /metrics
// counts the refusals.
func TestBackpressure(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			// Each subtest's own: the other's clean-up must not kill this one's busy run.
			secs := 600 + rand.IntN(10000)
			marker := fmt.Sprintf("sleep %d", secs)
			t.Cleanup(func() { killProcesses(marker) })
			data, dsn := newDatabase(t, dialect)
			srv := startServer(t, data, dsn, "--executors", "1", "--max-queued-runs", "2")
			admin := srv.token("admin", adminPassword)
			hooks := map[string]string{}
			for name, extra := range map[string]string{"bp-own": "queue: {max_runs: 1, max_seconds: 3600}\n", "bp-any": ""} {
				if code := srv.api(admin, "POST", "/api/v1/pipelines", slowPipeline(name, secs)+extra, nil); code != 201 {
					t.Fatalf("create %s: %d", name, code)
				}
				var hook struct {
					URL string `json:"url"`
				}
				if code := srv.api(admin, "POST", "/api/v1/pipelines/"+name+"/triggers/webhook/enable", map[string]any{}, &hook); code != 200 {
					t.Fatalf("enable %s: %d", name, code)
				}
				hooks[name] = hook.URL
			}
			accept := func(name string) int64 {
				t.Helper()
				code, a, _ := post(t, hooks[name], `{}`)
				if code != 202 || a.Run == nil {
					t.Fatalf("webhook of %s: %d %+v; want 202", name, code, a.Error)
				}
				return a.Run.ID
			}
			refused := func(name string, status int, code, says string) {
				t.Helper()
				got, a, h := post(t, hooks[name], `{}`)
				if got != status || a.Error == nil || a.Error.Code != code || !strings.Contains(a.Error.Message, says) ||
					h.Get("Retry-After") == "" || a.Delivery != 0 {
					t.Fatalf("webhook of %s: %d %+v Retry-After %q delivery %d; want %d %s saying %q", name, got, a.Error, h.Get("Retry-After"), a.Delivery, status, code, says)
				}
			}

			first := accept("bp-own")
			waitFor(t, "the first run to take the one executor", func() bool { return srv.run(admin, first).Status == "running" })
			// Until the next count of the database (250 ms), the first run counts as queued.
			waitFor(t, "a second run of bp-own accepted once the first is counted as running", func() bool {
				code, _, _ := post(t, hooks["bp-own"], `{}`)
				return code == 202
			}) // waits: 1 queued
			refused("bp-own", 429, "pipeline_queue_full", "pipeline bp-own is 1 run")
			accept("bp-any") // 2 queued: the server's bound
			refused("bp-any", 503, "server_queue_full", "flowd is 2 runs")

			// The CLI: the queue and its bound in flowd pipeline show; a redelivery over a bound
			// is printed with its answer and Retry-After, and stores nothing (counted below).
			var show string
			waitFor(t, "flowd pipeline show bp-own to show its one waiting run", func() bool {
				out, _, code := srv.cli(admin, "pipeline", "show", "bp-own")
				show = out
				return code == 0 && strings.Contains(out, "\nQueue:       1 run waiting to start")
			})
			for _, want := range []string{
				// No run ended yet: the seconds of work are unknown, and that bound refuses nothing.
				"\nQueue:       1 run waiting to start (no run ended in the last minute: how long they take is unknown)\n",
				"\nQueue bound: 1 run or 3600 s of work (queue: in the YAML); webhooks over it get 429 + Retry-After\n",
			} {
				if !strings.Contains(show, want) {
					t.Errorf("flowd pipeline show bp-own lacks %q:\n%s", want, show)
				}
			}
			if out, _, code := srv.cli(admin, "pipeline", "show", "bp-any"); code != 0 ||
				!strings.Contains(out, "\nQueue:       1 run waiting to start (") ||
				!strings.Contains(out, "\nQueue bound: none of its own (queue: in the YAML); the server's (--max-queued-runs) still applies: 503\n") {
				t.Errorf("flowd pipeline show bp-any: exit %d:\n%s", code, out)
			}
			deliveries := func(name string) []int64 {
				t.Helper()
				var dl struct {
					Deliveries []struct {
						ID int64 `json:"id"`
					} `json:"deliveries"`
				}
				if code := srv.api(admin, "GET", "/api/v1/pipelines/"+name+"/deliveries", nil, &dl); code != 200 {
					t.Fatalf("deliveries of %s: %d", name, code)
				}
				ids := make([]int64, 0, len(dl.Deliveries))
				for _, d := range dl.Deliveries {
					ids = append(ids, d.ID)
				}
				return ids
			}
			for _, c := range []struct{ name, status, says string }{
				{"bp-own", "429 Too Many Requests\nerror:    429 pipeline_queue_full: pipeline bp-own is 1 run", "queue.max_runs in the pipeline's YAML"},
				{"bp-any", "503 Service Unavailable\nerror:    503 server_queue_full: flowd is 2 runs", "--max-queued-runs"},
			} {
				id := deliveries(c.name)[0]
				out, errOut, code := srv.cli(admin, "redeliver", fmt.Sprint(id))
				// No run ended lately: Retry-After is its most, 60 s (docs/api.md, "Backpressure").
				for _, want := range []string{
					fmt.Sprintf("delivery %d redelivered: refused, nothing was stored\nstatus:   %s", id, c.status), c.says,
					"\nretry:    send again after 60 s (Retry-After: 60)\nrun:      none\n", "\n  ✖ queue: ",
				} {
					if code != 1 || !strings.Contains(out, want) {
						t.Errorf("flowd redeliver %d (%s): exit %d, lacks %q:\n%s%s", id, c.name, code, want, out, errOut)
					}
				}
			}
			if ids := deliveries("bp-own"); len(ids) != 2 {
				t.Errorf("bp-own's deliveries: %d stored; want the 2 accepted only", len(ids))
			}

			// The queue drains: the bounds lift.
			var runs struct {
				Runs []runView `json:"runs"`
			}
			for _, name := range []string{"bp-own", "bp-any"} {
				srv.api(admin, "GET", "/api/v1/pipelines/"+name+"/runs", nil, &runs)
				for _, r := range runs.Runs {
					srv.api(admin, "POST", fmt.Sprintf("/api/v1/runs/%d/cancel", r.ID), nil, nil)
				}
			}
			waitFor(t, "a webhook accepted once the queue drained", func() bool {
				code, _, _ := post(t, hooks["bp-any"], `{}`)
				return code == 202
			})

			req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, want := range []string{`flowd_queue_refusals_total\{scope="pipeline"\} [1-9]`, `flowd_queue_refusals_total\{scope="server"\} [1-9]`, `flowd_queue_max_runs 2\n`} {
				if !regexp.MustCompile(want).Match(body) {
					t.Errorf("/metrics lacks %s", want)
				}
			}
		})
	}
}
