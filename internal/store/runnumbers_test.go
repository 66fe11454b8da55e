package store_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
)

// openDSN opens a store on dsn, closed at cleanup.
func openDSN(t *testing.T, dsn string) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, dsn, storetest.Logger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestRunNumbersTwoStores: runs created at once on one pipeline through two stores opened
// separately on one PostgreSQL schema (two servers), by RunCreate and by DeliveryRecord, get
// the numbers 1..n, each once, and each caller sees its own numbers increase.
func TestRunNumbersTwoStores(t *testing.T) {
	t.Parallel()
	dsn := storetest.DSN(t, "postgres")
	stores := []*store.Store{openDSN(t, dsn), openDSN(t, dsn)}
	_, p := fixture(t, stores[0])
	const workers, each = 4, 25 // per store
	var (
		mu  sync.Mutex
		all []int64
		wg  sync.WaitGroup
	)
	for si, s := range stores {
		for w := range workers {
			wg.Go(func() {
				var mine []int64
				for i := range each {
					var number int64
					if (w+i)%2 == 0 {
						r, err := s.RunCreate(t.Context(), *webhookRun(p.ID))
						if err != nil {
							t.Errorf("store %d: RunCreate: %v", si, err)
							return
						}
						number = r.Number
					} else {
						d, _, err := s.DeliveryRecord(t.Context(), store.DeliveryRecord{
							Delivery: delivery(p.ID, ""), NewRun: webhookRun(p.ID), Answer: answer})
						if err != nil {
							t.Errorf("store %d: DeliveryRecord: %v", si, err)
							return
						}
						r, err := s.RunGet(t.Context(), *d.RunID)
						if err != nil {
							t.Errorf("store %d: RunGet: %v", si, err)
							return
						}
						number = r.Number
					}
					if len(mine) > 0 && number <= mine[len(mine)-1] {
						t.Errorf("store %d worker %d: number %d after %d", si, w, number, mine[len(mine)-1])
					}
					mine = append(mine, number)
				}
				mu.Lock()
				all = append(all, mine...)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	slices.Sort(all)
	n := len(stores) * workers * each
	if len(all) != n {
		t.Fatalf("%d runs created, want %d", len(all), n)
	}
	for i, num := range all {
		if num != int64(i+1) {
			t.Fatalf("numbers sorted = %v…, want 1..%d each once", all[:i+1], n)
		}
	}
}

// TestRunNumberGap: on PostgreSQL a run's number is taken outside its transaction, so a run
// whose transaction fails leaves its number unused; the next run takes the one after.
func TestRunNumberGap(t *testing.T) {
	t.Parallel()
	s := storetest.Open(t, "postgres")
	_, p := fixture(t, s)
	if r := mustRun(t, s, p.ID, nil); r.Number != 1 {
		t.Fatalf("first run number %d, want 1", r.Number)
	}
	// PostgreSQL refuses a NUL byte in text: the steps' INSERT fails after the number was taken.
	_, err := s.RunCreate(t.Context(), store.RunCreate{PipelineID: p.ID, Trigger: run.TriggerManual,
		Jobs: []run.Job{job(0, "build", 0, "j", "a\x00b")}})
	if err == nil {
		t.Fatal("RunCreate with a NUL byte in a step: no error")
	}
	if r := mustRun(t, s, p.ID, nil); r.Number != 3 {
		t.Errorf("run after the failed one: number %d, want 3 (2 left unused)", r.Number)
	}
	if n, err := s.CountForTest(t.Context(), "SELECT COUNT(*) FROM runs WHERE pipeline_id = ?", p.ID); err != nil || n != 2 {
		t.Errorf("runs stored = %d, %v; want 2", n, err)
	}
}
