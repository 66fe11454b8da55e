package api_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/api"
	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/run"
)

// eventStream is an open GET /api/v1/events, read line by line in the background.
type eventStream struct {
	resp   *http.Response
	lines  chan string
	cancel context.CancelFunc
	seen   strings.Builder // every line read so far
}

func (e *env) events(t *testing.T, query, token string) *eventStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/api/v1/events"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	es := &eventStream{resp: resp, lines: make(chan string, 1000), cancel: cancel}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		return es
	}
	go func() {
		defer close(es.lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			es.lines <- sc.Text()
		}
	}()
	return es
}

// until reads lines until one equals want, and returns everything read before it; it fails
// the test after 20 seconds or when the stream ends.
func (es *eventStream) until(t *testing.T, want string) string {
	t.Helper()
	var before strings.Builder
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-es.lines:
			if !ok {
				t.Fatalf("the stream ended before %q; read:\n%s", want, es.seen.String())
			}
			es.seen.WriteString(l + "\n")
			if l == want {
				return before.String()
			}
			before.WriteString(l + "\n")
		case <-timeout:
			t.Fatalf("no %q in 20 s; read:\n%s", want, es.seen.String())
		}
	}
}

// end reads until the stream ends; it fails the test when it goes on for 20 seconds.
func (es *eventStream) end(t *testing.T) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-es.lines:
			if !ok {
				return
			}
			es.seen.WriteString(l + "\n")
		case <-timeout:
			t.Fatalf("the stream did not end in 20 s; read:\n%s", es.seen.String())
		}
	}
}

// TestEvents: the stream tells each caller of the changes it may see, and only those: a
// member of one pipeline never learns of another's runs, nor of nodes; a pipeline's stream
// needs viewer on it.
func TestEvents(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		admin := e.user("root", true)
		alice := e.user("alice", false)
		e.createPipeline("alpha", admin, map[*testUser]auth.Role{&alice: auth.Viewer})
		e.createPipeline("secret-beta", admin, nil)

		if r := e.do(request{method: "GET", path: "/api/v1/events"}); r.Status != http.StatusUnauthorized {
			t.Errorf("events without a token: %s, want 401", r)
		}
		if es := e.events(t, "?pipeline=secret-beta", alice.Token); es.resp.StatusCode != http.StatusNotFound {
			t.Errorf("alice's events of secret-beta: %d, want 404", es.resp.StatusCode)
		}

		all := e.events(t, "", alice.Token)
		if ct := all.resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
			t.Fatalf("Content-Type %q", ct)
		}
		all.until(t, "retry: 3000")
		all.until(t, ": connected")
		one := e.events(t, "?pipeline=alpha", alice.Token)
		one.until(t, ": connected")
		adm := e.events(t, "", admin.Token)
		adm.until(t, ": connected")

		// Changes alice may not see come first: a run of secret-beta, an agent token.
		beta := e.startRun("secret-beta", admin.Token)
		if r := e.call("POST", "/api/v1/agent-tokens", admin.Token, map[string]any{"name": "builder"}); r.Status != http.StatusCreated {
			t.Fatalf("create agent token: %s", r)
		}
		adm.until(t, `data: {"pipeline":"secret-beta"}`)
		adm.until(t, "event: nodes")
		id := e.startRun("alpha", admin.Token)
		before := all.until(t, `data: {"pipeline":"alpha"}`)
		if strings.Contains(before, "beta") || strings.Contains(before, "nodes") {
			t.Errorf("alice's stream told of what she cannot see:\n%s", before)
		}
		before = one.until(t, `data: {"pipeline":"alpha"}`)
		if !strings.Contains(before, "event: runs") || strings.Contains(before, "beta") {
			t.Errorf("alice's alpha stream before the run's event:\n%s", before)
		}
		adm.until(t, `data: {"pipeline":"alpha"}`)

		// The run's start and end are told too.
		finishAll(t, e, beta, run.Success)
		finishAll(t, e, id, run.Success)
		all.until(t, `data: {"pipeline":"alpha"}`)
		if strings.Contains(all.seen.String(), "beta") {
			t.Errorf("alice's stream named secret-beta:\n%s", all.seen.String())
		}
	})
}

