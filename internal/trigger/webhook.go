package trigger

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/rules"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/secret"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/webhook"
	"github.com/flowd/flowd/internal/webhook/githost"
)

// WebhookStore is what webhook deliveries need of the store.
type WebhookStore interface {
	WebhookGet(ctx context.Context, pipelineID int64) (store.WebhookTrigger, error)
	WebhookByTokenHash(ctx context.Context, hash []byte) (store.WebhookTrigger, error)
	PipelineGet(ctx context.Context, name string) (store.Pipeline, error)
	UserGetByID(ctx context.Context, id int64) (store.User, error)
	MemberRole(ctx context.Context, pipelineID, userID int64) (string, error)
	DeliveryRecord(ctx context.Context, rec store.DeliveryRecord) (store.Delivery, bool, error)
}

// DefaultMaxBody is the webhook body limit when Webhooks.MaxBody is 0.
const DefaultMaxBody = 1 << 20

// recordTimeout bounds the write of a delivery. The write does not end with the request: a
// caller that hangs up does not make a half-decided delivery vanish from the log.
const recordTimeout = 30 * time.Second

// Webhooks decides webhook deliveries: token → enabled → rate → size → signature → permission
// → payload → source → rules → variables → git → concurrency → run, each step written to the
// delivery's trace, and stores every delivery that reaches a known trigger together with the
// run it starts (one transaction). Its fields are set once before the first Deliver.
//
// A request whose headers name a Git host (githost.Detect) is a Git host event: its secret is
// checked the host's way (githost.Verify), its body parsed (githost.Parse) and matched against
// the pipeline's source (githost.Match); a ping or an event the source does not build is
// answered 200 {"run":null,"skipped":reason}, a matching one starts a push run at the event's
// commit. Its body names no variables. Any other request is the general webhook: its JSON
// object's keys override declared variables, and a pipeline with a source builds the head of
// its default branch (git ls-remote). The pipeline's CEL rules (webhook.filter,
// webhook.variables) apply to every delivery; a variable with a rule takes the rule's value
// over a body key of the same name.
//
// Secret variables stay secret in the delivery log: the stored body has their keys' values
// replaced by "***" (RedactBody), and their values are masked in every trace, message and
// answer. A delivery sent through the API (redelivery, dry run) treats a secret variable whose
// value is exactly "***" as not given, since that is what a stored body holds.
type Webhooks struct {
	Store   WebhookStore
	Runs    *Service         // builds runs exactly as manual starts do, and wakes the scheduler
	Box     *secret.Box      // opens triggers' signature secrets
	Limiter *webhook.Limiter // per-trigger rate of requests to the URL; nil = unlimited
	MaxBody int64            // body limit in bytes; 0 = DefaultMaxBody
	// RunURL is the link to a run's web page in answers; nil gives "".
	RunURL func(id int64) string
	// APIURL is the link to the run in the API in answers; nil gives "".
	APIURL func(id int64) string
	Logger *slog.Logger
}

// Incoming is one request to deliver.
type Incoming struct {
	// Token is the secret of the webhook URL. API-driven deliveries (dry run, redeliver) leave
	// it empty and name the pipeline by PipelineID instead; they are not rate limited.
	Token      string
	PipelineID int64
	Headers    http.Header // as received (secret headers are redacted before they are stored)
	// Body is the request body as read: up to MaxBody+1 bytes. A longer one (or BodyTruncated)
	// is refused 413 and stored cut at MaxBody.
	Body          []byte
	BodyTruncated bool
	RemoteAddr    string
	ContentType   string // "" = Headers' Content-Type
	DryRun        bool   // decide everything, start nothing
	RedeliveryOf  int64  // the delivery this one repeats; 0 = none
	SkipSignature bool   // the caller is signed in (redelivery, a dry run without signature headers)
	// SkipSignatureWhy is the signature step's trace detail when SkipSignature is set; "" says
	// it is a redelivery by a signed-in user.
	SkipSignatureWhy string
	Actor            string // the signed-in user of an API-driven delivery, for the trace
	// IdempotencyKey makes a repeat within store.IdempotencyWindow answer the first answer.
	// Only deliveries that start a run remember it, so a refused request may be retried with
	// the same key once it is fixed, and no unsigned request can claim a key.
	IdempotencyKey string
	ReceivedAt     time.Time // zero = now
}

