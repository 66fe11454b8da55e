package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/config"
	"github.com/flowd/flowd/internal/logs"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/trigger"
)

// What servers share. On PostgreSQL several servers run on one database: wake-ups travel as
// notifications (store.Notify: new work, log changes, cancels), and the limits that must hold
// for the cluster (the webhook rate, the sign-in throttle) keep their counts in the database.
// SQLite serves one server: lockSQLite refuses a second, and all of it stays in the process.

const (
	// notifyEvery is the least time between two notifications of one topic and payload: a job
	// printing fast commits its log many times a second and a burst of webhooks queues many
	// runs, but a follower or a scheduler on another server needs one wake-up at a time.
	notifyEvery = 50 * time.Millisecond
	// notifyTimeout bounds sending one batch of notifications.
	notifyTimeout = 5 * time.Second
	// pruneEvery is how often the shared limits' stale rows are deleted.
	pruneEvery = time.Minute
)

// cluster is what this server shares with the others on the database. On SQLite it shares
// nothing and its methods change nothing.
type cluster struct {
	st     *store.Store
	cfg    config.Config
	logger *slog.Logger
	shared bool // PostgreSQL: other servers may run on the database

	mu      sync.Mutex
	pending map[note]struct{} // to send at the next turn of notify
	kick    chan struct{}     // buffered 1: something is pending
}

// note is a notification to send: its topic and payload.
type note struct{ topic, payload string }

func newCluster(st *store.Store, cfg config.Config, logger *slog.Logger) *cluster {
	return &cluster{st: st, cfg: cfg, logger: logger.With("component", "cluster"),
		shared: st.Dialect() == "postgres", pending: map[note]struct{}{}, kick: make(chan struct{}, 1)}
}

// share makes the sign-in throttle count in the database, naming keys by an HMAC whose key
// is derived from secretKey (the same on every server), and the log appender announce its
// changes to the other servers. Call it before they are used.
func (c *cluster) share(signIn *auth.Throttle, appender *logs.Appender, secretKey []byte) {
	if !c.shared {
		return
	}
	salt := hmac.New(sha256.New, secretKey)
	salt.Write([]byte("flowd sign-in throttle keys"))
	signIn.Shared, signIn.SharedSalt = c.st, salt.Sum(nil)
	appender.OnChange = func(runID int64) { c.send(store.TopicLog, strconv.FormatInt(runID, 10)) }
}

// announce makes the store's changes (runs, deliveries, nodes: store.Changed) reach the pages
// open on every server: sent as notifications, batched like the others. This server's start
// is one of them.
func (c *cluster) announce() {
	if !c.shared {
		return
	}
	c.st.SetAnnouncer(c.send)
	c.send(store.TopicNodes, "")
}

// webhookLimiter is the per-trigger webhook rate shared by the servers; nil (buckets in this
// process) on SQLite or without a rate.
func (c *cluster) webhookLimiter() trigger.RateLimiter {
	if !c.shared || c.cfg.WebhookRate <= 0 {
		return nil
	}
	return trigger.NewSharedLimiter(c.st, c.cfg.WebhookRate, c.cfg.WebhookBurst)
}

// wakeWork returns wake (the scheduler's Wake) that also tells the other servers' schedulers
// of the new work.
func (c *cluster) wakeWork(wake func()) func() {
	if !c.shared {
		return wake
	}
	return func() {
		wake()
		c.send(store.TopicWork, "")
	}
}

// logChanged tells the other servers' log followers that run runID changed (the rescuer wrote
// to it without the appender).
func (c *cluster) logChanged(runID int64) {
	if c.shared {
		c.send(store.TopicLog, strconv.FormatInt(runID, 10))
	}
}

