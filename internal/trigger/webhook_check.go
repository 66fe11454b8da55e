package trigger

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/webhook"
	"github.com/flowd/flowd/internal/webhook/githost"
)

// The steps that check the request before its body is read for meaning: token → enabled →
// rate → size → signature → permission.

// token finds the trigger: by the URL's token, or by PipelineID for a delivery sent through the
// API (dry run, redelivery), which needs no token.
func (w *Webhooks) token(ctx context.Context, d *delivery) *Outcome {
	var err error
	if d.in.Token != "" {
		d.trig, err = w.findTrigger(ctx, d)
		if errors.Is(err, store.ErrNotFound) {
			return w.notFound(d)
		}
		if err != nil {
			return w.failure(d, err)
		}
		d.trace.Add("token", true, "the URL belongs to the webhook trigger of pipeline %s", d.trig.Pipeline)
	} else {
		d.trig, err = w.Store.WebhookGet(ctx, d.in.PipelineID)
		if errors.Is(err, store.ErrNotFound) {
			d.trace.Add("token", false, "the pipeline's webhook trigger was never enabled")
			return w.answerError(d, CodeNotFound,
				"this pipeline's webhook trigger was never enabled: a pipeline admin can enable it with POST /api/v1/pipelines/{name}/triggers/webhook/enable", nil)
		}
		if err != nil {
			return w.failure(d, err)
		}
		what := "a dry run"
		if d.in.RedeliveryOf != 0 {
			what = fmt.Sprintf("a redelivery of delivery %d", d.in.RedeliveryOf)
		}
		d.trace.Add("token", true, "%s of pipeline %s sent through the API by %s; no token needed", what, d.trig.Pipeline, d.in.Actor)
	}
	d.rec = w.baseRecord(d)
	return nil
}

// enabled refuses a disabled trigger. At its URL the answer is exactly an unknown token's.
func (w *Webhooks) enabled(ctx context.Context, d *delivery) *Outcome {
	if d.trig.Enabled {
		d.trace.Add("enabled", true, "enabled by %s", d.trig.Owner)
		return nil
	}
	d.trace.Add("enabled", false, "the trigger is disabled")
	if d.in.Token == "" {
		return w.refuse(ctx, d, CodeNotFound,
			fmt.Sprintf("the webhook trigger of pipeline %s is disabled: a pipeline admin can enable it again with POST /api/v1/pipelines/%s/triggers/webhook/enable (the URL stays the same)", d.trig.Pipeline, d.trig.Pipeline), nil)
	}
	// Stored with the truth in its trace, answered exactly like an unknown token. A flood at a
	// disabled URL is answered the same way but not stored beyond the trigger's rate, so it
	// cannot fill the delivery log.
	out := w.notFound(d)
	out.Pipeline = d.trig.Pipeline // for metrics only
	if w.Limiter != nil {
		if ok, _, err := w.Limiter.Take(ctx, strconv.FormatInt(d.trig.PipelineID, 10)); !ok || err != nil {
			return out
		}
	}
	d.rec.StatusCode, d.rec.ErrorCode, d.rec.Response = w.status(CodeNotFound), string(CodeNotFound), out.Body
	stored, _, err := w.record(ctx, d, store.DeliveryRecord{Delivery: d.withTrace()})
	if err != nil {
		return w.failure(d, err)
	}
	out.DeliveryID = stored.ID
	return out
}

// rate refuses a request over the trigger's rate; such a request is not stored.
func (w *Webhooks) rate(ctx context.Context, d *delivery) *Outcome {
	switch {
	case d.in.Token == "":
		d.trace.Add("rate", true, "not limited: sent through the API by a signed-in user")
	case w.Limiter == nil:
		d.trace.Add("rate", true, "no rate limit is set")
	default:
		ok, wait, err := w.Limiter.Take(ctx, strconv.FormatInt(d.trig.PipelineID, 10))
		if err != nil {
			return w.failure(d, err)
		}
		if !ok {
			secs := max(1, int64(math.Ceil(wait.Seconds())))
			d.trace.Add("rate", false, "over the trigger's rate limit; retry in %d s", secs)
			out := w.answerError(d, CodeRateLimited,
				fmt.Sprintf("too many requests to this webhook: send again after %d seconds (Retry-After), or send less often", secs), nil)
			out.RetryAfter = time.Duration(secs) * time.Second
			return out
		}
		d.trace.Add("rate", true, "within the trigger's rate limit")
	}
	return nil
}

// size refuses a body over MaxBody.
func (w *Webhooks) size(ctx context.Context, d *delivery) *Outcome {
	limit := w.maxBody()
	if d.in.BodyTruncated || int64(len(d.in.Body)) > limit {
		d.trace.Add("size", false, "the body is over the limit of %d bytes", limit)
		return w.refuse(ctx, d, CodePayloadTooLarge,
			fmt.Sprintf("the body is over the limit of %d bytes (--max-body): send less, e.g. only the variables as a JSON object", limit), nil)
	}
	d.trace.Add("size", true, "%d bytes", len(d.in.Body))
	return nil
}

