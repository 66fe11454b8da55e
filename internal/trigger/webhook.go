package trigger

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"

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

// RateLimiter is the rate of requests each trigger's URL accepts, a token bucket per key:
// *webhook.Limiter keeps the buckets in this process (one server), SharedLimiter in the
// database, for servers that share it.
type RateLimiter interface {
	// Take takes a token for key; when none is left, ok is false and retryAfter says when one
	// will be.
	Take(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error)
}

// SharedLimiter keeps each trigger's token bucket in the database (store.Store.RateTake), so
// the servers sharing it accept Rate requests per second and Burst at once between them, not
// each. Its times are the database's. Build it with NewSharedLimiter.
//
// Each take is a statement on the trigger's row, and a busy trigger's row is taken one
// statement at a time. With a burst far beyond what any sender needs (1,024 or more), a server
// takes up to burst/1,024 tokens per statement (at most 64) and spends them in the next
// second; tokens it has not spent by then are dropped, never given back, so the limit errs on
// the side of refusing, by at most a thousandth of the burst. Smaller bursts (the default is
// 100) are taken a token at a time, so every server sees every take.
type SharedLimiter struct {
	store rateStore
	rate  float64
	burst int
	ahead int // tokens taken per statement when the bucket has them

	mu    sync.Mutex
	spare map[string]spareTokens // tokens taken ahead, per key
}

// rateStore is what SharedLimiter needs of the store.
type rateStore interface {
	RateTake(ctx context.Context, key string, rate float64, burst, n int) (ok bool, retryAfter time.Duration, err error)
}

// spareTokens are n tokens taken ahead, to spend before until.
type spareTokens struct {
	n     int
	until time.Time
}

// Bounds of taking tokens ahead (see SharedLimiter).
const (
	aheadShare = 1024
	aheadMax   = 64
	aheadFor   = time.Second
	// spareKeys is how many keys' spare tokens are kept before the stale ones are dropped.
	spareKeys = 1024
)

// NewSharedLimiter returns a limiter of rate requests per second and burst at once per key,
// in st.
func NewSharedLimiter(st rateStore, rate float64, burst int) *SharedLimiter {
	burst = max(burst, 1)
	return &SharedLimiter{store: st, rate: rate, burst: burst,
		ahead: min(max(burst/aheadShare, 1), aheadMax), spare: map[string]spareTokens{}}
}

// Take takes a token from the bucket of trigger key.
func (l *SharedLimiter) Take(ctx context.Context, key string) (bool, time.Duration, error) {
	if l.spend(key) {
		return true, 0, nil
	}
	if l.ahead > 1 {
		ok, _, err := l.store.RateTake(ctx, "webhook:"+key, l.rate, l.burst, l.ahead)
		if err != nil {
			return false, 0, err
		}
		if ok {
			l.keep(key, l.ahead-1)
			return true, 0, nil
		}
		// Fewer than ahead are left: take them one at a time, as with a small burst.
	}
	return l.store.RateTake(ctx, "webhook:"+key, l.rate, l.burst, 1)
}

// spend takes a spare token of key, if one is left and not stale.
func (l *SharedLimiter) spend(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	sp, ok := l.spare[key]
	if !ok {
		return false
	}
	if sp.n <= 0 || time.Now().After(sp.until) {
		delete(l.spare, key)
		return false
	}
	sp.n--
	l.spare[key] = sp
	return true
}

// keep adds n spare tokens of key, to spend within aheadFor.
func (l *SharedLimiter) keep(key string, n int) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.spare) >= spareKeys {
		for k, sp := range l.spare {
			if now.After(sp.until) {
				delete(l.spare, k)
			}
		}
	}
	sp := l.spare[key]
	if now.After(sp.until) {
		sp.n = 0
	}
	l.spare[key] = spareTokens{n: sp.n + n, until: now.Add(aheadFor)}
}

// DefaultMaxBody is the webhook body limit when Webhooks.MaxBody is 0.
const DefaultMaxBody = 1 << 20

// recordTimeout bounds the write of a delivery. The write does not end with the request: a
// caller that hangs up does not make a half-decided delivery vanish from the log.
const recordTimeout = 30 * time.Second

// Webhooks decides webhook deliveries: token → enabled → rate → size → signature → permission
// → payload → source → rules → variables → git → concurrency → queue → run, each step written
// to the delivery's trace, and stores every delivery that reaches a known trigger together
// with the run it starts (one transaction), except those over the rate limit or a queue
// bound. Its fields are set once before the first Deliver.
//
// A request whose headers name a Git host (githost.Detect) is a Git host event: its secret is
// checked the host's way (githost.Verify), its body parsed (githost.Parse) and matched against
// the pipeline's source (githost.Match); a ping or an event the source does not build is
// answered {"run":null,"skipped":reason} (CodeSkipped), a matching one starts a push run at the
// event's commit. Its body names no variables. Any other request is the general webhook: its
// JSON object's keys override declared variables, and a pipeline with a source builds the head
// of its default branch (git ls-remote). The pipeline's CEL rules (webhook.filter,
// webhook.variables) apply to every delivery; a variable with a rule takes the rule's value
// over a body key of the same name.
//
// Secret variables stay secret in the delivery log: the stored body has their keys' values
// replaced by "***" (RedactBody), and their values are masked in every trace, message and
// answer. A delivery sent through the API (redelivery, dry run) treats a secret variable whose
// value is exactly "***" as not given, since that is what a stored body holds.
//
// This package decides; it never chooses an HTTP status. Each Outcome carries a Code, and the
// API maps codes to statuses in one function; Status is that function, so the delivery log
// records the status the caller got.
type Webhooks struct {
	Store   WebhookStore
	Runs    *Service    // builds runs exactly as manual starts do, and wakes the scheduler
	Box     *secret.Box // opens triggers' signature secrets
	Limiter RateLimiter // per-trigger rate of requests to the URL; nil = unlimited
	// Queue bounds the queued runs of the server and of each pipeline (see Backlog and the
	// queue step); nil = unbounded.
	Queue   *Backlog
	MaxBody int64 // body limit in bytes; 0 = DefaultMaxBody
	// RunURL is the link to a run's web page in answers; nil gives "".
	RunURL func(id int64) string
	// APIURL is the link to the run in the API in answers; nil gives "".
	APIURL func(id int64) string
	// Status is the HTTP status the API answers for an outcome code (package api's mapping),
	// recorded with each stored delivery; nil records 0.
	Status func(Code) int
	Logger *slog.Logger

	bases basisCache // what the first steps read, per token (webhook_basis.go)
}

