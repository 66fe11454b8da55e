package trigger_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
	"github.com/flowd/flowd/internal/trigger"
)

// signedDelivery is a delivery of body to token, signed with hookSetup's secret.
func signedDelivery(token, body, key string) trigger.Incoming {
	h := http.Header{"Content-Type": {"application/json"}, "X-Hub-Signature-256": {sign("k", body)}}
	return trigger.Incoming{Token: token, Body: []byte(body), Headers: h, IdempotencyKey: key}
}

// TestDeliveryRoundTrips pins what a webhook delivery costs on PostgreSQL, in round trips to
// the server, once its URL has had a delivery: a run started is the rate bucket's take, the
// reserve of its number and ids, and one statement that checks the trigger, its owner's right
// and the pipeline, claims the idempotency key if there is one, and stores the run, its jobs,
// its steps and the delivery. A refused delivery is the take and one statement. More is a
// regression: find the new statement in the list the failure prints.
func TestDeliveryRoundTrips(t *testing.T) {
	t.Parallel()
	dsn, trips := storetest.CountRoundTrips(t, storetest.DSN(t, "postgres"))
	st := storetest.OpenAt(t, dsn)
	box := newBox(t)
	svc := &trigger.Webhooks{Store: st, Runs: &trigger.Service{Store: st, Box: box}, Box: box,
		Limiter: trigger.NewSharedLimiter(st, 1000, 100)}
	_, _, token := hookSetup(t, st, svc)
	ctx := context.Background()

	cases := []struct {
		name string
		body string
		key  string
		code trigger.Code
		want int // round trips per delivery
	}{
		{"run started", `{"abc":"%d"}`, "", trigger.CodeStarted, 3},
		{"variables refused", `{"TARGET":"moon%d"}`, "", trigger.CodeInvalidVariables, 2},
		// A new key is claimed by the statement that stores the run: the same three.
		{"run started with a key", `{"abc":"%d"}`, "key-%d", trigger.CodeStarted, 3},
		// A key seen before: the rate bucket, the number's reserve finding it (and taking
		// none), then a transaction that replays the first answer (BEGIN, the check, the key,
		// the first delivery, the replay's delivery, the pipeline's name, COMMIT).
		{"key replayed", `{"abc":"%d"}`, "key-%d", trigger.CodeReplayed, 9},
	}
	const n = 5
	for _, c := range cases {
		key := func(i int) string {
			if c.key == "" {
				return ""
			}
			return fmt.Sprintf(c.key, i)
		}
		// The first delivery to the URL reads the trigger, the owner and the pipeline.
		if out := svc.Deliver(ctx, signedDelivery(token, fmt.Sprintf(c.body, -1), key(-1))); out.Code != c.code {
			t.Fatalf("%s: first delivery: %s %s", c.name, out.Code, out.Body)
		}
		before, seen := trips.Count(), len(trips.Statements())
		for i := range n {
			if out := svc.Deliver(ctx, signedDelivery(token, fmt.Sprintf(c.body, i), key(i))); out.Code != c.code {
				t.Fatalf("%s: delivery %d: %s %s", c.name, i, out.Code, out.Body)
			}
		}
		if got := trips.Count() - before; got != c.want*n {
			t.Errorf("%s: %d round trips for %d deliveries, want %d each (if fewer, lower the pin); statements:\n%s",
				c.name, got, n, c.want, strings.Join(trips.Statements()[seen:], "\n"))
		}
	}
}

// TestDeliveryWrites pins what a webhook delivery costs on SQLite once its URL has had a
// delivery: one write (which the group writer commits with the others queued at that moment)
// and no reads; its statements are the check of what it was decided on, and the run's number,
// the run, its jobs, its steps and the delivery (a refused one: the check and the delivery).
func TestDeliveryWrites(t *testing.T) {
	t.Parallel()
	st := storetest.Open(t, "sqlite")
	box := newBox(t)
	svc := &trigger.Webhooks{Store: st, Runs: &trigger.Service{Store: st, Box: box}, Box: box}
	_, _, token := hookSetup(t, st, svc)
	ctx := context.Background()
	cases := []struct {
		name, body, key string
		code            trigger.Code
		statements      int64 // per delivery
	}{
		{"run started", `{"abc":"%d"}`, "", trigger.CodeStarted, 6},
		{"run started with a key", `{"abc":"%d"}`, "key-%d", trigger.CodeStarted, 9},
		{"variables refused", `{"TARGET":"moon%d"}`, "", trigger.CodeInvalidVariables, 3},
	}
	const n = 5
	if out := svc.Deliver(ctx, signedDelivery(token, `{}`, "")); out.Code != trigger.CodeStarted {
		t.Fatalf("first delivery: %s %s", out.Code, out.Body)
	}
	for _, c := range cases {
		before := st.WriteStats()
		for i := range n {
			key := ""
			if c.key != "" {
				key = fmt.Sprintf(c.key, i)
			}
			if out := svc.Deliver(ctx, signedDelivery(token, fmt.Sprintf(c.body, i), key)); out.Code != c.code {
				t.Fatalf("%s: delivery %d: %s %s", c.name, i, out.Code, out.Body)
			}
		}
		after := st.WriteStats()
		if got := after.Writes - before.Writes; got != n {
			t.Errorf("%s: %d writes for %d deliveries, want 1 each", c.name, got, n)
		}
		if got := after.Statements - before.Statements; got != c.statements*n {
			t.Errorf("%s: %d statements for %d deliveries, want %d each (if fewer, lower the pin)", c.name, got, n, c.statements)
		}
	}
}

