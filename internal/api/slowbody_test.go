package api_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/api"
)

// TestWebhookSlowBody: a sender that stops in the middle of its body gets 408 once the body
// timeout passes, its slot is freed, and nothing is stored.
func TestWebhookSlowBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", func(s *api.Server) {
		s.MaxWebhooks = 1
		s.WebhookBodyTimeout = 200 * time.Millisecond
	})
	h := e.newHook("slow", nil)
	u, _ := url.Parse(e.srv.URL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Promise 100 bytes, send 10, then wait.
	fmt.Fprintf(conn, "POST /pipeline/webhook/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"abc\":\"1", h.token, u.Host)
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled body → %d, want 408", resp.StatusCode)
	}
	// The only slot is free again: a normal request goes through.
	if r := e.hook(h.token, "application/json", `{}`); r.Status != http.StatusAccepted {
		t.Fatalf("after the stalled sender → %s", r)
	}
	if ds := e.deliveries("slow"); len(ds) != 1 {
		t.Fatalf("%d deliveries stored, want only the normal one", len(ds))
	}
}
