package trigger

import "github.com/flowd/flowd/internal/webhook"

// Code is what a delivery or a run start came to: an outcome ("started", "skipped", …) or the
// error code of a refusal, as docs/api.md lists them. Package api maps each code to its HTTP
// status in one function; nothing in this package knows HTTP statuses.
type Code string

// Outcomes of a delivery that was accepted.
const (
	CodeStarted  Code = "started"  // a run was queued
	CodeSkipped  Code = "skipped"  // nothing to run on purpose: a ping, a ref the source does not build, a false filter
	CodeDryRun   Code = "dry_run"  // a dry run passed every step; nothing was started
	CodeReplayed Code = "replayed" // an idempotency key answered an earlier delivery's answer
)

// Refusals.
const (
	CodeNotFound          Code = "not_found"                  // unknown token, or the trigger is disabled
	CodeRateLimited       Code = "rate_limited"               // over the trigger's rate (RetryAfter)
	CodePipelineQueueFull Code = "pipeline_queue_full"        // the pipeline's queued runs are over its queue: bound (RetryAfter)
	CodeServerQueueFull   Code = "server_queue_full"          // the server's queued runs are over --max-queued-runs or --max-queue-seconds (RetryAfter)
	CodePayloadTooLarge   Code = "payload_too_large"          // body over MaxBody
	CodeInvalidSignature  Code = webhook.CodeInvalidSignature // signature or token header missing or wrong
	CodeInsufficientPerms Code = "insufficient_permissions"   // the trigger's owner may not run the pipeline
	CodeUntrusted         Code = "untrusted_pipeline"         // steps run as the server's user and the pipeline is not trusted
	CodeInvalidJSON       Code = webhook.CodeInvalidJSON
	CodeInvalidVariables  Code = webhook.CodeInvalidVariables
	CodeUnsupportedMedia  Code = webhook.CodeUnsupportedMediaType
	CodeBadRequest        Code = "bad_request"              // a run start names a ref that cannot be built
	CodeNoCommit          Code = "no_commit"                // the branch or tag is not in the repository, or no commit can be chosen
	CodeGitError          Code = "git_error"                // git ls-remote failed (unreachable repository, refused credentials)
	CodeNotRedeliverable  Code = "not_redeliverable"        // a redelivery of a delivery that did not pass the signature check
	CodeKeyMismatch       Code = "idempotency_key_mismatch" // an Idempotency-Key seen within 24 h came with another body
	CodeUnavailable       Code = "unavailable"              // the database is down, or the request ended undecided (RetryAfter)
	CodeInternal          Code = "internal"                 // a failure of the server, logged
)