// TestDeliveryBasisChanges: what a URL's deliveries keep of the trigger, its owner and the
// pipeline never outlives a change to them: the next delivery is decided on the change, and
// stored once.
func TestDeliveryBasisChanges(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		box := newBox(t)
		svc := &trigger.Webhooks{Store: st, Runs: &trigger.Service{Store: st, Box: box}, Box: box}
		p, u, token := hookSetup(t, st, svc)
		deliveries := func() int {
			ds, err := st.DeliveryList(ctx, p.ID, 200, 0)
			if err != nil {
				t.Fatal(err)
			}
			return len(ds)
		}
		deliver := func(body string) (trigger.Outcome, answer) {
			t.Helper()
			before := deliveries()
			out := svc.Deliver(ctx, signedDelivery(token, body, ""))
			if got := deliveries() - before; got != 1 {
				t.Errorf("%s: %d deliveries stored, want 1", body, got)
			}
			return out, decode(t, out)
		}
		started := func(why string) {
			t.Helper()
			if out, _ := deliver(`{}`); out.Code != trigger.CodeStarted {
				t.Fatalf("%s: %s %s", why, out.Code, out.Body)
			}
		}
		started("first")
		started("kept")

		// Demoted: the next delivery is refused, naming the owner.
		if err := st.MemberSet(ctx, p.ID, u.ID, "viewer"); err != nil {
			t.Fatal(err)
		}
		out, a := deliver(`{}`)
		if out.Code != trigger.CodeInsufficientPerms || !strings.Contains(a.Error.Message, "alice is only a viewer of pipeline hello") {
			t.Fatalf("demoted: %s %s", out.Code, out.Body)
		}
		if err := st.MemberSet(ctx, p.ID, u.ID, "developer"); err != nil {
			t.Fatal(err)
		}
		started("a developer again")
		started("kept again")

		// Disabled: refused as the owner.
		if _, err := st.UserUpdate(ctx, u.ID, store.UserUpdate{Disabled: new(true)}); err != nil {
			t.Fatal(err)
		}
		if out, a := deliver(`{}`); out.Code != trigger.CodeInsufficientPerms || !strings.Contains(a.Error.Message, "alice is disabled") {
			t.Fatalf("owner disabled: %s %s", out.Code, out.Body)
		}
		if _, err := st.UserUpdate(ctx, u.ID, store.UserUpdate{Disabled: new(false)}); err != nil {
			t.Fatal(err)
		}
		started("owner enabled again")

		// The pipeline edited: the run has the new definition's default.
		edited := strings.Replace(definition, `abc: "123"`, `abc: "456"`, 1)
		if _, err := st.PipelineUpdate(ctx, p.ID, edited, p.Secrets, u.ID); err != nil {
			t.Fatal(err)
		}
		out, _ = deliver(`{}`)
		r, err := st.RunGet(ctx, out.RunID)
		if err != nil || r.Variables["abc"] != "456" {
			t.Fatalf("edited: %s %s: abc = %q, %v", out.Code, out.Body, r.Variables["abc"], err)
		}

		// The trigger disabled: its URL is unknown. (The delivery is stored, within the rate.)
		if _, err := st.WebhookDisable(ctx, p.ID, u.ID); err != nil {
			t.Fatal(err)
		}
		if out, _ := deliver(`{}`); out.Code != trigger.CodeNotFound {
			t.Fatalf("trigger disabled: %s %s", out.Code, out.Body)
		}
	})
}

// TestDeliveryBasisConcurrent: deliveries to one URL at once share what the first kept (run
// under -race), each starts its own run, and a change made meanwhile is seen by the
// deliveries stored after it.
func TestDeliveryBasisConcurrent(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		box := newBox(t)
		svc := &trigger.Webhooks{Store: st, Runs: &trigger.Service{Store: st, Box: box}, Box: box}
		p, u, token := hookSetup(t, st, svc)
		const n = 16
		codes := make(chan trigger.Code, 2*n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { codes <- svc.Deliver(ctx, signedDelivery(token, fmt.Sprintf(`{"abc":"%d"}`, i), "")).Code })
		}
		wg.Wait()
		// Demoted while deliveries go on: none stored after the change starts a run.
		if err := st.MemberSet(ctx, p.ID, u.ID, "viewer"); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			wg.Go(func() { codes <- svc.Deliver(ctx, signedDelivery(token, fmt.Sprintf(`{"abc":"x%d"}`, i), "")).Code })
		}
		wg.Wait()
		close(codes)
		count := map[trigger.Code]int{}
		for c := range codes {
			count[c]++
		}
		if count[trigger.CodeStarted] != n || count[trigger.CodeInsufficientPerms] != n {
			t.Fatalf("answers %v, want %d started and %d refused", count, n, n)
		}
		runs, err := st.RunList(ctx, p.ID, store.RunListParams{Limit: 100})
		if err != nil || len(runs) != n {
			t.Fatalf("%d runs, %v; want %d", len(runs), err, n)
		}
	})
}
