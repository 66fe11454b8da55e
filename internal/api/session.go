package api

import (
	"crypto/subtle"
	"errors"
	"net/http"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/store"
)

// SessionCookie is the web UI's session cookie (internal/web signs in and sets it). Its value
// is 256 random bits; the store keeps its SHA-256 (auth.HashToken) as the session id.
const SessionCookie = "flowd_session"

// CSRFHeader must carry the session's CSRF token on every unsafe request authenticated by the
// session cookie. The UI's pages hold the token in <meta name="csrf-token">.
const CSRFHeader = "X-CSRF-Token"

// authenticateSession finds the caller from the session cookie value. Safe methods need
// nothing more; any other method needs X-CSRF-Token equal to the session's token (403 csrf),
// so another site cannot make a signed-in browser change anything.
func (s *Server) authenticateSession(w http.ResponseWriter, r *http.Request, cookie string) (store.User, bool) {
	se, u, err := s.Store.SessionGet(r.Context(), auth.HashToken(cookie))
	switch {
	case errors.Is(err, store.ErrNotFound):
		unauthorized(w, "your session has ended (signed out, expired, or the account is disabled); sign in again")
		return store.User{}, false
	case err != nil:
		s.storeError(w, r, err, "", "")
		return store.User{}, false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return u, true
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(se.CSRF)) != 1 {
		writeError(w, http.StatusForbidden, "csrf",
			"this change came with the session cookie but without the page's CSRF token ("+CSRFHeader+"); "+
				"reload the page and try again — scripts should send an API token instead")
		return store.User{}, false
	}
	return u, true
}
