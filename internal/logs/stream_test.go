package logs

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/flowd/flowd/internal/run"
)

// memSource is a Source in memory: a run's chunks and status.
type memSource struct {
	mu     sync.Mutex
	chunks []run.LogChunk
	status run.Status
}

func (m *memSource) LogRead(_ context.Context, _, after int64, limit int) ([]run.LogChunk, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []run.LogChunk
	for _, c := range m.chunks {
		if c.Seq > after && len(out) < limit {
			out = append(out, c)
		}
	}
	return out, nil
}

func (m *memSource) RunStatus(context.Context, int64) (run.Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status, nil
}

// add appends a chunk of job; with end the run has ended too.
func (m *memSource) add(job int64, data string, end run.Status) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.chunks = append(m.chunks, run.LogChunk{Seq: int64(len(m.chunks) + 1), JobID: job, Data: []byte(data)})
	if end != "" {
		m.status = end
	}
}

// A follow that passes nothing on calls OnIdle; it goes on after it, passes on the chunks of the
// job asked for (more than a page of them, after After), and returns the final status at the end.
func TestChunksFollowIdleAndEnd(t *testing.T) {
	t.Parallel()
	src := &memSource{status: run.Running}
	for i := range pageSize + 10 {
		src.add(int64(i%2+1), "x\n", "")
	}
	idle := make(chan struct{}, 1)
	var got []int64
	done := make(chan error, 1)
	var final run.Status
	go func() {
		var err error
		final, err = Chunks(t.Context(), src, nil, 1, Read{
			After: 3, Job: 2, OnlyJob: true, Follow: true, Idle: 1, // 1 ns: idle at every wait
			OnIdle: func() error {
				select {
				case idle <- struct{}{}:
				default:
				}
				return nil
			},
		}, func(c run.LogChunk) error {
			got = append(got, c.Seq)
			return nil
		}, nil)
		done <- err
	}()
	<-idle // the follow waits, silent
	src.add(1, "not this job\n", "")
	src.add(2, "last\n", run.Failed)
	if err := <-done; err != nil || final != run.Failed {
		t.Fatalf("Chunks = %s, %v; want failed", final, err)
	}
	var want []int64
	for seq := int64(4); seq <= pageSize+12; seq++ {
		if seq%2 == 0 {
			want = append(want, seq)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("seqs %v, want %v", got, want)
	}
}
