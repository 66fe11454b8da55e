package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/store"
)

// maxTokenName bounds a token's name, in characters.
const maxTokenName = 100

type tokenJSON struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// PageHeader marks a request sent by the web UI's own script (any value; the UI sends
// "flowd-web"). A 401 to such a request carries no HTTP Basic challenge, so a wrong password
// typed into a page is shown in the page and never opens the browser's sign-in dialog.
const PageHeader = "X-Requested-With"

// basicChallenge asks for HTTP Basic credentials on the 401 that follows, unless the request
// came from the web UI's script (PageHeader): a browser answers a Basic challenge with its own
// sign-in dialog.
func basicChallenge(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(PageHeader) == "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="flowd", charset="UTF-8"`)
	}
}

// tokenCreate: POST /api/v1/tokens with HTTP Basic, optional {"name"} → 201
// {"id","name","token","username"}.
func (s *Server) tokenCreate(w http.ResponseWriter, r *http.Request) {
	username, password, ok := r.BasicAuth()
	if !ok {
		basicChallenge(w, r)
		unauthorized(w, "sign in with HTTP Basic (your username and password) to get an API token")
		return
	}
	u, right, ok := s.verifyPassword(w, r, username, password)
	switch {
	case !ok:
		return
	case !right:
		basicChallenge(w, r)
		unauthorized(w, "wrong username or password")
		return
	case u.Disabled:
		basicChallenge(w, r)
		unauthorized(w, "the account "+u.Username+" is disabled; ask an administrator to enable it")
		return
	}

	var in struct {
		Name string `json:"name"`
	}
	if !decodeJSON(w, r, &in, true) {
		return
	}
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" {
		in.Name = "token " + time.Now().UTC().Format("2006-01-02 15:04:05")
	}
	if utf8.RuneCountInString(in.Name) > maxTokenName {
		badRequest(w, "the token name is too long: use at most 100 characters")
		return
	}
	token, hash, err := auth.NewToken()
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	t, err := s.Store.TokenCreate(r.Context(), u.ID, in.Name, hash)
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"id": t.ID, "name": t.Name, "token": token, "username": u.Username,
	})
}

// verifyPassword checks username's password through s.SignIn (throttled per user and address,
// as the web sign-in). It answers a throttled or busy check (429, 503) and a store error
// itself and returns ok false then; otherwise right says whether the password is the user's
// (an unknown user is never right, and costs a check like a known one).
func (s *Server) verifyPassword(w http.ResponseWriter, r *http.Request, username, password string) (u store.User, right, ok bool) {
	verdict, wait, err := s.SignIn.Verify(r.Context(), auth.ThrottleKey(username, r.RemoteAddr), password,
		func(ctx context.Context) (string, error) {
			var err error
			u, err = s.Store.UserGet(ctx, username)
			if errors.Is(err, store.ErrNotFound) {
				return "", nil
			}
			return u.PasswordHash, err
		})
	secs := strconv.Itoa(int((wait + time.Second - 1) / time.Second))
	switch {
	case err != nil:
		s.storeError(w, r, err, "", "")
		return store.User{}, false, false
	case verdict == auth.Throttled:
		w.Header().Set("Retry-After", secs)
		writeError(w, http.StatusTooManyRequests, "rate_limited",
			fmt.Sprintf("too many wrong passwords for %s from this address: try again in %s seconds", username, secs))
		return store.User{}, false, false
	case verdict == auth.Busy:
		w.Header().Set("Retry-After", secs)
		writeError(w, http.StatusServiceUnavailable, "unavailable",
			"too many sign-ins are being checked at once; nothing was checked — try again in "+secs+" second(s)")
		return store.User{}, false, false
	}
	return u, verdict == auth.Accepted, true
}

// tokenList: GET /api/v1/tokens → the caller's own tokens.
func (s *Server) tokenList(w http.ResponseWriter, r *http.Request) {
	u, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	ts, err := s.Store.TokenList(r.Context(), u.ID)
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	out := make([]tokenJSON, len(ts))
	for i, t := range ts {
		out[i] = tokenJSON{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt, LastUsedAt: t.LastUsedAt}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

// tokenDelete: DELETE /api/v1/tokens/{id} → 204; only the caller's own tokens.
func (s *Server) tokenDelete(w http.ResponseWriter, r *http.Request) {
	u, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	msg := "token " + strconv.Quote(r.PathValue("id")) + " not found among your tokens (GET /api/v1/tokens lists them)"
	id, ok := pathID(w, r, msg)
	if !ok {
		return
	}
	if err := s.Store.TokenDelete(r.Context(), u.ID, id); err != nil {
		s.storeError(w, r, err, msg, "")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
