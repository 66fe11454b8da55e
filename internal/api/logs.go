package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/logs"
	"github.com/flowd/flowd/internal/run"
)

// runLog: GET /api/v1/runs/{id}/log[?follow=1] (viewer) → the log as text/plain; with follow
// the answer streams until the run has ended and all of its log is sent. A log the retention
// sweep deleted is 410 log_expired.
func (s *Server) runLog(w http.ResponseWriter, r *http.Request) {
	rn, _, ok := s.runAccess(w, r, auth.Viewer)
	if !ok {
		return
	}
	if rn.LogExpiredAt != nil {
		writeError(w, http.StatusGone, "log_expired", LogExpiredMessage(rn))
		return
	}
	follow := false
	if v := r.URL.Query().Get("follow"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			badRequest(w, fmt.Sprintf("follow=%q: use 1 or 0", v))
			return
		}
		follow = b
	}
	rc := http.NewResponseController(w)
	if follow {
		// A follow lasts as long as the run; the server's write timeout must not cut it.
		_ = rc.SetWriteDeadline(time.Time{})
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // let reverse proxies pass a follow through at once
	tw := &firstWrite{ResponseWriter: w}
	flush := func() { _ = rc.Flush() }
	err := logs.Stream(r.Context(), s.Store, s.LogChanged, rn.ID, follow, tw, flush)
	switch {
	case err == nil:
		if !tw.wrote {
			w.WriteHeader(http.StatusOK)
		}
	case r.Context().Err() != nil:
		// The client went away; nothing to answer.
	case !tw.wrote:
		s.storeError(w, r, err, fmt.Sprintf("run %d not found", rn.ID), "")
	default:
		// Part of the log was sent with 200 already; the client sees it end early.
		s.logger().Warn("api: log stream broke off", "run", rn.ID, "err", err)
	}
}

// LogExpiredMessage says that run's log expired, when, and why.
func LogExpiredMessage(rn run.Run) string {
	return fmt.Sprintf("the log of run #%d of %s expired on %s: the server deletes the logs of runs that finished longer ago than its --log-retention; the run's record is kept",
		rn.Number, rn.Pipeline, rn.LogExpiredAt.UTC().Format("2006-01-02 15:04 MST"))
}

// firstWrite remembers whether the body has started.
type firstWrite struct {
	http.ResponseWriter
	wrote bool
}

func (w *firstWrite) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}