// Outcome is the answer to a delivery.
type Outcome struct {
	Status     int
	Body       []byte        // the JSON answer
	RetryAfter time.Duration // for 429 and 503: when to try again; 0 = no Retry-After
	DeliveryID int64         // the stored delivery; 0 when nothing was stored
	RunID      int64         // the run started (or replayed); 0 = none
	Pipeline   string        // "" when the token is unknown
	// Code is the outcome for metrics: "started", "dry_run", "replayed", or the error code.
	Code string
	// Replayed is set when an idempotency key answered an earlier delivery's answer.
	Replayed bool
}

// NewWebhookToken returns a new webhook token (256 random bits, URL-safe) and its look-up hash.
func NewWebhookToken() (token string, hash []byte, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("trigger: new webhook token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, HashWebhookToken(token), nil
}

// HashWebhookToken is the look-up key of a webhook token: its SHA-256.
//
// Finding a trigger by this hash instead of comparing tokens is safe against timing attacks:
// the database compares hashes, and whatever an attacker learns from timing is a prefix of
// the SHA-256 of their own guess, which says nothing about the hash of a token they do not
// know (a preimage). A token carries 256 random bits, so a fast unsalted hash is enough.
func HashWebhookToken(token string) []byte { return auth.HashToken(token) }

// notFoundMessage is the one answer to an unknown token and to a disabled trigger, so a caller
// cannot tell them apart.
const notFoundMessage = "no enabled webhook trigger has this URL: check the URL, or ask a pipeline admin to enable the trigger (or to give you its new URL if it was rotated)"

// errorAnswer is the JSON of a refused delivery; Delivery is added once it is stored.
type errorAnswer struct {
	Error struct {
		Code     string `json:"code"`
		Message  string `json:"message"`
		Problems any    `json:"problems,omitempty"`
	} `json:"error"`
	Trace webhook.Trace `json:"trace"`
}

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

// delivery is a delivery being decided.
type delivery struct {
	in    Incoming
	trace webhook.Trace
	trig  store.WebhookTrigger
	rec   store.Delivery // what will be stored
	// secret names the pipeline's secret variables once they are known (secretKnown); the
	// stored body has their values masked (redactBody).
	secret      map[string]bool
	secretKnown bool
	redacted    bool // rec.Body is masked
	// secretVals are the values of secret variables this delivery has seen (from the body, the
	// rules, the stored secrets): masked wherever the trace or an answer would show them.
	secretVals []string
}

// Deliver decides one delivery and stores it; see Webhooks. It never returns an error: a
// failure of the store is a 503 (or 500) answer, with nothing stored.
func (w *Webhooks) Deliver(ctx context.Context, in Incoming) Outcome {
	if in.ReceivedAt.IsZero() {
		in.ReceivedAt = time.Now()
	}
	if in.ContentType == "" {
		in.ContentType = in.Headers.Get("Content-Type")
	}
	d := &delivery{in: in}

	// token
	var err error
	if in.Token != "" {
		d.trig, err = w.Store.WebhookByTokenHash(ctx, HashWebhookToken(in.Token))
		if errors.Is(err, store.ErrNotFound) {
			return w.notFound(d)
		}
		if err != nil {
			return w.failure(d, err)
		}
		d.trace.Add("token", true, "the URL belongs to the webhook trigger of pipeline %s", d.trig.Pipeline)
	} else {
		d.trig, err = w.Store.WebhookGet(ctx, in.PipelineID)
		if errors.Is(err, store.ErrNotFound) {
			d.trace.Add("token", false, "the pipeline's webhook trigger was never enabled")
			return w.answerError(d, http.StatusNotFound, "not_found",
				"this pipeline's webhook trigger was never enabled: a pipeline admin can enable it with POST /api/v1/pipelines/{name}/triggers/webhook/enable", nil)
		}
		if err != nil {
			return w.failure(d, err)
		}
		what := "a dry run"
		if in.RedeliveryOf != 0 {
			what = fmt.Sprintf("a redelivery of delivery %d", in.RedeliveryOf)
		}
		d.trace.Add("token", true, "%s of pipeline %s sent through the API by %s; no token needed", what, d.trig.Pipeline, in.Actor)
	}
	d.rec = w.baseRecord(d)

	// enabled
	if !d.trig.Enabled {
		d.trace.Add("enabled", false, "the trigger is disabled")
		if in.Token != "" {
			// Stored with the truth in its trace, answered exactly like an unknown token. A
			// flood at a disabled URL is answered the same way but not stored beyond the
			// trigger's rate, so it cannot fill the delivery log.
			out := w.notFound(d)
			out.Pipeline = d.trig.Pipeline // for metrics only
			if w.Limiter != nil {
				if ok, _ := w.Limiter.Allow(strconv.FormatInt(d.trig.PipelineID, 10), time.Now()); !ok {
					return out
				}
			}
			d.rec.StatusCode, d.rec.ErrorCode, d.rec.Response = out.Status, "not_found", out.Body
			stored, _, err := w.record(ctx, d, store.DeliveryRecord{Delivery: d.withTrace()})
			if err != nil {
				return w.failure(d, err)
			}
			out.DeliveryID = stored.ID
			return out
		}
		return w.refuse(ctx, d, http.StatusNotFound, "not_found",
			fmt.Sprintf("the webhook trigger of pipeline %s is disabled: a pipeline admin can enable it again with POST /api/v1/pipelines/%s/triggers/webhook/enable (the URL stays the same)", d.trig.Pipeline, d.trig.Pipeline), nil)
	}
	d.trace.Add("enabled", true, "enabled by %s", d.trig.Owner)

	// rate
	switch {
	case in.Token == "":
		d.trace.Add("rate", true, "not limited: sent through the API by a signed-in user")
	case w.Limiter == nil:
		d.trace.Add("rate", true, "no rate limit is set")
	default:
		ok, wait := w.Limiter.Allow(strconv.FormatInt(d.trig.PipelineID, 10), time.Now())
		if !ok {
			secs := max(1, int64(math.Ceil(wait.Seconds())))
			d.trace.Add("rate", false, "over the trigger's rate limit; retry in %d s", secs)
			out := w.answerError(d, http.StatusTooManyRequests, "rate_limited",
				fmt.Sprintf("too many requests to this webhook: send again after %d seconds (Retry-After), or send less often", secs), nil)
			out.RetryAfter = time.Duration(secs) * time.Second
			return out
		}
		d.trace.Add("rate", true, "within the trigger's rate limit")
	}

	// size
	limit := w.maxBody()
	if in.BodyTruncated || int64(len(in.Body)) > limit {
		d.trace.Add("size", false, "the body is over the limit of %d bytes", limit)
		return w.refuse(ctx, d, http.StatusRequestEntityTooLarge, "payload_too_large",
			fmt.Sprintf("the body is over the limit of %d bytes (--max-body): send less, e.g. only the variables as a JSON object", limit), nil)
	}
	d.trace.Add("size", true, "%d bytes", len(in.Body))

	// signature
	provider, fromHost := githost.Detect(in.Headers)
	switch {
	case in.SkipSignature:
		why := in.SkipSignatureWhy
		if why == "" {
			why = "skipped: a redelivery by a signed-in user"
		}
		d.trace.Add("signature", true, "%s", why)
	case len(d.trig.SecretSealed) == 0:
		d.trace.Add("signature", true, "the trigger has no secret; no signature needed")
	case fromHost:
		sec, err := w.openSecret(d.trig)
		if err != nil {
			return w.failure(d, err)
		}
		if err := githost.Verify(provider, in.Headers, in.Body, sec); err != nil {
			d.trace.Add("signature", false, "%s", err.Error())
			return w.refuse(ctx, d, http.StatusUnauthorized, "invalid_signature", err.Error(), nil)
		}
		d.trace.Add("signature", true, "%s", hostSignatureOK(provider))
	default:
		sec, err := w.openSecret(d.trig)
		if err != nil {
			return w.failure(d, err)
		}
		if err := webhook.VerifySignature(in.Headers, in.Body, sec); err != nil {
			var werr *webhook.Error
			if !errors.As(err, &werr) {
				werr = &webhook.Error{Status: http.StatusUnauthorized, Code: "invalid_signature", Message: err.Error()}
			}
			d.trace.Add("signature", false, "%s", werr.Message)
			return w.refuse(ctx, d, werr.Status, werr.Code, werr.Message, nil)
		}
		d.trace.Add("signature", true, "the signature matches the trigger's secret")
	}

	// permission
	owner, err := w.checkOwner(ctx, d.trig)
	if err != nil {
		return w.failure(d, err)
	}
	if owner.Problem != "" {
		d.trace.Add("permission", false, "%s", owner.Problem)
		return w.refuse(ctx, d, http.StatusForbidden, "insufficient_permissions", owner.Problem+", then resend", nil)
	}
	if owner.User.Admin {
		d.trace.Add("permission", true, "the owner %s is a global admin", owner.User.Username)
	} else {
		d.trace.Add("permission", true, "the owner %s is a %s of pipeline %s", owner.User.Username, owner.Role, d.trig.Pipeline)
	}

	// The pipeline as it is now: its source and rules decide what the payload means.
	p, err := w.Store.PipelineGet(ctx, d.trig.Pipeline)
	if errors.Is(err, store.ErrNotFound) { // deleted since the token was looked up
		return w.notFound(d)
	}
	if err != nil {
		return w.failure(d, err)
	}
	def, err := w.Runs.parsed(p)
	if err != nil { // the store only holds definitions that parsed when they were saved
		return w.failure(d, err)
	}
	d.secret, d.secretKnown = secretNames(def), true
	withRules := hasRules(def)

	// payload
	var (
		overrides map[string]json.RawMessage
		event     *githost.Event
	)
	if fromHost {
		event, err = githost.Parse(provider, in.Headers, in.Body)
		if err != nil {
			msg := strings.TrimPrefix(err.Error(), "githost: ")
			if errors.Is(err, githost.ErrInvalidPayload) {
				msg += ": send the JSON body the host sends, with Content-Type application/json"
			}
			d.trace.Add("payload", false, "%s", msg)
			return w.refuse(ctx, d, http.StatusBadRequest, "invalid_json", msg, nil)
		}
		overrides = map[string]json.RawMessage{} // a host's payload names no variables
		d.trace.Add("payload", true, "%s", describeEvent(event))
	} else {
		overrides, err = webhook.DecodePayload(in.ContentType, in.Body)
		if err != nil {
			var werr *webhook.Error
			if !errors.As(err, &werr) {
				werr = &webhook.Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: err.Error()}
			}
			if !withRules || werr.Code != "invalid_variables" {
				d.trace.Add("payload", false, "%s", werr.Message)
				return w.refuse(ctx, d, werr.Status, werr.Code, werr.Message, nil)
			}
			// Valid JSON that is not an object: the pipeline's rules read it as body.
			overrides = map[string]json.RawMessage{}
			d.trace.Add("payload", true, "a JSON value that is not an object: no variables from the body; the webhook rules read it")
		} else {
			d.trace.Add("payload", true, "a JSON object with %d keys", len(overrides))
		}
		for k, v := range overrides {
			if d.secret[k] {
				d.addSecret(valueText(v))
			}
		}
	}
	var body any // the body as CEL sees it; read when a rule may need it
	if withRules || def.Concurrency != nil {
		if body, err = ruleBody(in.ContentType, in.Body); err != nil {
			if withRules {
				msg := "the body is not JSON the webhook rules can read: " + err.Error()
				d.trace.Add("payload", false, "%s", msg)
				return w.refuse(ctx, d, http.StatusBadRequest, "invalid_json", msg, nil)
			}
			body = nil
		}
	}

	// source
	var git *run.Git
	switch {
	case event != nil:
		if event.Kind == githost.KindPing {
			return w.skip(ctx, d, "source", fmt.Sprintf("ping event from %s: the webhook reaches flowd; push events will start runs", provider))
		}
		ok, reason := githost.Match(def.Source, event)
		if !ok {
			return w.skip(ctx, d, "source", reason)
		}
		git = eventGit(def.Source, event)
		if !validSHA(git.SHA) {
			msg := fmt.Sprintf("the %s %s event names no full commit SHA (got %q), so there is no commit to build", provider, event.Kind, git.SHA)
			d.trace.Add("source", false, "%s", msg)
			return w.refuse(ctx, d, http.StatusBadRequest, "invalid_json", msg+": send the host's payload as it is", nil)
		}
		detail := describeMatch(git)
		if reason != "" {
			detail += "; note: " + reason
		}
		d.trace.Add("source", true, "%s", detail)
	case def.Source != nil:
		d.trace.Add("source", true, "not a Git host event: the run builds the head of the default branch of %s", def.Source.URL)
	}

	// rules
	input := rules.Input{Body: body, Headers: ruleHeaders(in.Headers), Event: eventMap(event)}
	if withRules {
		res, err := w.Runs.programs.evalRules(ctx, def, input, secretNames(def))
		if err != nil {
			var verr *pipeline.VariableError
			if !errors.As(err, &verr) {
				return w.stopped(d, err)
			}
			d.trace.Add("rules", false, "%s", verr.Error())
			return w.refuse(ctx, d, http.StatusUnprocessableEntity, "invalid_variables",
				verr.Error()+"; fix the pipeline's rules or the payload and send again", problemsOf(verr))
		}
		for k, v := range res.Values {
			if d.secret[k] {
				d.addSecret(v)
			}
		}
		for i, line := range res.Trace {
			d.trace.Add("rules", res.Pass || i < len(res.Trace)-1, "%s", line)
		}
		if !res.Pass {
			return w.skip(ctx, d, "", "webhook.filter is false")
		}
		var shadowed []string
		overrides, shadowed = mergeRuleValues(overrides, res.Values)
		if len(shadowed) > 0 {
			d.trace.Add("rules", true, "body keys %s ignored: webhook.variables sets them", strings.Join(shadowed, ", "))
		}
	}

	// variables
	if in.Token == "" {
		// A stored body has its secret values masked: "***" from a redelivery or a dry run of a
		// stored delivery means the value was not kept, not a value to run with.
		for _, name := range sortedKeys(overrides) {
			if d.secret[name] && valueText(overrides[name]) == pipeline.Masked {
				delete(overrides, name)
				d.trace.Add("variables", true, "%s: the stored value was masked; the default is used", name)
			}
		}
	}
	trig := run.TriggerWebhook
	if event != nil {
		trig = run.TriggerPush
	}
	built, err := w.Runs.Build(p, trig, owner.User.Username, overrides)
	if err != nil {
		var verr *pipeline.VariableError
		if !errors.As(err, &verr) {
			return w.failure(d, err)
		}
		d.trace.Add("variables", false, "%s", verr.Error())
		return w.refuse(ctx, d, http.StatusUnprocessableEntity, "invalid_variables",
			verr.Error()+"; fix them and send again", problemsOf(verr))
	}
	for _, v := range built.secretValues() {
		d.addSecret(v)
	}
	ignored := built.Resolved.Ignored
	if ignored == nil {
		ignored = []string{}
	}
	if len(ignored) > 0 {
		d.trace.Add("variables", true, "%d variables; undeclared keys ignored: %v", len(built.Resolved.Values), ignored)
	} else {
		d.trace.Add("variables", true, "%d variables", len(built.Resolved.Values))
	}

	// git: a payload that is not a Git host event builds the head of the default branch
	if git == nil && def.Source != nil {
		branch, plain := DefaultBranch(def.Source)
		if !plain {
			msg := fmt.Sprintf("this payload is not a Git host event, so it names no commit, and source.branches %v holds no plain branch name whose head could be built: put a plain branch name (such as main) first in source.branches, send the Git host's push event, or start the run with POST /api/v1/pipelines/%s/runs and a branch or commit", def.Source.Branches, p.Name)
			d.trace.Add("git", false, "%s", msg)
			return w.refuse(ctx, d, http.StatusUnprocessableEntity, codeNoCommit, msg, nil)
		}
		git, err = resolveGit(ctx, def.Source, GitRef{Branch: branch}, built.secretValues(), string(run.TriggerWebhook))
		if err != nil {
			var gerr *GitError
			if !errors.As(err, &gerr) {
				return w.stopped(d, err)
			}
			d.trace.Add("git", false, "%s", gerr.Message)
			return w.refuse(ctx, d, gerr.Status, gerr.Code, gerr.Message, nil)
		}
		d.trace.Add("git", true, "branch %s of %s is at %s (git ls-remote)", git.Branch, git.RepoURL, git.SHA)
		input.Event = gitMap(git)
	}
	built.Create.Git = git

	// concurrency
	if def.Concurrency != nil {
		line, err := w.Runs.applyConcurrency(ctx, built, input)
		if err != nil {
			var verr *pipeline.VariableError
			if !errors.As(err, &verr) {
				if ctx.Err() != nil {
					return w.stopped(d, err)
				}
				return w.failure(d, err)
			}
			d.trace.Add("concurrency", false, "%s", verr.Error())
			return w.refuse(ctx, d, http.StatusUnprocessableEntity, "invalid_variables",
				verr.Error()+"; fix concurrency.group or the payload and send again", problemsOf(verr))
		}
		d.trace.Add("concurrency", true, "%s", line)
	}
	cancelPrevious := def.Concurrency != nil && def.Concurrency.CancelPrevious

	// run
	what := fmt.Sprintf("a run of %s as %s", p.Name, owner.User.Username)
	if git != nil {
		what += " at " + shortSHA(git.SHA)
	}
	if in.DryRun {
		d.trace.Add("run", true, "dry run: %s would start; nothing was started", what)
		body := mustJSON(dryRunAnswer{DryRun: true, WouldStart: true, Variables: built.Masked(), Ignored: ignored,
			Git: git, ConcurrencyGroup: d.mask(built.Create.ConcurrencyGroup), Trace: d.outTrace()})
		d.rec.StatusCode, d.rec.Response = http.StatusOK, body
		stored, _, err := w.record(ctx, d, store.DeliveryRecord{Delivery: d.withTrace()})
		if err != nil {
			return w.failure(d, err)
		}
		return Outcome{Status: http.StatusOK, Body: withFields(body, "delivery", stored.ID),
			DeliveryID: stored.ID, Pipeline: d.trig.Pipeline, Code: "dry_run"}
	}
	key := in.IdempotencyKey
	if key == "" && event != nil {
		key = eventKey(event)
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
	create := built.Create
	stored, replayed, err := w.record(ctx, d, store.DeliveryRecord{
		Delivery: d.withTrace(),
		NewRun:   &create,
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
			a.Ignored, a.Trace = ignored, d.outTrace()
			answer = mustJSON(a)
			return http.StatusAccepted, answer
		},
	})
	if err != nil {
		return w.failure(d, err)
	}
	out := Outcome{DeliveryID: stored.ID, Pipeline: d.trig.Pipeline}
	if stored.RunID != nil {
		out.RunID = *stored.RunID
	}
	if replayed {
		first := stored.ID
		if stored.ReplayOf != nil {
			first = *stored.ReplayOf
		}
		out.Status, out.Code, out.Replayed = stored.StatusCode, "replayed", true
		out.Body = withFields(stored.Response, "delivery", first, "replayed", true)
		return out
	}
	if len(stored.Response) > 0 {
		answer = stored.Response
	}
	w.Runs.supersede(ctx, created, cancelPrevious)
	w.Runs.wake()
	out.Status, out.Code = http.StatusAccepted, "started"
	out.Body = withFields(answer, "delivery", stored.ID)
	return out
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

// skip stores a delivery that starts no run and answers 200 {"run":null,"skipped":reason}; step,
// when set, is the trace step that decided it.
func (w *Webhooks) skip(ctx context.Context, d *delivery, step, reason string) Outcome {
	if step != "" {
		d.trace.Add(step, false, "%s", reason)
	}
	a := skipAnswer{Ignored: []string{}, Skipped: d.mask(reason), Trace: d.outTrace()}
	if d.in.DryRun {
		no := false
		a.DryRun, a.WouldStart = true, &no
	}
	body := mustJSON(a)
	d.rec.StatusCode, d.rec.Response = http.StatusOK, body
	stored, _, err := w.record(ctx, d, store.DeliveryRecord{Delivery: d.withTrace()})
	if err != nil {
		return w.failure(d, err)
	}
	return Outcome{Status: http.StatusOK, Body: withFields(body, "delivery", stored.ID),
		DeliveryID: stored.ID, Pipeline: d.trig.Pipeline, Code: "skipped"}
}

// stopped answers a delivery whose request ended (or whose git look-up was interrupted) before
// it was decided: 503, nothing stored.
func (w *Webhooks) stopped(d *delivery, err error) Outcome {
	w.logger().Warn("trigger: webhook delivery interrupted", "pipeline", d.trig.Pipeline, "err", err)
	d.trace.Add("run", false, "the request ended before the delivery was decided")
	out := w.answerError(d, http.StatusServiceUnavailable, "unavailable",
		"the delivery could not be decided in time; nothing was accepted — send again", nil)
	out.RetryAfter = 5 * time.Second
	return out
}

// problem is one of the "problems" of a 422 invalid_variables answer.
type problem struct {
	Key     string `json:"key"`
	Message string `json:"message"`
}

// problemsOf is the "problems" of a 422 invalid_variables answer.
func problemsOf(verr *pipeline.VariableError) any {
	probs := make([]problem, len(verr.Problems))
	for i, pr := range verr.Problems {
		probs[i] = problem{Key: pr.Key, Message: pr.Message}
	}
	return probs
}

// secretNames are the names of def's secret variables.
func secretNames(def *pipeline.Pipeline) map[string]bool {
	out := map[string]bool{}
	for _, v := range def.Variables {
		if v.Secret {
			out[v.Name] = true
		}
	}
	return out
}

// eventKey is the idempotency key of a Git host event sent without Idempotency-Key: the host's
// delivery id, so the host's "redeliver" starts nothing new; a host that sends none (Codeup)
// gives provider:ref:after, so the same push delivered twice builds once.
func eventKey(e *githost.Event) string {
	if e.DeliveryID != "" {
		key := string(e.Provider) + "-delivery:" + e.DeliveryID
		if len(key) > 200 {
			sum := sha256.Sum256([]byte(key))
			key = "sha256:" + hex.EncodeToString(sum[:])
		}
		return key
	}
	return string(e.Provider) + ":" + e.Ref + ":" + e.After
}

// hostSignatureOK is the trace line of a Git host request whose secret checked out.
func hostSignatureOK(p githost.Provider) string {
	switch p {
	case githost.GitLab:
		return "gitlab: X-Gitlab-Token matches the trigger's secret"
	case githost.Codeup:
		return "codeup: X-Codeup-Token matches the trigger's secret"
	case githost.GitHub:
		return "github: X-Hub-Signature-256 matches the body and the trigger's secret"
	case githost.Gitea:
		return "gitea: X-Gitea-Signature (or X-Forgejo-Signature) matches the body and the trigger's secret"
	case githost.Gogs:
		return "gogs: X-Gogs-Signature matches the body and the trigger's secret"
	}
	return string(p) + ": X-Hub-Signature matches the body and the trigger's secret"
}

// describeEvent is the payload step's line for a Git host event.
func describeEvent(e *githost.Event) string {
	s := fmt.Sprintf("a %s %q event", e.Provider, e.RawEvent)
	switch e.Kind {
	case githost.KindPush, githost.KindTag:
		s += fmt.Sprintf(" (%s): %s %s → %s", e.Kind, e.Ref, shortSHA(e.Before), shortSHA(e.After))
	case githost.KindPullRequest:
		if pr := e.PullRequest; pr != nil {
			s += fmt.Sprintf(" (pull request #%d %s: %s → %s at %s)", pr.Number, pr.Action, pr.SourceBranch, pr.TargetBranch, shortSHA(e.After))
		}
	default:
		s += fmt.Sprintf(" (%s)", e.Kind)
	}
	if e.RepoName != "" {
		s += " of " + e.RepoName
	}
	return s
}

// describeMatch is the source step's line for an event that starts a run.
func describeMatch(g *run.Git) string {
	switch {
	case g.Event == string(githost.KindPullRequest):
		return fmt.Sprintf("pull request from branch %s matches the pipeline's source; the run builds %s", g.Branch, g.SHA)
	case g.Tag != "":
		return fmt.Sprintf("tag %s matches source.tags; the run builds %s", g.Tag, g.SHA)
	}
	return fmt.Sprintf("push to branch %s matches the pipeline's source; the run builds %s", g.Branch, g.SHA)
}

// shortSHA is the first 12 characters of a SHA.
func shortSHA(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

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

// refuse stores a refused delivery and answers {"error","delivery","trace"} with status.
func (w *Webhooks) refuse(ctx context.Context, d *delivery, status int, code, message string, problems any) Outcome {
	out := w.answerError(d, status, code, message, problems)
	d.rec.StatusCode, d.rec.ErrorCode, d.rec.Response = status, code, out.Body
	stored, _, err := w.record(ctx, d, store.DeliveryRecord{Delivery: d.withTrace()})
	if err != nil {
		return w.failure(d, err)
	}
	out.DeliveryID = stored.ID
	out.Body = withFields(out.Body, "delivery", stored.ID)
	return out
}

// answerError builds an error answer that is not stored (yet).
func (w *Webhooks) answerError(d *delivery, status int, code, message string, problems any) Outcome {
	var a errorAnswer
	a.Error.Code, a.Error.Message, a.Error.Problems = code, d.mask(message), problems
	if probs, ok := problems.([]problem); ok {
		masked := make([]problem, len(probs))
		for i, pr := range probs {
			masked[i] = problem{Key: pr.Key, Message: d.mask(pr.Message)}
		}
		a.Error.Problems = masked
	}
	a.Trace = d.outTrace()
	return Outcome{Status: status, Body: mustJSON(a), Pipeline: d.trig.Pipeline, Code: code}
}

// notFound is the answer to an unknown token, and to a disabled trigger's URL: the same bytes.
func (w *Webhooks) notFound(d *delivery) Outcome {
	var a errorAnswer
	a.Error.Code, a.Error.Message = "not_found", notFoundMessage
	a.Trace = webhook.Trace{{Step: "token", OK: false, Detail: "no enabled webhook trigger has this URL"}}
	out := Outcome{Status: http.StatusNotFound, Body: mustJSON(a), Code: "not_found"}
	if d.in.Token == "" {
		out.Pipeline = d.trig.Pipeline
	}
	return out
}

// failure answers a store (or key) failure: 503 when the database is unreachable, else 500.
// Nothing was stored.
func (w *Webhooks) failure(d *delivery, err error) Outcome {
	d.trace.Add("store", false, "the server could not decide or store the delivery")
	if errors.Is(err, store.ErrUnavailable) {
		w.logger().Warn("trigger: webhook delivery: database unavailable", "pipeline", d.trig.Pipeline, "err", err)
		out := w.answerError(d, http.StatusServiceUnavailable, "unavailable",
			"the database cannot be reached; nothing was accepted — send again later", nil)
		out.RetryAfter = 5 * time.Second
		return out
	}
	w.logger().Error("trigger: webhook delivery failed", "pipeline", d.trig.Pipeline, "err", err)
	return w.answerError(d, http.StatusInternalServerError, "internal",
		"the server failed to handle this delivery; it was logged — send again or tell the administrator", nil)
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

// RedactBody returns body with the values of the top-level keys in secret replaced by the JSON
// string "***": for a JSON object (also one cut at the size limit: a secret value the cut runs
// through is masked to the end), and for GitHub's form encoding, whose payload fields hold the
// JSON. The rest of a JSON body is kept byte for byte; a form body's payload field is encoded
// again. Keys are matched after JSON unescaping, every occurrence of a repeated key is masked,
// and any value (string, number, object, …) is replaced. A body without such keys, or that is
// neither, is returned as it is.
func RedactBody(body []byte, secret map[string]bool) []byte {
	if len(secret) == 0 || len(body) == 0 {
		return body
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '{' {
		out, _ := redactObject(body, secret)
		return out
	}
	if !bytes.Contains(body, []byte("payload")) {
		return body
	}
	parts := bytes.Split(body, []byte("&"))
	changed := false
	for i, part := range parts {
		k, v, _ := bytes.Cut(part, []byte("="))
		key, err := url.QueryUnescape(string(k))
		if err != nil || key != "payload" {
			continue
		}
		val, ok := unescapeCut(string(v))
		if !ok {
			continue
		}
		if red, did := redactObject([]byte(val), secret); did {
			parts[i] = append(append(bytes.Clone(k), '='), url.QueryEscape(string(red))...)
			changed = true
		}
	}
	if !changed {
		return body
	}
	return bytes.Join(parts, []byte("&"))
}

// unescapeCut is url.QueryUnescape of a form value that may have been cut inside a %XX escape
// (a body at the size limit): the incomplete escape is dropped.
func unescapeCut(v string) (string, bool) {
	for drop := 0; drop <= 2 && drop <= len(v); drop++ {
		if s, err := url.QueryUnescape(v[:len(v)-drop]); err == nil {
			return s, true
		}
	}
	return "", false
}

// redactObject masks the values of data's top-level keys in secret; data is a JSON object,
// possibly cut short or broken: the scan stops at the first problem, and a secret value it runs
// into is masked to the end of data.
func redactObject(data []byte, secret map[string]bool) ([]byte, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return data, false
	}
	var out []byte
	last := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		key, ok := tok.(string)
		if !ok { // the closing brace
			break
		}
		start := int(dec.InputOffset())
		for start < len(data) && strings.IndexByte(" \t\r\n:", data[start]) >= 0 {
			start++
		}
		var raw json.RawMessage
		err = dec.Decode(&raw)
		end := int(dec.InputOffset())
		if !secret[key] {
			if err != nil {
				break
			}
			continue
		}
		if err != nil || end > len(data) {
			end = len(data)
		}
		out = append(out, data[last:start]...)
		out = append(out, `"***"`...)
		last = end
		if err != nil {
			break
		}
	}
	if out == nil {
		return data, false
	}
	return append(out, data[last:]...), true
}

// addSecret notes the value of a secret variable, to be masked in the trace and answers.
func (d *delivery) addSecret(v string) {
	if v == "" || v == pipeline.Masked || slices.Contains(d.secretVals, v) {
		return
	}
	d.secretVals = append(d.secretVals, v)
	// Longest first, so a secret that contains another is masked whole.
	slices.SortFunc(d.secretVals, func(a, b string) int { return len(b) - len(a) })
}

// mask returns s with every value of a secret variable the delivery has seen replaced by ***,
// also as it looks quoted (strconv.Quote, as messages quote values).
func (d *delivery) mask(s string) string {
	for _, v := range d.secretVals {
		s = strings.ReplaceAll(s, v, pipeline.Masked)
		if q := strconv.Quote(v); q[1:len(q)-1] != v {
			s = strings.ReplaceAll(s, q[1:len(q)-1], pipeline.Masked)
		}
	}
	return s
}

// outTrace is the trace as answered and stored: secret values masked; never nil.
func (d *delivery) outTrace() webhook.Trace {
	out := make(webhook.Trace, len(d.trace))
	for i, st := range d.trace {
		st.Detail = d.mask(st.Detail)
		out[i] = st
	}
	return out
}

// valueText is the variable value a JSON value of the body stands for: a string's text, else
// the JSON text (as pipeline.ResolveVariables reads it).
func valueText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	var s string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// sortedKeys are m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
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

// mustJSON encodes a value of this file's answer types, which always encode.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("trigger: encode answer: %v", err))
	}
	return b
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
