package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/flowd/flowd/internal/agentproto"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// The per-attempt calls of the agent protocol (docs/agent-protocol.md): heartbeat, steps, log
// by offset, finish. Each carries the agent token and the attempt's token; each is fenced to
// the attempt, so a call for an attempt that was lost or has finished changes nothing and is
// answered 409 with the attempt's state.

// agentAttempt authenticates a per-attempt call: the agent token (401), then the attempt {id}
// of the path with the Flowd-Attempt-Token header, held by an agent of that token (404
// attempt_not_found otherwise).
func (s *Server) agentAttempt(w http.ResponseWriter, r *http.Request) (store.AgentAttempt, bool) {
	tok, ok := s.agentAuth(w, r)
	if !ok {
		return store.AgentAttempt{}, false
	}
	msg := fmt.Sprintf("attempt %s is not one of this agent token's, or the %s header is wrong", r.PathValue("id"), agentproto.AttemptTokenHeader)
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	token := r.Header.Get(agentproto.AttemptTokenHeader)
	if err != nil || id <= 0 || token == "" {
		writeError(w, http.StatusNotFound, "attempt_not_found", msg)
		return store.AgentAttempt{}, false
	}
	a, err := s.Store.AgentAttemptGet(r.Context(), tok.ID, id, token)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "attempt_not_found", msg)
		return store.AgentAttempt{}, false
	}
	if err != nil {
		s.storeError(w, r, err, "", "")
		return store.AgentAttempt{}, false
	}
	return a, true
}

// live reports whether an attempt in state st holds its job.
func live(st run.AttemptState) bool {
	return st == run.AttemptRunning || st == run.AttemptCanceling
}

// goneState is the state a 409 names for an attempt that no longer holds its job: "canceled"
// when the job ended canceled (a cancel the agent did not finish), else the attempt's state
// ("lost", "finished").
func goneState(a store.AgentAttempt) string {
	if a.State == run.AttemptLost && a.JobStatus == run.Canceled {
		return "canceled"
	}
	return string(a.State)
}

// attemptGone answers 409 attempt_gone with the attempt's state, read again (a write was just
// refused as fenced): the agent kills the job and sends nothing more for it.
func (s *Server) attemptGone(w http.ResponseWriter, r *http.Request, a store.AgentAttempt) {
	if fresh, ok := s.reread(r, a); ok {
		a = fresh
	}
	writeJSON(w, http.StatusConflict, agentproto.ErrorResponse{
		Error: agentproto.ErrorDetail{Code: "attempt_gone",
			Message: fmt.Sprintf("attempt %d no longer runs its job (%s): stop the job's processes and send nothing more for it", a.ID, goneState(a))},
		State: goneState(a),
	})
}

// reread reads attempt a again with the request's tokens.
func (s *Server) reread(r *http.Request, a store.AgentAttempt) (store.AgentAttempt, bool) {
	tok, err := s.agentTokenOf(r)
	if err != nil {
		return a, false
	}
	fresh, err := s.Store.AgentAttemptGet(r.Context(), tok.ID, a.ID, r.Header.Get(agentproto.AttemptTokenHeader))
	return fresh, err == nil
}

// agentTokenOf finds the request's agent token again, without answering anything.
func (s *Server) agentTokenOf(r *http.Request) (store.AgentToken, error) {
	_, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return s.Store.AgentTokenFind(r.Context(), sum[:])
}

// stateAnswer is the 200 answer of heartbeat and steps: the attempt's state, with the grace
// when it is canceling.
func stateAnswer(st run.AttemptState) agentproto.StateResponse {
	out := agentproto.StateResponse{State: string(st)}
	if st == run.AttemptCanceling {
		out.GraceSeconds = int(cancelGrace.Seconds())
	}
	return out
}

// agentHeartbeat: POST /api/agent/v1/attempts/{id}/heartbeat {} → 200 {"state"} (renews the
// lease) or 409 {"state"}.
func (s *Server) agentHeartbeat(w http.ResponseWriter, r *http.Request) {
	a, ok := s.agentAttempt(w, r)
	if !ok {
		return
	}
	var in agentproto.HeartbeatRequest
	if !decodeJSON(w, r, &in, true) {
		return
	}
	if !live(a.State) {
		s.attemptGone(w, r, a)
		return
	}
	st, err := s.Store.AgentHeartbeat(r.Context(), a.ID, s.leaseTTL())
	if errors.Is(err, store.ErrFenced) {
		s.attemptGone(w, r, a)
		return
	}
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	writeJSON(w, http.StatusOK, stateAnswer(st))
}