// signature checks the trigger's secret: the Git host's way for a Git host's request, else
// flowd's X-Hub-Signature-256.
func (w *Webhooks) signature(ctx context.Context, d *delivery) *Outcome {
	d.provider, d.fromHost = githost.Detect(d.in.Headers)
	switch {
	case d.in.SkipSignature && d.in.RedeliveryOf != 0:
		return w.redelivered(ctx, d)
	case d.in.SkipSignature:
		d.rec.Signature = store.SignatureSkipped
		if len(d.trig.SecretSealed) == 0 {
			d.rec.Signature = store.SignatureNone // nothing to check: redeliverable
		}
		d.trace.Add("signature", true, "%s", cmp.Or(d.in.SkipSignatureWhy, "not checked: sent through the API by "+d.in.Actor))
		return nil
	case len(d.trig.SecretSealed) == 0:
		d.rec.Signature = store.SignatureNone
		d.trace.Add("signature", true, "the trigger has no secret; no signature needed")
		return nil
	}
	sec, err := w.openSecret(d.trig)
	if err != nil {
		return w.failure(d, err)
	}
	d.rec.Signature = store.SignatureFailed
	if d.fromHost {
		if err := githost.Verify(d.provider, d.in.Headers, d.in.Body, sec); err != nil {
			d.trace.Add("signature", false, "%s", err.Error())
			return w.refuse(ctx, d, CodeInvalidSignature, err.Error(), nil)
		}
		d.rec.Signature = store.SignaturePassed
		d.trace.Add("signature", true, "%s", hostSignatureOK(d.provider))
		return nil
	}
	if err := webhook.VerifySignature(d.in.Headers, d.in.Body, sec, time.Now(), d.trig.RequireTimestamp); err != nil {
		code, msg := CodeInvalidSignature, err.Error()
		var werr *webhook.Error
		if errors.As(err, &werr) {
			code, msg = Code(werr.Code), werr.Message
		}
		d.trace.Add("signature", false, "%s", msg)
		return w.refuse(ctx, d, code, msg, nil)
	}
	d.rec.Signature = store.SignaturePassed
	if d.in.Headers.Get(webhook.TimestampHeader) != "" {
		d.trace.Add("signature", true, "the signature of %s and the body matches the trigger's secret; the timestamp is within %v", webhook.TimestampHeader, webhook.TimestampTolerance)
	} else {
		d.trace.Add("signature", true, "the signature matches the trigger's secret")
	}
	return nil
}

// redelivered is the signature step of a redelivery: the signed-in caller is not asked to sign,
// but only a delivery that passed the check, or needed none, is sent again, so nobody can turn
// a request that failed it (or was never checked) into a run as the owner.
func (w *Webhooks) redelivered(ctx context.Context, d *delivery) *Outcome {
	d.rec.Signature = d.in.Signature
	var why string
	switch d.in.Signature {
	case store.SignaturePassed, store.SignatureNone:
		d.trace.Add("signature", true, "skipped: a redelivery by a signed-in user")
		return nil
	case store.SignatureFailed:
		why = "failed the signature check"
	case store.SignatureSkipped:
		why = "was a dry run whose signature was not checked"
	default:
		why = "never passed a signature check (it was refused before it, or is a redelivery stored before flowd recorded the check)"
	}
	msg := fmt.Sprintf("delivery %d %s, so it cannot be redelivered: only deliveries that passed the check (or needed none) can be; send the request again, signed with the trigger's secret", d.in.RedeliveryOf, why)
	d.trace.Add("signature", false, "%s", msg)
	return w.refuse(ctx, d, CodeNotRedeliverable, msg, nil)
}

// SignatureVerdict is the signature verdict of a stored delivery (store.Signature*); for one
// stored before flowd recorded it, read from its trace. A redelivery of it inherits it.
func SignatureVerdict(d store.Delivery) string {
	if d.Signature != store.SignatureUnknown {
		return d.Signature
	}
	var trace webhook.Trace
	if json.Unmarshal(d.Trace, &trace) != nil {
		return store.SignatureUnknown
	}
	for _, st := range trace {
		switch {
		case st.Step != "signature":
		case !st.OK:
			return store.SignatureFailed
		case strings.HasPrefix(st.Detail, "the trigger has no secret"):
			return store.SignatureNone
		case strings.HasPrefix(st.Detail, "not checked"):
			return store.SignatureSkipped
		case strings.HasPrefix(st.Detail, "skipped"): // a redelivery: its original is not known here
			return store.SignatureUnknown
		default:
			return store.SignaturePassed
		}
	}
	return store.SignatureUnknown
}

// permission checks that the trigger's owner, who the run runs as, may still run the pipeline.
func (w *Webhooks) permission(ctx context.Context, d *delivery) *Outcome {
	owner, err := w.ownerOf(ctx, d)
	if err != nil {
		return w.failure(d, err)
	}
	if owner.Problem != "" {
		d.trace.Add("permission", false, "%s", owner.Problem)
		return w.refuse(ctx, d, CodeInsufficientPerms, owner.Problem+", then resend", nil)
	}
	if owner.User.Admin {
		d.trace.Add("permission", true, "the owner %s is a global admin", owner.User.Username)
	} else {
		d.trace.Add("permission", true, "the owner %s is a %s of pipeline %s", owner.User.Username, owner.Role, d.trig.Pipeline)
	}
	d.owner = owner
	return nil
}
