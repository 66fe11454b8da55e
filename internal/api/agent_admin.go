package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/flowd/flowd/internal/agentproto"
	"github.com/flowd/flowd/internal/store"
)

// The administration of agents in the API v1 (global admins): agent tokens (create, list,
// revoke) and pausing agents. See docs/agent-protocol.md "Administration".

type agentTokenJSON struct {
	ID        int64             `json:"id"`
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels"`
	CreatedBy string            `json:"created_by"`
	CreatedAt time.Time         `json:"created_at"`
	RevokedAt *time.Time        `json:"revoked_at"`
	Agents    int               `json:"agents"`
}

func toAgentTokenJSON(t store.AgentToken) agentTokenJSON {
	return agentTokenJSON{ID: t.ID, Name: t.Name, Labels: t.Labels, CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt,
		RevokedAt: t.RevokedAt, Agents: t.Agents}
}

// newAgentToken returns a new agent token, "fat_" and 64 hex characters (256 random bits), and
// the hash that is stored.
func newAgentToken() (token string, hash []byte) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather than return an error)
	token = agentTokenPrefix + hex.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	return token, sum[:]
}

// agentTokenCreate: POST /api/v1/agent-tokens {"name","labels"} → 201 {…,"token"}; the token
// is shown only here.
func (s *Server) agentTokenCreate(w http.ResponseWriter, r *http.Request) {
	u, ok := s.requireAdmin(w, r, "manage agent tokens")
	if !ok {
		return
	}
	var in struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	}
	if !decodeJSON(w, r, &in, false) {
		return
	}
	in.Name = strings.TrimSpace(in.Name)
	if !agentNameRe.MatchString(in.Name) {
		writeError(w, http.StatusUnprocessableEntity, "invalid_agent_token",
			fmt.Sprintf("name: %q is not 1 to 100 characters of A-Z a-z 0-9 . _ -", in.Name))
		return
	}
	if p := labelsProblem(in.Labels); p != "" {
		writeError(w, http.StatusUnprocessableEntity, "invalid_agent_token", p)
		return
	}
	token, hash := newAgentToken()
	t, err := s.Store.AgentTokenCreate(r.Context(), in.Name, in.Labels, hash, u.Username)
	if err != nil {
		s.storeError(w, r, err, "", fmt.Sprintf("an agent token named %q exists already (revoked ones too): choose another name", in.Name))
		return
	}
	out := toAgentTokenJSON(t)
	writeJSON(w, http.StatusCreated, map[string]any{
		"id": out.ID, "name": out.Name, "labels": out.Labels, "created_by": out.CreatedBy, "created_at": out.CreatedAt, "token": token,
	})
}

// agentTokenList: GET /api/v1/agent-tokens → {"agent_tokens":[…]}, revoked ones included.
func (s *Server) agentTokenList(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireAdmin(w, r, "manage agent tokens"); !ok {
		return
	}
	ts, err := s.Store.AgentTokenList(r.Context())
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	out := make([]agentTokenJSON, len(ts))
	for i, t := range ts {
		out[i] = toAgentTokenJSON(t)
	}
	writeJSON(w, http.StatusOK, map[string]any{"agent_tokens": out})
}

// agentTokenRevoke: DELETE /api/v1/agent-tokens/{name} → 200 {"agent_token","jobs_canceled"}:
// the token's agents' live attempts are canceled at once and their next call gets 401.
func (s *Server) agentTokenRevoke(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireAdmin(w, r, "manage agent tokens"); !ok {
		return
	}
	name := r.PathValue("name")
	t, rescued, err := s.Store.AgentTokenRevoke(r.Context(), name)
	for _, d := range rescued {
		s.logNotify(d.RunID)
	}
	if len(rescued) > 0 {
		s.workDone()
	}
	if err != nil {
		s.storeError(w, r, err, fmt.Sprintf("no agent token is named %q (GET /api/v1/agent-tokens lists them)", name), "")
		return
	}
	s.AgentWork.Wake() // the token's agents waiting for a job here are told at once
	writeJSON(w, http.StatusOK, map[string]any{"agent_token": toAgentTokenJSON(t), "jobs_canceled": len(rescued)})
}

// agentListJSON is an agent as the API v1 lists it: the protocol's agent, and more.
type agentListJSON struct {
	agentproto.Agent
	Token        string    `json:"token"`
	Instance     string    `json:"instance"`
	RegisteredAt time.Time `json:"registered_at"`
}

// agentList: GET /api/v1/agents → {"agents":[…]}.
func (s *Server) agentList(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireAdmin(w, r, "manage agents"); !ok {
		return
	}
	as, err := s.Store.AgentList(r.Context())
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	out := make([]agentListJSON, len(as))
	for i, a := range as {
		out[i] = agentListJSON{Agent: toAgentJSON(a), Token: a.Token, Instance: a.Instance, RegisteredAt: a.RegisteredAt}
	}
	writeJSON(w, http.StatusOK, map[string]any{"agents": out})
}

// agentPause: POST /api/v1/agents/{name}/pause and /resume → 200 {"agent"}: a paused agent
// claims nothing; its running jobs go on.
func (s *Server) agentPause(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.requireAdmin(w, r, "manage agents"); !ok {
			return
		}
		name := r.PathValue("name")
		msg := fmt.Sprintf("no agent is named %q (GET /api/v1/agents lists them)", name)
		if err := s.Store.AgentPause(r.Context(), name, paused); err != nil {
			s.storeError(w, r, err, msg, "")
			return
		}
		as, err := s.Store.AgentList(r.Context())
		if err != nil {
			s.storeError(w, r, err, "", "")
			return
		}
		s.AgentWork.Wake() // a waiting claim of a paused agent ends now
		for _, a := range as {
			if a.Name == name {
				writeJSON(w, http.StatusOK, map[string]any{"agent": agentListJSON{Agent: toAgentJSON(a), Token: a.Token,
					Instance: a.Instance, RegisteredAt: a.RegisteredAt}})
				return
			}
		}
		notFound(w, msg)
	}
}
