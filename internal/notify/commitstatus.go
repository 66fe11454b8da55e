package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/flowd/flowd/internal/commitstatus"
	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// report claims the due commit statuses (the database makes a run's newest state due when it
// changes) and sends them, a batch at a time, in parallel.
func (n *Notifier) report(ctx context.Context) error {
	lease, window := 3*or(n.Timeout, DefaultTimeout), or(n.Window, DefaultWindow)
	return inBatches(ctx, func() ([]store.CommitStatus, error) {
		return n.Store.CommitStatusesClaim(ctx, n.now(), lease, window, batch)
	}, n.reportOne)
}

// reportOne sends one claimed state and records what came of it: sent; failed when the host
// refused it for good or its give-up time has passed; else tried again after the backoff.
func (n *Notifier) reportOne(ctx context.Context, c store.CommitStatus) {
	started := n.now()
	mono := time.Now()
	host, code, err := n.sendStatus(ctx, c)
	res := store.CommitStatusResult{Version: c.Version, Status: store.ReportSent, Attempt: store.CommitStatusAttempt{
		Number: c.Tries, State: c.State, StartedAt: started, Duration: time.Since(mono), StatusCode: code}}
	result := "sent"
	if err != nil {
		res.Attempt.Error = err.Error()
		res.Status, res.Next, result = store.ReportPending, started.Add(n.delay(c.Attempts)), "retry"
		var refused *commitstatus.Error
		if errors.As(err, &refused) && !refused.Retry || c.GiveUpAt != nil && res.Next.After(*c.GiveUpAt) {
			res.Status, res.Next, result = store.ReportFailed, time.Time{}, "failed"
		}
	}
	n.Metrics.CommitStatusReport(host, result)
	// A fresh context: an answered request is recorded even as the server stops.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := n.Store.CommitStatusRecord(rctx, c.RunID, res); err != nil {
		n.Logger.Warn("commit status: record attempt", "run", c.RunID, "err", err)
	}
	if res.Status == store.ReportFailed {
		n.Logger.Warn("commit status not reported", "run", c.RunID, "state", c.State, "host", host, "attempts", c.Attempts, "err", res.Attempt.Error)
	}
}

// sendStatus reports c's state once: the host kind (for metrics; "" when the run's target is
// not known), the HTTP status (0 = none) and, when the host did not accept it, why (a
// *commitstatus.Error for an answer).
func (n *Notifier) sendStatus(ctx context.Context, c store.CommitStatus) (string, int, error) {
	r, target, err := n.statusTarget(ctx, c.RunID)
	if err != nil {
		return "", 0, err
	}
	token, err := n.secretValue(ctx, r, r.Git.StatusTokenVar, "reports commit statuses")
	if err != nil {
		return target.Host, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, or(n.Timeout, DefaultTimeout))
	defer cancel()
	req, err := commitstatus.NewRequest(ctx, target, string(token), StatusOf(r, c.State, n.ExternalURL))
	if err != nil {
		return target.Host, 0, err
	}
	req.Header.Set("User-Agent", "flowd/"+n.Version)
	resp, err := n.client().Do(req)
	if err != nil {
		return target.Host, 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return target.Host, resp.StatusCode, commitstatus.Check(target, resp.StatusCode, body)
}

// statusTarget reads run runID and where its commit statuses go: its revision's source.
func (n *Notifier) statusTarget(ctx context.Context, runID int64) (run.Run, commitstatus.Target, error) {
	r, err := n.Store.RunGet(ctx, runID)
	if err != nil {
		return run.Run{}, commitstatus.Target{}, fmt.Errorf("read the run: %w", err)
	}
	t, err := StatusTarget(ctx, n.Store, r)
	return r, t, err
}

// StatusTarget is where run r's commit statuses go, from the source of the pipeline revision
// it runs.
func StatusTarget(ctx context.Context, st *store.Store, r run.Run) (commitstatus.Target, error) {
	rev, err := st.PipelineRevision(ctx, r.PipelineID, r.Revision)
	if err != nil {
		return commitstatus.Target{}, fmt.Errorf("read the run's pipeline revision: %w", err)
	}
	def, err := pipeline.Parse([]byte(rev.Source))
	if err != nil {
		return commitstatus.Target{}, fmt.Errorf("the run's pipeline revision no longer parses: %w", err)
	}
	if r.Git == nil || def.Source == nil || def.Source.Status == nil {
		return commitstatus.Target{}, errors.New("the run's pipeline revision has no source.status_token")
	}
	return *def.Source.Status, nil
}

// StatusOf is the commit status that reports run r in state (a run status), with the run's
// page under externalURL as its target.
func StatusOf(r run.Run, state run.Status, externalURL string) commitstatus.Status {
	s := commitstatus.Status{State: string(state), Context: r.Pipeline,
		TargetURL: externalURL + "/runs/" + strconv.FormatInt(r.ID, 10)}
	if r.Git != nil {
		s.SHA, s.Ref = r.Git.SHA, r.Git.Ref
	}
	what := "Run #" + strconv.FormatInt(r.Number, 10)
	switch state {
	case run.Queued:
		s.Description = what + " is queued"
	case run.Running:
		s.Description = what + " is running"
	case run.Success:
		s.Description = what + " succeeded" + took(r)
	case run.Failed:
		s.Description = what + " failed" + took(r)
		if r.Message != "" {
			s.Description += ": " + r.Message
		}
	case run.Canceled:
		s.Description = what + " was canceled"
	}
	return s
}

// took is " in 1m3s" for an ended run that started, else "".
func took(r run.Run) string {
	if r.StartedAt == nil || r.FinishedAt == nil {
		return ""
	}
	return " in " + r.FinishedAt.Sub(*r.StartedAt).Round(time.Second).String()
}
