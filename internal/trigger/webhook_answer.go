package trigger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/webhook"
)

// notFoundMessage is the one answer to an unknown token and to a disabled trigger, so a caller
// cannot tell them apart.
const notFoundMessage = "no enabled webhook trigger has this URL: check the URL, or ask a pipeline admin to enable the trigger (or to give you its new URL if it was rotated)"

// errorAnswer is the JSON of a refused delivery; Delivery is added once it is stored.
type errorAnswer struct {
	Error struct {
		Code     Code   `json:"code"`
		Message  string `json:"message"`
		Problems any    `json:"problems,omitempty"`
	} `json:"error"`
	Trace webhook.Trace `json:"trace"`
}

// skipAnswer is the JSON of a delivery that starts nothing on purpose: a ping, an event the
// pipeline's source does not build, a webhook.filter that is false.
type skipAnswer struct {
	DryRun     bool          `json:"dry_run,omitempty"`
	Run        *struct{}     `json:"run"` // always null
	WouldStart *bool         `json:"would_start,omitempty"`
	Ignored    []string      `json:"ignored"`
	Skipped    string        `json:"skipped"`
	Trace      webhook.Trace `json:"trace"`
}

// problem is one of the "problems" of an invalid_variables answer.
type problem struct {
	Key     string `json:"key"`
	Message string `json:"message"`
}

// problemsOf is the "problems" of an invalid_variables answer.
func problemsOf(verr *pipeline.VariableError) []problem {
	probs := make([]problem, len(verr.Problems))
	for i, pr := range verr.Problems {
		probs[i] = problem{Key: pr.Key, Message: pr.Message}
	}
	return probs
}

// skip stores a delivery that starts no run and answers {"run":null,"skipped":reason}; step,
// when set, is the trace step that decided it.
func (w *Webhooks) skip(ctx context.Context, d *delivery, step, reason string) *Outcome {
	if step != "" {
		d.trace.Add(step, false, "%s", reason)
	}
	a := skipAnswer{Ignored: []string{}, Skipped: d.mask(reason), Trace: d.outTrace()}
	if d.in.DryRun {
		no := false
		a.DryRun, a.WouldStart = true, &no
	}
	return w.settle(ctx, d, CodeSkipped, mustJSON(a))
}

// settle stores a delivery that ends without starting a run and without an error (skipped, a
// dry run) and answers body with the delivery's id.
func (w *Webhooks) settle(ctx context.Context, d *delivery, code Code, body []byte) *Outcome {
	d.rec.StatusCode, d.rec.Response = w.status(code), body
	stored, _, err := w.record(ctx, d, store.DeliveryRecord{Delivery: d.withTrace()})
	if err != nil {
		return w.failure(d, err)
	}
	return &Outcome{Code: code, Body: withDelivery(body, stored.ID),
		DeliveryID: stored.ID, Pipeline: d.trig.Pipeline}
}

// refuse stores a refused delivery and answers {"error","delivery","trace"}.
func (w *Webhooks) refuse(ctx context.Context, d *delivery, code Code, message string, problems []problem) *Outcome {
	out := w.answerError(d, code, message, problems)
	d.rec.StatusCode, d.rec.ErrorCode, d.rec.Response = w.status(code), string(code), out.Body
	stored, _, err := w.record(ctx, d, store.DeliveryRecord{Delivery: d.withTrace()})
	if err != nil {
		return w.failure(d, err)
	}
	out.DeliveryID = stored.ID
	out.Body = withDelivery(out.Body, stored.ID)
	return out
}

// answerError builds an error answer that is not stored (yet).
func (w *Webhooks) answerError(d *delivery, code Code, message string, problems []problem) *Outcome {
	var a errorAnswer
	a.Error.Code, a.Error.Message = code, d.mask(message)
	if problems != nil {
		masked := make([]problem, len(problems))
		for i, pr := range problems {
			masked[i] = problem{Key: pr.Key, Message: d.mask(pr.Message)}
		}
		a.Error.Problems = masked
	}
	a.Trace = d.outTrace()
	return &Outcome{Code: code, Body: mustJSON(a), Pipeline: d.trig.Pipeline}
}

