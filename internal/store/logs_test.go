package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/store/storetest"
)

func TestLogAppendAndRead(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, p := fixture(t, s)
		a, b := mustRun(t, s, p.ID, twoStages()), mustRun(t, s, p.ID, twoStages())
		jobID := a.Jobs[0].ID
		const total = 1000
		// 10 batches of 100 chunks, each batch interleaving the two runs.
		for batch := range 10 {
			var chunks []run.LogChunk
			for i := range 100 {
				n := batch*100 + i
				chunks = append(chunks, run.LogChunk{RunID: a.ID, JobID: jobID, Data: fmt.Appendf(nil, "line %d\n", n)})
				if i%10 == 0 {
					chunks = append(chunks, run.LogChunk{RunID: b.ID, Data: fmt.Appendf(nil, "b %d\n", n)})
				}
			}
			if err := s.LogAppend(ctx, chunks); err != nil {
				t.Fatal(err)
			}
			if c := chunks[len(chunks)-1]; c.RunID != a.ID || c.Seq != int64(batch*100+100) {
				t.Fatalf("batch %d: last chunk got seq %d", batch, c.Seq)
			}
		}
		var (
			after int64
			read  int
			pages int
		)
		for {
			page, err := s.LogRead(ctx, a.ID, after, 128)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			pages++
			for _, c := range page {
				if c.Seq != after+1 || string(c.Data) != fmt.Sprintf("line %d\n", read) || c.JobID != jobID || c.RunID != a.ID || c.At.IsZero() {
					t.Fatalf("chunk %d = %+v (%q)", read, c, c.Data)
				}
				after = c.Seq
				read++
			}
		}
		if read != total || pages != 8 {
			t.Fatalf("read %d chunks in %d pages, want %d in 8", read, pages, total)
		}
		bl, err := s.LogRead(ctx, b.ID, 95, 0)
		if err != nil || len(bl) != 5 || bl[0].Seq != 96 || string(bl[4].Data) != "b 990\n" || bl[0].JobID != 0 {
			t.Fatalf("run b tail = %+v, %v", bl, err)
		}
		at := time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)
		if err := s.LogAppend(ctx, []run.LogChunk{{RunID: b.ID, Data: []byte("x\n"), At: at}}); err != nil {
			t.Fatal(err)
		}
		if last, _ := s.LogRead(ctx, b.ID, 100, 1); len(last) != 1 || !last[0].At.Equal(at) {
			t.Fatalf("chunk time = %+v, want %v", last, at)
		}
		if err := s.LogAppend(ctx, []run.LogChunk{{RunID: 9999, Data: []byte("x")}}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("LogAppend to unknown run: %v, want ErrNotFound", err)
		}
	})
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Ping after Close: %v, want ErrUnavailable", err)
		}
		if _, err := s.UserCount(ctx); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("UserCount after Close: %v, want ErrUnavailable", err)
		}
		if _, err := s.UserCreate(ctx, "x", "y", false); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("UserCreate after Close: %v, want ErrUnavailable", err)
		}
	})
	t.Run("unreachable postgres", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		_, err := store.Open(ctx, "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5", storetest.Logger(t))
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Open(port 1): %v, want ErrUnavailable", err)
		}
	})
}
