package api

import (
	"fmt"
	"net/http"
)

// pipelineValidate: POST /api/v1/pipelines/validate[?pipeline=NAME] (any user) YAML → 200
// {"ok":true}, or 422 invalid_pipeline with every problem at its line and column, exactly as a
// create or update would answer (the server's Policy included); nothing is stored. With
// ?pipeline= the definition's name must be that name, as PUT /api/v1/pipelines/{name} demands.
// The UI's editor calls it as you type.
func (s *Server) pipelineValidate(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.authenticate(w, r); !ok {
		return
	}
	src, def, ok := s.readDefinition(w, r)
	if !ok {
		return
	}
	if name := r.URL.Query().Get("pipeline"); name != "" && def.Name != name {
		renamed(w, src,
			fmt.Sprintf("the definition is named %q but belongs to pipeline %q; a pipeline cannot be renamed", def.Name, name),
			fmt.Sprintf("name: must be %q, the pipeline's name", name))
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}
