package trigger

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/webhook"
)

// runAnswer is the JSON of a delivery that started a run.
type runAnswer struct {
	Run struct {
		ID     int64      `json:"id"`
		Number int64      `json:"number"`
		URL    string     `json:"url"`
		APIURL string     `json:"api_url"`
		Status run.Status `json:"status"`
	} `json:"run"`
	Ignored []string      `json:"ignored"`
	Skipped *string       `json:"skipped"`
	Trace   webhook.Trace `json:"trace"`
}

// dryRunAnswer is the JSON of a dry run that passed every step.
type dryRunAnswer struct {
	DryRun     bool              `json:"dry_run"`
	Run        *struct{}         `json:"run"` // always null
	WouldStart bool              `json:"would_start"`
	Variables  map[string]string `json:"variables"` // secret ones as ***
	Ignored    []string          `json:"ignored"`
	// Git is the commit the run would build (pipelines with a source); ConcurrencyGroup its
	// concurrency group.
	Git              *run.Git      `json:"git,omitempty"`
	ConcurrencyGroup string        `json:"concurrency_group,omitempty"`
	Trace            webhook.Trace `json:"trace"`
}

// run is the last step, and always answers: a dry run says what would start; any other
// delivery stores its run with it in one transaction, unless its idempotency key replays an
// earlier answer (or came with another body).
func (w *Webhooks) run(ctx context.Context, d *delivery) *Outcome {
	what := fmt.Sprintf("a run of %s as %s", d.pipe.Name, d.owner.User.Username)
	if d.git != nil {
		what += " at " + shortSHA(d.git.SHA)
	}
	if d.in.DryRun {
		return w.dryRun(ctx, d, what)
	}
	key := d.in.IdempotencyKey
	if key == "" && d.event != nil {
		key = eventKey(d.event)
	}
	if key != "" {
		d.trace.Add("run", true, "%s is queued, unless its idempotency key %s was seen within 24 h (then the first answer is replayed)", what, key)
	} else {
		d.trace.Add("run", true, "%s is queued", what)
	}
	d.rec.IdempotencyKey = key
	var (
		answer  []byte
		created run.Run
	)
	create := d.built.Create
	sum := sha256.Sum256(d.in.Body)
	stored, replayed, err := w.record(ctx, d, store.DeliveryRecord{
		Delivery:   d.withTrace(),
		BodySHA256: sum[:],
		NewRun:     &create,
		Answer: func(r run.Run) (int, []byte) {
			created = r
			var a runAnswer
			a.Run.ID, a.Run.Number, a.Run.Status = r.ID, r.Number, r.Status
			if w.RunURL != nil {
				a.Run.URL = w.RunURL(r.ID)
			}
			if w.APIURL != nil {
				a.Run.APIURL = w.APIURL(r.ID)
			}
			a.Ignored, a.Trace = d.ignored, d.outTrace()
			answer = mustJSON(a)
			return w.status(CodeStarted), answer
		},
	})
	if errors.Is(err, store.ErrKeyMismatch) {
		// Stored as refused, without the key: the key stays the first body's.
		d.rec.IdempotencyKey = ""
		msg := fmt.Sprintf("idempotency key %s was used within the last 24 hours with a different body: send the same body again to get the first answer, or use a new key for a new request", key)
		d.trace.Add("run", false, "%s", msg)
		return w.refuse(ctx, d, CodeKeyMismatch, msg, nil)
	}
	if err != nil {
		return w.failure(d, err)
	}
	out := &Outcome{DeliveryID: stored.ID, Pipeline: d.trig.Pipeline}
	if stored.RunID != nil {
		out.RunID = *stored.RunID
	}
	if replayed {
		first := stored.ID
		if stored.ReplayOf != nil {
			first = *stored.ReplayOf
		}
		out.Code, out.Replayed = CodeReplayed, true
		out.Body = withFields(stored.Response, "delivery", first, "replayed", true)
		return out
	}
	if len(stored.Response) > 0 {
		answer = stored.Response
	}
	w.Runs.supersede(ctx, created, d.def.Concurrency != nil && d.def.Concurrency.CancelPrevious)
	w.Runs.wake()
	w.Queue.Accepted(d.pipe.ID)
	out.Code = CodeStarted
	out.Body = withDelivery(answer, stored.ID)
	return out
}

// dryRun stores a dry run that passed every step and answers what would have started.
func (w *Webhooks) dryRun(ctx context.Context, d *delivery, what string) *Outcome {
	d.trace.Add("run", true, "dry run: %s would start; nothing was started", what)
	body := mustJSON(dryRunAnswer{DryRun: true, WouldStart: true, Variables: d.built.Masked(), Ignored: d.ignored,
		Git: d.git, ConcurrencyGroup: d.mask(d.built.Create.ConcurrencyGroup), Trace: d.outTrace()})
	return w.settle(ctx, d, CodeDryRun, body)
}
