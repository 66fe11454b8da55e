package store_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/flowd/flowd/internal/store"
)

// basisFixture is a pipeline whose webhook trigger is enabled by its creator (an admin member),
// and the basis a delivery read of them.
func basisFixture(t *testing.T, s *store.Store, name string) (store.User, store.Pipeline, *store.WebhookBasis) {
	t.Helper()
	ctx := t.Context()
	u := mustUser(t, s, "u-"+name)
	p := mustPipeline(t, s, name, u.ID)
	trig, err := s.WebhookEnable(ctx, store.WebhookEnable{PipelineID: p.ID, OwnerID: u.ID,
		TokenHash: []byte("hash-" + name), TokenSealed: []byte("sealed-" + name)})
	if err != nil {
		t.Fatal(err)
	}
	return u, p, &store.WebhookBasis{TokenHash: trig.TokenHash, TriggerUpdatedAt: trig.UpdatedAt, OwnerID: u.ID,
		OwnerName: u.Username, OwnerRole: "admin", Revision: p.Revision}
}

// basisRecords are the three ways a delivery is stored: with a run (one statement on
// PostgreSQL), with a run and an idempotency key (a transaction), without a run.
func basisRecords(pipelineID int64, b *store.WebhookBasis, key string) map[string]store.DeliveryRecord {
	return map[string]store.DeliveryRecord{
		"run":         {Delivery: delivery(pipelineID, ""), NewRun: webhookRun(pipelineID), Answer: answer, Basis: b},
		"run and key": {Delivery: delivery(pipelineID, key), NewRun: webhookRun(pipelineID), Answer: answer, Basis: b},
		"no run":      {Delivery: delivery(pipelineID, ""), Basis: b},
	}
}

// TestDeliveryBasis: a delivery decided on a kept basis is stored while the basis holds, and
// after any change to what it says — the trigger, its owner's standing, the pipeline — nothing
// is stored and the error is ErrStale, whichever way it is stored.
func TestDeliveryBasis(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		admin := mustUser(t, s, "root")
		if _, err := s.UserUpdate(ctx, admin.ID, store.UserUpdate{Admin: new(true)}); err != nil {
			t.Fatal(err)
		}
		_, p, b := basisFixture(t, s, "holds")
		for name, rec := range basisRecords(p.ID, b, "k1") {
			d, _ := mustRecord(t, s, rec)
			if (d.RunID != nil) != (rec.NewRun != nil) {
				t.Errorf("%s: stored %+v", name, d)
			}
		}
		if runs, ds := countRuns(t, s, p.ID), countDeliveries(t, s, p.ID); runs != 2 || ds != 3 {
			t.Fatalf("while the basis holds: %d runs, %d deliveries; want 2 and 3", runs, ds)
		}

		changes := []struct {
			name   string
			change func(u store.User, p store.Pipeline) error
		}{
			{"owner demoted", func(u store.User, p store.Pipeline) error { return s.MemberSet(ctx, p.ID, u.ID, "developer") }},
			{"owner no member", func(u store.User, p store.Pipeline) error { return s.MemberDelete(ctx, p.ID, u.ID) }},
			{"owner disabled", func(u store.User, p store.Pipeline) error {
				_, err := s.UserUpdate(ctx, u.ID, store.UserUpdate{Disabled: new(true)})
				return err
			}},
			{"owner made global admin", func(u store.User, p store.Pipeline) error {
				_, err := s.UserUpdate(ctx, u.ID, store.UserUpdate{Admin: new(true)})
				return err
			}},
			{"owner deleted", func(u store.User, p store.Pipeline) error { return s.UserDelete(ctx, u.ID) }},
			{"trigger disabled", func(u store.User, p store.Pipeline) error {
				_, err := s.WebhookDisable(ctx, p.ID, u.ID)
				return err
			}},
			{"trigger rotated", func(u store.User, p store.Pipeline) error {
				_, err := s.WebhookRotate(ctx, p.ID, u.ID, []byte("new-hash-"+p.Name), []byte("new-sealed"))
				return err
			}},
			{"trigger re-enabled by another", func(u store.User, p store.Pipeline) error {
				_, err := s.WebhookEnable(ctx, store.WebhookEnable{PipelineID: p.ID, OwnerID: admin.ID})
				return err
			}},
			{"pipeline edited", func(u store.User, p store.Pipeline) error {
				_, err := s.PipelineUpdate(ctx, p.ID, "name: "+p.Name+"\ndescription: new\n", nil, u.ID)
				return err
			}},
			{"pipeline trusted", func(u store.User, p store.Pipeline) error {
				_, err := s.PipelineTrust(ctx, p.ID, admin.ID, true)
				return err
			}},
		}
		for i, c := range changes {
			u, p, b := basisFixture(t, s, fmt.Sprintf("change-%d", i))
			if err := c.change(u, p); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			for name, rec := range basisRecords(p.ID, b, "k2") {
				d, _, err := s.DeliveryRecord(ctx, rec)
				if !errors.Is(err, store.ErrStale) {
					t.Errorf("%s, %s: DeliveryRecord = %+v, %v; want ErrStale", c.name, name, d, err)
				}
			}
			if runs, ds := countRuns(t, s, p.ID), countDeliveries(t, s, p.ID); runs != 0 || ds != 0 {
				t.Errorf("%s: %d runs and %d deliveries stored on a stale basis", c.name, runs, ds)
			}
			// The key was not claimed: a delivery decided on what holds now may use it.
			rec := basisRecords(p.ID, nil, "k2")["run and key"]
			if _, replayed := mustRecord(t, s, rec); replayed {
				t.Errorf("%s: the key of a delivery stored on a stale basis replayed", c.name)
			}
		}
	})
}