// send queues a notification for the other servers; it never blocks. A topic and payload
// already queued is sent once.
func (c *cluster) send(topic, payload string) {
	c.mu.Lock()
	c.pending[note{topic, payload}] = struct{}{}
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// run delivers the other servers' notifications here (the scheduler wakes on new work, log
// followers on their run's changes), sends this server's, and prunes the shared limits, until
// ctx is done. The scheduler subscribes to store.TopicCancel itself.
func (c *cluster) run(ctx context.Context, wake func(), appender *logs.Appender, signInWindow time.Duration) {
	if !c.shared {
		return
	}
	work, stopWork := c.st.Subscribe(store.TopicWork)
	defer stopWork()
	changed, stopLogs := c.st.Subscribe(store.TopicLog)
	defer stopLogs()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { _ = c.st.Listen(ctx) })
	wg.Go(func() { c.notify(ctx) })
	wg.Go(func() { c.prune(ctx, signInWindow) })
	for {
		select {
		case <-ctx.Done():
			return
		case <-work:
			wake()
		case p := <-changed:
			if id, err := strconv.ParseInt(p, 10, 64); err == nil {
				appender.Wake(id)
			} else {
				appender.WakeAll() // "": announcements may have been missed
			}
		}
	}
}

// notify sends what send queued, a batch at a time, at most one batch each notifyEvery.
func (c *cluster) notify(ctx context.Context) {
	failing := false // the last batch failed: say so once, not every notifyEvery
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		}
		c.mu.Lock()
		batch := c.pending
		c.pending = make(map[note]struct{}, len(batch))
		c.mu.Unlock()
		sendCtx, cancel := context.WithTimeout(ctx, notifyTimeout)
		var err error
		for n := range batch {
			if err = c.st.Notify(sendCtx, n.topic, n.payload); err != nil {
				break // the other servers find the changes at their next poll
			}
		}
		cancel()
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			c.logger.Warn("could not tell the other servers of changes; they find them at their next poll (said once until it works again)", "err", err)
			failing = true
		case err == nil && failing:
			c.logger.Info("telling the other servers of changes works again")
			failing = false
		}
		t := time.NewTimer(notifyEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// prune deletes, every pruneEvery, the rows of the shared limits that no longer limit
// anything: token buckets idle long enough to be full again, sign-in windows that ended.
func (c *cluster) prune(ctx context.Context, signInWindow time.Duration) {
	refill := time.Minute
	if c.cfg.WebhookRate > 0 {
		secs := min(float64(max(c.cfg.WebhookBurst, 1))/c.cfg.WebhookRate, 30*24*3600) // a month at most
		refill = max(refill, time.Duration(secs*float64(time.Second)))
	}
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := c.st.RatePrune(ctx, refill); err != nil && ctx.Err() == nil {
			c.logger.Warn("prune webhook rate buckets", "err", err)
		}
		if _, err := c.st.SignInPrune(ctx, signInWindow); err != nil && ctx.Err() == nil {
			c.logger.Warn("prune sign-in attempts", "err", err)
		}
	}
}

// lockSQLite takes, for the life of the server, an exclusive lock on a file beside the SQLite
// database of dsn (<database>.lock), so a second `flowd serve` on the same database refuses to
// start instead of running jobs the first runs too and failing the other's running jobs at
// start. Only serve takes it: tools that only read the database are not held up. The kernel
// drops the lock when the process dies, kill -9 included, so a crash leaves nothing to clean.
// A DSN of another database takes no lock.
func lockSQLite(dsn string) (release func(), err error) {
	p, ok := strings.CutPrefix(dsn, "sqlite:")
	if !ok {
		return func() {}, nil
	}
	if real, err := filepath.EvalSymlinks(p); err == nil {
		p = real // one lock for the file, however it is named
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, fmt.Errorf("app: database folder: %w", err)
	}
	lock := p + ".lock"
	fd, err := syscall.Open(lock, syscall.O_RDWR|syscall.O_CREAT|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("app: lock the SQLite database: %w", err)
	}
	f := os.NewFile(uintptr(fd), lock)
	if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := ""
		if b, rerr := os.ReadFile(lock); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
				holder = fmt.Sprintf(" (pid %d)", pid)
			}
		}
		f.Close()
		return nil, fmt.Errorf("app: another flowd server%s is using the SQLite database %s (it holds %s): "+
			"a SQLite database serves one server at a time. Stop the other server first, give this one "+
			"a database of its own (--data or --database sqlite:PATH), or run several servers on one "+
			"PostgreSQL database (--database postgres://…)", holder, p, lock)
	}
	// Who holds it, for the message above; the lock is what counts.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil // closing the descriptor drops the lock
}
