package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// RunCreate starts a manual run of pipeline with vars overriding the declared defaults (nil: the
// defaults). ignored lists the keys of vars the pipeline does not declare. Bad values are a
// 422 *Error with Code "invalid_variables" and a Problem per key.
func (c *Client) RunCreate(ctx context.Context, pipeline string, vars map[string]string) (r *Run, ignored []string, err error) {
	return c.RunStart(ctx, pipeline, RunOptions{Variables: vars})
}

// RunOptions is what a manual run is started with.
type RunOptions struct {
	Variables map[string]string // overrides of the declared defaults; nil = the defaults
	// Branch or Tag (at most one) and Commit choose what a pipeline with a source builds: a
	// branch or tag without a commit builds its head, a commit alone is built as it is; none
	// builds the head of the pipeline's default branch.
	Branch, Tag, Commit string
}

// RunStart starts a manual run of pipeline with opts. A branch or tag the repository lacks is a
// 422 *Error with Code "no_commit"; a repository the server cannot read a 502 "git_error".
func (c *Client) RunStart(ctx context.Context, pipeline string, opts RunOptions) (r *Run, ignored []string, err error) {
	in := struct {
		Variables map[string]string `json:"variables,omitempty"`
		Branch    string            `json:"branch,omitempty"`
		Tag       string            `json:"tag,omitempty"`
		Commit    string            `json:"commit,omitempty"`
	}{opts.Variables, opts.Branch, opts.Tag, opts.Commit}
	var out struct {
		Run     *Run     `json:"run"`
		Ignored []string `json:"ignored"`
	}
	if err := c.doJSON(ctx, http.MethodPost, p("pipelines", pipeline, "runs"), in, &out); err != nil {
		return nil, nil, err
	}
	if out.Run == nil {
		return nil, nil, fmt.Errorf("client: start run of %s: the answer holds no run", pipeline)
	}
	return out.Run, out.Ignored, nil
}

// RunList returns a page of a pipeline's runs, newest first (summaries: no stages).
func (c *Client) RunList(ctx context.Context, pipeline string, params RunListParams) (*RunPage, error) {
	q := pageQuery(params.Limit, params.Before)
	if params.Status != "" {
		q.Set("status", params.Status)
	}
	if params.Trigger != "" {
		q.Set("trigger", params.Trigger)
	}
	var out RunPage
	r := request{method: http.MethodGet, path: p("pipelines", pipeline, "runs"), query: q}
	if err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RunGet returns a run with its stages, jobs and steps.
func (c *Client) RunGet(ctx context.Context, id int64) (*Run, error) {
	return call[Run](ctx, c, http.MethodGet, p("runs", strconv.FormatInt(id, 10)), nil)
}

// RunByNumber returns the summary of run number of pipeline (no stages): the numbers a person
// sees ("hello#3") rather than the id the API takes. A number the pipeline does not have is a
// 404 *Error with Code "not_found".
func (c *Client) RunByNumber(ctx context.Context, pipeline string, number int64) (*Run, error) {
	page, err := c.RunList(ctx, pipeline, RunListParams{Limit: 1, Before: number + 1})
	if err != nil {
		return nil, err
	}
	if len(page.Runs) == 0 || page.Runs[0].Number != number {
		return nil, &Error{Status: http.StatusNotFound, Code: "not_found",
			Message: fmt.Sprintf("pipeline %s has no run #%d: 'flowd runs %s' lists its runs", pipeline, number, pipeline)}
	}
	return &page.Runs[0], nil
}

// RunCancel cancels a queued or running run and returns it once it has stopped. A run that
// already finished is a 409 *Error. The server answers at once, with a running run in
// canceling; RunCancel then reads the run until it has stopped, for at most CancelWait (it
// returns the run as it is then, still canceling).
func (c *Client) RunCancel(ctx context.Context, id int64) (*Run, error) {
	r, err := call[Run](ctx, c, http.MethodPost, p("runs", strconv.FormatInt(id, 10), "cancel"), nil)
	if err != nil || r.Status.Terminal() {
		return r, err
	}
	deadline := time.Now().Add(CancelWait)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		got, err := c.RunGet(ctx, id)
		if err != nil {
			return r, err
		}
		if r = got; r.Status.Terminal() {
			break
		}
	}
	return r, nil
}

// CancelWait bounds how long RunCancel waits for a canceled run to stop.
const CancelWait = 30 * time.Second

// LogOptions say which log LogText reads and how (the log endpoint's parameters).
type LogOptions struct {
	Follow     bool  // keep reading until the run ends
	Job        int64 // only this job's lines; 0 = the whole run
	StripANSI  bool  // without colours and other escape sequences (ansi=0)
	Timestamps bool  // each line prefixed with its time (timestamps=1)
}

// Log copies the log of a run to w as it arrives. With follow it keeps reading until the run
// ends (or ctx is done); without, it copies what has been written so far.
func (c *Client) Log(ctx context.Context, runID int64, follow bool, w io.Writer) error {
	return c.LogText(ctx, runID, LogOptions{Follow: follow}, w)
}

// LogText copies the text log of a run, as opts ask, to w as it arrives.
func (c *Client) LogText(ctx context.Context, runID int64, opts LogOptions, w io.Writer) error {
	r := request{method: http.MethodGet, path: p("runs", strconv.FormatInt(runID, 10), "log")}
	q := url.Values{}
	if opts.Follow {
		q.Set("follow", "1")
	}
	if opts.Job != 0 {
		q.Set("job", strconv.FormatInt(opts.Job, 10))
	}
	if opts.StripANSI {
		q.Set("ansi", "0")
	}
	if opts.Timestamps {
		q.Set("timestamps", "1")
	}
	if len(q) > 0 {
		r.query = q
	}
	resp, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(flushWriter{w}, resp.Body); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("client: read log of run %d: %w", runID, err)
	}
	return nil
}

// flushWriter flushes w after every write if it can, so a followed log shows up line by line
// even through a buffered writer.
type flushWriter struct{ w io.Writer }

func (f flushWriter) Write(b []byte) (int, error) {
	n, err := f.w.Write(b)
	if fl, ok := f.w.(interface{ Flush() error }); ok && err == nil {
		err = fl.Flush()
	} else if fl, ok := f.w.(http.Flusher); ok && err == nil {
		fl.Flush()
	}
	return n, err
}

// RunNotifications lists a run's notifications (its pipeline's notify targets) with their
// attempts.
func (c *Client) RunNotifications(ctx context.Context, id int64) ([]Notification, error) {
	out, err := call[struct {
		Notifications []Notification `json:"notifications"`
	}](ctx, c, http.MethodGet, p("runs", strconv.FormatInt(id, 10), "notifications"), nil)
	if err != nil {
		return nil, err
	}
	return out.Notifications, nil
}

// RunCommitStatus is what a run reports to the code host of its commit; nil when it reports
// nothing (no commit, or its pipeline source has no status_token).
func (c *Client) RunCommitStatus(ctx context.Context, id int64) (*CommitStatus, error) {
	out, err := call[struct {
		CommitStatus *CommitStatus `json:"commit_status"`
	}](ctx, c, http.MethodGet, p("runs", strconv.FormatInt(id, 10), "commit-status"), nil)
	if err != nil {
		return nil, err
	}
	return out.CommitStatus, nil
}
