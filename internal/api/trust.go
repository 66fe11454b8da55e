package api

import (
	"fmt"
	"github.com/flowd/flowd/internal/pipeline"
	"net/http"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/trigger"
)

// untrustedCode is the error code of a pipeline this server will not run on its host.
const untrustedCode = "untrusted_pipeline"

// untrusted answers 403 untrusted_pipeline for pipeline name.
func untrusted(w http.ResponseWriter, name string) {
	writeError(w, http.StatusForbidden, untrustedCode, (&trigger.UntrustedError{Pipeline: name}).Advice())
}

// pipelineTrust: POST /api/v1/pipelines/{name}/trust and /untrust (global admins) → 200
// pipeline, marked trusted by the caller or no longer trusted.
func (s *Server) pipelineTrust(trusted bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		p, u, ok := s.pipelineAccess(w, r, name, auth.Viewer)
		if !ok {
			return
		}
		if !u.Admin {
			forbidden(w, "only a global admin may mark a pipeline trusted or untrusted: a trusted pipeline's steps may run as the server's own OS user")
			return
		}
		p, err := s.Store.PipelineTrust(r.Context(), p.ID, u.ID, trusted)
		if err != nil {
			s.storeError(w, r, err, fmt.Sprintf("pipeline %q not found", name), "")
			return
		}
		s.logger().Info("pipeline trust changed", "pipeline", name, "trusted", trusted, "by", u.Username)
		s.writePipeline(w, r, http.StatusOK, p, u)
	}
}

// saveAllowed tells whether u may save a revision of pipeline name on this server, and
// whether the pipeline stays (or, new, becomes) trusted: a revision a global admin saves keeps
// the mark (a new pipeline of a global admin's is trusted); anybody else's clears it. Where
// steps run as the server's own user (RequireTrusted) a save that would leave the pipeline
// untrusted is refused with 403 untrusted_pipeline, since it could never run.
//
// A definition whose jobs all run in containers (their image:, or the server's default image)
// runs outside the server's trust, so RequireTrusted does not refuse it.
func (s *Server) saveAllowed(w http.ResponseWriter, u store.User, def *pipeline.Pipeline) (keepTrust, ok bool) {
	if u.Admin {
		return true, true
	}
	if s.RequireTrusted && !s.contained(def) {
		untrusted(w, def.Name)
		return false, false
	}
	return false, true
}

// contained says whether every job of def runs in a container on this server.
func (s *Server) contained(def *pipeline.Pipeline) bool {
	if s.Policy.DefaultImage != "" {
		return true
	}
	for _, st := range def.Stages {
		for _, j := range st.Jobs {
			if j.Container == nil {
				return false
			}
		}
	}
	return true
}
