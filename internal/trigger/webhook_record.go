package trigger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

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

// record stores a delivery under a context that outlives the request (bounded), its body and
// headers with secrets masked (redact).
func (w *Webhooks) record(ctx context.Context, d *delivery, rec store.DeliveryRecord) (store.Delivery, bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := w.redact(ctx, d); err != nil {
		return store.Delivery{}, false, err
	}
	rec.Delivery.Body, rec.Delivery.Headers = d.rec.Body, d.rec.Headers
	if d.basis != nil {
		rec.Basis = d.basis.holds()
	}
	stored, replayed, err := w.Store.DeliveryRecord(ctx, rec)
	switch {
	case errors.Is(err, store.ErrStale):
		d.stale = true
	case err == nil:
		w.keepBasis(d)
	}
	return stored, replayed, err
}

// redact masks the body and headers to store (see RedactStored): the values of the pipeline's
// secret variables by key, and wherever they appear the secret values the delivery saw and
// the trigger's own token (a GitHub ping carries the URL in hook.config.url). A delivery
// refused before the pipeline was read (disabled, too large, bad signature, no permission)
// reads it here when it has a body.
func (w *Webhooks) redact(ctx context.Context, d *delivery) error {
	if d.redacted {
		return nil
	}
	if !d.secretKnown && len(bytes.TrimSpace(d.rec.Body)) > 0 {
		p, err := w.pipelineOf(ctx, d)
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
	values := slices.Clone(d.secretVals)
	token, err := w.tokenOf(d)
	if err != nil {
		return err
	}
	if token != "" {
		values = append(values, token)
	}
	d.rec.Body = RedactStored(d.rec.Body, d.secret, values)
	d.rec.Headers = redactHeaderValues(d.rec.Headers, values)
	d.redacted = true
	return nil
}

// tokenOf is the trigger's token: the URL's, or for a delivery sent through the API the
// trigger's stored one; "" when it has none.
func (w *Webhooks) tokenOf(d *delivery) (string, error) {
	if d.in.Token != "" || len(d.trig.TokenSealed) == 0 || w.Box == nil {
		return d.in.Token, nil
	}
	token, err := w.Box.Open(d.trig.TokenSealed)
	if err != nil {
		return "", fmt.Errorf("trigger: open the webhook token of %s: %w", d.trig.Pipeline, err)
	}
	return string(token), nil
}

// redactHeaderValues masks each of values in the header values of h, in place.
func redactHeaderValues(h map[string][]string, values []string) map[string][]string {
	values = maskable(values)
	for _, vs := range h {
		for i, v := range vs {
			vs[i] = string(maskRaw([]byte(v), values))
		}
	}
	return h
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
