package api

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
	"github.com/flowd/flowd/internal/trigger"
)

// pipelineJSON is a pipeline as GET /api/v1/pipelines/{name} shows it.
type pipelineJSON struct {
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Revision    int64          `json:"revision"`
	YAML        string         `json:"yaml"` // secret defaults masked as ***
	Variables   []variableJSON `json:"variables"`
	Stages      []stageJSON    `json:"stages"`
	CreatedBy   string         `json:"created_by"`
	Trusted     bool           `json:"trusted"`              // may run on a server whose steps run as its own user
	TrustedBy   string         `json:"trusted_by,omitempty"` // the global admin who marked it
	CreatedAt   time.Time      `json:"created_at"`
	UpdatedAt   time.Time      `json:"updated_at"`
	Role        auth.Role      `json:"role"` // the caller's effective role
	Queue       queueJSON      `json:"queue"`
	Schedules   []scheduleJSON `json:"schedules"` // cron triggers with their next fire times
}

// queueJSON is a pipeline's queue bounds (queue: in its YAML; 0 = none) and, when one pipeline
// is read, its queue now: runs waiting to start, and their seconds of work at the rate the
// pipeline's runs ended in the last minute (absent when none ended).
type queueJSON struct {
	MaxRuns    int    `json:"max_runs"`
	MaxSeconds int    `json:"max_seconds"`
	Queued     *int64 `json:"queued,omitempty"`
	Seconds    *int64 `json:"seconds,omitempty"`
}

type variableJSON struct {
	Name        string   `json:"name"`
	Default     *string  `json:"default,omitempty"` // absent for secret variables
	Secret      bool     `json:"secret"`
	Options     []string `json:"options"`
	Description string   `json:"description"`
}

type stageJSON struct {
	Name string    `json:"name"`
	Jobs []jobJSON `json:"jobs"`
}

type jobJSON struct {
	Name  string   `json:"name"`
	Image string   `json:"image,omitempty"` // its own or the pipeline's image:; absent on the host
	Steps []string `json:"steps"`           // step names
}

// pipelineSummaryJSON is a pipeline in GET /api/v1/pipelines.
type pipelineSummaryJSON struct {
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Revision    int64       `json:"revision"`
	Role        auth.Role   `json:"role"`
	Trusted     bool        `json:"trusted"`
	UpdatedAt   time.Time   `json:"updated_at"`
	LastRun     *runSummary `json:"last_run"`
	// Running are its running runs, newest first (at most store.MaxListedRunning); the counts
	// are of all its running and queued runs.
	Running      []runSummary `json:"running"`
	RunningCount int          `json:"running_count"`
	QueuedCount  int          `json:"queued_count"`
}

// toPipelineJSON shows p, whose Source is already masked, to a caller with role.
func toPipelineJSON(p store.Pipeline, role auth.Role) (pipelineJSON, error) {
	def, err := pipeline.Parse([]byte(p.Source))
	if err != nil {
		return pipelineJSON{}, fmt.Errorf("api: stored pipeline %s revision %d does not parse: %w", p.Name, p.Revision, err)
	}
	out := pipelineJSON{
		Name:        p.Name,
		Description: def.Description,
		Revision:    p.Revision,
		YAML:        p.Source,
		Variables:   []variableJSON{},
		Stages:      []stageJSON{},
		CreatedBy:   p.CreatedBy,
		Trusted:     p.TrustedBy != "",
		TrustedBy:   p.TrustedBy,
		CreatedAt:   p.CreatedAt,
		UpdatedAt:   p.UpdatedAt,
		Role:        role,
	}
	if def.Queue != nil {
		out.Queue.MaxRuns, out.Queue.MaxSeconds = def.Queue.MaxRuns, def.Queue.MaxSeconds
	}
	out.Schedules = schedulesJSON(def, time.Now())
	for _, v := range def.Variables {
		vj := variableJSON{Name: v.Name, Secret: v.Secret, Options: v.Options, Description: v.Description}
		if vj.Options == nil {
			vj.Options = []string{}
		}
		if !v.Secret {
			d := v.Default
			vj.Default = &d
		}
		out.Variables = append(out.Variables, vj)
	}
	for _, st := range def.Stages {
		sj := stageJSON{Name: st.Name, Jobs: []jobJSON{}}
		for _, j := range st.Jobs {
			jj := jobJSON{Name: j.Name, Steps: []string{}}
			if j.Container != nil {
				jj.Image = j.Container.Image
			}
			for _, step := range j.Steps {
				jj.Steps = append(jj.Steps, step.Name)
			}
			sj.Jobs = append(sj.Jobs, jj)
		}
		out.Stages = append(out.Stages, sj)
	}
	return out, nil
}

