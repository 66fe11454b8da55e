package api

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flowd/flowd/internal/agentproto"
	"github.com/flowd/flowd/internal/jobspec"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// The agent protocol, version 1 (docs/agent-protocol.md is its contract; internal/agentproto
// its paths, headers and bodies): the calls a `flowd agent` makes under /api/agent/v1/,
// authenticated with an agent token (never a user's). Every answer comes from the database
// alone, so any server of an installation answers any call. This file holds the
// authentication, register and claim; agent_attempt.go the per-attempt calls; agent_admin.go
// the tokens and pause/resume of the API v1.

const (
	agentPrefix = agentproto.Prefix + "/"
	// agentMaxBody bounds an agent call's body: a log PUT carries up to 1 MiB.
	agentMaxBody = 1 << 20
	// maxClaimWait bounds a claim's long-poll.
	maxClaimWait = 30 * time.Second
	// claimPoll is how often a waiting claim looks for work nobody woke it for (a
	// notification of another server that was lost).
	claimPoll = 5 * time.Second
	// heartbeatEvery is how often an agent heartbeats each running attempt.
	heartbeatEvery = time.Second
	// cancelGrace is how long a canceled job's processes have between SIGTERM and SIGKILL.
	cancelGrace = 10 * time.Second
	// agentTokenPrefix starts every agent token.
	agentTokenPrefix = "fat_"
)

// Signal is a broadcast wake-up: every Wait begun before a Wake returns. The claims of agents
// wait on one; whatever wakes the server's scheduler (a run queued here, a notification of
// another server, a job's end) wakes it too. The zero Signal is ready to use; a nil *Signal
// never wakes anybody.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// Wake wakes everyone waiting. It never blocks.
func (s *Signal) Wake() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// C returns a channel closed at the next Wake (nil, never closed, for a nil Signal). Take it
// before looking for work, so a Wake between the look and the wait is not missed.
func (s *Signal) C() <-chan struct{} {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// agentRoutes adds the agent protocol's routes to mux, and the API v1's administration of
// agents (agent_admin.go).
func (s *Server) agentRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+agentproto.Prefix+agentproto.RegisterPath, s.agentRegister)
	mux.HandleFunc("POST "+agentproto.Prefix+agentproto.ClaimPath, s.agentClaim)
	mux.HandleFunc("POST "+agentproto.Prefix+agentproto.HeartbeatPath, s.agentHeartbeat)
	mux.HandleFunc("POST "+agentproto.Prefix+agentproto.StepsPath, s.agentSteps)
	mux.HandleFunc("PUT "+agentproto.Prefix+agentproto.LogPath, s.agentLog)
	mux.HandleFunc("POST "+agentproto.Prefix+agentproto.FinishPath, s.agentFinish)

	mux.HandleFunc("POST /api/v1/agent-tokens", s.agentTokenCreate)
	mux.HandleFunc("GET /api/v1/agent-tokens", s.agentTokenList)
	mux.HandleFunc("DELETE /api/v1/agent-tokens/{name}", s.agentTokenRevoke)
	mux.HandleFunc("GET /api/v1/agents", s.agentList)
	mux.HandleFunc("POST /api/v1/agents/{name}/pause", s.agentPause(true))
	mux.HandleFunc("POST /api/v1/agents/{name}/resume", s.agentPause(false))
}

// leaseTTL is the lease of agents' attempts.
func (s *Server) leaseTTL() time.Duration {
	if s.LeaseTTL > 0 {
		return s.LeaseTTL
	}
	return store.DefaultLeaseTTL
}

// bearerHash is the SHA-256 of the request's bearer token, as agent tokens are stored.
func bearerHash(r *http.Request) []byte {
	_, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return sum[:]
}

// agentAuth finds the agent token of "Authorization: Bearer <agent token>"; an unknown or
// revoked one is answered 401 agent_unauthorized. The body of agent calls is bounded here.
func (s *Server) agentAuth(w http.ResponseWriter, r *http.Request) (store.AgentToken, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, agentMaxBody)
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || !strings.HasPrefix(token, agentTokenPrefix) {
		writeError(w, http.StatusUnauthorized, "agent_unauthorized",
			"send Authorization: Bearer <agent token> (fat_…); a global admin creates one with `flowd agent-token create`")
		return store.AgentToken{}, false
	}
	t, err := s.Store.AgentTokenFind(r.Context(), bearerHash(r))
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusUnauthorized, "agent_unauthorized",
			"the agent token is unknown; a global admin creates one with `flowd agent-token create`")
		return store.AgentToken{}, false
	case err != nil:
		s.storeError(w, r, err, "", "")
		return store.AgentToken{}, false
	case t.RevokedAt != nil:
		writeError(w, http.StatusUnauthorized, "agent_unauthorized",
			fmt.Sprintf("the agent token %q was revoked; a global admin creates a new one with `flowd agent-token create`", t.Name))
		return store.AgentToken{}, false
	}
	return t, true
}

