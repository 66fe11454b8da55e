package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// openGroupTest opens a SQLite store with a table of its own for group commit tests.
func openGroupTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "flowd.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if s.g == nil {
		t.Fatal("SQLite store has no group writer")
	}
	err = s.write(t.Context(), func(tx db) error {
		_, err := tx.exec(t.Context(), "CREATE TABLE gc (k TEXT PRIMARY KEY)")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func insertKey(ctx context.Context, tx db, k string) error {
	_, err := tx.exec(ctx, "INSERT INTO gc (k) VALUES (?)", k)
	return err
}

func keys(t *testing.T, s *Store) map[string]bool {
	t.Helper()
	rows, err := s.reader().query(t.Context(), "SELECT k FROM gc")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		out[k] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// holdWriter occupies the group writer with a write that waits for release, so the writes
// queued meanwhile are all taken as one group once it is released.
func holdWriter(t *testing.T, s *Store) (release func()) {
	t.Helper()
	started, gate := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.write(context.Background(), func(tx db) error {
			close(started)
			<-gate
			return insertKey(context.Background(), tx, "holder")
		})
	}()
	<-started
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(gate)
			if err := <-done; err != nil {
				t.Errorf("holding write: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

// waitQueued waits until n writes wait in the group writer's lanes.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	queued := func() int { return len(s.g.jobs) + len(s.g.ingest) }
	deadline := time.Now().Add(10 * time.Second)
	for queued() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", queued(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGroupCommitConcurrentWritesAllLand(t *testing.T) {
	t.Parallel()
	s := openGroupTest(t)
	before := s.g.commits.Load()
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- s.write(t.Context(), func(tx db) error { return insertKey(t.Context(), tx, fmt.Sprint(i)) })
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	got := keys(t, s)
	for i := range n {
		if !got[fmt.Sprint(i)] {
			t.Errorf("write %d is missing", i)
		}
	}
	if len(got) != n {
		t.Errorf("%d rows, want %d", len(got), n)
	}
	t.Logf("%d writes in %d commits", n, s.g.commits.Load()-before)
}

func TestGroupCommitOneGroupOneCommit(t *testing.T) {
	t.Parallel()
	s := openGroupTest(t)
	release := holdWriter(t, s)
	before := s.g.commits.Load()
	const n = 100 // below maxGroup: one group
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := s.write(t.Context(), func(tx db) error { return insertKey(t.Context(), tx, fmt.Sprint(i)) }); err != nil {
				t.Error(err)
			}
		})
	}
	waitQueued(t, s, n)
	release()
	wg.Wait()
	// The holder's commit, then one for the group.
	if got := s.g.commits.Load() - before; got != 2 {
		t.Errorf("%d commits, want 2 (the held write, then the %d queued writes together)", got, n)
	}
	if got := len(keys(t, s)); got != n+1 {
		t.Errorf("%d rows, want %d", got, n+1)
	}
}

func TestGroupCommitFailureIsolated(t *testing.T) {
	t.Parallel()
	s := openGroupTest(t)
	if err := s.write(t.Context(), func(tx db) error { return insertKey(t.Context(), tx, "taken") }); err != nil {
		t.Fatal(err)
	}
	release := holdWriter(t, s)
	const n = 60
	errMine := errors.New("fn 17 fails after its insert")
	results := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i] = s.write(t.Context(), func(tx db) error {
				switch i {
				case 17: // writes, then fails: its row must not stay
					if err := insertKey(t.Context(), tx, "17"); err != nil {
						return err
					}
					return errMine
				case 33: // a failing statement after a good one
					if err := insertKey(t.Context(), tx, "33"); err != nil {
						return err
					}
					return insertKey(t.Context(), tx, "taken")
				}
				return insertKey(t.Context(), tx, fmt.Sprint(i))
			})
		})
	}
	waitQueued(t, s, n)
	release()
	wg.Wait()
	got := keys(t, s)
	for i, err := range results {
		switch i {
		case 17:
			if !errors.Is(err, errMine) {
				t.Errorf("write 17: %v, want its own error", err)
			}
		case 33:
			if err == nil || classify(err) != ErrConflict {
				t.Errorf("write 33: %v, want a unique violation", err)
			}
		default:
			if err != nil {
				t.Errorf("write %d: %v", i, err)
			}
			if !got[fmt.Sprint(i)] {
				t.Errorf("write %d is missing", i)
			}
		}
	}
	if got["17"] || got["33"] {
		t.Errorf("a failed write's rows stayed: %v", got)
	}
	if len(got) != n-2+2 { // n-2 good writes, "taken", "holder"
		t.Errorf("%d rows, want %d", len(got), n)
	}
}

