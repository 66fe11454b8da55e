package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/notify"
	"github.com/flowd/flowd/internal/run"
	"github.com/flowd/flowd/internal/store"
)

// commitStatusDoc is a run's commit status as the API shows it: where it goes, the newest
// state, what became of it and each attempt. The token's value is never here (token_variable
// names the secret variable that holds it).
type commitStatusDoc struct {
	Host           string                   `json:"host"`
	APIURL         string                   `json:"api_url"`
	Repo           string                   `json:"repo"`
	SHA            string                   `json:"sha"`
	Context        string                   `json:"context"`
	TargetURL      string                   `json:"target_url"`
	TokenVariable  string                   `json:"token_variable"`
	State          run.Status               `json:"state"`
	Description    string                   `json:"description"`
	Status         string                   `json:"status"`
	SentState      run.Status               `json:"sent_state,omitempty"`
	Attempts       int                      `json:"attempts"`
	NextAttemptAt  *time.Time               `json:"next_attempt_at,omitempty"` // while pending
	GiveUpAt       *time.Time               `json:"give_up_at,omitempty"`
	LastStatusCode int                      `json:"last_status_code,omitempty"`
	LastError      string                   `json:"last_error,omitempty"`
	ChangedAt      time.Time                `json:"changed_at"`
	History        []commitStatusAttemptDoc `json:"history"`
}

type commitStatusAttemptDoc struct {
	Number     int        `json:"number"`
	State      run.Status `json:"state"`
	StartedAt  time.Time  `json:"started_at"`
	DurationMS int64      `json:"duration_ms"`
	StatusCode int        `json:"status_code,omitempty"`
	Error      string     `json:"error,omitempty"`
}

// runCommitStatus: GET /api/v1/runs/{id}/commit-status (viewer) → {"commit_status": {…} or
// null}: null when the run reports none (no commit, or its pipeline source has no
// status_token).
func (s *Server) runCommitStatus(w http.ResponseWriter, r *http.Request) {
	rn, _, ok := s.runAccess(w, r, auth.Viewer)
	if !ok {
		return
	}
	c, err := s.Store.RunCommitStatus(r.Context(), rn.ID)
	if errors.Is(err, store.ErrNotFound) {
		writeJSON(w, http.StatusOK, map[string]any{"commit_status": nil})
		return
	}
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	st := notify.StatusOf(rn, c.State, s.ExternalURL)
	d := commitStatusDoc{SHA: st.SHA, Context: st.Context, TargetURL: st.TargetURL, State: c.State, Description: st.Description,
		Status: c.Status, SentState: c.SentState, Attempts: c.Attempts, GiveUpAt: c.GiveUpAt, LastStatusCode: c.LastStatusCode,
		LastError: c.LastError, ChangedAt: c.ChangedAt, History: make([]commitStatusAttemptDoc, 0, len(c.History))}
	if rn.Git != nil {
		d.TokenVariable = rn.Git.StatusTokenVar
	}
	if t, err := notify.StatusTarget(r.Context(), s.Store, rn); err == nil {
		d.Host, d.APIURL, d.Repo = t.Host, t.API, t.Repo
	}
	if c.Status == store.ReportPending {
		next := c.NextAttemptAt
		d.NextAttemptAt = &next
	}
	for _, a := range c.History {
		d.History = append(d.History, commitStatusAttemptDoc{Number: a.Number, State: a.State, StartedAt: a.StartedAt,
			DurationMS: a.Duration.Milliseconds(), StatusCode: a.StatusCode, Error: a.Error})
	}
	writeJSON(w, http.StatusOK, map[string]any{"commit_status": d})
}
