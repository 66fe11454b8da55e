package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

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
	// The text format's options: ansi=0, timestamps=1, download=1.
	stripANSI, timestamps, download bool
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
		if q.download {
			h.Set("Content-Disposition", attachment(logFileName(rn, q.job)))
		}
		out := logs.NewText(tw)
		out.StripANSI, out.Timestamps = q.stripANSI, q.timestamps
		_, err = logs.Chunks(r.Context(), s.Store, s.LogChanged, rn.ID, q.read, out.Chunk, flush)
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
	ansi := true
	for _, b := range []struct {
		name, use string
		to        *bool
	}{
		{"follow", "use 1 (stream until the run ends) or 0", &q.read.Follow},
		{"ansi", "use 0 (without colours and other escape sequences) or 1 (as written, the default)", &ansi},
		{"timestamps", "use 1 (each line starts with the time it was written) or 0", &q.timestamps},
		{"download", "use 1 (answer as a file to save) or 0", &q.download},
	} {
		if s := v.Get(b.name); s != "" {
			var err error
			if *b.to, err = strconv.ParseBool(s); err != nil {
				return q, http.StatusBadRequest, "bad_request", fmt.Sprintf("%s=%q: %s", b.name, s, b.use)
			}
		}
	}
	q.stripANSI = !ansi
	if a := v.Get("after"); a != "" {
		n, err := strconv.ParseInt(a, 10, 64)
		if err != nil || n < 0 {
			return q, http.StatusBadRequest, "bad_request", fmt.Sprintf("after=%q: use the seq of the last chunk you got (a whole number, 0 or more)", a)
		}
		q.read.After = n
	}
	if q.ndjson {
		for _, name := range []string{"ansi", "timestamps", "download"} {
			if v.Has(name) {
				return q, http.StatusBadRequest, "bad_request", fmt.Sprintf("%s= is for the text log (format=text); format=ndjson sends each chunk's bytes as written, with its time in \"at\"", name)
			}
		}
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

// logFileName is the name a downloaded log is saved as: PIPELINE-NUMBER.log, or
// PIPELINE-NUMBER-JOB.log for one job's.
func logFileName(rn run.Run, job *run.Job) string {
	name := fmt.Sprintf("%s-%d", rn.Pipeline, rn.Number)
	if job != nil {
		name += "-" + job.Name
	}
	return name + ".log"
}

// attachment is a Content-Disposition that saves the answer as name: filename with name's
// characters other than A-Z a-z 0-9 . _ - replaced by _, and filename* (RFC 5987) keeping
// letters and digits of every script.
func attachment(name string) string {
	var ascii, ext strings.Builder
	for _, c := range name {
		switch {
		case c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-':
			ascii.WriteRune(c)
			ext.WriteRune(c)
		case unicode.IsLetter(c) || unicode.IsDigit(c):
			ascii.WriteByte('_')
			ext.WriteString(url.PathEscape(string(c)))
		default:
			ascii.WriteByte('_')
			ext.WriteByte('_')
		}
	}
	return fmt.Sprintf(`attachment; filename="%s"; filename*=UTF-8''%s`, ascii.String(), ext.String())
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