// pipelineList: GET /api/v1/pipelines → the caller's pipelines (all of them for global admins).
func (s *Server) pipelineList(w http.ResponseWriter, r *http.Request) {
	u, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	ps, err := s.Store.PipelineList(r.Context(), u.ID, u.Admin)
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	var last []run.Run
	for _, p := range ps {
		if p.LastRun != nil {
			last = append(last, *p.LastRun)
		}
	}
	if err := s.Store.RunsWaiting(r.Context(), last); err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	waiting := make(map[int64]string, len(last))
	for _, rn := range last {
		waiting[rn.ID] = rn.Waiting
	}
	out := make([]pipelineSummaryJSON, 0, len(ps))
	for _, p := range ps {
		role, err := s.role(r, p.Pipeline, u)
		if err != nil {
			s.storeError(w, r, err, "", "")
			return
		}
		if role == auth.None {
			continue // the list changed under us
		}
		pj := pipelineSummaryJSON{Name: p.Name, Revision: p.Revision, Role: role, Trusted: p.TrustedBy != "", UpdatedAt: p.UpdatedAt}
		if def, err := pipeline.Parse([]byte(p.Source)); err == nil {
			pj.Description = def.Description
		}
		if p.LastRun != nil {
			p.LastRun.Waiting = waiting[p.LastRun.ID]
			rs := s.toRunSummary(*p.LastRun)
			pj.LastRun = &rs
		}
		pj.Running = make([]runSummary, len(p.Running))
		for i, rn := range p.Running {
			pj.Running[i] = s.toRunSummary(rn)
		}
		pj.RunningCount, pj.QueuedCount = p.RunningCount, p.QueuedCount
		out = append(out, pj)
	}
	writeJSON(w, http.StatusOK, map[string]any{"pipelines": out})
}

// pipelineGet: GET /api/v1/pipelines/{name} (viewer) → pipeline.
func (s *Server) pipelineGet(w http.ResponseWriter, r *http.Request) {
	p, u, ok := s.pipelineAccess(w, r, r.PathValue("name"), auth.Viewer)
	if !ok {
		return
	}
	s.writePipeline(w, r, http.StatusOK, p, u)
}

func (s *Server) writePipeline(w http.ResponseWriter, r *http.Request, status int, p store.Pipeline, u store.User) {
	role, err := s.role(r, p, u)
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	pj, err := toPipelineJSON(p, role)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if s.Queue != nil {
		q := s.Queue.Pipeline(r.Context(), p.ID, nil)
		pj.Queue.Queued = &q.Queued
		if secs, ok := q.Seconds(); ok {
			n := int64(math.Ceil(secs))
			pj.Queue.Seconds = &n
		}
	}
	writeJSON(w, status, pj)
}

// pipelineCreate: POST /api/v1/pipelines (any user) YAML → 201 pipeline; the caller becomes its
// admin.
func (s *Server) pipelineCreate(w http.ResponseWriter, r *http.Request) {
	u, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	src, def, ok := s.readDefinition(w, r)
	if !ok {
		return
	}
	trusted, ok := s.saveAllowed(w, u, def)
	if !ok {
		return
	}
	masked, sealed, ok := s.maskAndSeal(w, r, src, def, store.Pipeline{})
	if !ok {
		return
	}
	p, err := s.Store.PipelineCreateTrust(r.Context(), def.Name, string(masked), sealed, u.ID, trusted)
	if err != nil {
		s.storeError(w, r, err, "", fmt.Sprintf("a pipeline named %q exists; change it with PUT /api/v1/pipelines/%s or choose another name", def.Name, def.Name))
		return
	}
	w.Header().Set("Location", "/api/v1/pipelines/"+p.Name)
	s.writePipeline(w, r, http.StatusCreated, p, u)
}

// pipelineUpdate: PUT /api/v1/pipelines/{name} (admin) YAML → 200 pipeline at a new revision.
func (s *Server) pipelineUpdate(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	p, u, ok := s.pipelineAccess(w, r, name, auth.Admin)
	if !ok {
		return
	}
	src, def, ok := s.readDefinition(w, r)
	if !ok {
		return
	}
	if def.Name != name {
		renamed(w, src,
			fmt.Sprintf("the definition is named %q but is sent to pipeline %q; a pipeline cannot be renamed — create a new one instead", def.Name, name),
			fmt.Sprintf("name: must be %q, the name in the URL", name))
		return
	}
	keepTrust, ok := s.saveAllowed(w, u, def)
	if !ok {
		return
	}
	masked, sealed, ok := s.maskAndSeal(w, r, src, def, p)
	if !ok {
		return
	}
	p, err := s.Store.PipelineUpdateTrust(r.Context(), p.ID, string(masked), sealed, u.ID, keepTrust)
	if err != nil {
		s.storeError(w, r, err, fmt.Sprintf("pipeline %q not found", name), "")
		return
	}
	s.writePipeline(w, r, http.StatusOK, p, u)
}

