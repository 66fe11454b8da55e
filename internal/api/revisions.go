package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/trigger"
)

// maxRevisionPage is the most revisions one page of GET …/revisions holds.
const maxRevisionPage = 200

// revisionJSON is one revision of a pipeline: who saved it and when; YAML (secret defaults
// masked as ***) only when one revision is read.
type revisionJSON struct {
	Revision  int64     `json:"revision"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	Current   bool      `json:"current"`
	YAML      *string   `json:"yaml,omitempty"`
}

// revisionList: GET /api/v1/pipelines/{name}/revisions (viewer) ?limit=50&before=N →
// {"revisions":[…],"next_before"} newest first.
func (s *Server) revisionList(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.pipelineAccess(w, r, r.PathValue("name"), auth.Viewer)
	if !ok {
		return
	}
	limit, ok := queryLimit(w, r, 50, maxRevisionPage)
	if !ok {
		return
	}
	before, ok := queryBefore(w, r, "a revision number")
	if !ok {
		return
	}
	revs, err := s.Store.PipelineRevisionList(r.Context(), p.ID, min(limit+1, maxRevisionPage), before)
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	revs, next := nextPage(revs, limit, maxRevisionPage, func(v store.PipelineRevisionInfo) int64 { return v.Revision })
	out := make([]revisionJSON, len(revs))
	for i, v := range revs {
		out[i] = revisionJSON{Revision: v.Revision, CreatedBy: v.CreatedBy, CreatedAt: v.CreatedAt, Current: v.Revision == p.Revision}
	}
	writeJSON(w, http.StatusOK, map[string]any{"revisions": out, "next_before": next})
}

// revisionGet: GET /api/v1/pipelines/{name}/revisions/{rev} (viewer) → the revision with its
// YAML.
func (s *Server) revisionGet(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.pipelineAccess(w, r, r.PathValue("name"), auth.Viewer)
	if !ok {
		return
	}
	old, info, ok := s.revisionAt(w, r, p)
	if !ok {
		return
	}
	out := revisionJSON{Revision: info.Revision, CreatedBy: info.CreatedBy, CreatedAt: info.CreatedAt, Current: info.Revision == p.Revision, YAML: &old.Source}
	writeJSON(w, http.StatusOK, out)
}

// revisionRestore: POST /api/v1/pipelines/{name}/revisions/{rev}/restore (admin) → 200
// pipeline at a new revision with the text of {rev}. A secret variable keeps its current
// value when the current revision has it, else gets the value saved with {rev}: a restore
// brings an old definition back, never a secret value that was replaced since.
func (s *Server) revisionRestore(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	p, u, ok := s.pipelineAccess(w, r, name, auth.Admin)
	if !ok {
		return
	}
	old, info, ok := s.revisionAt(w, r, p)
	if !ok {
		return
	}
	if info.Revision == p.Revision {
		conflict(w, fmt.Sprintf("revision %d is the current revision of %s: there is nothing to restore", info.Revision, name))
		return
	}
	def, err := pipeline.Parse([]byte(old.Source))
	if err != nil {
		invalidPipeline(w, err, fmt.Sprintf("revision %d no longer passes this server's checks; fix it in the editor instead", info.Revision),
			fmt.Sprintf("revision %d no longer passes this server's checks (%%d problems); fix it in the editor instead", info.Revision))
		return
	}
	if err := s.Policy.Check(def); err != nil {
		invalidPipeline(w, err, "this server does not allow the revision's definition: fix the problem in the editor instead",
			"this server does not allow the revision's definition: fix its %d problems in the editor instead")
		return
	}
	keepTrust, ok := s.saveAllowed(w, u, def)
	if !ok {
		return
	}
	sealed, err := s.restoredSecrets(def, p, old)
	if err != nil {
		s.internalError(w, r, fmt.Errorf("api: restore pipeline %s revision %d: %w", name, info.Revision, err))
		return
	}
	p, err = s.Store.PipelineUpdateTrust(r.Context(), p.ID, old.Source, sealed, u.ID, keepTrust)
	if err != nil {
		s.storeError(w, r, err, fmt.Sprintf("pipeline %q not found", name), "")
		return
	}
	s.writePipeline(w, r, http.StatusOK, p, u)
}

// restoredSecrets seals the secret values of def, the definition of revision old, restored
// over cur: the current value where cur has one, else old's.
func (s *Server) restoredSecrets(def *pipeline.Pipeline, cur, old store.Pipeline) ([]byte, error) {
	now, err := trigger.OpenSecrets(s.Box, cur.Secrets)
	if err != nil {
		return nil, err
	}
	then, err := trigger.OpenSecrets(s.Box, old.Secrets)
	if err != nil {
		return nil, err
	}
	values := map[string]string{}
	for _, v := range def.Variables {
		if !v.Secret {
			continue
		}
		if val, ok := now[v.Name]; ok {
			values[v.Name] = val
		} else {
			values[v.Name] = then[v.Name]
		}
	}
	return trigger.SealSecrets(s.Box, values)
}

// revisionAt reads the path's {rev} of pipeline p: the pipeline at that revision and who saved
// it when; an unknown revision is answered 404.
func (s *Server) revisionAt(w http.ResponseWriter, r *http.Request, p store.Pipeline) (store.Pipeline, store.PipelineRevisionInfo, bool) {
	msg := fmt.Sprintf("pipeline %q has no revision %q (its revisions are 1 to %d)", p.Name, r.PathValue("rev"), p.Revision)
	rev, err := strconv.ParseInt(r.PathValue("rev"), 10, 64)
	if err != nil || rev < 1 || rev > p.Revision {
		notFound(w, msg)
		return store.Pipeline{}, store.PipelineRevisionInfo{}, false
	}
	old, err := s.Store.PipelineRevision(r.Context(), p.ID, rev)
	if err != nil {
		s.storeError(w, r, err, msg, "")
		return store.Pipeline{}, store.PipelineRevisionInfo{}, false
	}
	infos, err := s.Store.PipelineRevisionList(r.Context(), p.ID, 1, rev+1)
	if err == nil && (len(infos) == 0 || infos[0].Revision != rev) {
		err = store.ErrNotFound
	}
	if err != nil {
		s.storeError(w, r, err, msg, "")
		return store.Pipeline{}, store.PipelineRevisionInfo{}, false
	}
	return old, infos[0], true
}
