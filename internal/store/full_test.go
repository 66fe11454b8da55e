package store_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
)

// A database that cannot grow (SQLite's max_page_count: the same SQLITE_FULL a full disk
// gives) fails log appends with ErrFull, which is an ErrUnavailable; what was committed stays,
// the database stays intact, writes that need no new pages go on, and appends work again once
// there is room.
func TestLogAppendDatabaseFull(t *testing.T) {
	t.Parallel()
	s := storetest.Open(t, "sqlite")
	ctx := t.Context()
	_, p := fixture(t, s)
	r := mustRun(t, s, p.ID, twoStages())
	pages, err := s.CountForTest(ctx, "SELECT page_count FROM pragma_page_count()")
	if err != nil {
		t.Fatal(err)
	}
	// The writer is one connection, and max_page_count is a setting of the connection.
	if _, err := s.ExecForTest(ctx, "PRAGMA max_page_count = 200"); err != nil {
		t.Fatal(err)
	}
	t.Logf("database of %d pages limited to 200", pages)
	chunk := bytes.Repeat([]byte("x"), 60<<10)
	var appended int
	for ; appended < 100; appended++ {
		err = s.LogAppend(ctx, []run.LogChunk{{RunID: r.ID, JobID: r.Jobs[0].ID, Data: chunk}})
		if err != nil {
			break
		}
	}
	if !errors.Is(err, store.ErrFull) || !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("after %d appends of 60 KiB into 200 pages: %v, want ErrFull (an ErrUnavailable)", appended, err)
	}
	t.Logf("full after %d chunks: %v", appended, err)
	if got, err := s.LogRead(ctx, r.ID, 0, 1000); err != nil || len(got) != appended {
		t.Fatalf("the chunks committed before the database was full: %d, %v; want %d", len(got), err, appended)
	}
	if _, err := s.RunStatus(ctx, r.ID); err != nil {
		t.Fatalf("read after full: %v", err)
	}
	if ok, err := s.CountForTest(ctx, "SELECT COUNT(*) FROM pragma_integrity_check() WHERE integrity_check = 'ok'"); err != nil || ok != 1 {
		t.Fatalf("integrity_check after SQLITE_FULL: %d, %v", ok, err)
	}
	if _, err := s.ExecForTest(ctx, "PRAGMA max_page_count = 1000000"); err != nil {
		t.Fatal(err)
	}
	if err := s.LogAppend(ctx, []run.LogChunk{{RunID: r.ID, Data: chunk}}); err != nil {
		t.Fatalf("append once there is room again: %v", err)
	}
}
