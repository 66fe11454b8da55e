package store_test

import (
	"testing"

	"github.com/flowd/flowd/internal/store"
)

// TestDeliveryKeyNumbers: a delivery whose idempotency key replays an earlier answer takes no
// run number, and one that claims a key (or takes over an expired one) numbers its run as a
// delivery without a key would.
func TestDeliveryKeyNumbers(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		number := func(d store.Delivery) int64 {
			t.Helper()
			r, err := s.RunGet(ctx, *d.RunID)
			if err != nil {
				t.Fatal(err)
			}
			return r.Number
		}
		first, _ := mustRecord(t, s, store.DeliveryRecord{Delivery: delivery(p.ID, "k"), NewRun: webhookRun(p.ID), Answer: answer})
		for range 3 {
			if _, replayed := mustRecord(t, s, store.DeliveryRecord{Delivery: delivery(p.ID, "k"), NewRun: webhookRun(p.ID), Answer: noAnswer(t)}); !replayed {
				t.Fatal("a repeated key did not replay")
			}
		}
		second, _ := mustRecord(t, s, store.DeliveryRecord{Delivery: delivery(p.ID, "k2"), NewRun: webhookRun(p.ID), Answer: answer})
		if a, b := number(first), number(second); a != 1 || b != 2 {
			t.Fatalf("runs numbered %d and %d around three replays, want 1 and 2", a, b)
		}
		// The first delivery of a key removed (by hand: the store keeps it while the key
		// lives): the key starts a run again, and replays that one from then on.
		if n, err := s.ExecForTest(ctx, "DELETE FROM deliveries WHERE id = ?", first.ID); err != nil || n != 1 {
			t.Fatalf("delete the first delivery: %d, %v", n, err)
		}
		again, replayed := mustRecord(t, s, store.DeliveryRecord{Delivery: delivery(p.ID, "k"), NewRun: webhookRun(p.ID), Answer: answer})
		if replayed || again.RunID == nil || number(again) != 3 {
			t.Fatalf("key whose first delivery is gone = %+v, replayed %v", again, replayed)
		}
		if d, replayed := mustRecord(t, s, store.DeliveryRecord{Delivery: delivery(p.ID, "k"), NewRun: webhookRun(p.ID), Answer: noAnswer(t)}); !replayed || *d.ReplayOf != again.ID {
			t.Fatalf("replay after = %+v, replayed %v", d, replayed)
		}
	})
}
