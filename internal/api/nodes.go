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
	out := make([]nodeJSON, len(ns))
	for i, n := range ns {
		out[i] = toNodeJSON(n)
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": out})
}

func toNodeJSON(n store.Node) nodeJSON {
	return nodeJSON{
		Name: n.Name, Kind: n.Kind, Instance: n.Instance, Version: n.Version, Addr: n.Addr, LeaseTTL: n.TTL.Seconds(),
		StartedAt: n.StartedAt, HeartbeatAt: n.HeartbeatAt, HeartbeatAge: max(0, n.HeartbeatAge.Seconds()),
		JobsHeld: n.JobsHeld, Live: n.Live,
	}
}
