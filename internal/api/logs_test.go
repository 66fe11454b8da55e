package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/internal/run"
)

// twoJobsDefinition is a pipeline whose one stage has two jobs, a and b, that run at once.
const twoJobsDefinition = `name: pair
stages:
  - name: build
    jobs:
      - name: a
        steps: [{name: one, run: "true"}]
      - name: b
        steps: [{name: two, run: "true"}]
`

// logLine is one line of an NDJSON log.
type logLine struct {
	Seq    *int64     `json:"seq"`
	JobID  int64      `json:"job_id"`
	At     string     `json:"at"`
	Data   string     `json:"data"`
	Ping   bool       `json:"ping"`
	End    *bool      `json:"end"`
	Status run.Status `json:"status"`
}

// parseNDJSON decodes each line of body, failing on anything that is not one JSON object a line.
func parseNDJSON(t *testing.T, body []byte) []logLine {
	t.Helper()
	var out []logLine
	if len(body) == 0 || body[len(body)-1] != '\n' {
		t.Fatalf("NDJSON body %q does not end with a newline", body)
	}
	for _, l := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		var ll logLine
		if err := json.Unmarshal([]byte(l), &ll); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		out = append(out, ll)
	}
	return out
}

// pairRun is a run of twoJobsDefinition whose jobs' chunks interleave.
type pairRun struct {
	e          *env
	user       testUser
	id         int64
	jobA, jobB int64
	at         time.Time // the At of the first chunk; each next one is 1.5 s later
}

func newPairRun(t *testing.T, e *env) pairRun {
	t.Helper()
	u := e.user("alice", false)
	if r := e.yaml("POST", "/api/v1/pipelines", u.Token, twoJobsDefinition); r.Status != http.StatusCreated {
		t.Fatalf("create pipeline: %s", r)
	}
	p := pairRun{e: e, user: u, id: e.startRun("pair", u.Token), at: time.Date(2026, 12, 7, 16, 3, 55, 123e6, time.UTC)}
	rn, err := e.st.RunGet(context.Background(), p.id)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range rn.Jobs {
		switch j.Name {
		case "a":
			p.jobA = j.ID
		case "b":
			p.jobB = j.ID
		}
	}
	if p.jobA == 0 || p.jobB == 0 {
		t.Fatalf("jobs of run %d: %+v", p.id, rn.Jobs)
	}
	return p
}

// pairChunks is what newPairRun's append writes: the run's own line, then a's and b's chunks
// interleaved, some ending mid-line, with colours.
func (p pairRun) chunks() []run.LogChunk {
	return []run.LogChunk{
		{JobID: 0, Data: []byte("run queued\n")},
		{JobID: p.jobA, Data: []byte("▶ one\n\x1b[32mgreen a\x1b[0m\nhalf ")},
		{JobID: p.jobB, Data: []byte("▶ two\nb says hi\n")},
		{JobID: p.jobA, Data: []byte("line of a\n✔ one (0s)\n")},
		{JobID: p.jobB, Data: []byte("✔ two (0s)\n")},
	}
}

// append stores cs (RunID and At filled in) and wakes the followers.
func (p pairRun) append(t *testing.T, cs []run.LogChunk, from int) {
	t.Helper()
	for i := range cs {
		cs[i].RunID = p.id
		cs[i].At = p.at.Add(time.Duration(from+i) * 1500 * time.Millisecond)
	}
	if err := p.e.st.LogAppend(context.Background(), cs); err != nil {
		t.Fatal(err)
	}
	p.e.notify.wake(p.id)
}

func (p pairRun) path(query string) string {
	return fmt.Sprintf("/api/v1/runs/%d/log%s", p.id, query)
}

