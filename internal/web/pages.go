package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/store"
)

// pipelineView is what the pipeline pages know before their script runs: the caller's role
// decides which controls exist at all.
type pipelineView struct {
	Name     string
	Role     auth.Role
	CanRun   bool // developer or higher: run, cancel, deliveries
	CanAdmin bool // admin: edit, members, webhook trigger
}

func newPipelineView(name string, role auth.Role) pipelineView {
	return pipelineView{Name: name, Role: role, CanRun: role.AtLeast(auth.Developer), CanAdmin: role.AtLeast(auth.Admin)}
}

// role is u's effective role on the pipeline named name, as the API computes it; auth.None
// for an unknown pipeline or a non-member.
func (h *handler) role(ctx context.Context, u store.User, name string) (store.Pipeline, auth.Role, error) {
	if !pipeline.ValidName(name) {
		return store.Pipeline{}, auth.None, nil
	}
	p, err := h.cfg.Store.PipelineGet(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return store.Pipeline{}, auth.None, nil
	}
	if err != nil {
		return store.Pipeline{}, auth.None, err
	}
	if u.Admin {
		return p, auth.Admin, nil
	}
	m, err := h.cfg.Store.MemberRole(ctx, p.ID, u.ID)
	if err != nil || m == "" {
		return p, auth.None, err
	}
	r, err := auth.ParseRole(m)
	if err != nil {
		return p, auth.None, fmt.Errorf("web: stored role of user %d on pipeline %d: %w", u.ID, p.ID, err)
	}
	return p, r, nil
}

func (h *handler) page(rq request, title, page string, data any) view {
	return view{Title: title, Page: page, User: &rq.user, CSRF: rq.session.CSRF, Data: data}
}

// storeFailed answers a failed store read: 503 when the database is away, else 500.
func (h *handler) storeFailed(w http.ResponseWriter, r *http.Request, rq request, err error) {
	if errors.Is(err, store.ErrUnavailable) {
		h.message(w, r, http.StatusServiceUnavailable, &rq.user, rq.session.CSRF, "Database unavailable",
			"flowd cannot reach its database right now. Reload the page in a moment.")
		return
	}
	h.fail(w, r, err)
}

func (h *handler) notFound(w http.ResponseWriter, r *http.Request, rq request, what string) {
	h.message(w, r, http.StatusNotFound, &rq.user, rq.session.CSRF, "Not found",
		what+" does not exist, or you are not a member of its pipeline. Ask one of its admins to add you.")
}

// forbidden answers 403 with text, which says what the caller lacks and whom to ask.
func (h *handler) forbidden(w http.ResponseWriter, r *http.Request, rq request, text string) {
	h.message(w, r, http.StatusForbidden, &rq.user, rq.session.CSRF, "Not allowed", text)
}

// memberRole is the caller's role on the pipeline named name, with the pipeline; when the
// store fails, or the caller has no role there, it answers (what names the page's subject in
// the 404) and returns false.
func (h *handler) memberRole(w http.ResponseWriter, r *http.Request, rq request, name, what string) (store.Pipeline, auth.Role, bool) {
	p, role, err := h.role(r.Context(), rq.user, name)
	if err != nil {
		h.storeFailed(w, r, rq, err)
		return store.Pipeline{}, auth.None, false
	}
	if role == auth.None {
		h.notFound(w, r, rq, what)
		return store.Pipeline{}, auth.None, false
	}
	return p, role, true
}

// pipelinesPage: GET / lists the caller's pipelines (the script fetches them).
func (h *handler) pipelinesPage(w http.ResponseWriter, r *http.Request, rq request) {
	h.render(w, r, http.StatusOK, "pipelines", h.page(rq, "Pipelines", "pipelines", nil))
}

// pipelinePage: GET /pipelines/{name} (viewer).
func (h *handler) pipelinePage(w http.ResponseWriter, r *http.Request, rq request) {
	name := r.PathValue("name")
	p, role, ok := h.memberRole(w, r, rq, name, fmt.Sprintf("Pipeline %q", name))
	if !ok {
		return
	}
	h.render(w, r, http.StatusOK, "pipeline", h.page(rq, p.Name, "pipeline", newPipelineView(p.Name, role)))
}

// deliveriesPage: GET /pipelines/{name}/deliveries (developer, as the API's delivery log).
func (h *handler) deliveriesPage(w http.ResponseWriter, r *http.Request, rq request) {
	name := r.PathValue("name")
	p, role, ok := h.memberRole(w, r, rq, name, fmt.Sprintf("Pipeline %q", name))
	if !ok {
		return
	}
	if !role.AtLeast(auth.Developer) {
		h.forbidden(w, r, rq,
			fmt.Sprintf("You are a %s of pipeline %q; its webhook deliveries need developer or higher. Ask one of its admins.", role, p.Name))
		return
	}
	h.render(w, r, http.StatusOK, "deliveries", h.page(rq, "Deliveries · "+p.Name, "deliveries", newPipelineView(p.Name, role)))
}

// runView is the run page's first paint.
type runView struct {
	ID       int64
	Number   int64
	Status   string
	Pipeline pipelineView
}

// runPage: GET /runs/{id} (viewer of its pipeline).
func (h *handler) runPage(w http.ResponseWriter, r *http.Request, rq request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		h.notFound(w, r, rq, "Run "+r.PathValue("id"))
		return
	}
	rn, err := h.cfg.Store.RunGet(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		h.notFound(w, r, rq, fmt.Sprintf("Run %d", id))
		return
	}
	if err != nil {
		h.storeFailed(w, r, rq, err)
		return
	}
	_, role, ok := h.memberRole(w, r, rq, rn.Pipeline, fmt.Sprintf("Run %d", id))
	if !ok {
		return
	}
	v := h.page(rq, fmt.Sprintf("%s #%d", rn.Pipeline, rn.Number), "run",
		runView{ID: rn.ID, Number: rn.Number, Status: string(rn.Status), Pipeline: newPipelineView(rn.Pipeline, role)})
	v.Favicon = string(rn.Status)
	h.render(w, r, http.StatusOK, "run", v)
}

// usersPage: GET /admin/users (global admins).
func (h *handler) usersPage(w http.ResponseWriter, r *http.Request, rq request) {
	if !rq.user.Admin {
		h.forbidden(w, r, rq, "Only global administrators manage users. Ask one of them.")
		return
	}
	h.render(w, r, http.StatusOK, "users", h.page(rq, "Users", "users", nil))
}

// nodesPage: GET /admin/nodes (global admins): the servers sharing the database, from
// GET /api/v1/nodes.
func (h *handler) nodesPage(w http.ResponseWriter, r *http.Request, rq request) {
	if !rq.user.Admin {
		h.forbidden(w, r, rq, "Only global administrators see the nodes. Ask one of them.")
		return
	}
	h.render(w, r, http.StatusOK, "nodes", h.page(rq, "Nodes", "nodes", nil))
}

// accountPage: GET /account, where the caller changes their password.
func (h *handler) accountPage(w http.ResponseWriter, r *http.Request, rq request) {
	h.render(w, r, http.StatusOK, "account", h.page(rq, "Account", "account", nil))
}

// tokensPage: GET /account/tokens, the caller's API tokens.
func (h *handler) tokensPage(w http.ResponseWriter, r *http.Request, rq request) {
	h.render(w, r, http.StatusOK, "tokens", h.page(rq, "API tokens", "tokens", nil))
}
