// Package web serves flowd's browser UI: server-rendered pages from embedded templates, one
// hand-written script (static/js, joined into /static/app.js) and one style sheet (static/css,
// joined into /static/app.css), all embedded, so the UI works offline and needs no build step.
//
// The pages hold no rules of their own. A page handler checks who is signed in and what their
// role on the pipeline is, exactly as the API does (not a member: 404; too low: the controls
// are left out), and renders a shell; the script fetches the data and makes every change
// through the JSON API (docs/api.md) with the session cookie and the X-CSRF-Token header, so
// the API's checks are the ones that count.
//
// Sign-in and sign-out are plain HTML forms. The session is a random 256-bit cookie value
// whose SHA-256 is the store's session id; it is HttpOnly, SameSite=Lax, and Secure when the
// request came over HTTPS or the external URL is https.
package web

import (
	"bytes"
	"cmp"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/store"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// DefaultSessionTTL is how long a sign-in lasts when Config.SessionTTL is 0.
const DefaultSessionTTL = 7 * 24 * time.Hour

// Config is what the UI needs.
type Config struct {
	Store *store.Store
	// ExternalURL is the base URL users reach flowd at; an https URL makes cookies Secure.
	ExternalURL string
	SessionTTL  time.Duration // 0 = DefaultSessionTTL
	Logger      *slog.Logger
	// SignIn throttles password guessing and bounds the password checks running at once
	// (shared with the API's POST /api/v1/tokens); nil = no throttle, no bound.
	SignIn *auth.Throttle
}

// handler serves the UI's routes.
type handler struct {
	cfg   Config
	pages map[string]*template.Template
	log   *slog.Logger
}

// New returns the UI's routes: /, /login, /logout, /pipelines/{name},
// /pipelines/{name}/deliveries, /runs/{id}, /admin/users, /admin/nodes, /account, /account/tokens, /static/… and
// /favicon.svg. Every other path is an HTML 404. Combine puts it beside the API.
func New(cfg Config) http.Handler {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	h := &handler{cfg: cfg, pages: parsePages(), log: cfg.Logger}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.signedIn(h.pipelinesPage))
	mux.HandleFunc("GET /login", h.loginPage)
	mux.HandleFunc("POST /login", h.loginSubmit)
	mux.HandleFunc("POST /logout", h.logout)
	mux.HandleFunc("GET /pipelines/{name}", h.signedIn(h.pipelinePage))
	mux.HandleFunc("GET /pipelines/{name}/deliveries", h.signedIn(h.deliveriesPage))
	mux.HandleFunc("GET /runs/{id}", h.signedIn(h.runPage))
	mux.HandleFunc("GET /admin/users", h.signedIn(h.usersPage))
	mux.HandleFunc("GET /admin/nodes", h.signedIn(h.nodesPage))
	mux.HandleFunc("GET /account", h.signedIn(h.accountPage))
	mux.HandleFunc("GET /account/tokens", h.signedIn(h.tokensPage))
	mux.HandleFunc("GET /favicon.svg", h.favicon)
	mux.HandleFunc("GET /favicon.ico", h.favicon)
	mux.Handle("GET /static/app.js", serveJoined("app.js", appJS))
	mux.Handle("GET /static/app.css", serveJoined("app.css", appCSS))
	static, _ := fs.Sub(staticFiles, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheStatic(http.FileServerFS(static))))
	return h.recoverPanics(securityHeaders(h.unmatched(mux)))
}

// apiPrefixes are the paths Combine sends to the API.
var apiPrefixes = []string{"/api/", "/pipeline/webhook/"}
var apiPaths = []string{"/healthz", "/readyz", "/metrics"}

// Combine serves the API's paths (/api/…, /pipeline/webhook/…, /healthz, /readyz, /metrics)
// with api and everything else with ui.
func Combine(api, ui http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		for _, pre := range apiPrefixes {
			if strings.HasPrefix(p, pre) {
				api.ServeHTTP(w, r)
				return
			}
		}
		for _, exact := range apiPaths {
			if p == exact {
				api.ServeHTTP(w, r)
				return
			}
		}
		ui.ServeHTTP(w, r)
	})
}

