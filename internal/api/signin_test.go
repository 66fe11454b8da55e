package api_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/api"
	"github.com/flowd/flowd/internal/auth"
)

// TestTokenSignInThrottle: after 3 wrong passwords for one user from one address, even the
// right one is refused with 429 and Retry-After until the window passes; other users are not
// affected, and a right password before the limit clears the count.
func TestTokenSignInThrottle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", func(s *api.Server) { s.SignIn = auth.NewThrottle(3, time.Minute) })
	alice, bob := e.user("alice", false), e.user("bob", false)
	login := func(user, password string) *http.Response {
		req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/tokens", nil)
		req.SetBasicAuth(user, password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// Two failures, then a success: the count starts again.
	login("alice", "wrong-1")
	login("alice", "wrong-2")
	if r := login("alice", alice.Password); r.StatusCode != 201 {
		t.Fatalf("right password after 2 failures → %d", r.StatusCode)
	}
	for i := range 3 {
		if r := login("alice", "wrong"); r.StatusCode != 401 {
			t.Fatalf("wrong password %d → %d, want 401", i+1, r.StatusCode)
		}
	}
	r := login("alice", alice.Password)
	if r.StatusCode != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("right password after 3 failures → %d (Retry-After %q), want 429 with Retry-After", r.StatusCode, r.Header.Get("Retry-After"))
	}
	if r := login("bob", bob.Password); r.StatusCode != 201 {
		t.Fatalf("another user → %d", r.StatusCode)
	}
	// Unknown users count too, so names cannot be probed without limit.
	for range 3 {
		login("nobody", "x")
	}
	if r := login("nobody", "x"); r.StatusCode != 429 {
		t.Fatalf("unknown user after 3 failures → %d, want 429", r.StatusCode)
	}
}

// TestTokenSignInParallelGuesses: 200 wrong passwords for one user at once over HTTP: exactly
// 10 are checked (401), the other 190 are refused 429 with Retry-After, and the right password
// is refused too until the window passes.
func TestTokenSignInParallelGuesses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", func(s *api.Server) {
		s.SignIn = auth.NewThrottle(10, time.Minute)
		s.SignIn.CheckWait = time.Minute // a loaded machine must not turn a check into a 503 here
	})
	alice := e.user("alice", false)
	login := func(password string) (int, string) {
		req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/tokens", nil)
		req.SetBasicAuth("alice", password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	var mu sync.Mutex
	got := map[int]int{}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			code, retry := login(fmt.Sprint("wrong-", i))
			if code == http.StatusTooManyRequests && retry == "" {
				t.Error("a 429 without Retry-After")
			}
			mu.Lock()
			got[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if got[http.StatusUnauthorized] != 10 || got[http.StatusTooManyRequests] != 190 {
		t.Fatalf("200 parallel wrong passwords → %v; want 10 × 401 (checked) and 190 × 429", got)
	}
	if code, _ := login(alice.Password); code != http.StatusTooManyRequests {
		t.Fatalf("the right password after 10 wrong ones → %d, want 429", code)
	}
}
