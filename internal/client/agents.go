package client

import (
	"context"
	"net/http"
	"time"
)

// The administration of build agents (global admins only; docs/agent-protocol.md
// "Administration"). The agent protocol itself is internal/agent's.

// AgentToken is an agent token as listed (its secret is shown only when it is created).
type AgentToken struct {
	ID        int64             `json:"id"`
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels"`
	CreatedBy string            `json:"created_by"`
	CreatedAt time.Time         `json:"created_at"`
	RevokedAt *time.Time        `json:"revoked_at"`
	// Agents counts the agents registered with it.
	Agents int `json:"agents"`
}

// NewAgentToken is a created agent token with its secret (fat_…), shown only this once.
type NewAgentToken struct {
	AgentToken
	Token string `json:"token"`
}

// RevokedAgentToken is the answer of AgentTokenRevoke.
type RevokedAgentToken struct {
	AgentToken AgentToken `json:"agent_token"`
	// JobsCanceled counts the running jobs of its agents that the revoke canceled.
	JobsCanceled int `json:"jobs_canceled"`
}

// Agent is a registered build agent.
type Agent struct {
	ID           int64             `json:"id"`
	Name         string            `json:"name"`
	Token        string            `json:"token"` // its agent token's name
	Labels       map[string]string `json:"labels"`
	Capacity     int               `json:"capacity"`
	Version      string            `json:"version"`
	Paused       bool              `json:"paused"`
	Instance     string            `json:"instance"`
	RegisteredAt time.Time         `json:"registered_at"`
}

// AgentTokenCreate creates an agent token named name, its agents limited to labels (none: any).
func (c *Client) AgentTokenCreate(ctx context.Context, name string, labels map[string]string) (*NewAgentToken, error) {
	in := map[string]any{"name": name, "labels": labels}
	return call[NewAgentToken](ctx, c, http.MethodPost, p("agent-tokens"), in)
}

// AgentTokenList lists the agent tokens, revoked ones included.
func (c *Client) AgentTokenList(ctx context.Context) ([]AgentToken, error) {
	var out struct {
		Tokens []AgentToken `json:"agent_tokens"`
	}
	if err := c.doJSON(ctx, http.MethodGet, p("agent-tokens"), nil, &out); err != nil {
		return nil, err
	}
	return out.Tokens, nil
}

// AgentTokenRevoke revokes the agent token named name: its agents' running jobs are canceled
// and their next call is refused.
func (c *Client) AgentTokenRevoke(ctx context.Context, name string) (*RevokedAgentToken, error) {
	return call[RevokedAgentToken](ctx, c, http.MethodDelete, p("agent-tokens", name), nil)
}

// AgentList lists the registered agents.
func (c *Client) AgentList(ctx context.Context) ([]Agent, error) {
	var out struct {
		Agents []Agent `json:"agents"`
	}
	if err := c.doJSON(ctx, http.MethodGet, p("agents"), nil, &out); err != nil {
		return nil, err
	}
	return out.Agents, nil
}

// AgentPause pauses (paused true) or resumes the agent named name: a paused agent claims no
// new job.
func (c *Client) AgentPause(ctx context.Context, name string, paused bool) (*Agent, error) {
	verb := "resume"
	if paused {
		verb = "pause"
	}
	var out struct {
		Agent Agent `json:"agent"`
	}
	if err := c.doJSON(ctx, http.MethodPost, p("agents", name, verb), nil, &out); err != nil {
		return nil, err
	}
	return &out.Agent, nil
}
