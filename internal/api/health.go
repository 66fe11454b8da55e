package api

import (
	"context"
	"io"
	"net/http"
	"time"
)

// readyTimeout bounds the database check of /readyz.
const readyTimeout = 2 * time.Second

// healthz: GET /healthz → 200 "ok" while the process runs.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, "ok\n")
}

// readyz: GET /readyz → 200 "ready" when the database answers within readyTimeout, else 503.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.Store.Ping(ctx); err != nil {
		s.logger().Warn("api: not ready: the database does not answer", "err", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable",
			"the database cannot be reached; check that it runs and that flowd can reach it")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, "ready\n")
}