// Incoming is one request to deliver.
type Incoming struct {
	// Token is the secret of the webhook URL. API-driven deliveries (dry run, redeliver) leave
	// it empty and name the pipeline by PipelineID instead; they are not rate limited.
	Token      string
	PipelineID int64
	Headers    http.Header // as received (secret headers are redacted before they are stored)
	// Body is the request body as read: up to MaxBody+1 bytes. A longer one (or BodyTruncated)
	// is refused (CodePayloadTooLarge) and stored cut at MaxBody.
	Body          []byte
	BodyTruncated bool
	RemoteAddr    string
	ContentType   string // "" = Headers' Content-Type
	DryRun        bool   // decide everything, start nothing
	RedeliveryOf  int64  // the delivery this one repeats; 0 = none
	// Signature is the signature verdict of the delivery a redelivery repeats
	// (SignatureVerdict): only one that passed the check, or needed none, is redelivered.
	Signature     string
	SkipSignature bool // the caller is signed in (redelivery, a dry run without signature headers)
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

// Outcome is the answer to a delivery: what it came to (Code) and the JSON document to send.
type Outcome struct {
	// Code is what the delivery came to: CodeStarted, CodeSkipped, CodeDryRun, CodeReplayed, or
	// the error code of a refusal. The API turns it into the HTTP status.
	Code       Code
	Body       []byte        // the JSON answer
	RetryAfter time.Duration // for rate_limited, the queue bounds and unavailable: when to try again; 0 = none
	DeliveryID int64         // the stored delivery; 0 when nothing was stored
	RunID      int64         // the run started (or replayed); 0 = none
	Pipeline   string        // "" when the token is unknown
	// Replayed is set when an idempotency key answered an earlier delivery's answer.
	Replayed bool
}

// delivery is a delivery being decided: the request, the trace so far, the record to store, and
// what each step found for the steps after it.
type delivery struct {
	in    Incoming
	trace webhook.Trace
	trig  store.WebhookTrigger
	rec   store.Delivery // what will be stored
	// basis is the kept basis the delivery decides on (nil: it reads the store); fresh says it
	// must read the store; stale, that the store refused to store it on basis.
	basis *basis
	fresh bool
	stale bool
	// secret names the pipeline's secret variables once they are known (secretKnown); the
	// stored body has their values masked (redactBody).
	secret      map[string]bool
	secretKnown bool
	redacted    bool // rec.Body is masked
	// secretVals are the values of secret variables this delivery has seen (from the body, the
	// rules, the stored secrets): masked wherever the trace or an answer would show them.
	secretVals []string

	provider  githost.Provider // signature: the Git host the headers name, if fromHost
	fromHost  bool
	owner     ownerCheck         // permission: the trigger's owner, who the run runs as
	pipe      store.Pipeline     // payload: the pipeline as it is now
	def       *pipeline.Pipeline // its parsed definition
	withRules bool               // it has webhook.filter or webhook.variables
	overrides map[string]json.RawMessage
	event     *githost.Event // a Git host event; nil for the general webhook
	body      any            // the body as CEL sees it
	git       *run.Git       // source, git: the commit the run builds; nil = none
	input     rules.Input    // what CEL rules and concurrency.group read
	built     *Built         // variables: the run ready to store
	ignored   []string       // undeclared body keys; never nil once built
}

// step is one step of a delivery's trace: it writes its line and returns nil to go on, or the
// outcome that ends the delivery. The last step, run, always ends it.
type step func(ctx context.Context, d *delivery) *Outcome

// Deliver decides one delivery and stores it; see Webhooks. It never returns an error: a
// failure of the store is a CodeUnavailable (or CodeInternal) outcome, with nothing stored.
func (w *Webhooks) Deliver(ctx context.Context, in Incoming) Outcome {
	if in.ReceivedAt.IsZero() {
		in.ReceivedAt = time.Now()
	}
	if in.ContentType == "" {
		in.ContentType = in.Headers.Get("Content-Type")
	}
	d := w.deliver(ctx, &delivery{in: in})
	if d.stale {
		// What it was decided on changed since it was read (webhook_basis.go): decide it again
		// on what the store holds now.
		w.bases.drop(d.basis.trig.TokenHash)
		d = w.deliver(ctx, &delivery{in: in, fresh: true})
	}
	return *d.out
}

// decided is a delivery with its outcome.
type decided struct {
	*delivery
	out *Outcome
}

// deliver runs d's steps until one ends it.
func (w *Webhooks) deliver(ctx context.Context, d *delivery) decided {
	for _, next := range []step{
		w.token, w.enabled, w.rate, w.size, w.signature, w.permission,
		w.payload, w.source, w.rules, w.variables, w.git, w.concurrency, w.queue,
	} {
		if out := next(ctx, d); out != nil {
			return decided{d, out}
		}
	}
	return decided{d, w.run(ctx, d)}
}
