package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/trigger"
)

// runSummary is a run without its stages (lists, last_run).
type runSummary struct {
	ID              int64             `json:"id"`
	Number          int64             `json:"number"`
	Pipeline        string            `json:"pipeline"`
	Revision        int64             `json:"revision"`
	Status          run.Status        `json:"status"`
	Trigger         run.Trigger       `json:"trigger"`
	TriggeredBy     string            `json:"triggered_by"`
	Variables       map[string]string `json:"variables"` // never the secret ones
	CancelRequested bool              `json:"cancel_requested"`
	Message         string            `json:"message"`
	CreatedAt       time.Time         `json:"created_at"`
	StartedAt       *time.Time        `json:"started_at"`
	FinishedAt      *time.Time        `json:"finished_at"`
	URL             string            `json:"url"`     // the run's web page
	APIURL          string            `json:"api_url"` // the run in this API
	// Git is the commit the run builds (pipelines with a source), else null.
	Git *run.Git `json:"git"`
	// ConcurrencyGroup is the run's group under the pipeline's concurrency option ("" = none).
	ConcurrencyGroup string `json:"concurrency_group"`
	// LogExpiredAt is when the log retention sweep deleted the run's log; null while it is kept.
	LogExpiredAt *time.Time `json:"log_expired_at"`
	// Waiting says why a queued run has not started (store.RunsWaiting); absent otherwise.
	Waiting string `json:"waiting,omitempty"`
}

// runDetail is a run with its stages, jobs and steps.
type runDetail struct {
	runSummary
	Stages   []run.StageView `json:"stages"`
	Schedule *fireJSON       `json:"schedule,omitempty"` // the fire time that started a cron run
}

func (s *Server) toRunSummary(r run.Run) runSummary {
	vars := r.Variables
	if vars == nil {
		vars = map[string]string{}
	}
	status := r.Status
	if status == run.Running && r.CancelRequested {
		status = run.Canceling
	}
	return runSummary{
		ID: r.ID, Number: r.Number, Pipeline: r.Pipeline, Revision: r.Revision, Status: status,
		Trigger: r.Trigger, TriggeredBy: r.TriggeredBy, Variables: vars,
		CancelRequested: r.CancelRequested, Message: r.Message,
		CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, LogExpiredAt: r.LogExpiredAt,
		URL: s.runPageURL(r.ID), APIURL: s.runAPIURL(r.ID),
		Git: r.Git, ConcurrencyGroup: r.ConcurrencyGroup, Waiting: r.Waiting,
	}
}

// runPageURL is the address of run id's web page, for people; runAPIURL that of the run in
// this API, for scripts (it answers 401 without a token).
func (s *Server) runPageURL(id int64) string {
	return s.ExternalURL + "/runs/" + strconv.FormatInt(id, 10)
}

func (s *Server) runAPIURL(id int64) string {
	return s.ExternalURL + "/api/v1/runs/" + strconv.FormatInt(id, 10)
}

func (s *Server) toRunDetail(r run.Run) runDetail {
	stages := r.Stages()
	if stages == nil {
		stages = []run.StageView{}
	}
	for i := range stages {
		for j := range stages[i].Jobs {
			if stages[i].Jobs[j].Steps == nil {
				stages[i].Jobs[j].Steps = []run.Step{}
			}
		}
	}
	return runDetail{runSummary: s.toRunSummary(r), Stages: stages}
}

