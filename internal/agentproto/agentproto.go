// Package agentproto is the wire of the agent protocol, version 1, between a flowd server
// (internal/api) and a `flowd agent` (internal/agent): its paths, its headers and the JSON
// bodies of every call and answer. docs/agent-protocol.md is the contract; both sides use
// these types, so a field is added to the server and to the agent at once.
//
// The JSON the types make is the protocol's, byte for byte: a field's name, whether it is left
// out when empty, and whether an empty list is [] or null are all part of it. Where the server
// answered with a map before these types, the fields are in the map's (alphabetical) order.
package agentproto

import (
	"strconv"
	"strings"

	"github.com/flowd/flowd/internal/run"
)

// Prefix is the path every call of the protocol starts with.
const Prefix = "/api/agent/v1"

// The calls' paths, under Prefix. {id} is the attempt's id (AttemptPath fills it in).
const (
	RegisterPath  = "/register"
	ClaimPath     = "/claim"
	HeartbeatPath = "/attempts/{id}/heartbeat"
	StepsPath     = "/attempts/{id}/steps"
	LogPath       = "/attempts/{id}/log"
	FinishPath    = "/attempts/{id}/finish"
)

// AttemptPath is a per-attempt call's path (HeartbeatPath, StepsPath, LogPath or FinishPath)
// for attempt id.
func AttemptPath(path string, id int64) string {
	return strings.Replace(path, "{id}", strconv.FormatInt(id, 10), 1)
}

// Headers of the protocol (besides Authorization: Bearer <agent token> on every call).
const (
	// AttemptTokenHeader carries the attempt token of every per-attempt call.
	AttemptTokenHeader = "Flowd-Attempt-Token"
	// AgentPausedHeader is "1" on the 204 of a claim of a paused agent.
	AgentPausedHeader = "Flowd-Agent-Paused"
)

// RegisterRequest is the body of POST /register.
type RegisterRequest struct {
	Name     string            `json:"name"`
	Instance string            `json:"instance"` // random, new at every start of the agent
	Labels   map[string]string `json:"labels"`
	Capacity int               `json:"capacity"`
	Version  string            `json:"version"`
}

// RegisterResponse is the 200 answer of POST /register.
type RegisterResponse struct {
	Agent            Agent `json:"agent"`
	ClaimWaitSeconds int   `json:"claim_wait_seconds"`
	HeartbeatSeconds int   `json:"heartbeat_seconds"`
	LeaseSeconds     int   `json:"lease_seconds"`
}

// Agent is a registered agent, as the server holds it.
type Agent struct {
	ID       int64             `json:"id"`
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels"`
	Capacity int               `json:"capacity"`
	Version  string            `json:"version"`
	Paused   bool              `json:"paused"`
}

// ClaimRequest is the body of POST /claim.
type ClaimRequest struct {
	AgentID     int64   `json:"agent_id"`
	Instance    string  `json:"instance"`
	Free        int     `json:"free"`
	WaitSeconds float64 `json:"wait_seconds"`
}

// ClaimResponse is the 200 answer of POST /claim (a 204 without a body when no job came).
type ClaimResponse struct {
	Jobs []Job `json:"jobs"`
}

// Job is one job of a claim's answer: everything the agent needs to run it.
type Job struct {
	Attempt   AttemptRef `json:"attempt"`
	RunID     int64      `json:"run_id"`
	RunNumber int64      `json:"run_number"`
	JobID     int64      `json:"job_id"`
	Pipeline  string     `json:"pipeline"`
	Stage     string     `json:"stage"`
	Job       string     `json:"job"`
	Steps     []Step     `json:"steps"`
	Env       []string   `json:"env"`
	Checkout  *Checkout  `json:"checkout"` // null: no checkout
	// Secrets are the values to mask in the job's log: [], never null, when there are none.
	Secrets            []string       `json:"secrets"`
	TimeoutSeconds     int64          `json:"timeout_seconds"`
	CancelGraceSeconds int64          `json:"cancel_grace_seconds"`
	Workspace          string         `json:"workspace"`
	Container          *run.Container `json:"container"` // null: the job runs on the agent's host
}

// AttemptRef is the attempt a claimed job runs as; Token goes in AttemptTokenHeader.
type AttemptRef struct {
	ID           int64  `json:"id"`
	Number       int    `json:"number"`
	Token        string `json:"token"`
	LeaseSeconds int64  `json:"lease_seconds"`
}

// Step is one step of a claimed job.
type Step struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	Script string `json:"script"`
}

// Checkout is the repository a claimed job checks out first.
type Checkout struct {
	URL      string `json:"url"`
	SHA      string `json:"sha"`
	Ref      string `json:"ref"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// HeartbeatRequest is the body of POST /attempts/{id}/heartbeat: {}.
type HeartbeatRequest struct{}

// StateResponse is the 200 answer of heartbeat and steps: the attempt's state, "running" or
// "canceling", and when canceling the grace between SIGTERM and SIGKILL.
type StateResponse struct {
	GraceSeconds int    `json:"grace_seconds,omitempty"`
	State        string `json:"state"`
}

// StepResult is a finished step in a steps or finish call.
type StepResult struct {
	StepID   int64      `json:"step_id"`
	Status   run.Status `json:"status"`
	ExitCode *int       `json:"exit_code"`
}

// StepsRequest is the body of POST /attempts/{id}/steps: the steps finished since the last
// call, and the step started now (0: none).
type StepsRequest struct {
	Finished []StepResult `json:"finished"`
	Start    int64        `json:"start"`
}

// LogResponse is the 200 answer of PUT /attempts/{id}/log?offset=N: the length of the log the
// server holds.
type LogResponse struct {
	Length int64 `json:"length"`
}

// FinishRequest is the body of POST /attempts/{id}/finish.
type FinishRequest struct {
	Status    run.Status   `json:"status"`
	Message   string       `json:"message"`
	Steps     []StepResult `json:"steps"`
	LogLength int64        `json:"log_length"`
	LogSHA256 string       `json:"log_sha256"` // hex
}

// FinishResponse is the 200 answer of POST /attempts/{id}/finish: {}.
type FinishResponse struct{}

// ErrorResponse is the answer of a per-attempt call that carries more than its error: a 409
// with the attempt's State (attempt_gone) or the Length to send the log from (log_incomplete,
// log_mismatch), or a 416 log_gap with the Length the server holds.
type ErrorResponse struct {
	Error  ErrorDetail `json:"error"`
	Length *int64      `json:"length,omitempty"`
	State  string      `json:"state,omitempty"`
}

// ErrorDetail is the error of an answer that is not 2xx.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}
