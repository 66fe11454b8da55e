package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Load is what one load run measured.
type Load struct {
	Clients   int            `json:"clients,omitempty"`
	OfferedPS float64        `json:"offered_per_s,omitempty"` // open loop only
	Requests  int            `json:"requests"`
	Accepted  int            `json:"accepted"` // 202 answers
	Statuses  map[string]int `json:"statuses"` // by status code, "timeout", "error", "shed" (not sent: client in-flight cap)
	Seconds   float64        `json:"seconds"`
	PerSec    float64        `json:"accepted_per_s"`
	P50ms     float64        `json:"p50_ms"`
	P99ms     float64        `json:"p99_ms"`
	Maxms     float64        `json:"max_ms"`
}

// newHTTPClient is a keep-alive client for n concurrent requests to one host.
func newHTTPClient(n int, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        n,
			MaxIdleConnsPerHost: n,
			MaxConnsPerHost:     n,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		},
	}
}

// post sends one webhook-style request and returns its status (0 with an error).
func post(ctx context.Context, hc *http.Client, url string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func abcBody(n int64) []byte { return []byte(`{"abc":"` + strconv.FormatInt(n, 10) + `"}`) }

// recorder gathers latencies and outcomes from many goroutines.
type recorder struct {
	mu       sync.Mutex
	lat      []time.Duration
	statuses map[string]int
	accepted int
	requests int
}

func newRecorder() *recorder { return &recorder{statuses: map[string]int{}} }

func (r *recorder) add(d time.Duration, status int, err error) {
	key := strconv.Itoa(status)
	if err != nil {
		key = "error"
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
			key = "timeout"
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	r.statuses[key]++
	if status == http.StatusAccepted {
		r.accepted++
	}
	if err == nil {
		r.lat = append(r.lat, d)
	}
}

// acceptedSoFar is how many 202s r has counted so far.
func (r *recorder) acceptedSoFar() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.accepted
}

func (r *recorder) shed() {
	r.mu.Lock()
	r.statuses["shed"]++
	r.mu.Unlock()
}

func (r *recorder) result(elapsed time.Duration) Load {
	r.mu.Lock()
	defer r.mu.Unlock()
	p50, p99, mx := percentiles(r.lat)
	return Load{
		Requests: r.requests, Accepted: r.accepted, Statuses: r.statuses,
		Seconds: elapsed.Seconds(), PerSec: float64(r.accepted) / elapsed.Seconds(),
		P50ms: p50, P99ms: p99, Maxms: mx,
	}
}

// percentiles returns p50, p99 and max in milliseconds (nearest rank).
func percentiles(d []time.Duration) (p50, p99, mx float64) {
	q := quantiles(d, 0.50, 0.99, 1)
	return q[0], q[1], q[2]
}

// quantiles returns each quantile q (0 < q ≤ 1) of d in milliseconds, by nearest rank; zeros
// for an empty d.
func quantiles(d []time.Duration, qs ...float64) []float64 {
	out := make([]float64, len(qs))
	if len(d) == 0 {
		return out
	}
	s := slices.Clone(d)
	slices.Sort(s)
	for k, q := range qs {
		i := int(q*float64(len(s))+0.5) - 1
		out[k] = ms(s[max(0, min(i, len(s)-1))])
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// closedLoop runs clients goroutines, each sending one request after the other, until dur has
// passed or maxReq requests were sent.
func closedLoop(ctx context.Context, url string, clients int, dur time.Duration, maxReq int64) Load {
	return closedLoopURLs(ctx, []string{url}, clients, dur, maxReq)
}

// closedLoopURLs is closedLoop over several URLs (several servers): client i sends to
// urls[i % len(urls)].
func closedLoopURLs(ctx context.Context, urls []string, clients int, dur time.Duration, maxReq int64) Load {
	rec := newRecorder()
	res := rec.result(closedLoopInto(ctx, rec, urls, clients, dur, maxReq))
	res.Clients = clients
	return res
}

// closedLoopInto is closedLoopURLs recording into rec, which may already hold earlier rounds;
// it returns the time it took.
func closedLoopInto(ctx context.Context, rec *recorder, urls []string, clients int, dur time.Duration, maxReq int64) time.Duration {
	hc := newHTTPClient(clients, 10*time.Second)
	defer hc.CloseIdleConnections()
	return drive(ctx, rec, clients, dur, maxReq, func(client int, n int64) (int, error) {
		return post(ctx, hc, urls[client%len(urls)], abcBody(n))
	})
}

// drive runs clients goroutines, each calling do (n = 1, 2, … across all of them) one call
// after the other, until dur has passed or maxReq calls were made; each call's time and
// outcome (a status: 202 is a success) go to rec. It returns the time it took.
func drive(ctx context.Context, rec *recorder, clients int, dur time.Duration, maxReq int64, do func(client int, n int64) (int, error)) time.Duration {
	var sent atomic.Int64
	start := time.Now()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	for client := range clients {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				n := sent.Add(1)
				if n > maxReq {
					return
				}
				t0 := time.Now()
				status, err := do(client, n)
				rec.add(time.Since(t0), status, err)
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// openLoop offers rate requests per second for dur, whatever the answers' pace, with at most
// maxInFlight outstanding (requests beyond are counted "shed", not sent) and a per-request
// timeout.
func openLoop(ctx context.Context, url string, rate float64, dur time.Duration, maxInFlight int, timeout time.Duration) Load {
	hc := newHTTPClient(maxInFlight, timeout)
	defer hc.CloseIdleConnections()
	rec := newRecorder()
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	start := time.Now()
	var n int64
	for {
		elapsed := time.Since(start)
		if elapsed >= dur || ctx.Err() != nil {
			break
		}
		due := int64(rate * elapsed.Seconds())
		for ; n < due; n++ {
			select {
			case sem <- struct{}{}:
			default:
				rec.shed()
				continue
			}
			wg.Add(1)
			go func(i int64) {
				defer wg.Done()
				defer func() { <-sem }()
				t0 := time.Now()
				status, err := post(ctx, hc, url, abcBody(i))
				rec.add(time.Since(t0), status, err)
			}(n + 1)
		}
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	res := rec.result(time.Since(start))
	res.OfferedPS = rate
	return res
}

// bareServer is the ceiling: net/http reading the body and answering 202, or with a file, also
// appending the body to it and fsyncing before the answer (one fsync per request).
type bareServer struct {
	URL  string
	srv  *http.Server
	file *os.File
}

func startBare(dir string, fsync bool) (*bareServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &bareServer{URL: "http://" + ln.Addr().String() + "/hook"}
	var mu sync.Mutex
	h := func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if b.file != nil {
			mu.Lock()
			_, err = b.file.Write(append(body, '\n'))
			if err == nil {
				err = b.file.Sync()
			}
			mu.Unlock()
			if err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte(`{"ok":true}`))
	}
	if fsync {
		f, err := os.OpenFile(filepath.Join(dir, "fsync-server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			ln.Close()
			return nil, err
		}
		b.file = f
	}
	b.srv = &http.Server{Handler: http.HandlerFunc(h), ReadHeaderTimeout: 10 * time.Second}
	go b.srv.Serve(ln)
	return b, nil
}

func (b *bareServer) Close() {
	b.srv.Close()
	if b.file != nil {
		b.file.Close()
	}
}

// ratio is a/b rounded to three places, 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(fmt.Sprintf("%.3f", a/b), 64)
	return v
}
