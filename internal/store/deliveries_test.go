package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// webhookRun is the run a delivery starts.
func webhookRun(pipelineID int64) *store.RunCreate {
	return &store.RunCreate{PipelineID: pipelineID, Trigger: run.TriggerWebhook, TriggeredBy: "alice",
		Variables: map[string]string{"A": "1"}, Jobs: twoStages()}
}

// answer is an Answer that reports the run it was given.
func answer(r run.Run) (int, []byte) {
	return 202, fmt.Appendf(nil, `{"run":{"id":%d,"number":%d,"status":%q}}`, r.ID, r.Number, r.Status)
}

// noAnswer is an Answer that must not be called.
func noAnswer(t *testing.T) func(run.Run) (int, []byte) {
	return func(r run.Run) (int, []byte) {
		t.Errorf("Answer called with run %d", r.ID)
		return 500, nil
	}
}

func delivery(pipelineID int64, key string) store.Delivery {
	return store.Delivery{
		PipelineID:     pipelineID,
		RemoteAddr:     "192.0.2.1:4242",
		Headers:        map[string][]string{"Content-Type": {"application/json"}, "X-Many": {"a", "b"}},
		Body:           []byte(`{"ref":"main"}`),
		Trace:          []byte(`[{"step":"token","ok":true}]`),
		IdempotencyKey: key,
	}
}

func mustRecord(t *testing.T, s *store.Store, rec store.DeliveryRecord) (store.Delivery, bool) {
	t.Helper()
	d, replayed, err := s.DeliveryRecord(t.Context(), rec)
	if err != nil {
		t.Fatalf("DeliveryRecord: %v", err)
	}
	return d, replayed
}

func countRuns(t *testing.T, s *store.Store, pipelineID int64) int {
	t.Helper()
	rs, err := s.RunList(t.Context(), pipelineID, store.RunListParams{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	return len(rs)
}

func countDeliveries(t *testing.T, s *store.Store, pipelineID int64) int {
	t.Helper()
	ds, err := s.DeliveryList(t.Context(), pipelineID, 200, 0)
	if err != nil {
		t.Fatal(err)
	}
	return len(ds)
}

func TestDeliveryRecord(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)

		// With a run: the run and the delivery are stored together.
		in := delivery(p.ID, "")
		in.BodyTruncated = true
		d, replayed := mustRecord(t, s, store.DeliveryRecord{Delivery: in, NewRun: webhookRun(p.ID), Answer: answer})
		if replayed || d.ID == 0 || d.RunID == nil || d.StatusCode != 202 || d.Pipeline != "hello" ||
			d.ReceivedAt.IsZero() || d.ReplayOf != nil || !d.BodyTruncated {
			t.Fatalf("DeliveryRecord with a run = %+v, replayed %v", d, replayed)
		}
		r := mustGet(t, s, *d.RunID)
		if r.Trigger != run.TriggerWebhook || r.Status != run.Queued || len(r.Jobs) != 3 || r.Variables["A"] != "1" {
			t.Fatalf("the delivery's run = %+v", r)
		}
		if _, want := answer(r); string(d.Response) != string(want) {
			t.Fatalf("Response = %s, want %s", d.Response, want)
		}
		got, err := s.DeliveryGet(ctx, d.ID)
		if err != nil || !reflect.DeepEqual(got, d) {
			t.Fatalf("DeliveryGet = %+v, %v\nwant %+v", got, err, d)
		}
		if got.Headers["X-Many"][1] != "b" || string(got.Body) != `{"ref":"main"}` || string(got.Trace) != `[{"step":"token","ok":true}]` ||
			got.RemoteAddr != "192.0.2.1:4242" {
			t.Fatalf("DeliveryGet lost fields: %+v", got)
		}

		// Without a run: the delivery carries its answer; Answer is not called.
		in = delivery(p.ID, "")
		in.StatusCode, in.Response = 200, []byte(`{"run":null,"skipped":"ping"}`)
		d, replayed = mustRecord(t, s, store.DeliveryRecord{Delivery: in, Answer: noAnswer(t)})
		if replayed || d.RunID != nil || d.StatusCode != 200 || string(d.Response) != `{"run":null,"skipped":"ping"}` {
			t.Fatalf("DeliveryRecord without a run = %+v", d)
		}

		// A refused request: an error code, no run.
		in = delivery(p.ID, "")
		in.Headers, in.Body = nil, nil
		in.StatusCode, in.ErrorCode, in.Response = 403, "insufficient_permissions", []byte(`{"error":{}}`)
		d, _ = mustRecord(t, s, store.DeliveryRecord{Delivery: in})
		if got, err := s.DeliveryGet(ctx, d.ID); err != nil || got.StatusCode != 403 || got.ErrorCode != "insufficient_permissions" ||
			got.RunID != nil || len(got.Headers) != 0 || got.Body != nil {
			t.Fatalf("refused delivery = %+v, %v", got, err)
		}

		// Failures store nothing.
		runs, deliveries := countRuns(t, s, p.ID), countDeliveries(t, s, p.ID)
		if _, _, err := s.DeliveryRecord(ctx, store.DeliveryRecord{Delivery: delivery(p.ID, ""), NewRun: webhookRun(p.ID)}); err == nil {
			t.Fatal("DeliveryRecord with NewRun and no Answer succeeded")
		}
		if _, _, err := s.DeliveryRecord(ctx, store.DeliveryRecord{Delivery: delivery(9999, ""), NewRun: webhookRun(9999), Answer: answer}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("DeliveryRecord(unknown pipeline): %v, want ErrNotFound", err)
		}
		if _, _, err := s.DeliveryRecord(ctx, store.DeliveryRecord{Delivery: delivery(9999, "")}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("DeliveryRecord(unknown pipeline, no run): %v, want ErrNotFound", err)
		}
		// The transaction fails after the run is created: the run goes too.
		cctx, cancel := context.WithCancel(ctx)
		_, _, err = s.DeliveryRecord(cctx, store.DeliveryRecord{Delivery: delivery(p.ID, "k"), NewRun: webhookRun(p.ID),
			Answer: func(r run.Run) (int, []byte) { cancel(); return answer(r) }})
		if err == nil {
			t.Fatal("DeliveryRecord whose context ends inside the transaction succeeded")
		}
		if n, m := countRuns(t, s, p.ID), countDeliveries(t, s, p.ID); n != runs || m != deliveries {
			t.Fatalf("after failed records: %d runs, %d deliveries; want %d, %d", n, m, runs, deliveries)
		}
		// The key of the failed record was not kept either.
		if d, replayed := mustRecord(t, s, store.DeliveryRecord{Delivery: delivery(p.ID, "k"), NewRun: webhookRun(p.ID), Answer: answer}); replayed || d.RunID == nil {
			t.Fatalf("key of a failed record replayed: %+v", d)
		}
	})
}

