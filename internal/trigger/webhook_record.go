package trigger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/webhook"
)

// baseRecord is the delivery to store as far as the request tells.
func (w *Webhooks) baseRecord(d *delivery) store.Delivery {
	body, truncated := d.in.Body, d.in.BodyTruncated
	if limit := w.maxBody(); int64(len(body)) > limit {
		body, truncated = body[:limit], true
	}
	rec := store.Delivery{
		PipelineID:    d.trig.PipelineID,
		Pipeline:      d.trig.Pipeline,
		ReceivedAt:    d.in.ReceivedAt,
		RemoteAddr:    d.in.RemoteAddr,
		Headers:       webhook.RedactHeaders(d.in.Headers),
		Body:          bytes.Clone(body),
		BodyTruncated: truncated,
		DryRun:        d.in.DryRun,
	}
	if d.in.RedeliveryOf != 0 {
		id := d.in.RedeliveryOf
		rec.RedeliveryOf = &id
	}
	return rec
}

// withTrace returns the record with the trace so far.
func (d *delivery) withTrace() store.Delivery {
	rec := d.rec
	rec.Trace = mustJSON(d.outTrace())
	return rec
}

// record stores a delivery under a context that outlives the request (bounded), its body with
// the values of secret variables masked (redactBody).
func (w *Webhooks) record(ctx context.Context, d *delivery, rec store.DeliveryRecord) (store.Delivery, bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := w.redactBody(ctx, d); err != nil {
		return store.Delivery{}, false, err
	}
	rec.Delivery.Body = d.rec.Body
	return w.Store.DeliveryRecord(ctx, rec)
}

// redactBody masks the values of the pipeline's secret variables in the body to store (see
// RedactBody). A delivery refused before the pipeline was read (disabled, too large, bad
// signature, no permission) reads it here, and only when its body could name a variable.
func (w *Webhooks) redactBody(ctx context.Context, d *delivery) error {
	if d.redacted {
		return nil
	}
	if !d.secretKnown {
		if !mayNameVariables(d.rec.Body) {
			d.redacted = true
			return nil
		}
		p, err := w.Store.PipelineGet(ctx, d.trig.Pipeline)
		switch {
		case errors.Is(err, store.ErrNotFound):
			d.secret = map[string]bool{} // deleted: nothing is stored for it anyway
		case err != nil:
			return err
		default:
			def, err := w.Runs.parsed(p)
			if err != nil {
				return err
			}
			d.secret = secretNames(def)
		}
		d.secretKnown = true
	}
	d.rec.Body = RedactBody(d.rec.Body, d.secret)
	d.redacted = true
	return nil
}

// mayNameVariables reports whether body could set a variable: it looks like a JSON object or a
// form body (GitHub's payload=<JSON>). It is a quick look that errs on the side of yes.
func mayNameVariables(body []byte) bool {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	return len(trimmed) > 0 && (trimmed[0] == '{' || bytes.Contains(body, []byte("payload")))
}

// openSecret decrypts a trigger's signature secret.
func (w *Webhooks) openSecret(t store.WebhookTrigger) ([]byte, error) {
	if w.Box == nil {
		return nil, errors.New("trigger: the webhook has a secret but no secret key is loaded")
	}
	sec, err := w.Box.Open(t.SecretSealed)
	if err != nil {
		return nil, fmt.Errorf("trigger: open the webhook secret of %s: %w", t.Pipeline, err)
	}
	return sec, nil
}

func (w *Webhooks) maxBody() int64 {
	if w.MaxBody <= 0 {
		return DefaultMaxBody
	}
	return w.MaxBody
}

func (w *Webhooks) logger() *slog.Logger {
	if w.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Logger
}