func TestGroupCommitPanicIsolated(t *testing.T) {
	t.Parallel()
	s := openGroupTest(t)
	release := holdWriter(t, s)
	var wg sync.WaitGroup
	var recovered any
	wg.Go(func() {
		defer func() { recovered = recover() }()
		s.write(t.Context(), func(tx db) error {
			insertKey(t.Context(), tx, "panic")
			panic("boom")
		})
	})
	for i := range 5 {
		wg.Go(func() {
			if err := s.write(t.Context(), func(tx db) error { return insertKey(t.Context(), tx, fmt.Sprint(i)) }); err != nil {
				t.Error(err)
			}
		})
	}
	waitQueued(t, s, 6)
	release()
	wg.Wait()
	if recovered != "boom" {
		t.Errorf("caller recovered %v, want the fn's panic", recovered)
	}
	got := keys(t, s)
	if got["panic"] || len(got) != 6 {
		t.Errorf("rows %v, want holder and 0…4", got)
	}
}

func TestGroupCommitCanceledBeforeTurn(t *testing.T) {
	t.Parallel()
	s := openGroupTest(t)
	release := holdWriter(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- s.write(ctx, func(tx db) error {
			ran <- struct{}{}
			return insertKey(ctx, tx, "canceled")
		})
	}()
	other := make(chan error, 1)
	waitQueued(t, s, 1)
	go func() {
		other <- s.write(t.Context(), func(tx db) error { return insertKey(t.Context(), tx, "other") })
	}()
	waitQueued(t, s, 2)
	cancel()
	// The canceled caller returns while the writer is still held.
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled write: %v, want context.Canceled", err)
	}
	release()
	if err := <-other; err != nil {
		t.Fatal(err)
	}
	select {
	case <-ran:
		t.Error("the canceled write's fn ran")
	default:
	}
	if got := keys(t, s); got["canceled"] || !got["other"] {
		t.Errorf("rows %v, want other and not canceled", got)
	}

	// A ctx already done never queues.
	if err := s.write(ctx, func(tx db) error { return insertKey(ctx, tx, "late") }); !errors.Is(err, context.Canceled) {
		t.Errorf("write with a done ctx: %v, want context.Canceled", err)
	}
}

func TestGroupCommitClose(t *testing.T) {
	t.Parallel()
	s := openGroupTest(t)
	release := holdWriter(t, s)
	const n = 10
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- s.write(context.Background(), func(tx db) error { return insertKey(context.Background(), tx, fmt.Sprint(i)) })
		}()
	}
	waitQueued(t, s, n)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-errs; err != nil { // queued before Close: committed
			t.Error(err)
		}
	}
	if err := s.write(t.Context(), func(tx db) error { return nil }); !errors.Is(err, ErrUnavailable) {
		t.Errorf("write after Close: %v, want ErrUnavailable", err)
	}
}