// pipelineDelete: DELETE /api/v1/pipelines/{name} (admin) → 204, with its revisions, runs,
// logs, deliveries, webhook trigger and members. The processes of its running jobs on this
// server stop at once (on other servers and agents: when their next heartbeat finds the job
// gone).
func (s *Server) pipelineDelete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	p, _, ok := s.pipelineAccess(w, r, name, auth.Admin)
	if !ok {
		return
	}
	running, err := s.Store.RunList(r.Context(), p.ID, store.RunListParams{Status: run.Running, Limit: 200})
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	if err := s.Store.PipelineDelete(r.Context(), p.ID); err != nil {
		s.storeError(w, r, err, fmt.Sprintf("pipeline %q not found", name), "")
		return
	}
	if s.Canceler != nil {
		for _, rn := range running {
			s.Canceler.Cancel(rn.ID)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// problemJSON is one problem of a definition.
type problemJSON struct {
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
}

// readDefinition reads a YAML body (415 for other media types, 413 over the limit), parses it
// (422 with every problem) and checks it against the server's Policy (422 with every job it
// refuses), returning the text as sent and the parsed pipeline.
func (s *Server) readDefinition(w http.ResponseWriter, r *http.Request) ([]byte, *pipeline.Pipeline, bool) {
	switch mt := mediaType(r); mt {
	case "", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain":
	default:
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type",
			fmt.Sprintf("a pipeline definition is YAML, not %s: send Content-Type: application/yaml", mt))
		return nil, nil, false
	}
	src, ok := readBody(w, r)
	if !ok {
		return nil, nil, false
	}
	def, err := pipeline.Parse(src)
	if err != nil {
		invalidPipeline(w, err, "the pipeline definition has a problem; fix it and send it again",
			"the pipeline definition has %d problems; fix them and send it again")
		return nil, nil, false
	}
	if err := s.Policy.Check(def); err != nil {
		invalidPipeline(w, err, "this server does not allow the pipeline definition: fix the problem and send it again",
			"this server does not allow the pipeline definition: fix its %d problems and send it again")
		return nil, nil, false
	}
	return src, def, true
}

// invalidPipeline answers 422 invalid_pipeline with every problem of err (a *pipeline.Error),
// saying one (a problem) or many (a format of their count).
func invalidPipeline(w http.ResponseWriter, err error, one, many string) {
	var perr *pipeline.Error
	if !errors.As(err, &perr) {
		perr = &pipeline.Error{Problems: []pipeline.Problem{{Message: err.Error()}}}
	}
	probs := make([]problemJSON, len(perr.Problems))
	for i, p := range perr.Problems {
		probs[i] = problemJSON{Line: p.Line, Column: p.Column, Message: p.Message}
	}
	msg := one
	if len(probs) > 1 {
		msg = fmt.Sprintf(many, len(probs))
	}
	writeProblems(w, http.StatusUnprocessableEntity, "invalid_pipeline", msg, probs)
}

// renamed answers 422 invalid_pipeline for a definition src whose name is not the pipeline's:
// msg says so, and problem, placed at the name's value, says which name it must be.
func renamed(w http.ResponseWriter, src []byte, msg, problem string) {
	line, col := namePosition(src)
	writeProblems(w, http.StatusUnprocessableEntity, "invalid_pipeline", msg,
		[]problemJSON{{Line: line, Column: col, Message: problem}})
}

// maskAndSeal returns the text to store (secret defaults masked as ***) and the sealed secret
// values. A secret whose default is written *** keeps old's stored value (none on create: it
// is then empty); values of variables that are no longer secret are dropped.
func (s *Server) maskAndSeal(w http.ResponseWriter, r *http.Request, src []byte, def *pipeline.Pipeline, old store.Pipeline) ([]byte, []byte, bool) {
	if !slices.ContainsFunc(def.Variables, func(v pipeline.Variable) bool { return v.Secret }) {
		return src, nil, true // nothing to mask: keep the text exactly as written
	}
	masked, given, err := pipeline.MaskSecrets(src)
	if err != nil {
		s.internalError(w, r, fmt.Errorf("api: mask secrets of a valid definition: %w", err))
		return nil, nil, false
	}
	stored, err := trigger.OpenSecrets(s.Box, old.Secrets)
	if err != nil {
		s.internalError(w, r, fmt.Errorf("api: open secrets of pipeline %s: %w", old.Name, err))
		return nil, nil, false
	}
	values := map[string]string{}
	for _, v := range def.Variables {
		if !v.Secret {
			continue
		}
		if val, ok := given[v.Name]; ok {
			values[v.Name] = val
		} else {
			values[v.Name] = stored[v.Name] // "" when nothing is stored
		}
	}
	sealed, err := trigger.SealSecrets(s.Box, values)
	if err != nil {
		s.internalError(w, r, fmt.Errorf("api: seal secrets: %w", err))
		return nil, nil, false
	}
	return masked, sealed, true
}

// namePosition finds the line and column of the top-level name's value in a valid definition
// (0, 0 when it cannot).
func namePosition(src []byte) (int, int) {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(src)).Decode(&doc); err != nil || len(doc.Content) == 0 {
		return 0, 0
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return 0, 0
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "name" {
			return root.Content[i+1].Line, root.Content[i+1].Column
		}
	}
	return 0, 0
}
