package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/flowd/flowd/internal/auth"
	"github.com/flowd/flowd/internal/logs"
	"github.com/flowd/flowd/internal/run"
)

// logPingEvery is how long an NDJSON follow stays silent before it sends {"ping":true}.
const logPingEvery = 20 * time.Second

// logQuery is what a log request asks for (see parseLogQuery).
type logQuery struct {
	ndjson bool
	read   logs.Read
	job    *run.Job // the job of job=, nil for the whole run
}

// runLog: GET /api/v1/runs/{id}/log (viewer) → the log as text/plain, or with format=ndjson one
// JSON object per chunk (docs/api.md has the parameters). With follow=1 the answer streams until
// the run has ended and all of its log is sent. A log the retention sweep deleted is 410
// log_expired.
func (s *Server) runLog(w http.ResponseWriter, r *http.Request) {
	rn, _, ok := s.runAccess(w, r, auth.Viewer)
	if !ok {
		return
	}
	q, status, code, msg := parseLogQuery(r.URL.Query(), rn)
	if status != 0 {
		writeError(w, status, code, msg)
		return
	}
	if rn.LogExpiredAt != nil {
		writeError(w, http.StatusGone, "log_expired", LogExpiredMessage(rn))
		return
	}
	rc := http.NewResponseController(w)
	if q.read.Follow {
		// A follow lasts as long as the run; the server's write timeout must not cut it.
		_ = rc.SetWriteDeadline(time.Time{})
	}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // let reverse proxies pass a follow through at once
	tw := &firstWrite{ResponseWriter: w}
	flush := func() { _ = rc.Flush() }
	var err error
	if q.ndjson {
		h.Set("Content-Type", "application/x-ndjson; charset=utf-8")
		err = s.streamNDJSON(r, rn.ID, q.read, tw, flush)
	} else {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		_, err = logs.Chunks(r.Context(), s.Store, s.LogChanged, rn.ID, q.read, func(c run.LogChunk) error {
			_, err := tw.Write(c.Data)
			return err
		}, flush)
	}
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

// streamNDJSON writes the chunks rd picks as NDJSON, pings while a follow is silent, and ends
// with the end line.
func (s *Server) streamNDJSON(r *http.Request, runID int64, rd logs.Read, w http.ResponseWriter, flush func()) error {
	out := logs.NewNDJSON(w)
	if rd.Follow {
		rd.Idle, rd.OnIdle = logPingEvery, out.Ping
	}
	status, err := logs.Chunks(r.Context(), s.Store, s.LogChanged, runID, rd, out.Chunk, flush)
	if err != nil {
		return err
	}
	if err := out.End(status); err != nil {
		return err
	}
	flush()
	return nil
}

// parseLogQuery reads a log request's parameters; a bad one gives the status, code and message
// of the error to answer.
func parseLogQuery(v url.Values, rn run.Run) (q logQuery, status int, code, msg string) {
	switch f := v.Get("format"); f {
	case "", "text":
	case "ndjson":
		q.ndjson = true
	default:
		return q, http.StatusBadRequest, "bad_request", fmt.Sprintf("format=%q: use text (the default, the log as plain text) or ndjson (one JSON object per log chunk)", f)
	}
	var ok bool
	if q.read.Follow, ok = boolParam(v, "follow"); !ok {
		return q, http.StatusBadRequest, "bad_request", fmt.Sprintf("follow=%q: use 1 (stream until the run ends) or 0", v.Get("follow"))
	}
	if a := v.Get("after"); a != "" {
		n, err := strconv.ParseInt(a, 10, 64)
		if err != nil || n < 0 {
			return q, http.StatusBadRequest, "bad_request", fmt.Sprintf("after=%q: use the seq of the last chunk you got (a whole number, 0 or more)", a)
		}
		q.read.After = n
	}
	if j := v.Get("job"); j != "" {
		id, err := strconv.ParseInt(j, 10, 64)
		if err != nil || id <= 0 {
			return q, http.StatusBadRequest, "bad_request", fmt.Sprintf("job=%q: use the id of one of the run's jobs (a whole number; GET /api/v1/runs/%d lists them)", j, rn.ID)
		}
		for i := range rn.Jobs {
			if rn.Jobs[i].ID == id {
				q.job = &rn.Jobs[i]
			}
		}
		if q.job == nil {
			return q, http.StatusNotFound, "job_not_found", fmt.Sprintf("run %d has no job %d; GET /api/v1/runs/%d lists its jobs", rn.ID, id, rn.ID)
		}
		q.read.Job, q.read.OnlyJob = id, true
	}
	return q, 0, "", ""
}

// boolParam reads an optional 1/0 (true/false) parameter; ok is false for another value.
func boolParam(v url.Values, name string) (b, ok bool) {
	s := v.Get(name)
	if s == "" {
		return false, true
	}
	b, err := strconv.ParseBool(s)
	return b, err == nil
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
