package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// trickle is one slow sender: it posts to path promising 64 bytes and sends one byte a second
// until it is answered (the status) or ctx ends (0). sent is called once its headers are out.
func trickle(ctx context.Context, host, path string, sent func()) int {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return 0
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n{", path, host); err != nil {
		return 0
	}
	sent()
	answer := make(chan int, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			answer <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		answer <- resp.StatusCode
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case code := <-answer:
			return code
		case <-tick.C:
			_, _ = conn.Write([]byte(" "))
		}
	}
}

// counts is a concurrent tally of answers by status (0: no answer).
type counts struct {
	mu sync.Mutex
	m  map[int]int
	n  int
}

func (c *counts) add(code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[int]int{}
	}
	c.m[code]++
	c.n++
}

func (c *counts) get() (map[int]int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[int]int{}
	for k, v := range c.m {
		out[k] = v
	}
	return out, c.n
}

// webhookStarvation is the attack on s: 600 connections post to random tokens with a
// 1-byte/s body (and come back a second after each answer), 100 more trickle into one valid URL,
// and meanwhile 50 legitimate deliveries to another URL are sent, one every 200 ms. Every
// legitimate delivery is accepted (202, none 503); the random tokens are all answered 404
// without a slot; the valid URL's slow senders hold at most its share of the slots (1/4 of
// 256): the rest are refused 503 before their bodies are read.
func webhookStarvation(t *testing.T, s *server, admin string) {
	const (
		randomConns = 600
		slowConns   = 100
		share       = 256 / 4 // the default MaxWebhooks and trigger share (internal/api)
		legit       = 50
	)
	slowURL := s.enableHook(admin, slowPipeline("slowed", 0), "slowed", "")
	legitURL := s.enableHook(admin, slowPipeline("legit", 0), "legit", "")
	host := strings.TrimPrefix(s.URL, "http://")
	slowPath := strings.TrimPrefix(slowURL, s.URL)
	if slowPath == slowURL {
		t.Fatalf("webhook URL %s is not on %s", slowURL, s.URL)
	}

	ctx, stopAttack := context.WithCancel(context.Background())
	defer stopAttack()
	slowCtx, stopSlow := context.WithCancel(context.Background())
	defer stopSlow()
	var wg sync.WaitGroup
	defer wg.Wait()

	// The valid URL's slow senders, once each, until they are answered.
	var slow counts
	var slowSent atomic.Int64
	for range slowConns {
		wg.Go(func() {
			slow.add(trickle(slowCtx, host, slowPath, func() { slowSent.Add(1) }))
		})
	}
	// The random tokens, again and again until the legitimate deliveries are done.
	var random counts
	var randomSent atomic.Int64
	for range randomConns {
		wg.Go(func() {
			for ctx.Err() == nil {
				code := trickle(ctx, host, "/pipeline/webhook/"+randomToken(), func() { randomSent.Add(1) })
				if ctx.Err() != nil {
					return
				}
				random.add(code)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		})
	}
	// The attack is in place once every connection has sent its headers. The legitimate
	// deliveries come one every 200 ms, over 10 s: as long as a slow sender may hold a slot.
	waitFor(t, "the attack to be in place", func() bool {
		return randomSent.Load() >= randomConns && slowSent.Load() >= slowConns
	})
	legitStart := time.Now()
	var legitCodes counts
	var lwg sync.WaitGroup
	client := &http.Client{Timeout: time.Minute}
	tick := time.NewTicker(200 * time.Millisecond)
	for i := range legit {
		lwg.Go(func() {
			req, _ := http.NewRequest("POST", legitURL, strings.NewReader(fmt.Sprintf(`{"n":"%d"}`, i)))
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("legitimate delivery %d: %v", i, err)
				legitCodes.add(0)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			legitCodes.add(resp.StatusCode)
		})
		<-tick.C
	}
	tick.Stop()
	lwg.Wait()
	legitTook := time.Since(legitStart)
	randomSoFar, _ := random.get()
	stopAttack()

	lc, _ := legitCodes.get()
	t.Logf("legitimate deliveries: %v (status: count) in %v; random-token answers during the attack: %v",
		lc, legitTook.Round(time.Millisecond), randomSoFar)
	if lc[http.StatusAccepted] != legit {
		t.Errorf("legitimate deliveries answered %v; want all %d 202 (none 503)", lc, legit)
	}
	for code, n := range randomSoFar {
		if code != http.StatusNotFound {
			t.Errorf("%d random-token requests answered %d; want only 404", n, code)
		}
	}
	// The slow senders that got a slot are answered 408 once the body timeout (10 s) passes.
	waitFor(t, "every slow sender to be answered", func() bool {
		_, n := slow.get()
		return n == slowConns
	})
	sc, _ := slow.get()
	t.Logf("slow senders on one valid URL: %v", sc)
	if sc[http.StatusRequestTimeout] > share || sc[http.StatusRequestTimeout]+sc[http.StatusServiceUnavailable] != slowConns {
		t.Errorf("slow senders answered %v; want at most %d 408 (the URL's share of the slots), the rest 503", sc, share)
	}
	var runs struct {
		Runs []struct{} `json:"runs"`
	}
	if code := s.api(admin, "GET", "/api/v1/pipelines/legit/runs?limit=100", nil, &runs); code != 200 || len(runs.Runs) != legit {
		t.Errorf("pipeline legit has %d runs (%d), want %d", len(runs.Runs), code, legit)
	}
	if code := s.api(admin, "GET", "/api/v1/pipelines/slowed/runs", nil, &runs); code != 200 || len(runs.Runs) != 0 {
		t.Errorf("pipeline slowed has %d runs (%d), want 0", len(runs.Runs), code)
	}
}

// randomToken is a token no trigger has, shaped like a real one.
func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
