package store

// The webhook trigger's part of the store contract: triggers, their audit log, deliveries and
// idempotency keys. Bodies live in webhooks.go, audit.go and deliveries.go.

import (
	"time"

	"github.com/flowd/flowd/internal/run"
)

// IdempotencyWindow is how long an Idempotency-Key (or a Git host's delivery id) replays the
// first answer.
const IdempotencyWindow = 24 * time.Hour

// WebhookTrigger is a pipeline's webhook trigger. It exists from the first enable on.
type WebhookTrigger struct {
	PipelineID   int64
	Pipeline     string
	Enabled      bool
	TokenHash    []byte // SHA-256 of the token: the look-up key
	TokenSealed  []byte // the token encrypted with the server key, so admins can see the URL again
	SecretSealed []byte // the signature secret, encrypted; nil = no signature required
	// RequireTimestamp: a signed general-webhook request must carry a fresh X-Flowd-Timestamp
	// covered by its signature (replay protection); Git hosts' requests are not affected.
	RequireTimestamp bool
	OwnerID          int64  // the user who last enabled it; 0 once that user is deleted
	Owner            string // the owner's name, kept after the user is deleted
	EnabledAt        *time.Time
	UpdatedAt        time.Time
}

// WebhookEnable enables a trigger and makes OwnerID its owner.
type WebhookEnable struct {
	PipelineID int64
	OwnerID    int64
	// TokenHash and TokenSealed are used only when the trigger has no token yet (first enable);
	// re-enabling keeps the URL.
	TokenHash   []byte
	TokenSealed []byte
	// SetSecret replaces the secret with SecretSealed (nil clears it); otherwise it is kept.
	SetSecret    bool
	SecretSealed []byte
	// RequireTimestamp, when set, replaces the trigger's RequireTimestamp; nil keeps it.
	RequireTimestamp *bool
}

// AuditEntry is one change to a pipeline's trigger: who, what, when.
type AuditEntry struct {
	ID         int64
	PipelineID int64
	At         time.Time
	Actor      string // user name
	Action     string // "enable", "disable", "rotate", "secret", "timestamp"
	Detail     string
}

// Delivery is one HTTP request received on a webhook URL, with its outcome.
type Delivery struct {
	ID             int64
	PipelineID     int64
	Pipeline       string
	ReceivedAt     time.Time
	RemoteAddr     string
	Headers        map[string][]string // secret-bearing headers already redacted
	Body           []byte              // up to the body limit
	BodyTruncated  bool
	StatusCode     int
	ErrorCode      string // "" on success
	Response       []byte // the JSON answer sent
	RunID          *int64
	Trace          []byte // JSON decision trace
	DryRun         bool
	RedeliveryOf   *int64 // set on a redelivery from the API
	ReplayOf       *int64 // set when an idempotency key replayed an earlier delivery's answer
	IdempotencyKey string
	Signature      string // the signature step's verdict: one of the Signature* values
}

// The signature step's verdicts (Delivery.Signature). Only a delivery whose verdict is
// SignaturePassed or SignatureNone may be redelivered; a redelivery keeps its original's.
const (
	SignatureUnknown = ""          // the step was not reached, or the delivery predates the column
	SignaturePassed  = "passed"    // the signature or token matched the trigger's secret
	SignatureNone    = "none"      // the trigger had no secret
	SignatureFailed  = "failed"    // missing or wrong
	SignatureSkipped = "unchecked" // a dry run by a signed-in user without a signature header
)

// DeliveryRecord is a delivery to store, and the run it starts (NewRun nil = none).
type DeliveryRecord struct {
	Delivery Delivery
	// BodySHA256 is the hash of the body as received, kept with an idempotency key it claims:
	// the key sent again with another body is ErrKeyMismatch. nil = not compared.
	BodySHA256 []byte
	NewRun     *RunCreate
	// Answer builds the delivery's status and JSON answer from the run just created, inside the
	// transaction; it is called only when NewRun is set (otherwise Delivery carries them).
	Answer func(r run.Run) (status int, response []byte)
	// Basis, when set, is what the delivery was decided on, read earlier and kept: the delivery
	// is stored only if it still holds, else nothing is and the error is ErrStale.
	Basis *WebhookBasis
}

// WebhookBasis is what a webhook delivery was decided on when those facts were read before and
// kept (trigger.Webhooks keeps them per token for a few seconds): the trigger as it was, its
// owner's standing and the pipeline's revision. DeliveryRecord checks that they all still hold
// in the statement (PostgreSQL) or transaction (SQLite) that stores the delivery, and stores
// nothing when one does not (ErrStale). So a trigger disabled or rotated, an owner disabled,
// deleted, renamed or demoted, or a pipeline edited, deleted or untrusted, is seen by the very
// next delivery that would be stored, as if nothing had been kept.
type WebhookBasis struct {
	TokenHash        []byte    // the trigger's token is still this one
	TriggerUpdatedAt time.Time // and the trigger unchanged since (enabled, owner, secret)
	OwnerID          int64     // its owner, still this user
	OwnerName        string    // with this name (a webhook run is triggered by it)
	OwnerAdmin       bool      // still a global admin; or, when not,
	OwnerRole        string    // still this role on the pipeline ("viewer", "developer", "admin")
	Revision         int64     // the pipeline's current revision
	TrustedBy        string    // and its trust ("" = not trusted)
}
