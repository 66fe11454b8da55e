package api

import (
	"net/http"
	"time"

	"github.com/flowd/flowd/internal/store"
)

type nodeJSON struct {
	Name        string    `json:"name"`
	Kind        string    `json:"kind"`
	Instance    string    `json:"instance"`
	Version     string    `json:"version"`
	Addr        string    `json:"addr"`
	LeaseTTL    float64   `json:"lease_ttl_seconds"`
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
	// HeartbeatAge is measured by the database's clock, so clients need not trust theirs.
	HeartbeatAge float64 `json:"heartbeat_age_seconds"`
	JobsHeld     int     `json:"jobs_held"`
	Live         bool    `json:"live"`
	// Agent is set for a node of kind agent.
	Agent *nodeAgentJSON `json:"agent,omitempty"`
	// Server is set for a node of kind server: its slots and their labels.
	Server *nodeServerJSON `json:"server,omitempty"`
	// Running are the jobs it holds (attempts running or canceling).
	Running []nodeJobJSON `json:"running"`
}

type nodeServerJSON struct {
	Executors int               `json:"executors"`
	Labels    map[string]string `json:"labels"`
}

type nodeAgentJSON struct {
	ID       int64             `json:"id"`
	Token    string            `json:"token"`
	Labels   map[string]string `json:"labels"`
	Capacity int               `json:"capacity"`
	Paused   bool              `json:"paused"`
}

type nodeJobJSON struct {
	RunID     int64  `json:"run_id"`
	RunNumber int64  `json:"run_number"`
	Pipeline  string `json:"pipeline"`
	JobID     int64  `json:"job_id"`
	Stage     string `json:"stage"`
	Job       string `json:"job"`
	Attempt   int    `json:"attempt"`
	Runner    string `json:"runner"`
	State     string `json:"state"`
}

// nodeList: GET /api/v1/nodes (global admin) → every server and agent sharing the database.
func (s *Server) nodeList(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireAdmin(w, r, "list the nodes"); !ok {
		return
	}
	ns, err := s.Store.NodeList(r.Context())
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	jobs, err := s.Store.NodeJobs(r.Context())
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	out := make([]nodeJSON, len(ns))
	for i, n := range ns {
		out[i] = toNodeJSON(n)
		for _, j := range jobs {
			if j.Node == n.Name {
				out[i].Running = append(out[i].Running, nodeJobJSON{RunID: j.RunID, RunNumber: j.RunNumber, Pipeline: j.Pipeline,
					JobID: j.JobID, Stage: j.Stage, Job: j.Job, Attempt: j.Attempt, Runner: j.Runner, State: j.State})
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": out})
}

func toNodeJSON(n store.Node) nodeJSON {
	out := nodeJSON{
		Name: n.Name, Kind: n.Kind, Instance: n.Instance, Version: n.Version, Addr: n.Addr, LeaseTTL: n.TTL.Seconds(),
		StartedAt: n.StartedAt, HeartbeatAt: n.HeartbeatAt, HeartbeatAge: max(0, n.HeartbeatAge.Seconds()),
		JobsHeld: n.JobsHeld, Live: n.Live, Running: []nodeJobJSON{},
	}
	if a := n.Agent; a != nil {
		out.Agent = &nodeAgentJSON{ID: a.ID, Token: a.Token, Labels: a.Labels, Capacity: a.Capacity, Paused: a.Paused}
	}
	if n.Kind == store.NodeServer {
		labels := n.Labels
		if labels == nil {
			labels = map[string]string{}
		}
		out.Server = &nodeServerJSON{Executors: n.Executors, Labels: labels}
	}
	return out
}
