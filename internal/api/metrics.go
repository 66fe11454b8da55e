package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// metricsHelp says how to read /metrics; it ends every refusal.
const metricsHelp = "send Authorization: Bearer with the metrics token (--metrics-token, FLOWD_METRICS_TOKEN) or a global admin's API token"

// metrics: GET /metrics → the Prometheus text, for the metrics token (MetricsToken) or a global
// admin (API token or web session): the metrics name pipelines, which are private to their
// members. Anonymous callers get 401, other users 403.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.metricsToken(r) {
		s.Metrics.Handler().ServeHTTP(w, r)
		return
	}
	if r.Header.Get("Authorization") == "" {
		if c, err := r.Cookie(SessionCookie); err != nil || c.Value == "" {
			unauthorized(w, "/metrics is not public: "+metricsHelp)
			return
		}
	}
	u, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	if !u.Admin {
		forbidden(w, "only global administrators may read /metrics: "+metricsHelp)
		return
	}
	s.Metrics.Handler().ServeHTTP(w, r)
}

// MetricsHandler serves GET /metrics alone, for a listen address of its own (--metrics-addr):
// to whoever reaches that address, or, when MetricsToken is set, only with it.
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if s.MetricsToken != "" && !s.metricsToken(r) {
			unauthorized(w, "send Authorization: Bearer with the metrics token (--metrics-token, FLOWD_METRICS_TOKEN)")
			return
		}
		s.Metrics.Handler().ServeHTTP(w, r)
	})
	return mux
}

// metricsToken reports whether r carries the metrics token, compared in constant time (of
// the SHA-256 of both, so not even the length is told).
func (s *Server) metricsToken(r *http.Request) bool {
	if s.MetricsToken == "" {
		return false
	}
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	want := sha256.Sum256([]byte(s.MetricsToken))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}