// TestRunLogNDJSON: format=ndjson gives one object per chunk in seq order with its job and time,
// resumes after a seq, filters by job, and ends with an end line that says whether the run ended.
func TestRunLogNDJSON(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		p := newPairRun(t, e)
		p.append(t, p.chunks(), 0)

		r := e.call("GET", p.path("?format=ndjson"), p.user.Token, nil)
		if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "application/x-ndjson; charset=utf-8" {
			t.Fatalf("ndjson: %s %v", r, r.Header)
		}
		lines := parseNDJSON(t, r.Body)
		want := p.chunks()
		if len(lines) != len(want)+1 {
			t.Fatalf("%d lines, want %d chunks and the end: %s", len(lines), len(want), r.Body)
		}
		for i, c := range want {
			l := lines[i]
			at := p.at.Add(time.Duration(i) * 1500 * time.Millisecond).Format("2006-01-02T15:04:05.000Z")
			if l.Seq == nil || *l.Seq != int64(i+1) || l.JobID != c.JobID || l.Data != string(c.Data) || l.At != at {
				t.Errorf("line %d = %+v, want seq %d job %d at %s data %q", i, l, i+1, c.JobID, at, c.Data)
			}
		}
		if !strings.HasPrefix(string(r.Body), `{"seq":1,"job_id":0,"at":"2026-12-07T16:03:55.123Z","data":"run queued\n"}`+"\n") {
			t.Errorf("first line: %s", r.Body)
		}
		// The run is still going: the end line says so.
		if l := lines[len(lines)-1]; l.End == nil || *l.End || l.Seq != nil {
			t.Errorf("last line of a running run's log = %+v, want {\"end\":false}", l)
		}
		if last := string(r.Body[strings.LastIndex(strings.TrimSuffix(string(r.Body), "\n"), "\n")+1:]); last != `{"end":false}`+"\n" {
			t.Errorf("end line = %q", last)
		}

		// after=SEQ resumes without duplicates; job= keeps one job's chunks.
		seqs := func(query string) []int64 {
			t.Helper()
			r := e.call("GET", p.path(query), p.user.Token, nil)
			if r.Status != http.StatusOK {
				t.Fatalf("%s: %s", query, r)
			}
			var out []int64
			for _, l := range parseNDJSON(t, r.Body) {
				if l.Seq != nil {
					out = append(out, *l.Seq)
				}
			}
			return out
		}
		for query, want := range map[string][]int64{
			"?format=ndjson&after=2":                             {3, 4, 5},
			"?format=ndjson&after=5":                             nil,
			fmt.Sprintf("?format=ndjson&job=%d", p.jobA):         {2, 4},
			fmt.Sprintf("?format=ndjson&job=%d&after=2", p.jobB): {3, 5},
		} {
			if got := seqs(query); !reflect.DeepEqual(got, want) {
				t.Errorf("%s: seqs %v, want %v", query, got, want)
			}
		}

		// Once the run has ended, the end line carries its status.
		finishAll(t, e, p.id, run.Failed)
		r = e.call("GET", p.path("?format=ndjson&after=5"), p.user.Token, nil)
		if r.Status != http.StatusOK || string(r.Body) != `{"end":true,"status":"failed"}`+"\n" {
			t.Errorf("after the end: %s", r)
		}
	})
}

// TestRunLogNDJSONFollow: a follow passes on chunks as they are written and ends with the end
// line once the run has ended; a follower cut off resumes with after= and misses nothing.
func TestRunLogNDJSONFollow(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		p := newPairRun(t, e)
		cs := p.chunks()
		p.append(t, cs[:2], 0)

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		follow := func(query string) (*bufio.Reader, func()) {
			t.Helper()
			req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+p.path(query), nil)
			req.Header.Set("Authorization", "Bearer "+p.user.Token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson; charset=utf-8" {
				t.Fatalf("follow %s: %d %v", query, resp.StatusCode, resp.Header)
			}
			return bufio.NewReader(resp.Body), func() { resp.Body.Close() }
		}
		next := func(br *bufio.Reader) logLine {
			t.Helper()
			for {
				s, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("follow: %q, %v", s, err)
				}
				var l logLine
				if err := json.Unmarshal([]byte(s), &l); err != nil {
					t.Fatalf("line %q: %v", s, err)
				}
				if !l.Ping {
					return l
				}
			}
		}
		br, stop := follow("?format=ndjson&follow=1")
		for i := range 2 {
			if l := next(br); l.Seq == nil || *l.Seq != int64(i+1) {
				t.Fatalf("followed line %d = %+v", i, l)
			}
		}
		p.append(t, cs[2:3], 2) // written while the follower waits
		if l := next(br); l.Seq == nil || *l.Seq != 3 || l.Data != string(cs[2].Data) {
			t.Fatalf("followed new chunk = %+v", l)
		}
		stop() // the connection is cut; the client reconnects after the last seq it got

		p.append(t, cs[3:], 3)
		br, stop = follow("?format=ndjson&follow=1&after=3")
		defer stop()
		for _, seq := range []int64{4, 5} {
			if l := next(br); l.Seq == nil || *l.Seq != seq {
				t.Fatalf("resumed line = %+v, want seq %d", l, seq)
			}
		}
		finishAll(t, e, p.id, run.Success)
		if l := next(br); l.End == nil || !*l.End || l.Status != run.Success {
			t.Fatalf("after the run ended: %+v, want the end line", l)
		}
		if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
			t.Errorf("after the end line: %q, %v", rest, err)
		}
	})
}

