// Package notify tells other systems about runs, at least once, from the database, retrying
// with backoff for 24 hours:
//   - run notifications: when a run ends, each notify target of its definition gets a signed
//     JSON POST (store's outbox of ended runs and its notifications table);
//   - commit statuses: a run at a commit whose pipeline source has a status_token reports each
//     of its states to the code host (store's commit_statuses, package commitstatus).
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/flowd/flowd/internal/metrics"
	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/secret"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/trigger"
)

// Defaults of a Notifier's timing.
const (
	DefaultBackoff    = 10 * time.Second // the first retry's delay; each next one doubles
	DefaultMaxBackoff = 10 * time.Minute
	DefaultWindow     = 24 * time.Hour // tries stop this long after the run ended
	DefaultTimeout    = 10 * time.Second
	DefaultEvery      = 2 * time.Second // how often the outbox is read
	batch             = 16
)

// Event is the X-Flowd-Event of a run notification.
const Event = "run.ended"

// Notifier plans and sends run notifications. Every server runs one; the store's claims keep
// two from sending the same attempt at once.
type Notifier struct {
	Store       *store.Store
	Box         *secret.Box // opens the secrets that sign; nil = none stored
	ExternalURL string      // base of the run's page URL
	Version     string      // in the User-Agent
	Client      *http.Client
	Logger      *slog.Logger
	Now         func() time.Time // nil = time.Now
	Backoff     time.Duration    // 0 = DefaultBackoff
	MaxBackoff  time.Duration    // 0 = DefaultMaxBackoff
	Window      time.Duration    // 0 = DefaultWindow
	Timeout     time.Duration    // of one POST; 0 = DefaultTimeout
	Metrics     *metrics.Metrics // counts commit status reports; nil = none
}