func TestDeliveryIdempotency(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		alice, p := fixture(t, s)
		other := mustPipeline(t, s, "other", alice.ID)

		first, replayed := mustRecord(t, s, store.DeliveryRecord{Delivery: delivery(p.ID, "k1"), NewRun: webhookRun(p.ID), Answer: answer})
		if replayed || first.RunID == nil || first.IdempotencyKey != "k1" {
			t.Fatalf("first = %+v, replayed %v", first, replayed)
		}
		in := delivery(p.ID, "k1")
		in.Body = []byte(`{"again":true}`)
		second, replayed := mustRecord(t, s, store.DeliveryRecord{Delivery: in, NewRun: webhookRun(p.ID), Answer: noAnswer(t)})
		if !replayed || second.ID == first.ID || second.ReplayOf == nil || *second.ReplayOf != first.ID ||
			second.StatusCode != first.StatusCode || string(second.Response) != string(first.Response) ||
			second.RunID == nil || *second.RunID != *first.RunID || second.IdempotencyKey != "k1" ||
			string(second.Body) != `{"again":true}` {
			t.Fatalf("replay = %+v, replayed %v; first %+v", second, replayed, first)
		}
		if got, err := s.DeliveryGet(ctx, second.ID); err != nil || !reflect.DeepEqual(got, second) {
			t.Fatalf("DeliveryGet(replay) = %+v, %v", got, err)
		}
		if n := countRuns(t, s, p.ID); n != 1 {
			t.Fatalf("%d runs after a replay, want 1", n)
		}

		// Keys belong to a pipeline.
		if d, replayed := mustRecord(t, s, store.DeliveryRecord{Delivery: delivery(other.ID, "k1"), NewRun: webhookRun(other.ID), Answer: answer}); replayed || d.RunID == nil {
			t.Fatalf("same key on another pipeline = %+v, replayed", d)
		}
		// Dry runs and redeliveries neither replay nor claim a key.
		in = delivery(p.ID, "k1")
		in.DryRun, in.StatusCode = true, 200
		if d, replayed := mustRecord(t, s, store.DeliveryRecord{Delivery: in}); replayed || d.ReplayOf != nil || d.StatusCode != 200 || d.IdempotencyKey != "k1" {
			t.Fatalf("dry run with a used key = %+v, replayed %v", d, replayed)
		}
		in = delivery(p.ID, "k1")
		in.RedeliveryOf = &first.ID
		if d, replayed := mustRecord(t, s, store.DeliveryRecord{Delivery: in, NewRun: webhookRun(p.ID), Answer: answer}); replayed || d.RunID == nil || *d.RunID == *first.RunID {
			t.Fatalf("redelivery with a used key = %+v, replayed %v", d, replayed)
		}
		in = delivery(p.ID, "k-dry")
		in.DryRun = true
		mustRecord(t, s, store.DeliveryRecord{Delivery: in})
		if _, replayed := mustRecord(t, s, store.DeliveryRecord{Delivery: delivery(p.ID, "k-dry"), NewRun: webhookRun(p.ID), Answer: answer}); replayed {
			t.Fatal("a dry run claimed its key")
		}

		// A first answer without a run replays too.
		in = delivery(p.ID, "k2")
		in.StatusCode, in.ErrorCode, in.Response = 422, "invalid_variables", []byte(`{"error":{"code":"invalid_variables"}}`)
		k2, _ := mustRecord(t, s, store.DeliveryRecord{Delivery: in})
		if d, replayed := mustRecord(t, s, store.DeliveryRecord{Delivery: delivery(p.ID, "k2"), NewRun: webhookRun(p.ID), Answer: noAnswer(t)}); !replayed ||
			d.StatusCode != 422 || d.ErrorCode != "invalid_variables" || d.RunID != nil || *d.ReplayOf != k2.ID {
			t.Fatalf("replay of an error = %+v, replayed %v", d, replayed)
		}

		// Past the window the key starts anew, and the new first is replayed from then on.
		n, err := s.ExecForTest(ctx, "UPDATE webhook_idempotency SET created_at = ? WHERE pipeline_id = ? AND key = ?",
			time.Now().Add(-store.IdempotencyWindow-time.Minute), p.ID, "k1")
		if err != nil || n != 1 {
			t.Fatalf("age key: %d rows, %v", n, err)
		}
		third, replayed := mustRecord(t, s, store.DeliveryRecord{Delivery: delivery(p.ID, "k1"), NewRun: webhookRun(p.ID), Answer: answer})
		if replayed || third.RunID == nil || *third.RunID == *first.RunID || third.ReplayOf != nil {
			t.Fatalf("after the window = %+v, replayed %v", third, replayed)
		}
		fourth, replayed := mustRecord(t, s, store.DeliveryRecord{Delivery: delivery(p.ID, "k1"), NewRun: webhookRun(p.ID), Answer: noAnswer(t)})
		if !replayed || *fourth.ReplayOf != third.ID || *fourth.RunID != *third.RunID {
			t.Fatalf("replay after the window = %+v, replayed %v", fourth, replayed)
		}
	})
}

