package api_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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
	m := e.call("GET", "/metrics", testMetricsToken, nil)
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

// stall opens a connection to the webhook URL of token that sends its headers and 10 of the
// 100 bytes it promises, then waits; the answer (if any) is read from the returned reader.
func stall(t *testing.T, e *env, token string) (net.Conn, *bufio.Reader) {
	t.Helper()
	u, _ := url.Parse(e.srv.URL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /pipeline/webhook/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"abc\":\"1", token, u.Host)
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	return conn, bufio.NewReader(conn)
}

// TestWebhookUnknownTokenNeedsNoSlot: while a stalled sender holds the only webhook slot, a
// request to a URL no trigger has is answered 404 at once, before its own body has arrived, with
// the same bytes as a disabled trigger's URL, and the connection is closed after it; a rotated
// URL stops at once. Nothing is stored for either.
func TestWebhookUnknownTokenNeedsNoSlot(t *testing.T) {
	t.Parallel()
	admitted := make(chan struct{}, 10)
	e := newEnv(t, "sqlite", func(s *api.Server) {
		s.MaxWebhooks = 1
		s.WebhookBodyTimeout = time.Minute // the stalled sender keeps its slot
		s.SetAdmittedHookForTest(func() { admitted <- struct{}{} })
	})
	held := e.newHook("held", nil)
	off := e.newHook("off", nil)
	if r := e.call("POST", "/api/v1/pipelines/off/triggers/webhook/disable", off.owner.Token, nil); r.Status != http.StatusOK {
		t.Fatalf("disable: %s", r)
	}
	disabled := e.hook(off.token, "application/json", `{}`)
	<-admitted
	if disabled.Status != http.StatusNotFound {
		t.Fatalf("disabled trigger's URL → %s, want 404", disabled)
	}
	rotated := e.newHook("rotated", nil)
	if r := e.call("POST", "/api/v1/pipelines/rotated/triggers/webhook/rotate", rotated.owner.Token, nil); r.Status != http.StatusOK {
		t.Fatalf("rotate: %s", r)
	}

	stall(t, e, held.token)
	<-admitted // the stalled sender holds the only slot

	for name, token := range map[string]string{"unknown": "no-such-token-0123456789abcdef", "rotated": rotated.token} {
		_, rd := stall(t, e, token)
		resp, err := http.ReadResponse(rd, nil)
		if err != nil {
			t.Fatalf("%s token: no answer before the body arrived: %v", name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || !resp.Close {
			t.Errorf("%s token → %d (close %v) %s; want 404 and the connection closed", name, resp.StatusCode, resp.Close, body)
		}
		if string(body) != string(disabled.Body) {
			t.Errorf("%s token answered\n%s\nbut a disabled trigger's URL\n%s\nthe two must look the same", name, body, disabled.Body)
		}
	}
	if n := countStored(t, e, e.pipelineID("rotated")); n != 0 {
		t.Errorf("%d deliveries stored for the rotated URL, want 0", n)
	}
	// A known URL still needs a slot: 503, not read.
	if r := e.hook(off.token, "application/json", `{}`); r.Status != http.StatusServiceUnavailable {
		t.Errorf("disabled trigger's URL with every slot taken → %s, want 503", r)
	}
}

// TestWebhookTriggerShare: the slow senders of one URL hold at most its share of the slots
// (1/4 of MaxWebhooks); more requests to that URL are refused 503, and other URLs go on.
func TestWebhookTriggerShare(t *testing.T) {
	t.Parallel()
	admitted := make(chan struct{}, 10)
	e := newEnv(t, "sqlite", func(s *api.Server) {
		s.MaxWebhooks = 4 // one slot per trigger
		s.WebhookBodyTimeout = time.Minute
		s.SetAdmittedHookForTest(func() { admitted <- struct{}{} })
	})
	slow := e.newHook("slow", nil)
	other := e.newHook("other", nil)
	stall(t, e, slow.token)
	<-admitted // the slow URL's only slot is taken

	for i := range 2 { // each waits a second for the URL's only slot, then is refused
		r := e.hook(slow.token, "application/json", `{}`)
		if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") != "1" ||
			!strings.Contains(string(r.Body), "too many requests in progress") {
			t.Errorf("request %d to the slow URL → %s; want 503 with Retry-After 1", i, r)
		}
	}
	for i := range 5 {
		if r := e.hook(other.token, "application/json", `{}`); r.Status != http.StatusAccepted {
			t.Errorf("delivery %d to another URL → %s, want 202", i, r)
		}
		<-admitted
	}
	if n := countStored(t, e, e.pipelineID("slow")); n != 0 {
		t.Errorf("%d deliveries stored for the slow URL, want 0", n)
	}
}