// stepResults checks and converts rs; it answers 422 itself and returns false on a problem.
func stepResults(w http.ResponseWriter, rs []agentproto.StepResult) ([]store.StepResult, bool) {
	out := make([]store.StepResult, len(rs))
	for i, x := range rs {
		if x.StepID <= 0 || !x.Status.Terminal() {
			unprocessable(w, fmt.Sprintf("steps[%d]: give a step_id and a final status (success, failed, canceled or skipped), not %q", i, x.Status))
			return nil, false
		}
		out[i] = store.StepResult{StepID: x.StepID, Status: x.Status, ExitCode: x.ExitCode}
	}
	return out, true
}

// agentSteps: POST /api/agent/v1/attempts/{id}/steps {"finished":[…],"start":N} → 200 {"state"}.
func (s *Server) agentSteps(w http.ResponseWriter, r *http.Request) {
	a, ok := s.agentAttempt(w, r)
	if !ok {
		return
	}
	var in agentproto.StepsRequest
	if !decodeJSON(w, r, &in, false) {
		return
	}
	finished, ok := stepResults(w, in.Finished)
	if !ok {
		return
	}
	if !live(a.State) {
		s.attemptGone(w, r, a)
		return
	}
	err := s.Store.StepAdvance(r.Context(), a.ID, finished, in.Start)
	if errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrFenced) && s.stepsRecorded(r, a, finished, in.Start) {
		err = nil // a resend after a lost answer: recorded already
	}
	switch {
	case errors.Is(err, store.ErrFenced):
		s.attemptGone(w, r, a)
		return
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "step_not_found", "a step given is not a step of this attempt's job")
		return
	case err != nil:
		s.storeError(w, r, err, "", "a step given is another job's, or not in the state this change needs (a step started or finished twice); nothing was recorded")
		return
	}
	s.logNotify(a.RunID)
	writeJSON(w, http.StatusOK, stateAnswer(a.State))
}

// stepsRecorded reports whether the steps of attempt a's job already are as a steps call
// would make them (each finished step with its status, the started one past queued): the call
// is a resend whose first answer was lost, and is answered as it was then.
func (s *Server) stepsRecorded(r *http.Request, a store.AgentAttempt, finished []store.StepResult, start int64) bool {
	rn, err := s.Store.RunGet(r.Context(), a.RunID)
	if err != nil {
		return false
	}
	status := map[int64]run.Status{}
	for _, j := range rn.Jobs {
		if j.ID == a.JobID {
			for _, st := range j.Steps {
				status[st.ID] = st.Status
			}
		}
	}
	for _, f := range finished {
		if got, ok := status[f.StepID]; !ok || got != f.Status {
			return false
		}
	}
	if start != 0 {
		if got, ok := status[start]; !ok || got == run.Queued {
			return false
		}
	}
	return true
}

// agentLog: PUT /api/agent/v1/attempts/{id}/log?offset=N with the raw bytes → 200 {"length"},
// or 416 {"length"} for a gap.
func (s *Server) agentLog(w http.ResponseWriter, r *http.Request) {
	a, ok := s.agentAttempt(w, r)
	if !ok {
		return
	}
	offset, err := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
	if err != nil || offset < 0 {
		unprocessable(w, "offset: give the byte of the attempt's log the body starts at (?offset=N, N ≥ 0)")
		return
	}
	body, err := io.ReadAll(r.Body)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "payload_too_large",
			fmt.Sprintf("a log PUT carries at most %d bytes: send the rest in the next", tooLarge.Limit))
		return
	case err != nil:
		badRequest(w, "could not read the request body: "+err.Error())
		return
	}
	if !live(a.State) {
		s.attemptGone(w, r, a)
		return
	}
	length, err := s.Store.AttemptLogAppend(r.Context(), a.ID, offset, body)
	var gap *store.LogGapError
	switch {
	case errors.As(err, &gap):
		writeJSON(w, http.StatusRequestedRangeNotSatisfiable, agentproto.ErrorResponse{
			Error:  agentproto.ErrorDetail{Code: "log_gap", Message: fmt.Sprintf("the log holds %d bytes; send from byte %d", gap.Length, gap.Length)},
			Length: &gap.Length,
		})
		return
	case errors.Is(err, store.ErrFenced):
		s.attemptGone(w, r, a)
		return
	case err != nil:
		s.storeError(w, r, err, "", "")
		return
	}
	if length > a.LogLength {
		s.logNotify(a.RunID)
	}
	writeJSON(w, http.StatusOK, agentproto.LogResponse{Length: length})
}

