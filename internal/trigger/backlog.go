package trigger

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/store"
)

// Backlog is the queued work, as the webhook's queue step bounds it: the runs waiting to start
// (status queued) in the database, shared by every server on it, in total and per pipeline, and
// how fast runs have been ending lately, which turns a queue into seconds of work.
//
// Counting the queue at every delivery would cost a query per delivery, so the backlog keeps
// the counts and refreshes them from the database at most every Every (one query on an index),
// and the rate of ended runs at most every 8 × Every (every Every while none is known to have
// ended); between refreshes it adds the runs this
// server accepted since the last refresh began. So a bound is soft: it may be passed by what
// the other servers sharing the database accept within one refresh interval, plus the
// deliveries decided at the same moment (each checks before any of them is stored); and a run
// accepted during a refresh may be counted twice until the next one (erring on the side of
// refusing). Nothing refreshes while no delivery asks, and a failed refresh keeps
// the last counts: the bound never refuses because the database could not be counted (the
// delivery's own write says whether the database is there).
//
// A queue's seconds of work are its runs divided by the rate at which runs (of the pipeline,
// or of every pipeline for the server's bound) ended within the last rateWindow: n runs that
// ended over the span since the first of them, that span at least a second. With no run ended
// within the window, the seconds cannot be estimated, and only the bound on runs applies.
//
// Set its fields before the first Check and do not change them after.
type Backlog struct {
	Store BacklogStore
	// MaxRuns bounds the runs queued across the server (--max-queued-runs); 0 = no bound.
	MaxRuns int
	// MaxSeconds bounds the seconds of work queued across the server (--max-queue-seconds);
	// 0 = no bound.
	MaxSeconds int
	// Every is how old the counts may be; 0 = DefaultBacklogEvery.
	Every  time.Duration
	Logger *slog.Logger

	mu       sync.Mutex
	queued   map[int64]int64 // per pipeline, as last counted
	total    int64
	ended    map[int64]store.Ended // per pipeline, within rateWindow before endedAt
	all      store.Ended           // every pipeline's
	endedAt  time.Time
	loadedAt time.Time // the queue's last refresh; zero = never
	rateAt   time.Time // the rate's last refresh
	// since are the runs accepted since the refresh in flight (or the last one) began.
	since      map[int64]int64
	sinceTotal int64
	loading    chan struct{} // closed when the refresh in flight ends; nil = none
	warned     time.Time     // the last refresh failure logged
}

// BacklogStore is what Backlog needs of the store.
type BacklogStore interface {
	RunsQueued(ctx context.Context) (map[int64]int64, error)
	RunsEnded(ctx context.Context, window time.Duration) (map[int64]store.Ended, time.Time, error)
}

// The backlog's timing.
const (
	// DefaultBacklogEvery is how old the queue counts may be.
	DefaultBacklogEvery = 250 * time.Millisecond
	// rateEvery is how many times older than the queue counts the rate of ended runs may be:
	// it is an average over a minute (2 s at DefaultBacklogEvery).
	rateEvery = 8
	// rateWindow is how far back ended runs make the rate.
	rateWindow = time.Minute
	// refreshTimeout bounds one refresh, which does not end with the request that started it.
	refreshTimeout = 5 * time.Second
	// maxRetryAfter caps the Retry-After of a refusal: past it the estimate is a guess, and a
	// sender should look again rather than wait blind.
	maxRetryAfter = 60 * time.Second
)

// Queue is one queue as the backlog sees it, with its bounds.
type Queue struct {
	Scope string // "server" or "pipeline"
	// Queued is the runs waiting to start.
	Queued int64
	// Rate is how many runs ended per second lately; 0 = none within the last minute, so
	// Seconds is unknown.
	Rate float64
	// MaxRuns and MaxSeconds are the queue's bounds; 0 = none.
	MaxRuns, MaxSeconds int
}

// Seconds is the queue's seconds of work at the recent rate; ok is false when no run ended
// lately, so it cannot be estimated.
func (q Queue) Seconds() (secs float64, ok bool) {
	if q.Rate <= 0 {
		return 0, false
	}
	return float64(q.Queued) / q.Rate, true
}

// Bounded reports whether the queue has a bound.
func (q Queue) Bounded() bool { return q.MaxRuns > 0 || q.MaxSeconds > 0 }

// Over reports whether one more run would put the queue over a bound: the runs bound is
// reached, or the seconds of work are at or past theirs (when they can be estimated). wait is
// when to send again: the time the recent rate takes to bring the queue back under its bound,
// at least a second and at most maxRetryAfter (the cap when nothing ended lately).
func (q Queue) Over() (over bool, wait time.Duration) {
	var secs float64
	if q.MaxRuns > 0 && q.Queued >= int64(q.MaxRuns) {
		over, secs = true, math.Inf(1)
		if q.Rate > 0 {
			secs = float64(q.Queued-int64(q.MaxRuns)+1) / q.Rate
		}
	}
	if s, ok := q.Seconds(); ok && q.MaxSeconds > 0 && s >= float64(q.MaxSeconds) {
		over, secs = true, max(secs, s-float64(q.MaxSeconds))
	}
	if !over {
		return false, 0
	}
	wait = maxRetryAfter
	if secs < maxRetryAfter.Seconds() {
		wait = time.Duration(math.Ceil(secs)) * time.Second
	}
	return true, max(wait, time.Second)
}