// TestDeliveryIdempotencyRace: many requests with one key at once start exactly one run.
func TestDeliveryIdempotencyRace(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		_, p := fixture(t, s)
		const n = 50
		type result struct {
			d        store.Delivery
			replayed bool
		}
		results := make(chan result, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				in := delivery(p.ID, "race")
				in.Body = fmt.Appendf(nil, `{"i":%d}`, i)
				d, replayed, err := s.DeliveryRecord(t.Context(), store.DeliveryRecord{Delivery: in, NewRun: webhookRun(p.ID), Answer: answer})
				if err != nil {
					t.Errorf("DeliveryRecord %d: %v", i, err)
					return
				}
				results <- result{d, replayed}
			})
		}
		close(start)
		wg.Wait()
		close(results)
		var firsts, replays []store.Delivery
		for r := range results {
			if r.replayed {
				replays = append(replays, r.d)
			} else {
				firsts = append(firsts, r.d)
			}
		}
		if len(firsts) != 1 || len(replays) != n-1 {
			t.Fatalf("%d started a run, %d replayed; want 1 and %d", len(firsts), len(replays), n-1)
		}
		first := firsts[0]
		for _, d := range replays {
			if d.ReplayOf == nil || *d.ReplayOf != first.ID || d.RunID == nil || *d.RunID != *first.RunID ||
				string(d.Response) != string(first.Response) || d.StatusCode != first.StatusCode {
				t.Errorf("replay %+v does not replay %+v", d, first)
			}
		}
		if got := countRuns(t, s, p.ID); got != 1 {
			t.Fatalf("%d runs, want 1", got)
		}
		if got := countDeliveries(t, s, p.ID); got != n {
			t.Fatalf("%d deliveries, want %d", got, n)
		}
	})
}