var (
	agentNameRe  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)
	labelRe      = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,100}$`)
	labelValueRe = regexp.MustCompile(`^[A-Za-z0-9._/-]{0,100}$`)
	instanceRe   = regexp.MustCompile(`^[A-Za-z0-9-]{8,64}$`)
)

// maxLabels bounds the labels of an agent or an agent token.
const maxLabels = 32

// labelsProblem says what is wrong with labels, "" when nothing is.
func labelsProblem(labels map[string]string) string {
	if len(labels) > maxLabels {
		return fmt.Sprintf("labels: %d given, at most %d", len(labels), maxLabels)
	}
	for k, v := range labels {
		if !labelRe.MatchString(k) {
			return fmt.Sprintf("labels: the key %q is not 1 to 100 characters of A-Z a-z 0-9 . _ / -", k)
		}
		if !labelValueRe.MatchString(v) {
			return fmt.Sprintf("labels: the value %q of %s is not up to 100 characters of A-Z a-z 0-9 . _ / -", v, k)
		}
	}
	return ""
}

// unprocessable answers 422 invalid_agent_request with message.
func unprocessable(w http.ResponseWriter, message string) {
	writeError(w, http.StatusUnprocessableEntity, "invalid_agent_request", message)
}

func toAgentJSON(a store.Agent) agentproto.Agent {
	return agentproto.Agent{ID: a.ID, Name: a.Name, Labels: a.Labels, Capacity: a.Capacity, Version: a.Version, Paused: a.Paused}
}

// agentRegister: POST /api/agent/v1/register {"name","instance","labels","capacity","version"}
// → 200 {"agent",…}. Idempotent per token and name; a new instance settles the attempts the
// agent's previous instance left.
func (s *Server) agentRegister(w http.ResponseWriter, r *http.Request) {
	tok, ok := s.agentAuth(w, r)
	if !ok {
		return
	}
	var in agentproto.RegisterRequest
	if !decodeJSON(w, r, &in, false) {
		return
	}
	switch {
	case !agentNameRe.MatchString(in.Name):
		unprocessable(w, fmt.Sprintf("name: %q is not 1 to 100 characters of A-Z a-z 0-9 . _ -", in.Name))
		return
	case !instanceRe.MatchString(in.Instance):
		unprocessable(w, "instance: give a random id per start of the agent, 32 hex characters")
		return
	case in.Capacity < 1 || in.Capacity > 256:
		unprocessable(w, fmt.Sprintf("capacity: %d is not between 1 and 256", in.Capacity))
		return
	case len(in.Version) > 100:
		unprocessable(w, "version: at most 100 characters")
		return
	}
	if p := labelsProblem(in.Labels); p != "" {
		unprocessable(w, p)
		return
	}
	if len(tok.Labels) > 0 {
		for k, v := range in.Labels {
			if allowed, ok := tok.Labels[k]; !ok || allowed != v {
				writeError(w, http.StatusForbidden, "label_not_allowed",
					fmt.Sprintf("the agent token %q does not allow the label %s=%s (it allows %s)", tok.Name, k, v, run.FormatLabels(tok.Labels)))
				return
			}
		}
	}
	a, err := s.Store.AgentRegister(r.Context(), store.AgentRegister{TokenID: tok.ID, Name: in.Name, Instance: in.Instance,
		Labels: in.Labels, Capacity: in.Capacity, Version: in.Version, TTL: s.leaseTTL()})
	if err != nil {
		s.storeError(w, r, err, "", fmt.Sprintf("the name %q is taken by a server or by an agent of another token: give this agent another --name", in.Name))
		return
	}
	// The attempts of the agent's previous instance: that process is gone.
	rescued, err := s.Store.AgentRescuePrevious(r.Context(), a.Name, a.Instance)
	if err != nil {
		s.logger().Warn("api: settle the attempts of an agent's previous instance", "agent", a.Name, "err", err)
	}
	for _, d := range rescued {
		s.logger().Warn("rescued a job whose agent restarted", "run", d.RunID, "job", d.JobID, "attempt", d.Attempt,
			"runner", d.Runner, "outcome", d.Outcome)
		s.logNotify(d.RunID)
	}
	if len(rescued) > 0 {
		s.workDone()
	}
	writeJSON(w, http.StatusOK, agentproto.RegisterResponse{
		Agent:            toAgentJSON(a),
		LeaseSeconds:     int(s.leaseTTL().Seconds()),
		HeartbeatSeconds: int(heartbeatEvery.Seconds()),
		ClaimWaitSeconds: int(maxClaimWait.Seconds()),
	})
}

// logNotify tells log followers (here and, through LogNotify, on the other servers) that run
// runID changed.
func (s *Server) logNotify(runID int64) {
	if s.LogNotify != nil {
		s.LogNotify(runID)
	}
}

// workDone tells whoever claims work (this server's scheduler, agents waiting here and on the
// other servers) that work may be ready: a job ended, so the next stage may be open.
func (s *Server) workDone() {
	if s.WorkDone != nil {
		s.WorkDone()
	} else {
		s.AgentWork.Wake()
	}
}

// agentClaim: POST /api/agent/v1/claim {"agent_id","free","wait_seconds"} → 200 {"jobs":[…]}
// as soon as jobs are claimed, or 204 after the wait (at once for a paused agent).
func (s *Server) agentClaim(w http.ResponseWriter, r *http.Request) {
	tok, ok := s.agentAuth(w, r)
	if !ok {
		return
	}
	var in agentproto.ClaimRequest
	if !decodeJSON(w, r, &in, false) {
		return
	}
	ctx := r.Context()
	a, err := s.Store.AgentGet(ctx, in.AgentID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && a.TokenID != tok.ID) {
		writeError(w, http.StatusNotFound, "agent_not_found",
			fmt.Sprintf("agent %d is not registered with this token: register first (POST %s)", in.AgentID, agentproto.Prefix+agentproto.RegisterPath))
		return
	}
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	if in.Instance != "" && in.Instance != a.Instance {
		writeError(w, http.StatusConflict, "agent_replaced",
			fmt.Sprintf("agent %s registered again as another instance (%s): this process must stop", a.Name, a.Instance))
		return
	}
	if in.Free < 1 || in.Free > a.Capacity {
		unprocessable(w, fmt.Sprintf("free: %d is not between 1 and the agent's capacity, %d", in.Free, a.Capacity))
		return
	}
	if in.WaitSeconds < 0 {
		unprocessable(w, "wait_seconds: must not be negative")
		return
	}
	wait := min(time.Duration(in.WaitSeconds*float64(time.Second)), maxClaimWait)
	if err := s.Store.AgentSeen(ctx, a.Name, a.Instance); err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	if a.Paused {
		w.Header().Set(agentproto.AgentPausedHeader, "1")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	poll := time.NewTicker(claimPoll)
	defer poll.Stop()
	for {
		woken := s.AgentWork.C()
		jobs, err := s.claimFor(ctx, a, in.Free)
		switch {
		case err != nil && !errors.Is(err, store.ErrNotFound):
			s.storeError(w, r, err, "", "")
			return
		case len(jobs) > 0:
			writeJSON(w, http.StatusOK, agentproto.ClaimResponse{Jobs: jobs})
			return
		}
		select {
		case <-woken:
		case <-poll.C:
		case <-deadline.C:
			w.WriteHeader(http.StatusNoContent)
			return
		case <-s.Stopping:
			w.WriteHeader(http.StatusNoContent)
			return
		case <-ctx.Done():
			return
		}
		// Revoked, paused (or re-registered) meanwhile? A revoked token gets no job.
		if t, err := s.Store.AgentTokenFind(ctx, bearerHash(r)); err != nil || t.RevokedAt != nil {
			if err == nil || errors.Is(err, store.ErrNotFound) {
				writeError(w, http.StatusUnauthorized, "agent_unauthorized",
					fmt.Sprintf("the agent token %q was revoked; a global admin creates a new one with `flowd agent-token create`", tok.Name))
				return
			}
			s.storeError(w, r, err, "", "")
			return
		}
		if a, err = s.Store.AgentGet(ctx, a.ID); err != nil {
			s.storeError(w, r, err, "", "")
			return
		}
		if a.Paused {
			w.Header().Set(agentproto.AgentPausedHeader, "1")
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
}

// claimTimeout bounds one claim's store call. A claim, once begun, is seen through even when
// the agent went away meanwhile (its attempts are then rescued when their leases run out).
const claimTimeout = 30 * time.Second

// claimFor claims up to free jobs for agent a, as the server's scheduler claims (attempts of
// node a.Name and its instance, runners "<agent>/<slot>", the first step not started; only
// jobs whose runs-on a's labels match), and
// builds each job's spec. A job whose spec cannot be built (a secret the server cannot
// decrypt) fails at once with the reason in its log and is not handed out. ErrNotFound: none
// is ready.
func (s *Server) claimFor(ctx context.Context, a store.Agent, free int) ([]agentproto.Job, error) {
	used, err := s.Store.AgentRunners(ctx, a.Name)
	if err != nil {
		return nil, err
	}
	runners := make([]string, 0, free)
	for slot := 1; len(runners) < free; slot++ {
		name := a.Name + "/" + strconv.Itoa(slot)
		if !slices.Contains(used, name) {
			runners = append(runners, name)
		}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
	defer cancel()
	claims, err := s.Store.JobsClaim(cctx, store.JobsClaim{Max: free, Holder: store.Holder{Node: a.Name, Instance: a.Instance},
		Runners: runners, TTL: s.leaseTTL(), Labels: a.Labels})
	if err != nil {
		return nil, err
	}
	out := make([]agentproto.Job, 0, len(claims))
	for _, c := range claims {
		s.logNotify(c.Run.ID)
		spec, err := jobspec.BuildRemote(c, s.Box)
		if err != nil {
			s.failClaim(cctx, c, err.Error())
			continue
		}
		out = append(out, toAgentJob(c, spec, s.leaseTTL()))
	}
	if len(out) == 0 {
		return nil, store.ErrNotFound
	}
	return out, nil
}

// failClaim ends a claimed job that cannot be handed out, with message as its log line and
// failure.
func (s *Server) failClaim(ctx context.Context, c store.Claim, message string) {
	_, err := s.Store.JobComplete(ctx, store.JobEnd{Attempt: c.Attempt.ID, JobID: c.Job.ID, RunID: c.Run.ID, Status: run.Failed,
		Message: message, Logs: []run.LogChunk{{RunID: c.Run.ID, JobID: c.Job.ID, Attempt: c.Attempt.ID, Data: []byte(message + "\n")}}})
	if err != nil {
		s.logger().Error("api: fail a job an agent claimed", "run", c.Run.ID, "job", c.Job.ID, "err", err)
	}
	s.logNotify(c.Run.ID)
	s.workDone()
}

func toAgentJob(c store.Claim, spec jobspec.Spec, ttl time.Duration) agentproto.Job {
	j := agentproto.Job{
		Attempt:   agentproto.AttemptRef{ID: c.Attempt.ID, Number: c.Attempt.Number, Token: c.Attempt.Token, LeaseSeconds: int64(ttl.Seconds())},
		RunID:     c.Run.ID,
		RunNumber: c.Run.Number,
		JobID:     c.Job.ID,
		Pipeline:  spec.Pipeline,
		Stage:     spec.Stage,
		Job:       spec.Job,
		Steps:     make([]agentproto.Step, len(spec.Steps)),
		Env:       spec.Env,
		Secrets:   spec.Secrets,
		// Rounded up: a timeout of 1.5 s is not cut to 1 s.
		TimeoutSeconds:     int64((spec.Timeout + time.Second - 1) / time.Second),
		CancelGraceSeconds: int64(cmp.Or(spec.KillGrace, cancelGrace).Seconds()),
		Workspace:          spec.Workspace,
		Container:          spec.Container,
	}
	for i, st := range spec.Steps {
		j.Steps[i] = agentproto.Step{ID: st.ID, Name: st.Name, Script: st.Script}
	}
	if co := spec.Checkout; co != nil {
		j.Checkout = &agentproto.Checkout{URL: co.URL, SHA: co.SHA, Ref: co.Ref, Username: co.Username, Password: co.Password}
	}
	if j.Secrets == nil {
		j.Secrets = []string{}
	}
	return j
}
