package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// signIn asks for an API token with HTTP Basic and returns the status and Retry-After.
func signIn(ctx context.Context, client *http.Client, base, user, password string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/api/v1/tokens", nil)
	if err != nil {
		return 0, "", err
	}
	req.SetBasicAuth(user, password)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After"), nil
}

// signInRace is the race on s: 200 wrong passwords for admin at once. At most 10 are
// checked (401); the rest are refused before any check, 429 (the user's attempts are used up) or
// 503 (the password check slots stayed taken), each with Retry-After. The admin is then locked
// out from this address for 10 minutes.
func signInRace(t *testing.T, s *server) {
	var mu sync.Mutex
	got := map[int]int{}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			code, retry, err := signIn(t.Context(), http.DefaultClient, s.URL, "admin", fmt.Sprint("wrong-password-", i))
			if err != nil {
				t.Error(err)
				return
			}
			if code != http.StatusUnauthorized && retry == "" {
				t.Errorf("a %d without Retry-After", code)
			}
			mu.Lock()
			got[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("200 parallel wrong passwords: %v (status: count)", got)
	if n := got[http.StatusUnauthorized]; n < 1 || n > 10 {
		t.Errorf("%d wrong passwords were checked (401); want 1 to 10", n)
	}
	if n := got[http.StatusUnauthorized] + got[http.StatusTooManyRequests] + got[http.StatusServiceUnavailable]; n != 200 {
		t.Errorf("answers %v; want only 401, 429 and 503", got)
	}
	if got[http.StatusTooManyRequests] < 150 {
		t.Errorf("only %d of 200 were refused 429; want the attempts beyond the first 10 refused", got[http.StatusTooManyRequests])
	}
}

// signInFlood: while 40 connections sign in as random users without pause (a bcrypt check
// each), /healthz and a webhook still answer (200, 202), since password checks run a bounded
// number at a time and the attempts beyond wait briefly and are refused 503. Latencies are
// logged, not asserted.
func signInFlood(t *testing.T, s *server, admin string) {
	hook := s.enableHook(admin, slowPipeline("flooded", 0), "flooded", "")
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	var mu sync.Mutex
	flood := map[int]int{}
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := range 40 {
		wg.Go(func() {
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			for n := 0; ctx.Err() == nil; n++ {
				code, _, err := signIn(ctx, client, s.URL, fmt.Sprintf("stranger-%d-%d", i, n), "some-password")
				if err != nil {
					continue
				}
				mu.Lock()
				flood[code]++
				mu.Unlock()
			}
		})
	}
	// The flood is on once some attempts have been answered.
	waitFor(t, "the sign-in flood to be answered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return flood[http.StatusUnauthorized]+flood[http.StatusServiceUnavailable] >= 20
	})

	client := &http.Client{Timeout: 30 * time.Second}
	var health, hooks []time.Duration
	for i := range 20 {
		start := time.Now()
		resp, err := client.Get(s.URL + "/healthz")
		if err != nil {
			t.Fatalf("/healthz during the flood: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/healthz during the flood → %d", resp.StatusCode)
		}
		health = append(health, time.Since(start))
		if i%2 == 0 {
			start = time.Now()
			code, _, _ := post(t, hook, `{}`)
			if code != http.StatusAccepted {
				t.Fatalf("webhook during the flood → %d, want 202", code)
			}
			hooks = append(hooks, time.Since(start))
		}
	}
	stop()
	wg.Wait()
	slices.Sort(health)
	slices.Sort(hooks)
	t.Logf("sign-in flood answers: %v; /healthz max %v, median %v; webhook max %v, median %v",
		flood, health[len(health)-1], health[len(health)/2], hooks[len(hooks)-1], hooks[len(hooks)/2])
	if flood[http.StatusServiceUnavailable] == 0 {
		t.Errorf("no sign-in of the flood was refused 503 (%v): password checks are not bounded", flood)
	}
}