func TestDeliveryList(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		alice, p := fixture(t, s)
		other := mustPipeline(t, s, "other", alice.ID)
		mustRecord(t, s, store.DeliveryRecord{Delivery: delivery(other.ID, "")})
		var ids []int64
		for range 7 {
			d, _ := mustRecord(t, s, store.DeliveryRecord{Delivery: delivery(p.ID, "")})
			ids = append(ids, d.ID)
		}
		page := func(limit int, before int64) []int64 {
			ds, err := s.DeliveryList(ctx, p.ID, limit, before)
			if err != nil {
				t.Fatal(err)
			}
			var out []int64
			for _, d := range ds {
				if d.Headers != nil || d.Body != nil || d.Pipeline != "hello" || d.RemoteAddr == "" || d.Trace == nil {
					t.Errorf("listed delivery = %+v", d)
				}
				out = append(out, d.ID)
			}
			return out
		}
		if got, want := page(3, 0), []int64{ids[6], ids[5], ids[4]}; !reflect.DeepEqual(got, want) {
			t.Fatalf("page 1 = %v, want %v", got, want)
		}
		if got, want := page(3, ids[4]), []int64{ids[3], ids[2], ids[1]}; !reflect.DeepEqual(got, want) {
			t.Fatalf("page 2 = %v, want %v", got, want)
		}
		if got, want := page(3, ids[1]), []int64{ids[0]}; !reflect.DeepEqual(got, want) {
			t.Fatalf("page 3 = %v, want %v", got, want)
		}
		if got := page(0, 0); len(got) != 7 {
			t.Fatalf("default page = %v", got)
		}
		if _, err := s.DeliveryGet(ctx, 99999); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("DeliveryGet(99999): %v, want ErrNotFound", err)
		}
	})
}

