package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/store"
)

type userJSON struct {
	Username  string    `json:"username"`
	Admin     bool      `json:"admin"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

func toUserJSON(u store.User) userJSON {
	return userJSON{Username: u.Username, Admin: u.Admin, Disabled: u.Disabled, CreatedAt: u.CreatedAt}
}

// hashPassword hashes with s.PasswordCost, answering 400 for a password that is too short or
// too long.
func (s *Server) hashPassword(w http.ResponseWriter, r *http.Request, password string) (string, bool) {
	if len(password) < auth.MinPasswordLength || len(password) > 72 {
		badRequest(w, fmt.Sprintf("the password must be %d to 72 bytes long", auth.MinPasswordLength))
		return "", false
	}
	cost := s.PasswordCost
	if cost == 0 {
		cost = auth.BcryptCost
	}
	h, err := auth.HashPasswordCost(password, cost)
	if err != nil {
		s.internalError(w, r, err)
		return "", false
	}
	return h, true
}

// userMe: GET /api/v1/user → the caller.
func (s *Server) userMe(w http.ResponseWriter, r *http.Request) {
	u, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, toUserJSON(u))
}

// userList: GET /api/v1/users (global admin) → every user.
func (s *Server) userList(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireAdmin(w, r, "manage users"); !ok {
		return
	}
	us, err := s.Store.UserList(r.Context())
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	out := make([]userJSON, len(us))
	for i, u := range us {
		out[i] = toUserJSON(u)
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
}

// userCreate: POST /api/v1/users (global admin) {"username","password","admin"?} → 201 user.
func (s *Server) userCreate(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireAdmin(w, r, "manage users"); !ok {
		return
	}
	var in struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Admin    bool   `json:"admin"`
	}
	if !decodeJSON(w, r, &in, false) {
		return
	}
	if !auth.ValidUsername(in.Username) {
		badRequest(w, fmt.Sprintf("invalid username %q: use 1 to 63 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit", in.Username))
		return
	}
	hash, ok := s.hashPassword(w, r, in.Password)
	if !ok {
		return
	}
	u, err := s.Store.UserCreate(r.Context(), in.Username, hash, in.Admin)
	if err != nil {
		s.storeError(w, r, err, "", fmt.Sprintf("the username %q is taken; choose another", in.Username))
		return
	}
	w.Header().Set("Location", "/api/v1/users/"+u.Username)
	writeJSON(w, http.StatusCreated, toUserJSON(u))
}

// userUpdate: PATCH /api/v1/users/{name} (global admin) {"admin"?,"disabled"?,"password"?} →
// 200 user. An admin cannot take their own admin right or disable themselves, so the server
// cannot be left without an administrator by mistake.
func (s *Server) userUpdate(w http.ResponseWriter, r *http.Request) {
	me, ok := s.requireAdmin(w, r, "manage users")
	if !ok {
		return
	}
	name := r.PathValue("name")
	var in struct {
		Admin    *bool   `json:"admin"`
		Disabled *bool   `json:"disabled"`
		Password *string `json:"password"`
	}
	if !decodeJSON(w, r, &in, false) {
		return
	}
	u, err := s.Store.UserGet(r.Context(), name)
	if err != nil {
		s.storeError(w, r, err, fmt.Sprintf("user %q not found", name), "")
		return
	}
	if u.ID == me.ID && ((in.Admin != nil && !*in.Admin) || (in.Disabled != nil && *in.Disabled)) {
		conflict(w, "you cannot remove your own admin right or disable yourself; ask another administrator")
		return
	}
	upd := store.UserUpdate{Admin: in.Admin, Disabled: in.Disabled}
	if in.Password != nil {
		hash, ok := s.hashPassword(w, r, *in.Password)
		if !ok {
			return
		}
		upd.PasswordHash = &hash
	}
	u, err = s.Store.UserUpdate(r.Context(), u.ID, upd)
	if err != nil {
		s.storeError(w, r, err, fmt.Sprintf("user %q not found", name), "")
		return
	}
	writeJSON(w, http.StatusOK, toUserJSON(u))
}

// userDelete: DELETE /api/v1/users/{name} (global admin) → 204. An admin cannot delete
// themselves.
func (s *Server) userDelete(w http.ResponseWriter, r *http.Request) {
	me, ok := s.requireAdmin(w, r, "manage users")
	if !ok {
		return
	}
	name := r.PathValue("name")
	u, err := s.Store.UserGet(r.Context(), name)
	if err != nil {
		s.storeError(w, r, err, fmt.Sprintf("user %q not found", name), "")
		return
	}
	if u.ID == me.ID {
		conflict(w, "you cannot delete yourself; ask another administrator")
		return
	}
	if err := s.Store.UserDelete(r.Context(), u.ID); err != nil {
		s.storeError(w, r, err, fmt.Sprintf("user %q not found", name), "")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// userPassword: PUT /api/v1/user/password {"current_password","new_password"} → 204: the
// caller changes their own password. A wrong current password is 403 wrong_password (checked
// and throttled as a sign-in is); a new password outside the rules of user creation, or the
// same as the current one, is 400. A new password ends every web session of the caller, the
// one that sent it included (store.UserUpdate), so a stolen session does not outlive it; API
// tokens stay valid and are revoked one by one.
func (s *Server) userPassword(w http.ResponseWriter, r *http.Request) {
	me, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	var in struct {
		Current string `json:"current_password"`
		New     string `json:"new_password"`
	}
	if !decodeJSON(w, r, &in, false) {
		return
	}
	if in.Current == "" {
		badRequest(w, "send your current password in current_password")
		return
	}
	_, right, ok := s.verifyPassword(w, r, me.Username, in.Current)
	if !ok {
		return
	}
	if !right {
		writeError(w, http.StatusForbidden, "wrong_password", "the current password is wrong; nothing was changed")
		return
	}
	if in.New == in.Current {
		badRequest(w, "the new password is the same as the current one; choose another")
		return
	}
	hash, ok := s.hashPassword(w, r, in.New)
	if !ok {
		return
	}
	if _, err := s.Store.UserUpdate(r.Context(), me.ID, store.UserUpdate{PasswordHash: &hash}); err != nil {
		s.storeError(w, r, err, "your account no longer exists", "")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