// TestRunLogErrors: bad parameters are 400 with a message that says what to send, another run's
// job is 404 job_not_found, an expired log is 410 in either format, and a non-member sees 404.
func TestRunLogErrors(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		p := newPairRun(t, e)
		p.append(t, p.chunks(), 0)
		other := e.startRun("pair", p.user.Token)
		otherRun, err := e.st.RunGet(context.Background(), other)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			query, code, says string
			status            int
		}{
			{"?format=json", "bad_request", "ndjson", 400},
			{"?format=ndjson&after=x", "bad_request", "seq", 400},
			{"?format=ndjson&after=-1", "bad_request", "seq", 400},
			{"?job=x", "bad_request", "id of one of the run's jobs", 400},
			{"?follow=maybe", "bad_request", "use 1", 400},
			{"?ansi=maybe", "bad_request", "use 0 (without colours", 400},
			{"?timestamps=yes", "bad_request", "use 1", 400},
			{"?download=2", "bad_request", "use 1", 400},
			{"?format=ndjson&ansi=0", "bad_request", "for the text log", 400},
			{"?format=ndjson&timestamps=1", "bad_request", "for the text log", 400},
			{"?job=0", "bad_request", "id of one of the run's jobs", 400},
			{fmt.Sprintf("?job=%d", otherRun.Jobs[0].ID), "job_not_found", "lists its jobs", 404},
			{fmt.Sprintf("?format=ndjson&job=%d", otherRun.Jobs[0].ID), "job_not_found", "lists its jobs", 404},
		} {
			r := e.call("GET", p.path(c.query), p.user.Token, nil)
			var ans errorAnswer
			r.json(t, &ans)
			if r.Status != c.status || ans.Error.Code != c.code || !strings.Contains(ans.Error.Message, c.says) {
				t.Errorf("%s: %s, want %d %s saying %q", c.query, r, c.status, c.code, c.says)
			}
		}

		// Someone who is not a member of the pipeline sees no log, as if the run did not exist.
		bob := e.user("bob", false)
		for _, q := range []string{"", "?format=ndjson", fmt.Sprintf("?format=ndjson&job=%d", p.jobA)} {
			if r := e.call("GET", p.path(q), bob.Token, nil); r.Status != http.StatusNotFound || strings.Contains(string(r.Body), "queued") {
				t.Errorf("non-member %s: %s", q, r)
			}
		}

		finishAll(t, e, p.id, run.Success)
		finishAll(t, e, other, run.Success)
		if _, err := e.st.LogExpire(context.Background(), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{"", "?format=ndjson", "?format=ndjson&follow=1&after=3"} {
			r := e.call("GET", p.path(q), p.user.Token, nil)
			if r.Status != http.StatusGone || r.errorCode() != "log_expired" {
				t.Errorf("expired log %s: %s", q, r)
			}
		}
	})
}