func TestDeliveryPrune(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		alice, a := fixture(t, s)
		b := mustPipeline(t, s, "b", alice.ID)
		// a: one keyed delivery with a run, then 9 more (one a replay of it); b: 3.
		keyed, _ := mustRecord(t, s, store.DeliveryRecord{Delivery: delivery(a.ID, "key"), NewRun: webhookRun(a.ID), Answer: answer})
		replay, replayed := mustRecord(t, s, store.DeliveryRecord{Delivery: delivery(a.ID, "key"), NewRun: webhookRun(a.ID), Answer: answer})
		if !replayed {
			t.Fatal("no replay")
		}
		for range 8 {
			mustRecord(t, s, store.DeliveryRecord{Delivery: delivery(a.ID, "")})
		}
		var bIDs []int64
		for range 3 {
			d, _ := mustRecord(t, s, store.DeliveryRecord{Delivery: delivery(b.ID, "")})
			bIDs = append(bIDs, d.ID)
		}

		// By count: a keeps its newest 5 and the first delivery of its live key.
		n, err := s.DeliveryPrune(ctx, 5, 30*24*time.Hour)
		if err != nil || n != 4 {
			t.Fatalf("DeliveryPrune(5) = %d, %v; want 4", n, err)
		}
		if got := countDeliveries(t, s, a.ID); got != 6 {
			t.Fatalf("a has %d deliveries, want 6", got)
		}
		if got := countDeliveries(t, s, b.ID); got != 3 {
			t.Fatalf("b has %d deliveries, want 3", got)
		}
		if _, err := s.DeliveryGet(ctx, keyed.ID); err != nil {
			t.Fatalf("the first delivery of a live key was pruned: %v", err)
		}
		if _, err := s.DeliveryGet(ctx, replay.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("DeliveryGet(old replay): %v, want ErrNotFound", err)
		}
		// The key still replays.
		if d, replayed := mustRecord(t, s, store.DeliveryRecord{Delivery: delivery(a.ID, "key"), NewRun: webhookRun(a.ID), Answer: noAnswer(t)}); !replayed || *d.ReplayOf != keyed.ID {
			t.Fatalf("key after prune = %+v, replayed %v", d, replayed)
		}

		// By age.
		if _, err := s.ExecForTest(ctx, "UPDATE deliveries SET received_at = ? WHERE id = ?", time.Now().Add(-48*time.Hour), bIDs[0]); err != nil {
			t.Fatal(err)
		}
		if n, err := s.DeliveryPrune(ctx, 100, 24*time.Hour); err != nil || n != 1 {
			t.Fatalf("DeliveryPrune(by age) = %d, %v; want 1", n, err)
		}
		if _, err := s.DeliveryGet(ctx, bIDs[0]); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("DeliveryGet(old delivery): %v, want ErrNotFound", err)
		}

		// Once the key expires, its first delivery goes like any other, and the key row too.
		if _, err := s.ExecForTest(ctx, "UPDATE webhook_idempotency SET created_at = ?", time.Now().Add(-store.IdempotencyWindow-time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ExecForTest(ctx, "UPDATE deliveries SET received_at = ? WHERE id = ?", time.Now().Add(-48*time.Hour), keyed.ID); err != nil {
			t.Fatal(err)
		}
		if n, err := s.DeliveryPrune(ctx, 100, 24*time.Hour); err != nil || n != 1 {
			t.Fatalf("DeliveryPrune(expired key) = %d, %v; want 1", n, err)
		}
		if keys, err := s.CountForTest(ctx, "SELECT COUNT(*) FROM webhook_idempotency"); err != nil || keys != 0 {
			t.Fatalf("%d idempotency keys left, %v; want 0", keys, err)
		}
		// The keyed delivery's run is untouched.
		mustGet(t, s, *keyed.RunID)
		// A zero bound is off.
		if n, err := s.DeliveryPrune(ctx, 0, 0); err != nil || n != 0 {
			t.Fatalf("DeliveryPrune(0, 0) = %d, %v; want 0", n, err)
		}
	})
}

func TestWebhookPipelineDeleteCascades(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		alice, p := fixture(t, s)
		keep := mustPipeline(t, s, "keep", alice.ID)
		for _, pid := range []int64{p.ID, keep.ID} {
			mustEnable(t, s, store.WebhookEnable{PipelineID: pid, OwnerID: alice.ID,
				TokenHash: fmt.Appendf(nil, "h%d", pid), TokenSealed: []byte("s"), SetSecret: true, SecretSealed: []byte("x")})
			mustRecord(t, s, store.DeliveryRecord{Delivery: delivery(pid, "key"), NewRun: webhookRun(pid), Answer: answer})
			mustRecord(t, s, store.DeliveryRecord{Delivery: delivery(pid, "key"), NewRun: webhookRun(pid), Answer: answer})
		}
		if err := s.PipelineDelete(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.WebhookGet(ctx, p.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("WebhookGet after delete: %v", err)
		}
		if _, err := s.WebhookByTokenHash(ctx, fmt.Appendf(nil, "h%d", p.ID)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("WebhookByTokenHash after delete: %v", err)
		}
		for _, table := range []string{"webhook_triggers", "webhook_audit", "deliveries", "webhook_idempotency"} {
			n, err := s.CountForTest(ctx, "SELECT COUNT(*) FROM "+table+" WHERE pipeline_id = ?", p.ID)
			if err != nil || n != 0 {
				t.Errorf("%s: %d rows of the deleted pipeline left, %v", table, n, err)
			}
			n, err = s.CountForTest(ctx, "SELECT COUNT(*) FROM "+table+" WHERE pipeline_id = ?", keep.ID)
			if err != nil || n == 0 {
				t.Errorf("%s: the other pipeline's rows are gone, %v", table, err)
			}
		}
		if w, err := s.WebhookGet(ctx, keep.ID); err != nil || !w.Enabled {
			t.Fatalf("other pipeline's trigger = %+v, %v", w, err)
		}
	})
}
