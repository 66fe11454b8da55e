package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/flowd/flowd/internal/api"
	"github.com/flowd/flowd/internal/store/storetest"
	"github.com/flowd/flowd/internal/trigger"
)

// TestWebhookRoundTrips pins what a webhook request costs on PostgreSQL, in round trips to the
// server, through the whole HTTP path (admission included) once its URL has had a delivery:
// the rate bucket's take, the reserve of the run's number and ids, and one statement that
// checks the trigger, its owner's right and the pipeline and stores the run, its jobs, its
// steps and the delivery. It was eight before the URL's trigger, owner and pipeline were kept
// between deliveries. More is a regression: the failure lists the statements.
func TestWebhookRoundTrips(t *testing.T) {
	t.Parallel()
	dsn, trips := storetest.CountRoundTrips(t, storetest.DSN(t, "postgres"))
	st := storetest.OpenAt(t, dsn)
	e := newEnvWithStore(t, st, func(s *api.Server) { s.WebhookLimiter = trigger.NewSharedLimiter(st, 1000, 100) })
	alice := e.user("alice", false)
	e.createPipeline("hello", alice, nil)
	token := e.enable("hello", alice, nil).token()
	post := func(i int) {
		if r := e.hook(token, "application/json", fmt.Sprintf(`{"abc":"%d"}`, i)); r.Status != http.StatusAccepted {
			t.Fatalf("delivery %d: %s", i, r)
		}
	}
	post(-1)
	const n, want = 5, 3
	before, seen := trips.Count(), len(trips.Statements())
	for i := range n {
		post(i)
	}
	if got := trips.Count() - before; got != want*n {
		t.Errorf("%d round trips for %d webhook requests, want %d each (if fewer, lower the pin); statements:\n%s",
			got, n, want, strings.Join(trips.Statements()[seen:], "\n"))
	}
}