// Check returns the server's queue and pipeline id's (with the pipeline's bounds, nil = none),
// refreshed first when they are older than Every; when neither has a bound, it counts nothing.
func (b *Backlog) Check(ctx context.Context, pipelineID int64, bounds *pipeline.Queue) (server, pipe Queue) {
	server, pipe = b.serverQueue(), pipelineQueue(bounds)
	if !server.Bounded() && !pipe.Bounded() {
		return server, pipe
	}
	return b.fill(ctx, pipelineID, server, pipe)
}

// Server is the server's queue, refreshed when it is older than Every (for metrics).
func (b *Backlog) Server(ctx context.Context) Queue {
	server, _ := b.fill(ctx, 0, b.serverQueue(), Queue{})
	return server
}

// Pipeline is the queue of pipeline id with its bounds (nil = none), refreshed when it is
// older than Every (for the pipeline's page and JSON).
func (b *Backlog) Pipeline(ctx context.Context, id int64, bounds *pipeline.Queue) Queue {
	_, pipe := b.fill(ctx, id, Queue{}, pipelineQueue(bounds))
	return pipe
}

func (b *Backlog) serverQueue() Queue {
	return Queue{Scope: "server", MaxRuns: b.MaxRuns, MaxSeconds: b.MaxSeconds}
}

func pipelineQueue(bounds *pipeline.Queue) Queue {
	q := Queue{Scope: "pipeline"}
	if bounds != nil {
		q.MaxRuns, q.MaxSeconds = bounds.MaxRuns, bounds.MaxSeconds
	}
	return q
}

// fill refreshes the counts when they are older than Every and fills in the server's queue
// and pipeline id's.
func (b *Backlog) fill(ctx context.Context, pipelineID int64, server, pipe Queue) (Queue, Queue) {
	b.refresh(ctx)
	b.mu.Lock()
	defer b.mu.Unlock()
	server.Queued = b.total + b.sinceTotal
	server.Rate = rate(b.all, b.endedAt)
	pipe.Queued = b.queued[pipelineID] + b.since[pipelineID]
	pipe.Rate = rate(b.ended[pipelineID], b.endedAt)
	return server, pipe
}

// Accepted counts a run of pipeline id this server stored, until a refresh counts it.
func (b *Backlog) Accepted(pipelineID int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.since == nil {
		b.since = map[int64]int64{}
	}
	b.since[pipelineID]++
	b.sinceTotal++
}

// rate is runs ended per second: e's runs over the span since the first of them, at least a
// second; 0 when none.
func rate(e store.Ended, at time.Time) float64 {
	if e.N <= 0 {
		return 0
	}
	span := min(max(at.Sub(e.First), time.Second), rateWindow)
	return float64(e.N) / span.Seconds()
}

// refresh counts the queue (and, when it is older than rateEvery × Every, the rate) again
// when the counts are older than Every. One caller refreshes; the others go on with the counts they
// have, except before the first counts, which they wait for.
func (b *Backlog) refresh(ctx context.Context) {
	every := b.Every
	if every <= 0 {
		every = DefaultBacklogEvery
	}
	b.mu.Lock()
	if time.Since(b.loadedAt) < every {
		b.mu.Unlock()
		return
	}
	if b.loading != nil {
		wait, first := b.loading, b.loadedAt.IsZero()
		b.mu.Unlock()
		if first {
			select {
			case <-wait:
			case <-ctx.Done():
			}
		}
		return
	}
	done := make(chan struct{})
	b.loading = done
	pending, pendingTotal := b.since, b.sinceTotal // committed before the counts are read
	b.since, b.sinceTotal = map[int64]int64{}, 0
	// With no run ended as far as the last count knows, the seconds bound cannot refuse yet:
	// look at the rate with every count until one has, so a burst at a server that has just
	// started (or was idle) is over the bound within Every, not within rateEvery × Every.
	withRate := time.Since(b.rateAt) >= rateEvery*every || b.all.N == 0
	b.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
	defer cancel()
	queued, err := b.Store.RunsQueued(ctx)
	var (
		ended   map[int64]store.Ended
		endedAt time.Time
	)
	if err == nil && withRate {
		ended, endedAt, err = b.Store.RunsEnded(ctx, rateWindow)
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	defer close(done)
	b.loading = nil
	b.loadedAt = time.Now() // after a failure too: the next try waits its turn
	if err != nil {
		for id, n := range pending { // not counted yet: keep them
			b.since[id] += n
		}
		b.sinceTotal += pendingTotal
		if time.Since(b.warned) > time.Minute {
			b.warned = time.Now()
			b.logger().Warn("trigger: count the queued runs; the queue bounds use the last counts", "err", err)
		}
		return
	}
	b.queued, b.total = queued, 0
	for _, n := range queued {
		b.total += n
	}
	if withRate {
		b.ended, b.endedAt, b.rateAt = ended, endedAt, time.Now()
		b.all = store.Ended{}
		for _, e := range ended {
			if b.all.N == 0 || e.First.Before(b.all.First) {
				b.all.First = e.First
			}
			b.all.N += e.N
		}
	}
}

func (b *Backlog) logger() *slog.Logger {
	if b.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return b.Logger
}

// count is n with thousands separated by commas, as messages show counts.
func count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// behind says how far behind q is: "4,213 runs (about 38 s of work)".
func (q Queue) behind() string {
	runs := "runs"
	if q.Queued == 1 {
		runs = "run"
	}
	if s, ok := q.Seconds(); ok {
		return fmt.Sprintf("%s %s (about %s s of work)", count(q.Queued), runs, count(int64(math.Ceil(s))))
	}
	return fmt.Sprintf("%s %s (no run ended in the last minute, so how long they take cannot be estimated)", count(q.Queued), runs)
}