// TestEventsEnd: a stream ends when its client goes away and when the server stops, and the
// handler returns then.
func TestEventsEnd(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		stopping := make(chan struct{})
		e := newEnv(t, dialect, func(s *api.Server) { s.Stopping = stopping })
		admin := e.user("root", true)
		streams := func(want int) {
			t.Helper()
			deadline := time.Now().Add(20 * time.Second)
			for e.server.LiveStreamsForTest() != want {
				if time.Now().After(deadline) {
					t.Fatalf("%d streams open, want %d", e.server.LiveStreamsForTest(), want)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		es := e.events(t, "", admin.Token)
		es.until(t, ": connected")
		streams(1)
		es.cancel() // the client goes away
		streams(0)

		es = e.events(t, "", admin.Token)
		es.until(t, ": connected")
		streams(1)
		close(stopping)
		streams(0)
		es.end(t) // the stream ends when the server stops
	})
}

// TestRunListTotal: the runs list counts the runs matching its filters, and those above the
// page asked for.
func TestRunListTotal(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		alice := e.user("alice", false)
		e.createPipeline("hello", alice, nil)
		for range 5 {
			e.startRun("hello", alice.Token)
		}
		var out struct {
			Runs []struct {
				Number int64 `json:"number"`
			} `json:"runs"`
			Total int64 `json:"total"`
			Newer int64 `json:"newer"`
		}
		e.call("GET", "/api/v1/pipelines/hello/runs?limit=2&before=4", alice.Token, nil).json(t, &out)
		if out.Total != 5 || out.Newer != 2 || len(out.Runs) != 2 || out.Runs[0].Number != 3 {
			t.Errorf("before=4: %+v, want total 5, newer 2, runs 3, 2", out)
		}
		e.call("GET", "/api/v1/pipelines/hello/runs?status=success", alice.Token, nil).json(t, &out)
		if out.Total != 0 || out.Newer != 0 {
			t.Errorf("status=success: %+v, want total 0", out)
		}
	})
}

// TestPipelineListRunning: a running run shows beside a newer run that ended.
func TestPipelineListRunning(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		alice := e.user("alice", false)
		e.createPipeline("hello", alice, nil)
		ctx := context.Background()
		first := e.startRun("hello", alice.Token)
		c, err := e.st.JobClaim(ctx) // the first run starts and keeps running
		if err != nil || c.Run.ID != first {
			t.Fatalf("claim: %v (run %d)", err, c.Run.ID)
		}
		second := e.startRun("hello", alice.Token)
		finishAll(t, e, second, run.Success)
		e.startRun("hello", alice.Token) // queued
		var out struct {
			Pipelines []struct {
				LastRun struct {
					ID     int64  `json:"id"`
					Status string `json:"status"`
				} `json:"last_run"`
				Running []struct {
					ID     int64  `json:"id"`
					Number int64  `json:"number"`
					Status string `json:"status"`
				} `json:"running"`
				RunningCount int `json:"running_count"`
				QueuedCount  int `json:"queued_count"`
			} `json:"pipelines"`
		}
		e.call("GET", "/api/v1/pipelines", alice.Token, nil).json(t, &out)
		if len(out.Pipelines) != 1 {
			t.Fatalf("pipelines: %+v", out)
		}
		p := out.Pipelines[0]
		if len(p.Running) != 1 || p.Running[0].ID != first || p.Running[0].Status != "running" || p.RunningCount != 1 || p.QueuedCount != 1 {
			t.Errorf("running %+v (count %d), queued %d: want run %d running, 1 queued", p.Running, p.RunningCount, p.QueuedCount, first)
		}
	})
}

// TestEventsDeliveries: a pipeline's stream tells its developers, not its viewers, of the
// deliveries it records; both hear of the run the delivery started.
func TestEventsDeliveries(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		admin := e.user("root", true)
		dev := e.user("dev", false)
		viewer := e.user("vic", false)
		e.createPipeline("alpha", admin, map[*testUser]auth.Role{&dev: auth.Developer, &viewer: auth.Viewer})
		trig := e.enable("alpha", admin, nil)
		devStream := e.events(t, "?pipeline=alpha", dev.Token)
		devStream.until(t, ": connected")
		viewStream := e.events(t, "?pipeline=alpha", viewer.Token)
		viewStream.until(t, ": connected")
		if r := e.hook(trig.token(), "application/json", "{}"); r.Status != http.StatusCreated && r.Status != http.StatusAccepted {
			t.Fatalf("webhook: %s", r)
		}
		devStream.until(t, "event: deliveries")
		viewStream.until(t, `data: {"pipeline":"alpha"}`)
		// A run of alpha now: the viewer's stream says runs, and never deliveries.
		e.startRun("alpha", admin.Token)
		viewStream.until(t, `data: {"pipeline":"alpha"}`)
		if strings.Contains(viewStream.seen.String(), "deliveries") {
			t.Errorf("a viewer's stream told of deliveries:\n%s", viewStream.seen.String())
		}

		// Removed from the pipeline, the viewer's stream ends at its next change, unnamed;
		// a new one is refused.
		p, err := e.st.PipelineGet(context.Background(), "alpha")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.st.MemberDelete(context.Background(), p.ID, viewer.ID); err != nil {
			t.Fatal(err)
		}
		before := viewStream.seen.Len()
		e.startRun("alpha", admin.Token)
		devStream.until(t, `data: {"pipeline":"alpha"}`)
		viewStream.end(t)
		if after := viewStream.seen.String()[before:]; strings.Contains(after, "alpha") {
			t.Errorf("the stream of a removed member went on:\n%s", after)
		}
		if es := e.events(t, "?pipeline=alpha", viewer.Token); es.resp.StatusCode != http.StatusNotFound {
			t.Errorf("a removed member's new stream: %d, want 404", es.resp.StatusCode)
		}
	})
}
