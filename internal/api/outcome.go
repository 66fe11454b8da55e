package api

import (
	"net/http"

	"github.com/flowd/flowd/internal/trigger"
)

// outcomeStatus is the HTTP status of a trigger outcome or error code: the one place where what
// the webhook path (and a run start's Git look-up) decided becomes an HTTP answer, as
// docs/api.md lists them. The trigger package records it with each delivery (Webhooks.Status).
// A code it does not know is a server failure.
func outcomeStatus(code trigger.Code) int {
	switch code {
	case trigger.CodeStarted, trigger.CodeReplayed:
		// Only deliveries that started a run remember their idempotency key, so a replay
		// answers as they did.
		return http.StatusAccepted
	case trigger.CodeSkipped, trigger.CodeDryRun:
		return http.StatusOK
	case trigger.CodeNotFound:
		return http.StatusNotFound
	case trigger.CodeRateLimited, trigger.CodePipelineQueueFull:
		return http.StatusTooManyRequests
	case trigger.CodePayloadTooLarge:
		return http.StatusRequestEntityTooLarge
	case trigger.CodeInvalidSignature:
		return http.StatusUnauthorized
	case trigger.CodeInsufficientPerms, trigger.CodeUntrusted:
		return http.StatusForbidden
	case trigger.CodeInvalidJSON, trigger.CodeBadRequest:
		return http.StatusBadRequest
	case trigger.CodeInvalidVariables, trigger.CodeNoCommit, trigger.CodeKeyMismatch:
		return http.StatusUnprocessableEntity
	case trigger.CodeUnsupportedMedia:
		return http.StatusUnsupportedMediaType
	case trigger.CodeNotRedeliverable:
		return http.StatusConflict
	case trigger.CodeGitError:
		return http.StatusBadGateway
	case trigger.CodeUnavailable, trigger.CodeServerQueueFull:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