// TestRunLogText: the text log's options: one job's lines out of interleaved chunks, without
// escape sequences, with each line's time, as a download; and together with follow.
func TestRunLogText(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		p := newPairRun(t, e)
		p.append(t, p.chunks(), 0)
		get := func(query string) response {
			t.Helper()
			r := e.call("GET", p.path(query), p.user.Token, nil)
			if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Fatalf("%s: %s %v", query, r, r.Header)
			}
			return r
		}
		a, b := fmt.Sprintf("&job=%d", p.jobA), fmt.Sprintf("&job=%d", p.jobB)
		ts := func(i int) string {
			return p.at.Add(time.Duration(i)*1500*time.Millisecond).Format("2006-01-02T15:04:05.000Z") + " "
		}
		for query, want := range map[string]string{
			"":                    "run queued\n▶ one\n\x1b[32mgreen a\x1b[0m\nhalf ▶ two\nb says hi\nline of a\n✔ one (0s)\n✔ two (0s)\n",
			"?format=text&ansi=1": "run queued\n▶ one\n\x1b[32mgreen a\x1b[0m\nhalf ▶ two\nb says hi\nline of a\n✔ one (0s)\n✔ two (0s)\n",
			"?x" + a:              "▶ one\n\x1b[32mgreen a\x1b[0m\nhalf line of a\n✔ one (0s)\n",
			"?x" + b:              "▶ two\nb says hi\n✔ two (0s)\n",
			"?ansi=0" + a:         "▶ one\ngreen a\nhalf line of a\n✔ one (0s)\n",
			"?timestamps=1&ansi=false" + a: ts(1) + "▶ one\n" + ts(1) + "green a\n" + ts(1) + "half line of a\n" +
				ts(3) + "✔ one (0s)\n",
			"?timestamps=1": ts(0) + "run queued\n" + ts(1) + "▶ one\n" + ts(1) + "\x1b[32mgreen a\x1b[0m\n" + ts(1) +
				"half ▶ two\n" + ts(2) + "b says hi\n" + ts(3) + "line of a\n" + ts(3) + "✔ one (0s)\n" + ts(4) + "✔ two (0s)\n",
		} {
			r := get(query)
			if string(r.Body) != want {
				t.Errorf("%s:\n%q\nwant\n%q", query, r.Body, want)
			}
			if cd := r.Header.Get("Content-Disposition"); cd != "" {
				t.Errorf("%s: Content-Disposition %q without download=1", query, cd)
			}
		}

		// download=1 names the file after the run, and the job; with follow it ends with the run.
		if cd := get("?download=1").Header.Get("Content-Disposition"); cd != `attachment; filename="pair-1.log"; filename*=UTF-8''pair-1.log` {
			t.Errorf("Content-Disposition = %q", cd)
		}
		finishAll(t, e, p.id, run.Success)
		r := get("?download=1&follow=1&ansi=0" + b)
		if cd := r.Header.Get("Content-Disposition"); cd != `attachment; filename="pair-1-b.log"; filename*=UTF-8''pair-1-b.log` {
			t.Errorf("Content-Disposition of job b = %q", cd)
		}
		if string(r.Body) != "▶ two\nb says hi\n✔ two (0s)\n" {
			t.Errorf("download of job b: %q", r.Body)
		}
	})
}

// TestRunLogDownloadName: a job name with characters no file name should have is sanitised in
// filename and kept, percent-encoded, in filename* where it is a letter.
func TestRunLogDownloadName(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	u := e.user("alice", false)
	def := strings.Replace(twoJobsDefinition, "- name: a\n", "- name: \"Über \\\"x\\\"/..\\\\y\"\n", 1)
	if r := e.yaml("POST", "/api/v1/pipelines", u.Token, def); r.Status != http.StatusCreated {
		t.Fatalf("create pipeline: %s", r)
	}
	id := e.startRun("pair", u.Token)
	rn, err := e.st.RunGet(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	r := e.call("GET", fmt.Sprintf("/api/v1/runs/%d/log?download=1&job=%d", id, rn.Jobs[0].ID), u.Token, nil)
	want := `attachment; filename="pair-1-_ber__x__.._y.log"; filename*=UTF-8''pair-1-%C3%9Cber__x__.._y.log`
	if cd := r.Header.Get("Content-Disposition"); r.Status != http.StatusOK || cd != want {
		t.Errorf("%s: Content-Disposition %q, want %q", r, cd, want)
	}
}
