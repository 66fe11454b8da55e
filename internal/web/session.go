package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/flowd/flowd/internal/api"
	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/store"
)

// Cookie names. SessionCookie is the one internal/api reads (api.SessionCookie).
const (
	SessionCookie = api.SessionCookie
	// loginCookie carries the sign-in form's CSRF token (double submit) before a session exists.
	loginCookie = "flowd_login_csrf"
)

// randomToken returns 256 random bits, base64url.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("web: no randomness: " + err.Error()) // crypto/rand does not fail on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// SessionID is the store's id of a session cookie value: its SHA-256 (auth.HashToken, as the API
// looks it up).
func SessionID(cookie string) []byte { return auth.HashToken(cookie) }

// secure reports whether cookies of r must be Secure.
func (h *handler) secure(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(strings.ToLower(h.cfg.ExternalURL), "https://")
}

func (h *handler) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: h.secure(r), SameSite: http.SameSiteLaxMode,
	})
}

// session returns the signed-in user of r and the session, or nil when there is none.
func (h *handler) session(r *http.Request) (*store.User, store.Session) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return nil, store.Session{}
	}
	se, u, err := h.cfg.Store.SessionGet(r.Context(), SessionID(c.Value))
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			h.log.Warn("web: read session", "err", err)
		}
		return nil, store.Session{}
	}
	return &u, se
}

// request is a signed-in page request.
type request struct {
	user    store.User
	session store.Session
}

// signedIn runs page for a signed-in user; anyone else is sent to the sign-in page, which
// brings them back afterwards.
func (h *handler) signedIn(page func(w http.ResponseWriter, r *http.Request, rq request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, se := h.session(r)
		if u == nil {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		page(w, r, request{user: *u, session: se})
	}
}

// loginData is the sign-in page's.
type loginData struct {
	Next     string
	Username string
	Error    string
}

// loginPage: GET /login shows the form with a fresh CSRF token in a cookie and a hidden field.
func (h *handler) loginPage(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if u, _ := h.session(r); u != nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	h.showLogin(w, r, http.StatusOK, loginData{Next: next})
}

func (h *handler) showLogin(w http.ResponseWriter, r *http.Request, status int, d loginData) {
	token := randomToken()
	h.setCookie(w, r, loginCookie, token, 3600)
	h.render(w, r, status, "login", view{Title: "Sign in", Page: "login", CSRF: token, Data: d})
}

// loginSubmit: POST /login checks the double-submitted CSRF token, then the password, and
// starts a session.
func (h *handler) loginSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the sign-in form could not be read", http.StatusBadRequest)
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	c, err := r.Cookie(loginCookie)
	if err != nil || c.Value == "" || !equal(c.Value, r.PostForm.Get("csrf")) {
		h.showLogin(w, r, http.StatusForbidden, loginData{Next: next,
			Error: "The sign-in form expired or did not come from this page. Sign in again."})
		return
	}
	username := strings.TrimSpace(r.PostForm.Get("username"))
	password := r.PostForm.Get("password")
	var u store.User
	verdict, wait, err := h.cfg.SignIn.Verify(r.Context(), auth.ThrottleKey(username, r.RemoteAddr), password,
		func(ctx context.Context) (string, error) {
			var err error
			u, err = h.cfg.Store.UserGet(ctx, username)
			if errors.Is(err, store.ErrNotFound) {
				return "", nil
			}
			return u.PasswordHash, err
		})
	secs := int((wait + time.Second - 1) / time.Second)
	switch {
	case err != nil:
		h.fail(w, r, err)
		return
	case verdict == auth.Throttled:
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		h.showLogin(w, r, http.StatusTooManyRequests, loginData{Next: next, Username: username,
			Error: fmt.Sprintf("Too many wrong passwords for this account from here. Try again in %d seconds.", secs)})
		return
	case verdict == auth.Busy:
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		h.showLogin(w, r, http.StatusServiceUnavailable, loginData{Next: next, Username: username,
			Error: "Too many sign-ins are being checked right now; your password was not checked. Try again in a moment."})
		return
	case verdict == auth.Rejected:
		h.showLogin(w, r, http.StatusUnauthorized, loginData{Next: next, Username: username, Error: "Wrong username or password."})
		return
	case u.Disabled:
		h.showLogin(w, r, http.StatusForbidden, loginData{Next: next, Username: username,
			Error: "The account " + u.Username + " is disabled; ask an administrator to enable it."})
		return
	}
	value := randomToken()
	expires := time.Now().Add(h.cfg.SessionTTL)
	if _, err := h.cfg.Store.SessionCreate(r.Context(), SessionID(value), u.ID, randomToken(), expires); err != nil {
		h.fail(w, r, err)
		return
	}
	h.prune(r.Context())
	h.setCookie(w, r, loginCookie, "", -1)
	h.setCookie(w, r, SessionCookie, value, int(h.cfg.SessionTTL/time.Second))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// prune removes expired sessions; a sign-in is a fine moment, and failing is harmless.
func (h *handler) prune(ctx context.Context) {
	if n, err := h.cfg.Store.SessionPrune(ctx, time.Now()); err != nil {
		h.log.Warn("web: prune sessions", "err", err)
	} else if n > 0 {
		h.log.Debug("web: pruned expired sessions", "count", n)
	}
}

// logout: POST /logout with the session's CSRF token ends the session.
func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the sign-out form could not be read", http.StatusBadRequest)
		return
	}
	u, se := h.session(r)
	if u == nil {
		h.setCookie(w, r, SessionCookie, "", -1)
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	if !equal(se.CSRF, r.PostForm.Get("csrf")) {
		h.message(w, r, http.StatusForbidden, u, se.CSRF, "Not signed out",
			"The sign-out form did not come from this page (its CSRF token is missing or wrong). Use the Sign out button.")
		return
	}
	if err := h.cfg.Store.SessionDelete(r.Context(), se.ID); err != nil {
		h.fail(w, r, err)
		return
	}
	h.setCookie(w, r, SessionCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// equal compares two secrets in constant time; empty never matches.
func equal(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// safeNext keeps a post-sign-in redirect on this site: a path, not a URL elsewhere. Control
// characters are refused: browsers drop tabs and newlines from a Location, so "/\t/evil"
// would become "//evil".
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.HasPrefix(next, "/\\") || strings.IndexFunc(next, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return "/"
	}
	return next
}
