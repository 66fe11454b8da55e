package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// authenticate finds the caller from "Authorization: Bearer <token>", or, for a request with
// no Authorization header, from the web UI's session cookie (see authenticateSession: unsafe
// methods then need the X-CSRF-Token header). It answers 401 itself (no, unknown or revoked
// token or session, disabled user) or 403 csrf, and returns false then.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (store.User, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
			return s.authenticateSession(w, r, c.Value)
		}
	}
	scheme, token, _ := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if h == "" || !strings.EqualFold(scheme, "Bearer") || token == "" {
		unauthorized(w, "sign in: send Authorization: Bearer <token>; get a token with POST /api/v1/tokens (HTTP Basic) or `flowd login`")
		return store.User{}, false
	}
	u, _, err := s.Store.TokenUser(r.Context(), auth.HashToken(token))
	switch {
	case errors.Is(err, store.ErrNotFound):
		unauthorized(w, "the API token is unknown or was revoked; get a new one with POST /api/v1/tokens or `flowd login`")
		return store.User{}, false
	case err != nil:
		s.storeError(w, r, err, "", "")
		return store.User{}, false
	case u.Disabled:
		unauthorized(w, "the account "+u.Username+" is disabled; ask an administrator to enable it")
		return store.User{}, false
	}
	return u, true
}

func unauthorized(w http.ResponseWriter, message string) {
	writeError(w, http.StatusUnauthorized, "unauthorized", message)
}

// requireAdmin authenticates the caller and checks they are a global admin (403 otherwise,
// saying they may not do what, e.g. "manage users").
func (s *Server) requireAdmin(w http.ResponseWriter, r *http.Request, what string) (store.User, bool) {
	u, ok := s.authenticate(w, r)
	if !ok {
		return store.User{}, false
	}
	if !u.Admin {
		forbidden(w, "only global administrators may "+what+"; ask one of them")
		return store.User{}, false
	}
	return u, true
}

// pipelineAccess authenticates the caller and checks they have at least the role want on the
// pipeline named name: 401 anonymous, 404 no such pipeline or not a member (global admins are
// members of every pipeline, as admin), 403 a member below want.
func (s *Server) pipelineAccess(w http.ResponseWriter, r *http.Request, name string, want auth.Role) (store.Pipeline, store.User, bool) {
	u, ok := s.authenticate(w, r)
	if !ok {
		return store.Pipeline{}, store.User{}, false
	}
	p, _, ok := s.authorize(w, r, u, name, want, fmt.Sprintf("pipeline %q not found (or you are not one of its members)", name))
	return p, u, ok
}

// authorize checks u's role on the pipeline named name against want; a missing pipeline or
// membership is answered 404 with notFoundMsg. It returns the pipeline and u's effective role.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, u store.User, name string, want auth.Role, notFoundMsg string) (store.Pipeline, auth.Role, bool) {
	if !pipeline.ValidName(name) {
		notFound(w, notFoundMsg)
		return store.Pipeline{}, auth.None, false
	}
	p, err := s.Store.PipelineGet(r.Context(), name)
	if err != nil {
		s.storeError(w, r, err, notFoundMsg, "")
		return store.Pipeline{}, auth.None, false
	}
	role, err := s.role(r, p, u)
	if err != nil {
		s.storeError(w, r, err, notFoundMsg, "")
		return store.Pipeline{}, auth.None, false
	}
	if role == auth.None {
		notFound(w, notFoundMsg)
		return store.Pipeline{}, auth.None, false
	}
	if !role.AtLeast(want) {
		forbidden(w, fmt.Sprintf("you are a %s of pipeline %q; this needs %s or higher — ask one of its admins", role, p.Name, want))
		return store.Pipeline{}, auth.None, false
	}
	return p, role, true
}

// role is u's effective role on p: admin for global admins, else their membership ("" = none).
func (s *Server) role(r *http.Request, p store.Pipeline, u store.User) (auth.Role, error) {
	if u.Admin {
		return auth.Admin, nil
	}
	m, err := s.Store.MemberRole(r.Context(), p.ID, u.ID)
	if err != nil {
		return auth.None, err
	}
	if m == "" {
		return auth.None, nil
	}
	role, err := auth.ParseRole(m)
	if err != nil {
		return auth.None, fmt.Errorf("api: stored role of user %d on pipeline %d: %w", u.ID, p.ID, err)
	}
	return role, nil
}

// runAccess authenticates the caller, loads the run {id} of the path with its jobs and checks
// the caller's role on its pipeline, like pipelineAccess; an unknown run and a run of a
// pipeline the caller cannot see are the same 404.
func (s *Server) runAccess(w http.ResponseWriter, r *http.Request, want auth.Role) (run.Run, store.User, bool) {
	u, ok := s.authenticate(w, r)
	if !ok {
		return run.Run{}, store.User{}, false
	}
	msg := fmt.Sprintf("run %s not found (or you are not a member of its pipeline)", r.PathValue("id"))
	id, ok := pathID(w, r, msg)
	if !ok {
		return run.Run{}, store.User{}, false
	}
	rn, err := s.Store.RunGet(r.Context(), id)
	if err != nil {
		s.storeError(w, r, err, msg, "")
		return run.Run{}, store.User{}, false
	}
	if _, _, ok := s.authorize(w, r, u, rn.Pipeline, want, msg); !ok {
		return run.Run{}, store.User{}, false
	}
	return rn, u, true
}