// parsePages parses every page with the layout. A broken template is a programming error,
// caught by the package's tests.
func parsePages() map[string]*template.Template {
	funcs := template.FuncMap{
		"statusIcon": statusIcon,
	}
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html"))
	entries, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, e := range entries {
		name := strings.TrimSuffix(strings.TrimPrefix(e, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t := template.Must(template.Must(layout.Clone()).ParseFS(templateFiles, e))
		out[name] = t
	}
	return out
}

// view is what every page's template gets.
type view struct {
	Title   string
	Page    string // the script's page module (body data-page)
	User    *store.User
	CSRF    string
	Favicon string // a status for the favicon; "" = the plain logo
	Data    any
}

// render writes the page name with status.
func (h *handler) render(w http.ResponseWriter, r *http.Request, status int, name string, v view) {
	t, ok := h.pages[name]
	if !ok {
		h.fail(w, r, fmt.Errorf("web: no template %q", name))
		return
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", v); err != nil {
		h.fail(w, r, fmt.Errorf("web: render %s: %w", name, err))
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// fail logs err and answers a plain 500 page.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	h.log.Error("web: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	http.Error(w, "flowd could not show this page; it was logged — try again or tell the administrator", http.StatusInternalServerError)
}

// message renders the message page (404, 403, 503…).
func (h *handler) message(w http.ResponseWriter, r *http.Request, status int, u *store.User, csrf, title, text string) {
	h.render(w, r, status, "message", view{Title: title, Page: "message", User: u, CSRF: csrf,
		Data: struct {
			Status        int
			Heading, Text string
		}{status, title, text}})
}

// unmatched answers paths no route takes with the HTML 404 page (405 keeps the mux's answer).
func (h *handler) unmatched(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			u, se := h.session(r)
			h.message(w, r, http.StatusNotFound, u, se.CSRF, "Page not found",
				"There is no page at "+r.URL.Path+". Go back to the pipelines.")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// securityHeaders keeps pages from being framed or running anything not served by flowd.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; "+
			"img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "+
			"form-action 'self'; frame-ancestors 'none'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// cacheStatic lets browsers keep the assets for a short while; they change only with the binary.
func cacheStatic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		next.ServeHTTP(w, r)
	})
}

// appJS is /static/app.js: the scripts of static/js joined in one strict function scope,
// core.js first (the shared helpers), main.js last (it starts the page), the rest by name in
// between. Those only define, so their order does not matter.
var appJS = join("static/js/*.js", "core.js", "main.js",
	"'use strict';\n(function () {\n", "})();\n", "// ==== %s\n")

// appCSS is /static/app.css: the sheets of static/css, base.css first, the rest by name.
var appCSS = join("static/css/*.css", "base.css", "", "", "", "/* ==== %s */\n")

// AppJS returns /static/app.js (for tests that run or read the UI's script).
func AppJS() []byte { return appJS }

// join returns the embedded files that match pattern, first first, last last and the rest by
// name, between head and tail, each after a line that names it (banner).
func join(pattern, first, last, head, tail, banner string) []byte {
	names, err := fs.Glob(staticFiles, pattern)
	if err != nil || len(names) == 0 {
		panic(fmt.Sprintf("web: no embedded files match %s (%v)", pattern, err))
	}
	rank := func(n string) int {
		switch path.Base(n) {
		case first:
			return 0
		case last:
			return 2
		}
		return 1
	}
	slices.SortStableFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b)) })
	var b bytes.Buffer
	b.WriteString(head)
	for _, n := range names {
		src, err := staticFiles.ReadFile(n)
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(&b, banner, path.Base(n))
		b.Write(src)
	}
	b.WriteString(tail)
	return b.Bytes()
}

// serveJoined serves a joined file (appJS, appCSS) as name.
func serveJoined(name string, content []byte) http.Handler {
	return cacheStatic(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, name, startTime, bytes.NewReader(content))
	}))
}

// startTime is when the server started: the Last-Modified of what it builds at start.
var startTime = time.Now()

// recoverPanics logs a handler's panic and answers 500.
func (h *handler) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				h.fail(w, r, fmt.Errorf("web: handler panicked: %v", p))
			}
		}()
		next.ServeHTTP(w, r)
	})
}
