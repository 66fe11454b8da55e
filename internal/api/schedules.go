package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/pipeline"
	"github.com/flowd/flowd/internal/store"
)

// scheduleJSON is one of a pipeline's schedules, with its next fire times.
type scheduleJSON struct {
	Name      string            `json:"name,omitempty"`
	Title     string            `json:"title"` // its name, or its cron expression and zone
	Cron      string            `json:"cron"`
	Timezone  string            `json:"timezone"` // IANA name; UTC when the YAML gives none
	Branch    string            `json:"branch,omitempty"`
	Variables map[string]string `json:"variables"`
	Next      []time.Time       `json:"next"` // the next three fire times
}

// schedulesJSON returns def's schedules with their next three fire times after now.
func schedulesJSON(def *pipeline.Pipeline, now time.Time) []scheduleJSON {
	out := []scheduleJSON{}
	for _, sc := range def.Schedules {
		vars := sc.Variables
		if vars == nil {
			vars = map[string]string{}
		}
		next := []time.Time{}
		for _, t := range sc.NextFires(now, 3) {
			next = append(next, t.UTC())
		}
		out = append(out, scheduleJSON{Name: sc.Name, Title: sc.Title(), Cron: sc.Cron.String(), Timezone: sc.Location.String(),
			Branch: sc.Branch, Variables: vars, Next: next})
	}
	return out
}

// fireJSON is a fire time some server acted on.
type fireJSON struct {
	Schedule   string    `json:"schedule"` // the schedule's title
	FireAt     time.Time `json:"fire_at"`
	Outcome    string    `json:"outcome"` // started, refused or failed
	Message    string    `json:"message,omitempty"`
	RunID      int64     `json:"run_id,omitempty"`
	RunNumber  int64     `json:"run_number,omitempty"`
	RecordedAt time.Time `json:"recorded_at"`
}

func toFireJSON(f store.ScheduleFire) fireJSON {
	return fireJSON{Schedule: f.Title, FireAt: f.At.UTC(), Outcome: f.Outcome, Message: f.Message, RunID: f.RunID,
		RunNumber: f.RunNumber, RecordedAt: f.RecordedAt.UTC()}
}

// scheduleList: GET /api/v1/pipelines/{name}/schedules[?limit=N] (viewer) → 200
// {"schedules":[…],"fires":[…]}: the schedules of the current revision with their next fire
// times, and the newest fire times acted on (limit 1..200, default 50), newest first.
func (s *Server) scheduleList(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.pipelineAccess(w, r, r.PathValue("name"), auth.Viewer)
	if !ok {
		return
	}
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			badRequest(w, "limit="+strconv.Quote(v)+": use a number from 1 to 200")
			return
		}
		limit = n
	}
	def, err := pipeline.Parse([]byte(p.Source))
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	fires, err := s.Store.ScheduleFireList(r.Context(), p.ID, limit)
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	out := struct {
		Schedules []scheduleJSON `json:"schedules"`
		Fires     []fireJSON     `json:"fires"`
	}{Schedules: schedulesJSON(def, time.Now()), Fires: []fireJSON{}}
	for _, f := range fires {
		out.Fires = append(out.Fires, toFireJSON(f))
	}
	writeJSON(w, http.StatusOK, out)
}

// runFire returns the fire time that started run id, nil when no schedule did.
func (s *Server) runFire(r *http.Request, id int64) (*fireJSON, error) {
	f, err := s.Store.ScheduleFireOfRun(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	fj := toFireJSON(f)
	return &fj, nil
}