// runCreate: POST /api/v1/pipelines/{name}/runs (developer) {"variables":{…}, "branch"|"tag",
// "commit"}? → 201 {"run","ignored"}. branch, tag and commit are for pipelines with a source: a
// branch or tag without a commit builds its head (git ls-remote), a commit alone is built as
// it is, nothing at all builds the head of the default branch.
func (s *Server) runCreate(w http.ResponseWriter, r *http.Request) {
	p, u, ok := s.pipelineAccess(w, r, r.PathValue("name"), auth.Developer)
	if !ok {
		return
	}
	var in struct {
		Variables map[string]json.RawMessage `json:"variables"`
		Branch    string                     `json:"branch"`
		Tag       string                     `json:"tag"`
		Commit    string                     `json:"commit"`
	}
	if !decodeJSONHint(w, r, &in, true, variablesHint) {
		return
	}
	ref := trigger.GitRef{Branch: in.Branch, Tag: in.Tag, Commit: in.Commit}
	rn, resolved, err := s.Triggers.StartAt(r.Context(), p, run.TriggerManual, u.Username, in.Variables, ref)
	if err != nil {
		var verr *pipeline.VariableError
		if errors.As(err, &verr) {
			writeVariableProblems(w, verr)
			return
		}
		if uerr := (*trigger.UntrustedError)(nil); errors.As(err, &uerr) {
			untrusted(w, p.Name)
			return
		}
		var gerr *trigger.GitError
		if errors.As(err, &gerr) {
			writeError(w, outcomeStatus(gerr.Code), string(gerr.Code), gerr.Message)
			return
		}
		s.storeError(w, r, err, fmt.Sprintf("pipeline %q not found", p.Name), "")
		return
	}
	ignored := resolved.Ignored
	if ignored == nil {
		ignored = []string{}
	}
	if err := s.Store.RunWaiting(r.Context(), &rn); err != nil {
		s.logger().Warn("api: why the new run waits", "run", rn.ID, "err", err) // the run is stored: answer 201 anyway
	}
	w.Header().Set("Location", "/api/v1/runs/"+strconv.FormatInt(rn.ID, 10))
	writeJSON(w, http.StatusCreated, map[string]any{"run": s.toRunDetail(rn), "ignored": ignored})
}

// variablesHint explains a manual run's body that gives variables at the top level, as the
// webhook takes them ({"abc":"456"}): when every unknown key is a variable name with a string,
// number or boolean value, it returns the body to send instead; else "".
func variablesHint(body []byte) string {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return ""
	}
	vars := map[string]json.RawMessage{}
	for k, v := range top {
		switch k {
		case "variables", "branch", "tag", "commit":
			continue
		}
		var scalar any
		if !pipeline.ValidVariableName(k) || json.Unmarshal(v, &scalar) != nil {
			return ""
		}
		switch scalar.(type) {
		case string, float64, bool:
			vars[k] = v
		default:
			return ""
		}
	}
	if len(vars) == 0 {
		return ""
	}
	want, _ := json.Marshal(map[string]any{"variables": vars})
	return fmt.Sprintf("; variables of a manual run go under \"variables\": send %s", want)
}

// writeVariableProblems answers 422 invalid_variables naming every bad key.
func writeVariableProblems(w http.ResponseWriter, verr *pipeline.VariableError) {
	type problem struct {
		Key     string `json:"key"`
		Message string `json:"message"`
	}
	probs := make([]problem, len(verr.Problems))
	keys := ""
	for i, p := range verr.Problems {
		probs[i] = problem{Key: p.Key, Message: p.Message}
		if i > 0 {
			keys += ", "
		}
		keys += p.Key
	}
	writeProblems(w, http.StatusUnprocessableEntity, "invalid_variables",
		"invalid variables: "+keys+"; fix them and start the run again", probs)
}

