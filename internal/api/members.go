package api

import (
	"fmt"
	"net/http"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/store"
)

type memberJSON struct {
	Username string `json:"username"`
	Role     string `json:"role"`
}

// memberList: GET /api/v1/pipelines/{name}/members (viewer).
func (s *Server) memberList(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.pipelineAccess(w, r, r.PathValue("name"), auth.Viewer)
	if !ok {
		return
	}
	ms, err := s.Store.MemberList(r.Context(), p.ID)
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	out := make([]memberJSON, len(ms))
	for i, m := range ms {
		out[i] = memberJSON{Username: m.Username, Role: m.Role}
	}
	writeJSON(w, http.StatusOK, map[string]any{"members": out})
}

// memberSet: PUT /api/v1/pipelines/{name}/members/{user} (admin) {"role"} → 200 member.
func (s *Server) memberSet(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.pipelineAccess(w, r, r.PathValue("name"), auth.Admin)
	if !ok {
		return
	}
	var in struct {
		Role string `json:"role"`
	}
	if !decodeJSON(w, r, &in, false) {
		return
	}
	role, err := auth.ParseRole(in.Role)
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	target, ok := s.memberTarget(w, r)
	if !ok {
		return
	}
	if role != auth.Admin && !s.keepsAnAdmin(w, r, p, target) {
		return
	}
	if err := s.Store.MemberSet(r.Context(), p.ID, target.ID, string(role)); err != nil {
		s.storeError(w, r, err, fmt.Sprintf("user %q not found", target.Username), "")
		return
	}
	writeJSON(w, http.StatusOK, memberJSON{Username: target.Username, Role: string(role)})
}

// memberDelete: DELETE /api/v1/pipelines/{name}/members/{user} (admin) → 204.
func (s *Server) memberDelete(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.pipelineAccess(w, r, r.PathValue("name"), auth.Admin)
	if !ok {
		return
	}
	target, ok := s.memberTarget(w, r)
	if !ok {
		return
	}
	if !s.keepsAnAdmin(w, r, p, target) {
		return
	}
	if err := s.Store.MemberDelete(r.Context(), p.ID, target.ID); err != nil {
		s.storeError(w, r, err, fmt.Sprintf("%s is not a member of pipeline %q", target.Username, p.Name), "")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// memberTarget loads the user {user} of the path (404 when unknown).
func (s *Server) memberTarget(w http.ResponseWriter, r *http.Request) (store.User, bool) {
	name := r.PathValue("user")
	if !auth.ValidUsername(name) {
		notFound(w, fmt.Sprintf("user %q not found", name))
		return store.User{}, false
	}
	u, err := s.Store.UserGet(r.Context(), name)
	if err != nil {
		s.storeError(w, r, err, fmt.Sprintf("user %q not found", name), "")
		return store.User{}, false
	}
	return u, true
}

// keepsAnAdmin answers 409 and returns false when target is the pipeline's only admin member,
// whom a change would leave without one.
func (s *Server) keepsAnAdmin(w http.ResponseWriter, r *http.Request, p store.Pipeline, target store.User) bool {
	ms, err := s.Store.MemberList(r.Context(), p.ID)
	if err != nil {
		s.storeError(w, r, err, "", "")
		return false
	}
	admins, targetIsAdmin := 0, false
	for _, m := range ms {
		if m.Role == string(auth.Admin) {
			admins++
			if m.UserID == target.ID {
				targetIsAdmin = true
			}
		}
	}
	if targetIsAdmin && admins == 1 {
		conflict(w, fmt.Sprintf("%s is the only admin of pipeline %q; make another member admin first", target.Username, p.Name))
		return false
	}
	return true
}