func (n *Notifier) now() time.Time {
	if n.Now != nil {
		return n.Now().UTC()
	}
	return time.Now().UTC()
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Run plans and sends notifications every interval until ctx ends.
func (n *Notifier) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(or(every, DefaultEvery))
	defer t.Stop()
	for {
		if err := n.Tick(ctx); err != nil && ctx.Err() == nil {
			n.Logger.Warn("run notifications", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Tick plans the notifications of the runs that ended since the last tick, then sends those
// that are due, then the commit statuses that are due.
func (n *Notifier) Tick(ctx context.Context) error {
	if err := n.plan(ctx); err != nil {
		return err
	}
	if err := n.send(ctx); err != nil {
		return err
	}
	return n.report(ctx)
}

// plan turns ended runs into notifications: one per notify target of the run's definition
// that wants the run's status.
func (n *Notifier) plan(ctx context.Context) error {
	ended, err := n.Store.NotifyEndedRuns(ctx, 100)
	if err != nil {
		return err
	}
	for _, e := range ended {
		targets, err := n.targets(ctx, e.RunID)
		if err != nil {
			return err
		}
		giveUp := e.EndedAt.Add(or(n.Window, DefaultWindow))
		if _, err := n.Store.NotifyPlan(ctx, e.RunID, targets, n.now(), giveUp); err != nil {
			return err
		}
	}
	return nil
}

// targets are the notify entries of a run's definition that want its status; none for a run
// that is gone.
func (n *Notifier) targets(ctx context.Context, runID int64) ([]store.NotifyTarget, error) {
	r, err := n.Store.RunGet(ctx, runID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	rev, err := n.Store.PipelineRevision(ctx, r.PipelineID, r.Revision)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	def, err := pipeline.Parse([]byte(rev.Source))
	if err != nil { // it was valid when saved; a parser that changed since names no targets
		n.Logger.Warn("run notifications: the run's definition no longer parses", "run", runID, "err", err)
		return nil, nil
	}
	var out []store.NotifyTarget
	for i, t := range def.Notify {
		if t.Wants(string(r.Status)) {
			out = append(out, store.NotifyTarget{Index: i, URL: t.URL, Secret: t.Secret})
		}
	}
	return out, nil
}

// send claims the due notifications and POSTs them, a batch at a time, in parallel.
func (n *Notifier) send(ctx context.Context) error {
	lease := 3 * or(n.Timeout, DefaultTimeout)
	return inBatches(ctx, func() ([]store.Notification, error) {
		return n.Store.NotificationsClaim(ctx, n.now(), lease, batch)
	}, n.attempt)
}

// inBatches claims what is due, a batch at a time, and hands each claimed item to do, the
// items of a batch in parallel, until a claim takes less than a full batch.
func inBatches[T any](ctx context.Context, claim func() ([]T, error), do func(context.Context, T)) error {
	for {
		claimed, err := claim()
		if err != nil || len(claimed) == 0 {
			return err
		}
		var wg sync.WaitGroup
		for _, c := range claimed {
			wg.Go(func() { do(ctx, c) })
		}
		wg.Wait()
		if len(claimed) < batch || ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// attempt POSTs one claimed notification and records what came of it.
func (n *Notifier) attempt(ctx context.Context, c store.Notification) {
	started := n.now()
	mono := time.Now()
	code, err := n.post(ctx, c)
	a := store.NotifyAttempt{Number: c.Attempts, StartedAt: started, Duration: time.Since(mono), StatusCode: code}
	res := store.NotifyResult{Attempt: a, Status: store.NotifyDelivered}
	if err != nil {
		res.Attempt.Error = err.Error()
		res.Status = store.NotifyPending
		res.Next = started.Add(n.delay(c.Attempts))
		if res.Next.After(c.GiveUpAt) {
			res.Status, res.Next = store.NotifyFailed, time.Time{}
		}
	}
	// A fresh context: a POST that was answered is recorded even as the server stops.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := n.Store.NotificationRecord(rctx, c.ID, res); err != nil {
		n.Logger.Warn("run notifications: record attempt", "notification", c.ID, "err", err)
	}
	if res.Status == store.NotifyFailed {
		n.Logger.Warn("run notification given up", "run", c.RunID, "url", c.NotifyTarget.URL, "attempts", c.Attempts, "err", res.Attempt.Error)
	}
}

// delay is how long after attempt (1, 2…) failed the next one starts.
func (n *Notifier) delay(attempt int) time.Duration {
	d, limit := or(n.Backoff, DefaultBackoff), or(n.MaxBackoff, DefaultMaxBackoff)
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// post sends c once: nil for a 2xx answer, else the status code (0 = none) and why.
func (n *Notifier) post(ctx context.Context, c store.Notification) (int, error) {
	r, err := n.Store.RunGet(ctx, c.RunID)
	if err != nil {
		return 0, fmt.Errorf("read the run: %w", err)
	}
	body, err := json.Marshal(Payload{Event: Event, Run: n.runDoc(r), DeliveryID: c.Delivery, Attempt: c.Attempts})
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, or(n.Timeout, DefaultTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.NotifyTarget.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	ts := strconv.FormatInt(n.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "flowd/"+n.Version)
	req.Header.Set("X-Flowd-Event", Event)
	req.Header.Set("X-Flowd-Delivery", c.Delivery)
	req.Header.Set("X-Flowd-Timestamp", ts)
	if name := c.NotifyTarget.Secret; name != "" {
		key, err := n.secretValue(ctx, r, name, "signs this notification")
		if err != nil {
			return 0, err
		}
		req.Header.Set("X-Flowd-Signature", Sign(key, ts, body))
	}
	resp, err := n.client().Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("HTTP %s", resp.Status)
	}
	return resp.StatusCode, nil
}

func (n *Notifier) client() *http.Client {
	if n.Client != nil {
		return n.Client
	}
	return http.DefaultClient
}

// secretValue is the value of the secret variable name (which does what purpose says): the
// run's, else the pipeline's current one. It is never logged or returned in an error.
func (n *Notifier) secretValue(ctx context.Context, r run.Run, name, purpose string) ([]byte, error) {
	vals, err := trigger.OpenSecrets(n.Box, r.SecretVariables)
	if err != nil {
		return nil, fmt.Errorf("open the run's secrets: %w", err)
	}
	if v := vals[name]; v != "" {
		return []byte(v), nil
	}
	if p, err := n.Store.PipelineGet(ctx, r.Pipeline); err == nil {
		if vals, err := trigger.OpenSecrets(n.Box, p.Secrets); err == nil && vals[name] != "" {
			return []byte(vals[name]), nil
		}
	}
	return nil, fmt.Errorf("the secret variable %s that %s has no value: set it on the pipeline", name, purpose)
}

// Sign is the X-Flowd-Signature of body sent at timestamp ts (unix seconds): "sha256=" and the
// hex HMAC-SHA256 of ts + "." + body under key.
func Sign(key []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Payload is the body of a run notification.
type Payload struct {
	Event      string `json:"event"`
	Run        RunDoc `json:"run"`
	DeliveryID string `json:"delivery_id"`
	Attempt    int    `json:"attempt"`
}

// RunDoc is the ended run in a notification.
type RunDoc struct {
	ID              int64      `json:"id"`
	Number          int64      `json:"number"`
	Pipeline        string     `json:"pipeline"`
	Status          run.Status `json:"status"`
	Message         string     `json:"message,omitempty"`
	Trigger         string     `json:"trigger"`
	TriggeredBy     string     `json:"triggered_by"`
	Commit          *Commit    `json:"commit"`
	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at"`
	FinishedAt      *time.Time `json:"finished_at"`
	DurationSeconds float64    `json:"duration_seconds"`
	URL             string     `json:"url"`
}

// Commit is the commit a run built.
type Commit struct {
	SHA     string `json:"sha"`
	Branch  string `json:"branch,omitempty"`
	Tag     string `json:"tag,omitempty"`
	RepoURL string `json:"repo_url"`
}

func (n *Notifier) runDoc(r run.Run) RunDoc {
	d := RunDoc{ID: r.ID, Number: r.Number, Pipeline: r.Pipeline, Status: r.Status, Message: r.Message,
		Trigger: string(r.Trigger), TriggeredBy: r.TriggeredBy, CreatedAt: r.CreatedAt, StartedAt: r.StartedAt,
		FinishedAt: r.FinishedAt, URL: n.ExternalURL + "/runs/" + strconv.FormatInt(r.ID, 10)}
	if r.Git != nil {
		d.Commit = &Commit{SHA: r.Git.SHA, Branch: r.Git.Branch, Tag: r.Git.Tag, RepoURL: r.Git.RepoURL}
	}
	if r.FinishedAt != nil {
		from := r.CreatedAt
		if r.StartedAt != nil {
			from = *r.StartedAt
		}
		d.DurationSeconds = r.FinishedAt.Sub(from).Round(time.Millisecond).Seconds()
	}
	return d
}