// runList: GET /api/v1/pipelines/{name}/runs?limit=&before=&status=&trigger= (viewer) →
// {"runs":[run-summary…],"next_before":N or null}, newest first.
func (s *Server) runList(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.pipelineAccess(w, r, r.PathValue("name"), auth.Viewer)
	if !ok {
		return
	}
	q := r.URL.Query()
	var params store.RunListParams
	if params.Limit, ok = queryLimit(w, r, 50, maxRunPage); !ok {
		return
	}
	if params.Before, ok = queryBefore(w, r, "a run number"); !ok {
		return
	}
	if v := q.Get("status"); v != "" {
		st := run.Status(v)
		if !st.Valid() || st == run.Skipped {
			badRequest(w, fmt.Sprintf("status=%q: use queued, running, success, failed or canceled", v))
			return
		}
		params.Status = st
	}
	if v := q.Get("trigger"); v != "" {
		switch tr := run.Trigger(v); tr {
		case run.TriggerManual, run.TriggerWebhook, run.TriggerPush, run.TriggerCron:
			params.Trigger = tr
		default:
			badRequest(w, fmt.Sprintf("trigger=%q: use manual, webhook, push or cron", v))
			return
		}
	}
	// One run more than asked tells whether there is a next page; the store pages by at most
	// maxRunPage, so a full page of that size always offers a next one (which may be empty).
	limit := params.Limit
	params.Limit = min(limit+1, maxRunPage)
	runs, err := s.Store.RunList(r.Context(), p.ID, params)
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	runs, next := nextPage(runs, limit, maxRunPage, func(rn run.Run) int64 { return rn.Number })
	if err := s.Store.RunsWaiting(r.Context(), runs); err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	out := make([]runSummary, len(runs))
	for i, rn := range runs {
		out[i] = s.toRunSummary(rn)
	}
	// total: the runs matching the filters; newer: those of them above this page.
	before := params.Before
	params.Before = 0
	total, err := s.Store.RunCount(r.Context(), p.ID, params)
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	newer := int64(0)
	if before > 0 {
		params.Before = before
		below, err := s.Store.RunCount(r.Context(), p.ID, params)
		if err != nil {
			s.storeError(w, r, err, "", "")
			return
		}
		newer = max(total-below, 0)
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": out, "next_before": next, "total": total, "newer": newer})
}

// maxRunPage is the largest page of runs.
const maxRunPage = 200

// runGet: GET /api/v1/runs/{id} (viewer) → run.
func (s *Server) runGet(w http.ResponseWriter, r *http.Request) {
	rn, _, ok := s.runAccess(w, r, auth.Viewer)
	if !ok {
		return
	}
	if err := s.Store.RunWaiting(r.Context(), &rn); err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	d := s.toRunDetail(rn)
	if rn.Trigger == run.TriggerCron {
		f, err := s.runFire(r, rn.ID)
		if err != nil {
			s.storeError(w, r, err, "", "")
			return
		}
		d.Schedule = f
	}
	writeJSON(w, http.StatusOK, d)
}

// runCancel: POST /api/v1/runs/{id}/cancel (developer) → 200 with the run canceled when nothing
// of it was running; 202 with the run "canceling" while its running jobs stop (their runners,
// on whichever node, see the cancel within about a second); 409 when it had finished already.
// It answers at once: a client that wants the end reads the run (GET) until it is final.
func (s *Server) runCancel(w http.ResponseWriter, r *http.Request) {
	rn, u, ok := s.runAccess(w, r, auth.Developer)
	if !ok {
		return
	}
	if rn.Status.Terminal() {
		conflict(w, fmt.Sprintf("run %d has already finished (%s); there is nothing to cancel", rn.ID, rn.Status))
		return
	}
	id := rn.ID
	rn, err := s.Store.RunCancel(r.Context(), id, "canceled by "+u.Username)
	if err != nil {
		s.storeError(w, r, err, fmt.Sprintf("run %d not found", id), fmt.Sprintf("run %d has already finished; there is nothing to cancel", id))
		return
	}
	if rn.Status.Terminal() && rn.Status != run.Canceled {
		conflict(w, fmt.Sprintf("run %d finished (%s) before it could be canceled", rn.ID, rn.Status))
		return
	}
	if rn.Status.Terminal() {
		writeJSON(w, http.StatusOK, s.toRunDetail(rn))
		return
	}
	if s.Canceler != nil {
		s.Canceler.Cancel(rn.ID) // jobs of this server stop now; others at their runner's next look
	}
	writeJSON(w, http.StatusAccepted, s.toRunDetail(rn))
}
