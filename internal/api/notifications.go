package api

import (
	"net/http"
	"time"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/store"
)

// notificationDoc is a run notification as the API shows it: where it goes, what became of it
// and each attempt. The signing secret's value is never here (signed says whether one signs).
type notificationDoc struct {
	ID             int64        `json:"id"`
	Target         int          `json:"target"` // index in the definition's notify list
	URL            string       `json:"url"`
	Signed         bool         `json:"signed"`
	Secret         string       `json:"secret,omitempty"` // the variable's name
	DeliveryID     string       `json:"delivery_id"`
	Status         string       `json:"status"`
	Attempts       int          `json:"attempts"`
	NextAttemptAt  *time.Time   `json:"next_attempt_at,omitempty"` // while pending
	GiveUpAt       time.Time    `json:"give_up_at"`
	LastStatusCode int          `json:"last_status_code,omitempty"`
	LastError      string       `json:"last_error,omitempty"`
	CreatedAt      time.Time    `json:"created_at"`
	FinishedAt     *time.Time   `json:"finished_at"`
	History        []attemptDoc `json:"history"`
}

type attemptDoc struct {
	store.NotifyAttempt
	DurationMS int64 `json:"duration_ms"`
}

// runNotifications: GET /api/v1/runs/{id}/notifications (viewer) → {"notifications": […]},
// the run's notifications by target with their attempts (none while the run has not ended).
func (s *Server) runNotifications(w http.ResponseWriter, r *http.Request) {
	rn, _, ok := s.runAccess(w, r, auth.Viewer)
	if !ok {
		return
	}
	list, err := s.Store.RunNotifications(r.Context(), rn.ID)
	if err != nil {
		s.storeError(w, r, err, "", "")
		return
	}
	out := make([]notificationDoc, 0, len(list))
	for _, n := range list {
		d := notificationDoc{ID: n.ID, Target: n.NotifyTarget.Index, URL: n.NotifyTarget.URL, Signed: n.NotifyTarget.Secret != "",
			Secret: n.NotifyTarget.Secret, DeliveryID: n.Delivery, Status: n.Status, Attempts: n.Attempts, GiveUpAt: n.GiveUpAt,
			LastStatusCode: n.LastStatusCode, LastError: n.LastError, CreatedAt: n.CreatedAt, FinishedAt: n.FinishedAt,
			History: make([]attemptDoc, 0, len(n.History))}
		if n.Status == store.NotifyPending {
			next := n.NextAttemptAt
			d.NextAttemptAt = &next
		}
		for _, a := range n.History {
			d.History = append(d.History, attemptDoc{NotifyAttempt: a, DurationMS: a.Duration.Milliseconds()})
		}
		out = append(out, d)
	}
	writeJSON(w, http.StatusOK, map[string]any{"notifications": out})
}