// agentFinish: POST /api/agent/v1/attempts/{id}/finish
// {"status","message","steps":[…],"log_length","log_sha256"} → 200 {}; 409 log_incomplete or
// log_mismatch with the length to send from.
func (s *Server) agentFinish(w http.ResponseWriter, r *http.Request) {
	a, ok := s.agentAttempt(w, r)
	if !ok {
		return
	}
	var in agentproto.FinishRequest
	if !decodeJSON(w, r, &in, false) {
		return
	}
	if !run.CanTransition(run.Running, in.Status) {
		unprocessable(w, fmt.Sprintf("status: %q is not success, failed or canceled", in.Status))
		return
	}
	steps, ok := stepResults(w, in.Steps)
	if !ok {
		return
	}
	sum, err := hex.DecodeString(in.LogSHA256)
	if err != nil || len(sum) != 32 || in.LogLength < 0 {
		unprocessable(w, "log_length and log_sha256: give the log's whole length and its SHA-256 in hex (64 characters)")
		return
	}
	if len(in.Message) > 4000 {
		in.Message = in.Message[:4000]
	}
	if a.State == run.AttemptFinished {
		writeJSON(w, http.StatusOK, agentproto.FinishResponse{}) // recorded already; the answer was lost
		return
	}
	if !live(a.State) {
		s.attemptGone(w, r, a)
		return
	}
	end := store.JobEnd{Attempt: a.ID, JobID: a.JobID, RunID: a.RunID, Steps: steps, Status: in.Status, Message: in.Message,
		Log: &store.LogSum{Length: in.LogLength}}
	copy(end.Log.SHA256[:], sum)
	_, err = s.Store.JobComplete(r.Context(), end)
	var lse *store.LogSumError
	switch {
	case errors.As(err, &lse) && lse.Mismatch:
		if err := s.Store.AttemptLogReset(r.Context(), a.ID); err != nil {
			if errors.Is(err, store.ErrFenced) {
				s.attemptGone(w, r, a)
				return
			}
			s.storeError(w, r, err, "", "")
			return
		}
		s.logNotify(a.RunID)
		writeJSON(w, http.StatusConflict, agentproto.ErrorResponse{
			Error: agentproto.ErrorDetail{Code: "log_mismatch",
				Message: "the stored log's SHA-256 differs from the one given: it was dropped; send the whole log again from byte 0, then finish again"},
			Length: new(int64(0)),
		})
		return
	case lse != nil:
		writeJSON(w, http.StatusConflict, agentproto.ErrorResponse{
			Error: agentproto.ErrorDetail{Code: "log_incomplete",
				Message: fmt.Sprintf("the stored log holds %d bytes, not %d: send from byte %d, then finish again", lse.Length, in.LogLength, lse.Length)},
			Length: &lse.Length,
		})
		return
	case errors.Is(err, store.ErrFenced):
		if fresh, ok := s.reread(r, a); ok && fresh.State == run.AttemptFinished {
			writeJSON(w, http.StatusOK, agentproto.FinishResponse{}) // a repeated finish raced the first
			return
		}
		s.attemptGone(w, r, a)
		return
	case errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound):
		// A step report the store refuses (a step recorded already): the log matched, so the
		// job is finished without the steps, which take the job's status.
		s.logger().Warn("api: an agent's job end was refused; finishing it without its step results", "attempt", a.ID, "err", err)
		if _, err := s.Store.JobFinish(r.Context(), a.ID, a.JobID, in.Status, in.Message); err != nil {
			if errors.Is(err, store.ErrFenced) {
				s.attemptGone(w, r, a)
				return
			}
			s.storeError(w, r, err, "", "")
			return
		}
	case err != nil:
		s.storeError(w, r, err, "", "")
		return
	}
	s.logNotify(a.RunID)
	s.workDone()
	writeJSON(w, http.StatusOK, agentproto.FinishResponse{})
}