// TestGroupCommitDurabilityClasses checks the synchronous setting each kind of transaction
// commits with, read back inside the transaction: a lone relaxed write and a group of relaxed
// writes run with NORMAL (1), a lone acknowledged write, a group of them and a group mixing both
// kinds with FULL (2), in an order that switches the setting both ways.
func TestGroupCommitDurabilityClasses(t *testing.T) {
	t.Parallel()
	s := openGroupTest(t)
	const (
		normal = 1
		full   = 2
	)
	cases := []struct {
		name    string
		relaxed []bool // one write each; more than one: queued together, one group
		want    int
	}{
		{"lone relaxed", []bool{true}, normal},
		{"lone acknowledged", []bool{false}, full},
		{"relaxed group", []bool{true, true, true, true}, normal},
		{"mixed group", []bool{true, true, false, true}, full},
		{"relaxed group after mixed", []bool{true, true}, normal},
		{"acknowledged group", []bool{false, false, false}, full},
		{"lone relaxed again", []bool{true}, normal},
		{"mixed group, acknowledged first", []bool{false, true}, full},
	}
	for _, c := range cases {
		got := make([]int, len(c.relaxed))
		writeOne := func(i int) error {
			fn := func(tx db) error {
				if err := tx.queryRow(t.Context(), "PRAGMA synchronous").Scan(&got[i]); err != nil {
					return err
				}
				return insertKey(t.Context(), tx, fmt.Sprintf("%s %d", c.name, i))
			}
			if c.relaxed[i] {
				return s.writeRelaxed(t.Context(), fn)
			}
			return s.write(t.Context(), fn)
		}
		before := s.g.commits.Load()
		if len(c.relaxed) == 1 {
			if err := writeOne(0); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		} else {
			release := holdWriter(t, s) // an acknowledged write: the group after it must switch
			before = s.g.commits.Load()
			var wg sync.WaitGroup
			for i := range c.relaxed {
				wg.Go(func() {
					if err := writeOne(i); err != nil {
						t.Errorf("%s: write %d: %v", c.name, i, err)
					}
				})
			}
			waitQueued(t, s, len(c.relaxed))
			release()
			wg.Wait()
			before++ // the holder's commit
			if err := s.write(t.Context(), func(tx db) error {
				_, err := tx.exec(t.Context(), "DELETE FROM gc WHERE k = 'holder'")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			before++
		}
		if n := s.g.commits.Load() - before; n != 1 {
			t.Errorf("%s: %d commits, want 1", c.name, n)
		}
		for i, v := range got {
			if v != c.want {
				t.Errorf("%s: write %d (relaxed %v) ran with synchronous=%d, want %d", c.name, i, c.relaxed[i], v, c.want)
			}
		}
	}
	// After a relaxed commit the connection is left at NORMAL; an acknowledged write still
	// commits FULL.
	if err := s.writeRelaxed(t.Context(), func(tx db) error { return nil }); err != nil {
		t.Fatal(err)
	}
	var mode int
	if err := s.write(t.Context(), func(tx db) error {
		return tx.queryRow(t.Context(), "PRAGMA synchronous").Scan(&mode)
	}); err != nil {
		t.Fatal(err)
	}
	if mode != full {
		t.Errorf("acknowledged write after a relaxed one ran with synchronous=%d, want %d", mode, full)
	}
}

// queueWrites starts n writes of class in the background, each recording in groups[i] the
// number of the group that ran it (commits before it), and waits until they are all queued
// (queuedBefore writes wait already).
func queueWrites(t *testing.T, s *Store, wg *sync.WaitGroup, class writeClass, name string, groups []int64, queuedBefore int) {
	t.Helper()
	for i := range groups {
		wg.Go(func() {
			err := s.writeAs(t.Context(), class, func(tx db) error {
				groups[i] = s.g.commits.Load()
				return insertKey(t.Context(), tx, fmt.Sprintf("%s %d", name, i))
			})
			if err != nil {
				t.Errorf("%s write %d: %v", name, i, err)
			}
		})
	}
	waitQueued(t, s, queuedBefore+len(groups))
}

// TestGroupCommitJobProgressFirst floods the ingest lane with three groups' worth of writes
// queued before one job progress write: the job's write still goes in the very next group,
// which takes only ingestShare ingest writes beside it; the ingest writes all land, at most
// maxGroup per group after that.
func TestGroupCommitJobProgressFirst(t *testing.T) {
	t.Parallel()
	s := openGroupTest(t)
	release := holdWriter(t, s)
	var wg sync.WaitGroup
	ingest := make([]int64, 3*maxGroup)
	queueWrites(t, s, &wg, acknowledged, "ingest", ingest, 0)
	job := make([]int64, 1)
	queueWrites(t, s, &wg, relaxed|jobProgress, "job", job, len(ingest))
	first := s.g.commits.Load() + 1 // the group after the held write's
	release()
	wg.Wait()
	if job[0] != first {
		t.Errorf("the job write ran in group %d after the held one, want 0 (the next): ingest delayed it", job[0]-first)
	}
	perGroup := map[int64]int{}
	for _, g := range ingest {
		perGroup[g-first]++
	}
	if perGroup[0] != ingestShare {
		t.Errorf("the job write's group took %d ingest writes, want ingestShare = %d", perGroup[0], ingestShare)
	}
	for g, n := range perGroup {
		if n > maxGroup {
			t.Errorf("group %d took %d ingest writes, more than maxGroup %d", g, n, maxGroup)
		}
	}
	if got, want := len(keys(t, s)), len(ingest)+len(job)+1; got != want {
		t.Errorf("%d rows, want %d", got, want)
	}
}

// TestGroupCommitIngestNotStarved floods the job progress lane with more than three groups'
// worth of writes queued before one ingest write: the ingest write still goes in the next
// group, which is full (job progress takes the places ingest leaves).
func TestGroupCommitIngestNotStarved(t *testing.T) {
	t.Parallel()
	s := openGroupTest(t)
	release := holdWriter(t, s)
	var wg sync.WaitGroup
	job := make([]int64, 3*maxGroup+10)
	queueWrites(t, s, &wg, relaxed|jobProgress, "job", job, 0)
	ingest := make([]int64, 1)
	queueWrites(t, s, &wg, acknowledged, "ingest", ingest, len(job))
	first := s.g.commits.Load() + 1
	release()
	wg.Wait()
	if ingest[0] != first {
		t.Errorf("the ingest write ran in group %d after the held one, want 0 (the next): job progress starved it", ingest[0]-first)
	}
	inFirst := 0
	for _, g := range job {
		if g == first {
			inFirst++
		}
	}
	if inFirst != maxGroup-1 {
		t.Errorf("the first group took %d job writes beside the ingest write, want %d (a full group)", inFirst, maxGroup-1)
	}
	if got, want := len(keys(t, s)), len(ingest)+len(job)+1; got != want {
		t.Errorf("%d rows, want %d", got, want)
	}
}