// notFound is the answer to an unknown token, and to a disabled trigger's URL: the same bytes.
func (w *Webhooks) notFound(d *delivery) *Outcome {
	var a errorAnswer
	a.Error.Code, a.Error.Message = CodeNotFound, notFoundMessage
	a.Trace = webhook.Trace{{Step: "token", OK: false, Detail: "no enabled webhook trigger has this URL"}}
	out := &Outcome{Code: CodeNotFound, Body: mustJSON(a)}
	if d.in.Token == "" {
		out.Pipeline = d.trig.Pipeline
	}
	return out
}

// stopped answers a delivery whose request ended (or whose git look-up was interrupted) before
// it was decided: unavailable, nothing stored.
func (w *Webhooks) stopped(d *delivery, err error) *Outcome {
	w.logger().Warn("trigger: webhook delivery interrupted", "pipeline", d.trig.Pipeline, "err", err)
	d.trace.Add("run", false, "the request ended before the delivery was decided")
	out := w.answerError(d, CodeUnavailable,
		"the delivery could not be decided in time; nothing was accepted — send again", nil)
	out.RetryAfter = 5 * time.Second
	return out
}

// failure answers a store (or key) failure: unavailable when the database is unreachable, else
// internal. Nothing was stored.
func (w *Webhooks) failure(d *delivery, err error) *Outcome {
	if d.stale { // not a failure: Deliver decides the delivery again
		return &Outcome{Code: CodeInternal}
	}
	d.trace.Add("store", false, "the server could not decide or store the delivery")
	if errors.Is(err, store.ErrUnavailable) {
		w.logger().Warn("trigger: webhook delivery: database unavailable", "pipeline", d.trig.Pipeline, "err", err)
		out := w.answerError(d, CodeUnavailable,
			"the database cannot be reached; nothing was accepted — send again later", nil)
		out.RetryAfter = 5 * time.Second
		return out
	}
	w.logger().Error("trigger: webhook delivery failed", "pipeline", d.trig.Pipeline, "err", err)
	return w.answerError(d, CodeInternal,
		"the server failed to handle this delivery; it was logged — send again or tell the administrator", nil)
}

// status is the HTTP status the API answers for code, to record with the delivery.
func (w *Webhooks) status(code Code) int {
	if w.Status == nil {
		return 0
	}
	return w.Status(code)
}

// mustJSON encodes a value of this package's answer types, which always encode.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("trigger: encode answer: %v", err))
	}
	return b
}

// withDelivery is withFields(obj, "delivery", id) for an answer this package has just encoded
// (mustJSON of an answer type, none of which has a "delivery" field): the field is appended
// without decoding obj, which was a few per cent of a delivery's CPU.
func withDelivery(obj []byte, id int64) []byte {
	if len(obj) < 2 || obj[0] != '{' || obj[len(obj)-1] != '}' {
		return withFields(obj, "delivery", id)
	}
	out := make([]byte, 0, len(obj)+32)
	out = append(out, obj[:len(obj)-1]...)
	if len(obj) > 2 {
		out = append(out, ',')
	}
	out = append(out, `"delivery":`...)
	out = strconv.AppendInt(out, id, 10)
	return append(out, '}')
}

// withFields adds key/value pairs to the JSON object obj (keys it already has are replaced).
// The keys of obj keep their order; the new ones come last.
func withFields(obj []byte, kv ...any) []byte {
	trimmed := bytes.TrimSpace(obj)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &m); err != nil || m == nil {
		m = map[string]json.RawMessage{}
		trimmed = []byte("{}")
	}
	var extra bytes.Buffer
	for i := 0; i+1 < len(kv); i += 2 {
		key := kv[i].(string)
		if _, dup := m[key]; dup {
			// Rare (a stored answer that has the field): rebuild from the map.
			for j := 0; j+1 < len(kv); j += 2 {
				m[kv[j].(string)] = mustJSON(kv[j+1])
			}
			return mustJSON(m)
		}
		extra.WriteByte(',')
		extra.Write(mustJSON(key))
		extra.WriteByte(':')
		extra.Write(mustJSON(kv[i+1]))
	}
	out := bytes.Clone(trimmed[:len(trimmed)-1])
	if len(m) == 0 && extra.Len() > 0 {
		extra.Next(1) // no comma after "{"
	}
	out = append(out, extra.Bytes()...)
	return append(out, '}')
}
